/**
 * Reads of the project's committed history in transaction time: the snapshots (listed, looked up by time, checked,
 * the latest), the data snapshots after a point (what an index catch-up reads), and the renames recorded with them
 * (the lineage a path's history follows).
 */
import { Effect } from "effect"
import type { Project, Snapshot } from "../core/domain.js"
import { SnapshotNotFound } from "../core/errors.js"
import type { Conn } from "./connection.js"
import { TABLE_NAME } from "./ducklakeSchema.js"
import type { Failure, Rename } from "./types.js"

/** Committed data snapshots, newest first, with their author, note, change count, file and parent. */
export const listSnapshots = (
  conn: Conn,
  project: Project,
  { limit }: { readonly limit: number }
): Effect.Effect<ReadonlyArray<Snapshot>, Failure> =>
  conn.withSql((sql) => {
    const s = sql(project.metadataSchema)
    return Effect.map(
      // The file that holds the snapshot's rows now: its own, or the compacted file that replaced it.
      sql<any>`SELECT s.snapshot_id::text AS id, s.snapshot_time, m.actor, m.note, m.change_count,
                      COALESCE((SELECT f.path FROM ${s}.ducklake_data_file f
                                WHERE f.end_snapshot IS NULL AND f.begin_snapshot <= s.snapshot_id
                                  AND COALESCE(f.partial_max, f.begin_snapshot) >= s.snapshot_id
                                ORDER BY f.data_file_id DESC LIMIT 1), m.file_path) AS file_path,
                      (SELECT max(p.snapshot_id)::text FROM ${s}.mesa_snapshot p
                       WHERE p.snapshot_id < s.snapshot_id) AS parent
               FROM ${s}.ducklake_snapshot s
               JOIN ${s}.mesa_snapshot m ON m.snapshot_id = s.snapshot_id
               ORDER BY s.snapshot_id DESC LIMIT ${limit}`,
      (rows) =>
        rows.map((r) => ({
          snapshotId: Number(r.id),
          projectId: project.projectId,
          ts: new Date(r.snapshot_time),
          actor: r.actor,
          note: r.note,
          changeCount: r.change_count,
          dataFile: `main/${TABLE_NAME}/${r.file_path}`,
          parentSnapshot: r.parent === null ? null : Number(r.parent),
          state: "committed" as const
        }))
    )
  }, "listSnapshots")

/** Latest committed snapshot id at or before a transaction time (undefined before the first). */
export const snapshotAt = (conn: Conn, project: Project, at: Date): Effect.Effect<number | undefined, Failure> =>
  conn.withSql((sql) =>
    Effect.map(
      sql<any>`SELECT max(snapshot_id)::text AS id FROM ${sql(project.metadataSchema)}.ducklake_snapshot
               WHERE snapshot_time <= ${at}`,
      (rows) => (rows[0]?.id === null || rows[0]?.id === undefined ? undefined : Number(rows[0].id))
    ), "snapshotAt")

/** Fails with `SnapshotNotFound` unless the snapshot id is committed. */
export const requireSnapshot = (
  conn: Conn,
  project: Project,
  snapshotId: number
): Effect.Effect<void, Failure | SnapshotNotFound> =>
  conn.withSql((sql) =>
    Effect.flatMap(
      sql<any>`SELECT 1 FROM ${sql(project.metadataSchema)}.ducklake_snapshot WHERE snapshot_id = ${snapshotId}`,
      (rows) =>
        rows.length > 0
          ? Effect.void
          : Effect.fail(new SnapshotNotFound({ projectId: project.projectId, snapshotId }))
    ), "requireSnapshot")

/** The latest committed snapshot id (data or compaction; 0 in an empty lake). */
export const latestSnapshot = (conn: Conn, project: Project): Effect.Effect<number, Failure> =>
  conn.withSql((sql) =>
    Effect.map(
      sql<any>`SELECT max(snapshot_id)::text AS id FROM ${sql(project.metadataSchema)}.ducklake_snapshot`,
      (rows) => Number(rows[0]?.id ?? 0)
    ), "latestSnapshot")

/** Committed data snapshots after `after` with their change counts, oldest first (what a catch-up reads). */
export const snapshotsAfter = (
  conn: Conn,
  project: Project,
  after: number
): Effect.Effect<ReadonlyArray<{ readonly snapshotId: number; readonly changeCount: number }>, Failure> =>
  conn.withSql((sql) =>
    Effect.map(
      sql<any>`SELECT snapshot_id::text AS id, change_count FROM ${sql(project.metadataSchema)}.mesa_snapshot
               WHERE snapshot_id > ${after} ORDER BY snapshot_id`,
      (rows) => rows.map((r) => ({ snapshotId: Number(r.id), changeCount: Number(r.change_count) }))
    ), "snapshotsAfter")

/** Renames recorded in the project (up to `maxSnapshot`), newest first (by valid time, then snapshot). */
export const renames = (conn: Conn, project: Project, maxSnapshot?: number): Effect.Effect<ReadonlyArray<Rename>, Failure> =>
  conn.withSql((sql) =>
    Effect.map(
      sql<any>`SELECT snapshot_id::text AS id, ts, from_path, to_path, target_type, object_id::text AS oid, actor
               FROM ${sql(project.metadataSchema)}.mesa_renames
               WHERE ${maxSnapshot === undefined ? sql`true` : sql`snapshot_id <= ${maxSnapshot}`}
               ORDER BY ts DESC, snapshot_id DESC, seq DESC`,
      (rows) =>
        rows.map((r) => ({
          snapshotId: Number(r.id),
          ts: new Date(r.ts),
          fromPath: r.from_path,
          toPath: r.to_path,
          targetType: r.target_type,
          objectId: r.oid === null ? null : Number(r.oid),
          actor: r.actor
        }))
    ), "renames")
