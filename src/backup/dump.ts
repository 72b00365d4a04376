/**
 * The PostgreSQL client tools, `pg_dump` and `pg_restore`: where they are, that they are new enough for the server,
 * how they are run, and what they say about an archive.
 *
 * The catalog password reaches them only through a private temporary password file (`PGPASSFILE`): never in argv,
 * never in the environment, never in a log or a file name. Their environment is built from an allow-list
 * (`toolEnv`, in childEnv.ts): the DSN, every other `MESA_DUCKLAKE_*` variable and any inherited `PGPASSWORD` or
 * unknown secret stay out of their `/proc/<pid>/environ`. A missing or older tool is a typed error that says what to
 * install; a failing one carries its stderr with the password scrubbed.
 */
import * as Command from "@effect/platform/Command"
import * as FileSystem from "@effect/platform/FileSystem"
import type { CommandExecutor } from "@effect/platform/CommandExecutor"
import type { PlatformError } from "@effect/platform/Error"
import { Context, Effect, Option, Redacted, Stream } from "effect"
import * as nodePath from "node:path"
import { Catalog } from "../catalog/Catalog.js"
import { toolEnv } from "../postgres/childEnv.js"
import { BackupCorrupt, BackupToolFailed, BackupToolMissing, BackupToolTooOld } from "./errors.js"
import { PRIVATE_FILE, privateTempDir } from "./private.js"

export type ToolError = BackupToolMissing | BackupToolTooOld | BackupToolFailed

/**
 * An optional observer for tests: sees every tool invocation exactly as it is spawned (argv and environment),
 * and each local dump before it is verified (to corrupt it).
 */
export class BackupProbe extends Context.Tag("mesa-ducklake/BackupProbe")<BackupProbe, {
  readonly spawned?: (tool: string, args: ReadonlyArray<string>, env: Readonly<Record<string, string>>) => Effect.Effect<void>
  readonly afterDump?: (localFile: string) => Effect.Effect<void>
}>() {}

// ---------------------------------------------------------------------------------------------------------------
// Connection details without the password

export interface Connection {
  /** libpq connection string or URL without any password: safe for argv. */
  readonly conninfo: string
  readonly password: string | undefined
}

const KV = /(\w+)\s*=\s*('(?:[^'\\]|\\.)*'|\S+)/g

/** Splits a DSN (URL or libpq key=value) into a password-free connection string and the password. */
export const connectionOf = (dsn: string): Connection => {
  if (/^postgres(ql)?:\/\//.test(dsn)) {
    const u = new URL(dsn)
    const password = u.password === "" ? u.searchParams.get("password") ?? undefined : decodeURIComponent(u.password)
    u.password = ""
    u.searchParams.delete("password")
    return { conninfo: u.toString(), password }
  }
  const pairs = [...dsn.matchAll(KV)].map((m) => [m[1]!, (m[2] ?? "").replace(/^'|'$/g, "").replace(/\\(.)/g, "$1")] as const)
  const password = pairs.find(([k]) => k === "password")?.[1]
  const conninfo = pairs
    .filter(([k]) => k !== "password")
    .map(([k, v]) => `${k}='${v.replace(/\\/g, "\\\\").replace(/'/g, "\\'")}'`)
    .join(" ")
  return { conninfo, password }
}

/** A `.pgpass` line matching any server: the file exists only for one tool run. */
export const passfileLine = (password: string) => `*:*:*:*:${password.replace(/\\/g, "\\\\").replace(/:/g, "\\:")}\n`

/**
 * pg_dump's argv for one project's schema: no password, ever. `--no-password`: never prompt (an unattended run
 * without a usable password would otherwise wait on the terminal or stdin forever).
 */
export const pgDumpArgs = (conninfo: string, schema: string, file: string): Array<string> => [
  "--format=custom",
  "--no-password",
  `--schema=${schema}`,
  "--no-owner",
  "--no-privileges",
  `--file=${file}`,
  `--dbname=${conninfo}`
]

// ---------------------------------------------------------------------------------------------------------------
// Running the tools

const majorOf = (version: string) => Number(/(\d+)(?:\.\d+)?/.exec(version)?.[1] ?? NaN)

const installHint = (tool: string, serverMajor: number | undefined, variable: string) =>
  `install the PostgreSQL ${serverMajor ?? ""} client tools (Debian/Ubuntu: apt-get install postgresql-client${
    serverMajor === undefined ? "" : `-${serverMajor}`
  }; RHEL: dnf install postgresql${serverMajor ?? ""}) or set ${variable} to a ${tool} of that version or newer`

const collect = (stream: Stream.Stream<Uint8Array, PlatformError>) =>
  stream.pipe(
    Stream.decodeText(),
    Stream.runFold("", (acc, s) => (acc.length > 1_000_000 ? acc : acc + s)),
    Effect.orElseSucceed(() => "")
  )

export interface PgToolsConfig {
  /** The catalog DSN; its password (or an inherited `PGPASSWORD`) goes to the tools through a private PGPASSFILE. */
  readonly dsn: Redacted.Redacted<string>
  /** pg_dump to run (default `pg_dump` from PATH). */
  readonly pgDump?: string
  /** pg_restore to run (default `pg_restore` from PATH). */
  readonly pgRestore?: string
}

export type Tool = "pg_dump" | "pg_restore"

/**
 * The tools over the catalog's connection: `run`, `checkTool` (version against the server), `verifyArchive`, and
 * the probe's `afterDump`.
 */
export const makePgTools = (config: PgToolsConfig) =>
  Effect.gen(function*() {
    const catalog = yield* Catalog
    const fs = yield* FileSystem.FileSystem
    const executor = yield* Effect.context<CommandExecutor>()
    const probe = yield* Effect.serviceOption(BackupProbe)
    const connection = connectionOf(Redacted.value(config.dsn))
    // The catalog client (node-postgres) falls back to PGPASSWORD when the DSN holds no password, so the tools use
    // the same password, through the password file: the variable itself is never passed on (see toolEnv).
    const inheritedPassword = process.env.PGPASSWORD
    const password = connection.password !== undefined && connection.password !== ""
      ? connection.password
      : inheritedPassword !== undefined && inheritedPassword !== ""
      ? inheritedPassword
      : undefined
    const tools = {
      pg_dump: { path: config.pgDump ?? "pg_dump", variable: "MESA_DUCKLAKE_BACKUP_PG_DUMP" },
      pg_restore: { path: config.pgRestore ?? "pg_restore", variable: "MESA_DUCKLAKE_BACKUP_PG_RESTORE" }
    } as const

    const scrub = (s: string) => (password === undefined ? s : s.split(password).join("***"))

    /** Runs a tool with the password in a private PGPASSFILE; fails typed on a missing tool or a non-zero exit. */
    const run = (tool: Tool, args: ReadonlyArray<string>, serverMajor?: number) =>
      Effect.scoped(Effect.gen(function*() {
        const dir = yield* privateTempDir(fs, "mesa-pgtool-")
        let passfile: string | undefined
        if (password !== undefined) {
          passfile = nodePath.join(dir, "pgpass")
          yield* fs.writeFileString(passfile, passfileLine(password), { mode: PRIVATE_FILE }).pipe(Effect.orDie)
          yield* fs.chmod(passfile, PRIVATE_FILE).pipe(Effect.orDie)
        }
        const env = toolEnv(passfile, process.env, password === undefined ? [] : [password])
        if (Option.isSome(probe) && probe.value.spawned !== undefined) yield* probe.value.spawned(tool, args, env)
        const command = Command.make(tools[tool].path, ...args).pipe(Command.env(env, { extendEnv: false }))
        const missing = (cause: unknown) =>
          new BackupToolMissing({
            tool,
            tried: tools[tool].path,
            hint: installHint(tool, serverMajor, tools[tool].variable),
            cause
          })
        const proc = yield* Command.start(command).pipe(Effect.mapError(missing))
        const [stdout, stderr, code] = yield* Effect.all(
          [collect(proc.stdout), collect(proc.stderr), Effect.mapError(proc.exitCode, missing)],
          { concurrency: "unbounded" }
        )
        if (code !== 0) {
          return yield* new BackupToolFailed({ tool, exitCode: code, stderr: scrub(stderr).slice(-4000) })
        }
        return stdout
      })).pipe(Effect.provide(executor), Effect.withSpan(`Backup.${tool}`))

    const serverVersion = catalog.withSql((sql) =>
      Effect.map(sql<any>`SELECT current_setting('server_version_num')::int AS n, current_setting('server_version') AS v`, ([r]) => ({
        major: Math.floor(Number(r.n) / 10000),
        version: String(r.v)
      }))
    )

    /** The tool runs and is at least the server's major version (pg_dump refuses a newer server). */
    const checkTool = (tool: Tool) =>
      Effect.gen(function*() {
        const server = yield* serverVersion
        const out = yield* run(tool, ["--version"], server.major)
        const found = /\)\s*(\d+(?:\.\d+)?)/.exec(out)?.[1] ?? out.trim()
        if (!(majorOf(found) >= server.major)) {
          return yield* new BackupToolTooOld({
            tool,
            found,
            server: server.version,
            hint: installHint(tool, server.major, tools[tool].variable)
          })
        }
        return { tool: found, server: server.version }
      })

    /**
     * A local dump is a usable backup of `schema`: its table of contents names that schema and no other lake or
     * shared schema, it holds the snapshot table's data, and every data block reads back (a truncated archive can
     * still list its contents; only a full read finds the damage).
     */
    const verifyArchive = (file: string, schema: string, label: string) =>
      Effect.gen(function*() {
        const corrupt = (reason: string, cause?: unknown) => new BackupCorrupt({ path: label, reason, cause })
        const toc = yield* run("pg_restore", ["--list", file]).pipe(
          Effect.catchTag("BackupToolFailed", (e) => Effect.fail(corrupt(`pg_restore --list failed: ${e.stderr.trim()}`, e)))
        )
        const entries = toc.split("\n").filter((l) => l.trim() !== "" && !l.startsWith(";"))
        const foreign = entries.filter((l) =>
          / mesa_ducklake /.test(l) || [...l.matchAll(/\blake_[0-9a-f]{32}\b/g)].some((m) => m[0] !== schema)
        )
        if (foreign.length > 0) return yield* corrupt(`holds objects outside ${schema}: ${foreign[0]}`)
        if (!entries.some((l) => l.includes(`TABLE DATA ${schema} ducklake_snapshot `))) {
          return yield* corrupt(`does not hold the data of ${schema}.ducklake_snapshot`)
        }
        yield* run("pg_restore", ["--file=/dev/null", file]).pipe(
          Effect.catchTag("BackupToolFailed", (e) => Effect.fail(corrupt(`archive does not read back: ${e.stderr.trim()}`, e)))
        )
        return entries.length
      })

    /** A test's probe sees (or damages) each fresh local dump before it is verified. */
    const afterDump = (file: string) =>
      Option.isSome(probe) && probe.value.afterDump !== undefined ? probe.value.afterDump(file) : Effect.void

    return { conninfo: connection.conninfo, run, checkTool, verifyArchive, afterDump }
  })

/** The tools of one Backup service (see `makePgTools`). */
export type PgTools = Effect.Effect.Success<ReturnType<typeof makePgTools>>
