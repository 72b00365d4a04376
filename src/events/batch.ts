/**
 * One batch of deliveries → snapshots. In stream order: decode (bad bodies are dead-lettered with their reason),
 * resolve each entity UUID to its path (moves rewrite the resolver's paths as they come), find the project by path
 * (registered roots; else discovery's `mesa.enabled` marker, which registers), skip what the project's history
 * already holds (offset ≤ its checkpoint), then per project: plan against the history's state and record — one
 * snapshot per run of events between moves, one rename snapshot per move. The caller acknowledges afterwards.
 *
 * Owns: `ListenerState`, `processBatch`, `BatchOutcome`.
 */
import { Effect, Either, Option, Schema } from "effect"
import { posix } from "node:path"
import type { Catalog } from "../catalog/Catalog.js"
import type { DuckLakeClientService, RecordError } from "../client/DuckLakeClient.js"
import { isWithin, MAX_BATCH, type Project } from "../core/domain.js"
import type { StorageError } from "../core/errors.js"
import type { DiscoveryError, ProjectDiscoveryService } from "../operations/discovery.js"
import type { AmqpUnavailable, Delivery, FeedConnection } from "./Amqp.js"
import { noteFor } from "./checkpoint.js"
import { decodeDelivery, type FeedEvent } from "./messages.js"
import { mirrorKey, type Placed, planEvents, type State, statedRows } from "./plan.js"
import { readState } from "./state.js"
import { parseNote } from "./checkpoint.js"
import type { EntityResolver, Located } from "./resolve.js"

/** Counters, as `listen` reports them. */
export interface ListenerCounters {
  received: number
  deadLettered: number
  /** Entities no longer found by UUID (deleted since), or moves across projects (left to the backstop). */
  unresolved: number
  /** Events on paths outside every registered (or discoverable) project: acknowledged, not recorded. */
  outside: number
  /** Events the history already held (a redelivery after a restart: offset at or below the checkpoint). */
  replayed: number
  /** Events whose effect was already in the history's state (mesa-mcp's mirror, drift, a duplicate `cp`). */
  unchanged: number
  changes: number
  snapshots: number
  renames: number
  drifts: number
  reconnects: number
  lastOffset: number
}

/** What the listener keeps between batches. */
export interface ListenerState {
  readonly queue: string
  /** The snapshots' author (each change carries the message's author as its actor). */
  readonly actor: string
  readonly client: DuckLakeClientService
  readonly catalog: Catalog["Type"]
  readonly resolver: EntityResolver
  readonly discovery: Option.Option<ProjectDiscoveryService>
  /** Per project: the last stream offset its history holds. */
  readonly through: Map<string, number>
  /** Projects with events since the last backstop drift. */
  readonly touched: Set<string>
  /** Projects whose drift the backstop owes (moves across projects, reconnects). */
  readonly driftDue: Set<string>
  /** Rows of other writers already matched to an event (`<project>:<snapshot>:<seq>`). */
  readonly consumed: Set<string>
  /** How far apart (ms) an event and another writer's row of the same change may be. */
  readonly mirrorWindowMs: number
  readonly counters: ListenerCounters
}

type Item = Placed | {
  readonly kind: "mv"
  readonly offset: number
  readonly routingKey: string
  readonly from: string
  readonly to: string
  readonly type: "data_object" | "collection"
  readonly author: string
  readonly ts: string
}

/** Why a batch must be tried again (after a pause); its committed parts are not written twice. */
export type BatchError = RecordError | StorageError | AmqpUnavailable | BadEvent | DiscoveryError

/** An event whose changes the client refused (`InvalidChange`: a value over 2,700 bytes, a path it refuses): it is
 * dead-lettered with that reason and the batch runs again without it. */
export class BadEvent extends Schema.TaggedError<BadEvent>()("BadEvent", { offset: Schema.Number, reason: Schema.String }) {
  override get message() {
    return `event at offset ${this.offset}: ${this.reason}`
  }
}

const projectOfRoots = (projects: ReadonlyArray<Project>, path: string): Project | undefined => {
  let best: Project | undefined
  for (const p of projects) {
    if (!isWithin(path, p.irodsPath) || isWithin(path, `${p.irodsPath}/.mesa`)) continue
    if (best === undefined || p.irodsPath.length > best.irodsPath.length) best = p
  }
  return best
}

/** Processes one batch; `excluded` offsets (dead-lettered on an earlier try) are left out. */
export const processBatch = (
  s: ListenerState,
  conn: FeedConnection,
  batch: ReadonlyArray<Delivery>,
  excluded: Set<number>
): Effect.Effect<void, BatchError> => Effect.flatMap(prepareBatch(s, conn, batch, excluded), (p) => commitBatch(s, p))

/** A batch placed in its projects, ready to be recorded. */
export interface PreparedBatch {
  readonly batchStart: number
  readonly perProject: ReadonlyMap<string, ReadonlyArray<Item>>
  /** It holds a `cp` (whose source is read from the history) or a move: prepare it after the batch before commits. */
  readonly ordered: boolean
  /** Offsets it dead-lettered (not to be dead-lettered again if it is prepared anew). */
  readonly deadLettered: ReadonlySet<number>
}

/** Recording a prepared batch: per project, concurrently. */
export const commitBatch = (s: ListenerState, p: PreparedBatch): Effect.Effect<void, BatchError> =>
  Effect.forEach(p.perProject, ([projectId, items]) => recordProject(s, projectId, items, p.batchStart), {
    concurrency: 4,
    discard: true
  })

/**
 * Decodes a batch (dead-lettering what is not an event), resolves its entities and places its events in their
 * projects, leaving out what each project's history already holds. Reads nothing the commit of an earlier batch
 * changes (unless `ordered`), so it may run while that commit does.
 */
export const prepareBatch = (
  s: ListenerState,
  conn: FeedConnection,
  batch: ReadonlyArray<Delivery>,
  excluded: Set<number>
): Effect.Effect<PreparedBatch, BatchError> =>
  Effect.gen(function*() {
    const batchStart = batch[0]!.offset
    const projects = [...yield* s.client.listProjects]
    const projectOf = (path: string) =>
      Effect.gen(function*() {
        const known = projectOfRoots(projects, path)
        if (known !== undefined || Option.isNone(s.discovery)) return known
        const found = yield* s.discovery.value.discoverProject(path, { actor: s.actor }).pipe(
          Effect.map((p) => p as Project | undefined),
          Effect.catchTag("NotMesaEnabled", () => Effect.succeed(undefined)),
          Effect.catchTag("InvalidChange", () => Effect.succeed(undefined))
        )
        if (found !== undefined) projects.push(found)
        return found
      })
    const perProject = new Map<string, Array<Item>>()
    const place = (p: Project | undefined, item: Item) => {
      if (p === undefined) return void s.counters.outside++
      if (item.offset <= (s.through.get(p.projectId) ?? -1)) return void s.counters.replayed++
      let items = perProject.get(p.projectId)
      if (items === undefined) perProject.set(p.projectId, items = [])
      items.push(item)
      s.touched.add(p.projectId)
    }
    const deadLettered = new Set<number>()
    const decoded = batch.filter((d) => !excluded.has(d.offset)).map((d) => [d, decodeDelivery(d.routingKey, d.content)] as const)
    // Entities seen for the first time are looked up concurrently (one GenQuery each); placing stays in order.
    const uuids = new Set<string>()
    for (const [, e] of decoded) {
      if (Either.isLeft(e)) continue
      const ev = e.right
      if (ev.kind === "avu" || ev.kind === "mod" || ev.kind === "rmw") uuids.add(ev.entity)
      else if (ev.kind === "cp") (uuids.add(ev.source), uuids.add(ev.destination))
    }
    const unknown = [...uuids].filter((u) => s.resolver.cached(u) === undefined)
    yield* Effect.forEach(unknown, (u) => s.resolver.locate(u), { concurrency: 8, discard: true })
    for (const [d, e] of decoded) {
      if (Either.isLeft(e)) {
        yield* conn.deadLetter(d, e.left.reason)
        s.counters.deadLettered++
        deadLettered.add(d.offset)
        continue
      }
      // The common case without an effect per event: an AVU event on a known entity in a registered project.
      if (!placeKnown(s, d, e.right, projects, place)) yield* placeEvent(s, d, e.right, projectOf, place)
    }
    const ordered = decoded.some(([, e]) => Either.isRight(e) && (e.right.kind === "cp" || e.right.kind === "mv"))
    return { batchStart, perProject, ordered, deadLettered } satisfies PreparedBatch
  })

/** Places an avu/mod/rmw event whose entity is cached and inside a registered project; false when it cannot. */
const placeKnown = (
  s: ListenerState,
  d: Delivery,
  e: FeedEvent,
  projects: ReadonlyArray<Project>,
  place: (p: Project | undefined, item: Item) => void
): boolean => {
  if (e.kind !== "avu" && e.kind !== "mod" && e.kind !== "rmw") return false
  const loc = s.resolver.cached(e.entity)
  const p = loc === undefined ? undefined : projectOfRoots(projects, loc.path)
  if (loc === undefined || p === undefined) return false
  const at = { offset: d.offset, routingKey: d.routingKey, author: e.author, ts: new Date(d.receivedAt).toISOString(), path: loc.path, type: loc.type }
  place(
    p,
    e.kind === "avu"
      ? { ...at, kind: "avu", op: e.op, avu: e.avu }
      : e.kind === "mod"
      ? { ...at, kind: "mod", old: e.old, new: e.new }
      : { ...at, kind: "rmw", attribute: e.attribute, value: e.value, unit: e.unit }
  )
  return true
}

const placeEvent = (
  s: ListenerState,
  d: Delivery,
  e: FeedEvent,
  projectOf: (path: string) => Effect.Effect<Project | undefined, BatchError>,
  place: (p: Project | undefined, item: Item) => void
) =>
  Effect.gen(function*() {
    const common = { offset: d.offset, routingKey: d.routingKey, author: e.author, ts: new Date(d.receivedAt).toISOString() }
    const at = (loc: Located) => ({ ...common, path: loc.path, type: loc.type })
    switch (e.kind) {
      case "avu":
      case "mod":
      case "rmw": {
        const loc = yield* s.resolver.locate(e.entity)
        if (loc === undefined) return void s.counters.unresolved++
        const item: Placed = e.kind === "avu"
          ? { ...at(loc), kind: "avu", op: e.op, avu: e.avu }
          : e.kind === "mod"
          ? { ...at(loc), kind: "mod", old: e.old, new: e.new }
          : { ...at(loc), kind: "rmw", attribute: e.attribute, value: e.value, unit: e.unit }
        return place(yield* projectOf(loc.path), item)
      }
      case "addw": {
        const paths = yield* s.resolver.dataObjectsLike(posix.dirname(e.pattern), posix.basename(e.pattern))
        if (paths.length === 0) {
          // Nothing matches now (moved or removed since?): the backstop's drift settles the project, if any.
          s.counters.unresolved++
          const p = yield* projectOf(posix.dirname(e.pattern))
          if (p !== undefined) s.driftDue.add(p.projectId)
          return
        }
        for (const path of paths) {
          place(yield* projectOf(path), { ...common, path, type: "data_object", kind: "avu", op: "add", avu: e.avu })
        }
        return
      }
      case "cp": {
        const [source, destination] = [yield* s.resolver.locate(e.source), yield* s.resolver.locate(e.destination)]
        if (source === undefined || destination === undefined) return void s.counters.unresolved++
        const target = yield* projectOf(destination.path)
        if (target === undefined) return void s.counters.outside++
        // What the destination gains: the source's AVUs as the history holds them (iRODS' own if no project does).
        const from = yield* projectOf(source.path)
        const avus = from === undefined
          ? yield* s.resolver.liveAvus(source)
          : (yield* s.client.getAvus(from.projectId, source.path)).map((a) => ({ attribute: a.attribute, value: a.value, unit: a.unit }))
        for (const avu of avus) place(target, { ...at(destination), kind: "avu", op: "add", avu })
        return
      }
      case "mv": {
        s.resolver.moved(e.entity, e.oldPath, e.newPath, e.entityType)
        const [from, to] = [yield* projectOf(e.oldPath), yield* projectOf(e.newPath)]
        if (from !== undefined && from.projectId === to?.projectId) {
          return place(from, { ...common, kind: "mv", from: e.oldPath, to: e.newPath, type: e.entityType })
        }
        // Into, out of or across projects: the backstop's drift settles both sides.
        s.counters.unresolved++
        if (from !== undefined) s.driftDue.add(from.projectId)
        if (to !== undefined) s.driftDue.add(to.projectId)
        return
      }
    }
  })

/** Records one project's items: a snapshot per run of events between moves, a rename per move. */
const recordProject = (
  s: ListenerState,
  projectId: string,
  items: ReadonlyArray<Item>,
  batchStart: number
) =>
  Effect.gen(function*() {
    let run: Array<Placed> = []
    const flush = Effect.suspend(() => {
      const events = run
      run = []
      return events.length === 0 ? Effect.void : recordRun(s, projectId, events, batchStart)
    })
    for (const item of items) {
      if (item.kind !== "mv") {
        run.push(item)
        continue
      }
      yield* flush
      const result = yield* s.client.recordRename({
        projectId,
        actor: item.author,
        from: item.from,
        to: item.to,
        targetType: item.type,
        ts: item.ts,
        source: `irods-amqp:${item.routingKey}`,
        note: noteFor(s.queue, batchStart, item.offset, `moved ${item.from} to ${item.to}`),
        idempotencyKey: `irods-amqp:${s.queue}:${item.offset}`
      }).pipe(
        Effect.catchTag("IdempotencyConflict", () => Effect.succeed({ recorded: false as const })),
        Effect.catchTag("InvalidChange", (e) => Effect.fail(new BadEvent({ offset: item.offset, reason: e.message })))
      )
      if (result.recorded) s.counters.renames++
      s.through.set(projectId, item.offset)
    }
    yield* flush
  }).pipe(
    // An archived project records nothing more; a project removed meanwhile is outside every project now.
    Effect.catchTag("ProjectArchived", () => Effect.sync(() => void (s.counters.outside += items.length))),
    Effect.catchTag("ProjectNotFound", () => Effect.sync(() => void (s.counters.outside += items.length)))
  )

/** Plans a run of events against the history's state and records it (in snapshots of at most MAX_BATCH changes). */
const recordRun = (s: ListenerState, projectId: string, events: ReadonlyArray<Placed>, batchStart: number) =>
  Effect.gen(function*() {
    const project = yield* s.client.getProject(projectId)
    const state: State = yield* readState(s.catalog, s.client, project, [...new Set(events.map((e) => e.path))])
    const candidates = yield* mirrorCandidates(s, projectId, events)
    const mirrored = (e: Placed) => {
      if (candidates.size === 0) return false
      const stated = statedRows(e)
      if (stated === undefined) return false
      const at = Date.parse(e.ts)
      const ids: Array<string> = []
      for (const [op, t] of stated) {
        const hit = candidates.get(mirrorKey(e.path, op, t))?.find((c) =>
          !s.consumed.has(c.id) && !ids.includes(c.id) && Math.abs(c.ts - at) <= s.mirrorWindowMs
        )
        if (hit === undefined) return false
        ids.push(hit.id)
      }
      for (const id of ids) s.consumed.add(id)
      return true
    }
    const plan = planEvents(events, state, mirrored)
    s.counters.unchanged += plan.unchanged
    const last = events[events.length - 1]!.offset
    let chunk: Array<(typeof plan.events)[number]> = []
    let size = 0
    const write = (through: number) =>
      Effect.suspend(() => {
        const planned = chunk
        chunk = []
        size = 0
        if (planned.length === 0) return Effect.sync(() => void s.through.set(projectId, through))
        const changes = planned.flatMap((p) => p.changes)
        const first = planned[0]!.offset
        return s.client.recordChanges({
          projectId,
          actor: s.actor,
          changes,
          note: noteFor(s.queue, batchStart, through, `${changes.length} change(s) from ${planned.length} event(s)`),
          idempotencyKey: `irods-amqp:${s.queue}:${projectId}:${first}-${through}`
        }).pipe(
          Effect.catchTag("IdempotencyConflict", () => Effect.succeed({ recorded: false as const })),
          Effect.catchTag("InvalidChange", (e) => {
            let at = e.index ?? 0
            const bad = planned.find((p) => (at -= p.changes.length) < 0) ?? planned[0]!
            return Effect.fail(new BadEvent({ offset: bad.offset, reason: e.message }))
          }),
          Effect.tap((r) =>
            Effect.sync(() => {
              s.through.set(projectId, through)
              if (!r.recorded) return
              s.counters.snapshots++
              s.counters.changes += r.changeCount
            })
          ),
          Effect.asVoid
        )
      })
    for (const p of plan.events) {
      if (size + p.changes.length > MAX_BATCH && chunk.length > 0) yield* write(chunk[chunk.length - 1]!.offset)
      chunk.push(p)
      size += p.changes.length
    }
    yield* write(last)
  })

/**
 * Rows other writers (mesa-mcp's mirror, drift) recorded in the project around the events' time: the snapshots
 * committed since the earliest event minus the window that are not the listener's own, by (path, op, triple).
 */
const mirrorCandidates = (s: ListenerState, projectId: string, events: ReadonlyArray<Placed>) =>
  Effect.gen(function*() {
    const out = new Map<string, Array<{ readonly id: string; readonly ts: number }>>()
    const since = Math.min(...events.map((e) => Date.parse(e.ts))) - s.mirrorWindowMs
    const snaps = yield* s.client.listSnapshots(projectId, { limit: 200 })
    const foreign = snaps.filter((sn) => sn.ts.getTime() >= since && parseNote(sn.note)?.queue !== s.queue)
    if (s.consumed.size > 200_000) s.consumed.clear()
    for (const sn of foreign) {
      const rows = yield* s.client.getSnapshotChanges(projectId, sn.snapshotId).pipe(
        Effect.catchTag("SnapshotNotFound", () => Effect.succeed([]))
      )
      for (const r of rows) {
        if (r.source.startsWith("irods-amqp:")) continue
        const key = mirrorKey(r.irodsPath, r.op, r)
        let list = out.get(key)
        if (list === undefined) out.set(key, list = [])
        list.push({ id: `${projectId}:${r.snapshotId}:${r.changeSeq}`, ts: r.ts.getTime() })
      }
    }
    return out
  })
