/**
 * The layout of a project's lake in storage, shared by every part that reads or writes it (client, rebuild, backup,
 * verify). Below everything else: it imports nothing of ours.
 *
 * ```
 * <project root>/.mesa/ducklake/                 the lake (DuckLake DATA_PATH)
 *   main/avu_changes/snapshot_<id>_<hex>.parquet one file per snapshot
 *   main/avu_changes/compacted_<first>_<last>_<hex>.parquet
 *                                                 (main/avu_changes holds the live files only: read directly,
 *                                                 it is the whole history, each change once)
 *   replaced/avu_changes/<file>                   files a compaction replaced, until deleted after the grace period
 *   _mesa_log/snapshot_<id>.json                  commit markers (what a rebuild from storage trusts)
 *   _mesa_log/compaction_<id>.json
 *   backups/mesa-ducklake-<project>-<UTC>.dump    catalog dumps (+ .json manifest)
 * ```
 */

/** The lake collection below a project root. */
export const LAKE_SUBPATH = ".mesa/ducklake"

/** Commit markers, inside the lake collection. */
export const MARKER_DIR = "_mesa_log"

/**
 * Files a compaction replaced, inside the lake collection: moved here from `main/` right after the compaction
 * commits (so `main/` stays readable directly as the history), deleted after the grace period.
 */
export const REPLACED_DIR = "replaced"

/** Catalog backups, inside the lake collection. */
export const BACKUP_DIR = "backups"

/** The lake collection of a project root. */
export const lakePathOf = (root: string) => `${root}/${LAKE_SUBPATH}`

/** Ids in file and marker names are zero-padded to ten digits, so names sort in snapshot order. */
export const paddedId = (id: number) => String(id).padStart(10, "0")

export const snapshotMarkerName = (snapshotId: number) => `snapshot_${paddedId(snapshotId)}.json`
export const compactionMarkerName = (snapshotId: number) => `compaction_${paddedId(snapshotId)}.json`
