/**
 * Restore a project's catalog from its newest verified backup (or a named one) in
 * `<root>/.mesa/ducklake/backups/`, into the catalog `MESA_DUCKLAKE_DSN` points at (an empty schema, or a fresh
 * database), then check every committed snapshot's file in storage.
 *
 *   tsx scripts/restore.ts [--backup <file name>] [--force] <project root>
 *
 * `--force` replaces an existing, non-empty catalog of that project (put back if the restore fails). A corrupt
 * newest backup is skipped for the next good one (reported). Prints the report as JSON; exit 1 on failure or when
 * the consistency check finds missing or altered files. Snapshots committed after the dump are listed in
 * `consistency.newerInStorage`: run `scripts/rebuild.ts --force` to take them in from storage.
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
  "restore",
  {
    backup: Options.text("backup").pipe(Options.optional, Options.withDescription("backup file name (default: newest good)")),
    force: Options.boolean("force").pipe(Options.withDescription("replace an existing catalog of this project")),
    root: Args.text({ name: "project root" })
  },
  ({ backup, force, root }) =>
    Effect.gen(function*() {
      const service = yield* Backup
      const report = yield* service.restore({
        root,
        force,
        ...(Option.isSome(backup) ? { backup: backup.value } : {})
      })
      yield* Console.log(JSON.stringify(report, null, 2))
      const c = report.consistency
      const bad = c.missing.length + c.sizeMismatch.length + c.checksumMismatch.length
      if (bad > 0) return yield* Effect.fail(new Error(`restored, but ${bad} of ${c.checked} snapshot files are missing or altered`))
      if (c.newerInStorage.length > 0) {
        yield* Effect.logWarning(
          `${c.newerInStorage.length} snapshots were committed after this backup (ids ${c.newerInStorage.join(", ")}): ` +
            "rebuild from storage (scripts/rebuild.ts --force) to include them"
        )
      }
    }).pipe(Effect.provide(Live))
)


Command.run(command, { name: "mesa-ducklake-restore", version: "0.1.0" })(process.argv).pipe(
  Effect.provide(NodeContext.layer),
  NodeRuntime.runMain
)
