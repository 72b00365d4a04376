/**
 * The lake's data files as reads and compaction see them: which committed files may hold rows a read asks for
 * (pruned by snapshot range and by the files' column statistics), the live files in snapshot order, and the
 * `ducklake_file_column_stats` rows a new file gets.
 */
import { Effect } from "effect"
import type { Project } from "../core/domain.js"
import type { Conn } from "./connection.js"
import { columnId, TABLE_ID, TABLE_NAME } from "./ducklakeSchema.js"
import type { ColumnStats, Failure, FileFilter, LakeFile, LiveFile } from "./types.js"

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

/**
 * Committed data files that may hold rows `filter` asks for, in snapshot order: as of `maxSnapshot` (else the live
 * ones), after `afterSnapshot`, and not ruled out by their path, attribute or valid-time statistics.
 */
export const files = (
  conn: Conn,
  project: Project,
  filter: FileFilter
): Effect.Effect<ReadonlyArray<LakeFile>, Failure> =>
  conn.withSql((sql) => {
    const s = sql(project.metadataSchema)
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

/** Live data files of the project's table, in snapshot order (for compaction). */
export const liveFiles = (conn: Conn, project: Project): Effect.Effect<ReadonlyArray<LiveFile>, Failure> =>
  conn.withSql((sql) =>
    Effect.map(
      sql<any>`SELECT f.data_file_id::text AS id, f.path, f.begin_snapshot::text AS b, f.partial_max::text AS pm,
                      f.record_count::text AS n, f.file_size_bytes::text AS size, f.row_id_start::text AS r,
                      c.checksum
               FROM ${sql(project.metadataSchema)}.ducklake_data_file f
               LEFT JOIN ${sql(project.metadataSchema)}.mesa_chain c ON c.data_file_id = f.data_file_id AND c.file_name = f.path
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
