/**
 * Every read of a project's history: the current AVUs of a path, the AVUs at a valid time (as known at a
 * snapshot), the change history (following renames back), snapshots, diffs and one snapshot's changes. Reads go
 * through the catalog's file list and the checksum-bound read path; nothing here writes.
 *
 * Owns: `getAvus`, `getAvusAsOf`, `getHistory`, `listSnapshots`, `diff`, `getSnapshotChanges`, `knownAtSnapshot`.
 * May call: context.ts, files.ts (the read path), renames.ts (`pathAt`, `lineageOf`).
 */
import { Effect } from "effect"
import { type AsOfOptions, type Avu, type ChangeRow, type HistoryFilter, parseIrodsPath, parseTimestamp, type Project } from "../core/domain.js"
import { SnapshotNotFound } from "../core/errors.js"
import { type ClientCore, invalid, limitArg, snapshotArg, textArg } from "./context.js"
import { type ChangeOrder, laterChange, tripleKey } from "../catalog/currentState.js"
import { compareUtf8 } from "../catalog/stats.js"
import { readFiles } from "./files.js"
import { lineageOf, pathAt } from "./renames.js"

export const getAvus = Effect.fn("DuckLakeClient.getAvus")(function*(ctx: ClientCore, projectId: string, path: string) {
  const irodsPath = yield* parseIrodsPath(path, "irodsPath")
  const p = yield* ctx.project(projectId)
  const current = yield* ctx.catalog.currentAvus(p, irodsPath)
  if (!current.behind) return current.avus
  // A bulk ingest's last snapshots are not indexed yet. The index holds every change through its mark (the mark moves
  // with the rows it covers), so the answer is the latest change per triple among what it holds of the path and the
  // path's changes after the mark, read from those snapshots' files alone (not from every file of the project).
  const { indexed, through } = current
  const later = yield* readFiles(ctx, p, { irodsPath, afterSnapshot: through }, (local) =>
    local.length === 0
      ? Effect.succeed([] as ReadonlyArray<ChangeRow>)
      : ctx.duck.changes(local, { irodsPath, afterSnapshot: through }, { order: "oldest" }))
  return latestAdds(irodsPath, indexed, later)
})

/**
 * The AVUs a path holds: the latest change of each triple (`laterChange`) among the indexed ones and the later ones,
 * where that change is an add; in attribute, value, unit order (UTF-8 bytes, as the index and DuckDB order them).
 */
const latestAdds = (
  irodsPath: string,
  indexed: ReadonlyArray<Avu & { readonly op: "add" | "delete"; readonly changeSeq: number }>,
  later: ReadonlyArray<ChangeRow>
): ReadonlyArray<Avu> => {
  type Candidate = ChangeOrder & { readonly avu: Avu; readonly add: boolean }
  const latest = new Map<string, Candidate>()
  const offer = (c: Candidate) => {
    const k = tripleKey(irodsPath, c.avu.attribute, c.avu.value, c.avu.unit)
    const had = latest.get(k)
    if (had === undefined || laterChange(c, had)) latest.set(k, c)
  }
  for (const r of indexed) {
    const { changeSeq, op, ...avu } = r
    offer({ avu, add: op === "add", ts: r.ts, snapshotId: r.snapshotId, changeSeq })
  }
  for (const r of later) {
    offer({
      avu: {
        attribute: r.attribute,
        value: r.value,
        unit: r.unit,
        actor: r.actor,
        ts: r.ts,
        snapshotId: r.snapshotId,
        source: r.source,
        viaTicket: r.viaTicket,
        ruleInvocation: r.ruleInvocation
      },
      add: r.op === "add",
      ts: r.ts,
      snapshotId: r.snapshotId,
      changeSeq: r.changeSeq
    })
  }
  return [...latest.values()].filter((c) => c.add).map((c) => c.avu).sort((a, b) =>
    compareUtf8(a.attribute, b.attribute) || compareUtf8(a.value, b.value) || compareUtf8(a.unit, b.unit)
  )
}

/** Resolve `knownAt` (snapshot id or transaction time) to the highest snapshot id to consider. */
export const knownAtSnapshot = (ctx: ClientCore, p: Project, knownAt: AsOfOptions["knownAt"]) =>
  Effect.gen(function*() {
    if (knownAt === undefined) return yield* ctx.catalog.latestSnapshot(p)
    if (typeof knownAt === "number") {
      const id = yield* snapshotArg("knownAt", knownAt)
      yield* ctx.catalog.requireSnapshot(p, id)
      return id
    }
    const at = yield* parseTimestamp(knownAt, "knownAt")
    return (yield* ctx.catalog.snapshotAt(p, at)) ?? 0
  })

export const getAvusAsOf = Effect.fn("DuckLakeClient.getAvusAsOf")(
  function*(ctx: ClientCore, projectId: string, path: string, at: unknown, options?: AsOfOptions) {
    const irodsPath = yield* parseIrodsPath(path, "irodsPath")
    const validAt = yield* parseTimestamp(at, "timestamp")
    const p = yield* ctx.project(projectId)
    const maxSnapshot = yield* knownAtSnapshot(ctx, p, options?.knownAt)
    // The object now at this path may have been elsewhere then.
    const then = yield* pathAt(ctx, p, irodsPath, validAt, maxSnapshot)
    yield* Effect.annotateCurrentSpan({ projectId: p.projectId, maxSnapshot })
    return yield* readFiles(ctx, p, { irodsPath: then, validAtOrBefore: validAt, maxSnapshot }, (local) =>
      ctx.duck.avusAsOf(local, then, validAt, maxSnapshot))
  }
)

export const getHistory = Effect.fn("DuckLakeClient.getHistory")(
  function*(ctx: ClientCore, projectId: string, filter?: HistoryFilter) {
    const irodsPath = filter?.irodsPath === undefined ? undefined : yield* parseIrodsPath(filter.irodsPath)
    const attribute = yield* textArg("attribute", filter?.attribute, { optional: true })
    const from = filter?.from === undefined ? undefined : yield* parseTimestamp(filter.from, "from")
    const to = filter?.to === undefined ? undefined : yield* parseTimestamp(filter.to, "to")
    if (from !== undefined && to !== undefined && from > to) return yield* invalid("from", "is after to")
    const limit = yield* limitArg(filter?.limit, 100)
    const p = yield* ctx.project(projectId)
    const range = {
      ...(irodsPath === undefined ? {} : { irodsPath }),
      ...(attribute === null ? {} : { attribute }),
      ...(from === undefined ? {} : { validFrom: from }),
      ...(to === undefined ? {} : { validTo: to })
    }
    // A path's history includes the object's earlier paths, up to the moment it moved.
    const segments = irodsPath === undefined ? [{ path: undefined, before: undefined }] : yield* lineageOf(ctx, p, irodsPath)
    const parts = yield* Effect.forEach(segments, (seg) =>
      Effect.gen(function*() {
        const validTo = seg.before === undefined ? to : new Date(Math.min(seg.before.getTime() - 1, to?.getTime() ?? Infinity))
        if (validTo !== undefined && from !== undefined && validTo < from) return []
        const segRange = {
          ...range,
          ...(seg.path === undefined ? {} : { irodsPath: seg.path }),
          ...(validTo === undefined ? {} : { validTo })
        }
        return yield* readFiles(
          ctx,
          p,
          { ...segRange, ...(validTo === undefined ? {} : { validAtOrBefore: validTo }) },
          (local) => ctx.duck.changes(local, segRange, { limit, order: "newest" })
        )
      }))
    if (parts.length === 1) return parts[0]!
    const newestFirst = (a: ChangeRow, b: ChangeRow) =>
      b.ts.getTime() - a.ts.getTime() || b.snapshotId - a.snapshotId || b.changeSeq - a.changeSeq
    return parts.flat().sort(newestFirst).slice(0, limit)
  }
)

export const listSnapshots = Effect.fn("DuckLakeClient.listSnapshots")(
  function*(ctx: ClientCore, projectId: string, options?: { readonly limit?: number }) {
    const limit = yield* limitArg(options?.limit, 100)
    const p = yield* ctx.project(projectId)
    return yield* ctx.catalog.listSnapshots(p, { limit })
  }
)

export const diff = Effect.fn("DuckLakeClient.diff")(function*(ctx: ClientCore, projectId: string, from: number, to: number) {
  const { duck } = ctx
  const a = yield* snapshotArg("fromSnapshot", from)
  const b = yield* snapshotArg("toSnapshot", to)
  if (a > b) return yield* invalid("fromSnapshot", `is after toSnapshot (${a} > ${b})`)
  const p = yield* ctx.project(projectId)
  yield* ctx.catalog.requireSnapshot(p, a)
  yield* ctx.catalog.requireSnapshot(p, b)
  const far = new Date(8_000_000_000_000)
  // Each path's AVUs before and after, read from one listing of the files.
  const states = yield* readFiles(ctx, p, { maxSnapshot: b }, (local) =>
    Effect.gen(function*() {
      const inRange = yield* duck.changes(local, { afterSnapshot: a, maxSnapshot: b }, { order: "oldest" })
      const paths = [...new Set(inRange.map((r) => r.irodsPath))].sort()
      return yield* Effect.forEach(paths, (path) =>
        Effect.map(Effect.all([duck.avusAsOf(local, path, far, a), duck.avusAsOf(local, path, far, b)]), ([before, after]) =>
          ({ path, before, after })))
    }))
  const k = (x: Avu) => JSON.stringify([x.attribute, x.value, x.unit])
  const triple = (x: Avu) => ({ attribute: x.attribute, value: x.value, unit: x.unit })
  return states.map(({ after, before, path }) => {
    const beforeKeys = new Set(before.map(k))
    const afterKeys = new Set(after.map(k))
    return {
      irodsPath: path,
      added: after.filter((x) => !beforeKeys.has(k(x))).map(triple),
      removed: before.filter((x) => !afterKeys.has(k(x))).map(triple)
    }
  }).filter((d) => d.added.length > 0 || d.removed.length > 0)
})

/** The change rows of one snapshot, in the order they were recorded. */
export const getSnapshotChanges = Effect.fn("DuckLakeClient.getSnapshotChanges")(
  function*(ctx: ClientCore, projectId: string, snapshotId: number) {
    const id = yield* snapshotArg("snapshotId", snapshotId)
    const p = yield* ctx.project(projectId)
    if (!(yield* ctx.catalog.isCommitted(p, id))) return yield* new SnapshotNotFound({ projectId: p.projectId, snapshotId: id })
    const range = { afterSnapshot: id - 1, maxSnapshot: id }
    const rows = yield* readFiles(ctx, p, range, (local) => ctx.duck.changes(local, range, { order: "oldest" }))
    return [...rows].sort((a, b) => a.changeSeq - b.changeSeq)
  }
)
