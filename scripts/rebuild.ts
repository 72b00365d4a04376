/**
 * Rebuild a project's catalog from storage alone: its Parquet files (`main/avu_changes/`) and commit markers
 * (`_mesa_log/`), with the project id, snapshot ids and transaction times they record. No dump is needed.
 *
 *   tsx scripts/rebuild.ts [--dry-run] [--force] [--include-unconfirmed] [--actor <name>] <project root>
 *
 * Files without a marker, with a wrong checksum, duplicate snapshot ids, unreadable (partial) files, files of
 * another project and markers whose file is gone are reported, never merged; `--include-unconfirmed` commits clean
 * marker-less files too. `--force` replaces an existing catalog of the project. Parquet files are never deleted.
 * Prints the report as JSON; exit 0 clean, 2 written with problems reported, 1 on failure.
 */
import { Args, Command, Options } from "@effect/cli"
import { NodeContext, NodeRuntime } from "@effect/platform-node"
import { Console, Effect, Layer, Option } from "effect"
import * as Hosted from "../layers/hosted.js"
import * as BackupModule from "../src/backup/Backup.js"
import { Backup } from "../src/backup/Backup.js"

/** Built inside the handler, so `--help` and usage errors need no configuration. */
const Live = BackupModule.layerConfig.pipe(Layer.provideMerge(Hosted.layer), Layer.provideMerge(NodeContext.layer))

const command = Command.make(
  "rebuild",
  {
    dryRun: Options.boolean("dry-run").pipe(Options.withDescription("scan and report, write nothing")),
    force: Options.boolean("force").pipe(Options.withDescription("replace an existing catalog of this project")),
    includeUnconfirmed: Options.boolean("include-unconfirmed").pipe(
      Options.withDescription("also commit clean Parquet files that have no commit marker")
    ),
    actor: Options.text("actor").pipe(Options.optional),
    root: Args.text({ name: "project root" })
  },
  ({ actor, dryRun, force, includeUnconfirmed, root }) =>
    Effect.gen(function*() {
      const service = yield* Backup
      const report = yield* service.rebuild({
        root,
        force,
        dryRun,
        includeUnconfirmed,
        ...(Option.isSome(actor) ? { actor: actor.value } : {})
      })
      yield* Console.log(JSON.stringify(report, null, 2))
      yield* Effect.logInfo(
        `rebuild: ${report.snapshots} snapshots, ${report.files} files, ${report.bytes} bytes, ${report.seconds.toFixed(1)} s, ` +
          `${report.problems.length} problems`
      )
      if (report.problems.length > 0) process.exitCode = 2
    }).pipe(Effect.provide(Live))
)


Command.run(command, { name: "mesa-ducklake-rebuild", version: "0.1.0" })(process.argv).pipe(
  Effect.provide(NodeContext.layer),
  NodeRuntime.runMain
)
