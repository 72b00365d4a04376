/**
 * Bulk ingest (README "Bulk ingest and the current-state index"): a long sequence of changes recorded as
 * consecutive snapshots through the write protocol, each committed without the current-state index (a light
 * commit). An applier (currentIndex.ts) applies each committed snapshot's rows to the index in the background while
 * the next one is built, so the index keeps pace with the ingest; the ingest keeps the rows of the snapshots the
 * index may not hold yet (a window of one or two) to expand its deletes and sets against the state. That state is
 * read for the next snapshot while the one before is still being written (`earlyState`), and used under the lock
 * if nothing came between.
 *
 * Owns: `ingestChanges`, `ingestState`, the ingest's source pulling, `IngestInput`, `IngestReport`.
 * May call: context.ts, write.ts (`prepareBatch`, `writeSnapshot`, `expandChanges`), currentIndex.ts,
 * compaction.ts (`maybeAutoCompact`), and the background runner.
 */
import { Deferred, Effect, Exit, Fiber, Option } from "effect"
import type { Reservation } from "../catalog/Catalog.js"
import { type ChangeOrder, laterChange, tripleKey } from "../catalog/currentState.js"
import { type AvuChange, type ChangeRow, decodeChange, decodeChangeFast, type Project } from "../core/domain.js"
import { InvalidChange, ProjectArchived } from "../core/errors.js"
import { maybeAutoCompact } from "./compaction.js"
import { type ClientContext, type ClientCore, invalid, textArg } from "./context.js"
import { catchUp, type IndexApplier, makeIndexApplier, type OwnRows, type OwnSnapshot } from "./currentIndex.js"
import { DEFAULT_INGEST_HEAP_HEADROOM_MB, makeHeapBudget } from "./heapBudget.js"
import { type Batch, expandChanges, pairKey, prepareBatch, type RecordError, writeSnapshot } from "./write.js"

/**
 * Default and largest number of changes per snapshot in a bulk ingest. Each snapshot costs its round trips, files
 * and marker whatever its size: a 1M-change ingest (own process, 2 cores, three alternating pairs) ran 13% faster
 * at 20,000 than at 10,000, peak RSS 205-210 MB against 186-212 MB (with V8's old space capped at 128 MB, 189-195
 * against 182-202). At 40,000 it was no faster (its last snapshot's index apply is longer) and peaked at 254 MB.
 */
export const DEFAULT_INGEST_SNAPSHOT = 20_000
export const MAX_INGEST_SNAPSHOT = 200_000

export interface IngestInput {
  readonly projectId: string
  readonly actor: string
  readonly changes: Iterable<unknown> | AsyncIterable<unknown>
  readonly note?: string
  /** Changes per snapshot (default 20,000, at most 200,000). */
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
 * A bulk ingest in progress. Its snapshots are committed before the index holds their rows, so it keeps the rows
 * of those the index may not hold yet (`own.window`), valid while no one else commits between its snapshots.
 */
export interface IngestState {
  /** The ingest's last committed snapshot. */
  last: number | null
  own: OwnRows
}

/** Changes pulled from an ingest's source between turns of the event loop. */
const PULL_SLICE = 1_000

/**
 * Committed snapshots that may wait for their index apply before the ingest waits (each waiting one's rows stay in
 * memory): one upserting, one staging beside it, one more while the ingest builds the next snapshot. With two, an
 * ingest of 1M changes waited 0.4–0.8 s in all for the index; with three, under 0.2 s.
 */
const INGEST_WINDOW = 3

/**
 * Without an applier (`catchUpAfterIngest: false`) the window holds every snapshot since the last catch-up: past
 * about this many rows the ingest catches the index up from its files and starts the window again.
 */
const INGEST_MAX_ROWS = 200_000

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
    const state: IngestState = { last: null, own: { generation: 0, failed: -1, window: [] } }
    // Off (`catchUpAfterIngest: false`), the index is left behind for the next writer or `catchUpIndex`.
    const applier = ctx.settings.catchUpAfterIngest === false
      ? undefined
      : yield* makeIndexApplier(ctx, p, state.own, INGEST_WINDOW)
    let part = 0
    // Whatever ends the ingest (its end, a failure, an interruption), the applies still queued finish in the
    // background, then a catch-up under the writer lock applies anything they left (a failed apply, a snapshot
    // committed as the ingest was interrupted) and removes the mark, then compaction runs if due.
    const after = Effect.suspend(() => {
      const fresh = report.snapshots.length - report.replayed
      const compaction = fresh <= 0
        ? Effect.void
        : maybeAutoCompact(ctx, p, report.snapshots[0]!, report.snapshots[report.snapshots.length - 1]!)
      return applier === undefined ? compaction : ctx.background.fork(
        applier.done.pipe(
          Effect.zipRight(part === 0 ? Effect.void : finishIndex(ctx, p)),
          Effect.zipRight(compaction)
        ),
        "DuckLakeClient.ingestIndex"
      )
    })
    yield* Effect.addFinalizer(() => after)
    /** The rows of the snapshot being written, once built (undefined: it built none); see `earlyState`. */
    let built: Deferred.Deferred<OwnSnapshot | undefined> | undefined
    const write = (
      batch: Batch,
      prepared: Prepared,
      early: EarlyState | undefined,
      rows: Deferred.Deferred<OwnSnapshot | undefined>
    ) => {
      // The changes are let go once expanded (recordIngestBatch): only their count is kept.
      const count = batch.changes.length
      return Effect.map(
        recordIngestBatch(ctx, p, batch, prepared, early, rows, state, applier),
        (r) => {
          report.changeCount += count
          // A part that changes nothing (only `set`s to the values already there) makes no snapshot.
          if (!r.recorded) return
          report.snapshots.push(r.snapshotId)
          if (r.replayed) report.replayed++
          report.unmatchedDeletes += r.unmatchedDeletes
        }
      )
    }
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
    const heap = makeHeapBudget(ctx.settings.ingestHeapHeadroomMb ?? DEFAULT_INGEST_HEAP_HEADROOM_MB)
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
      // Between snapshots, while the one before is still being written (its work is outside this thread).
      heap.check()
      if (chunk.length === 0) {
        yield* settle
        continue
      }
      const batch: Batch = {
        actor: actor!,
        note,
        key: key === null ? null : `${key}#${part}`,
        changes: chunk,
        offset: src.index - chunk.length
      }
      // Checked, and the state it is expanded against read, while the snapshot before it is still being written; a
      // refused change stops the ingest once that one has settled.
      const prepared = yield* prepareBatch(ctx, p, batch).pipe(Effect.tapError(() => settle))
      const early = applier === undefined || built === undefined
        ? undefined
        : yield* earlyState(ctx, p, state, built, prepared.changes)
      yield* settle
      // Backpressure: the snapshot is written once the index has room for it (see INGEST_WINDOW).
      if (applier !== undefined) yield* applier.room
      const rows = yield* Deferred.make<OwnSnapshot | undefined>()
      built = rows
      inflight = yield* Effect.fork(write(batch, prepared, early, rows))
      part++
    }
    yield* settle
    heap.end()
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
  const intern = interner()
  const sourceFailed = (cause: unknown, at: number) =>
    new InvalidChange({ field: "changes", reason: `reading the source failed: ${String(cause)}`, index: at })
  /** Takes one pulled item into the chunk; answers what stops the pull (the end, or a change to decode slowly). */
  const take = (chunk: Array<AvuChange>, next: IteratorResult<unknown>): { stopped: unknown } | "end" | undefined => {
    if (next.done === true) {
      self.done = true
      return "end"
    }
    const c = decodeChangeFast(next.value, intern)
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
 * One copy of each short text that repeats across an ingest's changes (attributes, values, units, actors, sources):
 * a source usually makes a new string per change, and every string of the snapshots in flight stays in memory until
 * their index apply. At most INTERN_MAX texts of up to INTERN_LENGTH characters, started again when full.
 */
const interner = () => {
  let seen = new Map<string, string>()
  return (s: string): string => {
    if (s.length > INTERN_LENGTH) return s
    const had = seen.get(s)
    if (had !== undefined) return had
    if (seen.size >= INTERN_MAX) seen = new Map()
    seen.set(s, s)
    return s
  }
}
const INTERN_MAX = 10_000
const INTERN_LENGTH = 64

/** A batch checked, with the object ids the storage resolved, and its digest (`prepareBatch`). */
type Prepared = Effect.Effect.Success<ReturnType<typeof prepareBatch>>

/**
 * The state a snapshot of the ingest is expanded against, read before its writer lock while the snapshot before it
 * (`after`) was still being written: the index and its mark, the ingest's window, and the rows of that snapshot.
 * It holds if, under the lock, the snapshot before is `after` (no one else committed in between) and the ingest has
 * not caught up from the files since (`generation`, and no failed apply): the read then took the reservation's read
 * of the state (about a third of a snapshot's time under the lock) off the chain of writes.
 */
interface EarlyState {
  readonly after: number
  readonly generation: number
  readonly current: ReadonlyArray<Avu>
}

/**
 * Reads the state for the next snapshot as it will be once `before` (the snapshot being written) commits: waits for
 * its rows, then reads like `ingestState` with them added (they may or may not be in the index or the window by
 * then; a row seen twice is the same change). Undefined when it cannot be had (that snapshot built no rows, an apply
 * failed, the read failed): the state is then read under the lock as before.
 */
const earlyState = (
  ctx: ClientCore,
  p: Project,
  ingest: IngestState,
  before: Deferred.Deferred<OwnSnapshot | undefined>,
  changes: ReadonlyArray<AvuChange>
): Effect.Effect<EarlyState | undefined> =>
  Effect.gen(function*() {
    const pending = yield* Deferred.await(before)
    const own = ingest.own
    if (pending === undefined || own.failed === own.generation || pending.generation !== own.generation) {
      return undefined
    }
    const current = yield* readState(ctx, p, own, changes, [pending])
    return { after: pending.snapshotId, generation: pending.generation, current }
  }).pipe(Effect.catchAll(() => Effect.succeed(undefined)), Effect.withSpan("ingest.earlyState"))

/**
 * One snapshot of a bulk ingest: its checked batch (`prepareBatch`) committed without the index (`deferIndex`), its
 * rows expanded against the state read early (`EarlyState`) if that still holds under the lock, else against
 * `ingestState`. Once built, its rows go to `rows` (for the next snapshot's early read); once committed, they join
 * the window and go to the applier, which takes the slot `room` gave this snapshot (a write that commits nothing
 * gives it back).
 */
const recordIngestBatch = (
  ctx: ClientContext,
  p: Project,
  batch: Batch,
  prepared: Prepared,
  early: EarlyState | undefined,
  rows: Deferred.Deferred<OwnSnapshot | undefined>,
  ingest: IngestState,
  applier: IndexApplier | undefined
) => {
  let queued = false
  return Effect.gen(function*() {
    const { changes: withIds, hash } = prepared
    let written: ReadonlyArray<ChangeRow> = []
    const r = yield* writeSnapshot(ctx, p, {
      actor: batch.actor,
      note: batch.note,
      key: batch.key,
      hash,
      deferIndex: true,
      build: (w) => {
        const own = ingest.own
        const holds = early !== undefined && w.previousSnapshot === early.after &&
          own.generation === early.generation && own.failed !== own.generation
        return Effect.map(
          holds ? Effect.succeed(early.current) : ingestState(ctx, p, ingest, w, withIds),
          (current) => (snapshotId: number, clock: Date) => {
            const out = expandChanges(withIds, current, snapshotId, clock)
            // The decoded changes are not needed once expanded (writeSnapshot builds once; the digest is made): the
            // ingest's chunk (and its copy with object ids) is emptied, so they are not kept while the snapshot's
            // file is written and committed.
            release(withIds)
            release(batch.changes)
            written = out.rows
            // No rows: no snapshot is committed (makeFile), so the next one reads under the lock.
            Deferred.unsafeDone(rows, Exit.succeed(out.rows.length === 0 ? undefined : {
              generation: ingest.own.generation,
              snapshotId,
              rows: out.rows
            }))
            return { rows: out.rows, unmatchedDeletes: out.unmatchedDeletes, renames: [] }
          }
        )
      }
    })
    if (r.recorded && !r.replayed) {
      const own = { generation: ingest.own.generation, snapshotId: r.snapshotId, rows: written }
      ingest.own.window.push(own)
      ingest.last = r.snapshotId
      if (applier !== undefined) {
        yield* applier.offer(own)
        queued = true
      }
    }
    return r
  }).pipe(Effect.ensuring(Effect.suspend(() =>
    Effect.zipRight(
      // Built nothing (a replay, nothing to record, a failure before its rows): the next snapshot reads under the lock.
      Deferred.succeed(rows, undefined),
      applier === undefined || queued ? Effect.void : applier.unused
    )
  )))
}

/** Empties an ingest's own array of decoded changes (see recordIngestBatch). */
const release = (changes: ReadonlyArray<AvuChange>) => {
  const own = changes as Array<AvuChange>
  own.length = 0
}

/** A change's place in its triple's order (`laterChange`), and whether it adds. */
interface Order extends ChangeOrder {
  readonly add: boolean
}

/**
 * The state a bulk-ingest batch is expanded against, under the writer lock: the AVUs present on the pairs where it
 * matters (a `delete` checks its triple, a `set` replaces every value of its pair; an `add` needs nothing). The
 * index, read with its mark in one statement, holds every snapshot through the mark; the ingest's own snapshots
 * after it are in its window. If anyone else committed since the ingest's last snapshot (or an apply failed, or the
 * window is full), the index is caught up from the files first and the window starts again.
 */
export const ingestState = (
  ctx: ClientCore,
  p: Project,
  state: IngestState,
  w: Reservation,
  changes: ReadonlyArray<AvuChange>
) =>
  Effect.gen(function*() {
    const own = state.own
    const held = own.window.reduce((n, s) => n + s.rows.length, 0)
    // Without an applier the window only grows; with one it holds at most INGEST_WINDOW snapshots.
    const full = ctx.settings.catchUpAfterIngest === false &&
      held + changes.length > (ctx.settings.ingestMemoryTriples ?? INGEST_MAX_ROWS)
    if (state.last === null || w.previousSnapshot !== state.last || own.failed === own.generation || full) {
      if (w.indexThrough !== null) yield* catchUp(ctx, p)
      // Everything committed is in the index now: queued applies of the window are redundant.
      own.generation++
      own.window = []
    }
    return yield* readState(ctx, p, own, changes, [])
  })

type Avu = { readonly irodsPath: string; readonly attribute: string; readonly value: string; readonly unit: string }

/**
 * The read and merge of `ingestState`: the index's rows of the batch's pairs and its mark, in one statement, then
 * the rows after the mark of the ingest's window and of `extra` (a snapshot committed or about to be, whose rows
 * the index may not hold even without a mark).
 */
const readState = (
  ctx: ClientCore,
  p: Project,
  own: OwnRows,
  changes: ReadonlyArray<AvuChange>,
  extra: ReadonlyArray<OwnSnapshot>
) =>
  Effect.gen(function*() {
    const paths = new Set<string>()
    const lookup = new Map<string, readonly [string, string]>()
    for (const c of changes) {
      if (c.op === "add") continue
      paths.add(c.irodsPath)
      lookup.set(pairKey(c.irodsPath, c.attribute), [c.irodsPath, c.attribute])
    }
    if (lookup.size === 0) return []
    // Taken before the index is read: a snapshot that leaves the window after this was applied before the read.
    const window = own.window.slice()
    const { rows, through } = yield* ctx.catalog.indexedRowsOf(p, [...lookup.values()]).pipe(
      Effect.withSpan("write.currentRows")
    )
    // The latest change per triple: from the index, then from the ingest's snapshots the index may not hold.
    const latest = new Map<string, { row: Avu; order: Order }>()
    const offer = (row: Avu, order: Order) => {
      const k = tripleKey(row.irodsPath, row.attribute, row.value, row.unit)
      const cur = latest.get(k)
      if (cur === undefined || laterChange(order, cur.order)) latest.set(k, { row, order })
    }
    for (const r of rows) offer(r, { ts: r.tsMs, snapshotId: r.snapshotId, changeSeq: r.changeSeq, add: r.op === "add" })
    // No mark: the index holds every committed snapshot (`extra` may not be committed yet).
    for (const s of through === null ? extra : [...window, ...extra]) {
      if (through !== null && s.snapshotId <= through) continue
      for (const r of s.rows) {
        if (!paths.has(r.irodsPath) || !lookup.has(pairKey(r.irodsPath, r.attribute))) continue
        offer(r, { ts: r.ts.getTime(), snapshotId: r.snapshotId, changeSeq: r.changeSeq, add: r.op === "add" })
      }
    }
    const current: Array<Avu> = []
    for (const { order, row } of latest.values()) if (order.add) current.push(row)
    return current
  })

/**
 * After an ingest's applies, under the writer lock: the catch-up that removes the mark (the applies keep it), after
 * applying from the files whatever they left (a failed apply, a snapshot committed as the ingest was interrupted);
 * usually nothing. Failing, it leaves the lag to the next writer (reads stay exact meanwhile).
 */
const finishIndex = (ctx: ClientCore, p: Project) =>
  Effect.gen(function*() {
    if ((yield* ctx.catalog.indexThrough(p)) === null) return
    yield* ctx.catalog.withWriteLock(p.projectId, catchUp(ctx, p))
  }).pipe(Effect.catchAll((e) => Effect.logWarning("index catch-up failed; the next writer or reader of the project retries", e)))
