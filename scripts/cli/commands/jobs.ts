/**
 * Jobs over `src/backup/Backup.ts` and the client's compaction: `backup [--daemon]`, `restore`, `rebuild`, `compact`
 * (their handlers: `../run/jobs.ts`, loaded when run). Each shows its progress with counts on stderr.
 */
import * as Args from "@effect/cli/Args"
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import { actor, json, lazy, projectArg } from "../options.js"

const run = () => import("../run/jobs.js")

const rootArg = Args.text({ name: "project-root" }).pipe(Args.withDescription("the project's root collection"))
const force = Options.boolean("force").pipe(Options.withDescription("replace an existing catalog of this project"))

export const backupConfig = {
  daemon: Options.boolean("daemon").pipe(
    Options.withDescription("stay up and back up on MESA_DUCKLAKE_BACKUP_CRON (UTC, default daily at 03:00); Ctrl-C stops it")
  ),
  json,
  project: projectArg.pipe(Args.optional)
}

const backup = Command.make("backup", backupConfig, lazy(run, (m) => m.backup)).pipe(
  Command.withDescription(
    "dump, verify and upload a project's catalog into its .mesa/ducklake/backups/ (all projects without an argument)"
  )
)

export const restoreConfig = {
  backup: Options.text("backup").pipe(Options.withDescription("backup file name (default: the newest that verifies)"), Options.optional),
  force,
  json,
  root: rootArg
}

const restore = Command.make("restore", restoreConfig, lazy(run, (m) => m.restore)).pipe(
  Command.withDescription("restore a project's catalog from a backup, then check its files in storage")
)

export const rebuildConfig = {
  force,
  includeUnconfirmed: Options.boolean("include-unconfirmed").pipe(
    Options.withDescription("also commit clean Parquet files that have no commit marker")
  ),
  dryRun: Options.boolean("dry-run").pipe(Options.withDescription("scan and report; write nothing")),
  actor,
  json,
  root: rootArg
}

const rebuild = Command.make("rebuild", rebuildConfig, lazy(run, (m) => m.rebuild)).pipe(
  Command.withDescription(
    "rebuild a project's catalog from its Parquet files and commit markers alone (exit 2 when problems are reported, --dry-run included)"
  )
)

export const compactConfig = {
  targetFileSize: Options.integer("target-file-size").pipe(Options.withDescription("bytes per merged file"), Options.optional),
  minFiles: Options.integer("min-files").pipe(Options.withDescription("merge only when at least this many files"), Options.optional),
  actor,
  json,
  project: projectArg
}

const compact = Command.make("compact", compactConfig, lazy(run, (m) => m.compact)).pipe(
  Command.withDescription("merge a project's small snapshot files (answers and time travel unchanged)")
)

export const jobs = [backup, restore, rebuild, compact] as const
