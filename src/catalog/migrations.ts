/**
 * Migrations of the shared schema `mesa_ducklake`: the project registry, the write-ahead log of pending writes and
 * the registry of the reader roles we created. Each project's own lake schema is created whole at registration (see
 * `ducklakeSchema.ts`). `migrate` runs them when the catalog connects.
 */
import * as Migrator from "@effect/sql/Migrator"
import * as SqlClient from "@effect/sql/SqlClient"
import { Effect } from "effect"
import { CatalogSchemaMismatch } from "../core/errors.js"

export const SHARED_SCHEMA = "mesa_ducklake"
export const MIGRATIONS_TABLE = `${SHARED_SCHEMA}.migrations`

const m0001_registry = Effect.flatMap(SqlClient.SqlClient, (sql) =>
  Effect.all([
    sql`CREATE TABLE mesa_ducklake.projects (
      project_id UUID PRIMARY KEY,
      irods_path TEXT COLLATE "C" NOT NULL UNIQUE,
      irods_zone TEXT NOT NULL,
      ducklake_path TEXT COLLATE "C" NOT NULL,
      metadata_schema TEXT NOT NULL UNIQUE,
      created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
      created_by TEXT NOT NULL,
      status TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'archived')),
      -- Highest snapshot id ever handed out (committed or not): ids are never reused.
      last_snapshot_id BIGINT NOT NULL DEFAULT 1
    )`,
    // The write-ahead log: one row per snapshot between "reserved" and "committed and cleaned up".
    sql`CREATE TABLE mesa_ducklake.pending_writes (
      project_id UUID NOT NULL REFERENCES mesa_ducklake.projects (project_id) ON DELETE CASCADE,
      snapshot_id BIGINT NOT NULL,
      state TEXT NOT NULL CHECK (state IN ('pending', 'pushed', 'committed', 'failed')),
      local_file TEXT NOT NULL,
      remote_path TEXT NOT NULL,
      file_name TEXT NOT NULL,
      clock TIMESTAMPTZ NOT NULL,
      actor TEXT NOT NULL,
      note TEXT,
      idempotency_key TEXT,
      content_hash TEXT NOT NULL,
      checksum TEXT,
      attempts INTEGER NOT NULL DEFAULT 0,
      last_error TEXT,
      host TEXT NOT NULL,
      created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
      updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
      PRIMARY KEY (project_id, snapshot_id)
    )`,
    sql`CREATE INDEX pending_writes_state ON mesa_ducklake.pending_writes (state, updated_at)`
  ], { discard: true }))

/**
 * The PostgreSQL login roles `grantProjectReader` created, one project each (`src/catalog/readers.ts`). A role that
 * exists in PostgreSQL without a row here is not ours and is never altered; `role_oid` tells our role from another
 * one created later under the same name (after ours was dropped).
 */
const m0002_readerRoles = Effect.flatMap(SqlClient.SqlClient, (sql) =>
  Effect.all([
    sql`CREATE TABLE mesa_ducklake.reader_roles (
      role TEXT COLLATE "C" PRIMARY KEY,
      role_oid OID NOT NULL,
      project_id UUID NOT NULL REFERENCES mesa_ducklake.projects (project_id),
      created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
      -- The database role that created it (the service account).
      created_by TEXT NOT NULL DEFAULT current_user,
      rotated_at TIMESTAMPTZ,
      rotated_by TEXT
    )`,
    sql`CREATE INDEX reader_roles_project ON mesa_ducklake.reader_roles (project_id)`
  ], { discard: true }))

export const migrations = {
  "1_registry": m0001_registry,
  "2_reader_roles": m0002_readerRoles
} as const

/** The newest migration this build knows: a catalog migrated further is refused, never modified. */
export const LATEST_MIGRATION = 2

/** Creates the shared schema if needed, refuses a catalog newer than this build, and runs our migrations. */
export const migrate = (sql: SqlClient.SqlClient) =>
  Effect.gen(function*() {
    yield* sql`CREATE SCHEMA IF NOT EXISTS ${sql(SHARED_SCHEMA)}`
    const [reg] = yield* sql<any>`SELECT to_regclass(${MIGRATIONS_TABLE})::text AS t`
    if (reg?.t !== null && reg?.t !== undefined) {
      const [latest] = yield* sql<any>`SELECT max(migration_id) AS m FROM ${sql(MIGRATIONS_TABLE)}`
      if (latest?.m !== null && Number(latest?.m) > LATEST_MIGRATION) {
        return yield* new CatalogSchemaMismatch({
          schema: SHARED_SCHEMA,
          found: `migration ${latest.m}`,
          expected: `migration <= ${LATEST_MIGRATION}`
        })
      }
    }
    yield* Migrator.make({})({ loader: Migrator.fromRecord(migrations), table: MIGRATIONS_TABLE }).pipe(
      Effect.provideService(SqlClient.SqlClient, sql)
    )
  })
