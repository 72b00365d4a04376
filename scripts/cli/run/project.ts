/**
 * Handlers of `project register|list|show|find|grant-reader` and `attach-sql` (`../commands/project.ts`).
 */
import type { Command } from "@effect/cli"
import { Config, Effect, Layer, Option, Redacted } from "effect"
import { execFile } from "node:child_process"
import * as Discovery from "../../../src/operations/discovery.js"
import type { Project } from "../../../src/core/domain.js"
import { DuckLakeClient } from "../../../src/client/DuckLakeClient.js"
import type { ReaderRoleConflict } from "../../../src/core/errors.js"
import { attachScript, attachStatement, catalogConninfo, dataPathOnMount, FIND_WHEELS_PY, type WheelExtensions } from "../attach.js"
import type { attachSqlConfig, findConfig, grantReaderConfig, registerConfig, showConfig } from "../commands/project.js"
import { actorOf, ClientLive, IrodsLive, requireDsn, resolveProject } from "../environment.js"
import { CommandFailed, emit, ExitCode, formatRecord, formatTable, note, printLine } from "../output.js"

type Parsed<C extends Command.Command.Config> = Command.Command.ParseConfig<C>

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

export const register = (o: Parsed<typeof registerConfig>) =>
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

export const list = (o: { readonly json: boolean }) =>
  Effect.gen(function*() {
    const projects = yield* Effect.flatMap(DuckLakeClient, (c) => c.listProjects)
    yield* emit(o.json, projects, (ps) =>
      formatTable(
        ["PROJECT", "ROOT", "STATUS", "CREATED", "BY"],
        ps.map((p) => [p.projectId, p.irodsPath, p.status, p.createdAt, p.createdBy])
      ))
  }).pipe(Effect.provide(ClientLive))

export const show = (o: Parsed<typeof showConfig>) =>
  Effect.gen(function*() {
    const project = yield* resolveProject(o.project)
    yield* emit(o.json, project, describe)
  }).pipe(Effect.provide(ClientLive))

export const find = (o: Parsed<typeof findConfig>) =>
  Effect.gen(function*() {
    const project: Project = o.discover
      ? yield* Effect.gen(function*() {
        const discovery = yield* Discovery.ProjectDiscovery
        return yield* discovery.discoverProject(o.path, { actor: yield* actorOf(o.actor) })
      }).pipe(Effect.provide(Discovery.layer().pipe(Layer.provide(IrodsLive))))
      : yield* Effect.flatMap(DuckLakeClient, (c) => c.findProjectByPath(o.path))
    yield* emit(o.json, project, describe)
  }).pipe(Effect.provide(ClientLive))

// ---------------------------------------------------------------------------------------------------------------
// ATTACH

interface MountChoice {
  readonly mount: Option.Option<string>
  readonly mountPrefix: Option.Option<string>
}

/**
 * The project's `.mesa/ducklake/` as the reader sees it: under `--mount` (default `MESA_DUCKLAKE_MOUNT_ROOT`, the
 * CLI's own mount) for the prefix `--mount-prefix` (default `MESA_DUCKLAKE_MOUNT_PREFIX`, else `/`). With no mount
 * at all, the iRODS path itself (right for a reader whose mount shows the zone at `/`), and a note says so.
 */
const readerDataPath = (p: Project, o: MountChoice) =>
  Effect.gen(function*() {
    const mountRoot = Option.isSome(o.mount)
      ? o.mount
      : yield* Config.option(Config.string("MESA_DUCKLAKE_MOUNT_ROOT")).pipe(Effect.orElseSucceed(() => Option.none<string>()))
    const prefix = Option.isSome(o.mountPrefix)
      ? o.mountPrefix.value
      : yield* Config.string("MESA_DUCKLAKE_MOUNT_PREFIX").pipe(Config.withDefault("/"), Effect.orElseSucceed(() => "/"))
    if (Option.isNone(mountRoot) || mountRoot.value.trim() === "") {
      yield* note(`no --mount given (nor MESA_DUCKLAKE_MOUNT_ROOT): DATA_PATH is the iRODS path ${p.ducklakePath}/; ` +
        "pass --mount with where your machine mounts the zone")
      return `${p.ducklakePath}/`
    }
    const path = dataPathOnMount(p.ducklakePath, mountRoot.value, prefix)
    if (path === undefined) {
      return yield* new CommandFailed({
        code: "InvalidInput",
        reason: `the project's lake ${p.ducklakePath} is not under the mount prefix ${prefix} (--mount-prefix)`,
        exitCode: ExitCode.invalid
      })
    }
    return path
  })

/** The ATTACH's inputs for a project: the catalog from the DSN (as `user`, when given), the data path on a mount. */
const attachInput = (p: Project, user: string | undefined, o: MountChoice) =>
  Effect.gen(function*() {
    const dsn = yield* requireDsn
    return {
      conninfo: catalogConninfo(Redacted.value(dsn), user),
      metadataSchema: p.metadataSchema,
      dataPath: yield* readerDataPath(p, o)
    }
  })

/** The wheels' extension files, found by asking a Python (`--python`, `MESA_DUCKLAKE_PYTHON`, else `python3`). */
const findWheels = (python: Option.Option<string>) =>
  Effect.gen(function*() {
    const binary = Option.isSome(python)
      ? python.value
      : yield* Config.string("MESA_DUCKLAKE_PYTHON").pipe(Config.withDefault("python3"), Effect.orElseSucceed(() => "python3"))
    return yield* Effect.async<WheelExtensions, string>((resume) => {
      const child = execFile(binary, ["-c", FIND_WHEELS_PY], { timeout: 20_000 }, (error, stdout, stderr) => {
        if (error) resume(Effect.fail(`${binary}: ${(stderr || error.message).trim().split("\n").pop()}`))
        else {
          try {
            resume(Effect.succeed(JSON.parse(stdout) as WheelExtensions))
          } catch {
            resume(Effect.fail(`${binary}: unexpected answer`))
          }
        }
      })
      return Effect.sync(() => child.kill("SIGKILL"))
    })
  })

export const attachSql = (o: Parsed<typeof attachSqlConfig>) =>
  Effect.gen(function*() {
    const project = yield* resolveProject(o.project)
    const input = yield* attachInput(project, Option.getOrUndefined(o.role), o)
    const wheels = yield* findWheels(o.python).pipe(
      Effect.map(Option.some),
      Effect.catchAll((why) =>
        Effect.as(note(`no offline extensions (${why}): printing INSTALL lines instead (DuckDB downloads them)`), Option.none()))
    )
    const script = attachScript({ ...input, projectId: project.projectId, root: project.irodsPath, wheels: Option.getOrUndefined(wheels) })
    if (o.json) {
      return yield* emit(true, {
        projectId: project.projectId,
        metadataSchema: input.metadataSchema,
        dataPath: input.dataPath,
        attach: attachStatement(input),
        extensions: Option.getOrNull(wheels),
        sql: script
      }, () => "")
    }
    yield* printLine(script)
  }).pipe(Effect.provide(ClientLive))

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

export const grantReader = (o: Parsed<typeof grantReaderConfig>) =>
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
    const attach = attachStatement(yield* attachInput(project, granted.role, o))
    yield* emit(o.json, { ...granted, projectId: project.projectId, rotated: o.rotate, attach }, (g) =>
      formatRecord([
        ["role", g.role],
        [g.rotated ? "password" : "created", g.rotated ? "changed" : "yes"],
        ["reads schema", g.schema],
        ["password", "give it to libpq in PGPASSWORD or ~/.pgpass, never in the ATTACH"]
      ]) + `\nattach with (mesa-ducklake attach-sql --role ${g.role} prints the LOAD lines too):\n${g.attach}`)
  }).pipe(Effect.provide(ClientLive))
