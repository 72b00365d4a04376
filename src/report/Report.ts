/**
 * `renderReport`: a picture of the history, as one self-contained HTML page — the timeline of each AVU of a path
 * (bars over valid time coloured by actor, adds, deletes, sets and renames marked), the project's snapshots with
 * their authors and notes, and the project's overview (changes per day, top attributes, top actors).
 *
 * It reads through the `DuckLakeClient` service only (history, snapshots). The charting library (Observable Plot)
 * and the server-side DOM (linkedom) are optional dependencies loaded here, on the first report, by dynamic import:
 * importing the package never loads them, and without them a report fails with `ReportError
 * { reason: "missing-dependency" }` while everything else works.
 */
import { Cause, Clock, Effect, Exit, Schema } from "effect"
import type { ReadError } from "../client/context.js"
import { type ChangeRow, type HistoryFilter, parseIrodsPath, type Project, type Snapshot } from "../core/domain.js"
import { InvalidChange } from "../core/errors.js"
import { attributeChart, avuLabel, type ChartKit, legends, marginFor, perDayChart, rankedChart } from "./charts.js"
import { renderPage } from "./html.js"
import { buildOverview, buildTimeline } from "./model.js"

/** The report could not be drawn: its optional charting dependencies are not installed, or drawing failed. */
export class ReportError extends Schema.TaggedError<ReportError>()("ReportError", {
  reason: Schema.Literal("missing-dependency", "render-failed"),
  detail: Schema.String,
  cause: Schema.optional(Schema.Defect)
}) {
  override get message() {
    return this.reason === "missing-dependency"
      ? `the report needs the optional dependencies @observablehq/plot and linkedom (npm install @observablehq/plot linkedom): ${this.detail}`
      : `the report could not be drawn: ${this.detail}`
  }
}

export interface ReportOptions {
  /** Change rows of the whole project counted for the overview: the newest this many (default 100,000). */
  readonly maxChanges?: number
  /** Change rows of the path drawn on its timeline: the newest this many (default 10,000). */
  readonly maxPathChanges?: number
  /** Snapshots listed, newest first (default 1,000). */
  readonly maxSnapshots?: number
  /** The report's time: bars of AVUs still in effect end here (default now). */
  readonly now?: Date
}

export interface HistoryReport {
  /** The page: one self-contained HTML document. */
  readonly html: string
  readonly project: Project
  /** The path whose timeline the page draws; undefined when the report was asked for a project id. */
  readonly path: string | undefined
  readonly counts: {
    /** Changes drawn on the path's timeline, attributes and bars (stretches of an AVU in effect). */
    readonly pathChanges: number
    readonly attributes: number
    readonly bars: number
    /** Changes counted in the overview, snapshots listed. */
    readonly projectChanges: number
    readonly snapshots: number
  }
  /** Where a limit cut the history short (the page says so too). */
  readonly truncated: { readonly path: boolean; readonly project: boolean; readonly snapshots: boolean }
}

export type ReportFailure = ReadError | ReportError

/**
 * What a report reads: these methods of `DuckLakeClient`, or of a caller's `DuckLakeAccess` view (whose reads may
 * also fail with its access errors, `E`).
 */
export interface ReportSource<E = ReadError> {
  readonly getProject: (projectId: string) => Effect.Effect<Project, E>
  readonly findProjectByPath: (irodsPath: string) => Effect.Effect<Project, E>
  readonly getHistory: (projectId: string, filter?: HistoryFilter) => Effect.Effect<ReadonlyArray<ChangeRow>, E>
  readonly listSnapshots: (
    projectId: string,
    options?: { readonly limit?: number }
  ) => Effect.Effect<ReadonlyArray<Snapshot>, E>
}

/** The same methods as the Promise facade (`openDuckLake`) has them. */
export interface ReportSourceAsync {
  readonly getProject: (projectId: string) => Promise<Project>
  readonly findProjectByPath: (irodsPath: string) => Promise<Project>
  readonly getHistory: (projectId: string, filter?: HistoryFilter) => Promise<ReadonlyArray<ChangeRow>>
  readonly listSnapshots: (projectId: string, options?: { readonly limit?: number }) => Promise<ReadonlyArray<Snapshot>>
}

const DEFAULTS = { maxChanges: 100_000, maxPathChanges: 10_000, maxSnapshots: 1_000 } as const
/** The client's own cap on a read's limit (one more row than the limit is read to tell whether there are more). */
const MAX_LIMIT = 999_999

const limitOf = (field: keyof typeof DEFAULTS, options: ReportOptions | undefined) => {
  const value = options?.[field]
  if (value === undefined) return Effect.succeed(DEFAULTS[field])
  return Number.isInteger(value) && value >= 1 && value <= MAX_LIMIT
    ? Effect.succeed(value)
    : Effect.fail(new InvalidChange({ field, reason: `must be an integer from 1 to ${MAX_LIMIT.toLocaleString("en-US")}` }))
}

const isMissingModule = (cause: unknown) =>
  (cause as { code?: unknown })?.code === "ERR_MODULE_NOT_FOUND" ||
  /Cannot find (package|module)/.test(cause instanceof Error ? cause.message : String(cause))

/** Observable Plot and a linkedom document, imported on first use. */
const loadChartKit: Effect.Effect<ChartKit, ReportError> = Effect.tryPromise({
  try: async () => {
    const [Plot, { parseHTML }] = await Promise.all([import("@observablehq/plot"), import("linkedom")])
    const { document } = parseHTML("<!doctype html><html><head></head><body></body></html>")
    return { Plot, document: document as unknown as ChartKit["document"] }
  },
  catch: (cause) =>
    new ReportError({
      reason: isMissingModule(cause) ? "missing-dependency" : "render-failed",
      detail: cause instanceof Error ? cause.message : String(cause),
      cause
    })
})

/** The project a report is about: by id, or the registered project containing a path (which is then drawn). */
const resolveTarget = <E>(client: ReportSource<E>, target: unknown) =>
  Effect.gen(function*() {
    if (typeof target !== "string" || target.trim() === "") {
      return yield* new InvalidChange({ field: "target", reason: "give a project id or an iRODS path" })
    }
    const ref = target.trim()
    if (!ref.startsWith("/")) return { project: yield* client.getProject(ref), path: undefined }
    const path = yield* parseIrodsPath(ref, "target")
    return { project: yield* client.findProjectByPath(path), path: path as string }
  })

/** The newest `limit` rows and whether there were more (one more row is read to know). */
const newest = <A>(rows: ReadonlyArray<A>, limit: number) => ({ rows: rows.slice(0, limit), truncated: rows.length > limit })

/**
 * A picture of a path's or a project's history as one self-contained HTML page (see the module comment). `target`:
 * an iRODS path (its project is the registered one containing it; the page draws that path's AVUs, following
 * renames back) or a project id (the overview and snapshots only).
 */
export const renderReport = Effect.fn("Report.renderReport")(function*<E>(
  client: ReportSource<E>,
  target: string,
  options?: ReportOptions
) {
  const maxChanges = yield* limitOf("maxChanges", options)
  const maxPathChanges = yield* limitOf("maxPathChanges", options)
  const maxSnapshots = yield* limitOf("maxSnapshots", options)
  // First, so a report that cannot be drawn reads nothing.
  const kit = yield* loadChartKit
  const { project, path } = yield* resolveTarget(client, target)
  const id = project.projectId
  const pathRows = path === undefined
    ? { rows: [] as ReadonlyArray<ChangeRow>, truncated: false }
    : newest(yield* client.getHistory(id, { irodsPath: path, limit: maxPathChanges + 1 }), maxPathChanges)
  const projectRows = newest(yield* client.getHistory(id, { limit: maxChanges + 1 }), maxChanges)
  const snapshots = newest(yield* client.listSnapshots(id, { limit: maxSnapshots + 1 }), maxSnapshots)
  const now = options?.now ?? new Date(yield* Clock.currentTimeMillis)
  yield* Effect.annotateCurrentSpan({ projectId: id, pathChanges: pathRows.rows.length, projectChanges: projectRows.rows.length })

  const timeline = path === undefined ? undefined : buildTimeline(pathRows.rows, now)
  const overview = buildOverview(projectRows.rows, projectRows.truncated)
  const html = yield* Effect.try({
    try: () => {
      const axis = {
        domain: [timeline?.first ?? now, timeline?.last !== undefined && timeline.last > now ? timeline.last : now] as const,
        marginLeft: marginFor((timeline?.attributes ?? []).flatMap((a) => a.avus.map(avuLabel)))
      }
      return renderPage({
        project,
        path,
        generatedAt: now,
        timeline,
        timelineTruncated: pathRows.truncated,
        charts: {
          legends: legends(kit, timeline?.actors ?? []),
          attributes: (timeline?.attributes ?? []).map((a) => attributeChart(kit, a, timeline!, axis)),
          perDay: perDayChart(kit, overview.perDay),
          topAttributes: rankedChart(kit, overview.topAttributes, "#4269d0", "changes"),
          topActors: rankedChart(kit, overview.topActors, "#efb118", "changes")
        },
        overview,
        snapshots: snapshots.rows,
        snapshotsTruncated: snapshots.truncated
      })
    },
    catch: (cause) =>
      new ReportError({ reason: "render-failed", detail: cause instanceof Error ? cause.message : String(cause), cause })
  })
  return {
    html,
    project,
    path,
    counts: {
      pathChanges: pathRows.rows.length,
      attributes: timeline?.attributes.length ?? 0,
      bars: timeline?.attributes.reduce((n, a) => n + a.bars.length, 0) ?? 0,
      projectChanges: projectRows.rows.length,
      snapshots: snapshots.rows.length
    },
    truncated: { path: pathRows.truncated, project: projectRows.truncated, snapshots: snapshots.truncated }
  } satisfies HistoryReport as HistoryReport
})

/**
 * `renderReport` for callers without Effect: `await renderReportAsync(lake, target)` with the client from
 * `openDuckLake`. Rejections carry the tagged errors themselves (`err._tag === "ProjectNotFound"`, `"ReportError"`).
 */
export const renderReportAsync = async (
  lake: ReportSourceAsync,
  target: string,
  options?: ReportOptions
): Promise<HistoryReport> => {
  // The facade rejects with our tagged errors already: pass them on as they are.
  const call = <A>(f: () => Promise<A>) => Effect.tryPromise({ try: f, catch: (e) => e as never })
  const source: ReportSource<unknown> = {
    getProject: (id) => call(() => lake.getProject(id)),
    findProjectByPath: (path) => call(() => lake.findProjectByPath(path)),
    getHistory: (id, filter) => call(() => lake.getHistory(id, filter)),
    listSnapshots: (id, opts) => call(() => lake.listSnapshots(id, opts))
  }
  const exit = await Effect.runPromiseExit(renderReport(source, target, options))
  if (Exit.isSuccess(exit)) return exit.value
  throw Cause.squash(exit.cause)
}
