/**
 * Bulk ingest (README "Bulk ingest and the current-state index"): a long sequence of changes recorded as
 * consecutive snapshots through the write protocol, committed without the current-state index, which catches up in
 * the background afterwards. The ingest keeps the latest change of every triple it wrote in typed arrays
 * (`TripleTable`) to expand its deletes and sets against the state.
 *
 * Owns: `ingestChanges`, `ingestState`, the ingest's source pulling, `IngestInput`, `IngestReport`.
 * May call: context.ts, files.ts, write.ts (`prepareBatch`, `writeSnapshot`, `expandChanges`), currentIndex.ts,
 * compaction.ts (`maybeAutoCompact`), and the background runner.
 */
import { Effect, Fiber, Option } from "effect"
import type { Reservation } from "../catalog/Catalog.js"
import { laterThan, PairSet, TripleTable, type TripleState } from "../catalog/tripleTable.js"
import { type AvuChange, type ChangeRow, decodeChange, decodeChangeFast, type Project } from "../core/domain.js"
import { InvalidChange, ProjectArchived } from "../core/errors.js"
import { maybeAutoCompact } from "./compaction.js"
import { type ClientContext, type ClientCore, invalid, textArg } from "./context.js"
import { catchUp } from "./currentIndex.js"
import { readFiles } from "./files.js"
import { type Batch, expandChanges, pairKey, prepareBatch, type RecordError, vuKey, writeSnapshot } from "./write.js"

/** Default and largest number of changes per snapshot in a bulk ingest. */
export const DEFAULT_INGEST_SNAPSHOT = 10_000
export const MAX_INGEST_SNAPSHOT = 200_000

export interface IngestInput {
  readonly projectId: string
  readonly actor: string
  readonly changes: Iterable<unknown> | AsyncIterable<unknown>
  readonly note?: string
  /** Changes per snapshot (default 10,000, at most 200,000). */
  readonly snapshotSize?: number
  readonly idempotencyKey?: string
}

export interface IngestReport {
  readonly recorded: true
  readonly projectId: string
  readonly changeCount: number
  /** The snapshot ids written (or replayed), in order. */
  readonly snapshots: ReadonlyArray<number>
  /** Snapshots an earlier run with the same idempotency key had already recorded. */
  readonly replayed: number
  readonly unmatchedDeletes: number
}

/**
 * A bulk ingest in progress. Its snapshots leave the current-state index behind, so it keeps what it needs of its
 * own rows: the latest change of every triple it wrote and which pairs it touched (typed arrays, see
 * `TripleTable`), valid while no one else commits between its snapshots.
 */
export interface IngestState {
  /** The ingest's last committed snapshot. */
  last: number | null
  /** The latest snapshot before the tables started: the ingest's own rows are in the snapshots after it. */
  since: number
  indexEmpty: boolean
  triples: TripleTable
  pairs: PairSet
}

/** Changes pulled from an ingest's source between turns of the event loop. */
const PULL_SLICE = 1_000

/**
 * Beyond about this many triples the ingest catches the index up and starts its tables again: the triple table
 * stays near 2^21 slots (about 60 MB; 80 MB with the pair set). An ingest past it pays a catch-up of what it wrote.
 */
const INGEST_MAX_TRIPLES = 1_200_000

export const ingestChanges = Effect.fn("DuckLakeClient.ingestChanges")(
  function*(ctx: ClientContext, input: IngestInput) {
    const actor = yield* textArg("actor", input?.actor, { optional: false })
    const note = yield* textArg("note", input?.note, { optional: true })
    const key = yield* textArg("idempotencyKey", input?.idempotencyKey, { optional: true })
    const size = input?.snapshotSize ?? DEFAULT_INGEST_SNAPSHOT
    if (!Number.isSafeInteger(size) || size < 1 || size > MAX_INGEST_SNAPSHOT) {
      return yield* invalid("snapshotSize", `must be an integer from 1 to ${MAX_INGEST_SNAPSHOT}`)
    }
    const source = input?.changes as unknown
    const iterable = source !== null && typeof source === "object" &&
      (Symbol.iterator in source || Symbol.asyncIterator in source)
    if (!iterable || typeof source === "string") return yield* invalid("changes", "must be an iterable or async iterable of changes")
    const p = yield* ctx.project(input.projectId)
    if (p.status === "archived") return yield* new ProjectArchived({ projectId: p.projectId })
    const report = {
      recorded: true as const,
      projectId: p.projectId,
      changeCount: 0,
      snapshots: [] as Array<number>,
      replayed: 0,
      unmatchedDeletes: 0
    }
    const state: IngestState = { last: null, since: 0, indexEmpty: false, triples: new TripleTable(), pairs: new PairSet() }
    const write = (changes: Array<AvuChange>, offset: number, part: number) =>
      Effect.map(
        recordIngestBatch(ctx, p, { actor: actor!, note, key: key === null ? null : `${key}#${part}`, changes, offset }, state),
        (r) => {
          report.changeCount += changes.length
          // A part that changes nothing (only `set`s to the values already there) makes no snapshot.
          if (!r.recorded) return
          report.snapshots.push(r.snapshotId)
          if (r.replayed) report.replayed++
          report.unmatchedDeletes += r.unmatchedDeletes
        }
      )
    const src = changeSource(source as Iterable<unknown> | AsyncIterable<unknown>)
    // A source left unfinished (an error, an interruption) is closed, so it can release what it holds.
    yield* Effect.addFinalizer(() => Effect.sync(() => src.close()))
    // Pipelined: the next snapshot's changes are pulled while the previous one is written (its DuckDB and
    // PostgreSQL work runs outside this thread). Snapshots are still written one after another, in order.
    let inflight: Fiber.RuntimeFiber<void, RecordError> | undefined
    /** Waits for the snapshot being written; its failure ends the ingest before anything that follows it. */
    const settle = Effect.suspend(() => {
      const f = inflight
      inflight = undefined
      return f === undefined ? Effect.void : Fiber.join(f)
    })
    /** One turn of the event loop, so the write in flight gets its replies between slices of pulling. */
    const breathe = Effect.async<void>((resume) => {
      setImmediate(() => resume(Effect.void))
    })
    let part = 0
    // Whatever ends the ingest, snapshots it committed get the index catch-up (and compaction if due).
    const after = Effect.suspend(() => {
      const fresh = report.snapshots.length - report.replayed
      if (fresh <= 0) return Effect.void
      const [first, last] = [report.snapshots[0]!, report.snapshots[report.snapshots.length - 1]!]
      return ctx.settings.catchUpAfterIngest === false
        ? maybeAutoCompact(ctx, p, first, last)
        : catchUpInBackground(ctx, p, first, last)
    })
    yield* Effect.addFinalizer(() => after)
    while (!src.done) {
      const chunk: Array<AvuChange> = []
      while (!src.done && chunk.length < size) {
        const stop = yield* src.fill(chunk, Math.min(size, chunk.length + PULL_SLICE)).pipe(Effect.tapError(() => settle))
        if (stop !== undefined) {
          chunk.push(yield* decodeChange(stop.stopped, src.index).pipe(Effect.tapError(() => settle)))
          src.index++
        }
        if (inflight !== undefined) {
          yield* breathe
          // A write that has finished is settled now: its failure stops the ingest without pulling further.
          if (Option.isSome(yield* Fiber.poll(inflight))) yield* settle
        }
      }
      yield* settle
      if (chunk.length > 0) inflight = yield* Effect.fork(write(chunk, src.index - chunk.length, part++))
    }
    yield* settle
    if (src.index === 0) return yield* invalid("changes", "an ingest needs at least one change")
    return report
  },
  Effect.scoped
)

/**
 * An ingest's source, pulled a slice at a time in plain JS (no Effect, and for a synchronous source no promise, per
 * change). The plain-JS decoder answers for well-formed changes; a change it does not accept stops the pull (`fill`
 * answers it), and the caller's Schema decoder then decodes it or words the refusal. `index` counts the changes
 * taken; `done` is set at the source's end.
 */
const changeSource = (source: Iterable<unknown> | AsyncIterable<unknown>) => {
  const isAsync = Symbol.asyncIterator in source
  const syncIt = isAsync ? undefined : (source as Iterable<unknown>)[Symbol.iterator]()
  const asyncIt = isAsync ? (source as AsyncIterable<unknown>)[Symbol.asyncIterator]() : undefined
  const self = {
    index: 0,
    done: false,
    /** Pulls into `chunk` until it holds `limit` changes, the source ends, or a change needs the slow decoder. */
    fill: (chunk: Array<AvuChange>, limit: number): Effect.Effect<{ stopped: unknown } | undefined, InvalidChange> =>
      isAsync
        ? Effect.tryPromise({ try: () => pullAsync(chunk, limit), catch: (cause) => sourceFailed(cause, self.index) })
        : Effect.try({ try: () => pull(chunk, limit), catch: (cause) => sourceFailed(cause, self.index) }),
    /** An unfinished source is closed. An async one is not awaited: it may be blocked in the pull given up on. */
    close: () => {
      if (self.done) return
      try {
        if (syncIt !== undefined) syncIt.return?.()
        else void asyncIt?.return?.()?.catch(() => undefined)
      } catch {
        // The source's own cleanup failed; the ingest's outcome stands.
      }
    }
  }
  const sourceFailed = (cause: unknown, at: number) =>
    new InvalidChange({ field: "changes", reason: `reading the source failed: ${String(cause)}`, index: at })
  /** Takes one pulled item into the chunk; answers what stops the pull (the end, or a change to decode slowly). */
  const take = (chunk: Array<AvuChange>, next: IteratorResult<unknown>): { stopped: unknown } | "end" | undefined => {
    if (next.done === true) {
      self.done = true
      return "end"
    }
    const c = decodeChangeFast(next.value)
    if (c === undefined) return { stopped: next.value }
    chunk.push(c)
    self.index++
    return undefined
  }
  const pull = (chunk: Array<AvuChange>, limit: number): { stopped: unknown } | undefined => {
    while (chunk.length < limit) {
      const stop = take(chunk, syncIt!.next())
      if (stop !== undefined) return stop === "end" ? undefined : stop
    }
    return undefined
  }
  const pullAsync = async (chunk: Array<AvuChange>, limit: number): Promise<{ stopped: unknown } | undefined> => {
    while (chunk.length < limit) {
      const stop = take(chunk, await asyncIt!.next())
      if (stop !== undefined) return stop === "end" ? undefined : stop
    }
    return undefined
  }
  return self
}

/**
 * One snapshot of a bulk ingest: checked like any batch, committed without the index (`deferIndex`), its rows
 * expanded against `ingestState`; once committed, the ingest's tables take its rows.
 */
const recordIngestBatch = (ctx: ClientContext, p: Project, batch: Batch, ingest: IngestState) =>
  Effect.gen(function*() {
    const { changes: withIds, hash } = yield* prepareBatch(ctx, p, batch)
    let written: ReadonlyArray<ChangeRow> = []
    const r = yield* writeSnapshot(ctx, p, {
      actor: batch.actor,
      note: batch.note,
      key: batch.key,
      hash,
      deferIndex: true,
      build: (w) =>
        Effect.map(ingestState(ctx, p, ingest, w, withIds), (current) => (snapshotId: number, clock: Date) => {
          const out = expandChanges(withIds, current, snapshotId, clock)
          written = out.rows
          return { rows: out.rows, unmatchedDeletes: out.unmatchedDeletes, renames: [] }
        })
    })
    if (r.recorded && !r.replayed) {
      // Committed: the tables take this snapshot's rows.
      for (const row of written) {
        ingest.triples.record(row.irodsPath, row.attribute, row.value, row.unit, row.ts.getTime(), row.snapshotId,
          row.changeSeq, row.op === "add")
        ingest.pairs.add(row.irodsPath, row.attribute)
      }
      ingest.last = r.snapshotId
    }
    return r
  })

/**
 * The state a bulk-ingest batch is expanded against, under the writer lock: the AVUs present on the pairs where it
 * matters (a `delete` checks its triple, a `set` replaces every value of its pair; an `add` needs nothing). The
 * index holds everything before the ingest; the ingest's own snapshots are not in it yet, so a triple's latest
 * change among them comes from the ingest's tables, and a `set` on a pair the ingest touched reads the pair's rows
 * from the ingest's files. If anyone else committed since the ingest's last snapshot, the index is caught up and
 * the tables start again.
 */
export const ingestState = (
  ctx: ClientCore,
  p: Project,
  state: IngestState,
  w: Reservation,
  changes: ReadonlyArray<AvuChange>
) =>
  Effect.gen(function*() {
    const { catalog, duck } = ctx
    const full = state.triples.size + changes.length > (ctx.settings.ingestMemoryTriples ?? INGEST_MAX_TRIPLES)
    if (state.last === null || w.previousSnapshot !== state.last || full) {
      if (w.indexThrough !== null) yield* catchUp(ctx, p)
      state.triples = new TripleTable()
      state.pairs = new PairSet()
      state.since = w.previousSnapshot
      state.indexEmpty = yield* catalog.indexEmpty(p)
    }
    const setPairs = new Map<string, readonly [string, string]>()
    const lookup = new Map<string, readonly [string, string]>()
    for (const c of changes) {
      if (c.op === "add") continue
      const k = pairKey(c.irodsPath, c.attribute)
      if (c.op === "set") setPairs.set(k, [c.irodsPath, c.attribute])
      lookup.set(k, [c.irodsPath, c.attribute])
    }
    if (lookup.size === 0) return []
    // The latest change per triple from the index, then from the ingest's own snapshots.
    const latest = new Map<string, { row: { irodsPath: string; attribute: string; value: string; unit: string }; order: TripleState }>()
    const offer = (row: { irodsPath: string; attribute: string; value: string; unit: string }, order: TripleState) => {
      const k = pairKey(row.irodsPath, row.attribute) + "\u0000" + vuKey(row.value, row.unit)
      const cur = latest.get(k)
      if (cur === undefined || laterThan(order, cur.order)) latest.set(k, { row, order })
    }
    if (!state.indexEmpty) {
      const rows = yield* catalog.currentRowsOf(p, [...lookup.values()]).pipe(Effect.withSpan("write.currentRows"))
      for (const r of rows) offer(r, { ts: r.tsMs, snapshotId: r.snapshotId, changeSeq: r.changeSeq, add: r.op === "add" })
    }
    const touched = [...setPairs.values()].filter(([path, attribute]) => state.pairs.has(path, attribute))
    if (touched.length > 0) {
      const own = yield* readFiles(ctx, p, { afterSnapshot: state.since }, (local) => duck.latestOfPairs(local, touched, state.since))
        .pipe(Effect.withSpan("write.ownRows"))
      for (const r of own) offer(r, { ts: r.ts.getTime(), snapshotId: r.snapshotId, changeSeq: r.changeSeq, add: r.op === "add" })
    }
    const current: Array<{ irodsPath: string; attribute: string; value: string; unit: string }> = []
    for (const { order, row } of latest.values()) {
      // A deleted triple's own latest change may be in the ingest's tables (set pairs have it from the files).
      const mine = setPairs.has(pairKey(row.irodsPath, row.attribute))
        ? undefined
        : state.triples.get(row.irodsPath, row.attribute, row.value, row.unit)
      if (mine !== undefined ? (laterThan(mine, order) ? mine.add : order.add) : order.add) current.push(row)
    }
    // Triples the ingest wrote that the index does not have at all.
    for (const c of changes) {
      if (c.op !== "delete" || setPairs.has(pairKey(c.irodsPath, c.attribute))) continue
      const k = pairKey(c.irodsPath, c.attribute) + "\u0000" + vuKey(c.value, c.unit)
      if (latest.has(k)) continue
      const mine = state.triples.get(c.irodsPath, c.attribute, c.value, c.unit)
      if (mine?.add === true) {
        current.push({ irodsPath: c.irodsPath, attribute: c.attribute, value: c.value, unit: c.unit })
        latest.set(k, { row: c, order: mine })
      }
    }
    return current
  })

/** After a bulk ingest: the index catch-up, then any compaction that came due, in the background. */
const catchUpInBackground = (ctx: ClientContext, p: Project, first: number, last: number) =>
  ctx.background.fork(
    ctx.catalog.withWriteLock(p.projectId, catchUp(ctx, p)).pipe(
      Effect.catchAll((e) => Effect.logWarning("index catch-up failed; the next writer or reader of the project retries", e)),
      Effect.zipRight(maybeAutoCompact(ctx, p, first, last))
    ),
    "DuckLakeClient.backgroundCatchUp"
  )
