/**
 * The current-state index (`mesa_current_avus`) catching up with snapshots a bulk ingest committed without it (see
 * README "Bulk ingest and the current-state index"). While an ingest runs, its applier applies each committed
 * snapshot's rows (held in memory, never read back) in the background, one after another, so the index keeps pace
 * with the ingest; the mark follows it but stays until the end. Every writer calls `catchUp` under the lock before it
 * reads the state: it finishes whatever an applier left (a failed apply, an interrupted ingest) and removes the mark;
 * `catchUpIndex` is the public method.
 *
 * Owns: `catchUp`, `catchUpIndex`, `makeIndexApplier`, `OwnSnapshot`, `OwnRows`.
 * May call: context.ts, files.ts (a catch-up reads the snapshots' rows back from their Parquet files).
 */
import { Cause, Deferred, Effect, Exit, Fiber, Queue } from "effect"
import type { ChangeRow, Project } from "../core/domain.js"
import type { ClientCore } from "./context.js"
import { readFiles } from "./files.js"

/** Snapshots' worth of change rows a catch-up applies per transaction. */
const CATCH_UP_ROWS = 20_000

/**
 * Catches the current-state index up with the committed snapshots a bulk ingest left out of it: their rows are
 * read from their Parquet files (through the cache) and applied in transactions of about CATCH_UP_ROWS rows, each
 * moving the catalog's mark forward. Call under the writer lock. Returns how many snapshots it applied.
 */
export const catchUp = (ctx: ClientCore, p: Project) =>
  Effect.gen(function*() {
    const { catalog, duck } = ctx
    let through = yield* catalog.indexThrough(p)
    let applied = 0
    while (through !== null) {
      const after = yield* catalog.snapshotsAfter(p, through)
      let end = 0
      let rows = 0
      while (end < after.length && (end === 0 || rows + after[end]!.changeCount <= CATCH_UP_ROWS)) {
        rows += after[end]!.changeCount
        end++
      }
      const last = end === 0 ? through : after[end - 1]!.snapshotId
      const range = { afterSnapshot: through, maxSnapshot: last }
      const changes = end === 0
        ? []
        : yield* readFiles(ctx, p, range, (local) => duck.changes(local, range, { order: "oldest" }))
      yield* catalog.applyIndex(p, changes, last)
      applied += end
      through = end >= after.length ? null : last
    }
    return applied
  }).pipe(Effect.withSpan("index.catchUp", { attributes: { projectId: p.projectId } }))

export const catchUpIndex = Effect.fn("DuckLakeClient.catchUpIndex")(function*(ctx: ClientCore, projectId: string) {
  const p = yield* ctx.project(projectId)
  if ((yield* ctx.catalog.indexThrough(p)) === null) return 0
  return yield* ctx.catalog.withWriteLock(p.projectId, catchUp(ctx, p))
})

/** A snapshot a bulk ingest committed (deferred), with its rows, kept until the index holds them. */
export interface OwnSnapshot {
  /** The ingest's generation when it was committed (see `OwnRows.generation`). */
  readonly generation: number
  readonly snapshotId: number
  readonly rows: ReadonlyArray<ChangeRow>
}

/** What a bulk ingest and its applier share. */
export interface OwnRows {
  /**
   * Bumped whenever the ingest has caught the index up from the files (another writer came between its snapshots,
   * an apply failed, its memory was full): snapshots of an earlier generation are in the index already.
   */
  generation: number
  /** The generation in which an apply failed (its later snapshots are left to the catch-up), else -1. */
  failed: number
  /** Committed snapshots whose rows the index may not hold yet, oldest first. */
  window: Array<OwnSnapshot>
}

/**
 * Applies a bulk ingest's committed snapshots to the index in the background, in order, one transaction each
 * (the rows, and the mark moved to the snapshot), on connections of its own, outside the writer lock. Two steps per
 * snapshot (`stageIndexRows`, `commitIndexRows`): a snapshot's rows are staged while the one before it is upserted,
 * and it is upserted only once that one has ended. It never removes the mark, even at the latest snapshot
 * (`keepMark`): a writer under the lock reads the index and the mark in separate statements, so only a holder of the
 * lock may remove it (`catchUp`, which then has nothing left to apply). An applied snapshot leaves `own.window`. At
 * most `slots` snapshots wait for their apply: `room` (taken before each snapshot is written) waits for one to
 * finish. A failed apply is logged and ends the applying of its generation: the mark stays where the last apply left
 * it, and the ingest's next snapshot (or the next writer, or `catchUpIndex`) catches up from the files. An
 * interrupted apply interrupts the ones after it: none may move the mark past a snapshot the index does not hold.
 */
export const makeIndexApplier = (ctx: ClientCore, p: Project, own: OwnRows, slots: number) =>
  Effect.gen(function*() {
    const { catalog } = ctx
    const queue = yield* Queue.unbounded<OwnSnapshot | "end">()
    const slotsFree = yield* Effect.makeSemaphore(slots)
    /** Covered by a catch-up since, or after a failed apply: nothing to do. */
    const skip = (s: OwnSnapshot) => s.generation !== own.generation || s.generation === own.failed
    /** Stages `s` at once; upserts it once the apply before it (`before`) has ended. */
    const applyOne = (s: OwnSnapshot, before: Deferred.Deferred<void>) =>
      Effect.scoped(Effect.gen(function*() {
        if (skip(s)) return yield* Deferred.await(before)
        const staged = yield* catalog.stageIndexRows(s.rows)
        // Interrupted when the apply before it was: the staged rows are rolled back with their connection.
        yield* Deferred.await(before)
        if (skip(s)) return yield* catalog.abandonIndexRows(staged)
        yield* catalog.commitIndexRows(staged, p, s.snapshotId, { keepMark: true })
        own.window = own.window.filter((x) => x !== s)
      })).pipe(
        // Any failure but an interruption (a defect too: the ingest must not wait for a dead applier).
        Effect.catchAllCause((cause) =>
          Cause.isInterruptedOnly(cause) ? Effect.interrupt : Effect.zipRight(
            Effect.sync(() => (own.failed = s.generation)),
            Effect.logWarning(`index apply of snapshot ${s.snapshotId} failed; a catch-up finishes it`, cause)
          )
        ),
        Effect.withSpan("index.applyIngest", { attributes: { projectId: p.projectId, snapshotId: s.snapshotId } }),
        Effect.ensuring(slotsFree.release(1))
      )
    const work = Effect.gen(function*() {
      let before = yield* Deferred.make<void>()
      yield* Deferred.succeed(before, undefined)
      while (true) {
        const s = yield* Queue.take(queue)
        if (s === "end") return yield* Deferred.await(before)
        const mine = yield* Deferred.make<void>()
        // Forked as children of this fiber: interrupting it interrupts them. An interrupted apply interrupts the
        // next one's wait (`mine` never succeeds).
        yield* Effect.fork(applyOne(s, before).pipe(
          Effect.onExit((exit) => Exit.isInterrupted(exit) ? Deferred.interrupt(mine) : Deferred.succeed(mine, undefined))
        ))
        before = mine
      }
    })
    // A daemon, so it outlives the ingest's fiber: the ingest hands the rest of it to the client's background work
    // (`done`) when it ends, whatever ends it.
    const worker = yield* Effect.forkDaemon(work)
    return {
      /** Waits for a free slot and takes it. */
      room: slotsFree.take(1).pipe(Effect.withSpan("ingest.waitForIndex")),
      /** Gives back a slot no committed snapshot took. */
      unused: Effect.asVoid(slotsFree.release(1)),
      offer: (s: OwnSnapshot) => Queue.offer(queue, s),
      /** No more snapshots; then waits for the queued applies (interrupting it interrupts them). */
      done: Queue.offer(queue, "end").pipe(
        Effect.zipRight(Fiber.join(worker)),
        Effect.onInterrupt(() => Fiber.interrupt(worker))
      )
    }
  })

export type IndexApplier = Effect.Effect.Success<ReturnType<typeof makeIndexApplier>>
