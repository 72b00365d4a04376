/**
 * `Catalog`: the PostgreSQL side. A shared schema (`mesa_ducklake`) holds the project registry and the write-ahead
 * log; each project's history is a DuckLake 1.0 catalog in its own schema.
 *
 * The connection is opened lazily and re-tried on the next call after a failure, so a catalog that is down when the
 * client starts gives `CatalogUnavailable` on each call until it is back, rather than poisoning the client.
 */
import type { SqlClient, SqlError } from "@effect/sql"
import { Context, Effect, Layer, Option, type Redacted } from "effect"
import {
  CatalogError,
  ProjectConflict,
  ProjectNotFound,
  type ReaderRoleConflict,
  SnapshotNotFound
} from "./errors.js"
import type { Avu, ChangeRow, IrodsPath, Project, ProjectStatus, Snapshot } from "./domain.js"
import { isWithin } from "./domain.js"
import {
  COLUMNS,
  createLakeStatements,
  TABLE_ID,
  TABLE_NAME,
  columnId
} from "./catalog/ducklakeSchema.js"
import { GENESIS_HASH, isoMillis } from "./catalog/chain.js"
import { chainHead, chainRow } from "./catalog/chainTable.js"
import { type CatalogConfig, makeConn } from "./catalog/connection.js"
import { hostname } from "node:os"
import { fileColumnStatsSource, insertTableColumnStats } from "./catalog/tableColumnStats.js"
import * as Readers from "./catalog/readers.js"
import type {
  ColumnStats,
  CommitRecord,
  CurrentRow,
  DataFileInfo,
  Failure,
  FileFilter,
  IdempotentHit,
  LakeFile,
  LiveFile,
  PendingWrite,
  Rename,
  Reservation
} from "./catalog/types.js"

export {
  type CatalogConfig,
  DEFAULT_CONNECT_TIMEOUT_MS,
  DEFAULT_STATEMENT_TIMEOUT_MS,
  describeDsn
} from "./catalog/connection.js"
export type {
  ColumnStats,
  CommitRecord,
  CurrentRow,
  DataFileInfo,
  FileFilter,
  IdempotentHit,
  LakeFile,
  LiveFile,
  PendingWrite,
  Rename,
  Reservation
} from "./catalog/types.js"
export { chainHead, chainRow } from "./catalog/chainTable.js"
export { checkLakeSchema } from "./catalog/lakeSchema.js"

/**
 * `ducklake_metadata` key (scope NULL) present only while the current-state index lags: the last snapshot whose
 * rows it holds. Every snapshot after it is a deferred bulk-ingest snapshot (other writers catch up first).
 */
export const INDEX_THROUGH_KEY = "mesa_index_through"

/** The mark as a scalar subquery: the last indexed snapshot while the index lags, else NULL. */
export const indexMark = (sql: SqlClient.SqlClient, schema: string) =>
  sql`(SELECT value FROM ${sql(schema)}.ducklake_metadata WHERE key = ${INDEX_THROUGH_KEY} AND scope IS NULL)`

export interface CatalogService {
  /**
   * Registers a project and creates its lake schema. `prepare` runs after the conflict checks and before the commit
   * (the client creates the lake collection there), so a refused registration touches nothing.
   */
  readonly registerProject: <E>(input: {
    readonly irodsPath: IrodsPath
    readonly irodsZone: string
    readonly actor: string
    readonly ducklakePath: IrodsPath
    readonly prepare: Effect.Effect<void, E>
  }) => Effect.Effect<Project, Failure | ProjectConflict | E>
  readonly getProject: (projectId: string) => Effect.Effect<Project, Failure | ProjectNotFound>
  readonly findProjectByPath: (path: IrodsPath) => Effect.Effect<Project, Failure | ProjectNotFound>
  readonly listProjects: Effect.Effect<ReadonlyArray<Project>, Failure>
  readonly setProjectStatus: (projectId: string, status: ProjectStatus) => Effect.Effect<void, Failure | ProjectNotFound>
  /**
   * A login role that may read one project's lake schema and nothing else (for analysts who ATTACH it with
   * DuckDB): USAGE on the schema, SELECT on its tables now and later. Created if missing; its password is set.
   */
  readonly grantReader: (
    project: Project,
    role: string,
    password: Redacted.Redacted<string>,
    options?: Readers.GrantReaderOptions
  ) => Effect.Effect<void, Failure | ReaderRoleConflict>
  /** Runs `effect` holding the project's writer lock (one writer per project at a time, across processes). */
  readonly withWriteLock: <A, E, R>(
    projectId: string,
    effect: Effect.Effect<A, E, R>
  ) => Effect.Effect<A, E | Failure, R>
  readonly findIdempotent: (project: Project, key: string) => Effect.Effect<Option.Option<IdempotentHit>, Failure>
  /** Current-state rows (latest change per triple, adds and deletes) of the given paths. */
  readonly currentRows: (
    project: Project,
    paths: ReadonlyArray<string>
  ) => Effect.Effect<ReadonlyArray<CurrentRow>, Failure>
  /** Current-state rows of the given (path, attribute) pairs: all a batch of changes needs to be expanded. */
  readonly currentRowsOf: (
    project: Project,
    keys: ReadonlyArray<readonly [path: string, attribute: string]>
  ) => Effect.Effect<ReadonlyArray<CurrentRow>, Failure>
  /** Hands out the next snapshot id and clock, and logs the write as pending. Call under the writer lock. */
  readonly reserveSnapshot: (
    project: Project,
    input: {
      /** Random part of the file name (`snapshot_<id>_<suffix>.parquet`), so a retried id never reuses a name. */
      readonly fileSuffix: string
      /** Local directory the Parquet file is written to before it is pushed. */
      readonly localDir: string
      readonly actor: string
      readonly note: string | null
      readonly idempotencyKey: string | null
      readonly contentHash: string
    }
  ) => Effect.Effect<Reservation, Failure>
  readonly markPushed: (projectId: string, snapshotId: number, checksum: string) => Effect.Effect<void, Failure>
  /** Makes the snapshot visible: DuckLake rows, current-state index and WAL state in one transaction. */
  readonly commitSnapshot: (
    project: Project,
    write: PendingWrite,
    file: DataFileInfo,
    rows: ReadonlyArray<ChangeRow>,
    renames?: ReadonlyArray<Rename>,
    options?: {
      /**
       * Leave the current-state index behind (bulk ingest): the commit notes the last snapshot the index covers, and
       * `applyIndex` catches it up later. Readers meanwhile answer from the Parquet files.
       */
      readonly deferIndex?: boolean
    }
  ) => Effect.Effect<Date, Failure>
  /** True when the current-state index holds no rows (a project that has recorded nothing, or only deferred). */
  readonly indexEmpty: (project: Project) => Effect.Effect<boolean, Failure>
  /** The last snapshot the current-state index covers when it is behind the committed snapshots, else null. */
  readonly indexThrough: (project: Project) => Effect.Effect<number | null, Failure>
  /**
   * Catches the current-state index up through snapshot `through` with that range's change rows (read from its
   * Parquet files), in one transaction. Call under the writer lock.
   */
  readonly applyIndex: (project: Project, rows: ReadonlyArray<ChangeRow>, through: number) => Effect.Effect<void, Failure>
  /** Committed data snapshots after `after` with their change counts, oldest first (what a catch-up reads). */
  readonly snapshotsAfter: (
    project: Project,
    after: number
  ) => Effect.Effect<ReadonlyArray<{ readonly snapshotId: number; readonly changeCount: number }>, Failure>
  /** Renames recorded in the project, newest first (by valid time, then snapshot). */
  readonly renames: (project: Project, maxSnapshot?: number) => Effect.Effect<ReadonlyArray<Rename>, Failure>
  /** Current-state rows of a path and everything below it (for collection moves). */
  readonly currentRowsUnder: (project: Project, path: string) => Effect.Effect<ReadonlyArray<CurrentRow>, Failure>
  readonly dropPending: (projectId: string, snapshotId: number) => Effect.Effect<void, Failure>
  /** The commit record of a committed snapshot, as its marker file carries it. */
  readonly commitRecord: (project: Project, snapshotId: number) => Effect.Effect<CommitRecord, Failure>
  readonly markerWritten: (project: Project, snapshotId: number) => Effect.Effect<void, Failure>
  /** Committed snapshots whose marker is not known to be stored yet, oldest first. */
  readonly missingMarkers: (project: Project, limit: number) => Effect.Effect<ReadonlyArray<number>, Failure>
  readonly failPending: (
    projectId: string,
    snapshotId: number,
    error: string,
    terminal: boolean
  ) => Effect.Effect<void, Failure>
  readonly pendingWrites: (options: { readonly limit: number }) => Effect.Effect<ReadonlyArray<PendingWrite>, Failure>
  /** One write-ahead row as it is now (None once committed). */
  readonly pendingWrite: (projectId: string, snapshotId: number) => Effect.Effect<Option.Option<PendingWrite>, Failure>
  /** True when the snapshot id is committed in the project's lake. */
  readonly isCommitted: (project: Project, snapshotId: number) => Effect.Effect<boolean, Failure>
  /** Every file referenced by a pending or failed write, across projects: never evicted from the local cache. */
  readonly pinnedLocalFiles: Effect.Effect<ReadonlySet<string>, Failure>
  readonly files: (project: Project, filter: FileFilter) => Effect.Effect<ReadonlyArray<LakeFile>, Failure>
  /** A path's current AVUs from the index; `behind` when the index lags the commits (then `avus` is not the answer). */
  readonly currentAvus: (
    project: Project,
    path: string
  ) => Effect.Effect<{ readonly avus: ReadonlyArray<Avu>; readonly behind: boolean }, Failure>
  readonly listSnapshots: (
    project: Project,
    options: { readonly limit: number }
  ) => Effect.Effect<ReadonlyArray<Snapshot>, Failure>
  /** Latest committed snapshot id at or before a transaction time (undefined before the first). */
  readonly snapshotAt: (project: Project, at: Date) => Effect.Effect<number | undefined, Failure>
  readonly requireSnapshot: (
    project: Project,
    snapshotId: number
  ) => Effect.Effect<void, Failure | SnapshotNotFound>
  readonly latestSnapshot: (project: Project) => Effect.Effect<number, Failure>
  /** Live data files of the project's table, in snapshot order (for compaction). */
  readonly liveFiles: (project: Project) => Effect.Effect<ReadonlyArray<LiveFile>, Failure>
  /**
   * Replaces adjacent files by one compacted file, as DuckLake's merge_adjacent_files does: the new file begins at
   * the first source's snapshot and records the last in `partial_max`; the sources leave the catalog and are
   * scheduled for deletion. Its own snapshot carries `merge_adjacent`. Fails if a source is no longer live.
   */
  readonly commitCompaction: (
    project: Project,
    input: {
      readonly sources: ReadonlyArray<LiveFile>
      readonly file: DataFileInfo
      readonly actor: string
    }
  ) => Effect.Effect<{
    readonly snapshotId: number
    readonly snapshotTime: Date
    readonly dataFileId: number
    readonly prevHash: string
    readonly recordHash: string
  }, Failure>
  /** Files scheduled for deletion before `before` (paths relative to the ducklake collection). */
  readonly scheduledForDeletion: (
    project: Project,
    before: Date
  ) => Effect.Effect<ReadonlyArray<{ readonly dataFileId: number; readonly relativePath: string }>, Failure>
  readonly forgetScheduled: (project: Project, dataFileIds: ReadonlyArray<number>) => Effect.Effect<void, Failure>
  /** Raw SQL access for maintenance jobs and tests. */
  readonly withSql: <A, E>(
    f: (sql: SqlClient.SqlClient) => Effect.Effect<A, E>
  ) => Effect.Effect<A, Exclude<E, SqlError.SqlError> | Failure>
  /** host:port/database, for messages (no password). */
  readonly target: string
}

const currentRowOf = (r: any): CurrentRow => ({
  tsMs: new Date(r.ts).getTime(),
  snapshotId: Number(r.snapshot_id),
  changeSeq: r.change_seq,
  irodsPath: r.irods_path,
  attribute: r.attribute,
  value: r.value,
  unit: r.unit,
  op: r.op,
  targetType: r.target_type,
  objectId: r.oid === null || r.oid === undefined ? null : Number(r.oid)
})

export class Catalog extends Context.Tag("mesa-ducklake/Catalog")<Catalog, CatalogService>() {}

export const make = (config: CatalogConfig) =>
  Effect.gen(function*() {
    const conn = yield* makeConn(config)
    const { withSql, withWriteLock, target } = conn

    const S = (project: Project) => project.metadataSchema

    const projectFromRow = (r: any): Project => ({
      projectId: r.project_id,
      irodsPath: r.irods_path,
      irodsZone: r.irods_zone,
      ducklakePath: r.ducklake_path,
      metadataSchema: r.metadata_schema,
      createdAt: new Date(r.created_at),
      createdBy: r.created_by,
      status: r.status
    })

    const registerProject: CatalogService["registerProject"] = <E>(input: Parameters<CatalogService["registerProject"]>[0] & { readonly prepare: Effect.Effect<void, E> }) =>
      withSql((sql) =>
        sql.withTransaction(Effect.gen(function*() {
          // One registration at a time, so two racing registrations cannot nest roots.
          yield* sql`LOCK TABLE mesa_ducklake.projects IN SHARE ROW EXCLUSIVE MODE`
          const existing = yield* sql<any>`SELECT * FROM mesa_ducklake.projects`
          for (const row of existing) {
            const other = projectFromRow(row)
            const relation = other.irodsPath === input.irodsPath
              ? "duplicate"
              : isWithin(input.irodsPath, other.irodsPath)
              ? "nested-inside"
              : isWithin(other.irodsPath, input.irodsPath)
              ? "contains"
              : undefined
            if (relation !== undefined) {
              return yield* new ProjectConflict({
                irodsPath: input.irodsPath,
                existingProjectId: other.projectId,
                existingRoot: other.irodsPath,
                relation
              })
            }
          }
          yield* input.prepare
          const [{ id }] = (yield* sql<{ id: string }>`SELECT gen_random_uuid()::text AS id`) as any
          const schema = `lake_${id.replace(/-/g, "")}`
          const rows = yield* sql<any>`
            INSERT INTO mesa_ducklake.projects (project_id, irods_path, irods_zone, ducklake_path, metadata_schema, created_by)
            VALUES (${id}, ${input.irodsPath}, ${input.irodsZone}, ${input.ducklakePath}, ${schema}, ${input.actor})
            RETURNING *`
          for (
            const [stmt, params] of createLakeStatements(schema, {
              dataPath: `${input.ducklakePath}/`,
              createdBy: "mesa-ducklake 0.1.0",
              projectId: id,
              actor: input.actor
            })
          ) {
            yield* sql.unsafe(stmt, params as Array<any>)
          }
          return projectFromRow(rows[0])
        })), "registerProject")

    const getProject: CatalogService["getProject"] = (projectId) =>
      withSql((sql) =>
        Effect.gen(function*() {
          if (!/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(projectId)) {
            return yield* new ProjectNotFound({ projectId })
          }
          const rows = yield* sql<any>`SELECT * FROM mesa_ducklake.projects WHERE project_id = ${projectId}`
          if (rows.length === 0) return yield* new ProjectNotFound({ projectId })
          return projectFromRow(rows[0])
        }), "getProject")

    const findProjectByPath: CatalogService["findProjectByPath"] = (path) =>
      withSql((sql) =>
        Effect.gen(function*() {
          // Deepest registered root containing the path (roots never nest, so at most one matches).
          const rows = yield* sql<any>`
            SELECT * FROM mesa_ducklake.projects
            WHERE irods_path = ${path} OR ${path} LIKE replace(replace(replace(irods_path, '\\', '\\\\'), '%', '\\%'), '_', '\\_') || '/%'
              OR irods_path = '/'
            ORDER BY length(irods_path) DESC LIMIT 1`
          if (rows.length === 0) return yield* new ProjectNotFound({ irodsPath: path })
          return projectFromRow(rows[0])
        }), "findProjectByPath")

    const grantReader: CatalogService["grantReader"] = (project, role, password, options) =>
      withSql((sql) => Readers.grantReader(sql, project, role, password, options), "grantReader")

    const listProjects: CatalogService["listProjects"] = withSql(
      (sql) =>
        Effect.map(
          sql<any>`SELECT * FROM mesa_ducklake.projects ORDER BY irods_path`,
          (rows) => rows.map(projectFromRow)
        ),
      "listProjects"
    )

    const setProjectStatus: CatalogService["setProjectStatus"] = (projectId, status) =>
      Effect.flatMap(getProject(projectId), () =>
        withSql(
          (sql) => sql`UPDATE mesa_ducklake.projects SET status = ${status} WHERE project_id = ${projectId}`,
          "setProjectStatus"
        )).pipe(Effect.asVoid)

    const findIdempotent: CatalogService["findIdempotent"] = (project, key) =>
      withSql((sql) =>
        Effect.map(
          sql<any>`SELECT snapshot_id::int8::text AS snapshot_id, content_hash, file_path, change_count
                   FROM ${sql(S(project))}.mesa_snapshot WHERE idempotency_key = ${key}`,
          (rows) =>
            Option.map(Option.fromNullable(rows[0]), (r) => ({
              snapshotId: Number(r.snapshot_id),
              contentHash: r.content_hash,
              fileName: r.file_path,
              changeCount: r.change_count
            }))
        ), "findIdempotent")

    const currentRows: CatalogService["currentRows"] = (project, paths) =>
      paths.length === 0 ? Effect.succeed([]) : withSql((sql) =>
        Effect.map(
          sql<any>`SELECT irods_path, attribute, value, unit, op, target_type, object_id::text AS oid,
                          ts, snapshot_id::text AS snapshot_id, change_seq
                   FROM ${sql(S(project))}.mesa_current_avus WHERE irods_path = ANY(${paths as Array<string>})`,
          (rows) => rows.map(currentRowOf)
        ), "currentRows")

    const currentRowsOf: CatalogService["currentRowsOf"] = (project, keys) =>
      keys.length === 0 ? Effect.succeed([]) : withSql((sql) =>
        Effect.map(
          sql<any>`SELECT c.irods_path, c.attribute, c.value, c.unit, c.op, c.target_type, c.object_id::text AS oid,
                          c.ts, c.snapshot_id::text AS snapshot_id, c.change_seq
                   FROM unnest(${keys.map((k) => k[0])}::text[], ${keys.map((k) => k[1])}::text[]) AS k(p, a)
                   JOIN ${sql(S(project))}.mesa_current_avus c
                     ON c.irods_path = k.p COLLATE "C" AND c.attribute = k.a COLLATE "C"`,
          (rows) => rows.map(currentRowOf)
        ), "currentRowsOf")

    const pendingFromRow = (r: any): PendingWrite => ({
      projectId: r.project_id,
      snapshotId: Number(r.snapshot_id),
      state: r.state,
      localFile: r.local_file,
      remotePath: r.remote_path,
      fileName: r.file_name,
      clock: new Date(r.clock),
      actor: r.actor,
      note: r.note,
      idempotencyKey: r.idempotency_key,
      contentHash: r.content_hash,
      checksum: r.checksum,
      attempts: r.attempts,
      host: r.host
    })

    const reserveSnapshot: CatalogService["reserveSnapshot"] = (project, input) =>
      withSql((sql) =>
        Effect.flatMap(
          // One statement (atomic on its own): the id, the clock and the write-ahead row in a single round trip.
          // Ids are never reused, not even those of failed writes: their files may still exist in storage.
          sql<any>`
            WITH r AS (
              UPDATE mesa_ducklake.projects p
              SET last_snapshot_id = GREATEST(p.last_snapshot_id,
                    (SELECT max(snapshot_id) FROM ${sql(S(project))}.ducklake_snapshot)) + 1
              WHERE project_id = ${project.projectId}
              RETURNING p.project_id, last_snapshot_id AS id,
                GREATEST(date_trunc('milliseconds', clock_timestamp()),
                  -- The latest snapshot's time by key (snapshot times only grow), not a scan of every snapshot.
                  (SELECT snapshot_time FROM ${sql(S(project))}.ducklake_snapshot ORDER BY snapshot_id DESC LIMIT 1)
                    + interval '1 millisecond',
                  (SELECT max(clock) FROM mesa_ducklake.pending_writes w WHERE w.project_id = p.project_id)
                    + interval '1 millisecond') AS clock
            ),
            named AS (SELECT r.*, 'snapshot_' || lpad(r.id::text, 10, '0') || '_' || ${input.fileSuffix} || '.parquet' AS f FROM r),
            ins AS (
              INSERT INTO mesa_ducklake.pending_writes (project_id, snapshot_id, state, local_file, remote_path,
                file_name, clock, actor, note, idempotency_key, content_hash, host)
              SELECT project_id, id, 'pending', ${input.localDir} || '/' || f,
                ${`${project.ducklakePath}/main/${TABLE_NAME}/`} || f, f, clock,
                ${input.actor}, ${input.note}, ${input.idempotencyKey}, ${input.contentHash}, ${hostname()}
              FROM named
              RETURNING *
            )
            SELECT ins.*,
              (SELECT max(snapshot_id)::text FROM ${sql(S(project))}.ducklake_snapshot) AS previous_snapshot,
              ${indexMark(sql, S(project))} AS index_through
            FROM ins`,
          (rows) =>
            rows.length === 1
              ? Effect.succeed({
                ...pendingFromRow(rows[0]),
                previousSnapshot: Number(rows[0].previous_snapshot),
                indexThrough: rows[0].index_through === null ? null : Number(rows[0].index_through)
              })
              : Effect.fail(new CatalogError({ operation: "reserveSnapshot", cause: new Error(`project ${project.projectId} is not registered`) }))
        ), "reserveSnapshot")

    const markPushed: CatalogService["markPushed"] = (projectId, snapshotId, checksum) =>
      withSql((sql) =>
        sql`UPDATE mesa_ducklake.pending_writes SET state = 'pushed', checksum = ${checksum}, updated_at = now()
            WHERE project_id = ${projectId} AND snapshot_id = ${snapshotId} AND state IN ('pending', 'pushed')`, "markPushed")
        .pipe(Effect.asVoid)

    const commitSnapshot: CatalogService["commitSnapshot"] = (project, write, file, rows, renames = [], options = {}) =>
      withSql((sql) =>
        sql.withTransaction(Effect.gen(function*() {
          const s = sql(S(project))
          // Serialise with any other DuckLake writer (the extension included); readers are not blocked.
          yield* sql`LOCK TABLE ${s}.ducklake_snapshot IN SHARE ROW EXCLUSIVE MODE`
          const [prev] = yield* sql<any>`
            SELECT snapshot_id::text AS id, snapshot_time, schema_version::text AS sv, next_catalog_id::text AS nc,
                   next_file_id::text AS nf,
                   (SELECT next_row_id::text FROM ${s}.ducklake_table_stats WHERE table_id = ${TABLE_ID}) AS r,
                   EXISTS (SELECT 1 FROM ${s}.ducklake_table_column_stats WHERE table_id = ${TABLE_ID}) AS have_stats,
                   ${indexMark(sql, S(project))} IS NOT NULL AS index_behind,
                   ${chainHead(sql, S(project))} AS prev_hash,
                   date_trunc('milliseconds', clock_timestamp()) AS now_ms
            FROM ${s}.ducklake_snapshot ORDER BY snapshot_id DESC LIMIT 1`
          if (Number(prev.id) >= write.snapshotId) {
            return yield* Effect.fail(
              new CatalogError({
                operation: "commitSnapshot",
                cause: new Error(`snapshot ${write.snapshotId} is not after the latest (${prev.id})`)
              })
            )
          }
          const deferIndex = options.deferIndex === true
          if (prev.index_behind === true && !deferIndex) {
            // Writers catch the index up (under the lock) before they build rows; committing past a lag would leave
            // snapshots out of the index for good.
            return yield* Effect.fail(
              new CatalogError({ operation: "commitSnapshot", cause: new Error("the current-state index is behind") })
            )
          }
          const fileId = Number(prev.nf)
          const rowIdStart = Number(prev.r)
          const minTs = rows.reduce((m, r) => (r.ts < m ? r.ts : m), rows[0]!.ts)
          const maxTs = rows.reduce((m, r) => (r.ts > m ? r.ts : m), rows[0]!.ts)
          const current = deferIndex ? [] : latestPerTriple(rows)
          // The commit time: now, but never before the reserved clock nor at or before the previous snapshot.
          const snapshotTime = new Date(Math.max(
            new Date(prev.now_ms).getTime(),
            write.clock.getTime(),
            new Date(prev.snapshot_time).getTime() + 1
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
            prevHash: prev.prev_hash ?? GENESIS_HASH
          }, fileId)
          const newStats = JSON.stringify(file.stats.map((c) => ({
            column_id: c.columnId,
            contains_null: c.nullCount > 0,
            min_value: c.min,
            max_value: c.max
          })))
          // Everything else in one statement (one round trip): data-modifying CTEs all run, against the same
          // snapshot of the tables, so each part reads only rows that were committed before this statement.
          const [{ t }] = (yield* sql<any>`
            WITH snap AS (
              INSERT INTO ${s}.ducklake_snapshot
              VALUES (${write.snapshotId}, ${snapshotTime}::timestamptz, ${prev.sv}::int8, ${prev.nc}::int8, ${fileId + 1})
              RETURNING snapshot_time AS t
            ),
            data_file AS (
              INSERT INTO ${s}.ducklake_data_file VALUES (${fileId}, ${TABLE_ID}, ${write.snapshotId}, NULL, NULL,
                ${file.fileName}, true, 'parquet', ${file.recordCount}, ${file.fileSizeBytes}, ${file.footerSize},
                ${rowIdStart}, NULL, NULL, NULL, NULL)
            ),
            file_stats AS (INSERT INTO ${s}.ducklake_file_column_stats ${sql.insert(fileStatsRows(fileId, file.stats))}),
            -- Table-level column statistics, as the extension keeps them: the new file's merged into the table's,
            -- with a typed order (numbers, times, bytes). A lake without them yet (written before we kept them) gets
            -- them from all its live files: merging with only the new file would give bounds that are too tight.
            source AS (
              SELECT t.column_id, t.contains_null, t.min_value, t.max_value
              FROM ${s}.ducklake_table_column_stats t WHERE t.table_id = ${TABLE_ID}
              UNION ALL
              SELECT x.column_id, x.contains_null, x.min_value, x.max_value
              FROM jsonb_to_recordset(${newStats}::jsonb)
                AS x(column_id int8, contains_null boolean, min_value varchar, max_value varchar)
              ${prev.have_stats === true ? sql`` : sql`UNION ALL SELECT * FROM ${
                fileColumnStatsSource(sql, S(project), { liveOnly: true })
              } live`}
            ),
            cleared AS (DELETE FROM ${s}.ducklake_table_column_stats WHERE table_id = ${TABLE_ID}),
            table_column_stats AS (${insertTableColumnStats(sql, S(project), sql`source`)}),
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
              INSERT INTO ${s}.mesa_snapshot VALUES (${write.snapshotId}, ${fileId}, ${file.fileName}, ${file.checksum},
                ${file.recordCount}, ${write.actor}, ${write.note}, ${minTs}, ${maxTs}, ${write.idempotencyKey},
                ${write.contentHash})
            ),
            mesa_chain AS (INSERT INTO ${s}.mesa_chain ${sql.insert(chain)}),
            ${deferIndex
              ? sql`index_lag AS (
                  INSERT INTO ${s}.ducklake_metadata (key, value, scope, scope_id)
                  SELECT ${INDEX_THROUGH_KEY}, ${prev.id}, NULL, NULL
                  WHERE NOT ${prev.index_behind === true}
                ),`
              : sql`current_avus AS (${upsertCurrentSql(sql, project, current)}),`}
            ${renames.length === 0 ? sql`` : sql`renames AS (INSERT INTO ${s}.mesa_renames ${
              sql.insert(renames.map((r, seq) => ({
                snapshot_id: write.snapshotId,
                seq,
                ts: r.ts,
                from_path: r.fromPath,
                to_path: r.toPath,
                target_type: r.targetType,
                object_id: r.objectId,
                actor: r.actor
              })))
            }),`}
            -- The write-ahead row goes with the commit: a committed snapshot never needs recovery.
            wal AS (DELETE FROM mesa_ducklake.pending_writes
                    WHERE project_id = ${project.projectId} AND snapshot_id = ${write.snapshotId})
            SELECT t FROM snap`) as any
          return new Date(t)
        })), "commitSnapshot")

    /**
     * Upsert of current-state rows (at most one per triple): keeps the latest by valid time, snapshot, position.
     * The rows travel as one array per column (`unnest`), so a batch of any size is one statement with 14
     * parameters: a multi-row VALUES list costs a parameter per field and tops out at 65,535 of them.
     */
    const upsertCurrentSql = (sql: SqlClient.SqlClient, project: Project, rows: ReadonlyArray<ChangeRow>) =>
      sql`
        INSERT INTO ${sql(S(project))}.mesa_current_avus AS c (irods_path, attribute, value, unit, op, ts, snapshot_id,
          change_seq, actor, source, via_ticket, rule_invocation, target_type, object_id)
        SELECT * FROM unnest(${rows.map((r) => r.irodsPath)}::text[], ${rows.map((r) => r.attribute)}::text[],
          ${rows.map((r) => r.value)}::text[], ${rows.map((r) => r.unit)}::text[], ${rows.map((r) => r.op)}::text[],
          ${rows.map((r) => r.ts.toISOString())}::timestamptz[], ${rows.map((r) => r.snapshotId)}::int8[],
          ${rows.map((r) => r.changeSeq)}::int4[], ${rows.map((r) => r.actor)}::text[], ${rows.map((r) => r.source)}::text[],
          ${rows.map((r) => r.viaTicket)}::text[], ${rows.map((r) => r.ruleInvocation)}::text[],
          ${rows.map((r) => r.targetType)}::text[], ${rows.map((r) => r.objectId)}::int8[])
        ON CONFLICT (irods_path, attribute, value, unit) DO UPDATE SET
          op = EXCLUDED.op, ts = EXCLUDED.ts, snapshot_id = EXCLUDED.snapshot_id, change_seq = EXCLUDED.change_seq,
          actor = EXCLUDED.actor, source = EXCLUDED.source, via_ticket = EXCLUDED.via_ticket,
          rule_invocation = EXCLUDED.rule_invocation, target_type = EXCLUDED.target_type, object_id = EXCLUDED.object_id
        WHERE (EXCLUDED.ts, EXCLUDED.snapshot_id, EXCLUDED.change_seq) > (c.ts, c.snapshot_id, c.change_seq)`

    const indexThrough: CatalogService["indexThrough"] = (project) =>
      withSql((sql) =>
        Effect.map(
          sql<any>`SELECT ${indexMark(sql, S(project))} AS value`,
          (rows) => (rows[0].value === null ? null : Number(rows[0].value))
        ), "indexThrough")

    const indexEmpty: CatalogService["indexEmpty"] = (project) =>
      withSql((sql) =>
        Effect.map(
          sql<any>`SELECT NOT EXISTS (SELECT 1 FROM ${sql(S(project))}.mesa_current_avus) AS empty`,
          (rows) => rows[0].empty === true
        ), "indexEmpty")

    const applyIndex: CatalogService["applyIndex"] = (project, rows, through) =>
      withSql((sql) =>
        sql.withTransaction(Effect.gen(function*() {
          const s = sql(S(project))
          const current = latestPerTriple(rows)
          // Upserts keep the latest change per triple whatever the order they arrive in, so slices of any size apply.
          for (let i = 0; i < current.length; i += 20_000) {
            yield* upsertCurrentSql(sql, project, current.slice(i, i + 20_000))
          }
          yield* sql`
            -- Compaction snapshots carry no rows: the index is complete once it covers the latest data snapshot.
            WITH latest AS (SELECT max(snapshot_id) AS m FROM ${s}.mesa_snapshot),
            done AS (
              DELETE FROM ${s}.ducklake_metadata
              WHERE key = ${INDEX_THROUGH_KEY} AND scope IS NULL AND ${through} >= (SELECT m FROM latest)
            )
            UPDATE ${s}.ducklake_metadata SET value = ${String(through)}
            WHERE key = ${INDEX_THROUGH_KEY} AND scope IS NULL AND ${through} < (SELECT m FROM latest)`
        })), "applyIndex").pipe(Effect.asVoid)

    const snapshotsAfter: CatalogService["snapshotsAfter"] = (project, after) =>
      withSql((sql) =>
        Effect.map(
          sql<any>`SELECT snapshot_id::text AS id, change_count FROM ${sql(S(project))}.mesa_snapshot
                   WHERE snapshot_id > ${after} ORDER BY snapshot_id`,
          (rows) => rows.map((r) => ({ snapshotId: Number(r.id), changeCount: Number(r.change_count) }))
        ), "snapshotsAfter")

    const dropPending: CatalogService["dropPending"] = (projectId, snapshotId) =>
      withSql((sql) =>
        sql`DELETE FROM mesa_ducklake.pending_writes WHERE project_id = ${projectId} AND snapshot_id = ${snapshotId}`, "dropPending")
        .pipe(Effect.asVoid)

    const commitRecord: CatalogService["commitRecord"] = (project, snapshotId) =>
      withSql((sql) =>
        Effect.map(
          sql<any>`SELECT m.*, m.snapshot_id::text AS id, m.data_file_id::text AS file_id, s.snapshot_time,
                          c.file_size_bytes::text AS size, c.prev_hash, c.record_hash
                   FROM ${sql(S(project))}.mesa_snapshot m
                   JOIN ${sql(S(project))}.ducklake_snapshot s ON s.snapshot_id = m.snapshot_id
                   JOIN ${sql(S(project))}.mesa_chain c ON c.snapshot_id = m.snapshot_id
                   WHERE m.snapshot_id = ${snapshotId}`,
          ([r]) => ({
            format: "mesa-ducklake-commit/1" as const,
            projectId: project.projectId,
            snapshotId: Number(r.id),
            snapshotTime: new Date(r.snapshot_time).toISOString(),
            dataFileId: Number(r.file_id),
            fileName: r.file_path,
            checksum: r.checksum,
            recordCount: r.change_count,
            actor: r.actor,
            note: r.note,
            idempotencyKey: r.idempotency_key,
            contentHash: r.content_hash,
            fileSizeBytes: Number(r.size),
            prevHash: r.prev_hash,
            recordHash: r.record_hash
          })
        ), "commitRecord")

    const markerWritten: CatalogService["markerWritten"] = (project, snapshotId) =>
      withSql((sql) =>
        sql`UPDATE ${sql(S(project))}.mesa_snapshot SET marker_written = true WHERE snapshot_id = ${snapshotId}`, "markerWritten")
        .pipe(Effect.asVoid)

    const missingMarkers: CatalogService["missingMarkers"] = (project, limit) =>
      withSql((sql) =>
        Effect.map(
          sql<any>`SELECT snapshot_id::text AS id FROM ${sql(S(project))}.mesa_snapshot WHERE NOT marker_written
                   ORDER BY snapshot_id LIMIT ${limit}`,
          (rows) => rows.map((r) => Number(r.id))
        ), "missingMarkers")

    const failPending: CatalogService["failPending"] = (projectId, snapshotId, error, terminal) =>
      withSql((sql) =>
        sql`UPDATE mesa_ducklake.pending_writes
            SET attempts = attempts + 1, last_error = ${error.slice(0, 2000)}, updated_at = now(),
                state = CASE WHEN ${terminal} THEN 'failed' ELSE state END
            WHERE project_id = ${projectId} AND snapshot_id = ${snapshotId} AND state <> 'committed'`, "failPending")
        .pipe(Effect.asVoid)

    const pendingWrites: CatalogService["pendingWrites"] = ({ limit }) =>
      withSql((sql) =>
        Effect.map(
          sql<any>`SELECT * FROM mesa_ducklake.pending_writes WHERE state <> 'failed'
                   ORDER BY project_id, snapshot_id LIMIT ${limit}`,
          (rows) => rows.map(pendingFromRow)
        ), "pendingWrites")

    const pendingWrite: CatalogService["pendingWrite"] = (projectId, snapshotId) =>
      withSql((sql) =>
        Effect.map(
          sql<any>`SELECT * FROM mesa_ducklake.pending_writes WHERE project_id = ${projectId} AND snapshot_id = ${snapshotId}`,
          (rows) => Option.map(Option.fromNullable(rows[0]), pendingFromRow)
        ), "pendingWrite")

    const isCommitted: CatalogService["isCommitted"] = (project, snapshotId) =>
      withSql((sql) =>
        Effect.map(
          sql<any>`SELECT 1 FROM ${sql(S(project))}.mesa_snapshot WHERE snapshot_id = ${snapshotId}`,
          (rows) => rows.length > 0
        ), "isCommitted")

    const pinnedLocalFiles: CatalogService["pinnedLocalFiles"] = withSql(
      (sql) =>
        Effect.map(
          sql<any>`SELECT local_file FROM mesa_ducklake.pending_writes WHERE state <> 'committed'`,
          (rows) => new Set(rows.map((r) => r.local_file as string))
        ),
      "pinnedLocalFiles"
    )

    const files: CatalogService["files"] = (project, filter) =>
      withSql((sql) => {
        const s = sql(S(project))
        const conds = [sql`f.table_id = ${TABLE_ID}`]
        if (filter.maxSnapshot !== undefined) {
          conds.push(sql`f.begin_snapshot <= ${filter.maxSnapshot}`)
          conds.push(sql`(f.end_snapshot IS NULL OR f.end_snapshot > ${filter.maxSnapshot})`)
        } else conds.push(sql`f.end_snapshot IS NULL`)
        if (filter.afterSnapshot !== undefined) {
          // A file covering several snapshots (after compaction) qualifies while its range reaches past the bound.
          conds.push(sql`COALESCE(f.partial_max, f.begin_snapshot) > ${filter.afterSnapshot}`)
        }
        const stat = (column: Parameters<typeof columnId>[0]) =>
          sql`(SELECT min_value, max_value FROM ${s}.ducklake_file_column_stats c
               WHERE c.data_file_id = f.data_file_id AND c.column_id = ${columnId(column)})`
        if (filter.irodsPath !== undefined) {
          conds.push(sql`NOT EXISTS (SELECT 1 FROM ${stat("irods_path")} p
            WHERE p.min_value COLLATE "C" > ${filter.irodsPath} OR p.max_value COLLATE "C" < ${filter.irodsPath})`)
        }
        if (filter.attribute !== undefined) {
          conds.push(sql`NOT EXISTS (SELECT 1 FROM ${stat("attribute")} p
            WHERE p.min_value COLLATE "C" > ${filter.attribute} OR p.max_value COLLATE "C" < ${filter.attribute})`)
        }
        if (filter.validAtOrBefore !== undefined) {
          conds.push(sql`NOT EXISTS (SELECT 1 FROM ${stat("ts")} p WHERE p.min_value::timestamptz > ${filter.validAtOrBefore})`)
        }
        if (filter.validFrom !== undefined) {
          conds.push(sql`NOT EXISTS (SELECT 1 FROM ${stat("ts")} p WHERE p.max_value::timestamptz < ${filter.validFrom})`)
        }
        return Effect.map(
          sql<any>`SELECT f.data_file_id::text AS id, f.path, f.path_is_relative, f.begin_snapshot::text AS begin,
                          f.file_size_bytes::text AS size, c.checksum
                   FROM ${s}.ducklake_data_file f
                   LEFT JOIN ${s}.mesa_chain c ON c.data_file_id = f.data_file_id AND c.file_name = f.path
                   WHERE ${sql.and(conds)} ORDER BY f.begin_snapshot`,
          (rows) =>
            rows.map((r) => ({
              dataFileId: Number(r.id),
              relativePath: `main/${TABLE_NAME}/${r.path}`,
              beginSnapshot: Number(r.begin),
              fileSizeBytes: Number(r.size),
              checksum: r.checksum ?? ""
            }))
        )
      }, "files")


    const liveFiles: CatalogService["liveFiles"] = (project) =>
      withSql((sql) =>
        Effect.map(
          sql<any>`SELECT f.data_file_id::text AS id, f.path, f.begin_snapshot::text AS b, f.partial_max::text AS pm,
                          f.record_count::text AS n, f.file_size_bytes::text AS size, f.row_id_start::text AS r,
                          c.checksum
                   FROM ${sql(S(project))}.ducklake_data_file f
                   LEFT JOIN ${sql(S(project))}.mesa_chain c ON c.data_file_id = f.data_file_id AND c.file_name = f.path
                   WHERE f.table_id = ${TABLE_ID} AND f.end_snapshot IS NULL
                   ORDER BY f.begin_snapshot, f.data_file_id`,
          (rows) =>
            rows.map((r) => ({
              dataFileId: Number(r.id),
              fileName: r.path,
              beginSnapshot: Number(r.b),
              lastSnapshot: Number(r.pm ?? r.b),
              recordCount: Number(r.n),
              fileSizeBytes: Number(r.size),
              rowIdStart: r.r === null ? null : Number(r.r),
              checksum: r.checksum ?? ""
            }))
        ), "liveFiles")

    const commitCompaction: CatalogService["commitCompaction"] = (project, input) =>
      withSql((sql) =>
        sql.withTransaction(Effect.gen(function*() {
          const s = sql(S(project))
          yield* sql`LOCK TABLE ${s}.ducklake_snapshot IN SHARE ROW EXCLUSIVE MODE`
          const ids = input.sources.map((f) => f.dataFileId)
          const [live] = yield* sql<any>`SELECT count(*)::int AS n FROM ${s}.ducklake_data_file
                                          WHERE data_file_id = ANY(${ids}::int8[]) AND end_snapshot IS NULL`
          if (live.n !== ids.length) {
            return yield* Effect.fail(
              new CatalogError({ operation: "commitCompaction", cause: new Error("a source file is no longer live") })
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
          const [head] = yield* sql<any>`SELECT ${chainHead(sql, S(project))} AS h`
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

    const scheduledForDeletion: CatalogService["scheduledForDeletion"] = (project, before) =>
      withSql((sql) =>
        Effect.map(
          sql<any>`SELECT data_file_id::text AS id, path FROM ${sql(S(project))}.ducklake_files_scheduled_for_deletion
                   WHERE schedule_start < ${before} ORDER BY data_file_id`,
          (rows) => rows.map((r) => ({ dataFileId: Number(r.id), relativePath: r.path as string }))
        ), "scheduledForDeletion")

    const forgetScheduled: CatalogService["forgetScheduled"] = (project, ids) =>
      ids.length === 0 ? Effect.void : withSql((sql) =>
        sql`DELETE FROM ${sql(S(project))}.ducklake_files_scheduled_for_deletion WHERE data_file_id = ANY(${ids as Array<number>}::int8[])`, "forgetScheduled")
        .pipe(Effect.asVoid)


    const renames: CatalogService["renames"] = (project, maxSnapshot) =>
      withSql((sql) =>
        Effect.map(
          sql<any>`SELECT snapshot_id::text AS id, ts, from_path, to_path, target_type, object_id::text AS oid, actor
                   FROM ${sql(S(project))}.mesa_renames
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

    const currentRowsUnder: CatalogService["currentRowsUnder"] = (project, path) =>
      withSql((sql) =>
        Effect.map(
          sql<any>`SELECT irods_path, attribute, value, unit, op, target_type, object_id::text AS oid,
                          ts, snapshot_id::text AS snapshot_id, change_seq
                   FROM ${sql(S(project))}.mesa_current_avus
                   WHERE irods_path = ${path} OR starts_with(irods_path, ${path + "/"})
                   ORDER BY irods_path, attribute, value, unit`,
          (rows) => rows.map(currentRowOf)
        ), "currentRowsUnder")

    const currentAvus: CatalogService["currentAvus"] = (project, path) =>
      withSql((sql) =>
        Effect.map(
          // One round trip: whether the index lags, and the path's rows (none when it lags).
          sql<any>`SELECT l.behind, c.attribute, c.value, c.unit, c.actor, c.ts, c.snapshot_id::text AS snapshot_id,
                          c.source, c.via_ticket, c.rule_invocation
                   FROM (SELECT ${indexMark(sql, S(project))} IS NOT NULL AS behind) l
                   LEFT JOIN ${sql(S(project))}.mesa_current_avus c
                     ON NOT l.behind AND c.irods_path = ${path} AND c.op = 'add'
                   ORDER BY c.attribute, c.value, c.unit`,
          (rows) => ({
            behind: rows[0]?.behind === true,
            avus: rows.filter((r) => r.attribute !== null).map((r) => ({
              attribute: r.attribute,
              value: r.value,
              unit: r.unit,
              actor: r.actor,
              ts: new Date(r.ts),
              snapshotId: Number(r.snapshot_id),
              source: r.source,
              viaTicket: r.via_ticket,
              ruleInvocation: r.rule_invocation
            }))
          })
        ), "currentAvus")

    const listSnapshots: CatalogService["listSnapshots"] = (project, { limit }) =>
      withSql((sql) =>
        Effect.map(
          // The file that holds the snapshot's rows now: its own, or the compacted file that replaced it.
          sql<any>`SELECT s.snapshot_id::text AS id, s.snapshot_time, m.actor, m.note, m.change_count,
                          COALESCE((SELECT f.path FROM ${sql(S(project))}.ducklake_data_file f
                                    WHERE f.end_snapshot IS NULL AND f.begin_snapshot <= s.snapshot_id
                                      AND COALESCE(f.partial_max, f.begin_snapshot) >= s.snapshot_id
                                    ORDER BY f.data_file_id DESC LIMIT 1), m.file_path) AS file_path,
                          (SELECT max(p.snapshot_id)::text FROM ${sql(S(project))}.mesa_snapshot p
                           WHERE p.snapshot_id < s.snapshot_id) AS parent
                   FROM ${sql(S(project))}.ducklake_snapshot s
                   JOIN ${sql(S(project))}.mesa_snapshot m ON m.snapshot_id = s.snapshot_id
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
        ), "listSnapshots")

    const snapshotAt: CatalogService["snapshotAt"] = (project, at) =>
      withSql((sql) =>
        Effect.map(
          sql<any>`SELECT max(snapshot_id)::text AS id FROM ${sql(S(project))}.ducklake_snapshot WHERE snapshot_time <= ${at}`,
          (rows) => (rows[0]?.id === null || rows[0]?.id === undefined ? undefined : Number(rows[0].id))
        ), "snapshotAt")

    const requireSnapshot: CatalogService["requireSnapshot"] = (project, snapshotId) =>
      withSql((sql) =>
        Effect.flatMap(
          sql<any>`SELECT 1 FROM ${sql(S(project))}.ducklake_snapshot WHERE snapshot_id = ${snapshotId}`,
          (rows) =>
            rows.length > 0
              ? Effect.void
              : Effect.fail(new SnapshotNotFound({ projectId: project.projectId, snapshotId }))
        ), "requireSnapshot")

    const latestSnapshot: CatalogService["latestSnapshot"] = (project) =>
      withSql((sql) =>
        Effect.map(
          sql<any>`SELECT max(snapshot_id)::text AS id FROM ${sql(S(project))}.ducklake_snapshot`,
          (rows) => Number(rows[0]?.id ?? 0)
        ), "latestSnapshot")

    return Catalog.of({
      registerProject,
      getProject,
      findProjectByPath,
      listProjects,
      grantReader,
      setProjectStatus,
      withWriteLock,
      findIdempotent,
      currentRows,
      currentRowsOf,
      reserveSnapshot,
      indexThrough,
      indexEmpty,
      applyIndex,
      snapshotsAfter,
      markPushed,
      commitSnapshot,
      dropPending,
      commitRecord,
      markerWritten,
      missingMarkers,
      failPending,
      pendingWrites,
      pendingWrite,
      isCommitted,
      pinnedLocalFiles,
      files,
      currentAvus,
      listSnapshots,
      snapshotAt,
      requireSnapshot,
      latestSnapshot,
      liveFiles,
      renames,
      currentRowsUnder,
      commitCompaction,
      scheduledForDeletion,
      forgetScheduled,
      withSql: (f) => withSql(f) as any,
      target
    })
  })

/** A `mesa_current_avus` row for a change (the latest of its triple). */
export const currentAvuRow = (r: ChangeRow) => ({
  irods_path: r.irodsPath,
  attribute: r.attribute,
  value: r.value,
  unit: r.unit,
  op: r.op,
  ts: r.ts,
  snapshot_id: r.snapshotId,
  change_seq: r.changeSeq,
  actor: r.actor,
  source: r.source,
  via_ticket: r.viaTicket,
  rule_invocation: r.ruleInvocation,
  target_type: r.targetType,
  object_id: r.objectId
})

/** `ducklake_file_column_stats` rows of one data file. */
export const fileStatsRows = (fileId: number, stats: ReadonlyArray<ColumnStats>) =>
  stats.map((c) => ({
    data_file_id: fileId,
    table_id: TABLE_ID,
    column_id: c.columnId,
    column_size_bytes: c.columnSizeBytes,
    value_count: c.valueCount,
    null_count: c.nullCount,
    min_value: c.min,
    max_value: c.max,
    contains_nan: null,
    extra_stats: null
  }))

/** One row per AVU triple (the latest by valid time, snapshot, position): one upsert may touch a key only once. */
export const latestPerTriple = (rows: ReadonlyArray<ChangeRow>): Array<ChangeRow> => {
  const latest = new Map<string, ChangeRow>()
  const later = (a: ChangeRow, b: ChangeRow) =>
    a.ts.getTime() !== b.ts.getTime()
      ? a.ts > b.ts
      : a.snapshotId !== b.snapshotId
      ? a.snapshotId > b.snapshotId
      : a.changeSeq > b.changeSeq
  for (const r of rows) {
    const key = JSON.stringify([r.irodsPath, r.attribute, r.value, r.unit])
    const seen = latest.get(key)
    if (seen === undefined || later(r, seen)) latest.set(key, r)
  }
  return [...latest.values()]
}

/** The live catalog layer. Connects lazily: building it never fails because PostgreSQL is down. */
export const layer = (config: CatalogConfig) => Layer.scoped(Catalog, make(config))

export { COLUMNS }
