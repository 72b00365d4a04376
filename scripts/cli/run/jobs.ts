/**
 * Handlers of the jobs (`../commands/jobs.ts`): `backup [--daemon]`, `restore`, `rebuild`, `compact`, over
 * `src/backup/Backup.ts` and the client's compaction. Progress with counts goes to stderr: the library's progress
 * logs (`rebuild scan 3/10 files`, `backup progress 2/5`) and, for steps that report nothing while they run, the
 * sizes known up front, with the elapsed time (`withProgress`).
 */
import type { Command } from "@effect/cli"
import * as NodeContext from "@effect/platform-node/NodeContext"
import { Config, Cron, DateTime, Duration, Effect, Layer, Option } from "effect"
import * as BackupModule from "../../../src/backup/Backup.js"
import * as Catalog from "../../../src/catalog/Catalog.js"
import { DuckLakeClient } from "../../../src/client/DuckLakeClient.js"
import type { backupConfig, compactConfig, rebuildConfig, restoreConfig } from "../commands/jobs.js"
import { actorOf, ClientLive, resolveProject } from "../environment.js"
import {
  CommandFailed,
  count,
  emit,
  ExitCode,
  formatRecord,
  withProgress
} from "../output.js"

type Parsed<C extends Command.Command.Config> = Command.Command.ParseConfig<C>

const BackupLive = BackupModule.layerConfig.pipe(Layer.provideMerge(ClientLive), Layer.provideMerge(NodeContext.layer))

/** Top-level fields as `key: value` lines; nested values as compact JSON. */
const summary = (report: object) =>
  formatRecord(Object.entries(report).map(([k, v]) => [k, typeof v === "object" && v !== null && !(v instanceof Date) ? JSON.stringify(v) : v]))

const opt = <A>(key: string, v: Option.Option<A>) => Option.match(v, { onNone: () => ({}), onSome: (x) => ({ [key]: x }) })

const mb = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(1)} MB`

const backupOnce = (ref: Option.Option<string>, json: boolean) =>
  Effect.gen(function*() {
    const service = yield* BackupModule.Backup
    if (Option.isNone(ref)) {
      const projects = yield* Effect.flatMap(DuckLakeClient, (c) => c.listProjects)
      const all = yield* withProgress(`backing up ${count(projects.length)} project(s)…`, service.backupAll)
      yield* emit(json, all, summary)
      // The summary is printed either way; a project that failed makes the run a failure (as scripts/backup.ts).
      if (all.failed.length > 0) {
        return yield* new CommandFailed({
          code: "BackupFailed",
          reason: `${all.failed.length} of ${projects.length} project(s) not backed up: ${
            all.failed.map((f) => `${f.irodsPath} (${f.error})`).join("; ")
          }`,
          exitCode: ExitCode.writeFailure
        })
      }
      return
    }
    const project = yield* resolveProject(ref.value)
    const result = yield* withProgress(`backing up ${project.irodsPath} (pg_dump, verify, upload)…`, service.backupProject(project.projectId))
    yield* emit(json, result, summary)
  })

/**
 * `backup --daemon`: stays up and runs on `MESA_DUCKLAKE_BACKUP_CRON` (UTC), as `scripts/backup.ts --daemon`. A
 * failed run is logged and the daemon waits for the next; SIGINT/SIGTERM stop it (exit 130).
 */
const backupDaemon = (ref: Option.Option<string>, json: boolean) =>
  Effect.gen(function*() {
    const expression = yield* Config.string("MESA_DUCKLAKE_BACKUP_CRON").pipe(Config.withDefault("0 3 * * *"))
    const cron = yield* Cron.parse(expression, "UTC").pipe(
      Effect.mapError((e) => new CommandFailed({ code: "ConfigError", reason: `MESA_DUCKLAKE_BACKUP_CRON: ${e.message}`, exitCode: ExitCode.invalid }))
    )
    const announce = Effect.suspend(() =>
      Effect.sync(() =>
        process.stderr.write(`backup daemon: next run at ${DateTime.formatIso(DateTime.unsafeMake(Cron.next(cron)))} (${expression}, UTC)\n`)
      )
    )
    yield* announce
    return yield* Effect.sleep(Duration.millis(Math.max(0, Cron.next(cron).getTime() - Date.now()))).pipe(
      Effect.zipRight(backupOnce(ref, json).pipe(Effect.catchAllCause((cause) => Effect.logError("backup run failed", cause)))),
      Effect.zipRight(announce),
      Effect.forever
    )
  })

export const backup = (o: Parsed<typeof backupConfig>) =>
  Effect.if(o.daemon, {
    onTrue: () => backupDaemon(o.project, o.json),
    onFalse: () => backupOnce(o.project, o.json)
  }).pipe(Effect.provide(BackupLive))

export const restore = (o: Parsed<typeof restoreConfig>) =>
  Effect.gen(function*() {
    const report = yield* withProgress(
      `restoring ${o.root} (pg_restore, then checking every snapshot's file)…`,
      Effect.flatMap(BackupModule.Backup, (s) => s.restore({ root: o.root, force: o.force, ...opt("backup", o.backup) }))
    )
    yield* emit(o.json, report, summary)
  }).pipe(Effect.provide(BackupLive))

export const rebuild = (o: Parsed<typeof rebuildConfig>) =>
  Effect.gen(function*() {
    const report = yield* withProgress(
      `${o.dryRun ? "scanning (dry run)" : "rebuilding"} ${o.root} from storage…`,
      Effect.flatMap(BackupModule.Backup, (s) =>
        s.rebuild({
          root: o.root,
          force: o.force,
          includeUnconfirmed: o.includeUnconfirmed,
          dryRun: o.dryRun,
          ...opt("actor", o.actor)
        }))
    )
    yield* emit(o.json, report, summary)
    // As `scripts/rebuild.ts` and the README: the report is printed either way, and problems mean exit 2, for a
    // dry run too (a dry run is how an operator checks before writing).
    if (report.problems.length > 0) {
      const kinds = [...new Set(report.problems.map((p) => p.kind))].join(", ")
      return yield* new CommandFailed({
        code: "RebuildProblems",
        reason: `${report.problems.length} problem(s) ${o.dryRun ? "found (dry run: nothing written)" : "reported (never merged)"}: ${kinds}`,
        exitCode: ExitCode.problemsReported
      })
    }
  }).pipe(Effect.provide(BackupLive))

export const compact = (o: Parsed<typeof compactConfig>) =>
  Effect.gen(function*() {
    const client = yield* DuckLakeClient
    const project = yield* resolveProject(o.project)
    const live = yield* Effect.flatMap(Catalog.Catalog, (c) => c.liveFiles(project))
    const rows = live.reduce((n, f) => n + f.recordCount, 0)
    const bytes = live.reduce((n, f) => n + f.fileSizeBytes, 0)
    const report = yield* withProgress(
      `compacting ${project.irodsPath}: ${count(live.length)} file(s), ${count(rows)} rows, ${mb(bytes)}…`,
      Effect.flatMap(actorOf(o.actor), (actor) =>
        client.compact(project.projectId, { actor, ...opt("targetFileSize", o.targetFileSize), ...opt("minFiles", o.minFiles) }))
    )
    yield* emit(o.json, report, summary)
  }).pipe(Effect.provide(ClientLive))
