/**
 * Jobs over `src/backup/Backup.ts` and the client's compaction: `backup`, `restore`, `rebuild`, `compact`.
 * (`scripts/backup.ts` runs backups as a daemon on a UTC schedule; these are the one-shot forms.)
 */
import { Args, Command, Options } from "@effect/cli"
import * as NodeContext from "@effect/platform-node/NodeContext"
import { Effect, Layer, Option } from "effect"
import * as BackupModule from "../../../src/backup/Backup.js"
import { DuckLakeClient } from "../../../src/client/DuckLakeClient.js"
import { actor, actorOf, ClientLive, json, projectArg, resolveProject } from "../environment.js"
import { CommandFailed, doneProgress, emit, ExitCode, formatRecord, progress } from "../output.js"

const BackupLive = BackupModule.layerConfig.pipe(Layer.provideMerge(ClientLive), Layer.provideMerge(NodeContext.layer))

/** Top-level fields as `key: value` lines; nested values as compact JSON. */
const summary = (report: object) =>
  formatRecord(Object.entries(report).map(([k, v]) => [k, typeof v === "object" && v !== null && !(v instanceof Date) ? JSON.stringify(v) : v]))

const rootArg = Args.text({ name: "project-root" }).pipe(Args.withDescription("the project's root collection"))
const opt = <A>(key: string, v: Option.Option<A>) => Option.match(v, { onNone: () => ({}), onSome: (x) => ({ [key]: x }) })

const backup = Command.make("backup", { json, project: projectArg.pipe(Args.optional) }, (o) =>
  Effect.gen(function*() {
    const service = yield* BackupModule.Backup
    if (Option.isNone(o.project)) {
      yield* progress("backing up every project…")
      const all = yield* service.backupAll
      yield* doneProgress
      return yield* emit(o.json, all, summary)
    }
    const project = yield* resolveProject(o.project.value)
    yield* progress(`backing up ${project.irodsPath}…`)
    const result = yield* service.backupProject(project.projectId)
    yield* doneProgress
    yield* emit(o.json, result, summary)
  }).pipe(Effect.provide(BackupLive))).pipe(
    Command.withDescription("dump, verify and upload a project's catalog into its .mesa/ducklake/backups/ (all projects without an argument)")
  )

const restore = Command.make(
  "restore",
  {
    backup: Options.text("backup").pipe(Options.withDescription("backup file name (default: the newest that verifies)"), Options.optional),
    force: Options.boolean("force").pipe(Options.withDescription("replace an existing catalog of this project")),
    json,
    root: rootArg
  },
  (o) =>
    Effect.gen(function*() {
      yield* progress(`restoring ${o.root}…`)
      const report = yield* Effect.flatMap(BackupModule.Backup, (s) => s.restore({ root: o.root, force: o.force, ...opt("backup", o.backup) }))
      yield* doneProgress
      yield* emit(o.json, report, summary)
    }).pipe(Effect.provide(BackupLive))
).pipe(Command.withDescription("restore a project's catalog from a backup, then check its files in storage"))

const rebuild = Command.make(
  "rebuild",
  {
    force: Options.boolean("force").pipe(Options.withDescription("replace an existing catalog of this project")),
    includeUnconfirmed: Options.boolean("include-unconfirmed").pipe(
      Options.withDescription("also commit clean Parquet files that have no commit marker")
    ),
    dryRun: Options.boolean("dry-run").pipe(Options.withDescription("scan and report; write nothing")),
    actor,
    json,
    root: rootArg
  },
  (o) =>
    Effect.gen(function*() {
      yield* progress(`rebuilding ${o.root} from storage…`)
      const report = yield* Effect.flatMap(BackupModule.Backup, (s) =>
        s.rebuild({
          root: o.root,
          force: o.force,
          includeUnconfirmed: o.includeUnconfirmed,
          dryRun: o.dryRun,
          ...opt("actor", o.actor)
        }))
      yield* doneProgress
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
).pipe(Command.withDescription(
  "rebuild a project's catalog from its Parquet files and commit markers alone (exit 2 when problems are reported, --dry-run included)"
))

const compact = Command.make(
  "compact",
  {
    targetFileSize: Options.integer("target-file-size").pipe(Options.withDescription("bytes per merged file"), Options.optional),
    minFiles: Options.integer("min-files").pipe(Options.withDescription("merge only when at least this many files"), Options.optional),
    actor,
    json,
    project: projectArg
  },
  (o) =>
    Effect.gen(function*() {
      const client = yield* DuckLakeClient
      const project = yield* resolveProject(o.project)
      yield* progress(`compacting ${project.irodsPath}…`)
      const report = yield* client.compact(project.projectId, {
        actor: yield* actorOf(o.actor),
        ...opt("targetFileSize", o.targetFileSize),
        ...opt("minFiles", o.minFiles)
      })
      yield* doneProgress
      yield* emit(o.json, report, summary)
    }).pipe(Effect.provide(ClientLive))
).pipe(Command.withDescription("merge a project's small snapshot files (answers and time travel unchanged)"))

export const jobs = [backup, restore, rebuild, compact] as const
