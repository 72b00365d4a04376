/**
 * `project register|list|show|find|grant-reader`: the registry, and read-only catalog roles for analysts.
 * `find --discover` finds the project the way mesa-mcp does — the `mesa.enabled` marker on the path or a parent
 * collection, in iRODS — and registers it when new.
 */
import { Command, Options } from "@effect/cli"
import { Config, Effect, Layer, Option } from "effect"
import * as Discovery from "../../../src/operations/discovery.js"
import type { Project } from "../../../src/core/domain.js"
import { DuckLakeClient } from "../../../src/client/DuckLakeClient.js"
import type { ReaderRoleConflict } from "../../../src/core/errors.js"
import { actor, actorOf, ClientLive, IrodsLive, json, pathArg, projectArg, resolveProject } from "../environment.js"
import { CommandFailed, emit, ExitCode, formatRecord, formatTable } from "../output.js"

const describe = (p: Project) =>
  formatRecord([
    ["project", p.projectId],
    ["root", p.irodsPath],
    ["zone", p.irodsZone],
    ["lake files", `${p.ducklakePath}/`],
    ["catalog schema", p.metadataSchema],
    ["created", `${p.createdAt.toISOString()} by ${p.createdBy}`],
    ["status", p.status]
  ])

const register = Command.make(
  "register",
  {
    actor,
    zone: Options.text("zone").pipe(Options.withDescription("iRODS zone (default: the path's first segment)"), Options.optional),
    json,
    path: pathArg
  },
  (o) =>
    Effect.gen(function*() {
      const client = yield* DuckLakeClient
      const who = yield* actorOf(o.actor)
      const project = yield* client.registerProject({
        irodsPath: o.path,
        actor: who,
        ...Option.match(o.zone, { onNone: () => ({}), onSome: (zone) => ({ zone }) })
      })
      yield* Effect.logInfo("project registered", { projectId: project.projectId, root: project.irodsPath })
      yield* emit(o.json, project, (p) => `registered\n${describe(p)}`)
    }).pipe(Effect.provide(ClientLive))
).pipe(Command.withDescription("register a project root (a collection); nested or duplicate roots are refused"))

const list = Command.make("list", { json }, (o) =>
  Effect.gen(function*() {
    const projects = yield* Effect.flatMap(DuckLakeClient, (c) => c.listProjects)
    yield* emit(o.json, projects, (ps) =>
      formatTable(
        ["PROJECT", "ROOT", "STATUS", "CREATED", "BY"],
        ps.map((p) => [p.projectId, p.irodsPath, p.status, p.createdAt, p.createdBy])
      ))
  }).pipe(Effect.provide(ClientLive))).pipe(Command.withDescription("list registered projects"))

const show = Command.make("show", { json, project: projectArg }, (o) =>
  Effect.gen(function*() {
    const project = yield* resolveProject(o.project)
    yield* emit(o.json, project, describe)
  }).pipe(Effect.provide(ClientLive))).pipe(Command.withDescription("show a project (by id, or by any path inside it)"))

const find = Command.make(
  "find",
  {
    discover: Options.boolean("discover").pipe(
      Options.withDescription("find the root by the mesa.enabled marker in iRODS (path and parents) and register it if new")
    ),
    actor,
    json,
    path: pathArg
  },
  (o) =>
    Effect.gen(function*() {
      const project: Project = o.discover
        ? yield* Effect.gen(function*() {
          const discovery = yield* Discovery.ProjectDiscovery
          return yield* discovery.discoverProject(o.path, { actor: yield* actorOf(o.actor) })
        }).pipe(Effect.provide(Discovery.layer().pipe(Layer.provide(IrodsLive))))
        : yield* Effect.flatMap(DuckLakeClient, (c) => c.findProjectByPath(o.path))
      yield* emit(o.json, project, describe)
    }).pipe(Effect.provide(ClientLive))
).pipe(Command.withDescription("the registered project containing a path (--discover: as mesa-mcp finds it)"))

/** What the CLI says when a role name is refused (the library's message speaks of `rotate`, we of `--rotate`). */
const refusal = (e: ReaderRoleConflict): string => {
  switch (e.reason) {
    case "exists-not-ours":
      return `role ${e.role} already exists and was not created by mesa-ducklake as a reader; refused, nothing changed (choose another --role)`
    case "other-project":
      return `role ${e.role} is the reader of another project; refused, nothing changed (choose another --role)`
    case "exists-use-rotate":
      return `role ${e.role} is already this project's reader; its password was not changed (pass --rotate to change it)`
    case "not-a-reader":
      return `role ${e.role} is not a reader of project ${e.projectId}: nothing to rotate (grant it without --rotate first)`
    case "unsafe-attributes":
      return `role ${e.role} has memberships, attributes or privileges a reader never has; refused, nothing changed`
  }
}

const grantReader = Command.make(
  "grant-reader",
  {
    role: Options.text("role").pipe(
      Options.withDescription("PostgreSQL role to create for this project only (a-z, 0-9, _); an existing role is refused")
    ),
    password: Options.redacted("password").pipe(
      Options.withDescription("its password (12+ characters); default: MESA_DUCKLAKE_READER_PASSWORD"),
      Options.optional
    ),
    rotate: Options.boolean("rotate").pipe(
      Options.withDescription("change the password of this project's existing reader role (one this command created)")
    ),
    json,
    project: projectArg
  },
  (o) =>
    Effect.gen(function*() {
      const project = yield* resolveProject(o.project)
      const password = yield* Option.match(o.password, {
        onSome: Effect.succeed,
        onNone: () => Config.redacted("MESA_DUCKLAKE_READER_PASSWORD")
      })
      const granted = yield* Effect.flatMap(DuckLakeClient, (c) =>
        c.grantProjectReader(project.projectId, o.role, password, { rotate: o.rotate })).pipe(
          Effect.catchTag("ReaderRoleConflict", (e) =>
            Effect.fail(new CommandFailed({ code: e._tag, reason: refusal(e), exitCode: ExitCode.invalid })))
        )
      yield* emit(o.json, { ...granted, projectId: project.projectId, rotated: o.rotate }, (g) =>
        formatRecord([
          ["role", g.role],
          [g.rotated ? "password" : "created", g.rotated ? "changed" : "yes"],
          ["reads schema", g.schema],
          ["attach with", `ATTACH 'ducklake:postgres:dbname=… user=${g.role}' AS lake (METADATA_SCHEMA '${g.schema}', READ_ONLY)`]
        ]))
    }).pipe(Effect.provide(ClientLive))
).pipe(
  Command.withDescription(
    "a read-only PostgreSQL role for one project's lake schema (for DuckDB ATTACH); --rotate changes its password"
  )
)

export const project = Command.make("project").pipe(
  Command.withDescription("register, list, show and find projects, and grant read-only catalog roles"),
  Command.withSubcommands([register, list, show, find, grantReader])
)
