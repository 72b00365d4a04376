/**
 * The project registry (`mesa_ducklake.projects`): registering a project (its row and its lake schema, refusing
 * roots that nest), finding one by id or by a path inside it, listing, archiving, and granting a read-only role on
 * one project's lake (the role DDL and grants themselves are in `readers.ts`).
 */
import { Effect, type Redacted } from "effect"
import { type IrodsPath, isWithin, type Project, type ProjectStatus } from "../core/domain.js"
import { ProjectConflict, ProjectNotFound, type ReaderRoleConflict } from "../core/errors.js"
import type { Conn } from "./connection.js"
import { createLakeStatements } from "./ducklakeSchema.js"
import * as Readers from "./readers.js"
import type { Failure } from "./types.js"

/** A `mesa_ducklake.projects` row as a `Project`. */
const projectFromRow = (r: any): Project => ({
  projectId: r.project_id,
  irodsPath: r.irods_path,
  irodsZone: r.irods_zone,
  ducklakePath: r.ducklake_path,
  metadataSchema: r.metadata_schema,
  createdAt: new Date(r.created_at),
  createdBy: r.created_by,
  status: r.status
})

/**
 * Registers a project and creates its lake schema, in one transaction. `prepare` runs after the conflict checks and
 * before the commit, so a refused registration touches nothing.
 */
export const registerProject = <E>(
  conn: Conn,
  input: {
    readonly irodsPath: IrodsPath
    readonly irodsZone: string
    readonly actor: string
    readonly ducklakePath: IrodsPath
    readonly prepare: Effect.Effect<void, E>
  }
): Effect.Effect<Project, Failure | ProjectConflict | E> =>
  conn.withSql((sql) =>
    sql.withTransaction(Effect.gen(function*() {
      // One registration at a time, so two racing registrations cannot nest roots.
      yield* sql`LOCK TABLE mesa_ducklake.projects IN SHARE ROW EXCLUSIVE MODE`
      const existing = yield* sql<any>`SELECT * FROM mesa_ducklake.projects`
      for (const row of existing) {
        const other = projectFromRow(row)
        const relation = other.irodsPath === input.irodsPath
          ? "duplicate"
          : isWithin(input.irodsPath, other.irodsPath)
          ? "nested-inside"
          : isWithin(other.irodsPath, input.irodsPath)
          ? "contains"
          : undefined
        if (relation !== undefined) {
          return yield* new ProjectConflict({
            irodsPath: input.irodsPath,
            existingProjectId: other.projectId,
            existingRoot: other.irodsPath,
            relation
          })
        }
      }
      yield* input.prepare
      const [{ id }] = (yield* sql<{ id: string }>`SELECT gen_random_uuid()::text AS id`) as any
      const schema = `lake_${id.replace(/-/g, "")}`
      const rows = yield* sql<any>`
        INSERT INTO mesa_ducklake.projects (project_id, irods_path, irods_zone, ducklake_path, metadata_schema, created_by)
        VALUES (${id}, ${input.irodsPath}, ${input.irodsZone}, ${input.ducklakePath}, ${schema}, ${input.actor})
        RETURNING *`
      for (
        const [stmt, params] of createLakeStatements(schema, {
          dataPath: `${input.ducklakePath}/`,
          createdBy: "mesa-ducklake 0.1.0",
          projectId: id,
          actor: input.actor
        })
      ) {
        yield* sql.unsafe(stmt, params as Array<any>)
      }
      return projectFromRow(rows[0])
    })), "registerProject")

/** A project by id (an id that is not a UUID is simply not found). */
export const getProject = (conn: Conn, projectId: string): Effect.Effect<Project, Failure | ProjectNotFound> =>
  conn.withSql((sql) =>
    Effect.gen(function*() {
      if (!/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(projectId)) {
        return yield* new ProjectNotFound({ projectId })
      }
      const rows = yield* sql<any>`SELECT * FROM mesa_ducklake.projects WHERE project_id = ${projectId}`
      if (rows.length === 0) return yield* new ProjectNotFound({ projectId })
      return projectFromRow(rows[0])
    }), "getProject")

/** The project whose root contains `path` (or is it). */
export const findProjectByPath = (conn: Conn, path: IrodsPath): Effect.Effect<Project, Failure | ProjectNotFound> =>
  conn.withSql((sql) =>
    Effect.gen(function*() {
      // Deepest registered root containing the path (roots never nest, so at most one matches).
      const rows = yield* sql<any>`
        SELECT * FROM mesa_ducklake.projects
        WHERE irods_path = ${path} OR ${path} LIKE replace(replace(replace(irods_path, '\\', '\\\\'), '%', '\\%'), '_', '\\_') || '/%'
          OR irods_path = '/'
        ORDER BY length(irods_path) DESC LIMIT 1`
      if (rows.length === 0) return yield* new ProjectNotFound({ irodsPath: path })
      return projectFromRow(rows[0])
    }), "findProjectByPath")

/** Every registered project, by root path. */
export const listProjects = (conn: Conn): Effect.Effect<ReadonlyArray<Project>, Failure> =>
  conn.withSql(
    (sql) =>
      Effect.map(
        sql<any>`SELECT * FROM mesa_ducklake.projects ORDER BY irods_path`,
        (rows) => rows.map(projectFromRow)
      ),
    "listProjects"
  )

/** Sets a project's status (`active`, `archived`, …); fails if the project is not registered. */
export const setProjectStatus = (
  conn: Conn,
  projectId: string,
  status: ProjectStatus
): Effect.Effect<void, Failure | ProjectNotFound> =>
  Effect.flatMap(getProject(conn, projectId), () =>
    conn.withSql(
      (sql) => sql`UPDATE mesa_ducklake.projects SET status = ${status} WHERE project_id = ${projectId}`,
      "setProjectStatus"
    )).pipe(Effect.asVoid)

/** A login role that may read one project's lake schema and nothing else (see `readers.ts`). */
export const grantReader = (
  conn: Conn,
  project: Project,
  role: string,
  password: Redacted.Redacted<string>,
  options?: Readers.GrantReaderOptions
): Effect.Effect<void, Failure | ReaderRoleConflict> =>
  conn.withSql((sql) => Readers.grantReader(sql, project, role, password, options), "grantReader")
