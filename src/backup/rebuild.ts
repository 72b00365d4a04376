/**
 * Rebuild as the Backup service runs it: scan the project's storage (`rebuild/scan.ts`, with progress logs), write
 * the plan under the project's write lock unless it is a dry run (`rebuild/write.ts`), and report what was found,
 * problems included. The catalog comes from the Parquet files and commit markers alone.
 */
import { Effect } from "effect"
import { Catalog } from "../catalog/Catalog.js"
import { parseIrodsPath } from "../core/domain.js"
import { DuckDb } from "../duckdb/DuckDb.js"
import { LakeStorage } from "../storage/LakeStorage.js"
import type { RebuildPlan, RebuildProblem } from "./rebuild/plan.js"
import { scanLake } from "./rebuild/scan.js"
import { writePlan } from "./rebuild/write.js"

export interface RebuildReport {
  readonly projectId: string
  readonly irodsPath: string
  readonly metadataSchema: string
  /** False for a dry run. */
  readonly written: boolean
  readonly snapshots: number
  readonly firstSnapshot: number | null
  readonly lastSnapshot: number | null
  readonly rows: number
  readonly files: number
  readonly markers: number
  readonly bytes: number
  readonly unconfirmedIncluded: number
  readonly problems: ReadonlyArray<RebuildProblem>
  readonly seconds: number
}

export interface RebuildInput {
  readonly root: string
  readonly force?: boolean
  /** Also commit clean Parquet files that have no commit marker (default: report them only). */
  readonly includeUnconfirmed?: boolean
  /** Scan and report; write nothing. */
  readonly dryRun?: boolean
  /** Recorded as the project's creator (default `mesa-ducklake rebuild`). */
  readonly actor?: string
}

export const makeRebuild = Effect.gen(function*() {
  const catalog = yield* Catalog
  const storage = yield* LakeStorage
  const duck = yield* DuckDb

  const rebuild = Effect.fn("Backup.rebuild")(function*(input: RebuildInput) {
    const started = Date.now()
    const root = yield* parseIrodsPath(input.root, "root")
    let lastLog = Date.now()
    const plan: RebuildPlan = yield* scanLake({ storage, duck }, root, {
      ...(input.includeUnconfirmed === undefined ? {} : { includeUnconfirmed: input.includeUnconfirmed }),
      onFile: (done, total, bytes) =>
        Effect.suspend(() => {
          if (done < total && Date.now() - lastLog < 5000) return Effect.void
          lastLog = Date.now()
          return Effect.logInfo(`rebuild scan ${done}/${total} files`).pipe(Effect.annotateLogs({ root, bytes }))
        })
    })
    let written = false
    if (input.dryRun !== true) {
      yield* catalog.withWriteLock(
        plan.projectId,
        writePlan(catalog, plan, {
          ...(input.force === undefined ? {} : { force: input.force }),
          ...(input.actor === undefined ? {} : { actor: input.actor })
        })
      )
      written = true
    }
    const report: RebuildReport = {
      projectId: plan.projectId,
      irodsPath: plan.irodsPath,
      metadataSchema: plan.metadataSchema,
      written,
      snapshots: plan.snapshots.length,
      firstSnapshot: plan.snapshots[0]?.snapshotId ?? null,
      lastSnapshot: plan.snapshots[plan.snapshots.length - 1]?.snapshotId ?? null,
      rows: plan.snapshots.reduce((n, s) => n + s.recordCount, 0),
      files: plan.filesScanned,
      markers: plan.markersScanned,
      bytes: plan.bytesScanned,
      unconfirmedIncluded: plan.snapshots.filter((s) => !s.confirmed).length,
      problems: plan.problems,
      seconds: (Date.now() - started) / 1000
    }
    yield* Effect.logInfo(written ? "catalog rebuilt" : "rebuild dry run").pipe(
      Effect.annotateLogs({ ...report, problems: report.problems.length })
    )
    for (const p of plan.problems) yield* Effect.logWarning(`rebuild: ${p.kind}`, p)
    return report
  })

  return { rebuild }
})
