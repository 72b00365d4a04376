/**
 * Drift: AVU edits made outside mesa-mcp (iCommands, the web portal, rules that do not mirror) leave the history
 * behind iRODS. `detectDrift` compares a project's live AVUs — one GenQuery sweep over the data objects and one
 * over the collections under the project root, with the native client — with the history's current state (the
 * project's `mesa_current_avus` index, read in bulk) and reports, per path:
 *
 * - `extra`: AVUs present in iRODS that the history does not have in effect;
 * - `missing`: AVUs the history has in effect that iRODS no longer carries.
 *
 * `recordDrift` records the differences as one snapshot (adds for `extra`, deletes for `missing`) whose changes
 * carry the source `mesa-ducklake:drift-reconciliation`, so the history catches up with iRODS.
 *
 * The project's own `.mesa/` collection (the lake's files) is left out of both sides.
 */
import { ANCHOR_ATTRIBUTE } from "../catalog/chain.js"
import { Effect } from "effect"
import { Catalog, indexMark } from "../catalog/Catalog.js"
import { type AvuChangeInput, isWithin, type NotRecorded, type Project, type RecordResult, type TargetType } from "../core/domain.js"
import { DuckLakeClient, type RecordError } from "../client/DuckLakeClient.js"
import { COL } from "../irods/Api.js"
import { toStorageError } from "../irods/Errors.js"
import { eq, IrodsClient, like } from "../irods/IrodsClient.js"
import { CatalogError } from "../core/errors.js"
import type { CatalogSchemaMismatch, CatalogUnavailable, InvalidChange, LakeWriteError, ProjectNotFound, StorageError } from "../core/errors.js"

/** The `source` of changes recorded by a drift reconciliation. */
export const DRIFT_SOURCE = "mesa-ducklake:drift-reconciliation"

export interface Triple {
  readonly attribute: string
  readonly value: string
  readonly unit: string
}

export interface PathDrift {
  readonly irodsPath: string
  readonly targetType: TargetType
  /** The iRODS object id, when known (from iRODS or the history). */
  readonly objectId: number | null
  /** In iRODS, not in effect in the history. */
  readonly extra: ReadonlyArray<Triple>
  /** In effect in the history, no longer in iRODS. */
  readonly missing: ReadonlyArray<Triple>
}

/** A move detected by object id: the same iRODS object, with its AVUs, now at another path. */
export interface DetectedRename {
  readonly from: string
  readonly to: string
  readonly objectId: number
  readonly targetType: "data_object" | "collection"
}

export interface DriftReport {
  readonly projectId: string
  /** Objects the history knows at one path and iRODS now has at another (same id): recorded as renames. */
  readonly renames: ReadonlyArray<DetectedRename>
  readonly root: string
  /** AVUs found in iRODS under the root. */
  readonly liveAvus: number
  /** AVUs in effect in the history. */
  readonly historyAvus: number
  /** Paths that differ, sorted. */
  readonly paths: ReadonlyArray<PathDrift>
}

export type DriftError = CatalogUnavailable | CatalogError | CatalogSchemaMismatch | StorageError

const key = (t: Triple) => JSON.stringify([t.attribute, t.value, t.unit])

interface Entry {
  targetType: TargetType
  objectId: number | null
  readonly triples: Map<string, Triple>
}

const add = (
  into: Map<string, Entry>,
  path: string,
  targetType: TargetType,
  t: Triple,
  objectId: number | null = null
) => {
  let e = into.get(path)
  if (e === undefined) into.set(path, e = { targetType, objectId, triples: new Map() })
  if (e.objectId === null) e.objectId = objectId
  e.triples.set(key(t), t)
}

const idOf = (s: string | undefined) => (s === undefined || s === "" || !/^\d+$/.test(s) ? null : Number(s))

/** Live AVUs under `root` (data objects and collections), keyed by path. */
const liveAvus = (root: string) =>
  Effect.gen(function*() {
    const irods = yield* IrodsClient
    const below = like(`${root}/%`)
    const [dataAt, dataBelow, collAt, collBelow] = yield* Effect.all([
      irods.genQuery({
        select: [COL.COLL_NAME, COL.DATA_NAME, COL.META_DATA_ATTR_NAME, COL.META_DATA_ATTR_VALUE, COL.META_DATA_ATTR_UNITS, COL.D_DATA_ID],
        where: [[COL.COLL_NAME, eq(root)]]
      }),
      irods.genQuery({
        select: [COL.COLL_NAME, COL.DATA_NAME, COL.META_DATA_ATTR_NAME, COL.META_DATA_ATTR_VALUE, COL.META_DATA_ATTR_UNITS, COL.D_DATA_ID],
        where: [[COL.COLL_NAME, below]]
      }),
      irods.genQuery({
        select: [COL.COLL_NAME, COL.META_COLL_ATTR_NAME, COL.META_COLL_ATTR_VALUE, COL.META_COLL_ATTR_UNITS, COL.COLL_ID],
        where: [[COL.COLL_NAME, eq(root)]]
      }),
      irods.genQuery({
        select: [COL.COLL_NAME, COL.META_COLL_ATTR_NAME, COL.META_COLL_ATTR_VALUE, COL.META_COLL_ATTR_UNITS, COL.COLL_ID],
        where: [[COL.COLL_NAME, below]]
      })
    ], { concurrency: 2 }).pipe(Effect.mapError(toStorageError))
    const out = new Map<string, Entry>()
    for (const [coll, name, attribute, value, unit, id] of [...dataAt, ...dataBelow]) {
      add(out, `${coll}/${name}`, "data_object", { attribute: attribute!, value: value!, unit: unit ?? "" }, idOf(id))
    }
    for (const [coll, attribute, value, unit, id] of [...collAt, ...collBelow]) {
      // Our own bookkeeping on the project root (the hash chain's anchor) is not the project's metadata.
      if (attribute === ANCHOR_ATTRIBUTE) continue
      add(out, coll!, "collection", { attribute: attribute!, value: value!, unit: unit ?? "" }, idOf(id))
    }
    return out
  })

/** The history's AVUs in effect now, for every path of the project, in one query. */
const historyAvus = (project: Project) =>
  Effect.flatMap(Catalog, (catalog) =>
    catalog.withSql((sql) =>
      Effect.map(
        // In one statement with the rows: whether a bulk ingest has left the index behind (then they are not the
        // answer, and the caller catches up and reads again).
        sql<{ behind: boolean; irods_path: string | null; attribute: string; value: string; unit: string; target_type: TargetType; oid: string | null }>`
          SELECT l.behind, c.irods_path, c.attribute, c.value, c.unit, c.target_type, c.object_id::text AS oid
          FROM (SELECT ${indexMark(sql, project.metadataSchema)} IS NOT NULL AS behind) l
          LEFT JOIN ${sql(project.metadataSchema)}.mesa_current_avus c ON NOT l.behind AND c.op = 'add'`,
        (rows) => {
          const out = new Map<string, Entry>()
          for (const r of rows) {
            if (r.irods_path === null) continue
            add(out, r.irods_path, r.target_type, { attribute: r.attribute, value: r.value, unit: r.unit }, idOf(r.oid ?? undefined))
          }
          return { behind: rows[0]?.behind === true, avus: out }
        }
      )
    ))

/** Compare a project's live AVUs in iRODS with its history's current state. */
export const detectDrift = Effect.fn("Drift.detect")(function*(project: Project) {
  const client = yield* DuckLakeClient
  const inScope = (path: string) => isWithin(path, project.irodsPath) && !isWithin(path, `${project.irodsPath}/.mesa`)
  // The history side is the current-state index, read in bulk: caught up first, and again if another process's bulk
  // ingest commits in between.
  const current = Effect.gen(function*() {
    for (let attempt = 1; ; attempt++) {
      yield* client.catchUpIndex(project.projectId)
      const read = yield* historyAvus(project)
      if (!read.behind) return read.avus
      if (attempt === 5) {
        return yield* new CatalogError({
          operation: "detectDrift",
          cause: new Error("bulk ingests keep committing to this project; check drift again when they are done")
        })
      }
    }
  })
  const [live, recorded] = yield* Effect.all([liveAvus(project.irodsPath), current], { concurrency: 2 })
  // Moves, recognised by object id: a path the history knows but iRODS no longer has, whose id iRODS now shows at a
  // path the history does not know. The history is compared as if the move were recorded (it will be, first).
  const renames: Array<DetectedRename> = []
  const liveById = new Map<number, string>()
  for (const [path, e] of live) if (e.objectId !== null && inScope(path)) liveById.set(e.objectId, path)
  for (const [path, e] of [...recorded]) {
    if (e.objectId === null || live.has(path) || !inScope(path)) continue
    const to = liveById.get(e.objectId)
    if (to === undefined || recorded.has(to) || (e.targetType !== "data_object" && e.targetType !== "collection")) continue
    renames.push({ from: path, to, objectId: e.objectId, targetType: e.targetType })
    recorded.delete(path)
    recorded.set(to, e)
  }
  const paths = [...new Set([...live.keys(), ...recorded.keys()])].filter(inScope).sort()
  const report: Array<PathDrift> = []
  let liveCount = 0
  let historyCount = 0
  for (const path of paths) {
    const l = live.get(path)?.triples ?? new Map<string, Triple>()
    const h = recorded.get(path)?.triples ?? new Map<string, Triple>()
    liveCount += l.size
    historyCount += h.size
    const extra = [...l.entries()].filter(([k]) => !h.has(k)).map(([, t]) => t)
    const missing = [...h.entries()].filter(([k]) => !l.has(k)).map(([, t]) => t)
    if (extra.length === 0 && missing.length === 0) continue
    const liveType = live.get(path)?.targetType
    const targetType = liveType ?? (yield* client.getHistory(project.projectId, { irodsPath: path, limit: 1 }).pipe(
      Effect.map((rows) => rows[0]?.targetType ?? "data_object"),
      Effect.orElseSucceed(() => "data_object" as const)
    ))
    const byTriple = (a: Triple, b: Triple) => key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0
    const objectId = live.get(path)?.objectId ?? recorded.get(path)?.objectId ?? null
    report.push({ irodsPath: path, targetType, objectId, extra: extra.sort(byTriple), missing: missing.sort(byTriple) })
  }
  yield* Effect.annotateCurrentSpan({
    projectId: project.projectId,
    liveAvus: liveCount,
    historyAvus: historyCount,
    driftedPaths: report.length
  })
  yield* Effect.logDebug("drift checked", { projectId: project.projectId, paths: paths.length, drifted: report.length })
  return {
    projectId: project.projectId,
    root: project.irodsPath,
    liveAvus: liveCount,
    historyAvus: historyCount,
    renames: renames.sort((a, b) => (a.from < b.from ? -1 : a.from > b.from ? 1 : 0)),
    paths: report
  } satisfies DriftReport
})

/** The changes that bring the history in line with iRODS: adds for `extra`, deletes for `missing`. */
export const reconciliationChanges = (report: DriftReport, actor: string): Array<AvuChangeInput> =>
  report.paths.flatMap((p) => [
    ...p.missing.map((t) => ({ ...t, op: "delete" as const })),
    ...p.extra.map((t) => ({ ...t, op: "add" as const }))
  ].map((t): AvuChangeInput => ({
    irodsPath: p.irodsPath,
    targetType: p.targetType,
    attribute: t.attribute,
    value: t.value,
    unit: t.unit,
    op: t.op,
    actor,
    source: DRIFT_SOURCE,
    ...(p.objectId === null ? {} : { objectId: p.objectId })
  })))

/**
 * Record a drift report as one snapshot. Answers `null` when there is nothing to record. Batches above the
 * per-snapshot limit are refused by `recordChanges` (`InvalidChange`).
 */
export const recordDrift = Effect.fn("Drift.record")(function*(
  report: DriftReport,
  options: { readonly actor: string }
): Effect.fn.Return<RecordResult | NotRecorded | null, RecordError, DuckLakeClient> {
  const client = yield* DuckLakeClient
  // Moves first, so the objects' histories follow them; then the AVU differences that remain.
  for (const r of report.renames) {
    yield* client.recordRename({
      projectId: report.projectId,
      actor: options.actor,
      from: r.from,
      to: r.to,
      targetType: r.targetType,
      objectId: r.objectId,
      source: DRIFT_SOURCE,
      note: `drift reconciliation: moved ${r.from} to ${r.to}`
    })
  }
  const changes = reconciliationChanges(report, options.actor)
  if (changes.length === 0) return null
  const added = changes.filter((c) => c.op === "add").length
  const result = yield* client.recordChanges({
    projectId: report.projectId,
    actor: options.actor,
    changes,
    note: `drift reconciliation: ${added} added, ${changes.length - added} removed`
  })
  yield* Effect.annotateCurrentSpan({
    projectId: report.projectId,
    changes: changes.length,
    ...(result.recorded ? { snapshotId: result.snapshotId } : {})
  })
  return result
})

/** Errors `detectDrift` can fail with. */
export type DetectDriftError = DriftError | ProjectNotFound | InvalidChange | LakeWriteError
