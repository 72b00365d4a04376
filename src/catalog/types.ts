/**
 * The shapes the catalog hands out and takes in: write-ahead rows, reservations, data files and their statistics,
 * file filters, commit records, renames, current-state rows, and the failure union of every catalog call. Defined
 * here, below every statement module, and re-exported by `src/Catalog.ts` (the public module).
 */
import type { CatalogError, CatalogSchemaMismatch, CatalogUnavailable } from "../core/errors.js"
import type { TargetType } from "../core/domain.js"

/** What any catalog call may fail with: the catalog is down or slow, a statement failed, or the schema is not ours. */
export type Failure = CatalogUnavailable | CatalogError | CatalogSchemaMismatch

/** Column statistics of a data file, as `ducklake_file_column_stats` holds them. */
export interface ColumnStats {
  readonly columnId: number
  readonly columnSizeBytes: number | null
  readonly valueCount: number
  readonly nullCount: number
  readonly min: string | null
  readonly max: string | null
}

export interface DataFileInfo {
  /** File name relative to the table's path (`main/avu_changes/`). */
  readonly fileName: string
  readonly recordCount: number
  readonly fileSizeBytes: number
  readonly footerSize: number
  readonly checksum: string
  readonly stats: ReadonlyArray<ColumnStats>
}

export interface PendingWrite {
  readonly projectId: string
  readonly snapshotId: number
  readonly state: "pending" | "pushed" | "committed" | "failed"
  readonly localFile: string
  readonly remotePath: string
  readonly fileName: string
  readonly clock: Date
  readonly actor: string
  readonly note: string | null
  readonly idempotencyKey: string | null
  readonly contentHash: string
  readonly checksum: string | null
  readonly attempts: number
  readonly host: string
}

/** A committed data file that may hold rows relevant to a read. */
export interface LakeFile {
  readonly dataFileId: number
  /** Path relative to the project's ducklake collection (`main/avu_changes/…`). */
  readonly relativePath: string
  readonly beginSnapshot: number
  readonly fileSizeBytes: number
  /**
   * The stored file's checksum as the chain records it (iRODS form); "" when the catalog has none (a compacted file
   * of a lake upgraded from layout 1).
   */
  readonly checksum: string
}

export interface FileFilter {
  readonly irodsPath?: string
  /** Only files with changes whose valid time is at or before this. */
  readonly validAtOrBefore?: Date
  readonly validFrom?: Date
  /** Transaction-time bound: only files of snapshots up to and including this id. */
  readonly maxSnapshot?: number
  /** Only files of snapshots after this id. */
  readonly afterSnapshot?: number
  readonly attribute?: string
}

export interface IdempotentHit {
  readonly snapshotId: number
  readonly contentHash: string
  readonly fileName: string
  readonly changeCount: number
}

/**
 * What a commit builds on: the latest snapshot and the table's counters, read under the writer lock. The write path
 * reads it with its reservation (`reserveSnapshot`), so the commit itself is one round trip; the commit statement
 * checks it still holds (no other DuckLake writer, the extension included, committed since).
 */
export interface CommitBasis {
  readonly id: string
  readonly snapshot_time: Date | string
  /** schema_version, next_catalog_id, next_file_id, the table's next_row_id (as text). */
  readonly sv: string
  readonly nc: string
  readonly nf: string
  readonly r: string
  /** Whether the table has column statistics yet (lakes written before we kept them have none). */
  readonly have_stats: boolean
  readonly prev_hash: string | null
  /** The catalog's clock when the basis was read. */
  readonly now_ms: Date | string
}

/**
 * A reserved snapshot: the write-ahead row, the latest snapshot id at reservation (under the writer lock, so no
 * one commits in between) and how far the current-state index reaches when it lags (null: it is complete).
 */
export interface Reservation extends PendingWrite {
  readonly previousSnapshot: number
  readonly indexThrough: number | null
  /** What the commit builds on, read with the reservation under the writer lock. */
  readonly basis: CommitBasis
}

/**
 * What a commit marker (`<ducklake>/_mesa_log/snapshot_<id>.json`) records: written after the commit, it is how a
 * rebuild from storage alone tells committed snapshot files from orphans, and recovers their transaction times.
 */
export interface CommitRecord {
  readonly format: "mesa-ducklake-commit/1"
  readonly projectId: string
  readonly snapshotId: number
  readonly snapshotTime: string
  readonly dataFileId: number
  readonly fileName: string
  readonly checksum: string
  readonly recordCount: number
  readonly actor: string
  readonly note: string | null
  readonly idempotencyKey: string | null
  readonly contentHash: string
  /** The chain record's remaining fields (src/catalog/chain.ts): the marker carries the whole record. */
  readonly fileSizeBytes: number
  readonly prevHash: string
  readonly recordHash: string
}

export interface LiveFile {
  readonly dataFileId: number
  /** File name relative to the table path. */
  readonly fileName: string
  readonly beginSnapshot: number
  /** Highest snapshot whose rows the file holds (its begin snapshot, unless compacted). */
  readonly lastSnapshot: number
  readonly recordCount: number
  readonly fileSizeBytes: number
  readonly rowIdStart: number | null
  /** As `LakeFile.checksum`. */
  readonly checksum: string
}

export interface Rename {
  readonly snapshotId: number
  readonly ts: Date
  readonly fromPath: string
  readonly toPath: string
  readonly targetType: string
  readonly objectId: number | null
  readonly actor: string
}

export interface CurrentRow {
  readonly irodsPath: string
  readonly attribute: string
  readonly value: string
  readonly unit: string
  readonly op: "add" | "delete"
  readonly targetType: TargetType
  readonly objectId: number | null
  /** The change's order: valid time (ms), snapshot, position. */
  readonly tsMs: number
  readonly snapshotId: number
  readonly changeSeq: number
}

/**
 * What a read of the current-state index saw of the project, in the same statement: the latest committed snapshot
 * and the index's mark (null: the index holds every committed snapshot). Rows read with a view are the rows under
 * the writer lock too when the reservation, made under it, finds the same latest snapshot and no mark: every change
 * to the index comes with a new snapshot or moves the mark.
 */
export interface IndexView {
  readonly latest: number
  readonly through: number | null
}

/** What a reservation records of the write it starts. */
export interface ReserveInput {
  /** Random part of the file name (`snapshot_<id>_<suffix>.parquet`), so a retried id never reuses a name. */
  readonly fileSuffix: string
  /** Local directory the Parquet file is written to before it is pushed. */
  readonly localDir: string
  readonly actor: string
  readonly note: string | null
  readonly idempotencyKey: string | null
  readonly contentHash: string
  /** The clock a plan chose (`planReservation`); without one, the catalog's clock at the reservation. */
  readonly clock?: Date
}

/**
 * What a reservation made now would hand out (`Catalog.planReservation`): under the writer lock nothing else
 * reserves, so the reservation made next with this clock gets this id — the writer can build its file meanwhile.
 */
export interface ReservationPlan {
  readonly snapshotId: number
  readonly clock: Date
  readonly indexThrough: number | null
}
