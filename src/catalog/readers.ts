/**
 * Per-project read-only PostgreSQL roles for analysts who ATTACH one project's lake with DuckDB.
 *
 * Owns the role DDL and grants. The catalog service (`Catalog.grantReader`) calls `grantReader` inside one
 * transaction on its pool.
 *
 * A reader role is created by us, for one project, and recorded in `mesa_ducklake.reader_roles` with the oid
 * PostgreSQL gave it. The rules:
 * - A name that is the service account itself (`current_user`, `session_user`) or a PostgreSQL pseudo-role
 *   (`public`, `none`) is refused (`exists-not-ours`), whatever the registry says.
 * - A name recorded as another project's reader is refused (`other-project`), whether or not the role still exists.
 * - A role that exists and is not recorded as ours (or is recorded with another oid: ours was dropped and someone
 *   made another under the same name) is refused (`exists-not-ours`): we never alter a role we did not create.
 * - Our reader of this project that no longer has exactly what we created it with (see `safeState`) is refused
 *   (`unsafe-attributes`), with or without `rotate`.
 * - Without `rotate`: a new name is created (explicit safe attributes, the password, the grants) and recorded; our
 *   existing reader of this project is refused (`exists-use-rotate`): a password is never changed by accident, and a
 *   call that asked for password X never leaves the role with another password.
 *   A recorded reader of this project whose role was dropped behind our back is created again.
 * - With `rotate`: only our existing reader of this project, still safe, has its password changed (and its grants on
 *   this project's schema applied again, e.g. after a restore); a name that is not such a role is `not-a-reader`.
 *
 * Grants and rotations of one name are serialized by a transaction-scoped advisory lock, taken before anything is
 * read; the registry's primary key and PostgreSQL's own unique role names back it up (a duplicate there is
 * `exists-not-ours`, never a second success).
 *
 * The password never appears in statement text: it goes in as a transaction-local setting (a bound value), and the
 * role DDL is built server-side in a DO block whose errors are raised again without the failed statement's text.
 */
import type { SqlClient, SqlError } from "@effect/sql"
import { Effect, Redacted } from "effect"
import { ReaderRoleConflict } from "../core/errors.js"
import type { Project } from "../core/domain.js"

export interface GrantReaderOptions {
  /**
   * Change the password of this project's existing reader role (ours, unaltered) and apply its grants on the
   * project's schema again. Without it, an existing role is refused and no password ever changes.
   */
  readonly rotate?: boolean
}

type Reason = ReaderRoleConflict["reason"]

/** What PostgreSQL and our registry say about a role name. */
interface RoleState {
  /** The service account itself, or a pseudo-role. */
  readonly reserved: boolean
  readonly registeredProject: string | null
  readonly registeredOid: string | null
  /** The oid of the role of that name now, null when there is none. */
  readonly oid: string | null
  /** Exactly what we create: see `safeState`. Null when there is no role. */
  readonly safe: boolean | null
}

/**
 * The role's state. It is "safe" when it is still exactly what we created: LOGIN, NOSUPERUSER, NOCREATEDB,
 * NOCREATEROLE, NOINHERIT, NOREPLICATION, NOBYPASSRLS; a member of no role; granted to no role but the service
 * account (PostgreSQL 16 grants a role to the non-superuser who created it); owning nothing; and holding privileges
 * only on this project's schema, its relations and default privileges, and on this database itself (CONNECT).
 */
const readState = (sql: SqlClient.SqlClient, role: string, schema: string) =>
  Effect.map(
    sql<{
      reserved: boolean
      registered_project: string | null
      registered_oid: string | null
      oid: string | null
      safe: boolean | null
    }>`
      WITH db AS (SELECT oid FROM pg_database WHERE datname = current_database()),
        ns AS (SELECT oid FROM pg_namespace WHERE nspname = ${schema}),
        me AS (SELECT oid FROM pg_roles WHERE rolname = current_user)
      SELECT
        n.name IN (current_user, session_user, 'public', 'none') AS reserved,
        r.project_id::text AS registered_project,
        r.role_oid::text AS registered_oid,
        a.oid::text AS oid,
        CASE WHEN a.oid IS NULL THEN NULL ELSE (
          a.rolcanlogin AND NOT a.rolsuper AND NOT a.rolinherit AND NOT a.rolcreaterole AND NOT a.rolcreatedb
          AND NOT a.rolreplication AND NOT a.rolbypassrls
          AND NOT EXISTS (SELECT 1 FROM pg_auth_members m WHERE m.member = a.oid)
          AND NOT EXISTS (SELECT 1 FROM pg_auth_members m WHERE m.roleid = a.oid AND m.member NOT IN (SELECT oid FROM me))
          AND NOT EXISTS (
            SELECT 1 FROM pg_shdepend d
            WHERE d.refclassid = 'pg_authid'::regclass AND d.refobjid = a.oid
              AND NOT (d.deptype = 'a' AND (
                (d.dbid = 0 AND d.classid = 'pg_database'::regclass AND d.objid IN (SELECT oid FROM db))
                OR (d.dbid IN (SELECT oid FROM db) AND (
                  (d.classid = 'pg_namespace'::regclass AND d.objid IN (SELECT oid FROM ns))
                  OR (d.classid = 'pg_class'::regclass
                    AND d.objid IN (SELECT c.oid FROM pg_class c WHERE c.relnamespace IN (SELECT oid FROM ns)))
                  OR (d.classid = 'pg_default_acl'::regclass
                    AND d.objid IN (SELECT x.oid FROM pg_default_acl x WHERE x.defaclnamespace IN (SELECT oid FROM ns)))
                ))
              ))
          )
        ) END AS safe
      FROM (SELECT ${role}::text AS name) n
      LEFT JOIN mesa_ducklake.reader_roles r ON r.role = n.name
      LEFT JOIN pg_roles a ON a.rolname = n.name`,
    ([row]): RoleState => ({
      reserved: row!.reserved,
      registeredProject: row!.registered_project,
      registeredOid: row!.registered_oid,
      oid: row!.oid,
      safe: row!.safe
    })
  )

/** What to do with a role name: refuse it, create it, or rotate its password. */
const decide = (state: RoleState, projectId: string, rotate: boolean): Reason | "create" | "rotate" => {
  if (state.reserved) return "exists-not-ours"
  if (state.registeredProject !== null && state.registeredProject !== projectId) return "other-project"
  if (state.oid !== null && (state.registeredProject === null || state.registeredOid !== state.oid)) {
    return "exists-not-ours"
  }
  if (state.oid !== null && state.safe !== true) return "unsafe-attributes"
  if (rotate) return state.oid === null ? "not-a-reader" : "rotate"
  return state.oid === null ? "create" : "exists-use-rotate"
}

/**
 * Runs role DDL built server-side from the transaction-local settings `mesa.reader_role` and `mesa.reader_pw`.
 * An error is raised again with its code and message but not its context, which would quote the statement.
 */
const serverSideDdl = (sql: SqlClient.SqlClient, format: string) =>
  sql.unsafe(`DO $$ BEGIN
    BEGIN
      EXECUTE format('${format}', current_setting('mesa.reader_role'), current_setting('mesa.reader_pw'));
    EXCEPTION WHEN OTHERS THEN
      RAISE EXCEPTION USING ERRCODE = SQLSTATE, MESSAGE = SQLERRM;
    END;
  END $$`)

/** A duplicate role name or registry key (a race with someone else's role, even in another database). */
const isDuplicate = (e: SqlError.SqlError) => {
  const code = (e.cause as { code?: unknown } | undefined)?.code
  return code === "23505" || code === "42710"
}

export const grantReader = (
  sql: SqlClient.SqlClient,
  project: Project,
  role: string,
  password: Redacted.Redacted<string>,
  options: GrantReaderOptions = {}
): Effect.Effect<void, ReaderRoleConflict | SqlError.SqlError> => {
  const conflict = (reason: Reason) => new ReaderRoleConflict({ role, projectId: project.projectId, reason })
  const schema = sql(project.metadataSchema)
  const grants = Effect.all([
    sql`GRANT USAGE ON SCHEMA ${schema} TO ${sql(role)}`,
    sql`GRANT SELECT ON ALL TABLES IN SCHEMA ${schema} TO ${sql(role)}`,
    sql`ALTER DEFAULT PRIVILEGES IN SCHEMA ${schema} GRANT SELECT ON TABLES TO ${sql(role)}`
  ], { discard: true })
  // The name and the password go in as transaction-local settings (bound values); role DDL takes no parameters.
  const setSecrets = sql`SELECT set_config('mesa.reader_role', ${role}, true), set_config('mesa.reader_pw', ${Redacted.value(password)}, true)`
  const clearSecret = sql`SELECT set_config('mesa.reader_pw', '', true)`

  return sql.withTransaction(Effect.gen(function*() {
    yield* sql`SELECT pg_advisory_xact_lock(hashtextextended(${`mesa_ducklake.reader_role:${role}`}, 0))`
    const state = yield* readState(sql, role, project.metadataSchema)
    const action = decide(state, project.projectId, options.rotate === true)
    switch (action) {
      case "create": {
        yield* setSecrets
        yield* serverSideDdl(
          sql,
          "CREATE ROLE %I WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT NOREPLICATION NOBYPASSRLS PASSWORD %L"
        ).pipe(Effect.catchIf(isDuplicate, () => Effect.fail(conflict("exists-not-ours"))))
        yield* clearSecret
        // A recorded reader of this project whose role was dropped behind our back is recorded again.
        const recorded = yield* sql`
          INSERT INTO mesa_ducklake.reader_roles (role, role_oid, project_id)
          SELECT rolname, oid, ${project.projectId}::uuid FROM pg_roles WHERE rolname = ${role}
          ON CONFLICT (role) DO UPDATE SET role_oid = EXCLUDED.role_oid, created_at = now(), created_by = current_user,
            rotated_at = NULL, rotated_by = NULL
          WHERE reader_roles.project_id = EXCLUDED.project_id
          RETURNING role`.pipe(Effect.catchIf(isDuplicate, () => Effect.fail(conflict("exists-not-ours"))))
        if (recorded.length !== 1) return yield* conflict("other-project")
        yield* grants
        return
      }
      case "rotate": {
        yield* setSecrets
        yield* serverSideDdl(sql, "ALTER ROLE %I WITH PASSWORD %L")
        yield* clearSecret
        yield* sql`UPDATE mesa_ducklake.reader_roles SET rotated_at = now(), rotated_by = current_user WHERE role = ${role}`
        yield* grants
        // Changed by someone else between our look and our ALTER: refused, the transaction rolls back.
        const after = yield* readState(sql, role, project.metadataSchema)
        if (after.oid !== state.oid || after.safe !== true) return yield* conflict("unsafe-attributes")
        return
      }
      default:
        return yield* conflict(action)
    }
  }))
}
