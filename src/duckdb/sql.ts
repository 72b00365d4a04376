/**
 * SQL text helpers shared by DuckDB's readers and writers: literals (strings, file lists, timestamps), the column
 * list every change-row query selects, and the mapping of a result row back to a `ChangeRow`.
 */
import type { ChangeRow } from "../core/domain.js"

/** A SQL string literal. */
export const lit = (s: string): string => `'${s.replace(/'/g, "''")}'`
/** A list literal of file names, for `read_parquet`. */
export const fileList = (files: ReadonlyArray<string>): string => `[${files.map(lit).join(", ")}]`
/** A TIMESTAMPTZ literal. */
export const tsLit = (d: Date): string => `TIMESTAMPTZ ${lit(d.toISOString())}`
/** Microseconds since the epoch, as DuckDB timestamps hold them. */
export const micros = (d: Date): bigint => BigInt(d.getTime()) * 1000n

/** The select list of a change row (numbers as DOUBLE, the time as epoch ms). */
export const SELECT_ROW = `CAST(snapshot_id AS DOUBLE) AS snapshot_id, change_seq, CAST(epoch_ms(ts) AS DOUBLE) AS ts_ms,
  irods_path, target_type, CAST(object_id AS DOUBLE) AS object_id, attribute, value, unit, op, actor, source,
  via_ticket, rule_invocation, on_behalf_of`

/** A row selected with `SELECT_ROW` as a `ChangeRow`. */
export const toChangeRow = (r: Record<string, any>): ChangeRow => ({
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
