/**
 * `DuckDb`: one in-process DuckDB instance per client scope. It writes exactly one Parquet file per snapshot
 * (field ids = DuckLake column ids, zstd, key-value metadata that makes the file describe itself) and reads the
 * history back from the files the catalog lists.
 */
import { DuckDBInstance, type DuckDBConnection, DuckDBTimestampTZValue } from "@duckdb/node-api"
import { Context, Effect, Layer, Pool } from "effect"
import * as fsp from "node:fs/promises"
import { batchStats } from "./catalog/stats.js"
import { COLUMNS, columnId } from "./catalog/ducklakeSchema.js"
import type { ColumnStats } from "./Catalog.js"
import type { Avu, ChangeRow } from "./domain.js"
import { LakeWriteError } from "./errors.js"

export class DuckDbError extends Error {
  readonly _tag = "DuckDbError"
}

export interface WrittenFile {
  readonly recordCount: number
  readonly fileSizeBytes: number
  readonly footerSize: number
  readonly stats: ReadonlyArray<ColumnStats>
}

/** A filter over change rows, applied inside DuckDB after the catalog has pruned the files. */
export interface RowFilter {
  readonly irodsPath?: string
  readonly attribute?: string
  readonly validFrom?: Date
  readonly validTo?: Date
  readonly maxSnapshot?: number
  readonly afterSnapshot?: number
}

export interface DuckDbService {
  readonly writeSnapshotFile: (
    file: string,
    rows: ReadonlyArray<ChangeRow>,
    projectId: string,
    metadata: Readonly<Record<string, string>>
  ) => Effect.Effect<WrittenFile, DuckDbError>
  /** Effective AVUs of a path at a valid time, bounded by a snapshot id (transaction time). */
  readonly avusAsOf: (
    files: ReadonlyArray<string>,
    irodsPath: string,
    validAt: Date,
    maxSnapshot: number
  ) => Effect.Effect<ReadonlyArray<Avu>, DuckDbError>
  /** Change rows matching a filter, newest first (valid time, snapshot, position), at most `limit`. */
  readonly changes: (
    files: ReadonlyArray<string>,
    filter: RowFilter,
    options: { readonly limit?: number; readonly order: "newest" | "oldest" }
  ) => Effect.Effect<ReadonlyArray<ChangeRow>, DuckDbError>
  /**
   * Merges snapshot files into one, sorted by path (so path statistics prune well), carrying DuckLake's internal
   * `_ducklake_internal_snapshot_id` and `_ducklake_internal_row_id` columns so time travel and row ids stay exact.
   */
  readonly writeCompactedFile: (
    sources: ReadonlyArray<{ readonly file: string; readonly rowIdStart: number | null }>,
    out: string,
    metadata: Readonly<Record<string, string>>
  ) => Effect.Effect<WrittenFile, DuckDbError>
  /** The catalog's description of an existing Parquet file (recovery and rebuild). */
  readonly describeFile: (file: string) => Effect.Effect<WrittenFile, DuckDbError>
  /** Key-value metadata of a Parquet file (what rebuild reads). */
  readonly fileMetadata: (file: string) => Effect.Effect<Readonly<Record<string, string>>, DuckDbError>
  /** Runs a query on a fresh connection (for tests and maintenance). */
  readonly query: (sqlText: string) => Effect.Effect<ReadonlyArray<Record<string, unknown>>, DuckDbError>
}

export class DuckDb extends Context.Tag("mesa-ducklake/DuckDb")<DuckDb, DuckDbService>() {}

/** Field ids DuckLake reserves for its internal columns in compacted files. */
export const INTERNAL_SNAPSHOT_ID_FIELD = 2147483539
export const INTERNAL_ROW_ID_FIELD = 2147483540

const lit = (s: string) => `'${s.replace(/'/g, "''")}'`
const fileList = (files: ReadonlyArray<string>) => `[${files.map(lit).join(", ")}]`
const tsLit = (d: Date) => `TIMESTAMPTZ ${lit(d.toISOString())}`
const micros = (d: Date) => BigInt(d.getTime()) * 1000n

const SELECT_ROW = `CAST(snapshot_id AS DOUBLE) AS snapshot_id, change_seq, CAST(epoch_ms(ts) AS DOUBLE) AS ts_ms,
  irods_path, target_type, CAST(object_id AS DOUBLE) AS object_id, attribute, value, unit, op, actor, source,
  via_ticket, rule_invocation, on_behalf_of`

const toChangeRow = (r: Record<string, any>): ChangeRow => ({
  snapshotId: r.snapshot_id,
  changeSeq: r.change_seq,
  ts: new Date(r.ts_ms),
  irodsPath: r.irods_path,
  targetType: r.target_type,
  objectId: r.object_id ?? null,
  attribute: r.attribute,
  value: r.value,
  unit: r.unit,
  op: r.op,
  actor: r.actor,
  source: r.source,
  viaTicket: r.via_ticket ?? null,
  ruleInvocation: r.rule_invocation ?? null,
  onBehalfOf: r.on_behalf_of ?? null
})

/** Exact min, max and non-null count of every column, in one pass. */
const aggregates = COLUMNS.map((c) =>
  `CAST(min(${c.name}) AS VARCHAR), CAST(max(${c.name}) AS VARCHAR), CAST(count(${c.name}) AS DOUBLE)`
).join(", ")

const statsFrom = (
  row: ReadonlyArray<any>,
  recordCount: number,
  sizes: ReadonlyMap<string, number>
): Array<ColumnStats> =>
  COLUMNS.map((c, i) => ({
    columnId: c.id,
    columnSizeBytes: sizes.get(c.name) ?? null,
    // DuckLake's value_count is the number of non-NULL values (what the extension writes).
    valueCount: Number(row[3 * i + 2] ?? 0),
    nullCount: recordCount - Number(row[3 * i + 2] ?? 0),
    min: row[3 * i] ?? null,
    max: row[3 * i + 1] ?? null
  }))

/**
 * What the catalog records of a data file, read from the file itself: the same numbers whether we just wrote it,
 * are recovering an interrupted write, or rebuild a catalog from storage. Min/max are exact (computed over the
 * data): DuckDB's writer truncates long string statistics, and a bound that is too tight would make DuckLake
 * readers, ours and the extension, skip the file wrongly.
 */
const describe = async (con: DuckDBConnection, file: string): Promise<WrittenFile> => {
  const f = lit(file)
  const meta = await con.runAndReadAll(`SELECT CAST(num_rows AS DOUBLE) AS n FROM parquet_file_metadata(${f})`)
  const recordCount = Number((meta.getRowObjectsJS()[0] as any).n)
  const sizes = await con.runAndReadAll(
    `SELECT path_in_schema AS name, CAST(sum(total_compressed_size) AS DOUBLE) AS size FROM parquet_metadata(${f}) GROUP BY 1`
  )
  const sizeOf = new Map((sizes.getRowObjectsJS() as Array<any>).map((r) => [String(r.name), Number(r.size)]))
  const agg = await con.runAndReadAll(`SELECT ${aggregates} FROM read_parquet(${f})`)
  const stats = statsFrom(agg.getRows()[0] as Array<any>, recordCount, sizeOf)
  const handle = await fsp.open(file, "r")
  try {
    const { size } = await handle.stat()
    const tail = Buffer.alloc(8)
    await handle.read(tail, 0, 8, size - 8)
    if (tail.subarray(4).toString("latin1") !== "PAR1") throw new Error(`${file} is not a Parquet file`)
    return { recordCount, fileSizeBytes: size, footerSize: tail.readUInt32LE(0), stats }
  } finally {
    await handle.close()
  }
}

export interface DuckDbOptions {
  readonly threads?: number
  readonly memoryLimit?: string
  /** Pooled connections (default 4). */
  readonly connections?: number
}

export const make = (options: DuckDbOptions = {}) =>
  Effect.gen(function*() {
    const instance = yield* Effect.acquireRelease(
      Effect.tryPromise({
        try: () =>
          DuckDBInstance.create(":memory:", {
            threads: String(options.threads ?? 2),
            memory_limit: options.memoryLimit ?? "512MB",
            autoinstall_known_extensions: "false",
            autoload_known_extensions: "false"
          }),
        catch: (cause) => new DuckDbError(`cannot start DuckDB: ${String(cause)}`, { cause })
      }),
      (db) => Effect.sync(() => db.closeSync())
    )

    const connect = Effect.acquireRelease(
      Effect.tryPromise({
        try: async () => {
          const con = await instance.connect()
          // Timestamp statistics are written as text: keep them in UTC (`2026-01-01 00:00:00+00`).
          await con.run("SET TimeZone = 'UTC'")
          return con
        },
        catch: (cause) => new DuckDbError(`cannot connect to DuckDB: ${String(cause)}`, { cause })
      }),
      (con) => Effect.sync(() => con.closeSync())
    )
    const pool = yield* Pool.make({ acquire: connect, size: options.connections ?? 4 })

    /** A pooled connection for one operation; one that failed or was interrupted is discarded, not reused. */
    const withConnection = <A>(f: (con: DuckDBConnection) => Promise<A>) =>
      Effect.scoped(
        Effect.flatMap(pool.get, (con) =>
          Effect.tryPromise({
            try: () => f(con),
            catch: (cause) => new DuckDbError(cause instanceof Error ? cause.message : String(cause), { cause })
          }).pipe(Effect.onExit((exit) => (exit._tag === "Success" ? Effect.void : pool.invalidate(con)))))
      )

    /** Connections whose staging table exists and is empty. */
    const staged = new WeakSet<DuckDBConnection>()
    const writeSnapshotFile: DuckDbService["writeSnapshotFile"] = (file, rows, projectId, metadata) =>
      withConnection(async (con) => {
        // One staging table per pooled connection, left empty after each batch (cheaper than one table per batch).
        if (!staged.has(con)) {
          await con.run(`CREATE TEMP TABLE IF NOT EXISTS mesa_batch (${COLUMNS.map((c) => `${c.name} ${c.duck}`).join(", ")})`)
          await con.run(`TRUNCATE mesa_batch`)
          staged.add(con)
        }
        try {
          const app = await con.createAppender("mesa_batch", "main", "temp")
          for (const r of rows) {
            app.appendBigInt(BigInt(r.snapshotId))
            app.appendInteger(r.changeSeq)
            app.appendTimestampTZ(new DuckDBTimestampTZValue(micros(r.ts)))
            app.appendVarchar(r.irodsPath)
            app.appendVarchar(r.targetType)
            if (r.objectId === null) app.appendNull()
            else app.appendBigInt(BigInt(r.objectId))
            app.appendVarchar(r.attribute)
            app.appendVarchar(r.value)
            app.appendVarchar(r.unit)
            app.appendVarchar(r.op)
            app.appendVarchar(r.actor)
            app.appendVarchar(r.source)
            for (const v of [r.viaTicket, r.ruleInvocation, r.onBehalfOf]) {
              if (v === null) app.appendNull()
              else app.appendVarchar(v)
            }
            app.appendVarchar(projectId)
            app.endRow()
          }
          app.flushSync()
          app.closeSync()
          const fieldIds = COLUMNS.map((c) => `${c.name}: ${c.id}`).join(", ")
          const kv = Object.entries(metadata).map(([k, v]) => `${k}: ${lit(v)}`).join(", ")
          const fromJs = batchStats(rows, projectId)
          const agg = fromJs === undefined
            ? (await con.runAndReadAll(`SELECT ${aggregates} FROM mesa_batch`)).getRows()[0] as Array<any>
            : fromJs.flatMap((c) => [c.min, c.max, c.valueCount])
          const copied = await con.runAndReadAll(
            `COPY (SELECT * FROM mesa_batch ORDER BY ts, attribute, value, unit, change_seq) TO ${lit(file)}
             (FORMAT parquet, COMPRESSION zstd, FIELD_IDS {${fieldIds}}, KV_METADATA {${kv}}, RETURN_STATS true)`
          )
          const out = copied.getRowObjectsJson()[0] as any
          const sizes = new Map<string, number>()
          for (const entry of out.column_statistics as Array<any>) {
            const column = String(entry.key).replace(/^"|"$/g, "")
            const size = (entry.value as Array<any>).find((x: any) => x.key === "column_size_bytes")?.value
            if (size !== undefined) sizes.set(column, Number(size))
          }
          const recordCount = Number(out.count)
          return {
            recordCount,
            fileSizeBytes: Number(out.file_size_bytes),
            footerSize: Number(out.footer_size_bytes),
            stats: statsFrom(agg, recordCount, sizes)
          }
        } finally {
          // Leave the staging table empty; if that fails, the next batch on this connection empties it first.
          await con.run(`TRUNCATE mesa_batch`).catch(() => staged.delete(con))
        }
      })

    const avusAsOf: DuckDbService["avusAsOf"] = (files, irodsPath, validAt, maxSnapshot) =>
      files.length === 0 ? Effect.succeed([]) : withConnection(async (con) => {
        const result = await con.runAndReadAll(
          `SELECT attribute, value, unit, actor, CAST(epoch_ms(ts) AS DOUBLE) AS ts_ms, CAST(snapshot_id AS DOUBLE) AS snapshot_id,
                  source, via_ticket, rule_invocation, op
           FROM read_parquet(${fileList(files)}, union_by_name = true)
           WHERE irods_path = $path AND ts <= $t AND snapshot_id <= $max
           QUALIFY row_number() OVER (PARTITION BY attribute, value, unit
                                      ORDER BY ts DESC, snapshot_id DESC, change_seq DESC) = 1
           ORDER BY attribute, value, unit`,
          {
            path: irodsPath,
            t: new DuckDBTimestampTZValue(micros(validAt)),
            max: BigInt(maxSnapshot)
          }
        )
        return (result.getRowObjectsJS() as Array<any>).filter((r) => r.op === "add").map((r) => ({
          attribute: r.attribute,
          value: r.value,
          unit: r.unit,
          actor: r.actor,
          ts: new Date(r.ts_ms),
          snapshotId: r.snapshot_id,
          source: r.source,
          viaTicket: r.via_ticket ?? null,
          ruleInvocation: r.rule_invocation ?? null
        }))
      })

    const changes: DuckDbService["changes"] = (files, filter, opts) =>
      files.length === 0 ? Effect.succeed([]) : withConnection(async (con) => {
        const conds: Array<string> = ["true"]
        if (filter.irodsPath !== undefined) conds.push(`irods_path = ${lit(filter.irodsPath)}`)
        if (filter.attribute !== undefined) conds.push(`attribute = ${lit(filter.attribute)}`)
        if (filter.validFrom !== undefined) conds.push(`ts >= ${tsLit(filter.validFrom)}`)
        if (filter.validTo !== undefined) conds.push(`ts <= ${tsLit(filter.validTo)}`)
        if (filter.maxSnapshot !== undefined) conds.push(`snapshot_id <= ${filter.maxSnapshot}`)
        if (filter.afterSnapshot !== undefined) conds.push(`snapshot_id > ${filter.afterSnapshot}`)
        const dir = opts.order === "newest" ? "DESC" : "ASC"
        const result = await con.runAndReadAll(
          `SELECT ${SELECT_ROW} FROM read_parquet(${fileList(files)}, union_by_name = true) WHERE ${conds.join(" AND ")}
           ORDER BY ts ${dir}, snapshot_id ${dir}, change_seq ${dir}
           ${opts.limit === undefined ? "" : `LIMIT ${Math.max(0, Math.floor(opts.limit))}`}`
        )
        return (result.getRowObjectsJS() as Array<any>).map(toChangeRow)
      })

    const fileMetadata: DuckDbService["fileMetadata"] = (file) =>
      withConnection(async (con) => {
        const r = await con.runAndReadAll(
          `SELECT decode(key) AS k, decode(value) AS v FROM parquet_kv_metadata(${lit(file)})`
        )
        return Object.fromEntries((r.getRowObjectsJS() as Array<any>).map((x) => [x.k, x.v]))
      })

    const query: DuckDbService["query"] = (sqlText) =>
      withConnection(async (con) => (await con.runAndReadAll(sqlText)).getRowObjectsJS() as any)

    const writeCompactedFile: DuckDbService["writeCompactedFile"] = (sources, out, metadata) =>
      withConnection(async (con) => {
        // A source that was itself compacted carries its rows' ids; a plain one has them implied by position.
        const starts = sources.map((x) => `(${lit(x.file)}, ${x.rowIdStart === null ? "NULL" : Math.floor(x.rowIdStart)}::BIGINT)`)
          .join(", ")
        const rowId = sources.some((x) => x.rowIdStart === null)
          ? "COALESCE(r._ducklake_internal_row_id, s.row_id_start + r.file_row_number)"
          : "s.row_id_start + r.file_row_number"
        const fieldIds = [
          ...COLUMNS.map((c) => `${c.name}: ${c.id}`),
          `_ducklake_internal_snapshot_id: ${INTERNAL_SNAPSHOT_ID_FIELD}`,
          `_ducklake_internal_row_id: ${INTERNAL_ROW_ID_FIELD}`
        ].join(", ")
        const kv = Object.entries(metadata).map(([k, v]) => `${k}: ${lit(v)}`).join(", ")
        await con.run(
          `COPY (
             SELECT ${COLUMNS.map((c) => `r.${c.name}`).join(", ")},
                    r.snapshot_id AS _ducklake_internal_snapshot_id,
                    ${rowId} AS _ducklake_internal_row_id
             FROM read_parquet(${fileList(sources.map((x) => x.file))}, filename = true, file_row_number = true,
                               union_by_name = true) r
             JOIN (VALUES ${starts}) s(filename, row_id_start) ON s.filename = r.filename
             ORDER BY r.irods_path, r.ts, r.snapshot_id, r.change_seq
           ) TO ${lit(out)} (FORMAT parquet, COMPRESSION zstd, FIELD_IDS {${fieldIds}}, KV_METADATA {${kv}})`
        )
        return describe(con, out)
      })

    const describeFile: DuckDbService["describeFile"] = (file) => withConnection((con) => describe(con, file))

    return DuckDb.of({ writeSnapshotFile, writeCompactedFile, describeFile, avusAsOf, changes, fileMetadata, query })
  })

export const layer = (options?: DuckDbOptions) =>
  Layer.scoped(DuckDb, make(options))

/** Field id of a column (exported for tests that inspect files). */
export { columnId }
export const toLakeWriteError = (projectId: string, snapshotId: number) => (e: DuckDbError) =>
  new LakeWriteError({ projectId, snapshotId, step: "write-parquet", cause: e })
