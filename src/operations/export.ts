/**
 * Exporting a project's history from one catalog into another: a workstation's or VICE app's local history
 * (modes B/C) into the hosted catalog (mode A). Each snapshot is re-recorded in order with its original valid
 * times, actors, sources and note; the target's transaction times are those of the export (that is when the
 * hosted catalog learned of them). Every snapshot carries an idempotency key derived from its source, so an
 * interrupted export can simply be run again.
 */
import { Effect } from "effect"
import type { DuckLakeClientService } from "../client/DuckLakeClient.js"
import { ProjectConflict } from "../core/errors.js"

export interface ExportReport {
  readonly sourceProjectId: string
  readonly targetProjectId: string
  /** Snapshots recorded in the target by this run. */
  readonly exported: number
  /** Snapshots the target already had from an earlier run. */
  readonly alreadyThere: number
}

export const exportProject = (
  from: DuckLakeClientService,
  to: DuckLakeClientService,
  projectId: string
) =>
  Effect.gen(function*() {
    const source = yield* from.getProject(projectId)
    const target = yield* to.findProjectByPath(source.irodsPath).pipe(
      Effect.catchTag("ProjectNotFound", () =>
        to.registerProject({ irodsPath: source.irodsPath, actor: source.createdBy, zone: source.irodsZone }))
    )
    if (target.irodsPath !== source.irodsPath) {
      return yield* new ProjectConflict({
        irodsPath: source.irodsPath,
        existingProjectId: target.projectId,
        existingRoot: target.irodsPath,
        relation: "nested-inside"
      })
    }
    const snapshots = [...(yield* from.listSnapshots(projectId, { limit: 1_000_000 }))].reverse()
    let exported = 0
    let alreadyThere = 0
    for (const s of snapshots) {
      const rows = yield* from.getSnapshotChanges(projectId, s.snapshotId)
      const result = yield* to.recordChanges({
        projectId: target.projectId,
        actor: s.actor,
        ...(s.note === null ? {} : { note: s.note }),
        idempotencyKey: `export:${source.projectId}:${s.snapshotId}`,
        changes: rows.map((r) => ({
          irodsPath: r.irodsPath,
          targetType: r.targetType,
          attribute: r.attribute,
          value: r.value,
          unit: r.unit,
          op: r.op,
          actor: r.actor,
          source: r.source,
          ts: r.ts,
          ...(r.viaTicket === null ? {} : { viaTicket: r.viaTicket }),
          ...(r.ruleInvocation === null ? {} : { ruleInvocation: r.ruleInvocation }),
          ...(r.onBehalfOf === null ? {} : { onBehalfOf: r.onBehalfOf }),
          ...(r.objectId === null ? {} : { objectId: r.objectId })
        }))
      })
      if (result.recorded && result.replayed) alreadyThere++
      else exported++
    }
    yield* Effect.annotateCurrentSpan({ exported, alreadyThere })
    return {
      sourceProjectId: source.projectId,
      targetProjectId: target.projectId,
      exported,
      alreadyThere
    } satisfies ExportReport
  }).pipe(Effect.withSpan("exportProject"))
