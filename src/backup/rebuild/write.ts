/**
 * Writing a rebuild plan (`plan.ts`) into the catalog as a new lake schema, in one transaction: the schema (replaced
 * only when `force`), the registry row, every snapshot, data file, statistic and provenance row with the original
 * commits' ids and times, the hash chain, renames, and the derived state (table stats, the current-state index).
 * Parquet files are never touched. Also the two checks restore shares: is the schema in use, and is the root
 * registered to another project.
 */
import type { SqlClient } from "@effect/sql"
import { Effect } from "effect"
import { type CatalogService, chainRow, type ColumnStats, currentAvuRow, fileStatsRows } from "../../catalog/Catalog.js"
import { createLakeStatements, TABLE_ID } from "../../catalog/ducklakeSchema.js"
import { fileColumnStatsSource, insertTableColumnStats } from "../../catalog/tableColumnStats.js"
import { CatalogNotEmpty } from "../errors.js"
import type { RebuildPlan } from "./plan.js"

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
 * Refuses to put a project's catalog where it would clash (shared by rebuild and restore): its root registered to
 * another project (`root-registered-to-another-project`), or its schema holding tables without `force`
 * (`schema-exists`). Returns what is there now.
 */
export const refuseOccupied = (
  sql: SqlClient.SqlClient,
  input: { readonly projectId: string; readonly root: string; readonly schema: string; readonly force: boolean }
) =>
  Effect.gen(function*() {
    const other = yield* conflictingProject(sql, input.projectId, input.root)
    if (other !== undefined) {
      return yield* new CatalogNotEmpty({
        projectId: input.projectId,
        schema: input.schema,
        reason: "root-registered-to-another-project",
        detail: `${other.irods_path} is registered to project ${other.id}`
      })
    }
    const inUse = yield* schemaInUse(sql, input.schema)
    if (inUse.tables > 0 && !input.force) {
      return yield* new CatalogNotEmpty({ projectId: input.projectId, schema: input.schema, reason: "schema-exists" })
    }
    return inUse
  })

type Row = Record<string, unknown>

/** The rows of a rebuilt catalog, per table, and the totals the table stats need. */
interface CatalogRows {
  readonly ducklake_snapshot: ReadonlyArray<Row>
  readonly ducklake_data_file: ReadonlyArray<Row>
  readonly ducklake_file_column_stats: ReadonlyArray<Row>
  readonly ducklake_snapshot_changes: ReadonlyArray<Row>
  readonly mesa_snapshot: ReadonlyArray<Row>
  readonly mesa_chain: ReadonlyArray<Row>
  readonly mesa_current_avus: ReadonlyArray<Row>
  readonly mesa_renames: ReadonlyArray<Row>
  /** Rows of all data files (the next row id). */
  readonly rowCount: number
  readonly bytes: number
}

/**
 * Ids and counters as the original commits left them: data file ids and row ids are handed out in commit order;
 * the files of compactions in use get their ids after the snapshots' own files.
 */
const catalogRows = (plan: RebuildPlan, actor: string): CatalogRows => {
  let rowId = 0
  let bytes = 0
  const snapshotRows: Array<Row> = []
  const fileRows: Array<Row> = []
  const statRows: Array<Row> = []
  const changeRows: Array<Row> = []
  const mesaRows: Array<Row> = []
  let nextFileId = plan.snapshots.filter((p) => p.coveredBy === undefined).length
  const compactionFileIds = new Map(plan.compactions.map((c) => [c.snapshotId, nextFileId++] as const))
  let fileCounter = 0
  const addFileStats = (fileId: number, stats: ReadonlyArray<ColumnStats>) => statRows.push(...fileStatsRows(fileId, stats))
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
  for (const p of plan.snapshots) {
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
  }
  // The latest snapshot hands out the next file id: past every file written here, compactions' included.
  const latestRow = snapshotRows.reduce<Row | undefined>(
    (m, r) => (m === undefined || (r.snapshot_id as number) > (m.snapshot_id as number) ? r : m),
    undefined
  )
  if (latestRow !== undefined) latestRow.next_file_id = nextFileId
  // The chain as scanLake rebuilt it; a compaction whose file is not in this catalog keeps its record (id -1).
  const fileIdOf = new Map<number, number>(mesaRows.map((r) => [r.snapshot_id as number, r.data_file_id as number]))
  for (const [snapshotId, fileId] of compactionFileIds) fileIdOf.set(snapshotId, fileId)
  return {
    ducklake_snapshot: snapshotRows,
    ducklake_data_file: fileRows,
    ducklake_file_column_stats: statRows,
    ducklake_snapshot_changes: changeRows,
    mesa_snapshot: mesaRows,
    mesa_chain: plan.chain.map((r) => chainRow(r, fileIdOf.get(r.snapshotId) ?? -1)),
    mesa_current_avus: plan.current.map(currentAvuRow),
    mesa_renames: renameRows(plan),
    rowCount: rowId,
    bytes
  }
}

/** Renames travel in their snapshot file's metadata: the lineage that lets a path's history follow its object. */
const renameRows = (plan: RebuildPlan): Array<Row> =>
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

/** The tables in the order they are filled. */
const TABLES = [
  "ducklake_snapshot",
  "ducklake_data_file",
  "ducklake_file_column_stats",
  "ducklake_snapshot_changes",
  "mesa_snapshot",
  "mesa_chain",
  "mesa_current_avus",
  "mesa_renames"
] as const

/**
 * Refuses a root registered to another project, and an existing non-empty schema unless `force`; then (re)creates
 * the lake schema, with its bootstrap snapshots before the first data snapshot in transaction time, and the
 * project's registry row.
 */
const createSchema = (
  sql: SqlClient.SqlClient,
  plan: RebuildPlan,
  options: { readonly force?: boolean },
  actor: string
) =>
  Effect.gen(function*() {
    const schema = plan.metadataSchema
    yield* sql`LOCK TABLE mesa_ducklake.projects IN SHARE ROW EXCLUSIVE MODE`
    const inUse = yield* refuseOccupied(sql, {
      projectId: plan.projectId,
      root: plan.irodsPath,
      schema,
      force: options.force === true
    })
    if (inUse.exists) yield* sql`DROP SCHEMA ${sql(schema)} CASCADE`
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
  })

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
      const actor = options.actor ?? "mesa-ducklake rebuild"
      yield* createSchema(sql, plan, options, actor)
      const s = sql(plan.metadataSchema)
      const rows = catalogRows(plan, actor)
      for (const table of TABLES) {
        yield* Effect.forEach(chunk(rows[table], 500), (part) => sql`INSERT INTO ${s}.${sql(table)} ${sql.insert(part as any)}`, {
          discard: true
        })
      }
      yield* sql`UPDATE ${s}.ducklake_table_stats SET record_count = ${rows.rowCount}, next_row_id = ${rows.rowCount},
                   file_size_bytes = ${rows.bytes} WHERE table_id = ${TABLE_ID}`
      // Table-level column statistics over all files (a rebuilt catalog holds only live ones), as a commit merges them.
      if (plan.snapshots.length > 0) {
        yield* insertTableColumnStats(sql, plan.metadataSchema, fileColumnStatsSource(sql, plan.metadataSchema))
      }
      return { snapshots: plan.snapshots.length, rows: rows.rowCount, bytes: rows.bytes }
    }))
  )
