/**
 * `drift [--record] <project>`: live AVUs in iRODS (native client, GenQuery over the project root) against the
 * history's current state; `--record` records the differences as one reconciliation snapshot. Handler:
 * `../run/drift.ts`, loaded when run.
 */
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import { actor, json, lazy, projectArg } from "../options.js"

/** As `DRIFT_SOURCE` in src/operations/drift.ts (not imported here: that module loads the client). */
export const DRIFT_SOURCE_TEXT = "mesa-ducklake:drift-reconciliation"

export const driftConfig = {
  record: Options.boolean("record").pipe(Options.withDescription(`record the differences as one snapshot (source ${DRIFT_SOURCE_TEXT})`)),
  actor,
  json,
  project: projectArg
}

export const drift = Command.make("drift", driftConfig, lazy(() => import("../run/drift.js"), (m) => m.drift)).pipe(
  Command.withDescription("compare a project's live AVUs in iRODS with its history; --record catches the history up")
)
