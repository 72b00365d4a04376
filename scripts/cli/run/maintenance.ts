/**
 * Handlers of the operations (`../commands/maintenance.ts`): `recover`, `migrate [--to N]`, `doctor`.
 */
import type { Command } from "@effect/cli"
import { Config, Effect, Either, Layer, Option, Redacted } from "effect"
import { execFile } from "node:child_process"
import * as fs from "node:fs/promises"
import * as nodePath from "node:path"
import { cacheConfig, mountConfig, storageFromConfig } from "../../../layers/components.js"
import { connectionOf } from "../../../src/backup/Backup.js"
import * as Catalog from "../../../src/catalog/Catalog.js"
import { toolEnv } from "../../../src/postgres/childEnv.js"
import { LATEST_MIGRATION, MIGRATIONS_TABLE } from "../../../src/catalog/migrations.js"
import { DuckLakeClient } from "../../../src/client/DuckLakeClient.js"
import { InvalidChange } from "../../../src/core/errors.js"
import { irodsConfig } from "../../../src/irods/Config.js"
import { LakeStorage } from "../../../src/storage/LakeStorage.js"
import type { doctorConfig, migrateConfig, recoverConfig } from "../commands/maintenance.js"
import { ClientLive, dsnOption, requireDsn } from "../environment.js"
import { CommandFailed, emit, ExitCode, formatRecord, formatTable, progress, doneProgress } from "../output.js"

type Parsed<C extends Command.Command.Config> = Command.Command.ParseConfig<C>

export const recover = (o: Parsed<typeof recoverConfig>) =>
    Effect.gen(function*() {
      yield* progress("recovering pending writes…")
      const report = yield* Effect.flatMap(DuckLakeClient, (c) =>
        c.recoverPendingPushes({ maxAttempts: o.maxAttempts, limit: o.limit }))
      yield* doneProgress
      yield* emit(o.json, report, (r) => formatRecord(Object.entries(r)))
    }).pipe(Effect.provide(ClientLive))

/** The shared schema's applied migrations. */
const migrationState = Effect.flatMap(Catalog.Catalog, (catalog) =>
  catalog.withSql((sql) =>
    Effect.map(
      sql<{ migration_id: number; name: string; created_at: Date }>`
        SELECT migration_id, name, created_at FROM ${sql(MIGRATIONS_TABLE.split(".")[0]!)}.${sql(MIGRATIONS_TABLE.split(".")[1]!)}
        ORDER BY migration_id`,
      (rows) => ({
        version: rows.reduce((m, r) => Math.max(m, Number(r.migration_id)), 0),
        latest: LATEST_MIGRATION,
        target: catalog.target,
        migrations: rows.map((r) => ({ id: Number(r.migration_id), name: r.name, appliedAt: new Date(r.created_at) }))
      })
    )
  ))

const CatalogLive = Layer.unwrapEffect(Effect.map(requireDsn, (dsn) => Catalog.layer({ dsn })))

export const migrate = (o: Parsed<typeof migrateConfig>) =>
    Effect.gen(function*() {
      if (Option.isSome(o.to)) {
        const to = o.to.value
        if (to > LATEST_MIGRATION) {
          return yield* new InvalidChange({ field: "to", reason: `${to} is beyond the latest migration this build knows (${LATEST_MIGRATION})` })
        }
        if (to < LATEST_MIGRATION) {
          return yield* new InvalidChange({
            field: "to",
            reason: `${to} is below the latest migration (${LATEST_MIGRATION}); migrations only go forward, to the latest`
          })
        }
      }
      // Connecting migrates the shared schema to the latest version (and refuses a newer catalog).
      const state = yield* migrationState
      yield* Effect.logInfo("catalog migrated", { version: state.version })
      yield* emit(o.json, state, (s) =>
        `catalog ${s.target} is at migration ${s.version} (latest this build knows: ${s.latest})\n` +
        formatTable(["MIGRATION", "NAME", "APPLIED"], s.migrations.map((m) => [m.id, m.name, m.appliedAt])))
    }).pipe(Effect.provide(CatalogLive))

// ---------------------------------------------------------------------------------------------------------------
// doctor

interface Check {
  readonly check: "config" | "catalog" | "storage" | "pg_dump" | "cache"
  readonly ok: boolean
  readonly detail: string
}

const errorText = (e: unknown): string => (e instanceof Error ? e.message : String(e))

const run = <E>(check: Check["check"], effect: Effect.Effect<string, E, never>): Effect.Effect<Check> =>
  effect.pipe(
    Effect.timeout("20 seconds"),
    Effect.either,
    Effect.map(Either.match({
      onLeft: (e) => ({ check, ok: false, detail: errorText(e) }),
      onRight: (detail) => ({ check, ok: true, detail })
    })),
    Effect.catchAllDefect((d) => Effect.succeed({ check, ok: false, detail: errorText(d) }))
  )

/**
 * `pg_dump --version`, with the environment Backup gives the tool (`toolEnv`: an allow-list, built from scratch):
 * not ours, which holds the DSN and other secrets. `secrets`: values no variable passed on may hold (the catalog
 * password).
 */
const pgDumpVersion = (binary: string, secrets: ReadonlyArray<string>) =>
  Effect.async<string, Error>((resume) => {
    const env = toolEnv(undefined, process.env, secrets)
    const child = execFile(binary, ["--version"], { timeout: 10_000, env }, (error, stdout) =>
      resume(error ? Effect.fail(new Error(`${binary}: ${error.message.split("\n")[0]}`)) : Effect.succeed(stdout.trim())))
    return Effect.sync(() => child.kill())
  })

export const doctor = (o: Parsed<typeof doctorConfig>) =>
  Effect.gen(function*() {
    const dsn = yield* dsnOption.pipe(Effect.orElseSucceed(() => Option.none<Redacted.Redacted<string>>()))
    const storageKind = yield* Config.string("MESA_DUCKLAKE_STORAGE").pipe(Config.withDefault("mounted"), Effect.orElseSucceed(() => "?"))

    const config = run("config", Effect.gen(function*() {
      if (Option.isNone(dsn)) return yield* Effect.fail("MESA_DUCKLAKE_DSN is blank: no catalog (modes B/C record nothing)")
      if (storageKind !== "mounted" && storageKind !== "irods") {
        return yield* Effect.fail(`MESA_DUCKLAKE_STORAGE is ${JSON.stringify(storageKind)}: expected mounted or irods`)
      }
      const where = storageKind === "mounted"
        ? yield* Effect.map(mountConfig, (m) => `mount ${m.mountRoot} = ${m.logicalPrefix}`)
        : yield* Effect.map(irodsConfig, (c) => `iRODS ${c.user}@${c.host}:${c.port}/${c.zone}`)
      const cache = yield* cacheConfig
      return `catalog ${Catalog.describeDsn(Redacted.value(dsn.value))}; storage ${storageKind} (${where}); cache ${cache.cacheDir}`
    }))

    let serverMajor: number | undefined
    const catalog = run("catalog", Effect.gen(function*() {
      if (Option.isNone(dsn)) return yield* Effect.fail("not configured")
      return yield* Effect.gen(function*() {
        const state = yield* migrationState
        const server = yield* Effect.flatMap(Catalog.Catalog, (c) =>
          c.withSql((sql) => sql<{ v: string; n: string }>`SELECT current_setting('server_version') AS v, current_setting('server_version_num') AS n`))
        serverMajor = Math.floor(Number(server[0]?.n ?? 0) / 10_000)
        if (state.version !== state.latest) {
          return yield* Effect.fail(`migration ${state.version}, expected ${state.latest}`)
        }
        return `${state.target} reachable, PostgreSQL ${server[0]?.v ?? "?"}, migration ${state.version} (latest)`
      }).pipe(Effect.provide(Catalog.layer({ dsn: dsn.value, connectTimeout: "5 seconds" })))
    }))

    const storage = run("storage", Effect.gen(function*() {
      const prefix = storageKind === "mounted" ? (yield* mountConfig).logicalPrefix : "/"
      const entry = yield* Effect.flatMap(LakeStorage, (s) => s.stat(prefix)).pipe(Effect.provide(storageFromConfig))
      if (Option.isNone(entry)) return yield* Effect.fail(`${prefix} not found`)
      if (entry.value.type !== "collection") return yield* Effect.fail(`${prefix} is not a collection`)
      return `${storageKind}: ${prefix} is reachable`
    }))

    const pgDump = (after: Effect.Effect<Check>) =>
      Effect.flatMap(after, () =>
        run("pg_dump", Effect.gen(function*() {
          const binary = yield* Config.string("MESA_DUCKLAKE_BACKUP_PG_DUMP").pipe(Config.withDefault("pg_dump"))
          const password = Option.isSome(dsn)
            ? yield* Effect.try(() => connectionOf(Redacted.value(dsn.value)).password).pipe(Effect.orElseSucceed(() => undefined))
            : undefined
          const version = yield* pgDumpVersion(binary, password === undefined ? [] : [password])
          const major = Number(/(\d+)(?:\.\d+)?/.exec(version.replace(/^[^\d]*/, ""))?.[1] ?? NaN)
          if (serverMajor !== undefined && serverMajor > 0 && !(major >= serverMajor)) {
            return yield* Effect.fail(`${version} is older than the catalog server (${serverMajor}): backups need pg_dump >= ${serverMajor}`)
          }
          return version
        })))

    const cache = run("cache", Effect.gen(function*() {
      const { cacheDir } = yield* cacheConfig
      const probe = nodePath.join(cacheDir, `.doctor-${process.pid}`)
      yield* Effect.tryPromise(async () => {
        await fs.mkdir(cacheDir, { recursive: true })
        await fs.writeFile(probe, "ok")
        await fs.rm(probe, { force: true })
      })
      return `${cacheDir} is writable`
    }))

    yield* progress("checking configuration, catalog, storage, pg_dump and cache…")
    const [c1, c2, c3, c5] = yield* Effect.all([config, catalog, storage, cache], { concurrency: "unbounded" })
    const c4 = yield* pgDump(Effect.succeed(c2))
    yield* doneProgress
    const checks: ReadonlyArray<Check> = [c1!, c2!, c3!, c4, c5!]
    const failed = checks.filter((c) => !c.ok)
    const healthy = failed.length === 0
    yield* emit(o.json, { healthy, checks }, (r) =>
      formatTable(["CHECK", "STATUS", "DETAIL"], r.checks.map((c) => [c.check, c.ok ? "ok" : "FAILED", c.detail])) +
      (healthy ? "\nhealthy" : `\n${failed.length} check(s) failed`))
    if (!healthy) {
      const first = failed[0]!
      const exitCode = first.check === "config"
        ? ExitCode.notConfigured
        : first.check === "catalog"
        ? ExitCode.catalogUnavailable
        : ExitCode.writeFailure
      return yield* new CommandFailed({
        code: "DoctorFailed",
        reason: `failed checks: ${failed.map((c) => `${c.check} (${c.detail})`).join("; ")}`,
        exitCode
      })
    }
  })
