/**
 * The reading methods of a caller's view: a project the caller cannot see is `ProjectNotFound`, a path it cannot
 * read answers like a path with no history, and snapshot ids are bounds over the snapshots it may see (`sight`).
 */
import { Effect, Either } from "effect"
import type { ChangeRow, Project, Snapshot } from "../core/domain.js"
import { parseIrodsPath } from "../core/domain.js"
import { ProjectNotFound, SnapshotNotFound } from "../core/errors.js"
import type { CallerContext } from "./context.js"
import type { CallerView } from "./types.js"

/** Upper bound on rows read to filter an unfiltered history or snapshot list (the limit callers may ask for). */
const SCAN_ROWS = 1_000_000

/** A snapshot id the client accepts (it refuses any other with its own `InvalidChange`). */
const isSnapshotId = (x: unknown): x is number => typeof x === "number" && Number.isSafeInteger(x) && x >= 0

/**
 * What the caller may see of a project's snapshots, for one call: a snapshot is visible when it has a row on a
 * path the caller may read. Snapshot ids are bounds (`bound`); the full history is read at most once per call,
 * and only when the id asked about is not itself a visible snapshot.
 */
export const sight = ({ root, reader, filterRows }: CallerContext, p: Project) =>
  Effect.gen(function*() {
    const ok = reader(p)
    /** Rows the caller may see, per visible snapshot. */
    const counts = yield* Effect.cached(Effect.gen(function*() {
      const rows = yield* filterRows(p, yield* root.getHistory(p.projectId, { limit: SCAN_ROWS }), ok)
      const n = new Map<number, number>()
      for (const r of rows) n.set(r.snapshotId, (n.get(r.snapshotId) ?? 0) + 1)
      return n
    }))
    /**
     * The snapshot id `x` stands for: the newest visible snapshot at or below it, or 0 (the catalog's first
     * snapshot, before any history) when there is none. A hidden id and an id never used answer alike.
     */
    const bound = (x: number) =>
      Effect.gen(function*() {
        if (x === 0) return 0
        const own = yield* root.getSnapshotChanges(p.projectId, x).pipe(
          Effect.catchTag("SnapshotNotFound", () => Effect.succeed([] as ReadonlyArray<ChangeRow>))
        )
        if (yield* Effect.exists(own, (r) => ok(r.irodsPath))) return x
        let best = 0
        for (const id of (yield* counts).keys()) if (id <= x && id > best) best = id
        return best
      })
    return { ok, counts, bound }
  })

/** The project holding a path, if the caller may see it. */
export const findProjectByPath = (
  { root, visibleProject }: CallerContext
): CallerView["findProjectByPath"] => (path) =>
  Effect.flatMap(root.findProjectByPath(path), (p) =>
    Effect.flatMap(visibleProject(p), (ok) => (ok ? Effect.succeed(p) : Effect.fail(new ProjectNotFound({ irodsPath: path })))))

/** The projects the caller may see. */
export const listProjects = (
  { root, visibleProject }: CallerContext
): CallerView["listProjects"] => Effect.flatMap(root.listProjects, (ps) => Effect.filter(ps, visibleProject))

/** Current AVUs of a path, empty when the caller may not read it. */
export const getAvus = (
  { root, project, canRead }: CallerContext
): CallerView["getAvus"] => (projectId, path) =>
  Effect.gen(function*() {
    const p = yield* project(projectId)
    const avus = yield* root.getAvus(projectId, path)
    return (yield* canRead(p, (yield* parseIrodsPath(path)))) ? avus : []
  })

/** AVUs as of a time; a snapshot bound is taken among the visible snapshots. */
export const getAvusAsOf = (ctx: CallerContext): CallerView["getAvusAsOf"] => (projectId, path, at, options) =>
  Effect.gen(function*() {
    const { root, project, canRead } = ctx
    const p = yield* project(projectId)
    const parsed = Either.getOrUndefined(yield* Effect.either(parseIrodsPath(path)))
    const readable = parsed !== undefined && (yield* canRead(p, parsed))
    // A snapshot id is a bound: the newest snapshot at or below it that the caller may see. For a path it
    // cannot read the answer is empty whatever the id, so any existing one (0) lets the client check the rest.
    // A transaction time needs nothing: the snapshots it may fall on hold no row on a path the caller reads.
    const knownAt = options?.knownAt
    const asked = isSnapshotId(knownAt) ? { knownAt: readable ? yield* (yield* sight(ctx, p)).bound(knownAt) : 0 } : options
    const avus = yield* root.getAvusAsOf(projectId, path, at, asked)
    return readable ? avus : []
  })

/** History rows the caller may read (an unfiltered one paged until `limit` visible rows). */
export const getHistory = (
  { root, project, canRead, filterRows }: CallerContext
): CallerView["getHistory"] => (projectId, filter) =>
  Effect.gen(function*() {
    const p = yield* project(projectId)
    if (filter?.irodsPath !== undefined) {
      const rows = yield* root.getHistory(projectId, filter)
      return (yield* canRead(p, yield* parseIrodsPath(filter.irodsPath))) ? rows : []
    }
    // Unfiltered: read pages of growing size until `limit` visible rows are found or the history ends.
    const limit = filter?.limit ?? 100
    let ask = limit
    while (true) {
      const rows = yield* root.getHistory(projectId, { ...filter, limit: ask })
      const visible = yield* filterRows(p, rows)
      if (visible.length >= limit || rows.length < ask || ask >= SCAN_ROWS) return visible.slice(0, limit)
      ask = Math.min(SCAN_ROWS, ask * 8)
    }
  })

/** Visible snapshots with visible counts, linked to the nearest visible parent. */
export const listSnapshots = (ctx: CallerContext): CallerView["listSnapshots"] => (projectId, options) =>
  Effect.gen(function*() {
    const { root, project } = ctx
    const p = yield* project(projectId)
    const limit = options?.limit ?? 100
    // Validates the limit the way the client does, then counts each snapshot's rows the caller may see.
    yield* root.listSnapshots(projectId, options)
    const all = yield* root.listSnapshots(projectId, { limit: SCAN_ROWS })
    const counts = yield* (yield* sight(ctx, p)).counts
    // Newest first. A parent is the nearest visible snapshot before (null for the first, as the client does);
    // a note is shown only when every row of its snapshot is visible (the client's count is of all its rows).
    const visible = all.filter((s) => counts.has(s.snapshotId))
    return visible.slice(0, limit).map((s, i): Snapshot => {
      const seen = counts.get(s.snapshotId)!
      return {
        ...s,
        changeCount: seen,
        note: seen === s.changeCount ? s.note : null,
        parentSnapshot: visible[i + 1]?.snapshotId ?? null
      }
    })
  })

/** Differences between two snapshot bounds, on paths the caller may read. */
export const diff = (ctx: CallerContext): CallerView["diff"] => (projectId, a, b) =>
  Effect.gen(function*() {
    const { root, project } = ctx
    const p = yield* project(projectId)
    const { bound, ok } = yield* sight(ctx, p)
    // Ids are bounds. Arguments the client refuses go to it as they are, for its own error.
    if (!isSnapshotId(a) || !isSnapshotId(b) || a > b) {
      return yield* Effect.filter(yield* root.diff(projectId, a, b), (d) => ok(d.irodsPath))
    }
    const from = yield* bound(a)
    const to = a === b ? from : yield* bound(b)
    if (from === to) return []
    return yield* Effect.filter(yield* root.diff(projectId, from, to), (d) => ok(d.irodsPath))
  })

/** A snapshot's visible rows; none visible answers like an unused id. */
export const getSnapshotChanges = (
  { root, project, filterRows }: CallerContext
): CallerView["getSnapshotChanges"] => (projectId, snapshotId) =>
  Effect.gen(function*() {
    const p = yield* project(projectId)
    const rows = yield* filterRows(p, yield* root.getSnapshotChanges(projectId, snapshotId))
    // Nothing visible: exactly the client's answer for an id never used.
    if (rows.length === 0) return yield* new SnapshotNotFound({ projectId: p.projectId, snapshotId })
    return rows
  })
