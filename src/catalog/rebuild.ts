/**
 * Rebuilding a project's catalog from its storage alone: the Parquet files under `<ducklake>/main/avu_changes/` and
 * the commit markers under `<ducklake>/_mesa_log/`.
 *
 * A file is *committed* when a marker names it and the stored bytes match the marker's checksum and record count.
 * Everything else is reported, never silently merged: files without a marker (orphans of writes that died before
 * their commit, or whose marker was lost), files whose checksum or row count disagree, several files claiming one
 * snapshot id, unreadable (partial) files, files of another project, markers whose file is gone. `includeUnconfirmed`
 * opts in to committing clean marker-less files too.
 *
 * The catalog is written in one transaction with the snapshot ids, transaction times (from the markers), data file
 * ids and row ids of the original commits, so every as-of answer — valid time and `knownAt` — is the same as before.
 */
import type { SqlClient } from "@effect/sql"
import { Effect, Option } from "effect"
import * as fs from "node:fs/promises"
import * as os from "node:os"
import * as nodePath from "node:path"
import {
  type CatalogService,
  type ColumnStats,
  chainRow,
  type CommitRecord,
  currentAvuRow,
  fileStatsRows,
  latestPerTriple
} from "../Catalog.js"
import type { ChangeRow } from "../domain.js"
import type { DuckDbService, WrittenFile } from "../DuckDb.js"
import { MARKER_DIR } from "../layout.js"
import type { StorageError } from "../errors.js"
import { checksumFile, formatIrodsChecksum, type LakeStorageService, parseIrodsChecksum } from "../LakeStorage.js"
import { CatalogNotEmpty, RebuildError } from "../backupErrors.js"
import { type ChainRecord, GENESIS_HASH, isoMillis, recordHash } from "./chain.js"
import { createLakeStatements, TABLE_ID, TABLE_NAME } from "./ducklakeSchema.js"

/** Why a file or marker was left out of the rebuilt catalog. */
export type RebuildProblem =
  | { readonly kind: "no-marker"; readonly file: string; readonly snapshotId: number }
  | { readonly kind: "checksum-mismatch"; readonly file: string; readonly snapshotId: number; readonly expected: string; readonly actual: string }
  | { readonly kind: "record-count-mismatch"; readonly file: string; readonly snapshotId: number; readonly expected: number; readonly actual: number }
  | { readonly kind: "duplicate-snapshot"; readonly file: string; readonly snapshotId: number }
  | { readonly kind: "marker-without-file"; readonly snapshotId: number; readonly file: string }
  | { readonly kind: "unreadable"; readonly file: string; readonly reason: string }
  | { readonly kind: "foreign-project"; readonly file: string; readonly projectId: string }
  | { readonly kind: "bad-marker"; readonly file: string; readonly reason: string }
  | { readonly kind: "unexpected-file"; readonly file: string }
  | { readonly kind: "name-mismatch"; readonly file: string; readonly snapshotId: number }
  | { readonly kind: "time-order"; readonly snapshotId: number; readonly reason: string }
  /**
   * The hash chain (src/catalog/chain.ts) does not hold together: a marker's record hash differs from the record
   * rebuilt from what storage holds, or its link to the record before it is not that record's hash (a gap).
   */
  | { readonly kind: "chain-mismatch"; readonly snapshotId: number; readonly reason: string }
  /**
   * A compaction output or marker. Rebuild takes history from the per-snapshot files; once compaction's grace period
   * has deleted them, their snapshots show up as `marker-without-file` (not yet rebuilt from compacted files).
   */
  | { readonly kind: "compaction-not-used"; readonly file: string }

/** A snapshot that goes into the rebuilt catalog. */
export interface PlannedSnapshot {
  readonly snapshotId: number
  readonly snapshotTime: Date
  readonly fileName: string
  readonly checksum: string
  readonly recordCount: number
  readonly fileSizeBytes: number
  readonly footerSize: number
  readonly stats: ReadonlyArray<ColumnStats>
  readonly actor: string
  readonly note: string | null
  readonly idempotencyKey: string | null
  readonly contentHash: string
  /** Renames this snapshot recorded (the file's `renames` key-value metadata, JSON), if any. */
  readonly renames: string | undefined
  /** Set when the snapshot's own file is gone and a compacted file (this compaction snapshot's) holds its rows. */
  readonly coveredBy?: number
  readonly minTs: Date
  readonly maxTs: Date
  /** False for a marker-less file taken in with `includeUnconfirmed`. */
  readonly confirmed: boolean
}

/** A compaction whose merged file stands in for snapshots whose own files were deleted after the grace period. */
export interface PlannedCompaction {
  readonly snapshotId: number
  readonly snapshotTime: Date
  readonly fileName: string
  readonly fileSizeBytes: number
  readonly footerSize: number
  readonly recordCount: number
  readonly stats: ReadonlyArray<ColumnStats>
  readonly beginSnapshot: number
  readonly partialMax: number
}

export interface RebuildPlan {
  readonly projectId: string
  readonly irodsPath: string
  readonly irodsZone: string
  readonly ducklakePath: string
  readonly metadataSchema: string
  readonly snapshots: ReadonlyArray<PlannedSnapshot>
  /** Compactions used (their merged files hold the rows of the snapshots they cover). */
  readonly compactions: ReadonlyArray<PlannedCompaction>
  /** The latest change per AVU triple over the committed snapshots: the `mesa_current_avus` rows. */
  readonly current: ReadonlyArray<ChangeRow>
  readonly problems: ReadonlyArray<RebuildProblem>
  /**
   * The hash chain as rebuilt, in snapshot order: the data snapshots above and every compaction with a marker. With
   * intact markers its hashes are the original catalog's.
   */
  readonly chain: ReadonlyArray<ChainRecord>
  /** Highest snapshot id seen anywhere (files, markers): ids up to it are never handed out again. */
  readonly lastSnapshotId: number
  readonly filesScanned: number
  readonly markersScanned: number
  readonly bytesScanned: number
}

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

interface CompactionRecord {
  readonly snapshotId: number
  readonly snapshotTime: string
  readonly fileName: string
  readonly checksum: string
  readonly recordCount: number
  readonly beginSnapshot: number
  readonly partialMax: number
  readonly replaces: ReadonlyArray<{ readonly fileName: string }>
  /** Chain fields (layout 2; absent in older markers). */
  readonly fileSizeBytes?: number
  readonly actor?: string
  readonly sources?: ReadonlyArray<string>
  readonly prevHash?: string
  readonly recordHash?: string
}

const isCompactionRecord = (x: any): x is CompactionRecord =>
  x !== null && typeof x === "object" && x.format === "mesa-ducklake-compaction/1" &&
  Number.isSafeInteger(x.snapshotId) && typeof x.snapshotTime === "string" && typeof x.fileName === "string" &&
  typeof x.checksum === "string" && Number.isSafeInteger(x.beginSnapshot) && Number.isSafeInteger(x.partialMax) &&
  Array.isArray(x.replaces)

/** The lake schema name of a project id (as registration makes it). */
export const schemaOf = (projectId: string) => `lake_${projectId.replace(/-/g, "")}`

interface FileScan {
  readonly name: string
  readonly snapshotId: number
  /** The snapshot id in the file name, when it follows our pattern. */
  readonly nameId: number | undefined
  readonly projectId: string
  readonly meta: Readonly<Record<string, string>>
  readonly size: number
  readonly footerSize: number
  readonly recordCount: number
  readonly stats: ReadonlyArray<ColumnStats>
  /** The file's latest change per AVU triple (all the current index needs), and its valid-time range. */
  readonly latest: ReadonlyArray<ChangeRow>
  readonly minTs: Date
  readonly maxTs: Date
  /** Digest of the stored bytes, per algorithm asked for. */
  readonly digest: (algorithm: "md5" | "sha256") => Effect.Effect<string>
}

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

/** A local readable copy of a stored file: the mount itself, or a download into `tmp`. */
const localCopy = (storage: LakeStorageService, path: string, tmp: string) =>
  Option.match(storage.localPath(path), {
    onSome: (p) => Effect.succeed({ file: p, temporary: false }),
    onNone: () => {
      const file = nodePath.join(tmp, nodePath.posix.basename(path))
      return Effect.as(storage.get(path, file), { file, temporary: true })
    }
  })

/**
 * The chain records of a rebuilt catalog, from the planned snapshots (as the rebuilt catalog will hold them) and the
 * compaction markers, each linked to the one before. A marker's own hashes are checked against them: a mismatch or a
 * gap is reported, and a marker's link is followed past a gap so the records after it keep their original hashes.
 */
const rebuildChain = (
  projectId: string,
  snapshots: ReadonlyArray<PlannedSnapshot>,
  markers: ReadonlyMap<number, CommitRecord>,
  compactions: ReadonlyMap<number, CompactionRecord>,
  problems: Array<RebuildProblem>
): Array<ChainRecord> => {
  type Entry = { readonly record: Omit<ChainRecord, "prevHash">; readonly prevHash?: string; readonly recordHash?: string }
  const entries: Array<Entry> = []
  for (const p of snapshots) {
    const m = markers.get(p.snapshotId)
    entries.push({
      record: {
        projectId,
        snapshotId: p.snapshotId,
        kind: "data",
        snapshotTime: isoMillis(p.snapshotTime),
        fileName: p.fileName,
        checksum: p.checksum,
        fileSizeBytes: p.coveredBy !== undefined ? (m?.fileSizeBytes ?? 0) : p.fileSizeBytes,
        recordCount: p.recordCount,
        actor: p.actor,
        note: p.note,
        idempotencyKey: p.idempotencyKey,
        contentHash: p.contentHash,
        minTs: isoMillis(p.minTs),
        maxTs: isoMillis(p.maxTs),
        sources: []
      },
      ...(m?.prevHash === undefined ? {} : { prevHash: m.prevHash }),
      ...(m?.recordHash === undefined ? {} : { recordHash: m.recordHash })
    })
  }
  for (const c of compactions.values()) {
    entries.push({
      record: {
        projectId,
        snapshotId: c.snapshotId,
        kind: "compaction",
        snapshotTime: c.snapshotTime,
        fileName: c.fileName,
        checksum: c.checksum,
        fileSizeBytes: c.fileSizeBytes ?? -1,
        recordCount: c.recordCount,
        actor: c.actor ?? "",
        note: null,
        idempotencyKey: null,
        contentHash: null,
        minTs: null,
        maxTs: null,
        sources: c.sources ?? []
      },
      ...(c.prevHash === undefined ? {} : { prevHash: c.prevHash }),
      ...(c.recordHash === undefined ? {} : { recordHash: c.recordHash })
    })
  }
  entries.sort((a, b) => a.record.snapshotId - b.record.snapshotId)
  const out: Array<ChainRecord> = []
  let prev = GENESIS_HASH
  for (const e of entries) {
    if (e.prevHash !== undefined && e.prevHash !== prev) {
      problems.push({
        kind: "chain-mismatch",
        snapshotId: e.record.snapshotId,
        reason: `its marker links to ${e.prevHash.slice(0, 12)}…, the record before it hashes to ${prev.slice(0, 12)}…`
      })
      prev = e.prevHash
    }
    const record: ChainRecord = { ...e.record, prevHash: prev }
    const hash = recordHash(record)
    if (e.recordHash !== undefined && e.recordHash !== hash) {
      problems.push({
        kind: "chain-mismatch",
        snapshotId: record.snapshotId,
        reason: `its marker's record hash ${e.recordHash.slice(0, 12)}… differs from the rebuilt record's ${hash.slice(0, 12)}…`
      })
    }
    out.push(record)
    prev = hash
  }
  return out
}

const isCommitRecord = (x: any): x is CommitRecord =>
  x !== null && typeof x === "object" && x.format === "mesa-ducklake-commit/1" && typeof x.projectId === "string" &&
  Number.isSafeInteger(x.snapshotId) && typeof x.snapshotTime === "string" && !Number.isNaN(Date.parse(x.snapshotTime)) &&
  typeof x.fileName === "string" && typeof x.checksum === "string" && Number.isSafeInteger(x.recordCount)

/**
 * Reads a project's storage and decides what a rebuilt catalog holds. Reads only; changes nothing anywhere.
 */
export const scanLake = (
  deps: { readonly storage: LakeStorageService; readonly duck: DuckDbService },
  root: string,
  options: ScanOptions = {}
) =>
  Effect.gen(function*() {
    const { duck, storage } = deps
    const ducklakePath = `${root}/.mesa/ducklake`
    const tableDir = `${ducklakePath}/main/${TABLE_NAME}`
    const problems: Array<RebuildProblem> = []
    const tmp = yield* Effect.acquireRelease(
      Effect.promise(() => fs.mkdtemp(nodePath.join(os.tmpdir(), "mesa-rebuild-"))),
      (dir) => Effect.promise(() => fs.rm(dir, { recursive: true, force: true }))
    )

    // The lake directory itself first: storage refusing it (a symbolic link on a mount) stops the rebuild.
    yield* storage.stat(ducklakePath).pipe(Effect.mapError(lakeRefused(root, ducklakePath)))
    /** A local copy of one stored file, or None (and a problem reported) when storage refuses it: never followed. */
    const copyOrReport = (path: string, report: (reason: string) => RebuildProblem) =>
      localCopy(storage, path, tmp).pipe(
        Effect.map(Option.some),
        Effect.catchIf((e) => e.reason === "PermissionDenied", (e) =>
          Effect.sync(() => {
            problems.push(report(refusal(e)))
            return Option.none<{ readonly file: string; readonly temporary: boolean }>()
          }))
      )

    // Markers: snapshot id → commit record.
    const markers = new Map<number, CommitRecord>()
    const markerEntries = (yield* listOrEmpty(storage, root, `${ducklakePath}/${MARKER_DIR}`)).filter((e) => e.type === "data_object")
    const compactionMarkers = new Map<number, CompactionRecord>()
    for (const entry of markerEntries) {
      const m = MARKER_NAME.exec(entry.name)
      const cm = COMPACTION_MARKER.exec(entry.name)
      if (cm !== null) {
        const copied = yield* copyOrReport(entry.path, (reason) => ({ kind: "bad-marker", file: entry.path, reason }))
        if (Option.isNone(copied)) continue
        const copy = copied.value
        const parsed = yield* Effect.promise(() =>
          fs.readFile(copy.file, "utf8").then((t) => JSON.parse(t) as unknown, () => undefined)
        )
        if (copy.temporary) yield* Effect.promise(() => fs.rm(copy.file, { force: true }))
        if (isCompactionRecord(parsed) && parsed.snapshotId === Number(cm[1])) compactionMarkers.set(parsed.snapshotId, parsed)
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
      const copied = yield* copyOrReport(entry.path, (reason) => ({ kind: "bad-marker", file: entry.path, reason }))
      if (Option.isNone(copied)) continue
      const copy = copied.value
      const parsed = yield* Effect.promise(() =>
        fs.readFile(copy.file, "utf8").then((t) => JSON.parse(t) as unknown, () => undefined)
      )
      if (copy.temporary) yield* Effect.promise(() => fs.rm(copy.file, { force: true }))
      if (!isCommitRecord(parsed)) {
        problems.push({ kind: "bad-marker", file: entry.path, reason: "not a mesa-ducklake commit record" })
      } else if (parsed.snapshotId !== Number(m[1])) {
        problems.push({ kind: "bad-marker", file: entry.path, reason: `names snapshot ${parsed.snapshotId}` })
      } else markers.set(parsed.snapshotId, parsed)
    }

    // Files: read each one's own description (metadata, stats, rows) and the digest of its stored bytes.
    const fileEntries = (yield* listOrEmpty(storage, root, tableDir)).filter((e) => e.type === "data_object")
    const scans: Array<FileScan> = []
    const compactedEntries: Array<(typeof fileEntries)[number]> = []
    let bytes = 0
    let done = 0
    for (const entry of fileEntries) {
      done++
      bytes += entry.size
      if (!entry.name.endsWith(".parquet")) {
        problems.push({ kind: "unexpected-file", file: entry.name })
        continue
      }
      if (COMPACTION.test(entry.name)) {
        compactedEntries.push(entry)
        continue
      }
      const copied = yield* copyOrReport(entry.path, (reason) => ({ kind: "unreadable", file: entry.name, reason }))
      if (Option.isNone(copied)) {
        if (options.onFile !== undefined) yield* options.onFile(done, fileEntries.length, bytes)
        continue
      }
      const copy = copied.value
      const read = Effect.gen(function*() {
        const meta = yield* duck.fileMetadata(copy.file)
        const described = yield* duck.describeFile(copy.file)
        const rows = yield* duck.changes([copy.file], {}, { order: "oldest" })
        const owners = yield* duck.query(
          `SELECT DISTINCT project_id FROM read_parquet('${copy.file.replace(/'/g, "''")}')`
        )
        return { meta, described, rows, owners: owners.map((r) => String(r.project_id)) }
      })
      const result = yield* Effect.either(read)
      const digests = new Map<string, string>()
      for (const algorithm of ["md5", "sha256"] as const) {
        digests.set(algorithm, (yield* Effect.promise(() => checksumFile(copy.file, algorithm))).hex)
      }
      if (copy.temporary) yield* Effect.promise(() => fs.rm(copy.file, { force: true }))
      if (options.onFile !== undefined) yield* options.onFile(done, fileEntries.length, bytes)
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

    // The project: the one the markers name (they are written only after a commit), else the files'.
    const votes = new Map<string, number>()
    for (const m of markers.values()) votes.set(m.projectId, (votes.get(m.projectId) ?? 0) + 1_000_000)
    for (const s of scans) votes.set(s.projectId, (votes.get(s.projectId) ?? 0) + 1)
    const projectId = [...votes.entries()].sort((a, b) => b[1] - a[1])[0]?.[0]
    if (projectId === undefined) {
      return yield* new RebuildError({ root, reason: "no commit marker and no readable snapshot file in storage" })
    }
    for (const [id, m] of markers) {
      if (m.projectId !== projectId) {
        problems.push({ kind: "bad-marker", file: `${MARKER_DIR}/snapshot_${String(id).padStart(10, "0")}.json`, reason: `of project ${m.projectId}` })
        markers.delete(id)
      }
    }
    const ours = scans.filter((s) => {
      if (s.projectId !== projectId) {
        problems.push({ kind: "foreign-project", file: s.name, projectId: s.projectId })
        return false
      }
      if (s.nameId !== undefined && s.nameId !== s.snapshotId) {
        problems.push({ kind: "name-mismatch", file: s.name, snapshotId: s.snapshotId })
        return false
      }
      return true
    })

    const missingFiles = new Map<number, CommitRecord>()
    const bySnapshot = new Map<number, Array<FileScan>>()
    for (const s of ours) bySnapshot.set(s.snapshotId, [...(bySnapshot.get(s.snapshotId) ?? []), s])
    const chosen: Array<{ readonly scan: FileScan; readonly marker: CommitRecord | undefined; readonly checksum: string }> = []
    for (const id of [...new Set([...bySnapshot.keys(), ...markers.keys()])].sort((a, b) => a - b)) {
      const files = bySnapshot.get(id) ?? []
      const marker = markers.get(id)
      if (marker === undefined) {
        if (files.length > 1) {
          for (const f of files) problems.push({ kind: "duplicate-snapshot", file: f.name, snapshotId: id })
        } else {
          problems.push({ kind: "no-marker", file: files[0]!.name, snapshotId: id })
          if (options.includeUnconfirmed === true) {
            const sha = formatIrodsChecksum({ algorithm: "sha256", hex: yield* files[0]!.digest("sha256") })
            chosen.push({ scan: files[0]!, marker: undefined, checksum: sha })
          }
        }
        continue
      }
      const named = files.find((f) => f.name === marker.fileName)
      for (const f of files) if (f !== named) problems.push({ kind: "duplicate-snapshot", file: f.name, snapshotId: id })
      if (named === undefined) {
        missingFiles.set(id, marker)
        continue
      }
      const expected = parseIrodsChecksum(marker.checksum)
      const actual = expected === undefined ? "" : yield* named.digest(expected.algorithm)
      if (expected === undefined || actual !== expected.hex) {
        problems.push({
          kind: "checksum-mismatch",
          file: named.name,
          snapshotId: id,
          expected: marker.checksum,
          actual: expected === undefined ? "<unknown algorithm>" : formatIrodsChecksum({ algorithm: expected.algorithm, hex: actual })
        })
        continue
      }
      if (named.recordCount !== marker.recordCount) {
        problems.push({
          kind: "record-count-mismatch",
          file: named.name,
          snapshotId: id,
          expected: marker.recordCount,
          actual: named.recordCount
        })
        continue
      }
      chosen.push({ scan: named, marker, checksum: marker.checksum })
    }

    // Snapshots whose own file is gone (deleted after a compaction's grace period) are rebuilt from the merged file,
    // as the live catalog holds them: one data file covering a range of snapshots. A compaction is used only when
    // needed and then for its whole range (never both its file and the originals); the outermost one wins.
    const usable = [...compactionMarkers.values()].filter((c) => compactedEntries.some((e) => e.name === c.fileName))
    const needed = usable.filter((c) => [...missingFiles.keys()].some((id) => id >= c.beginSnapshot && id <= c.partialMax))
    const replaced = new Set(needed.flatMap((c) => c.replaces.map((r) => r.fileName)))
    const used: Array<{ readonly record: CompactionRecord; readonly rows: ReadonlyArray<ChangeRow>; readonly meta: Readonly<Record<string, string>>; readonly described: WrittenFile }> = []
    for (const c of needed.filter((x) => !replaced.has(x.fileName)).sort((a, b) => a.beginSnapshot - b.beginSnapshot)) {
      const entry = compactedEntries.find((e) => e.name === c.fileName)!
      const copied = yield* copyOrReport(entry.path, (reason) => ({ kind: "unreadable", file: c.fileName, reason }))
      if (Option.isNone(copied)) continue
      const copy = copied.value
      const read = yield* Effect.either(Effect.all({
        meta: duck.fileMetadata(copy.file),
        described: duck.describeFile(copy.file),
        rows: duck.changes([copy.file], {}, { order: "oldest" })
      }))
      const expected = parseIrodsChecksum(c.checksum)
      const actual = expected === undefined ? "" : (yield* Effect.promise(() => checksumFile(copy.file, expected.algorithm))).hex
      if (copy.temporary) yield* Effect.promise(() => fs.rm(copy.file, { force: true }))
      if (read._tag === "Left") {
        problems.push({ kind: "unreadable", file: c.fileName, reason: read.left.message.split("\n")[0]! })
        continue
      }
      if (expected === undefined || actual !== expected.hex) {
        problems.push({ kind: "checksum-mismatch", file: c.fileName, snapshotId: c.snapshotId, expected: c.checksum, actual })
        continue
      }
      used.push({ record: c, ...read.right })
    }
    // Snapshots inside a used compaction's range: from the merged file (dropping their own files, if any are left).
    const coveredBy = new Map<number, (typeof used)[number]>()
    for (const u of used) {
      for (const id of markers.keys()) if (id >= u.record.beginSnapshot && id <= u.record.partialMax) coveredBy.set(id, u)
    }
    for (let i = chosen.length - 1; i >= 0; i--) if (coveredBy.has(chosen[i]!.scan.snapshotId)) chosen.splice(i, 1)
    for (const [id, marker] of missingFiles) {
      if (!coveredBy.has(id)) problems.push({ kind: "marker-without-file", snapshotId: id, file: marker.fileName })
    }
    for (const e of compactedEntries) {
      if (!used.some((u) => u.record.fileName === e.name)) problems.push({ kind: "compaction-not-used", file: e.name })
    }

    // Transaction times: the markers' (exact); an unconfirmed file's own clock, kept strictly increasing.
    const snapshots: Array<PlannedSnapshot> = []
    let previous = -Infinity
    for (const { checksum, marker, scan } of chosen) {
      let time = new Date(marker?.snapshotTime ?? scan.meta.snapshot_clock ?? NaN)
      if (Number.isNaN(time.getTime())) time = new Date(previous + 1)
      if (time.getTime() <= previous) {
        if (marker !== undefined) {
          problems.push({ kind: "time-order", snapshotId: scan.snapshotId, reason: `committed at ${marker.snapshotTime}, not after the snapshot before` })
        }
        time = new Date(previous + 1)
      }
      previous = time.getTime()
      snapshots.push({
        snapshotId: scan.snapshotId,
        snapshotTime: time,
        fileName: scan.name,
        checksum,
        recordCount: scan.recordCount,
        fileSizeBytes: scan.size,
        footerSize: scan.footerSize,
        stats: scan.stats,
        actor: marker?.actor ?? scan.meta.author ?? "unknown",
        note: marker !== undefined ? marker.note : (scan.meta.commit_message || null),
        idempotencyKey: marker !== undefined ? marker.idempotencyKey : (scan.meta.idempotency_key || null),
        contentHash: marker?.contentHash ?? scan.meta.content_hash ?? "",
        renames: scan.meta.renames,
        minTs: scan.minTs,
        maxTs: scan.maxTs,
        confirmed: marker !== undefined
      })
    }

    for (const [id, u] of coveredBy) {
      const marker = markers.get(id)!
      const rows = u.rows.filter((r) => r.snapshotId === id)
      const renames = (() => {
        const all = u.meta.renames === undefined ? [] : (JSON.parse(u.meta.renames) as Array<{ snapshotId: number }>)
        const mine = all.filter((r) => r.snapshotId === id)
        return mine.length === 0 ? undefined : JSON.stringify(mine)
      })()
      snapshots.push({
        snapshotId: id,
        snapshotTime: new Date(marker.snapshotTime),
        fileName: marker.fileName,
        checksum: marker.checksum,
        recordCount: marker.recordCount,
        fileSizeBytes: 0,
        footerSize: 0,
        stats: [],
        actor: marker.actor,
        note: marker.note,
        idempotencyKey: marker.idempotencyKey,
        contentHash: marker.contentHash,
        renames,
        minTs: new Date(Math.min(...rows.map((r) => r.ts.getTime()))),
        maxTs: new Date(Math.max(...rows.map((r) => r.ts.getTime()))),
        confirmed: true,
        coveredBy: u.record.snapshotId
      })
    }
    snapshots.sort((a, b) => a.snapshotId - b.snapshotId)
    const compactions: Array<PlannedCompaction> = used.map((u) => ({
      snapshotId: u.record.snapshotId,
      snapshotTime: new Date(u.record.snapshotTime),
      fileName: u.record.fileName,
      fileSizeBytes: u.described.fileSizeBytes,
      footerSize: u.described.footerSize,
      recordCount: u.described.recordCount,
      stats: u.described.stats,
      beginSnapshot: u.record.beginSnapshot,
      partialMax: u.record.partialMax
    }))
    const current = latestPerTriple([...chosen.flatMap((c) => c.scan.latest), ...used.flatMap((u) => u.rows)])
    const chain = rebuildChain(projectId, snapshots, markers, compactionMarkers, problems)
    const any = ours[0]?.meta
    // Every id seen anywhere counts, unreadable and foreign file names included: a partial upload had its id.
    const namedIds = fileEntries.flatMap((e) => {
      const m = FILE_NAME.exec(e.name)
      return m === null ? [] : [Number(m[1])]
    })
    const ids = [...markers.keys(), ...scans.map((s) => s.snapshotId), ...namedIds, ...compactionMarkers.keys(), 1]
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
      filesScanned: fileEntries.length,
      markersScanned: markerEntries.length,
      bytesScanned: bytes
    } satisfies RebuildPlan
  }).pipe(Effect.scoped)

const chunk = <A>(xs: ReadonlyArray<A>, n: number): Array<ReadonlyArray<A>> => {
  const out: Array<ReadonlyArray<A>> = []
  for (let i = 0; i < xs.length; i += n) out.push(xs.slice(i, i + n))
  return out
}

/** True when the schema exists and holds any table. */
export const schemaInUse = (sql: SqlClient.SqlClient, schema: string) =>
  Effect.map(
    sql<any>`SELECT (SELECT count(*) FROM pg_namespace WHERE nspname = ${schema})::int AS schemas,
                    (SELECT count(*) FROM pg_tables WHERE schemaname = ${schema})::int AS tables`,
    ([r]) => ({ exists: r.schemas > 0, tables: r.tables as number })
  )

/** Another registered project whose root equals, contains or lies inside `root`. */
export const conflictingProject = (sql: SqlClient.SqlClient, projectId: string, root: string) =>
  Effect.map(
    sql<any>`SELECT project_id::text AS id, irods_path FROM mesa_ducklake.projects WHERE project_id <> ${projectId}`,
    (rows) =>
      rows.find((r) =>
        r.irods_path === root || root.startsWith(`${r.irods_path}/`) || String(r.irods_path).startsWith(`${root}/`)
      ) as { id: string; irods_path: string } | undefined
  )

/**
 * Writes a plan as the project's catalog, in one transaction: the lake schema (replaced when `force`), the
 * registry row, every snapshot with its original id and time, and the derived state (table stats, current index).
 * Parquet files are never touched.
 */
export const writePlan = (
  catalog: CatalogService,
  plan: RebuildPlan,
  options: { readonly force?: boolean; readonly actor?: string } = {}
) =>
  catalog.withSql((sql) =>
    sql.withTransaction(Effect.gen(function*() {
      const schema = plan.metadataSchema
      yield* sql`LOCK TABLE mesa_ducklake.projects IN SHARE ROW EXCLUSIVE MODE`
      const other = yield* conflictingProject(sql, plan.projectId, plan.irodsPath)
      if (other !== undefined) {
        return yield* new CatalogNotEmpty({
          projectId: plan.projectId,
          schema,
          reason: "root-registered-to-another-project",
          detail: `${other.irods_path} is registered to project ${other.id}`
        })
      }
      const inUse = yield* schemaInUse(sql, schema)
      if (inUse.tables > 0 && options.force !== true) {
        return yield* new CatalogNotEmpty({ projectId: plan.projectId, schema, reason: "schema-exists" })
      }
      if (inUse.exists) yield* sql`DROP SCHEMA ${sql(schema)} CASCADE`
      const actor = options.actor ?? "mesa-ducklake rebuild"
      for (
        const [stmt, params] of createLakeStatements(schema, {
          dataPath: `${plan.ducklakePath}/`,
          createdBy: "mesa-ducklake 0.1.0 (rebuild)",
          projectId: plan.projectId,
          actor
        })
      ) yield* sql.unsafe(stmt, params as Array<any>)
      const s = sql(schema)
      const first = plan.snapshots[0]?.snapshotTime
      if (first !== undefined) {
        // The bootstrap snapshots (lake, table) must come before the first data snapshot in transaction time.
        yield* sql`UPDATE ${s}.ducklake_snapshot
                   SET snapshot_time = LEAST(snapshot_time, ${first}::timestamptz - (2 - snapshot_id) * interval '1 millisecond')
                   WHERE snapshot_id IN (0, 1)`
      }
      const [created] = yield* sql<any>`SELECT snapshot_time FROM ${s}.ducklake_snapshot WHERE snapshot_id = 0`
      yield* sql`
        INSERT INTO mesa_ducklake.projects (project_id, irods_path, irods_zone, ducklake_path, metadata_schema,
          created_at, created_by, last_snapshot_id)
        VALUES (${plan.projectId}, ${plan.irodsPath}, ${plan.irodsZone}, ${plan.ducklakePath}, ${schema},
          ${created.snapshot_time}, ${actor}, ${plan.lastSnapshotId})
        ON CONFLICT (project_id) DO UPDATE SET irods_path = EXCLUDED.irods_path, irods_zone = EXCLUDED.irods_zone,
          ducklake_path = EXCLUDED.ducklake_path, metadata_schema = EXCLUDED.metadata_schema,
          last_snapshot_id = GREATEST(mesa_ducklake.projects.last_snapshot_id, EXCLUDED.last_snapshot_id)`

      // Ids and counters as the original commits left them: data file ids and row ids are handed out in commit order.
      let rowId = 0
      let bytes = 0
      const snapshotRows: Array<Record<string, unknown>> = []
      const fileRows: Array<Record<string, unknown>> = []
      const statRows: Array<Record<string, unknown>> = []
      const changeRows: Array<Record<string, unknown>> = []
      const mesaRows: Array<Record<string, unknown>> = []
      // Files of compactions in use get their ids after the snapshots' own files.
      let nextFileId = plan.snapshots.filter((p) => p.coveredBy === undefined).length
      const compactionFileIds = new Map(plan.compactions.map((c) => [c.snapshotId, nextFileId++] as const))
      let fileCounter = 0
      const addFileStats = (fileId: number, stats: ReadonlyArray<ColumnStats>) =>
        statRows.push(...fileStatsRows(fileId, stats))
      for (const c of plan.compactions) {
        const fileId = compactionFileIds.get(c.snapshotId)!
        snapshotRows.push({
          snapshot_id: c.snapshotId,
          snapshot_time: c.snapshotTime,
          schema_version: 1,
          next_catalog_id: 2,
          next_file_id: nextFileId
        })
        fileRows.push({
          data_file_id: fileId,
          table_id: TABLE_ID,
          begin_snapshot: c.beginSnapshot,
          end_snapshot: null,
          file_order: null,
          path: c.fileName,
          path_is_relative: true,
          file_format: "parquet",
          record_count: c.recordCount,
          file_size_bytes: c.fileSizeBytes,
          footer_size: c.footerSize,
          // The merged file carries its rows' ids itself.
          row_id_start: null,
          partition_id: null,
          encryption_key: null,
          mapping_id: null,
          partial_max: c.partialMax
        })
        addFileStats(fileId, c.stats)
        changeRows.push({
          snapshot_id: c.snapshotId,
          changes_made: `merge_adjacent:${TABLE_ID}`,
          author: actor,
          commit_message: "mesa-ducklake: compacted files (rebuilt)",
          commit_extra_info: JSON.stringify({ tool: "mesa-ducklake", rebuilt: true })
        })
        bytes += c.fileSizeBytes
      }
      plan.snapshots.forEach((p) => {
        // A snapshot covered by a compaction has no file of its own: its rows are in the merged file.
        let dataFileId: number
        if (p.coveredBy !== undefined) dataFileId = compactionFileIds.get(p.coveredBy)!
        else {
          dataFileId = fileCounter++
          fileRows.push({
            data_file_id: dataFileId,
            table_id: TABLE_ID,
            begin_snapshot: p.snapshotId,
            end_snapshot: null,
            file_order: null,
            path: p.fileName,
            path_is_relative: true,
            file_format: "parquet",
            record_count: p.recordCount,
            file_size_bytes: p.fileSizeBytes,
            footer_size: p.footerSize,
            row_id_start: rowId,
            partition_id: null,
            encryption_key: null,
            mapping_id: null,
            partial_max: null
          })
          addFileStats(dataFileId, p.stats)
          bytes += p.fileSizeBytes
        }
        snapshotRows.push({
          snapshot_id: p.snapshotId,
          snapshot_time: p.snapshotTime,
          schema_version: 1,
          next_catalog_id: 2,
          next_file_id: fileCounter
        })
        changeRows.push({
          snapshot_id: p.snapshotId,
          changes_made: `inserted_into_table:${TABLE_ID}`,
          author: p.actor,
          commit_message: p.note,
          commit_extra_info: JSON.stringify({ tool: "mesa-ducklake", changes: p.recordCount })
        })
        mesaRows.push({
          snapshot_id: p.snapshotId,
          data_file_id: dataFileId,
          file_path: p.fileName,
          checksum: p.checksum,
          change_count: p.recordCount,
          actor: p.actor,
          note: p.note,
          min_ts: p.minTs,
          max_ts: p.maxTs,
          idempotency_key: p.idempotencyKey,
          content_hash: p.contentHash,
          marker_written: p.confirmed
        })
        rowId += p.recordCount
      })
      const insert = (table: string, rows: ReadonlyArray<Record<string, unknown>>) =>
        Effect.forEach(chunk(rows, 500), (part) => sql`INSERT INTO ${s}.${sql(table)} ${sql.insert(part as any)}`, {
          discard: true
        })
      // The latest snapshot hands out the next file id: past every file written here, compactions' included.
      const latestRow = snapshotRows.reduce<Record<string, unknown> | undefined>(
        (m, r) => (m === undefined || (r.snapshot_id as number) > (m.snapshot_id as number) ? r : m),
        undefined
      )
      if (latestRow !== undefined) latestRow.next_file_id = nextFileId
      yield* insert("ducklake_snapshot", snapshotRows)
      yield* insert("ducklake_data_file", fileRows)
      yield* insert("ducklake_file_column_stats", statRows)
      yield* insert("ducklake_snapshot_changes", changeRows)
      yield* insert("mesa_snapshot", mesaRows)
      // The chain as scanLake rebuilt it; a compaction whose file is not in this catalog keeps its record (id -1).
      const fileIdOf = new Map<number, number>(mesaRows.map((r) => [r.snapshot_id as number, r.data_file_id as number]))
      for (const [snapshotId, fileId] of compactionFileIds) fileIdOf.set(snapshotId, fileId)
      yield* insert("mesa_chain", plan.chain.map((r) => chainRow(r, fileIdOf.get(r.snapshotId) ?? -1)))
      yield* insert(
        "mesa_current_avus",
        plan.current.map(currentAvuRow)
      )
      // Renames travel in their snapshot file's metadata: the lineage that lets a path's history follow its object.
      yield* insert(
        "mesa_renames",
        plan.snapshots.flatMap((p) =>
          (p.renames === undefined ? [] : (JSON.parse(p.renames) as Array<any>)).map((r, seq) => ({
            snapshot_id: p.snapshotId,
            seq,
            ts: new Date(r.ts),
            from_path: r.fromPath,
            to_path: r.toPath,
            target_type: r.targetType,
            object_id: r.objectId,
            actor: r.actor
          }))
        )
      )
      yield* sql`UPDATE ${s}.ducklake_table_stats SET record_count = ${rowId}, next_row_id = ${rowId},
                   file_size_bytes = ${bytes} WHERE table_id = ${TABLE_ID}`
      // Table-level column statistics over all live files, merged with a typed order (as Catalog.commitSnapshot does).
      if (plan.snapshots.length > 0) {
        yield* sql`
          WITH keyed AS (
            SELECT f.column_id, f.null_count > 0 AS contains_null, f.min_value, f.max_value, c.column_type AS t
            FROM ${s}.ducklake_file_column_stats f
            JOIN ${s}.ducklake_column c ON c.table_id = f.table_id AND c.column_id = f.column_id AND c.end_snapshot IS NULL
            WHERE f.table_id = ${TABLE_ID}
          )
          INSERT INTO ${s}.ducklake_table_column_stats
          SELECT ${TABLE_ID}, column_id, bool_or(contains_null), NULL,
            (array_agg(min_value ORDER BY CASE WHEN t LIKE 'int%' THEN min_value::numeric END,
                                          CASE WHEN t = 'timestamptz' THEN min_value::timestamptz END,
                                          min_value COLLATE "C") FILTER (WHERE min_value IS NOT NULL))[1],
            (array_agg(max_value ORDER BY CASE WHEN t LIKE 'int%' THEN max_value::numeric END DESC NULLS LAST,
                                          CASE WHEN t = 'timestamptz' THEN max_value::timestamptz END DESC NULLS LAST,
                                          max_value COLLATE "C" DESC) FILTER (WHERE max_value IS NOT NULL))[1],
            NULL
          FROM keyed GROUP BY column_id`
      }
      return { snapshots: plan.snapshots.length, rows: rowId, bytes }
    }))
  )
