/**
 * What a rebuilt catalog holds, and the decisions that make it: the plan's types, what storage has to show for a file
 * to count as committed, which project the lake belongs to, when a compaction's merged file stands in for snapshots
 * whose own files are gone, each snapshot's transaction time, and the hash chain as rebuilt (`rebuildChain`).
 *
 * Everything here is decided over what `scan.ts` read from storage; nothing here reads or writes anything.
 */
import { Effect } from "effect"
import { type ColumnStats, type CommitRecord, latestPerTriple } from "../../catalog/Catalog.js"
import { type ChainRecord, GENESIS_HASH, isoMillis, recordHash } from "../../catalog/chain.js"
import type { ChangeRow } from "../../core/domain.js"
import type { WrittenFile } from "../../duckdb/DuckDb.js"
import { formatIrodsChecksum, parseIrodsChecksum } from "../../storage/LakeStorage.js"
import { MARKER_DIR, snapshotMarkerName } from "../../core/layout.js"
import { RebuildError } from "../errors.js"

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

/** The lake schema name of a project id (as registration makes it). */
export const schemaOf = (projectId: string) => `lake_${projectId.replace(/-/g, "")}`

// ---------------------------------------------------------------------------------------------------------------
// What storage holds, as the scan read it

/** A compaction marker (`_mesa_log/compaction_<id>.json`). */
export interface CompactionRecord {
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

export const isCompactionRecord = (x: any): x is CompactionRecord =>
  x !== null && typeof x === "object" && x.format === "mesa-ducklake-compaction/1" &&
  Number.isSafeInteger(x.snapshotId) && typeof x.snapshotTime === "string" && typeof x.fileName === "string" &&
  typeof x.checksum === "string" && Number.isSafeInteger(x.beginSnapshot) && Number.isSafeInteger(x.partialMax) &&
  Array.isArray(x.replaces)

export const isCommitRecord = (x: any): x is CommitRecord =>
  x !== null && typeof x === "object" && x.format === "mesa-ducklake-commit/1" && typeof x.projectId === "string" &&
  Number.isSafeInteger(x.snapshotId) && typeof x.snapshotTime === "string" && !Number.isNaN(Date.parse(x.snapshotTime)) &&
  typeof x.fileName === "string" && typeof x.checksum === "string" && Number.isSafeInteger(x.recordCount)

/** One readable per-snapshot Parquet file: its own description (metadata, stats, rows) and its stored bytes' digest. */
export interface FileScan {
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

/** A compaction's merged file, read and checked, whose rows stand in for the snapshots it covers. */
export interface UsedCompaction {
  readonly record: CompactionRecord
  readonly rows: ReadonlyArray<ChangeRow>
  readonly meta: Readonly<Record<string, string>>
  readonly described: WrittenFile
}

/** A per-snapshot file taken into the catalog, with its marker (none when unconfirmed) and the checksum to record. */
export interface Chosen {
  readonly scan: FileScan
  readonly marker: CommitRecord | undefined
  readonly checksum: string
}

// ---------------------------------------------------------------------------------------------------------------
// Decisions

/**
 * The project: the one the markers name (they are written only after a commit), else the files'. Markers and files
 * of any other project, and files whose name names another snapshot than their metadata, are reported and left out.
 */
export const chooseProject = (
  root: string,
  markers: ReadonlyMap<number, CommitRecord>,
  scans: ReadonlyArray<FileScan>,
  problems: Array<RebuildProblem>
): Effect.Effect<
  { readonly projectId: string; readonly markers: Map<number, CommitRecord>; readonly ours: Array<FileScan> },
  RebuildError
> =>
  Effect.gen(function*() {
    const votes = new Map<string, number>()
    for (const m of markers.values()) votes.set(m.projectId, (votes.get(m.projectId) ?? 0) + 1_000_000)
    for (const s of scans) votes.set(s.projectId, (votes.get(s.projectId) ?? 0) + 1)
    const projectId = [...votes.entries()].sort((a, b) => b[1] - a[1])[0]?.[0]
    if (projectId === undefined) {
      return yield* new RebuildError({ root, reason: "no commit marker and no readable snapshot file in storage" })
    }
    const kept = new Map<number, CommitRecord>()
    for (const [id, m] of markers) {
      if (m.projectId !== projectId) {
        problems.push({ kind: "bad-marker", file: `${MARKER_DIR}/${snapshotMarkerName(id)}`, reason: `of project ${m.projectId}` })
      } else kept.set(id, m)
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
    return { projectId, markers: kept, ours }
  })

/**
 * Per snapshot id, in order: the file its marker names, when the stored bytes match the marker's checksum and record
 * count. Other files claiming the id are duplicates; a marker-less file is reported (and taken in only with
 * `includeUnconfirmed`, when it is the only one); a marker whose file is gone is returned in `missingFiles`.
 */
export const matchMarkers = (
  markers: ReadonlyMap<number, CommitRecord>,
  ours: ReadonlyArray<FileScan>,
  includeUnconfirmed: boolean,
  problems: Array<RebuildProblem>
) =>
  Effect.gen(function*() {
    const missingFiles = new Map<number, CommitRecord>()
    const bySnapshot = new Map<number, Array<FileScan>>()
    for (const s of ours) bySnapshot.set(s.snapshotId, [...(bySnapshot.get(s.snapshotId) ?? []), s])
    const chosen: Array<Chosen> = []
    for (const id of [...new Set([...bySnapshot.keys(), ...markers.keys()])].sort((a, b) => a - b)) {
      const files = bySnapshot.get(id) ?? []
      const marker = markers.get(id)
      if (marker === undefined) {
        if (files.length > 1) {
          for (const f of files) problems.push({ kind: "duplicate-snapshot", file: f.name, snapshotId: id })
        } else {
          problems.push({ kind: "no-marker", file: files[0]!.name, snapshotId: id })
          if (includeUnconfirmed) {
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
    return { chosen, missingFiles }
  })

/**
 * The compactions whose merged files must be read: snapshots whose own file is gone (deleted after a compaction's
 * grace period) are rebuilt from the merged file, as the live catalog holds them. A compaction is used only when
 * needed and then for its whole range (never both its file and the originals); the outermost one wins. In order of
 * their first snapshot.
 */
export const neededCompactions = (
  compactionMarkers: ReadonlyMap<number, CompactionRecord>,
  compactedFiles: ReadonlyArray<string>,
  missingFiles: ReadonlyMap<number, CommitRecord>
): Array<CompactionRecord> => {
  const usable = [...compactionMarkers.values()].filter((c) => compactedFiles.some((name) => name === c.fileName))
  const needed = usable.filter((c) => [...missingFiles.keys()].some((id) => id >= c.beginSnapshot && id <= c.partialMax))
  const replaced = new Set(needed.flatMap((c) => c.replaces.map((r) => r.fileName)))
  return needed.filter((x) => !replaced.has(x.fileName)).sort((a, b) => a.beginSnapshot - b.beginSnapshot)
}

/**
 * Snapshots inside a used compaction's range come from the merged file (their own files, if any are left, are
 * dropped from `chosen`). Markers whose file is gone and that no compaction covers, and compacted files not used,
 * are reported.
 */
export const applyCoverage = (
  markers: ReadonlyMap<number, CommitRecord>,
  used: ReadonlyArray<UsedCompaction>,
  chosen: ReadonlyArray<Chosen>,
  missingFiles: ReadonlyMap<number, CommitRecord>,
  compactedFiles: ReadonlyArray<string>,
  problems: Array<RebuildProblem>
) => {
  const coveredBy = new Map<number, UsedCompaction>()
  for (const u of used) {
    for (const id of markers.keys()) if (id >= u.record.beginSnapshot && id <= u.record.partialMax) coveredBy.set(id, u)
  }
  const uncovered = chosen.filter((c) => !coveredBy.has(c.scan.snapshotId))
  for (const [id, marker] of missingFiles) {
    if (!coveredBy.has(id)) problems.push({ kind: "marker-without-file", snapshotId: id, file: marker.fileName })
  }
  for (const name of compactedFiles) {
    if (!used.some((u) => u.record.fileName === name)) problems.push({ kind: "compaction-not-used", file: name })
  }
  return { coveredBy, chosen: uncovered }
}

/**
 * The planned snapshots, in id order: the chosen files', with the markers' transaction times (exact) or, for an
 * unconfirmed file, its own clock, kept strictly increasing; then those a compaction's merged file covers.
 */
export const plannedSnapshots = (
  chosen: ReadonlyArray<Chosen>,
  coveredBy: ReadonlyMap<number, UsedCompaction>,
  markers: ReadonlyMap<number, CommitRecord>,
  problems: Array<RebuildProblem>
): Array<PlannedSnapshot> => {
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
  for (const [id, u] of coveredBy) snapshots.push(coveredSnapshot(id, markers.get(id)!, u))
  return snapshots.sort((a, b) => a.snapshotId - b.snapshotId)
}

/** A snapshot whose own file is gone, from its marker and its rows (and renames) in the compaction's merged file. */
const coveredSnapshot = (id: number, marker: CommitRecord, u: UsedCompaction): PlannedSnapshot => {
  const rows = u.rows.filter((r) => r.snapshotId === id)
  const renames = (() => {
    const all = u.meta.renames === undefined ? [] : (JSON.parse(u.meta.renames) as Array<{ snapshotId: number }>)
    const mine = all.filter((r) => r.snapshotId === id)
    return mine.length === 0 ? undefined : JSON.stringify(mine)
  })()
  return {
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
  }
}

export const plannedCompactions = (used: ReadonlyArray<UsedCompaction>): Array<PlannedCompaction> =>
  used.map((u) => ({
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

/** The `mesa_current_avus` rows: the latest change per triple over the chosen files and the merged files used. */
export const currentState = (chosen: ReadonlyArray<Chosen>, used: ReadonlyArray<UsedCompaction>) =>
  latestPerTriple([...chosen.flatMap((c) => c.scan.latest), ...used.flatMap((u) => u.rows)])

/**
 * The chain records of a rebuilt catalog, from the planned snapshots (as the rebuilt catalog will hold them) and the
 * compaction markers, each linked to the one before. A marker's own hashes are checked against them: a mismatch or a
 * gap is reported, and a marker's link is followed past a gap so the records after it keep their original hashes.
 */
export const rebuildChain = (
  projectId: string,
  snapshots: ReadonlyArray<PlannedSnapshot>,
  markers: ReadonlyMap<number, CommitRecord>,
  compactions: ReadonlyMap<number, CompactionRecord>,
  problems: Array<RebuildProblem>
): Array<ChainRecord> => {
  const entries = [
    ...snapshots.map((p) => dataEntry(projectId, p, markers.get(p.snapshotId))),
    ...[...compactions.values()].map((c) => compactionEntry(projectId, c))
  ].sort((a, b) => a.record.snapshotId - b.record.snapshotId)
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

/** A chain record before linking, with the hashes its marker claims (if any). */
interface ChainEntry {
  readonly record: Omit<ChainRecord, "prevHash">
  readonly prevHash?: string
  readonly recordHash?: string
}

const dataEntry = (projectId: string, p: PlannedSnapshot, m: CommitRecord | undefined): ChainEntry => ({
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

const compactionEntry = (projectId: string, c: CompactionRecord): ChainEntry => ({
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
