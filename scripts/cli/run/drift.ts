/**
 * Handler of `drift [--record] <project>`: live AVUs in iRODS (native client, GenQuery over the project root) against the
 * history's current state; `--record` records the differences as one reconciliation snapshot.
 */
import type { Command } from "@effect/cli"
import { Effect } from "effect"
import { detectDrift, DRIFT_SOURCE, type DriftReport, recordDrift } from "../../../src/operations/drift.js"
import type { driftConfig } from "../commands/drift.js"
import { actorOf, ClientLive, IrodsLive, resolveProject } from "../environment.js"
import { doneProgress, emit, formatTable, progress } from "../output.js"

const table = (report: DriftReport) =>
  formatTable(
    ["PATH", "TYPE", "DRIFT", "ATTRIBUTE", "VALUE", "UNIT"],
    report.paths.flatMap((p) => [
      ...p.extra.map((t) => [p.irodsPath, p.targetType, "extra (in iRODS only)", t.attribute, t.value, t.unit]),
      ...p.missing.map((t) => [p.irodsPath, p.targetType, "missing (history only)", t.attribute, t.value, t.unit])
    ])
  )

export const drift = (o: Command.Command.ParseConfig<typeof driftConfig>) =>
    Effect.gen(function*() {
      const project = yield* resolveProject(o.project)
      yield* progress(`comparing iRODS with the history of ${project.irodsPath}…`)
      const report = yield* detectDrift(project)
      if (!o.record) {
        yield* doneProgress
        return yield* emit(o.json, report, (r) =>
          r.paths.length === 0
            ? `no drift: ${r.liveAvus} AVUs in iRODS under ${r.root} match the history`
            : `${table(r)}\n${r.paths.length} path(s) differ`)
      }
      yield* progress(`recording the differences of ${report.paths.length} path(s)…`)
      const result = yield* recordDrift(report, { actor: yield* actorOf(o.actor) })
      yield* doneProgress
      const out = { ...report, recorded: result !== null && result.recorded, snapshotId: result?.recorded ? result.snapshotId : null }
      yield* emit(o.json, out, (r) =>
        r.paths.length === 0
          ? `no drift: nothing to record`
          : `${table(r)}\nrecorded as snapshot ${r.snapshotId} (source ${DRIFT_SOURCE})`)
    }).pipe(Effect.provide(IrodsLive), Effect.provide(ClientLive))
