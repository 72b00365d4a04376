/**
 * Compaction's writer: merges snapshot files into one sorted by path, carrying DuckLake's internal snapshot-id and
 * row-id columns (under the field ids DuckLake reserves for them) so time travel and row ids stay exact.
 */
import type { DuckDBConnection } from "@duckdb/node-api"
import { COLUMNS } from "../catalog/ducklakeSchema.js"
import { describe, type WrittenFile } from "./describe.js"
import { fileList, lit } from "./sql.js"

/** Field ids DuckLake reserves for its internal columns in compacted files. */
export const INTERNAL_SNAPSHOT_ID_FIELD = 2147483539
export const INTERNAL_ROW_ID_FIELD = 2147483540

/** Writes the merged file `out` on this connection and describes it as the catalog records it. */
export const writeCompactedFile = async (
  con: DuckDBConnection,
  sources: ReadonlyArray<{ readonly file: string; readonly rowIdStart: number | null }>,
  out: string,
  metadata: Readonly<Record<string, string>>
): Promise<WrittenFile> => {
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
     ) TO ${lit(out)} (FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE 16384, FIELD_IDS {${fieldIds}}, KV_METADATA {${kv}})`
  )
  return describe(con, out)
}
