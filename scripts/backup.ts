/**
 * Catalog backup job: per project, a verified `pg_dump` of its catalog schema into
 * `<root>/.mesa/ducklake/backups/`, then retention.
 *
 *   tsx scripts/backup.ts                       one run over every project (system cron, Kubernetes CronJob)
 *   tsx scripts/backup.ts --project <id> ...    only those projects
 *   tsx scripts/backup.ts --daemon              stays up; runs daily at 03:00 UTC (MESA_DUCKLAKE_BACKUP_CRON)
 *
 * Environment: the hosted layer's (`MESA_DUCKLAKE_DSN`, `MESA_DUCKLAKE_STORAGE`, `MESA_DUCKLAKE_MOUNT_*`, …) and
 * `MESA_DUCKLAKE_BACKUP_PG_DUMP`, `MESA_DUCKLAKE_BACKUP_PG_RESTORE`, `MESA_DUCKLAKE_BACKUP_RETENTION` (30),
 * `MESA_DUCKLAKE_BACKUP_CRON` (`0 3 * * *`, UTC). One-shot exit codes: 0 all backed up, 1 any project failed.
 */
import { Command, Options } from "@effect/cli"
import { NodeContext, NodeRuntime } from "@effect/platform-node"
import { Config, Console, Cron, DateTime, Effect, Either, Layer, Schedule } from "effect"
import * as Hosted from "../layers/hosted.js"
import * as BackupModule from "../src/backup/Backup.js"
import { Backup, type RunSummary } from "../src/backup/Backup.js"

const CronConfig = Config.string("MESA_DUCKLAKE_BACKUP_CRON").pipe(Config.withDefault("0 3 * * *"))

const summaryLine = (s: RunSummary) =>
  `backup: ${s.succeeded}/${s.projects} projects, ${s.files} files, ${s.bytes} bytes, ${s.seconds.toFixed(1)} s` +
  (s.failed.length === 0 ? "" : `; FAILED: ${s.failed.map((f) => `${f.irodsPath} (${f.error})`).join("; ")}`)

/** One run: the chosen projects (default all), with progress logs and an end summary. */
const runOnce = (projects: ReadonlyArray<string>) =>
  Effect.gen(function*() {
    const backup = yield* Backup
    let summary: RunSummary
    if (projects.length === 0) summary = yield* backup.backupAll
    else {
      const started = Date.now()
      const results = []
      const failed = []
      for (const id of projects) {
        const r = yield* Effect.either(backup.backupProject(id))
        if (Either.isRight(r)) results.push(r.right)
        else failed.push({ projectId: id, irodsPath: id, error: r.left.message })
        yield* Effect.logInfo(`backup progress ${results.length + failed.length}/${projects.length}`)
      }
      summary = {
        projects: projects.length,
        succeeded: results.length,
        failed,
        files: results.length * 2,
        bytes: results.reduce((n, r) => n + r.bytes, 0),
        seconds: (Date.now() - started) / 1000,
        results
      }
    }
    yield* Effect.logInfo(summaryLine(summary))
    yield* Console.log(JSON.stringify({ ...summary, results: summary.results.map((r) => ({ projectId: r.projectId, path: r.path, bytes: r.bytes })) }))
    return summary
  })

/** Built inside the handler, so `--help` and usage errors need no configuration. */
const Live = BackupModule.layerConfig.pipe(Layer.provideMerge(Hosted.layer), Layer.provideMerge(NodeContext.layer))

const command = Command.make(
  "backup",
  {
    daemon: Options.boolean("daemon").pipe(Options.withDescription("stay up and run on MESA_DUCKLAKE_BACKUP_CRON (UTC)")),
    project: Options.text("project").pipe(Options.repeated, Options.withDescription("a project id (default: all)"))
  },
  ({ daemon, project }) =>
    Effect.gen(function*() {
      if (!daemon) {
        const summary = yield* runOnce(project)
        if (summary.failed.length > 0) return yield* Effect.fail(new Error(summaryLine(summary)))
        return
      }
      const expression = yield* CronConfig
      const cron = yield* Cron.parse(expression, "UTC")
      const announce = Effect.suspend(() =>
        Effect.logInfo(`next backup run at ${DateTime.formatIso(DateTime.unsafeMake(Cron.next(cron)))}`)
      )
      yield* announce
      // Each run is logged; a failed run is logged and the daemon waits for the next one.
      yield* runOnce(project).pipe(
        Effect.catchAllCause((cause) => Effect.logError("backup run failed", cause)),
        Effect.zipRight(announce),
        Effect.schedule(Schedule.cron(cron))
      )
    }).pipe(Effect.provide(Live))
)


Command.run(command, { name: "mesa-ducklake-backup", version: "0.1.0" })(process.argv).pipe(
  Effect.provide(NodeContext.layer),
  NodeRuntime.runMain
)
