/**
 * Compaction's catalog side: replacing adjacent data files by one (its own snapshot and chain record, the sources
 * scheduled for deletion), and the deletion schedule the grace period is counted from.
 */
import { Effect } from "effect"
import type { Project } from "../core/domain.js"
import { CatalogError } from "../core/errors.js"
import { GENESIS_HASH, isoMillis } from "./chain.js"
import { chainHead, chainRow } from "./chainTable.js"
import { commitLocked } from "./commit.js"
import type { Conn, WriteSession } from "./connection.js"
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
  },
  session?: WriteSession
): Effect.Effect<CompactionCommit, Failure> =>
  conn.withSql((sql) =>
    Effect.gen(function*() {
      const s = sql(project.metadataSchema)
      const ids = input.sources.map((f) => f.dataFileId)
      const liveSources = sql`(SELECT count(*) FROM ${s}.ducklake_data_file
                               WHERE data_file_id = ANY(${ids}::int8[]) AND end_snapshot IS NULL)`
      // 1. The basis, under the writer lock (a session takes it in this round trip): the latest snapshot, the
      //    chain's head, the last id handed out, how many sources are still live, the catalog's clock.
      const basisStatement = sql<any>`
        SELECT l.id, l.snapshot_time, l.sv, l.nc, l.nf, ${chainHead(sql, project.metadataSchema)} AS prev_hash,
               (SELECT last_snapshot_id::text FROM mesa_ducklake.projects WHERE project_id = ${project.projectId}) AS handed_out,
               ${liveSources}::int AS live, date_trunc('milliseconds', clock_timestamp()) AS now_ms
        FROM (SELECT snapshot_id::text AS id, snapshot_time, schema_version::text AS sv, next_catalog_id::text AS nc,
                     next_file_id::text AS nf
              FROM ${s}.ducklake_snapshot ORDER BY snapshot_id DESC LIMIT 1) l`
      const [basis]: ReadonlyArray<any> = session === undefined
        ? yield* basisStatement
        : (yield* session.run(() => [basisStatement], "commitCompaction"))[0]!
      if (basis.live !== ids.length) {
        return yield* Effect.fail(new CatalogError({ operation: "commitCompaction", cause: new Error(SOURCE_GONE) }))
      }
      // The compaction's snapshot id comes after every id handed out, committed or not.
      const snapshotId = Math.max(Number(basis.handed_out), Number(basis.id)) + 1
      const fileId = Number(basis.nf)
      const t = new Date(Math.max(new Date(basis.now_ms).getTime(), new Date(basis.snapshot_time).getTime() + 1))
      const begin = Math.min(...input.sources.map((f) => f.beginSnapshot))
      const last = Math.max(...input.sources.map((f) => f.lastSnapshot))
      const chain = chainRow({
        projectId: project.projectId,
        snapshotId,
        kind: "compaction",
        snapshotTime: isoMillis(t),
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
        prevHash: basis.prev_hash ?? GENESIS_HASH
      }, fileId)
      const removedBytes = input.sources.reduce((n, f) => n + f.fileSizeBytes, 0)
      const latest = sql`(SELECT max(snapshot_id) FROM ${s}.ducklake_snapshot)`
      // 2. Everything in one statement (one snapshot of the tables for every part), after the table lock every
      //    DuckLake writer takes, guarded: the basis still holds and every source is still live (the messages are
      //    cast to int to raise them; each holds a subquery, so PostgreSQL cannot fold the cast while planning).
      //    In a session the writer lock is released once it has committed, in the same round trip.
      const statement = sql<{ t: unknown }>`
        WITH guard AS (
          SELECT CASE
            WHEN ${latest} IS DISTINCT FROM ${basis.id}::int8
              THEN ('mesa-ducklake: snapshot ' || ${latest} || ' was committed meanwhile')::int
            WHEN ${liveSources} <> ${ids.length}
              THEN ('mesa-ducklake: ' || ${SOURCE_GONE} || ' (' || ${liveSources} || ' of ' || ${ids.length} || ')')::int
            ELSE 0 END AS ok
        ),
        reserved AS (
          UPDATE mesa_ducklake.projects SET last_snapshot_id = GREATEST(last_snapshot_id, ${snapshotId}::int8)
          WHERE project_id = ${project.projectId} AND (SELECT ok FROM guard) = 0
        ),
        snap AS (
          INSERT INTO ${s}.ducklake_snapshot
          SELECT ${snapshotId}, ${t}::timestamptz, ${basis.sv}::int8, ${basis.nc}::int8, ${fileId + 1}
          FROM guard WHERE guard.ok = 0
          RETURNING snapshot_time AS t
        ),
        chain AS (INSERT INTO ${s}.mesa_chain ${sql.insert(chain)}),
        -- Rows are re-sorted (by path) in the new file, so it carries each row's id itself: row_id_start is NULL.
        data_file AS (
          INSERT INTO ${s}.ducklake_data_file VALUES (${fileId}, ${TABLE_ID}, ${begin}, NULL, NULL,
            ${input.file.fileName}, true, 'parquet', ${input.file.recordCount}, ${input.file.fileSizeBytes},
            ${input.file.footerSize}, NULL, NULL, NULL, NULL, ${last})
        ),
        file_stats AS (INSERT INTO ${s}.ducklake_file_column_stats ${sql.insert(fileStatsRows(fileId, input.file.stats))}),
        scheduled AS (
          INSERT INTO ${s}.ducklake_files_scheduled_for_deletion
          SELECT data_file_id, ${`main/${TABLE_NAME}/`} || path, true, now()
          FROM ${s}.ducklake_data_file WHERE data_file_id = ANY(${ids}::int8[])
        ),
        old_stats AS (DELETE FROM ${s}.ducklake_file_column_stats WHERE data_file_id = ANY(${ids}::int8[])),
        old_files AS (DELETE FROM ${s}.ducklake_data_file WHERE data_file_id = ANY(${ids}::int8[])),
        table_stats AS (
          UPDATE ${s}.ducklake_table_stats
          SET file_size_bytes = file_size_bytes - ${removedBytes} + ${input.file.fileSizeBytes}
          WHERE table_id = ${TABLE_ID}
        ),
        changes AS (
          INSERT INTO ${s}.ducklake_snapshot_changes VALUES (${snapshotId}, ${`merge_adjacent:${TABLE_ID}`},
            ${input.actor}, ${`mesa-ducklake: compacted ${ids.length} files`},
            ${JSON.stringify({ tool: "mesa-ducklake", compacted: ids.length })})
        )
        SELECT t FROM snap`
      const written = yield* commitLocked(sql, project.metadataSchema, statement, session, "commitCompaction").pipe(
        Effect.catchIf(
          (e) => mentions(e, SOURCE_GONE),
          () => Effect.fail(new CatalogError({ operation: "commitCompaction", cause: new Error(SOURCE_GONE) }))
        )
      )
      return {
        snapshotId,
        snapshotTime: new Date(written[0]!.t as string),
        dataFileId: fileId,
        prevHash: chain.prev_hash,
        recordHash: chain.record_hash
      }
    }), "commitCompaction")

/** True when an error, or one in its cause chain, says `text`. */
const mentions = (e: unknown, text: string) => {
  for (let c: any = e, depth = 0; c !== undefined && c !== null && depth < 5; c = c.cause, depth++) {
    if (typeof c?.message === "string" && c.message.includes(text)) return true
  }
  return false
}

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
