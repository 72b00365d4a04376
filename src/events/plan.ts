/**
 * Turning feed events into exact changes against the history's state (README "Capturing every change"). The feed
 * is lossy: `set` carries only the new AVU, `rmw` only patterns, `cp` only two UUIDs. Each event is applied as a
 * state transition to the project's current AVUs (read from the history, then followed through the batch):
 *
 * - `add`/`adda`: the AVU is present afterwards. Already present → nothing (mesa-mcp's mirror, or drift, has it).
 * - `rm`: absent afterwards. Already absent → nothing.
 * - `set`: the attribute holds exactly this value afterwards; recorded as `set`, which the write expands under the
 *   project's lock into the deletes of the replaced values plus the add. Already exactly so → nothing.
 * - `mod`: the old AVU is deleted (if present) and the new one added (if absent).
 * - `rmw`: every present AVU matching the three SQL `LIKE` patterns is deleted, one delete each.
 * - `addw` and `cp` arrive here already expanded into adds (see Listener): the destination gains what it lacks.
 *
 * A transition whose effect is already in the state records nothing: that is the rule that records a change
 * mirrored by mesa-mcp *and* published by the feed once.
 *
 * Owns: `Placed`, `State`, `planEvents`.
 */
import type { AvuChangeInput, TargetType } from "../core/domain.js"
import { type FeedAvu, likeMatcher } from "./messages.js"

/** An event with its entity's path in one project. */
export type Placed = {
  readonly offset: number
  readonly routingKey: string
  readonly path: string
  readonly type: TargetType
  readonly author: string
  /** Valid time: when the listener received it (the feed carries no time). */
  readonly ts: string
} & (
  | { readonly kind: "avu"; readonly op: "add" | "rm" | "set"; readonly avu: FeedAvu }
  | { readonly kind: "mod"; readonly old: FeedAvu; readonly new: FeedAvu }
  | { readonly kind: "rmw"; readonly attribute: string; readonly value: string; readonly unit: string }
)

export interface Triple {
  readonly attribute: string
  readonly value: string
  readonly unit: string
}

/** A path's AVUs in effect: triple key → triple. */
export type State = Map<string, Map<string, Triple>>

export const tripleKey = (t: Triple) => JSON.stringify([t.attribute, t.value, t.unit])

/** The changes one event makes, with its offset (a snapshot ends at an event boundary). */
export interface PlannedEvent {
  readonly offset: number
  readonly changes: ReadonlyArray<AvuChangeInput>
}

export interface Plan {
  readonly events: ReadonlyArray<PlannedEvent>
  /** Events whose effect was already in the state, or recorded by a mirror of the same change. */
  readonly unchanged: number
}

/**
 * The rows an event states by itself, without the state (`rmw` states none): what another writer's record of the
 * same change (mesa-mcp's mirror) holds. `set` states its add; the deletes it implies depend on the state.
 */
export const statedRows = (e: Placed): ReadonlyArray<readonly ["add" | "delete", Triple]> | undefined =>
  e.kind === "avu"
    ? [[e.op === "rm" ? "delete" : "add", e.avu]]
    : e.kind === "mod"
    ? [["delete", e.old], ["add", e.new]]
    : undefined

export const mirrorKey = (path: string, op: string, t: Triple) => JSON.stringify([path, op, t.attribute, t.value, t.unit])

/**
 * Plans `events` (in offset order) against `state`, which it updates as the events apply. An event `mirrored`
 * answers true for is skipped: another writer recorded it, and the state read after that write holds its effect.
 */
export const planEvents = (events: ReadonlyArray<Placed>, state: State, mirrored: (e: Placed) => boolean = () => false): Plan => {
  const out: Array<PlannedEvent> = []
  let unchanged = 0
  for (const e of events) {
    if (mirrored(e)) {
      unchanged++
      continue
    }
    let avus = state.get(e.path)
    if (avus === undefined) state.set(e.path, avus = new Map())
    const changes: Array<AvuChangeInput> = []
    const emit = (t: Triple, op: "add" | "delete" | "set") =>
      changes.push({
        irodsPath: e.path,
        targetType: e.type,
        attribute: t.attribute,
        value: t.value,
        unit: t.unit,
        op,
        actor: e.author,
        source: `irods-amqp:${e.routingKey}`,
        ts: e.ts
      })
    const has = (t: Triple) => avus.has(tripleKey(t))
    const put = (t: Triple) => avus.set(tripleKey(t), { attribute: t.attribute, value: t.value, unit: t.unit })
    const drop = (t: Triple) => avus.delete(tripleKey(t))
    switch (e.kind) {
      case "avu": {
        const t = e.avu
        if (e.op === "add") {
          if (!has(t)) (emit(t, "add"), put(t))
        } else if (e.op === "rm") {
          if (has(t)) (emit(t, "delete"), drop(t))
        } else {
          const same = [...avus.values()].filter((x) => x.attribute === t.attribute)
          if (!(same.length === 1 && has(t))) {
            emit(t, "set")
            for (const x of same) drop(x)
            put(t)
          }
        }
        break
      }
      case "mod":
        if (has(e.old)) (emit(e.old, "delete"), drop(e.old))
        if (!has(e.new)) (emit(e.new, "add"), put(e.new))
        break
      case "rmw": {
        const [a, v, u] = [likeMatcher(e.attribute), likeMatcher(e.value), likeMatcher(e.unit)]
        const matched = [...avus.values()].filter((x) => a(x.attribute) && v(x.value) && u(x.unit))
        matched.sort((x, y) => (tripleKey(x) < tripleKey(y) ? -1 : 1))
        for (const x of matched) (emit(x, "delete"), drop(x))
        break
      }
    }
    if (changes.length === 0) unchanged++
    else out.push({ offset: e.offset, changes })
  }
  return { events: out, unchanged }
}
