/**
 * A project's catalog is a DuckLake 1.0 catalog in its own PostgreSQL schema (DuckLake's METADATA_SCHEMA).
 *
 * The DDL below is the one DuckDB's `ducklake` extension 1.5.x runs for a new lake (all 28 tables: the extension
 * reads most of them on its first catalog load), followed by the bootstrap rows it writes and a first snapshot
 * creating our one table, `main.avu_changes`. Next to them live three tables of ours, prefixed `mesa_`, that the
 * extension never reads: the current-state index, the snapshot provenance it lacks, and idempotency keys.
 */

/** The AVU-change table inside the lake. */
export const TABLE_NAME = "avu_changes"
export const SCHEMA_ID = 0
export const TABLE_ID = 1
/** DuckLake format version we write and accept. */
export const DUCKLAKE_VERSION = "1.0"
/** Version of our additions (the `mesa_` tables and the table layout). */
export const MESA_LAYOUT_VERSION = "2"

/**
 * Columns of `avu_changes`, in order. Column ids start at 1 and equal the Parquet field ids, as DuckLake requires.
 * `type` is the DuckLake type name, `duck` the DuckDB SQL type.
 */
export const COLUMNS = [
  { id: 1, name: "snapshot_id", type: "int64", duck: "BIGINT", nullable: false },
  { id: 2, name: "change_seq", type: "int32", duck: "INTEGER", nullable: false },
  { id: 3, name: "ts", type: "timestamptz", duck: "TIMESTAMPTZ", nullable: false },
  { id: 4, name: "irods_path", type: "varchar", duck: "VARCHAR", nullable: false },
  { id: 5, name: "target_type", type: "varchar", duck: "VARCHAR", nullable: false },
  { id: 6, name: "object_id", type: "int64", duck: "BIGINT", nullable: true },
  { id: 7, name: "attribute", type: "varchar", duck: "VARCHAR", nullable: false },
  { id: 8, name: "value", type: "varchar", duck: "VARCHAR", nullable: false },
  { id: 9, name: "unit", type: "varchar", duck: "VARCHAR", nullable: false },
  { id: 10, name: "op", type: "varchar", duck: "VARCHAR", nullable: false },
  { id: 11, name: "actor", type: "varchar", duck: "VARCHAR", nullable: false },
  { id: 12, name: "source", type: "varchar", duck: "VARCHAR", nullable: false },
  { id: 13, name: "via_ticket", type: "varchar", duck: "VARCHAR", nullable: true },
  { id: 14, name: "rule_invocation", type: "varchar", duck: "VARCHAR", nullable: true },
  { id: 15, name: "on_behalf_of", type: "varchar", duck: "VARCHAR", nullable: true },
  { id: 16, name: "project_id", type: "varchar", duck: "VARCHAR", nullable: false }
] as const

/** The columns as a Parquet file's key-value metadata describes them (`columns`), so a file describes itself. */
export const COLUMNS_METADATA = JSON.stringify(COLUMNS.map(({ id, name, type, nullable }) => ({ id, name, type, nullable })))

export type ColumnName = (typeof COLUMNS)[number]["name"]
export const columnId = (name: ColumnName): number => COLUMNS.find((c) => c.name === name)!.id

/** A schema name quoted as an SQL identifier. */
export const ident = (s: string) => `"${s.replace(/"/g, "\"\"")}"`

/**
 * The index by which a read finds a live file's checksum in the chain (`files.ts` joins the two on the file's id).
 * The chain keeps one record per snapshot while compaction keeps the live files few, so without it the join scans
 * every record (measured: the file listing of an as-of read 6 -> 21 ms from 2,000 to 100,000 records). Lakes made
 * before it get it when a client first uses them (`lakeSchema.ts`).
 */
export const CHAIN_FILE_INDEX = "mesa_chain_data_file"
export const chainFileIndexStatement = (S: string) =>
  `CREATE INDEX IF NOT EXISTS ${CHAIN_FILE_INDEX} ON ${S}.mesa_chain (data_file_id)`

/**
 * Heap pages of the current-state index are filled to 70% on insert. A change to a triple the index holds rewrites
 * its row with the key unchanged, and with room left on the page PostgreSQL writes the new version there as a
 * heap-only tuple (HOT): no new index entry, and no pass over the index's leaf pages to remove old versions. A bulk
 * ingest of 1M changes updates about half of its rows (its triples repeat): on this machine the index upserts took
 * 6.9-7.6 s of PostgreSQL CPU at 70% against 7.8-8.2 s at the default 100% (four rounds each), heap 7% larger.
 * Lakes made before this get it when a client first uses them (`lakeSchema.ts`; it applies to pages filled from
 * then on).
 */
export const CURRENT_FILLFACTOR = 70
export const currentFillfactorStatement = (S: string) =>
  `ALTER TABLE ${S}.mesa_current_avus SET (fillfactor = ${CURRENT_FILLFACTOR})`

/** The chain table (layout 2), for new lakes and for the upgrade of a layout-1 lake. */
export const chainTableStatements = (S: string): Array<string> => [
  `CREATE TABLE ${S}.mesa_chain(snapshot_id BIGINT PRIMARY KEY, kind TEXT NOT NULL CHECK (kind IN ('data', 'compaction')), snapshot_time TIMESTAMPTZ NOT NULL, data_file_id BIGINT NOT NULL, file_name TEXT NOT NULL, checksum TEXT NOT NULL, file_size_bytes BIGINT NOT NULL, record_count BIGINT NOT NULL, actor TEXT NOT NULL, note TEXT, idempotency_key TEXT, content_hash TEXT, min_ts TEXT, max_ts TEXT, sources TEXT NOT NULL, prev_hash TEXT NOT NULL, record_hash TEXT NOT NULL UNIQUE)`,
  chainFileIndexStatement(S)
]

/** DDL + bootstrap for a new project lake in schema `schema`. Run inside one transaction. */
export const createLakeStatements = (
  schema: string,
  opts: { readonly dataPath: string; readonly createdBy: string; readonly projectId: string; readonly actor: string }
): ReadonlyArray<readonly [string, ReadonlyArray<unknown>]> => {
  const S = ident(schema)
  const ddl = [
    `CREATE SCHEMA ${S}`,
    `CREATE TABLE ${S}.ducklake_metadata(key VARCHAR NOT NULL, value VARCHAR NOT NULL, scope VARCHAR, scope_id BIGINT)`,
    `CREATE TABLE ${S}.ducklake_snapshot(snapshot_id BIGINT PRIMARY KEY, snapshot_time TIMESTAMPTZ, schema_version BIGINT, next_catalog_id BIGINT, next_file_id BIGINT)`,
    `CREATE TABLE ${S}.ducklake_snapshot_changes(snapshot_id BIGINT PRIMARY KEY, changes_made VARCHAR, author VARCHAR, commit_message VARCHAR, commit_extra_info VARCHAR)`,
    `CREATE TABLE ${S}.ducklake_schema(schema_id BIGINT PRIMARY KEY, schema_uuid UUID, begin_snapshot BIGINT, end_snapshot BIGINT, schema_name VARCHAR, path VARCHAR, path_is_relative BOOLEAN)`,
    `CREATE TABLE ${S}.ducklake_table(table_id BIGINT, table_uuid UUID, begin_snapshot BIGINT, end_snapshot BIGINT, schema_id BIGINT, table_name VARCHAR, path VARCHAR, path_is_relative BOOLEAN)`,
    `CREATE TABLE ${S}.ducklake_view(view_id BIGINT, view_uuid UUID, begin_snapshot BIGINT, end_snapshot BIGINT, schema_id BIGINT, view_name VARCHAR, dialect VARCHAR, sql VARCHAR, column_aliases VARCHAR)`,
    `CREATE TABLE ${S}.ducklake_tag(object_id BIGINT, begin_snapshot BIGINT, end_snapshot BIGINT, key VARCHAR, value VARCHAR)`,
    `CREATE TABLE ${S}.ducklake_column_tag(table_id BIGINT, column_id BIGINT, begin_snapshot BIGINT, end_snapshot BIGINT, key VARCHAR, value VARCHAR)`,
    `CREATE TABLE ${S}.ducklake_data_file(data_file_id BIGINT PRIMARY KEY, table_id BIGINT, begin_snapshot BIGINT, end_snapshot BIGINT, file_order BIGINT, path VARCHAR, path_is_relative BOOLEAN, file_format VARCHAR, record_count BIGINT, file_size_bytes BIGINT, footer_size BIGINT, row_id_start BIGINT, partition_id BIGINT, encryption_key VARCHAR, mapping_id BIGINT, partial_max BIGINT)`,
    `CREATE TABLE ${S}.ducklake_file_column_stats(data_file_id BIGINT, table_id BIGINT, column_id BIGINT, column_size_bytes BIGINT, value_count BIGINT, null_count BIGINT, min_value VARCHAR, max_value VARCHAR, contains_nan BOOLEAN, extra_stats VARCHAR)`,
    `CREATE TABLE ${S}.ducklake_file_variant_stats(data_file_id BIGINT, table_id BIGINT, column_id BIGINT, variant_path VARCHAR, shredded_type VARCHAR, column_size_bytes BIGINT, value_count BIGINT, null_count BIGINT, min_value VARCHAR, max_value VARCHAR, contains_nan BOOLEAN, extra_stats VARCHAR)`,
    `CREATE TABLE ${S}.ducklake_delete_file(delete_file_id BIGINT PRIMARY KEY, table_id BIGINT, begin_snapshot BIGINT, end_snapshot BIGINT, data_file_id BIGINT, path VARCHAR, path_is_relative BOOLEAN, format VARCHAR, delete_count BIGINT, file_size_bytes BIGINT, footer_size BIGINT, encryption_key VARCHAR, partial_max BIGINT)`,
    `CREATE TABLE ${S}.ducklake_column(column_id BIGINT, begin_snapshot BIGINT, end_snapshot BIGINT, table_id BIGINT, column_order BIGINT, column_name VARCHAR, column_type VARCHAR, initial_default VARCHAR, default_value VARCHAR, nulls_allowed BOOLEAN, parent_column BIGINT, default_value_type VARCHAR, default_value_dialect VARCHAR)`,
    `CREATE TABLE ${S}.ducklake_table_stats(table_id BIGINT, record_count BIGINT, next_row_id BIGINT, file_size_bytes BIGINT)`,
    `CREATE TABLE ${S}.ducklake_table_column_stats(table_id BIGINT, column_id BIGINT, contains_null BOOLEAN, contains_nan BOOLEAN, min_value VARCHAR, max_value VARCHAR, extra_stats VARCHAR)`,
    `CREATE TABLE ${S}.ducklake_partition_info(partition_id BIGINT, table_id BIGINT, begin_snapshot BIGINT, end_snapshot BIGINT)`,
    `CREATE TABLE ${S}.ducklake_partition_column(partition_id BIGINT, table_id BIGINT, partition_key_index BIGINT, column_id BIGINT, transform VARCHAR)`,
    `CREATE TABLE ${S}.ducklake_file_partition_value(data_file_id BIGINT, table_id BIGINT, partition_key_index BIGINT, partition_value VARCHAR)`,
    `CREATE TABLE ${S}.ducklake_files_scheduled_for_deletion(data_file_id BIGINT, path VARCHAR, path_is_relative BOOLEAN, schedule_start TIMESTAMPTZ)`,
    `CREATE TABLE ${S}.ducklake_inlined_data_tables(table_id BIGINT, table_name VARCHAR, schema_version BIGINT)`,
    `CREATE TABLE ${S}.ducklake_column_mapping(mapping_id BIGINT, table_id BIGINT, type VARCHAR)`,
    `CREATE TABLE ${S}.ducklake_name_mapping(mapping_id BIGINT, column_id BIGINT, source_name VARCHAR, target_field_id BIGINT, parent_column BIGINT, is_partition BOOLEAN)`,
    `CREATE TABLE ${S}.ducklake_schema_versions(begin_snapshot BIGINT, schema_version BIGINT, table_id BIGINT)`,
    `CREATE TABLE ${S}.ducklake_macro(schema_id BIGINT, macro_id BIGINT, macro_name VARCHAR, begin_snapshot BIGINT, end_snapshot BIGINT)`,
    `CREATE TABLE ${S}.ducklake_macro_impl(macro_id BIGINT, impl_id BIGINT, dialect VARCHAR, sql VARCHAR, type VARCHAR)`,
    `CREATE TABLE ${S}.ducklake_macro_parameters(macro_id BIGINT, impl_id BIGINT, column_id BIGINT, parameter_name VARCHAR, parameter_type VARCHAR, default_value VARCHAR, default_value_type VARCHAR)`,
    `CREATE TABLE ${S}.ducklake_sort_info(sort_id BIGINT, table_id BIGINT, begin_snapshot BIGINT, end_snapshot BIGINT)`,
    `CREATE TABLE ${S}.ducklake_sort_expression(sort_id BIGINT, table_id BIGINT, sort_key_index BIGINT, expression VARCHAR, dialect VARCHAR, sort_direction VARCHAR, null_order VARCHAR)`,
    // Pruning lookups by file and column.
    `CREATE INDEX ON ${S}.ducklake_file_column_stats (column_id, data_file_id)`,
    `CREATE INDEX ON ${S}.ducklake_data_file (begin_snapshot)`,
    // --- ours: the extension never reads these ---
    // Latest change per AVU triple, updated in the commit transaction: the answer of getAvus without a scan.
    `CREATE TABLE ${S}.mesa_current_avus(irods_path TEXT COLLATE "C" NOT NULL, attribute TEXT COLLATE "C" NOT NULL, value TEXT COLLATE "C" NOT NULL, unit TEXT COLLATE "C" NOT NULL, op TEXT NOT NULL, ts TIMESTAMPTZ NOT NULL, snapshot_id BIGINT NOT NULL, change_seq INTEGER NOT NULL, actor TEXT NOT NULL, source TEXT NOT NULL, via_ticket TEXT, rule_invocation TEXT, target_type TEXT NOT NULL, object_id BIGINT, PRIMARY KEY (irods_path, attribute, value, unit)) WITH (fillfactor = ${CURRENT_FILLFACTOR})`,
    // Per snapshot: the Parquet file's checksum and our provenance (the extension's snapshot_changes has author and
    // message), and whether its commit marker (`_mesa_log/`, what rebuild trusts) is in storage yet.
    // Renames and moves (iRODS imv): an object's history follows it to its new path. Collection moves carry prefixes.
    `CREATE TABLE ${S}.mesa_renames(snapshot_id BIGINT NOT NULL, seq INTEGER NOT NULL, ts TIMESTAMPTZ NOT NULL, from_path TEXT COLLATE "C" NOT NULL, to_path TEXT COLLATE "C" NOT NULL, target_type TEXT NOT NULL, object_id BIGINT, actor TEXT NOT NULL, PRIMARY KEY (snapshot_id, seq))`,
    `CREATE TABLE ${S}.mesa_snapshot(snapshot_id BIGINT PRIMARY KEY, data_file_id BIGINT NOT NULL, file_path TEXT NOT NULL, checksum TEXT NOT NULL, change_count INTEGER NOT NULL, actor TEXT NOT NULL, note TEXT, min_ts TIMESTAMPTZ NOT NULL, max_ts TIMESTAMPTZ NOT NULL, idempotency_key TEXT UNIQUE, content_hash TEXT NOT NULL, marker_written BOOLEAN NOT NULL DEFAULT false)`,
    // Layout 2: the hash chain (src/catalog/chain.ts), one record per snapshot that added a data file.
    ...chainTableStatements(S)
  ].map((s) => [s, []] as const)

  const columns = COLUMNS.map((c) =>
    [
      `INSERT INTO ${S}.ducklake_column VALUES ($1, 1, NULL, $2, $1, $3, $4, NULL, 'NULL', $5, NULL, 'literal', 'duckdb')`,
      [c.id, TABLE_ID, c.name, c.type, c.nullable]
    ] as const
  )

  return [
    ...ddl,
    [
      `INSERT INTO ${S}.ducklake_metadata (key, value) VALUES ('version', $1), ('created_by', $2), ('data_path', $3), ('encrypted', 'false'), ('mesa_project_id', $4), ('mesa_layout_version', $5)`,
      [DUCKLAKE_VERSION, opts.createdBy, opts.dataPath, opts.projectId, MESA_LAYOUT_VERSION]
    ],
    // Snapshot 0: the lake and its `main` schema, exactly as the extension bootstraps them.
    [`INSERT INTO ${S}.ducklake_snapshot VALUES (0, date_trunc('milliseconds', clock_timestamp()), 0, 1, 0)`, []],
    [`INSERT INTO ${S}.ducklake_snapshot_changes VALUES (0, 'created_schema:"main"', NULL, NULL, NULL)`, []],
    [`INSERT INTO ${S}.ducklake_schema VALUES (0, gen_random_uuid(), 0, NULL, 'main', 'main/', true)`, []],
    // Snapshot 1: table avu_changes. schema_version 1, next_catalog_id 2, next_file_id 0.
    [
      `INSERT INTO ${S}.ducklake_snapshot VALUES (1, date_trunc('milliseconds', clock_timestamp()) + interval '1 millisecond', 1, 2, 0)`,
      []
    ],
    [
      `INSERT INTO ${S}.ducklake_table VALUES ($1, gen_random_uuid(), 1, NULL, $2, $3, $4, true)`,
      [TABLE_ID, SCHEMA_ID, TABLE_NAME, `${TABLE_NAME}/`]
    ],
    ...columns,
    [`INSERT INTO ${S}.ducklake_schema_versions VALUES (1, 1, $1)`, [TABLE_ID]],
    [`INSERT INTO ${S}.ducklake_table_stats VALUES ($1, 0, 0, 0)`, [TABLE_ID]],
    [
      `INSERT INTO ${S}.ducklake_snapshot_changes VALUES (1, $1, $2, $3, NULL)`,
      [`created_table:"main"."${TABLE_NAME}"`, opts.actor, "mesa-ducklake: create avu_changes"]
    ]
  ]
}

/** Snapshots 0 and 1 create the lake and its table; AVU snapshots start at 2. */
export const FIRST_DATA_SNAPSHOT = 2
