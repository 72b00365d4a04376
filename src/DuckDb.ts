/**
 * `DuckDb`: one in-process DuckDB instance per client scope. It writes exactly one Parquet file per snapshot
 * (field ids = DuckLake column ids, zstd, key-value metadata that makes the file describe itself) and reads the
 * history back from the files the catalog lists.
 */
import {
  DOUBLE,
  DuckDBDataChunk,
  DuckDBInstance,
  type DuckDBConnection,
  DuckDBTimestampTZValue,
  type DuckDBType,
  INTEGER,
  VARCHAR
} from "@duckdb/node-api"
import { Context, Effect, Layer, Pool } from "effect"
import * as fsp from "node:fs/promises"
import { batchStats, columnValue, type ColumnValue } from "./catalog/stats.js"
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
  /**
   * The latest change of every AVU triple on the given (path, attribute) pairs among snapshots after `afterSnapshot`
   * (what a bulk ingest's `set` needs of the ingest's own earlier snapshots).
   */
  readonly latestOfPairs: (
    files: ReadonlyArray<string>,
    pairs: ReadonlyArray<readonly [string, string]>,
    afterSnapshot: number
  ) => Effect.Effect<ReadonlyArray<ChangeRow>, DuckDbError>
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

/** Rows per data chunk appended (DuckDB's vector size). */
const CHUNK_ROWS = 2048
/** Below this many rows a batch's statistics come from JS; from it up, from DuckDB. */
const JS_STATS_MAX_ROWS = 2_000

type Column = (typeof COLUMNS)[number]
const isTime = (c: Column) => c.duck === "TIMESTAMPTZ"
const isInt = (c: Column) => c.duck === "BIGINT" || c.duck === "INTEGER"
/**
 * How a varying column is staged: text as VARCHAR; numbers, times (epoch ms) and dictionary positions as DOUBLE
 * (exact for all of them).
 */
const stagedType = (c: Column, dict: ReadonlyMap<string, number> | undefined) =>
  c.duck === "VARCHAR" && dict === undefined ? "VARCHAR" as const : "DOUBLE" as const
const DUCK_TYPES: Record<"VARCHAR" | "DOUBLE" | "INTEGER", DuckDBType> = { VARCHAR, DOUBLE, INTEGER }
const stageValue = (v: ColumnValue): string | number | null => (v instanceof Date ? v.getTime() : v)
const sameValue = (a: ColumnValue, b: ColumnValue) =>
  a === b || (a instanceof Date && b instanceof Date && a.getTime() === b.getTime())
/** The SQL giving a column its type, from a staged column or a constant. */
const typed = (c: Column, expr: string) =>
  isTime(c) ? `CAST(epoch_ms(CAST(${expr} AS BIGINT)) AS TIMESTAMPTZ)` : isInt(c) ? `CAST(${expr} AS ${c.duck})` : expr
const constantSql = (c: Column, v: ColumnValue) =>
  v === null
    ? `CAST(NULL AS ${c.duck})`
    : typeof v === "string"
    ? lit(v)
    : typed(c, String(v instanceof Date ? v.getTime() : v))

/**
 * Which columns of a batch vary (they are staged) and the select list that rebuilds every column from the staging
 * table and constants. Bulk batches mostly share actor, source, target type, unit and NULLs, so this stages a third
 * of the values, through columnar data chunks rather than a call per value.
 */
const stagingPlan = (rows: ReadonlyArray<ChangeRow>, projectId: string) => {
  const varying: Array<Column> = []
  /** Text columns with few distinct values, staged as positions in a list literal (dictionary encoding). */
  const dictionaries = new Map<Column, Map<string, number>>()
  const select: Array<string> = []
  // A SQL literal cannot hold NUL (our decoders refuse it; the staging path takes any string).
  const literalOk = (v: ColumnValue) => !(typeof v === "string" && v.includes("\u0000"))
  for (const c of COLUMNS) {
    const first = columnValue(rows[0]!, projectId, c.name)
    let constant = true
    for (let i = 1; i < rows.length && constant; i++) constant = sameValue(columnValue(rows[i]!, projectId, c.name), first)
    if (constant && literalOk(first)) {
      select.push(`${constantSql(c, first)} AS ${c.name}`)
      continue
    }
    varying.push(c)
    const dict = c.duck === "VARCHAR" && rows.length >= 64 ? dictionaryOf(rows, projectId, c) : undefined
    if (dict === undefined) {
      select.push(`${typed(c, `s_${c.name}`)} AS ${c.name}`)
      continue
    }
    dictionaries.set(c, dict)
    select.push(`([${[...dict.keys()].map(lit).join(", ")}])[CAST(s_${c.name} AS INTEGER)] AS ${c.name}`)
  }
  const table = `mesa_stage_${varying.map((c) => `${c.id}${dictionaries.has(c) ? "d" : ""}`).join("_") || "none"}`
  return { varying, dictionaries, select: select.join(", "), table }
}

/** Distinct values of a text column (value → 1-based position), unless there are too many to be worth it. */
const dictionaryOf = (rows: ReadonlyArray<ChangeRow>, projectId: string, c: Column) => {
  const limit = Math.min(1024, rows.length >> 3)
  const dict = new Map<string, number>()
  for (let i = 0; i < rows.length; i++) {
    const v = columnValue(rows[i]!, projectId, c.name)
    if (v === null || dict.has(v as string)) continue
    if (dict.size >= limit || (v as string).includes("\u0000")) return undefined
    dict.set(v as string, dict.size + 1)
  }
  return dict
}

/** Exact min, max and non-null count of every column, in one pass. */
const aggregateOf = (name: string) =>
  `CAST(min(${name}) AS VARCHAR), CAST(max(${name}) AS VARCHAR), CAST(count(${name}) AS DOUBLE)`
const aggregates = COLUMNS.map((c) => aggregateOf(c.name)).join(", ")

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

    const writeSnapshotFile: DuckDbService["writeSnapshotFile"] = (file, rows, projectId, metadata) =>
      withConnection(async (con) => {
        const plan = stagingPlan(rows, projectId)
        // A staging table per column set on this connection, replaced for each batch: emptying one with TRUNCATE
        // or DELETE does not give its memory back in an in-memory database (measured: +76 MB over a hundred
        // 10,000-row batches), replacing it does. Only the columns that vary within the batch are staged.
        // With nothing varying (a one-row batch), a placeholder column still gives the table its row.
        const cols = plan.varying.length === 0
          ? [["s_none", "INTEGER"] as const]
          : plan.varying.map((c) => [`s_${c.name}`, stagedType(c, plan.dictionaries.get(c))] as const)
        await con.run(`CREATE OR REPLACE TEMP TABLE ${plan.table} (${cols.map(([name, type]) => `${name} ${type}`).join(", ")})`)
        try {
          const app = await con.createAppender(plan.table, "main", "temp")
          const types = cols.map(([, type]) => DUCK_TYPES[type])
          for (let start = 0; start < rows.length; start += CHUNK_ROWS) {
            const n = Math.min(CHUNK_ROWS, rows.length - start)
            const chunk = DuckDBDataChunk.create(types, n)
            if (plan.varying.length === 0) chunk.setColumnValues(0, new Array(n).fill(0))
            plan.varying.forEach((c, i) => {
              const values: Array<string | number | null> = new Array(n)
              const dict = plan.dictionaries.get(c)
              for (let k = 0; k < n; k++) {
                const v = columnValue(rows[start + k]!, projectId, c.name)
                values[k] = dict === undefined ? stageValue(v) : v === null ? null : dict.get(v as string)!
              }
              chunk.setColumnValues(i, values)
            })
            app.appendDataChunk(chunk)
          }
          app.flushSync()
          app.closeSync()
          const view = `SELECT ${plan.select} FROM ${plan.table}`
          const fieldIds = COLUMNS.map((c) => `${c.name}: ${c.id}`).join(", ")
          const kv = Object.entries(metadata).map(([k, v]) => `${k}: ${lit(v)}`).join(", ")
          // Small batches: statistics from JS (no extra statement). Large ones: DuckDB's aggregates are faster.
          // Constant columns' statistics are those of any one row.
          const fromJs = batchStats(rows.length < JS_STATS_MAX_ROWS ? rows : [rows[0]!], projectId)
          let agg: Array<any>
          if (fromJs === undefined) {
            agg = (await con.runAndReadAll(`SELECT ${aggregates} FROM (${view})`)).getRows()[0] as Array<any>
          } else if (rows.length < JS_STATS_MAX_ROWS) {
            agg = fromJs.flatMap((c) => [c.min, c.max, c.valueCount])
          } else {
            const varied = plan.varying.length === 0 ? [] : (await con.runAndReadAll(
              `SELECT ${plan.varying.map((c) => aggregateOf(c.name)).join(", ")} FROM (${view})`
            )).getRows()[0] as Array<any>
            agg = COLUMNS.flatMap((c, i) => {
              const v = plan.varying.indexOf(c)
              if (v >= 0) return varied.slice(3 * v, 3 * v + 3)
              const k = fromJs[i]!
              return [k.min, k.max, k.valueCount === 0 ? 0 : rows.length]
            })
          }
          // Rows go in the order they were recorded (change_seq): sorting them bought nothing for one row group.
          const copied = await con.runAndReadAll(
            `COPY (${view}) TO ${lit(file)}
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
          // A large batch's staging memory goes now; a small one's stays until the table is next replaced.
          if (rows.length >= JS_STATS_MAX_ROWS) await con.run(`DROP TABLE IF EXISTS ${plan.table}`).catch(() => undefined)
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

    const latestOfPairs: DuckDbService["latestOfPairs"] = (files, pairs, afterSnapshot) =>
      files.length === 0 || pairs.length === 0 ? Effect.succeed([]) : withConnection(async (con) => {
        const wanted = pairs.map(([p, a]) => `(${lit(p)}, ${lit(a)})`).join(", ")
        const result = await con.runAndReadAll(
          `SELECT ${SELECT_ROW} FROM read_parquet(${fileList(files)}, union_by_name = true) r
           SEMI JOIN (VALUES ${wanted}) q(p, a) ON r.irods_path = q.p AND r.attribute = q.a
           WHERE snapshot_id > ${Math.floor(afterSnapshot)}
           QUALIFY row_number() OVER (PARTITION BY irods_path, attribute, value, unit
                                      ORDER BY ts DESC, snapshot_id DESC, change_seq DESC) = 1`
        )
        return (result.getRowObjectsJS() as Array<any>).map(toChangeRow)
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

    return DuckDb.of({
      writeSnapshotFile,
      writeCompactedFile,
      describeFile,
      avusAsOf,
      latestOfPairs,
      changes,
      fileMetadata,
      query
    })
  })

export const layer = (options?: DuckDbOptions) =>
  Layer.scoped(DuckDb, make(options))

/** Field id of a column (exported for tests that inspect files). */
export { columnId }
export const toLakeWriteError = (projectId: string, snapshotId: number) => (e: DuckDbError) =>
  new LakeWriteError({ projectId, snapshotId, step: "write-parquet", cause: e })
