/**
 * Reading change history back from the Parquet files the catalog lists (one connection each, files already pruned
 * by the catalog): effective AVUs as of a time, the latest change of given (path, attribute) pairs, filtered change
 * rows, and a file's key-value metadata.
 */
import type { DuckDBConnection } from "@duckdb/node-api"
import type { Avu, ChangeRow } from "../core/domain.js"
import { fileList, lit, micros, SELECT_ROW, toChangeRow, tsLit } from "./sql.js"

/** A filter over change rows, applied inside DuckDB after the catalog has pruned the files. */
export interface RowFilter {
  readonly irodsPath?: string
  readonly attribute?: string
  readonly validFrom?: Date
  readonly validTo?: Date
  readonly maxSnapshot?: number
  readonly afterSnapshot?: number
}

/** Effective AVUs of a path at a valid time, bounded by a snapshot id (transaction time). */
export const avusAsOf = async (
  con: DuckDBConnection,
  files: ReadonlyArray<string>,
  irodsPath: string,
  validAt: Date,
  maxSnapshot: number
): Promise<ReadonlyArray<Avu>> => {
  // Loaded on first use with the instance (DuckDb.ts), not at import.
  const { DuckDBTimestampTZValue } = await import("@duckdb/node-api")
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
}

/** Change rows matching a filter, in the asked order, at most `limit`. */
export const changes = async (
  con: DuckDBConnection,
  files: ReadonlyArray<string>,
  filter: RowFilter,
  opts: { readonly limit?: number; readonly order: "newest" | "oldest" }
): Promise<ReadonlyArray<ChangeRow>> => {
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
}

/** Key-value metadata of a Parquet file. */
export const fileMetadata = async (con: DuckDBConnection, file: string): Promise<Readonly<Record<string, string>>> => {
  const r = await con.runAndReadAll(
    `SELECT decode(key) AS k, decode(value) AS v FROM parquet_kv_metadata(${lit(file)})`
  )
  return Object.fromEntries((r.getRowObjectsJS() as Array<any>).map((x) => [x.k, x.v]))
}
