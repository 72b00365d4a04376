/**
 * The client's background work, in its scope: a queue and one worker for the commit markers of new snapshots (then
 * the chain's anchor), and a runner for other work (automatic compaction, index catch-up) that `flush` waits for.
 * A committed snapshot is already durable in the catalog; a marker that never lands (a crash, a storage fault) is
 * written by `recoverPendingPushes`. Closing the client waits for the background too (bounded).
 *
 * Owns: `makeBackground` (the `Background` of context.ts).
 * May call: context.ts, markers.ts.
 */
import { Effect, Fiber, Queue } from "effect"
import type { Project } from "../core/domain.js"
import type { Background, ClientCore } from "./context.js"
import { anchorHead, writeMarker } from "./markers.js"

type QueuedMarker = { readonly p: Project; readonly snapshotId: number }

export const makeBackground = (ctx: ClientCore) =>
  Effect.gen(function*() {
    const scope = yield* Effect.scope
    let inFlight = 0
    const idle = yield* Effect.makeLatch(true)
    const started = Effect.suspend(() => (inFlight++ === 0 ? idle.close : Effect.void))
    const finished = Effect.suspend(() => (--inFlight === 0 ? idle.open : Effect.void))

    const markerQueue = yield* Queue.unbounded<QueuedMarker>()
    const writeQueuedMarkers = (batch: Iterable<QueuedMarker>) => {
      const items = Array.from(batch)
      const projects = new Map(items.map(({ p }) => [p.projectId, p] as const))
      return Effect.forEach(items, ({ p, snapshotId }) =>
        writeMarker(ctx, p, snapshotId).pipe(
          Effect.catchAll((e) => Effect.logWarning("commit marker deferred to recovery", e))
        ), { discard: true }).pipe(
          // Then the chain's head goes to the project root (iRODS), once per project per batch.
          Effect.zipRight(Effect.forEach(projects.values(), (p) =>
            anchorHead(ctx, p).pipe(Effect.catchAll((e) => Effect.logWarning("chain anchor deferred to recovery", e))), {
            discard: true
          })),
          Effect.ensuring(Effect.forEach(items, () => finished, { discard: true }))
        )
    }
    const markerWorker = yield* Effect.forkScoped(Effect.forever(
      Effect.uninterruptibleMask((restore) =>
        Effect.flatMap(restore(Queue.takeBetween(markerQueue, 1, 256)), writeQueuedMarkers)
      )
    ))
    yield* Effect.addFinalizer(() =>
      Fiber.interrupt(markerWorker).pipe(
        Effect.zipRight(Effect.flatMap(Queue.takeAll(markerQueue), writeQueuedMarkers)),
        // Interruptible, or the bound could not interrupt it (a finalizer runs uninterruptibly); the background fibers
        // still running after it are interrupted when the scope closes.
        Effect.zipRight(Effect.interruptible(idle.await)),
        Effect.timeout("30 seconds"),
        Effect.ignore
      )
    )

    const background: Background = {
      enqueueMarker: (p, snapshotId) => Effect.zipRight(started, Queue.offer(markerQueue, { p, snapshotId })),
      // Counted done when its fiber ends, whatever ends it: a fiber interrupted before its first step (the client
      // closing just after the fork) runs none of its own effects, so an `ensuring` inside it would never count it
      // and closing would wait for it forever. Forked uninterruptibly, so the count and the fork go together.
      fork: (work, name, onEnd) =>
        Effect.uninterruptible(Effect.gen(function*() {
          yield* started
          const fiber = yield* work.pipe(
            Effect.withSpan(name),
            // Forked from finalizers too (after an ingest): closing the client must still be able to stop it.
            Effect.interruptible,
            Effect.forkIn(scope)
          )
          fiber.addObserver(() => {
            onEnd?.()
            if (--inFlight === 0) idle.unsafeOpen()
          })
        })),
      flush: idle.await.pipe(Effect.withSpan("DuckLakeClient.flush"))
    }
    return background
  })
