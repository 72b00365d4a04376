/**
 * `runListener`: captures every AVU change the Data Store publishes (issue 20). It consumes our stream queue on the
 * `irods` exchange from the offset its committed snapshots name (checkpoint.ts), gathers deliveries into batches (by
 * count and by time window), records each batch (batch.ts) and only then acknowledges. When the broker goes away it
 * reconnects with backoff and resumes from the first offset not yet recorded; after a reconnect, and on start, once
 * the queue is drained, it runs `drift` for the projects touched since the last drift, so messages the feed lost
 * while the broker was down become drift snapshots (the backstop). It runs until interrupted.
 *
 * Owns: `ListenerSettings`, `ListenerHooks`, `BatchReport`, `runListener`, `ListenerConfig`.
 */
import { Config, Deferred, Duration, Effect, Fiber, Option, Queue, Schedule } from "effect"
import { Catalog } from "../catalog/Catalog.js"
import { DuckLakeClient } from "../client/DuckLakeClient.js"
import { IrodsClient } from "../irods/IrodsClient.js"
import { ProjectDiscovery } from "../operations/discovery.js"
import { detectDrift, recordDrift } from "../operations/drift.js"
import { type AmqpSettings, type Delivery, type FeedConnection, connectFeed } from "./Amqp.js"
import { type BatchError, commitBatch, type ListenerCounters, type ListenerState, prepareBatch, processBatch } from "./batch.js"
import { readCheckpoints } from "./checkpoint.js"
import { makeResolver } from "./resolve.js"

export { type ListenerCounters } from "./batch.js"

export interface ListenerSettings extends AmqpSettings {
  /** Most deliveries in one batch (and so in one project's snapshot). */
  readonly batchMax: number
  /** How long a batch collects after its first delivery. mesa-mcp's mirror of the same change lands within it. */
  readonly batchWindowMs: number
  /** The snapshots' author, and who drift and discovery act as. */
  readonly actor: string
  /** Run drift after reconnects and on start (the backstop). */
  readonly backstop: boolean
  readonly reconnectMaxMs: number
}

/** Configuration from the environment (`MESA_DUCKLAKE_AMQP_*`). */
export const ListenerConfig: Config.Config<ListenerSettings> = Config.all({
  uri: Config.redacted("MESA_DUCKLAKE_AMQP_URI"),
  exchange: Config.string("MESA_DUCKLAKE_AMQP_EXCHANGE").pipe(Config.withDefault("irods")),
  queue: Config.string("MESA_DUCKLAKE_AMQP_QUEUE").pipe(Config.withDefault("mesa-ducklake.avu-changes")),
  prefetch: Config.integer("MESA_DUCKLAKE_AMQP_PREFETCH").pipe(
    Config.validate({ message: "must be 1 to 65535", validation: (n) => n >= 1 && n <= 65535 }),
    Config.withDefault(10_000)
  ),
  maxAge: Config.string("MESA_DUCKLAKE_AMQP_MAX_AGE").pipe(Config.withDefault("7D")),
  batchMax: Config.integer("MESA_DUCKLAKE_AMQP_BATCH_MAX").pipe(
    Config.validate({ message: "must be 1 to 10000", validation: (n) => n >= 1 && n <= 10_000 }),
    Config.withDefault(5000)
  ),
  batchWindowMs: Config.integer("MESA_DUCKLAKE_AMQP_BATCH_MS").pipe(Config.withDefault(1000)),
  actor: Config.string("MESA_DUCKLAKE_ACTOR").pipe(Config.withDefault("mesa-ducklake:listen")),
  backstop: Config.boolean("MESA_DUCKLAKE_AMQP_BACKSTOP").pipe(Config.withDefault(true)),
  reconnectMaxMs: Config.integer("MESA_DUCKLAKE_AMQP_RECONNECT_MAX_MS").pipe(Config.withDefault(30_000))
})

/** One recorded batch: its offsets, when it was committed, and when each delivery had arrived. */
export interface BatchReport {
  readonly firstOffset: number
  readonly lastOffset: number
  readonly deliveries: number
  readonly committedAt: number
  readonly oldestReceivedAt: number
}

export interface ListenerHooks {
  readonly onBatch?: (report: BatchReport, counters: ListenerCounters) => void
  readonly onConnection?: (state: "connected" | "disconnected", detail: string) => void
  /** The live counters (the CLI prints them as progress lines). */
  readonly counters?: ListenerCounters
}

export const emptyCounters = (): ListenerCounters => ({
  received: 0,
  deadLettered: 0,
  unresolved: 0,
  outside: 0,
  replayed: 0,
  unchanged: 0,
  changes: 0,
  snapshots: 0,
  renames: 0,
  drifts: 0,
  reconnects: 0,
  lastOffset: -1
})

/** Runs until interrupted. */
export const runListener = (settings: ListenerSettings, hooks: ListenerHooks = {}) =>
  Effect.gen(function*() {
    const client = yield* DuckLakeClient
    const irods = yield* IrodsClient
    const catalog = yield* Catalog
    const discovery = yield* Effect.serviceOption(ProjectDiscovery)
    // Writes a dead listener left pending are settled first, so the checkpoints below are final.
    yield* client.recoverPendingPushes().pipe(Effect.ignoreLogged)
    const checkpoints = yield* readCheckpoints(client, settings.queue).pipe(
      Effect.tapError((e) => Effect.logWarning("listen: cannot read checkpoints yet", { error: e.message })),
      Effect.retry({ schedule: backoff(settings.reconnectMaxMs) })
    )
    const s: ListenerState = {
      queue: settings.queue,
      actor: settings.actor,
      client,
      catalog,
      resolver: makeResolver(irods),
      discovery,
      through: checkpoints.through,
      touched: new Set(),
      driftDue: new Set(settings.backstop ? checkpoints.through.keys() : []),
      consumed: new Set(),
      mirrorWindowMs: Math.max(10_000, settings.batchWindowMs * 2),
      counters: hooks.counters ?? emptyCounters()
    }
    let next = checkpoints.resumeFrom
    const withServices = <A, E>(eff: Effect.Effect<A, E, Catalog | IrodsClient | DuckLakeClient>) =>
      eff.pipe(Effect.provideService(Catalog, catalog), Effect.provideService(IrodsClient, irods), Effect.provideService(DuckLakeClient, client))
    const backstop = withServices(runBackstop(s))
    for (let attempt = 0;; attempt++) {
      const outcome = yield* Effect.scoped(Effect.gen(function*() {
        const conn = yield* connectFeed(settings, next)
        attempt = 0
        hooks.onConnection?.("connected", `consuming ${settings.queue} from offset ${next}`)
        yield* Effect.logInfo("listen: connected", { queue: settings.queue, from: next })
        // While batch k commits, batch k+1 is taken and prepared (decoded, resolved, placed). Commits stay one after
        // another (the checkpoints rely on it); a failed commit is done again the careful way (recordBatch).
        let inFlight: { readonly batch: ReadonlyArray<Delivery>; readonly fiber: Fiber.RuntimeFiber<void, BatchError> } | undefined
        const settle = Effect.gen(function*() {
          if (inFlight === undefined) return true
          const { batch, fiber } = inFlight
          inFlight = undefined
          const exit = yield* Fiber.await(fiber)
          if (exit._tag === "Failure") yield* recordBatch(s, conn, batch, settings.reconnectMaxMs)
          next = batch[batch.length - 1]!.offset + 1
          s.counters.lastOffset = next - 1
          yield* conn.ackThrough(batch[batch.length - 1]!)
          hooks.onBatch?.({
            firstOffset: batch[0]!.offset,
            lastOffset: next - 1,
            deliveries: batch.length,
            committedAt: Date.now(),
            oldestReceivedAt: batch[0]!.receivedAt
          }, s.counters)
          return exit._tag === "Success"
        })
        while (!(yield* Deferred.isDone(conn.closed))) {
          const batch = yield* takeBatch(conn.deliveries, settings)
          if (batch.length === 0) {
            yield* settle
            if (settings.backstop && s.driftDue.size > 0) yield* backstop
            continue
          }
          s.counters.received += batch.length
          const early = inFlight === undefined ? undefined : yield* Effect.either(prepareBatch(s, conn, batch, new Set()))
          const earlierOk = yield* settle
          const prepared = early !== undefined && early._tag === "Right" && !early.right.ordered && earlierOk
            ? early
            : yield* Effect.either(prepareBatch(s, conn, batch, new Set(early?._tag === "Right" ? early.right.deadLettered : [])))
          const commit = prepared._tag === "Right" ? commitBatch(s, prepared.right) : Effect.fail(prepared.left)
          inFlight = { batch, fiber: yield* Effect.fork(commit) }
        }
        yield* settle
        return yield* Deferred.await(conn.closed)
      })).pipe(Effect.either)
      const reason = outcome._tag === "Left" ? outcome.left.message : "closed"
      s.counters.reconnects++
      for (const p of s.touched) s.driftDue.add(p)
      s.touched.clear()
      hooks.onConnection?.("disconnected", reason)
      yield* Effect.logWarning("listen: broker connection lost; reconnecting", { reason, attempt })
      yield* Effect.sleep(Duration.millis(Math.min(settings.reconnectMaxMs, 250 * 2 ** Math.min(attempt, 10))))
    }
  })

/** Exponential from 250 ms, capped. */
const backoff = (maxMs: number) =>
  Schedule.exponential("250 millis").pipe(Schedule.modifyDelay((d) => Duration.min(d, Duration.millis(maxMs))))

/** Deliveries of one batch: the first one (or none after an idle pause), then more until the count or the window. */
const takeBatch = (q: Queue.Dequeue<Delivery>, settings: ListenerSettings) =>
  Effect.gen(function*() {
    const first = yield* Queue.take(q).pipe(Effect.timeoutOption(Duration.millis(Math.max(50, settings.batchWindowMs))))
    if (Option.isNone(first)) return []
    const batch = [first.value]
    const deadline = first.value.receivedAt + settings.batchWindowMs
    while (batch.length < settings.batchMax) {
      batch.push(...(yield* Queue.takeUpTo(q, settings.batchMax - batch.length)))
      const left = deadline - Date.now()
      if (batch.length >= settings.batchMax || left <= 0) break
      yield* Effect.sleep(Duration.millis(Math.min(20, left)))
    }
    return batch
  })

/**
 * Records a batch, trying again after a pause while the catalog or iRODS is unavailable (what is committed stays
 * committed: the checkpoints skip it), and dead-lettering events the client refuses. A broker failure ends it: the
 * connection is gone, and the batch is consumed again after the reconnect.
 */
const recordBatch = (s: ListenerState, conn: FeedConnection, batch: ReadonlyArray<Delivery>, maxMs: number) =>
  Effect.gen(function*() {
    const excluded = new Set<number>()
    for (let attempt = 0;; attempt++) {
      const result = yield* processBatch(s, conn, batch, excluded).pipe(Effect.either)
      if (result._tag === "Right") return
      const e = result.left
      if (e._tag === "AmqpUnavailable") return yield* e
      if (e._tag === "BadEvent") {
        const d = batch.find((x) => x.offset === e.offset)
        if (d !== undefined) yield* conn.deadLetter(d, e.reason)
        s.counters.deadLettered++
        excluded.add(e.offset)
        continue
      }
      yield* Effect.logWarning("listen: batch not recorded yet; trying again", { error: e.message, attempt })
      yield* Effect.sleep(Duration.millis(Math.min(maxMs, 250 * 2 ** Math.min(attempt, 10))))
    }
  })

/** Drift for the projects the backstop owes: lost messages become drift snapshots. */
const runBackstop = (s: ListenerState) =>
  Effect.gen(function*() {
    for (const projectId of [...s.driftDue]) {
      const done = yield* Effect.gen(function*() {
        const project = yield* s.client.getProject(projectId)
        const report = yield* detectDrift(project)
        yield* recordDrift(report, { actor: s.actor })
        s.counters.drifts++
      }).pipe(
        Effect.as(true),
        Effect.catchAll((e) =>
          e._tag === "ProjectNotFound"
            ? Effect.succeed(true)
            : Effect.as(Effect.logWarning("listen: backstop drift failed; will try again", { projectId, error: e.message }), false)
        )
      )
      if (done) s.driftDue.delete(projectId)
    }
  })
