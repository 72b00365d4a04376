/**
 * `gc <project> [--grace-days n]`: deletes the files compaction replaced once their grace period is over (the
 * client's `deleteScheduledFiles`), and moves aside any replaced file a cut-short compaction left in `main/`.
 * Handler: `../run/gc.ts`, loaded when run.
 */
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import { json, lazy, projectArg } from "../options.js"

export const gcConfig = {
  graceDays: Options.float("grace-days").pipe(
    Options.withDescription("keep replaced files this many days after their compaction (default 7; 0 deletes them now)"),
    Options.withDefault(7)
  ),
  json,
  project: projectArg
}

export const gc = Command.make("gc", gcConfig, lazy(() => import("../run/gc.js"), (m) => m.gc)).pipe(
  Command.withDescription(
    "delete the files compaction replaced, after the grace period (main/avu_changes holds only live files either way)"
  )
)
