/**
 * Per-project read-only PostgreSQL roles for analysts who ATTACH one project's lake with DuckDB.
 *
 * Owns the role DDL and grants. The catalog service (`Catalog.grantReader`) calls `grantReader` inside one
 * transaction on its pool.
 */
import type { SqlClient } from "@effect/sql"
import { Effect, Redacted } from "effect"
import type { ReaderRoleConflict } from "../errors.js"
import type { Project } from "../domain.js"

export interface GrantReaderOptions {
  /** Change the password of this project's existing reader role (ours). Without it, an existing role is refused. */
  readonly rotate?: boolean
}

export const grantReader = (
  sql: SqlClient.SqlClient,
  project: Project,
  role: string,
  password: Redacted.Redacted<string>,
  _options: GrantReaderOptions = {}
): Effect.Effect<void, ReaderRoleConflict | import("@effect/sql").SqlError.SqlError> =>
  sql.withTransaction(Effect.gen(function*() {
    // Role DDL takes no bind parameters. The name and password go in as transaction-local settings (bound
    // values), and the DDL is built server-side: no statement text, span or log ever holds the password.
    yield* sql`SELECT set_config('mesa.reader_role', ${role}, true), set_config('mesa.reader_pw', ${Redacted.value(password)}, true)`
    yield* sql.unsafe(`DO $$ BEGIN
      IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = current_setting('mesa.reader_role')) THEN
        EXECUTE format('CREATE ROLE %I LOGIN', current_setting('mesa.reader_role'));
      END IF;
      EXECUTE format('ALTER ROLE %I LOGIN PASSWORD %L', current_setting('mesa.reader_role'), current_setting('mesa.reader_pw'));
    END $$`)
    yield* sql`SELECT set_config('mesa.reader_pw', '', true)`
    const s = sql(project.metadataSchema)
    yield* sql`GRANT USAGE ON SCHEMA ${s} TO ${sql(role)}`
    yield* sql`GRANT SELECT ON ALL TABLES IN SCHEMA ${s} TO ${sql(role)}`
    yield* sql`ALTER DEFAULT PRIVILEGES IN SCHEMA ${s} GRANT SELECT ON TABLES TO ${sql(role)}`
  }))
