/**
 * `Backup`: catalog backups into the project's own collection, restore from them, and rebuild from storage alone.
 *
 * - **backup**: per project, `pg_dump --format=custom --schema=<the project's lake schema>` — exactly one project's
 *   catalog, nothing of any other — uploaded to `<root>/.mesa/ducklake/backups/mesa-ducklake-<project>-<UTC>.dump`.
 *   pg_dump cannot filter rows, so the project's registry row (`mesa_ducklake.projects`, shared by all projects) is
 *   not in the dump: it travels in a small manifest next to it, `<same name>.json`, together with the dump's size and
 *   digests. A dump is verified before it counts (its table of contents lists only that schema, a full read of the
 *   archive succeeds, the stored copy's checksum equals the local one); the manifest is uploaded last, so a backup
 *   without a manifest is incomplete and never used. Retention then keeps the newest N verified backups.
 * - **restore**: the newest backup that verifies (or a named one) into the configured catalog; refuses to replace
 *   a non-empty catalog unless `force`; then checks every committed snapshot's file in storage.
 * - **rebuild**: the catalog from the Parquet files and commit markers alone (see `catalog/rebuild.ts`).
 *
 * The catalog password reaches pg_dump/pg_restore only through a private temporary password file (`PGPASSFILE`):
 * never in argv, never in the environment, never in a log or a file name. The tools' environment is built from an
 * allow-list (`toolEnv`): the DSN, every other `MESA_DUCKLAKE_*` variable and any inherited `PGPASSWORD` or unknown
 * secret stay out of their `/proc/<pid>/environ`. What Backup writes on this machine is owner-only: dumps, manifests
 * and password files 0600, their temporary directories and a mounted backups collection 0700 (on iRODS itself, the
 * collection's ACLs govern).
 */
import { Command, FileSystem } from "@effect/platform"
import type { CommandExecutor } from "@effect/platform/CommandExecutor"
import type { PlatformError } from "@effect/platform/Error"
import { Config, Context, Effect, Layer, Option, Redacted, Stream } from "effect"
import { randomBytes } from "node:crypto"
import * as nodePath from "node:path"
import { Catalog, type CatalogService } from "./Catalog.js"
import { toolEnv } from "./childEnv.js"
import {
  BackupCorrupt,
  BackupNotFound,
  BackupToolFailed,
  BackupToolMissing,
  BackupToolTooOld,
  CatalogNotEmpty,
  type RebuildError
} from "./backupErrors.js"
import {
  conflictingProject,
  type RebuildPlan,
  type RebuildProblem,
  scanLake,
  schemaInUse,
  writePlan
} from "./catalog/rebuild.js"
import { TABLE_NAME } from "./catalog/ducklakeSchema.js"
import { parseIrodsPath, type Project } from "./domain.js"
import { DuckDb } from "./DuckDb.js"
import { MARKER_DIR } from "./layout.js"
import type { CatalogError, CatalogSchemaMismatch, CatalogUnavailable, ChecksumMismatch, InvalidChange, ProjectNotFound, StorageError } from "./errors.js"
import { checksumFile, LakeStorage, parseIrodsChecksum } from "./LakeStorage.js"

export * from "./backupErrors.js"
// The child environment's allow-list lives in childEnv.ts (shared with EmbeddedPostgres and the CLI).
export { inheritable, toolEnv } from "./childEnv.js"

export interface BackupConfig {
  /**
   * The catalog DSN (the same the client uses). Its password (or, when it has none, an inherited `PGPASSWORD`, as
   * the client would use) goes to the tools through a private PGPASSFILE.
   */
  readonly dsn: Redacted.Redacted<string>
  /** pg_dump to run (default `pg_dump` from PATH). */
  readonly pgDump?: string
  /** pg_restore to run (default `pg_restore` from PATH). */
  readonly pgRestore?: string
  /** Verified backups kept per project (default 30: a month of daily backups). */
  readonly retention?: number
}

/** What a backup's manifest (`<dump>.json`) holds. */
export interface BackupManifest {
  readonly format: "mesa-ducklake-backup/1"
  readonly projectId: string
  readonly metadataSchema: string
  readonly createdAt: string
  /** The project's row of `mesa_ducklake.projects` at backup time. */
  readonly registry: {
    readonly projectId: string
    readonly irodsPath: string
    readonly irodsZone: string
    readonly ducklakePath: string
    readonly metadataSchema: string
    readonly createdAt: string
    readonly createdBy: string
    readonly status: string
    readonly lastSnapshotId: number
  }
  readonly dump: { readonly name: string; readonly bytes: number; readonly sha256: string; readonly md5: string }
  readonly latestSnapshot: number
  readonly pgDump: string
  readonly server: string
}

export interface BackupResult {
  readonly projectId: string
  readonly path: string
  readonly bytes: number
  readonly latestSnapshot: number
  readonly seconds: number
  readonly retention: RetentionReport
}

export interface StoredBackup {
  readonly name: string
  readonly path: string
  /** The UTC time in the name. */
  readonly time: Date
  readonly bytes: number
  /** `incomplete`: no manifest (a run that died, or one still uploading). */
  readonly status: "complete" | "incomplete"
}

export interface RetentionReport {
  readonly kept: ReadonlyArray<string>
  readonly removed: ReadonlyArray<string>
  /** Backups newer than the oldest kept one that are incomplete or fail their checksum: left alone, reported. */
  readonly unusable: ReadonlyArray<string>
}

export interface RunSummary {
  readonly projects: number
  readonly succeeded: number
  readonly failed: ReadonlyArray<{ readonly projectId: string; readonly irodsPath: string; readonly error: string }>
  readonly files: number
  readonly bytes: number
  readonly seconds: number
  readonly results: ReadonlyArray<BackupResult>
}

export interface ConsistencyReport {
  readonly checked: number
  readonly ok: number
  readonly missing: ReadonlyArray<string>
  readonly sizeMismatch: ReadonlyArray<string>
  readonly checksumMismatch: ReadonlyArray<string>
  /** Snapshots with a commit marker in storage newer than the catalog's latest: committed after the dump. */
  readonly newerInStorage: ReadonlyArray<number>
}

export interface RestoreReport {
  readonly projectId: string
  readonly metadataSchema: string
  readonly backup: string
  /** Newer backups skipped because they failed verification, with why. */
  readonly rejected: ReadonlyArray<string>
  readonly snapshots: number
  readonly consistency: ConsistencyReport
  readonly seconds: number
}

export interface RebuildReport {
  readonly projectId: string
  readonly irodsPath: string
  readonly metadataSchema: string
  /** False for a dry run. */
  readonly written: boolean
  readonly snapshots: number
  readonly firstSnapshot: number | null
  readonly lastSnapshot: number | null
  readonly rows: number
  readonly files: number
  readonly markers: number
  readonly bytes: number
  readonly unconfirmedIncluded: number
  readonly problems: ReadonlyArray<RebuildProblem>
  readonly seconds: number
}

export type ToolError = BackupToolMissing | BackupToolTooOld | BackupToolFailed
type CatalogFailure = CatalogUnavailable | CatalogError | CatalogSchemaMismatch

export interface BackupService {
  /** Dump, verify and upload one project's catalog, then apply retention. */
  readonly backupProject: (
    projectId: string
  ) => Effect.Effect<BackupResult, ToolError | BackupCorrupt | CatalogFailure | ProjectNotFound | StorageError | ChecksumMismatch>
  /** Every registered project, one after another; a failing project does not stop the others. */
  readonly backupAll: Effect.Effect<RunSummary, CatalogFailure>
  /** Backups of a project root, newest first. */
  readonly listBackups: (root: string) => Effect.Effect<ReadonlyArray<StoredBackup>, StorageError | InvalidChange>
  /** Keep the newest `keep` verified backups of a project root; older ones are removed. */
  readonly applyRetention: (
    root: string,
    keep?: number
  ) => Effect.Effect<RetentionReport, StorageError | ChecksumMismatch | InvalidChange>
  /** Verify a stored backup (manifest, checksum, archive contents) without restoring it. */
  readonly verify: (
    path: string
  ) => Effect.Effect<BackupManifest, BackupCorrupt | ToolError | StorageError>
  readonly restore: (input: {
    /** The project root (its `backups/` collection is searched). */
    readonly root: string
    /** A backup's file name; default the newest that verifies. */
    readonly backup?: string
    readonly force?: boolean
  }) => Effect.Effect<
    RestoreReport,
    BackupNotFound | BackupCorrupt | ToolError | CatalogNotEmpty | CatalogFailure | StorageError | InvalidChange
  >
  /** Every committed snapshot's file exists in storage with the recorded size and checksum. */
  readonly checkConsistency: (
    projectId: string
  ) => Effect.Effect<ConsistencyReport, CatalogFailure | ProjectNotFound | StorageError>
  readonly rebuild: (input: {
    readonly root: string
    readonly force?: boolean
    /** Also commit clean Parquet files that have no commit marker (default: report them only). */
    readonly includeUnconfirmed?: boolean
    /** Scan and report; write nothing. */
    readonly dryRun?: boolean
    /** Recorded as the project's creator (default `mesa-ducklake rebuild`). */
    readonly actor?: string
  }) => Effect.Effect<RebuildReport, RebuildError | CatalogNotEmpty | CatalogFailure | StorageError | InvalidChange>
}

export class Backup extends Context.Tag("mesa-ducklake/Backup")<Backup, BackupService>() {}

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

/** Owner-only modes for what Backup writes on this machine (dumps, manifests, password files; their directories). */
const PRIVATE_FILE = 0o600
const PRIVATE_DIR = 0o700

const NAME = /^mesa-ducklake-([0-9a-f-]{36})-(\d{8}T\d{6}\.\d{3}Z)\.dump$/

/** `20260115T030000.123Z` */
const stamp = (d: Date) => d.toISOString().replace(/[-:]/g, "")

const parseStamp = (s: string) =>
  new Date(`${s.slice(0, 4)}-${s.slice(4, 6)}-${s.slice(6, 8)}T${s.slice(9, 11)}:${s.slice(11, 13)}:${s.slice(13)}`)

const majorOf = (version: string) => Number(/(\d+)(?:\.\d+)?/.exec(version)?.[1] ?? NaN)

const installHint = (tool: string, serverMajor: number | undefined, variable: string) =>
  `install the PostgreSQL ${serverMajor ?? ""} client tools (Debian/Ubuntu: apt-get install postgresql-client${
    serverMajor === undefined ? "" : `-${serverMajor}`
  }; RHEL: dnf install postgresql${serverMajor ?? ""}) or set ${variable} to a ${tool} of that version or newer`

export const make = (config: BackupConfig) =>
  Effect.gen(function*() {
    const catalog = yield* Catalog
    const storage = yield* LakeStorage
    const duck = yield* DuckDb
    const fs = yield* FileSystem.FileSystem
    const executor = yield* Effect.context<CommandExecutor>()
    const probe = yield* Effect.serviceOption(BackupProbe)
    const retention = config.retention ?? 30
    const dsn = Redacted.value(config.dsn)
    const connection = connectionOf(dsn)
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
    type Tool = keyof typeof tools

    const scrub = (s: string) => (password === undefined ? s : s.split(password).join("***"))

    /**
     * A local temporary directory only we can enter (0700, whatever the umask), removed with the scope: it holds
     * password files, dumps and downloaded backups.
     */
    const privateTempDir = (prefix: string) =>
      fs.makeTempDirectoryScoped({ prefix }).pipe(
        Effect.tap((dir) => fs.chmod(dir, PRIVATE_DIR)),
        Effect.orDie
      )

    /**
     * Owner-only modes on what a backup stores, where the storage is a mount on this machine: another local user
     * must not read the history in a dump. Where the storage is iRODS itself (no local path), iRODS ACLs govern
     * who reads the backups collection (it inherits the project's), and there is nothing to set here. A mount that
     * cannot change modes (some FUSE mounts) is reported, not fatal: its own permissions govern.
     */
    const restrictStored = (path: string, mode: number) =>
      Option.match(storage.localPath(path), {
        onNone: () => Effect.void,
        onSome: (local) =>
          fs.chmod(local, mode).pipe(
            Effect.catchAll((e) =>
              Effect.logWarning(`could not set mode ${mode.toString(8)} on ${path}: ${e.message}`)
            )
          )
      })

    const collect = (stream: Stream.Stream<Uint8Array, PlatformError>) =>
      stream.pipe(
        Stream.decodeText(),
        Stream.runFold("", (acc, s) => (acc.length > 1_000_000 ? acc : acc + s)),
        Effect.orElseSucceed(() => "")
      )

    /** Runs a tool with the password in a private PGPASSFILE; fails typed on a missing tool or a non-zero exit. */
    const run = (tool: Tool, args: ReadonlyArray<string>, serverMajor?: number) =>
      Effect.scoped(Effect.gen(function*() {
        const dir = yield* privateTempDir("mesa-pgtool-")
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

    const backupsOf = (root: string) => `${root}/.mesa/ducklake/backups`
    const manifestPath = (dumpPath: string) => `${dumpPath}.json`

    const localCopy = (path: string, dir: string): Effect.Effect<string, StorageError> =>
      Option.match(storage.localPath(path), {
        onSome: (p) => Effect.succeed(p),
        onNone: () => {
          const file = nodePath.join(dir, `${randomBytes(4).toString("hex")}-${nodePath.posix.basename(path)}`)
          return Effect.as(storage.get(path, file), file)
        }
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

    const readRegistry = (project: Project) =>
      catalog.withSql((sql) =>
        Effect.map(
          sql<any>`SELECT p.*, p.last_snapshot_id::text AS last_id,
                          (SELECT max(snapshot_id)::text FROM ${sql(project.metadataSchema)}.ducklake_snapshot) AS latest
                   FROM mesa_ducklake.projects p WHERE project_id = ${project.projectId}`,
          ([r]) => ({
            registry: {
              projectId: project.projectId,
              irodsPath: r.irods_path,
              irodsZone: r.irods_zone,
              ducklakePath: r.ducklake_path,
              metadataSchema: r.metadata_schema,
              createdAt: new Date(r.created_at).toISOString(),
              createdBy: r.created_by,
              status: r.status,
              lastSnapshotId: Number(r.last_id)
            },
            latest: Number(r.latest ?? 0)
          })
        )
      )

    const listBackups: BackupService["listBackups"] = (rawRoot) =>
      Effect.gen(function*() {
        const root = yield* parseIrodsPath(rawRoot, "root")
        const entries = yield* storage.list(backupsOf(root)).pipe(
          Effect.catchIf((e) => e.reason === "NotFound", () => Effect.succeed([]))
        )
        const names = new Set(entries.map((e) => e.name))
        return entries.flatMap((e) => {
          const m = NAME.exec(e.name)
          if (m === null || e.type !== "data_object") return []
          return [{
            name: e.name,
            path: e.path,
            time: parseStamp(m[2]!),
            bytes: e.size,
            status: names.has(`${e.name}.json`) ? "complete" as const : "incomplete" as const
          }]
        }).sort((a, b) => (a.name < b.name ? 1 : a.name > b.name ? -1 : 0))
      })

    const readManifest = (path: string, dir: string) =>
      Effect.gen(function*() {
        const local = yield* localCopy(manifestPath(path), dir).pipe(
          Effect.mapError((e) => new BackupCorrupt({ path, reason: `no manifest (${e.reason})`, cause: e }))
        )
        const text = yield* fs.readFileString(local).pipe(
          Effect.mapError((e) => new BackupCorrupt({ path, reason: "manifest unreadable", cause: e }))
        )
        const m = yield* Effect.try({
          try: () => JSON.parse(text) as BackupManifest,
          catch: (cause) => new BackupCorrupt({ path, reason: "manifest is not JSON", cause })
        })
        if (m?.format !== "mesa-ducklake-backup/1" || typeof m.metadataSchema !== "string" || typeof m.dump?.sha256 !== "string") {
          return yield* new BackupCorrupt({ path, reason: "not a mesa-ducklake backup manifest" })
        }
        return m
      })

    /** The stored dump's checksum against its manifest, by whatever algorithm the storage reports. */
    const storedChecksumMatches = (path: string, m: BackupManifest) =>
      Effect.gen(function*() {
        const sum = yield* storage.checksum(path).pipe(Effect.option)
        if (Option.isNone(sum)) return false
        return sum.value.hex === (sum.value.algorithm === "md5" ? m.dump.md5 : m.dump.sha256)
      })

    const verifyIn = (path: string, dir: string) =>
      Effect.gen(function*() {
        const m = yield* readManifest(path, dir)
        const local = yield* localCopy(path, dir)
        const sha = yield* Effect.promise(() => checksumFile(local, "sha256"))
        if (sha.hex !== m.dump.sha256) {
          return yield* new BackupCorrupt({ path, reason: `sha256 ${sha.hex} differs from the manifest's ${m.dump.sha256}` })
        }
        yield* verifyArchive(local, m.metadataSchema, path)
        return { manifest: m, local }
      })

    const verify: BackupService["verify"] = (path) =>
      Effect.scoped(Effect.gen(function*() {
        const dir = yield* privateTempDir("mesa-verify-")
        return (yield* verifyIn(path, dir)).manifest
      }))

    const applyRetention: BackupService["applyRetention"] = (root, keep = retention) =>
      Effect.gen(function*() {
        const all = yield* listBackups(root)
        const dir = yield* privateTempDir("mesa-retention-")
        const good: Array<StoredBackup> = []
        const unusable: Array<StoredBackup> = []
        for (const b of all) {
          if (good.length >= keep) break
          const ok = b.status === "complete" && (yield* readManifest(b.path, dir).pipe(
            Effect.flatMap((m) => storedChecksumMatches(b.path, m)),
            Effect.orElseSucceed(() => false)
          ))
          if (ok) good.push(b)
          else unusable.push(b)
        }
        // Fewer good backups than asked for: remove nothing.
        if (good.length < keep) {
          return { kept: good.map((b) => b.name), removed: [], unusable: unusable.map((b) => b.name) }
        }
        const oldestKept = good[good.length - 1]!
        const removed: Array<string> = []
        for (const b of all) {
          if (b.name >= oldestKept.name) continue
          yield* storage.remove(manifestPath(b.path)).pipe(Effect.catchIf((e) => e.reason === "NotFound", () => Effect.void))
          yield* storage.remove(b.path)
          removed.push(b.name)
        }
        return { kept: good.map((b) => b.name), removed, unusable: unusable.map((b) => b.name) }
      }).pipe(Effect.scoped)

    const backupProject: BackupService["backupProject"] = Effect.fn("Backup.backupProject")(function*(projectId) {
      const started = Date.now()
      const project = yield* catalog.getProject(projectId)
      const versions = yield* checkTool("pg_dump")
      yield* checkTool("pg_restore")
      const { latest, registry } = yield* readRegistry(project)
      const now = new Date()
      const name = `mesa-ducklake-${project.projectId}-${stamp(now)}.dump`
      const remote = `${backupsOf(project.irodsPath)}/${name}`
      yield* Effect.annotateCurrentSpan({ projectId: project.projectId, backup: name })
      const uploaded = yield* Effect.scoped(Effect.gen(function*() {
        const dir = yield* privateTempDir("mesa-backup-")
        const local = nodePath.join(dir, name)
        yield* run("pg_dump", pgDumpArgs(connection.conninfo, project.metadataSchema, local))
        // pg_dump creates its file by the umask (usually 0644): owner-only before anything copies it, so the
        // mounted storage's copy (which takes the source's mode) is never readable by others either.
        yield* fs.chmod(local, PRIVATE_FILE).pipe(Effect.orDie)
        if (Option.isSome(probe) && probe.value.afterDump !== undefined) yield* probe.value.afterDump(local)
        yield* verifyArchive(local, project.metadataSchema, local)
        const sha256 = (yield* Effect.promise(() => checksumFile(local, "sha256"))).hex
        const md5 = (yield* Effect.promise(() => checksumFile(local, "md5"))).hex
        const bytes = Number((yield* fs.stat(local).pipe(Effect.orDie)).size)
        yield* storage.makeCollection(backupsOf(project.irodsPath))
        // Also tightens a collection an older version left readable, and with it the backups it holds.
        yield* restrictStored(backupsOf(project.irodsPath), PRIVATE_DIR)
        yield* storage.put(local, remote)
        yield* restrictStored(remote, PRIVATE_FILE)
        const manifest: BackupManifest = {
          format: "mesa-ducklake-backup/1",
          projectId: project.projectId,
          metadataSchema: project.metadataSchema,
          createdAt: now.toISOString(),
          registry,
          dump: { name, bytes, sha256, md5 },
          latestSnapshot: latest,
          pgDump: versions.tool,
          server: versions.server
        }
        // The stored copy, read back by the storage itself, must be the dump we verified.
        if (!(yield* storedChecksumMatches(remote, manifest))) {
          yield* storage.remove(remote).pipe(Effect.ignore)
          return yield* new BackupCorrupt({ path: remote, reason: "stored copy's checksum differs from the local dump" })
        }
        const localManifest = nodePath.join(dir, `${name}.json`)
        yield* fs.writeFileString(localManifest, JSON.stringify(manifest, null, 2) + "\n", { mode: PRIVATE_FILE }).pipe(
          Effect.zipRight(fs.chmod(localManifest, PRIVATE_FILE)),
          Effect.orDie
        )
        yield* storage.put(localManifest, manifestPath(remote)).pipe(
          Effect.tapError(() => storage.remove(remote).pipe(Effect.ignore))
        )
        yield* restrictStored(manifestPath(remote), PRIVATE_FILE)
        return bytes
      }))
      const kept = yield* applyRetention(project.irodsPath).pipe(
        Effect.catchTag("InvalidChange", (e) => Effect.die(e))
      )
      const seconds = (Date.now() - started) / 1000
      yield* Effect.logInfo("backup written").pipe(
        Effect.annotateLogs({ projectId: project.projectId, backup: name, bytes: uploaded, seconds, removed: kept.removed.length })
      )
      return { projectId: project.projectId, path: remote, bytes: uploaded, latestSnapshot: latest, seconds, retention: kept }
    })

    const backupAll: BackupService["backupAll"] = Effect.gen(function*() {
      const started = Date.now()
      const projects = yield* catalog.listProjects
      const results: Array<BackupResult> = []
      const failed: Array<{ projectId: string; irodsPath: string; error: string }> = []
      let bytes = 0
      for (const [i, p] of projects.entries()) {
        const outcome = yield* Effect.either(backupProject(p.projectId))
        if (outcome._tag === "Right") {
          results.push(outcome.right)
          bytes += outcome.right.bytes
        } else {
          if (outcome.left._tag === "CatalogUnavailable") return yield* outcome.left
          failed.push({ projectId: p.projectId, irodsPath: p.irodsPath, error: outcome.left.message })
          yield* Effect.logError(`backup of ${p.irodsPath} failed: ${outcome.left.message}`)
        }
        yield* Effect.logInfo(`backup progress ${i + 1}/${projects.length}`).pipe(
          Effect.annotateLogs({ project: p.irodsPath, bytes, seconds: (Date.now() - started) / 1000 })
        )
      }
      return {
        projects: projects.length,
        succeeded: results.length,
        failed,
        files: results.length * 2,
        bytes,
        seconds: (Date.now() - started) / 1000,
        results
      }
    }).pipe(Effect.withSpan("Backup.backupAll"))

    const checkConsistency: BackupService["checkConsistency"] = Effect.fn("Backup.checkConsistency")(function*(projectId) {
      const project = yield* catalog.getProject(projectId)
      const rows = yield* catalog.withSql((sql) =>
        sql<any>`SELECT m.snapshot_id::text AS id, d.path, m.checksum, d.file_size_bytes::text AS size
                 FROM ${sql(project.metadataSchema)}.ducklake_data_file d
                 LEFT JOIN ${sql(project.metadataSchema)}.mesa_snapshot m ON m.data_file_id = d.data_file_id
                 WHERE d.end_snapshot IS NULL ORDER BY d.begin_snapshot`
      )
      const latest = yield* catalog.latestSnapshot(project)
      const missing: Array<string> = []
      const sizeMismatch: Array<string> = []
      const checksumMismatch: Array<string> = []
      yield* Effect.scoped(Effect.gen(function*() {
        const dir = yield* privateTempDir("mesa-check-")
        for (const r of rows) {
          const path = `${project.ducklakePath}/main/${TABLE_NAME}/${r.path}`
          const entry = yield* storage.stat(path)
          if (Option.isNone(entry)) {
            missing.push(r.path)
            continue
          }
          if (entry.value.size !== Number(r.size)) {
            sizeMismatch.push(r.path)
            continue
          }
          // Compacted files carry no per-snapshot checksum row; their size is checked above.
          if (r.checksum === null) continue
          const expected = parseIrodsChecksum(r.checksum)
          const stored = yield* storage.checksum(path).pipe(Effect.option)
          let hex = Option.isSome(stored) && stored.value.algorithm === expected?.algorithm ? stored.value.hex : undefined
          if (hex === undefined && expected !== undefined) {
            const local = yield* localCopy(path, dir)
            hex = (yield* Effect.promise(() => checksumFile(local, expected.algorithm))).hex
          }
          if (expected === undefined || hex !== expected.hex) checksumMismatch.push(r.path)
        }
      }))
      const markers = yield* storage.list(`${project.ducklakePath}/${MARKER_DIR}`).pipe(
        Effect.catchIf((e) => e.reason === "NotFound", () => Effect.succeed([]))
      )
      const newerInStorage = markers
        .map((m) => /^snapshot_(\d{10})\.json$/.exec(m.name))
        .flatMap((m) => (m === null ? [] : [Number(m[1])]))
        .filter((id) => id > latest)
        .sort((a, b) => a - b)
      const checked = rows.length
      return {
        checked,
        ok: checked - missing.length - sizeMismatch.length - checksumMismatch.length,
        missing,
        sizeMismatch,
        checksumMismatch,
        newerInStorage
      }
    })

    const restore: BackupService["restore"] = Effect.fn("Backup.restore")(function*(input) {
      const started = Date.now()
      const root = yield* parseIrodsPath(input.root, "root")
      yield* checkTool("pg_restore")
      return yield* Effect.scoped(Effect.gen(function*() {
        const dir = yield* privateTempDir("mesa-restore-")
        const all = yield* listBackups(root)
        const candidates = input.backup === undefined
          ? all.filter((b) => b.status === "complete")
          : all.filter((b) => b.name === input.backup)
        if (input.backup !== undefined && candidates.length === 0) {
          return yield* new BackupNotFound({ collection: backupsOf(root), name: input.backup })
        }
        const rejected: Array<string> = []
        let chosen: { readonly manifest: BackupManifest; readonly local: string; readonly name: string } | undefined
        for (const b of candidates) {
          const verified = yield* Effect.either(verifyIn(b.path, dir))
          if (verified._tag === "Right") {
            chosen = { ...verified.right, name: b.name }
            break
          }
          if (verified.left._tag !== "BackupCorrupt") return yield* verified.left
          // A named backup that fails is an error; the default (newest) falls back to the next good one.
          if (input.backup !== undefined) return yield* verified.left
          rejected.push(`${b.name}: ${verified.left.reason}`)
          yield* Effect.logWarning(`backup ${b.name} skipped: ${verified.left.reason}`)
        }
        if (chosen === undefined) return yield* new BackupNotFound({ collection: backupsOf(root), rejected })
        const m = chosen.manifest
        const schema = m.metadataSchema
        const replaced = `${schema}_replaced_${randomBytes(4).toString("hex")}`
        const hasOld = yield* catalog.withSql((sql) =>
          Effect.gen(function*() {
            const other = yield* conflictingProject(sql, m.projectId, root)
            if (other !== undefined) {
              return yield* new CatalogNotEmpty({
                projectId: m.projectId,
                schema,
                reason: "root-registered-to-another-project",
                detail: `${other.irods_path} is registered to project ${other.id}`
              })
            }
            const inUse = yield* schemaInUse(sql, schema)
            if (inUse.tables > 0 && input.force !== true) {
              return yield* new CatalogNotEmpty({ projectId: m.projectId, schema, reason: "schema-exists" })
            }
            if (inUse.tables > 0) yield* sql`ALTER SCHEMA ${sql(schema)} RENAME TO ${sql(replaced)}`
            else if (inUse.exists) yield* sql`DROP SCHEMA ${sql(schema)}`
            return inUse.tables > 0
          })
        )
        // The replaced catalog is put back if anything below fails; dropped once the restore has committed.
        const putBack = hasOld
          ? catalog.withSql((sql) =>
            sql.withTransaction(Effect.gen(function*() {
              yield* sql`DROP SCHEMA IF EXISTS ${sql(schema)} CASCADE`
              yield* sql`ALTER SCHEMA ${sql(replaced)} RENAME TO ${sql(schema)}`
            }))
          ).pipe(Effect.ignore)
          : catalog.withSql((sql) => sql`DROP SCHEMA IF EXISTS ${sql(schema)} CASCADE`).pipe(Effect.ignore)
        const snapshots = yield* Effect.gen(function*() {
          yield* run("pg_restore", [
            "--no-password",
            "--no-owner",
            "--no-privileges",
            "--single-transaction",
            "--exit-on-error",
            `--dbname=${connection.conninfo}`,
            chosen!.local
          ])
          return yield* catalog.withSql((sql) =>
            sql.withTransaction(Effect.gen(function*() {
              const [r] = yield* sql<any>`SELECT max(snapshot_id)::text AS latest, count(*)::int AS n
                                          FROM ${sql(schema)}.mesa_snapshot`
              const g = m.registry
              yield* sql`
                INSERT INTO mesa_ducklake.projects (project_id, irods_path, irods_zone, ducklake_path, metadata_schema,
                  created_at, created_by, status, last_snapshot_id)
                VALUES (${m.projectId}, ${root}, ${g.irodsZone}, ${`${root}/.mesa/ducklake`}, ${schema},
                  ${g.createdAt}, ${g.createdBy}, ${g.status}, GREATEST(${g.lastSnapshotId}::int8, ${r.latest ?? 1}::int8))
                ON CONFLICT (project_id) DO UPDATE SET irods_path = EXCLUDED.irods_path,
                  ducklake_path = EXCLUDED.ducklake_path, metadata_schema = EXCLUDED.metadata_schema,
                  last_snapshot_id = GREATEST(mesa_ducklake.projects.last_snapshot_id, EXCLUDED.last_snapshot_id)`
              return r.n as number
            }))
          )
        }).pipe(Effect.tapError(() => putBack))
        if (hasOld) yield* catalog.withSql((sql) => sql`DROP SCHEMA ${sql(replaced)} CASCADE`)
        const consistency = yield* checkConsistency(m.projectId).pipe(
          Effect.catchTag("ProjectNotFound", (e) => Effect.die(e))
        )
        const report = {
          projectId: m.projectId,
          metadataSchema: schema,
          backup: chosen.name,
          rejected,
          snapshots,
          consistency,
          seconds: (Date.now() - started) / 1000
        }
        yield* Effect.logInfo("catalog restored").pipe(Effect.annotateLogs({ ...report, consistency: JSON.stringify(consistency) }))
        return report
      }))
    })

    const rebuild: BackupService["rebuild"] = Effect.fn("Backup.rebuild")(function*(input) {
      const started = Date.now()
      const root = yield* parseIrodsPath(input.root, "root")
      let lastLog = Date.now()
      const plan: RebuildPlan = yield* scanLake({ storage, duck }, root, {
        ...(input.includeUnconfirmed === undefined ? {} : { includeUnconfirmed: input.includeUnconfirmed }),
        onFile: (done, total, bytes) =>
          Effect.suspend(() => {
            if (done < total && Date.now() - lastLog < 5000) return Effect.void
            lastLog = Date.now()
            return Effect.logInfo(`rebuild scan ${done}/${total} files`).pipe(Effect.annotateLogs({ root, bytes }))
          })
      })
      let written = false
      if (input.dryRun !== true) {
        yield* catalog.withWriteLock(
          plan.projectId,
          writePlan(catalog, plan, {
            ...(input.force === undefined ? {} : { force: input.force }),
            ...(input.actor === undefined ? {} : { actor: input.actor })
          })
        )
        written = true
      }
      const report: RebuildReport = {
        projectId: plan.projectId,
        irodsPath: plan.irodsPath,
        metadataSchema: plan.metadataSchema,
        written,
        snapshots: plan.snapshots.length,
        firstSnapshot: plan.snapshots[0]?.snapshotId ?? null,
        lastSnapshot: plan.snapshots[plan.snapshots.length - 1]?.snapshotId ?? null,
        rows: plan.snapshots.reduce((n, s) => n + s.recordCount, 0),
        files: plan.filesScanned,
        markers: plan.markersScanned,
        bytes: plan.bytesScanned,
        unconfirmedIncluded: plan.snapshots.filter((s) => !s.confirmed).length,
        problems: plan.problems,
        seconds: (Date.now() - started) / 1000
      }
      yield* Effect.logInfo(written ? "catalog rebuilt" : "rebuild dry run").pipe(
        Effect.annotateLogs({ ...report, problems: report.problems.length })
      )
      for (const p of plan.problems) yield* Effect.logWarning(`rebuild: ${p.kind}`, p)
      return report
    })

    return Backup.of({
      backupProject,
      backupAll,
      listBackups,
      applyRetention,
      verify,
      restore,
      checkConsistency,
      rebuild
    })
  })

/** The Backup service over a Catalog, LakeStorage, DuckDb, FileSystem and CommandExecutor. */
export const layer = (config: BackupConfig) => Layer.effect(Backup, make(config))

/**
 * From the environment: `MESA_DUCKLAKE_DSN`, `MESA_DUCKLAKE_BACKUP_PG_DUMP`, `MESA_DUCKLAKE_BACKUP_PG_RESTORE`,
 * `MESA_DUCKLAKE_BACKUP_RETENTION` (default 30).
 */
export const BackupConfigFromEnv = Config.all({
  dsn: Config.redacted("MESA_DUCKLAKE_DSN"),
  pgDump: Config.string("MESA_DUCKLAKE_BACKUP_PG_DUMP").pipe(Config.withDefault("pg_dump")),
  pgRestore: Config.string("MESA_DUCKLAKE_BACKUP_PG_RESTORE").pipe(Config.withDefault("pg_restore")),
  retention: Config.integer("MESA_DUCKLAKE_BACKUP_RETENTION").pipe(
    Config.validate({ message: "must be at least 1", validation: (n) => n >= 1 }),
    Config.withDefault(30)
  )
})

export const layerConfig = Layer.unwrapEffect(Effect.map(BackupConfigFromEnv, layer))

export type { CatalogService }
