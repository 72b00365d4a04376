/**
 * Writing one snapshot's change rows as one Parquet file: batches of up to 200,000 rows by our own writer
 * (`parquetWriter.ts`), and those it cannot write (larger, or a time outside years 1-9999) by DuckDB: the staging
 * plan (constant columns become literals, text columns with few values are dictionary-encoded, only what varies is
 * staged through columnar data chunks), the batch's exact statistics (from JS up to 2,000 rows, from DuckDB beyond)
 * and the COPY with DuckLake field ids and self-describing key-value metadata.
 */
import type { DuckDBConnection, DuckDBType } from "@duckdb/node-api"
import * as fs from "node:fs"
import { COLUMNS } from "../catalog/ducklakeSchema.js"
import { batchStats, boundsOf, columnValue, type ColumnValue, columnValues, statsOfBounds } from "../catalog/stats.js"
import type { ChangeRow } from "../core/domain.js"
import { aggregateOf, aggregates, statsFrom, type WrittenFile } from "./describe.js"
import { encodeSnapshotParquet } from "./parquetWriter.js"
import { lit } from "./sql.js"

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
/** DuckDB's node API, loaded on first use (by then the instance has loaded it: importing it again is free). */
const duckApi = () => import("@duckdb/node-api")
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

type StagingPlan = ReturnType<typeof stagingPlan>

/** Creates (or replaces) the plan's staging table on this connection; returns its column types. */
const createStagingTable = async (con: DuckDBConnection, plan: StagingPlan) => {
  // A staging table per column set on this connection, replaced for each batch: emptying one with TRUNCATE
  // or DELETE does not give its memory back in an in-memory database (measured: +76 MB over a hundred
  // 10,000-row batches), replacing it does. Only the columns that vary within the batch are staged.
  // With nothing varying (a one-row batch), a placeholder column still gives the table its row.
  const cols = plan.varying.length === 0
    ? [["s_none", "INTEGER"] as const]
    : plan.varying.map((c) => [`s_${c.name}`, stagedType(c, plan.dictionaries.get(c))] as const)
  await con.run(`CREATE OR REPLACE TEMP TABLE ${plan.table} (${cols.map(([name, type]) => `${name} ${type}`).join(", ")})`)
  const api = await duckApi()
  const duckTypes: Record<"VARCHAR" | "DOUBLE" | "INTEGER", DuckDBType> = { VARCHAR: api.VARCHAR, DOUBLE: api.DOUBLE, INTEGER: api.INTEGER }
  return cols.map(([, type]) => duckTypes[type])
}

/** Appends the varying columns of every row to the staging table, a data chunk at a time. */
const stageRows = async (
  con: DuckDBConnection,
  plan: StagingPlan,
  types: Array<DuckDBType>,
  rows: ReadonlyArray<ChangeRow>,
  projectId: string
) => {
  const { DuckDBDataChunk } = await duckApi()
  const app = await con.createAppender(plan.table, "main", "temp")
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
}

/**
 * The batch's min, max and non-null count of every column (an `aggregates` row). Small batches: statistics from JS
 * (no extra statement). Large ones: DuckDB's aggregates are faster. Constant columns' statistics are those of any
 * one row.
 */
const batchAggregates = async (
  con: DuckDBConnection,
  plan: StagingPlan,
  view: string,
  rows: ReadonlyArray<ChangeRow>,
  projectId: string
): Promise<Array<any>> => {
  const fromJs = batchStats(rows.length < JS_STATS_MAX_ROWS ? rows : [rows[0]!], projectId)
  if (fromJs === undefined) {
    return (await con.runAndReadAll(`SELECT ${aggregates} FROM (${view})`)).getRows()[0] as Array<any>
  }
  if (rows.length < JS_STATS_MAX_ROWS) return fromJs.flatMap((c) => [c.min, c.max, c.valueCount])
  const varied = plan.varying.length === 0 ? [] : (await con.runAndReadAll(
    `SELECT ${plan.varying.map((c) => aggregateOf(c.name)).join(", ")} FROM (${view})`
  )).getRows()[0] as Array<any>
  return COLUMNS.flatMap((c, i) => {
    const v = plan.varying.indexOf(c)
    if (v >= 0) return varied.slice(3 * v, 3 * v + 3)
    const k = fromJs[i]!
    return [k.min, k.max, k.valueCount === 0 ? 0 : rows.length]
  })
}

/** COPYs the view to the file with field ids and key-value metadata; DuckDB returns counts, sizes and column sizes. */
const copyToParquet = async (
  con: DuckDBConnection,
  view: string,
  file: string,
  metadata: Readonly<Record<string, string>>
) => {
  const fieldIds = COLUMNS.map((c) => `${c.name}: ${c.id}`).join(", ")
  const kv = Object.entries(metadata).map(([k, v]) => `${k}: ${lit(v)}`).join(", ")
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
  return {
    recordCount: Number(out.count),
    fileSizeBytes: Number(out.file_size_bytes),
    footerSize: Number(out.footer_size_bytes),
    sizes
  }
}

/**
 * Up to this many rows a batch is small: our Parquet writer leaves its pages uncompressed (64 rows: 0.44 ms, 14 KB,
 * against DuckDB's 9.9 ms and 5 KB), and the write path does not plan it. Larger batches get GZIP pages at level 1:
 * a bulk ingest's 10,000 rows ~10 ms and ~140 KB, where DuckDB's COPY took ~33 ms (of two threads) for ~77 KB with
 * zstd; and DuckDB, not loaded for writes at all, no longer holds ~50 MB through an ingest (peak RSS 214 -> 160 MB
 * at 100,000 changes). Compaction rewrites the files with zstd.
 */
export const SMALL_BATCH_MAX_ROWS = 64

/** Files up to this size are written synchronously (see `writeJsSnapshotFile`). */
const SYNC_WRITE_MAX_BYTES = 64 * 1024

/** Up to this many rows our writer writes a batch (a bulk ingest's largest snapshot); DuckDB beyond. */
export const JS_WRITER_MAX_ROWS = 200_000

/**
 * A batch written by our Parquet writer, with its statistics from JS, no DuckDB connection needed. Undefined for a
 * batch over `JS_WRITER_MAX_ROWS`, or when a value has no text form `batchStats` reproduces (a time outside years
 * 1-9999): DuckDB writes those. Throws (RangeError) for an integer its column cannot hold.
 */
export const writeJsSnapshotFile = async (
  file: string,
  rows: ReadonlyArray<ChangeRow>,
  projectId: string,
  metadata: Readonly<Record<string, string>>
): Promise<WrittenFile | undefined> => {
  if (rows.length === 0 || rows.length > JS_WRITER_MAX_ROWS) return undefined
  // Each column's values and bounds once, for the catalog's statistics and the file's.
  const values = columnValues(rows, projectId)
  const bounds = values.map(boundsOf)
  const fromJs = statsOfBounds(bounds)
  if (fromJs === undefined) return undefined
  const gzip = rows.length > SMALL_BATCH_MAX_ROWS
  const columns = values.map((v, i) => ({ values: v, bounds: bounds[i]! }))
  const { bytes, footerSize, sizes } = encodeSnapshotParquet(columns, metadata, { gzip })
  const agg = fromJs.flatMap((c) => [c.min, c.max, c.valueCount])
  const stats = statsFrom(agg, rows.length, sizes)
  // A small file synchronously: a few KB to the local cache take ~0.1 ms, where fs.promises queued behind other
  // work on libuv's thread pool (p95 4 ms against 0.5 ms measured). A larger one (a bulk ingest's ~140 KB) on the
  // pool: beside PostgreSQL's heavy WAL writes a synchronous write held the thread ~4 ms a snapshot.
  if (bytes.length <= SYNC_WRITE_MAX_BYTES) fs.writeFileSync(file, bytes, { mode: 0o600 })
  else await fs.promises.writeFile(file, bytes, { mode: 0o600 })
  return { recordCount: rows.length, fileSizeBytes: bytes.length, footerSize, stats }
}

/** Writes one snapshot's rows to `file` on this connection and returns what the catalog records of it. */
export const writeSnapshotFile = async (
  con: DuckDBConnection,
  file: string,
  rows: ReadonlyArray<ChangeRow>,
  projectId: string,
  metadata: Readonly<Record<string, string>>
): Promise<WrittenFile> => {
  const small = await writeJsSnapshotFile(file, rows, projectId, metadata)
  if (small !== undefined) return small
  const plan = stagingPlan(rows, projectId)
  const types = await createStagingTable(con, plan)
  try {
    await stageRows(con, plan, types, rows, projectId)
    const view = `SELECT ${plan.select} FROM ${plan.table}`
    const agg = await batchAggregates(con, plan, view, rows, projectId)
    const { recordCount, fileSizeBytes, footerSize, sizes } = await copyToParquet(con, view, file, metadata)
    // DuckDB creates the file with the umask's mode; the local cache keeps files private (our writer creates them
    // 0600).
    await fs.promises.chmod(file, 0o600)
    return { recordCount, fileSizeBytes, footerSize, stats: statsFrom(agg, recordCount, sizes) }
  } finally {
    // A large batch's staging memory goes now; a small one's stays until the table is next replaced.
    if (rows.length >= JS_STATS_MAX_ROWS) await con.run(`DROP TABLE IF EXISTS ${plan.table}`).catch(() => undefined)
  }
}
