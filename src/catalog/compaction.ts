/**
 * Compaction's catalog side: replacing adjacent data files by one (its own snapshot and chain record, the sources
 * scheduled for deletion), and the deletion schedule the grace period is counted from.
 */
import { Effect } from "effect"
import type { Project } from "../core/domain.js"
import { CatalogError } from "../core/errors.js"
import { GENESIS_HASH, isoMillis } from "./chain.js"
import { chainHead, chainRow } from "./chainTable.js"
import type { Conn } from "./connection.js"
import { TABLE_ID, TABLE_NAME } from "./ducklakeSchema.js"
import { fileStatsRows } from "./files.js"
import type { DataFileInfo, Failure, LiveFile } from "./types.js"

/** The failure of a compaction commit one of whose sources another compaction replaced first. */
export const SOURCE_GONE = "a source file is no longer live"

/** What a committed compaction is: its snapshot, the compacted file's catalog id, and its chain record's link. */
export interface CompactionCommit {
  readonly snapshotId: number
  readonly snapshotTime: Date
  readonly dataFileId: number
  readonly prevHash: string
  readonly recordHash: string
}

/**
 * Replaces adjacent files by one compacted file, as DuckLake's merge_adjacent_files does: the new file begins at
 * the first source's snapshot and records the last in `partial_max`; the sources leave the catalog and are
 * scheduled for deletion. Its own snapshot carries `merge_adjacent`. Fails if a source is no longer live.
 */
export const commitCompaction = (
  conn: Conn,
  project: Project,
  input: {
    readonly sources: ReadonlyArray<LiveFile>
    readonly file: DataFileInfo
    readonly actor: string
  }
): Effect.Effect<CompactionCommit, Failure> =>
  conn.withSql((sql) =>
    sql.withTransaction(Effect.gen(function*() {
      const s = sql(project.metadataSchema)
      yield* sql`LOCK TABLE ${s}.ducklake_snapshot IN SHARE ROW EXCLUSIVE MODE`
      const ids = input.sources.map((f) => f.dataFileId)
      const [live] = yield* sql<any>`SELECT count(*)::int AS n FROM ${s}.ducklake_data_file
                                      WHERE data_file_id = ANY(${ids}::int8[]) AND end_snapshot IS NULL`
      if (live.n !== ids.length) {
        return yield* Effect.fail(
          new CatalogError({ operation: "commitCompaction", cause: new Error(SOURCE_GONE) })
        )
      }
      const [prev] = yield* sql<any>`
        SELECT snapshot_id::text AS id, snapshot_time, schema_version::text AS sv, next_catalog_id::text AS nc,
               next_file_id::text AS nf
        FROM ${s}.ducklake_snapshot ORDER BY snapshot_id DESC LIMIT 1`
      // The compaction's snapshot id comes after every id handed out, committed or not.
      const [{ id: reserved }] = (yield* sql<any>`
        UPDATE mesa_ducklake.projects SET last_snapshot_id = GREATEST(last_snapshot_id, ${prev.id}::int8) + 1
        WHERE project_id = ${project.projectId} RETURNING last_snapshot_id::text AS id`) as any
      const snapshotId = Number(reserved)
      const fileId = Number(prev.nf)
      const [{ t }] = (yield* sql<any>`
        INSERT INTO ${s}.ducklake_snapshot
        VALUES (${snapshotId}, GREATEST(date_trunc('milliseconds', clock_timestamp()),
                  ${prev.snapshot_time}::timestamptz + interval '1 millisecond'),
                ${prev.sv}::int8, ${prev.nc}::int8, ${fileId + 1})
        RETURNING snapshot_time AS t`) as any
      const begin = Math.min(...input.sources.map((f) => f.beginSnapshot))
      const last = Math.max(...input.sources.map((f) => f.lastSnapshot))
      const [head] = yield* sql<any>`SELECT ${chainHead(sql, project.metadataSchema)} AS h`
      const chain = chainRow({
        projectId: project.projectId,
        snapshotId,
        kind: "compaction",
        snapshotTime: isoMillis(new Date(t)),
        fileName: input.file.fileName,
        checksum: input.file.checksum,
        fileSizeBytes: input.file.fileSizeBytes,
        recordCount: input.file.recordCount,
        actor: input.actor,
        note: null,
        idempotencyKey: null,
        contentHash: null,
        minTs: null,
        maxTs: null,
        sources: input.sources.map((f) => f.fileName),
        prevHash: head?.h ?? GENESIS_HASH
      }, fileId)
      yield* sql`INSERT INTO ${s}.mesa_chain ${sql.insert(chain)}`
      // Rows are re-sorted (by path) in the new file, so it carries each row's id itself: row_id_start is NULL.
      yield* sql`
        INSERT INTO ${s}.ducklake_data_file VALUES (${fileId}, ${TABLE_ID}, ${begin}, NULL, NULL,
          ${input.file.fileName}, true, 'parquet', ${input.file.recordCount}, ${input.file.fileSizeBytes},
          ${input.file.footerSize}, NULL, NULL, NULL, NULL, ${last})`
      yield* sql`INSERT INTO ${s}.ducklake_file_column_stats ${
        sql.insert(fileStatsRows(fileId, input.file.stats))
      }`
      yield* sql`INSERT INTO ${s}.ducklake_files_scheduled_for_deletion
                 SELECT data_file_id, ${`main/${TABLE_NAME}/`} || path, true, now()
                 FROM ${s}.ducklake_data_file WHERE data_file_id = ANY(${ids}::int8[])`
      yield* sql`DELETE FROM ${s}.ducklake_file_column_stats WHERE data_file_id = ANY(${ids}::int8[])`
      yield* sql`DELETE FROM ${s}.ducklake_data_file WHERE data_file_id = ANY(${ids}::int8[])`
      const removedBytes = input.sources.reduce((n, f) => n + f.fileSizeBytes, 0)
      yield* sql`UPDATE ${s}.ducklake_table_stats
                 SET file_size_bytes = file_size_bytes - ${removedBytes} + ${input.file.fileSizeBytes}
                 WHERE table_id = ${TABLE_ID}`
      yield* sql`
        INSERT INTO ${s}.ducklake_snapshot_changes VALUES (${snapshotId}, ${`merge_adjacent:${TABLE_ID}`},
          ${input.actor}, ${`mesa-ducklake: compacted ${ids.length} files`},
          ${JSON.stringify({ tool: "mesa-ducklake", compacted: ids.length })})`
      return {
        snapshotId,
        snapshotTime: new Date(t),
        dataFileId: fileId,
        prevHash: chain.prev_hash,
        recordHash: chain.record_hash
      }
    })), "commitCompaction")

/** Files scheduled for deletion before `before` (paths relative to the ducklake collection). */
export const scheduledForDeletion = (
  conn: Conn,
  project: Project,
  before: Date
): Effect.Effect<ReadonlyArray<{ readonly dataFileId: number; readonly relativePath: string }>, Failure> =>
  conn.withSql((sql) =>
    Effect.map(
      sql<any>`SELECT data_file_id::text AS id, path
               FROM ${sql(project.metadataSchema)}.ducklake_files_scheduled_for_deletion
               WHERE schedule_start < ${before} ORDER BY data_file_id`,
      (rows) => rows.map((r) => ({ dataFileId: Number(r.id), relativePath: r.path as string }))
    ), "scheduledForDeletion")

/** Takes deleted files off the schedule. */
export const forgetScheduled = (
  conn: Conn,
  project: Project,
  ids: ReadonlyArray<number>
): Effect.Effect<void, Failure> =>
  ids.length === 0 ? Effect.void : conn.withSql((sql) =>
    sql`DELETE FROM ${sql(project.metadataSchema)}.ducklake_files_scheduled_for_deletion
        WHERE data_file_id = ANY(${ids as Array<number>}::int8[])`, "forgetScheduled")
    .pipe(Effect.asVoid)

/** Records that scheduled files now live at `prefix` + their file name (moved aside after a compaction). */
export const moveScheduled = (
  conn: Conn,
  project: Project,
  ids: ReadonlyArray<number>,
  prefix: string
): Effect.Effect<void, Failure> =>
  ids.length === 0 ? Effect.void : conn.withSql((sql) =>
    sql`UPDATE ${sql(project.metadataSchema)}.ducklake_files_scheduled_for_deletion
        SET path = ${prefix} || regexp_replace(path, '^.*/', '')
        WHERE data_file_id = ANY(${ids as Array<number>}::int8[])`, "moveScheduled")
    .pipe(Effect.asVoid)
