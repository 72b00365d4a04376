/**
 * The backups a project root holds in storage (`<root>/.mesa/ducklake/backups/`): their names, listing them, their
 * manifests (`<dump>.json`, uploaded last: a dump without one is incomplete), and verifying one — manifest, the
 * stored copy's checksum, and the archive itself (`dump.ts`).
 */
import * as FileSystem from "@effect/platform/FileSystem"
import { Effect, Option } from "effect"
import { randomBytes } from "node:crypto"
import * as nodePath from "node:path"
import { parseIrodsPath } from "../core/domain.js"
import type { InvalidChange, StorageError } from "../core/errors.js"
import { checksumFile, LakeStorage } from "../storage/LakeStorage.js"
import { BACKUP_DIR, lakePathOf } from "../core/layout.js"
import type { PgTools } from "./dump.js"
import { BackupCorrupt } from "./errors.js"
import { privateTempDir } from "./private.js"

/** What a backup's manifest (`<dump>.json`) holds. */
export interface BackupManifest {
  readonly format: "mesa-ducklake-backup/1"
  readonly projectId: string
  readonly metadataSchema: string
  readonly createdAt: string
  /** The project's row of `mesa_ducklake.projects` at backup time. */
  readonly registry: {
    readonly projectId: string
    readonly irodsPath: string
    readonly irodsZone: string
    readonly ducklakePath: string
    readonly metadataSchema: string
    readonly createdAt: string
    readonly createdBy: string
    readonly status: string
    readonly lastSnapshotId: number
  }
  readonly dump: { readonly name: string; readonly bytes: number; readonly sha256: string; readonly md5: string }
  readonly latestSnapshot: number
  readonly pgDump: string
  readonly server: string
}

export interface StoredBackup {
  readonly name: string
  readonly path: string
  /** The UTC time in the name. */
  readonly time: Date
  readonly bytes: number
  /** `incomplete`: no manifest (a run that died, or one still uploading). */
  readonly status: "complete" | "incomplete"
}

const NAME = /^mesa-ducklake-([0-9a-f-]{36})-(\d{8}T\d{6}\.\d{3}Z)\.dump$/

/** `20260115T030000.123Z` */
const stamp = (d: Date) => d.toISOString().replace(/[-:]/g, "")

const parseStamp = (s: string) =>
  new Date(`${s.slice(0, 4)}-${s.slice(4, 6)}-${s.slice(6, 8)}T${s.slice(9, 11)}:${s.slice(11, 13)}:${s.slice(13)}`)

/** `mesa-ducklake-<project id>-<UTC time>.dump`: names sort by time. */
export const dumpName = (projectId: string, time: Date) => `mesa-ducklake-${projectId}-${stamp(time)}.dump`

/** A project root's backups collection. */
export const backupsOf = (root: string) => `${lakePathOf(root)}/${BACKUP_DIR}`

export const manifestPath = (dumpPath: string) => `${dumpPath}.json`

/** Listing, reading and verifying the stored backups, with the service's tools. */
export const makeStoredBackups = (tools: PgTools) =>
  Effect.gen(function*() {
    const storage = yield* LakeStorage
    const fs = yield* FileSystem.FileSystem

    /** A local readable copy of a stored file: the mount itself, or a download into `dir` under a fresh name. */
    const localCopy = (path: string, dir: string): Effect.Effect<string, StorageError> =>
      Option.match(storage.localPath(path), {
        onSome: (p) => Effect.succeed(p),
        onNone: () => {
          const file = nodePath.join(dir, `${randomBytes(4).toString("hex")}-${nodePath.posix.basename(path)}`)
          return Effect.as(storage.get(path, file), file)
        }
      })

    /** Backups of a project root, newest first. */
    const listBackups = (rawRoot: string): Effect.Effect<ReadonlyArray<StoredBackup>, StorageError | InvalidChange> =>
      Effect.gen(function*() {
        const root = yield* parseIrodsPath(rawRoot, "root")
        const entries = yield* storage.list(backupsOf(root)).pipe(
          Effect.catchIf((e) => e.reason === "NotFound", () => Effect.succeed([]))
        )
        const names = new Set(entries.map((e) => e.name))
        return entries.flatMap((e) => {
          const m = NAME.exec(e.name)
          if (m === null || e.type !== "data_object") return []
          return [{
            name: e.name,
            path: e.path,
            time: parseStamp(m[2]!),
            bytes: e.size,
            status: names.has(`${e.name}.json`) ? "complete" as const : "incomplete" as const
          }]
        }).sort((a, b) => (a.name < b.name ? 1 : a.name > b.name ? -1 : 0))
      })

    const readManifest = (path: string, dir: string) =>
      Effect.gen(function*() {
        const local = yield* localCopy(manifestPath(path), dir).pipe(
          Effect.mapError((e) => new BackupCorrupt({ path, reason: `no manifest (${e.reason})`, cause: e }))
        )
        const text = yield* fs.readFileString(local).pipe(
          Effect.mapError((e) => new BackupCorrupt({ path, reason: "manifest unreadable", cause: e }))
        )
        const m = yield* Effect.try({
          try: () => JSON.parse(text) as BackupManifest,
          catch: (cause) => new BackupCorrupt({ path, reason: "manifest is not JSON", cause })
        })
        if (m?.format !== "mesa-ducklake-backup/1" || typeof m.metadataSchema !== "string" || typeof m.dump?.sha256 !== "string") {
          return yield* new BackupCorrupt({ path, reason: "not a mesa-ducklake backup manifest" })
        }
        return m
      })

    /** The stored dump's checksum against its manifest, by whatever algorithm the storage reports. */
    const storedChecksumMatches = (path: string, m: BackupManifest) =>
      Effect.gen(function*() {
        const sum = yield* storage.checksum(path).pipe(Effect.option)
        if (Option.isNone(sum)) return false
        return sum.value.hex === (sum.value.algorithm === "md5" ? m.dump.md5 : m.dump.sha256)
      })

    /** A stored backup verified in `dir`: its manifest, and the local copy of the dump that matched it. */
    const verifyIn = (path: string, dir: string) =>
      Effect.gen(function*() {
        const m = yield* readManifest(path, dir)
        const local = yield* localCopy(path, dir)
        const sha = yield* Effect.promise(() => checksumFile(local, "sha256"))
        if (sha.hex !== m.dump.sha256) {
          return yield* new BackupCorrupt({ path, reason: `sha256 ${sha.hex} differs from the manifest's ${m.dump.sha256}` })
        }
        yield* tools.verifyArchive(local, m.metadataSchema, path)
        return { manifest: m, local }
      })

    /** Verify a stored backup (manifest, checksum, archive contents) without restoring it. */
    const verify = (path: string) =>
      Effect.scoped(Effect.gen(function*() {
        const dir = yield* privateTempDir(fs, "mesa-verify-")
        return (yield* verifyIn(path, dir)).manifest
      }))

    return { localCopy, listBackups, readManifest, storedChecksumMatches, verifyIn, verify }
  })

/** The stored backups of one Backup service (see `makeStoredBackups`). */
export type StoredBackups = Effect.Effect.Success<ReturnType<typeof makeStoredBackups>>
