/**
 * Committing a recorded batch: the transaction that makes a reserved snapshot visible. Under the lock every DuckLake
 * writer takes, it checks the snapshot comes after the latest, then writes in one statement the DuckLake rows (the
 * snapshot, its data file, file and table statistics, the change log), our own (provenance, the chain record,
 * renames), the current-state index (or the mark that it lags, for a bulk ingest) and removes the write-ahead row.
 */
import type { SqlClient, SqlError, Statement } from "@effect/sql"
import { Effect } from "effect"
import type { ChangeRow, Project } from "../core/domain.js"
import { CatalogError } from "../core/errors.js"
import { GENESIS_HASH, isoMillis } from "./chain.js"
import { chainHead, chainRow } from "./chainTable.js"
import type { Conn, WriteSession } from "./connection.js"
import { runAsOne } from "./inline.js"
import { INDEX_THROUGH_KEY, indexMark, latestPerTriple, upsertCurrentSql } from "./currentState.js"
import { TABLE_ID } from "./ducklakeSchema.js"
import { fileStatsRows } from "./files.js"
import { fileColumnStatsSource, insertTableColumnStats } from "./tableColumnStats.js"
import type { ColumnStats, CommitBasis, DataFileInfo, Failure, PendingWrite, Rename } from "./types.js"

/** The basis as one row: `SELECT <this>` (a subquery over the latest snapshot). */
export const basisSql = (sql: SqlClient.SqlClient, schema: string) => {
  const s = sql(schema)
  return sql`
      SELECT snapshot_id::text AS id, snapshot_time, schema_version::text AS sv, next_catalog_id::text AS nc,
             next_file_id::text AS nf,
             (SELECT next_row_id::text FROM ${s}.ducklake_table_stats WHERE table_id = ${TABLE_ID}) AS r,
             EXISTS (SELECT 1 FROM ${s}.ducklake_table_column_stats WHERE table_id = ${TABLE_ID}) AS have_stats,
             ${chainHead(sql, schema)} AS prev_hash,
             date_trunc('milliseconds', clock_timestamp()) AS now_ms
      FROM ${s}.ducklake_snapshot ORDER BY snapshot_id DESC LIMIT 1`
}

const readBasis = (sql: SqlClient.SqlClient, schema: string) =>
  Effect.map(sql<CommitBasis>`${basisSql(sql, schema)}`, (rows) => rows[0]!)

/** Everything the commit statement writes, decided before it runs. */
interface CommitPlan {
  readonly project: Project
  readonly write: PendingWrite
  readonly file: DataFileInfo
  readonly latest: CommitBasis
  readonly fileId: number
  readonly snapshotTime: Date
  readonly minTs: Date
  readonly maxTs: Date
  readonly chain: ReturnType<typeof chainRow>
  /** Current-state rows to upsert; ignored when `deferIndex`. */
  readonly current: ReadonlyArray<ChangeRow>
  readonly renames: ReadonlyArray<Rename>
  readonly deferIndex: boolean
}

/**
 * Makes the snapshot visible: DuckLake rows, current-state index and WAL state in one transaction, in one round
 * trip (the table lock and the statement as one query, see inline.ts). `basis` is what the reservation read under
 * the writer lock; without one (recovery) it is read first. `deferIndex` (bulk ingest) leaves the index behind,
 * noting the last snapshot it covers; `applyIndex` catches it up later.
 */
export const commitSnapshot = (
  conn: Conn,
  project: Project,
  write: PendingWrite,
  file: DataFileInfo,
  rows: ReadonlyArray<ChangeRow>,
  renames: ReadonlyArray<Rename> = [],
  options: { readonly deferIndex?: boolean; readonly basis?: CommitBasis; readonly session?: WriteSession } = {}
): Effect.Effect<Date, Failure> =>
  conn.withSql((sql) =>
    Effect.gen(function*() {
      const latest = options.basis ?? (yield* readBasis(sql, project.metadataSchema))
      if (Number(latest.id) >= write.snapshotId) {
        return yield* Effect.fail(
          new CatalogError({
            operation: "commitSnapshot",
            cause: new Error(`snapshot ${write.snapshotId} is not after the latest (${latest.id})`)
          })
        )
      }
      const deferIndex = options.deferIndex === true
      const fileId = Number(latest.nf)
      // By number: comparing Dates converts each on every comparison (2 ms for a 10,000-change snapshot).
      let lo = rows[0]!.ts.getTime()
      let hi = lo
      for (const r of rows) {
        const t = r.ts.getTime()
        if (t < lo) lo = t
        else if (t > hi) hi = t
      }
      const minTs = new Date(lo)
      const maxTs = new Date(hi)
      // The snapshot's time: the catalog's clock when the basis was read (with the reservation, a few ms before
      // this commit), never before the reserved clock nor at or before the previous snapshot.
      const snapshotTime = new Date(Math.max(
        new Date(latest.now_ms).getTime(),
        write.clock.getTime(),
        new Date(latest.snapshot_time).getTime() + 1
      ))
      const chain = chainRow({
        projectId: project.projectId,
        snapshotId: write.snapshotId,
        kind: "data",
        snapshotTime: isoMillis(snapshotTime),
        fileName: file.fileName,
        checksum: file.checksum,
        fileSizeBytes: file.fileSizeBytes,
        recordCount: file.recordCount,
        actor: write.actor,
        note: write.note,
        idempotencyKey: write.idempotencyKey,
        contentHash: write.contentHash,
        minTs: isoMillis(minTs),
        maxTs: isoMillis(maxTs),
        sources: [],
        prevHash: latest.prev_hash ?? GENESIS_HASH
      }, fileId)
      const statement = commitStatement(sql, {
        project,
        write,
        file,
        latest,
        fileId,
        snapshotTime,
        minTs,
        maxTs,
        chain,
        current: deferIndex ? [] : latestPerTriple(rows),
        renames,
        deferIndex
      })
      // Serialise with any other DuckLake writer (the extension included); readers are not blocked. The lock and
      // the statement are one transaction: an error in the statement (its guard included) undoes both. In a write
      // session the writer lock is released once it has committed, in the same round trip.
      const written = yield* commitLocked(sql, project.metadataSchema, statement, options.session, "commitSnapshot")
      return new Date(written[0]!.t as string)
    }), "commitSnapshot")

/**
 * A commit statement after the table lock every DuckLake writer takes (readers are not blocked), in one round trip:
 * as one implicit transaction, or in a write session as BEGIN … COMMIT followed by the release of the writer lock.
 * An error in the statement undoes the lock with it. Answers the statement's rows.
 */
export const commitLocked = <A extends object>(
  sql: SqlClient.SqlClient,
  schema: string,
  statement: Statement.Statement<A>,
  session: WriteSession | undefined,
  operation: string
): Effect.Effect<ReadonlyArray<A>, SqlError.SqlError | Failure> => {
  const lock = sql`LOCK TABLE ${sql(schema)}.ducklake_snapshot IN SHARE ROW EXCLUSIVE MODE`
  return session === undefined
    ? runAsOne<A>(sql, [lock, statement])
    : Effect.map(session.commitAndUnlock(() => [lock, statement], operation), (rows) => rows[1] as ReadonlyArray<A>)
}

/**
 * Everything a commit writes, in one statement (one round trip): data-modifying CTEs all run against the same
 * snapshot of the tables, so each part reads only rows that were committed before this statement. Returns the
 * snapshot's time (`t`).
 */
const commitStatement = (sql: SqlClient.SqlClient, p: CommitPlan) => {
  const s = sql(p.project.metadataSchema)
  const { file, write } = p
  return sql<{ t: unknown }>`
    WITH ${guardCte(sql, p)}
    snap AS (
      INSERT INTO ${s}.ducklake_snapshot
      SELECT ${write.snapshotId}, ${p.snapshotTime}::timestamptz, ${p.latest.sv}::int8, ${p.latest.nc}::int8,
             ${p.fileId + 1}
      FROM guard WHERE guard.ok = 0
      RETURNING snapshot_time AS t
    ),
    data_file AS (
      INSERT INTO ${s}.ducklake_data_file VALUES (${p.fileId}, ${TABLE_ID}, ${write.snapshotId}, NULL, NULL,
        ${file.fileName}, true, 'parquet', ${file.recordCount}, ${file.fileSizeBytes}, ${file.footerSize},
        ${Number(p.latest.r)}, NULL, NULL, NULL, NULL)
    ),
    file_stats AS (INSERT INTO ${s}.ducklake_file_column_stats ${sql.insert(fileStatsRows(p.fileId, file.stats))}),
    ${tableColumnStatsCtes(sql, p.project.metadataSchema, file.stats, p.latest.have_stats === true)}
    table_stats AS (
      UPDATE ${s}.ducklake_table_stats SET record_count = record_count + ${file.recordCount},
        next_row_id = next_row_id + ${file.recordCount}, file_size_bytes = file_size_bytes + ${file.fileSizeBytes}
      WHERE table_id = ${TABLE_ID}
    ),
    changes AS (
      INSERT INTO ${s}.ducklake_snapshot_changes VALUES (${write.snapshotId}, ${`inserted_into_table:${TABLE_ID}`},
        ${write.actor}, ${write.note}, ${JSON.stringify({ tool: "mesa-ducklake", changes: file.recordCount })})
    ),
    mesa_snapshot AS (
      INSERT INTO ${s}.mesa_snapshot VALUES (${write.snapshotId}, ${p.fileId}, ${file.fileName}, ${file.checksum},
        ${file.recordCount}, ${write.actor}, ${write.note}, ${p.minTs}, ${p.maxTs}, ${write.idempotencyKey},
        ${write.contentHash})
    ),
    mesa_chain AS (INSERT INTO ${s}.mesa_chain ${sql.insert(p.chain)}),
    ${indexCte(sql, p)}
    ${renamesCte(sql, p)}
    -- The write-ahead row goes with the commit: a committed snapshot never needs recovery.
    wal AS (DELETE FROM mesa_ducklake.pending_writes
            WHERE project_id = ${p.project.projectId} AND snapshot_id = ${write.snapshotId})
    SELECT t FROM snap`
}

/**
 * Table-level column statistics, as the extension keeps them: the new file's merged into the table's, with a typed
 * order (numbers, times, bytes). A lake without them yet (written before we kept them) gets them from all its live
 * files: merging with only the new file would give bounds that are too tight. Each CTE ends with a comma.
 */
const tableColumnStatsCtes = (
  sql: SqlClient.SqlClient,
  schema: string,
  stats: ReadonlyArray<ColumnStats>,
  haveStats: boolean
) => {
  const s = sql(schema)
  const newStats = JSON.stringify(stats.map((c) => ({
    column_id: c.columnId,
    contains_null: c.nullCount > 0,
    min_value: c.min,
    max_value: c.max
  })))
  return sql`
    source AS (
      SELECT t.column_id, t.contains_null, t.min_value, t.max_value
      FROM ${s}.ducklake_table_column_stats t WHERE t.table_id = ${TABLE_ID}
      UNION ALL
      SELECT x.column_id, x.contains_null, x.min_value, x.max_value
      FROM jsonb_to_recordset(${newStats}::jsonb)
        AS x(column_id int8, contains_null boolean, min_value varchar, max_value varchar)
      ${haveStats ? sql`` : sql`UNION ALL SELECT * FROM ${fileColumnStatsSource(sql, schema, { liveOnly: true })} live`}
    ),
    cleared AS (DELETE FROM ${s}.ducklake_table_column_stats WHERE table_id = ${TABLE_ID}),
    table_column_stats AS (${insertTableColumnStats(sql, schema, sql`source`)}),`
}

/**
 * The commit's guard, evaluated by the statement itself (the basis may have been read before the lock): the latest
 * snapshot is still the basis's, and a commit that keeps the index current finds it caught up. Either failing is an
 * error that undoes the whole commit. (The messages are cast to int to raise them; each holds a subquery, so
 * PostgreSQL cannot fold the cast while planning.) Ends with a comma.
 */
const guardCte = (sql: SqlClient.SqlClient, p: CommitPlan) => {
  const s = sql(p.project.metadataSchema)
  const latest = sql`(SELECT max(snapshot_id) FROM ${s}.ducklake_snapshot)`
  return sql`guard AS (
      SELECT CASE
        WHEN ${latest} IS DISTINCT FROM ${p.latest.id}::int8
          THEN ('mesa-ducklake: snapshot ' || ${latest} || ' was committed meanwhile; snapshot ' ||
                ${p.write.snapshotId}::text || ' is no longer next')::int
        WHEN NOT ${p.deferIndex} AND ${indexMark(sql, p.project.metadataSchema)} IS NOT NULL
          THEN ('mesa-ducklake: the current-state index is behind (through snapshot ' ||
                ${indexMark(sql, p.project.metadataSchema)} || ')')::int
        ELSE 0 END AS ok
    ),`
}

/**
 * The current-state index: the batch's latest rows upserted, or, for a deferred commit, the mark of the last
 * snapshot the index covers — the latest before this one — set by the first commit that leaves it behind. Whether
 * the mark is there is read by the statement itself: an index catch-up that ran since the basis was read may have
 * removed it. Ends with a comma.
 */
const indexCte = (sql: SqlClient.SqlClient, p: CommitPlan) =>
  p.deferIndex
    ? sql`index_lag AS (
        INSERT INTO ${sql(p.project.metadataSchema)}.ducklake_metadata (key, value, scope, scope_id)
        SELECT ${INDEX_THROUGH_KEY}, (SELECT max(snapshot_id) FROM ${sql(p.project.metadataSchema)}.ducklake_snapshot)::text,
          NULL, NULL
        WHERE ${indexMark(sql, p.project.metadataSchema)} IS NULL
      ),`
    : sql`current_avus AS (${upsertCurrentSql(sql, p.project.metadataSchema, p.current)}),`

/** The batch's renames (the lineage a path's history follows), if any. Ends with a comma. */
const renamesCte = (sql: SqlClient.SqlClient, p: CommitPlan) =>
  p.renames.length === 0 ? sql`` : sql`renames AS (INSERT INTO ${sql(p.project.metadataSchema)}.mesa_renames ${
    sql.insert(p.renames.map((r, seq) => ({
      snapshot_id: p.write.snapshotId,
      seq,
      ts: r.ts,
      from_path: r.fromPath,
      to_path: r.toPath,
      target_type: r.targetType,
      object_id: r.objectId,
      actor: r.actor
    })))
  }),`
