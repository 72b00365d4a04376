/**
 * Reading a project's storage for a rebuild: the commit and compaction markers under `<ducklake>/_mesa_log/`, the
 * Parquet files under `<ducklake>/main/avu_changes/` (each one's metadata, statistics, rows and digests), and the
 * merged files of the compactions needed; `scanLake` then lets `plan.ts` decide what goes in and returns the plan.
 *
 * A file is *committed* when a marker names it and the stored bytes match the marker's checksum and record count.
 * Everything else is reported, never silently merged: files without a marker (orphans of writes that died before
 * their commit, or whose marker was lost), files whose checksum or row count disagree, several files claiming one
 * snapshot id, unreadable (partial) files, files of another project, markers whose file is gone. `includeUnconfirmed`
 * opts in to committing clean marker-less files too. Storage refusing a path (a symbolic link on a mount) is never
 * followed. Reads only; changes nothing anywhere.
 */
import { Effect, Option } from "effect"
import * as fs from "node:fs/promises"
import * as os from "node:os"
import * as nodePath from "node:path"
import { type CommitRecord, latestPerTriple } from "../../catalog/Catalog.js"
import { TABLE_NAME } from "../../catalog/ducklakeSchema.js"
import type { DuckDbService } from "../../duckdb/DuckDb.js"
import type { StorageError } from "../../core/errors.js"
import { checksumFile, type LakeStorageService, parseIrodsChecksum, type StoredEntry } from "../../storage/LakeStorage.js"
import { lakePathOf, MARKER_DIR } from "../../core/layout.js"
import { RebuildError } from "../errors.js"
import {
  applyCoverage,
  chooseProject,
  type CompactionRecord,
  currentState,
  type FileScan,
  isCommitRecord,
  isCompactionRecord,
  matchMarkers,
  neededCompactions,
  plannedCompactions,
  plannedSnapshots,
  type RebuildPlan,
  type RebuildProblem,
  rebuildChain,
  schemaOf,
  type UsedCompaction
} from "./plan.js"

export interface ScanOptions {
  /** Commit clean files that have no marker too (default false: they are only reported). */
  readonly includeUnconfirmed?: boolean
  /** Called after each file, for progress reports. */
  readonly onFile?: (done: number, total: number, bytes: number) => Effect.Effect<void>
}

const FILE_NAME = /^snapshot_(\d{10})_[0-9a-f]+\.parquet$/
const MARKER_NAME = /^snapshot_(\d{10})\.json$/
const COMPACTION = /^compact(ed|ion)_/
const COMPACTION_MARKER = /^compaction_(\d{10})\.json$/

/** What storage said when it refused a path (the mounted adapter names the link it found). */
const refusal = (e: StorageError) =>
  `refused by storage (PermissionDenied${e.cause instanceof Error ? `: ${e.cause.message}` : ""})`

/**
 * Storage refusing the lake directory or one of its collections. On a mounted zone that means it, or a directory
 * above it, is a symbolic link (iRODS has none): it could lead out of the zone or into another project's lake, whose
 * files would then be taken for this project's. The rebuild stops before anything is written.
 */
const lakeRefused = (root: string, collection: string) => (e: StorageError) =>
  e.reason === "PermissionDenied"
    ? new RebuildError({
      root,
      reason: `${collection} is ${refusal(e)}: on a mounted zone, it or a directory above it is a symbolic link, ` +
        `which is never followed (put the real directory there); otherwise the service may not read it. ` +
        `Nothing was written`
    })
    : e

const listOrEmpty = (storage: LakeStorageService, root: string, collection: string) =>
  storage.list(collection).pipe(
    Effect.catchIf((e) => e.reason === "NotFound", () => Effect.succeed([])),
    Effect.mapError(lakeRefused(root, collection))
  )

interface LocalCopy {
  readonly file: string
  readonly temporary: boolean
}

/** A local readable copy of a stored file: the mount itself, or a download into `tmp`. */
const localCopy = (storage: LakeStorageService, path: string, tmp: string): Effect.Effect<LocalCopy, StorageError> =>
  Option.match(storage.localPath(path), {
    onSome: (p) => Effect.succeed({ file: p, temporary: false }),
    onNone: () => {
      const file = nodePath.join(tmp, nodePath.posix.basename(path))
      return Effect.as(storage.get(path, file), { file, temporary: true })
    }
  })

const dropCopy = (copy: LocalCopy) =>
  copy.temporary ? Effect.promise(() => fs.rm(copy.file, { force: true })) : Effect.void

/** One scan's surroundings: what it reads with, and where it reports. */
interface Scan {
  readonly storage: LakeStorageService
  readonly duck: DuckDbService
  readonly root: string
  readonly problems: Array<RebuildProblem>
  /** A local copy of one stored file, or None (and a problem reported) when storage refuses it: never followed. */
  readonly copyOrReport: (
    path: string,
    report: (reason: string) => RebuildProblem
  ) => Effect.Effect<Option.Option<LocalCopy>, StorageError>
}

/** A marker's JSON (undefined when it does not parse), or None when storage refused it. */
const readMarker = (scan: Scan, entry: StoredEntry) =>
  Effect.gen(function*() {
    const copied = yield* scan.copyOrReport(entry.path, (reason) => ({ kind: "bad-marker", file: entry.path, reason }))
    if (Option.isNone(copied)) return Option.none<unknown>()
    const copy = copied.value
    const parsed = yield* Effect.promise(() =>
      fs.readFile(copy.file, "utf8").then((t) => JSON.parse(t) as unknown, () => undefined)
    )
    yield* dropCopy(copy)
    return Option.some(parsed)
  })

/** The markers: snapshot id → commit record, compaction snapshot id → compaction record. */
const readMarkers = (scan: Scan, ducklakePath: string) =>
  Effect.gen(function*() {
    const { problems } = scan
    const markers = new Map<number, CommitRecord>()
    const entries = (yield* listOrEmpty(scan.storage, scan.root, `${ducklakePath}/${MARKER_DIR}`)).filter((e) => e.type === "data_object")
    const compactions = new Map<number, CompactionRecord>()
    for (const entry of entries) {
      const m = MARKER_NAME.exec(entry.name)
      const cm = COMPACTION_MARKER.exec(entry.name)
      if (cm !== null) {
        const read = yield* readMarker(scan, entry)
        if (Option.isNone(read)) continue
        const parsed = read.value
        if (isCompactionRecord(parsed) && parsed.snapshotId === Number(cm[1])) compactions.set(parsed.snapshotId, parsed)
        else problems.push({ kind: "bad-marker", file: entry.path, reason: "not a mesa-ducklake compaction record" })
        continue
      }
      if (m === null && COMPACTION.test(entry.name)) {
        problems.push({ kind: "compaction-not-used", file: `${MARKER_DIR}/${entry.name}` })
        continue
      }
      if (m === null) {
        problems.push({ kind: "unexpected-file", file: entry.path })
        continue
      }
      const read = yield* readMarker(scan, entry)
      if (Option.isNone(read)) continue
      const parsed = read.value
      if (!isCommitRecord(parsed)) {
        problems.push({ kind: "bad-marker", file: entry.path, reason: "not a mesa-ducklake commit record" })
      } else if (parsed.snapshotId !== Number(m[1])) {
        problems.push({ kind: "bad-marker", file: entry.path, reason: `names snapshot ${parsed.snapshotId}` })
      } else markers.set(parsed.snapshotId, parsed)
    }
    return { entries, markers, compactions }
  })

/** A local Parquet file's own description as DuckDB reads it: metadata, statistics, rows and the projects it names. */
const describeParquet = (duck: DuckDbService, file: string) =>
  Effect.gen(function*() {
    const meta = yield* duck.fileMetadata(file)
    const described = yield* duck.describeFile(file)
    const rows = yield* duck.changes([file], {}, { order: "oldest" })
    const owners = yield* duck.query(`SELECT DISTINCT project_id FROM read_parquet('${file.replace(/'/g, "''")}')`)
    return { meta, described, rows, owners: owners.map((r) => String(r.project_id)) }
  })

/**
 * The Parquet files: each one's own description (metadata, stats, rows) and the digest of its stored bytes. Compacted
 * files are only listed here (`compacted`): they are read when a compaction turns out to be needed.
 */
const readFiles = (scan: Scan, tableDir: string, onFile: ScanOptions["onFile"]) =>
  Effect.gen(function*() {
    const { problems } = scan
    const entries = (yield* listOrEmpty(scan.storage, scan.root, tableDir)).filter((e) => e.type === "data_object")
    const scans: Array<FileScan> = []
    const compacted: Array<StoredEntry> = []
    let bytes = 0
    let done = 0
    for (const entry of entries) {
      done++
      bytes += entry.size
      if (!entry.name.endsWith(".parquet")) {
        problems.push({ kind: "unexpected-file", file: entry.name })
        continue
      }
      if (COMPACTION.test(entry.name)) {
        compacted.push(entry)
        continue
      }
      const copied = yield* scan.copyOrReport(entry.path, (reason) => ({ kind: "unreadable", file: entry.name, reason }))
      if (Option.isNone(copied)) {
        if (onFile !== undefined) yield* onFile(done, entries.length, bytes)
        continue
      }
      const copy = copied.value
      const result = yield* Effect.either(describeParquet(scan.duck, copy.file))
      const digests = new Map<string, string>()
      for (const algorithm of ["md5", "sha256"] as const) {
        digests.set(algorithm, (yield* Effect.promise(() => checksumFile(copy.file, algorithm))).hex)
      }
      yield* dropCopy(copy)
      if (onFile !== undefined) yield* onFile(done, entries.length, bytes)
      if (result._tag === "Left") {
        problems.push({ kind: "unreadable", file: entry.name, reason: result.left.message.split("\n")[0]! })
        continue
      }
      const { described, meta, owners, rows } = result.right
      const byName = FILE_NAME.exec(entry.name)
      const snapshotId = Number(meta.snapshot_id ?? byName?.[1] ?? NaN)
      const projectId = meta.project_id ?? ""
      if (!Number.isSafeInteger(snapshotId) || projectId === "") {
        problems.push({ kind: "unreadable", file: entry.name, reason: "not a mesa-ducklake snapshot file (metadata)" })
        continue
      }
      if (owners.some((o) => o !== projectId)) {
        problems.push({ kind: "foreign-project", file: entry.name, projectId: owners.find((o) => o !== projectId)! })
        continue
      }
      scans.push({
        name: entry.name,
        snapshotId,
        nameId: byName === null ? undefined : Number(byName[1]),
        projectId,
        meta,
        size: described.fileSizeBytes,
        footerSize: described.footerSize,
        recordCount: described.recordCount,
        stats: described.stats,
        latest: latestPerTriple(rows),
        minTs: new Date(Math.min(...rows.map((r) => r.ts.getTime()))),
        maxTs: new Date(Math.max(...rows.map((r) => r.ts.getTime()))),
        digest: (algorithm) => Effect.succeed(digests.get(algorithm)!)
      })
    }
    return { entries, scans, compacted, bytes }
  })

/** The merged files of the compactions needed, each read and checked against its marker's checksum. */
const readCompactions = (scan: Scan, needed: ReadonlyArray<CompactionRecord>, compacted: ReadonlyArray<StoredEntry>) =>
  Effect.gen(function*() {
    const used: Array<UsedCompaction> = []
    for (const c of needed) {
      const entry = compacted.find((e) => e.name === c.fileName)!
      const copied = yield* scan.copyOrReport(entry.path, (reason) => ({ kind: "unreadable", file: c.fileName, reason }))
      if (Option.isNone(copied)) continue
      const copy = copied.value
      const read = yield* Effect.either(Effect.all({
        meta: scan.duck.fileMetadata(copy.file),
        described: scan.duck.describeFile(copy.file),
        rows: scan.duck.changes([copy.file], {}, { order: "oldest" })
      }))
      const expected = parseIrodsChecksum(c.checksum)
      const actual = expected === undefined ? "" : (yield* Effect.promise(() => checksumFile(copy.file, expected.algorithm))).hex
      yield* dropCopy(copy)
      if (read._tag === "Left") {
        scan.problems.push({ kind: "unreadable", file: c.fileName, reason: read.left.message.split("\n")[0]! })
        continue
      }
      if (expected === undefined || actual !== expected.hex) {
        scan.problems.push({ kind: "checksum-mismatch", file: c.fileName, snapshotId: c.snapshotId, expected: c.checksum, actual })
        continue
      }
      used.push({ record: c, ...read.right })
    }
    return used
  })

/**
 * Reads a project's storage and decides what a rebuilt catalog holds. Reads only; changes nothing anywhere.
 */
export const scanLake = (
  deps: { readonly storage: LakeStorageService; readonly duck: DuckDbService },
  root: string,
  options: ScanOptions = {}
) =>
  Effect.gen(function*() {
    const { storage } = deps
    const ducklakePath = lakePathOf(root)
    const problems: Array<RebuildProblem> = []
    const tmp = yield* Effect.acquireRelease(
      Effect.promise(() => fs.mkdtemp(nodePath.join(os.tmpdir(), "mesa-rebuild-"))),
      (dir) => Effect.promise(() => fs.rm(dir, { recursive: true, force: true }))
    )
    // The lake directory itself first: storage refusing it (a symbolic link on a mount) stops the rebuild.
    yield* storage.stat(ducklakePath).pipe(Effect.mapError(lakeRefused(root, ducklakePath)))
    const scan: Scan = {
      ...deps,
      root,
      problems,
      copyOrReport: (path, report) =>
        localCopy(storage, path, tmp).pipe(
          Effect.map(Option.some),
          Effect.catchIf((e) => e.reason === "PermissionDenied", (e) =>
            Effect.sync(() => {
              problems.push(report(refusal(e)))
              return Option.none<LocalCopy>()
            }))
        )
    }

    const read = yield* readMarkers(scan, ducklakePath)
    const files = yield* readFiles(scan, `${ducklakePath}/main/${TABLE_NAME}`, options.onFile)
    const { markers, ours, projectId } = yield* chooseProject(root, read.markers, files.scans, problems)
    const matched = yield* matchMarkers(markers, ours, options.includeUnconfirmed === true, problems)
    const compactedNames = files.compacted.map((e) => e.name)
    const needed = neededCompactions(read.compactions, compactedNames, matched.missingFiles)
    const used = yield* readCompactions(scan, needed, files.compacted)
    const { chosen, coveredBy } = applyCoverage(markers, used, matched.chosen, matched.missingFiles, compactedNames, problems)
    const snapshots = plannedSnapshots(chosen, coveredBy, markers, problems)
    const compactions = plannedCompactions(used)
    const current = currentState(chosen, used)
    const chain = rebuildChain(projectId, snapshots, markers, read.compactions, problems)
    const any = ours[0]?.meta
    // Every id seen anywhere counts, unreadable and foreign file names included: a partial upload had its id.
    const namedIds = files.entries.flatMap((e) => {
      const m = FILE_NAME.exec(e.name)
      return m === null ? [] : [Number(m[1])]
    })
    const ids = [...markers.keys(), ...files.scans.map((s) => s.snapshotId), ...namedIds, ...read.compactions.keys(), 1]
    return {
      projectId,
      irodsPath: root,
      irodsZone: any?.irods_zone ?? root.split("/")[1]!,
      ducklakePath,
      metadataSchema: schemaOf(projectId),
      snapshots,
      compactions,
      current,
      problems,
      chain,
      lastSnapshotId: Math.max(...ids),
      filesScanned: files.entries.length,
      markersScanned: read.entries.length,
      bytesScanned: files.bytes
    } satisfies RebuildPlan
  }).pipe(Effect.scoped)
