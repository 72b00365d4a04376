/**
 * Table-level column statistics (`ducklake_table_column_stats`), as the DuckLake extension keeps them: per column,
 * whether any value is NULL and the table's min and max, merged from per-file (or per-table) statistics with a
 * typed order — numbers as numbers, times as times, everything else by bytes — never as text, which would put "10"
 * before "9". The one place this SQL is written: the commit of a snapshot and the rebuild from storage share it.
 */
import type { SqlClient, Statement } from "@effect/sql"
import { TABLE_ID } from "./ducklakeSchema.js"

/**
 * `INSERT INTO <schema>.ducklake_table_column_stats …` with one merged row per column of the table, taken from
 * `source`: a relation (a CTE name or a parenthesised subquery) of rows `(column_id, contains_null, min_value,
 * max_value)`. Columns no longer live in the table are left out. The statement only inserts: clear the table's
 * previous rows first (in the same statement or transaction) when replacing them.
 *
 * It runs on its own (`yield* insertTableColumnStats(...)`) or as a data-modifying CTE (`x AS (${...})`).
 * `fileColumnStatsSource` gives the usual source: every data file's statistics.
 */
export const insertTableColumnStats = (
  sql: SqlClient.SqlClient,
  schema: string,
  source: Statement.Fragment
) => {
  const s = sql(schema)
  return sql`
    INSERT INTO ${s}.ducklake_table_column_stats
    SELECT ${TABLE_ID}, column_id, bool_or(contains_null), NULL,
      (array_agg(min_value ORDER BY CASE WHEN t LIKE 'int%' THEN min_value::numeric END,
                                    CASE WHEN t = 'timestamptz' THEN min_value::timestamptz END,
                                    min_value COLLATE "C") FILTER (WHERE min_value IS NOT NULL))[1],
      (array_agg(max_value ORDER BY CASE WHEN t LIKE 'int%' THEN max_value::numeric END DESC NULLS LAST,
                                    CASE WHEN t = 'timestamptz' THEN max_value::timestamptz END DESC NULLS LAST,
                                    max_value COLLATE "C" DESC) FILTER (WHERE max_value IS NOT NULL))[1],
      NULL
    FROM (
      SELECT src.column_id, src.contains_null, src.min_value, src.max_value, c.column_type AS t
      FROM ${source} src
      JOIN ${s}.ducklake_column c ON c.table_id = ${TABLE_ID} AND c.column_id = src.column_id AND c.end_snapshot IS NULL
    ) keyed
    GROUP BY column_id`
}

/**
 * Every data file's column statistics of the table as a source for `insertTableColumnStats` (a parenthesised
 * subquery). `liveOnly`: only files not yet replaced (`end_snapshot IS NULL`); a rebuilt catalog holds only live
 * files, so it needs no filter.
 */
export const fileColumnStatsSource = (
  sql: SqlClient.SqlClient,
  schema: string,
  options: { readonly liveOnly?: boolean } = {}
) => {
  const s = sql(schema)
  return options.liveOnly === true
    ? sql`(SELECT f.column_id, f.null_count > 0 AS contains_null, f.min_value, f.max_value
           FROM ${s}.ducklake_file_column_stats f JOIN ${s}.ducklake_data_file d ON d.data_file_id = f.data_file_id
           WHERE f.table_id = ${TABLE_ID} AND d.end_snapshot IS NULL)`
    : sql`(SELECT f.column_id, f.null_count > 0 AS contains_null, f.min_value, f.max_value
           FROM ${s}.ducklake_file_column_stats f WHERE f.table_id = ${TABLE_ID})`
}
