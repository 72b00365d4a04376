/**
 * What the catalog records of a Parquet data file (row count, size, footer, per-column statistics), read from the
 * file itself, plus the aggregate SQL and row-to-statistics mapping the writers share.
 */
import type { DuckDBConnection } from "@duckdb/node-api"
import * as fsp from "node:fs/promises"
import type { ColumnStats } from "../catalog/Catalog.js"
import { COLUMNS } from "../catalog/ducklakeSchema.js"
import { lit } from "./sql.js"

/** A written (or described) data file as the catalog records it. */
export interface WrittenFile {
  readonly recordCount: number
  readonly fileSizeBytes: number
  readonly footerSize: number
  readonly stats: ReadonlyArray<ColumnStats>
}

/** Exact min, max and non-null count of every column, in one pass. */
export const aggregateOf = (name: string): string =>
  `CAST(min(${name}) AS VARCHAR), CAST(max(${name}) AS VARCHAR), CAST(count(${name}) AS DOUBLE)`
export const aggregates: string = COLUMNS.map((c) => aggregateOf(c.name)).join(", ")

/** Column statistics from an `aggregates` row (three values per column), the row count and column sizes. */
export const statsFrom = (
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
export const describe = async (con: DuckDBConnection, file: string): Promise<WrittenFile> => {
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
