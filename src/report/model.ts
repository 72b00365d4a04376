/**
 * What the history report shows, as plain data (no charting, no HTML): the timeline of each AVU of a path (bars
 * over valid time, with the change that opened and closed each, and the events to mark) and a project's overview
 * (counts, changes per day, top attributes and actors).
 *
 * The history stores `add` and `delete` only. A `set` (iRODS `imeta set`) is stored as the deletes of the
 * attribute's values followed by the add, in one snapshot at one valid time; the report reads that pattern back as a
 * set. A rename is stored as deletes at the old path and adds at the new one; a path's history (`getHistory` with
 * `irodsPath`) follows renames back, so an add at this path of an AVU the object already had at an earlier path is
 * read as the rename.
 */
import type { ChangeRow } from "../core/domain.js"

export type EventKind = "add" | "delete" | "set" | "rename"
export const EVENT_KINDS: ReadonlyArray<EventKind> = ["add", "delete", "set", "rename"]

/** One change of the path's history as the timeline marks it. */
export interface TimelineEvent {
  readonly kind: EventKind
  /** Which AVU row of its attribute's chart the event sits on (index into `AttributeTimeline.avus`). */
  readonly avu: number
  readonly row: ChangeRow
}

/** One stretch of valid time during which an AVU was in effect on the object (at one path). */
export interface TimelineBar {
  readonly avu: number
  readonly start: Date
  /** The change that ended it, or the report's time when it is still in effect. */
  readonly end: Date
  readonly open: boolean
  /** Who put the AVU there (the actor of the add, set or rename that opened the bar). */
  readonly actor: string
  readonly startKind: Exclude<EventKind, "delete">
  readonly endKind: Exclude<EventKind, "add"> | undefined
  readonly irodsPath: string
  readonly snapshotId: number
}

export interface AttributeTimeline {
  readonly attribute: string
  /** The (value, unit) pairs the attribute had, in the order they first appeared. */
  readonly avus: ReadonlyArray<{ readonly value: string; readonly unit: string }>
  readonly bars: ReadonlyArray<TimelineBar>
  readonly events: ReadonlyArray<TimelineEvent>
}

export interface Timeline {
  readonly attributes: ReadonlyArray<AttributeTimeline>
  /** Every change, oldest first, with how the timeline reads it. */
  readonly events: ReadonlyArray<TimelineEvent & { readonly attribute: string }>
  readonly actors: ReadonlyArray<string>
  readonly first: Date | undefined
  readonly last: Date | undefined
}

/** How a change reads in words: a set's deletes are the values it replaced. */
export const eventLabel = (e: TimelineEvent): string =>
  e.kind === "set" && e.row.op === "delete" ? "set (replaced)" : e.kind

/** Oldest first: valid time, then snapshot order, then position in the batch (the history's own order). */
export const oldestFirst = (a: ChangeRow, b: ChangeRow) =>
  a.ts.getTime() - b.ts.getTime() || a.snapshotId - b.snapshotId || a.changeSeq - b.changeSeq

const key = (...parts: ReadonlyArray<string | number>) => JSON.stringify(parts)

/**
 * Rows that belong to a `set`: in one snapshot, at one path and valid time, one or more deletes of an attribute
 * followed by an add of it.
 */
const setRows = (rows: ReadonlyArray<ChangeRow>): Set<ChangeRow> => {
  const groups = new Map<string, Array<ChangeRow>>()
  for (const r of rows) {
    const k = key(r.snapshotId, r.irodsPath, r.attribute, r.ts.getTime())
    const g = groups.get(k)
    if (g === undefined) groups.set(k, [r])
    else g.push(r)
  }
  const out = new Set<ChangeRow>()
  for (const g of groups.values()) {
    const firstAdd = g.findIndex((r) => r.op === "add")
    if (firstAdd > 0 && g.slice(0, firstAdd).every((r) => r.op === "delete")) for (const r of g) out.add(r)
  }
  return out
}

/** The timeline of a path's history (rows in any order). Bars still open end at `now` (or the last change, if later). */
export const buildTimeline = (rows: ReadonlyArray<ChangeRow>, now: Date): Timeline => {
  const sorted = [...rows].sort(oldestFirst)
  const inSet = setRows(sorted)
  const last = sorted.at(-1)?.ts
  const end = last !== undefined && last > now ? last : now
  const byAttribute = new Map<string, {
    avus: Array<{ value: string; unit: string }>
    index: Map<string, number>
    bars: Array<TimelineBar>
    events: Array<TimelineEvent>
  }>()
  // The bar currently open per AVU (attribute, value, unit), whatever path the object had then.
  const open = new Map<string, { bar: Omit<TimelineBar, "end" | "open" | "endKind">; attribute: string }>()
  const events: Array<TimelineEvent & { readonly attribute: string }> = []
  for (const row of sorted) {
    let a = byAttribute.get(row.attribute)
    if (a === undefined) byAttribute.set(row.attribute, a = { avus: [], index: new Map(), bars: [], events: [] })
    const avuKey = key(row.value, row.unit)
    let avu = a.index.get(avuKey)
    if (avu === undefined) {
      avu = a.avus.length
      a.index.set(avuKey, avu)
      a.avus.push({ value: row.value, unit: row.unit })
    }
    const tripleKey = key(row.attribute, row.value, row.unit)
    const current = open.get(tripleKey)
    let kind: EventKind = inSet.has(row) ? "set" : row.op
    const close = (endKind: Exclude<EventKind, "add">) => {
      if (current === undefined) return
      a.bars.push({ ...current.bar, end: row.ts, open: false, endKind })
      open.delete(tripleKey)
    }
    if (row.op === "add") {
      if (current !== undefined && current.bar.irodsPath !== row.irodsPath) {
        kind = "rename"
        close("rename")
      } else if (current !== undefined) {
        // Added again while in effect (iRODS refuses that; an import may carry it): the bar goes on.
        a.events.push({ kind, avu, row })
        events.push({ kind, avu, row, attribute: row.attribute })
        continue
      }
      open.set(tripleKey, {
        attribute: row.attribute,
        bar: {
          avu,
          start: row.ts,
          actor: row.actor,
          startKind: kind === "delete" ? "add" : kind,
          irodsPath: row.irodsPath,
          snapshotId: row.snapshotId
        }
      })
    } else {
      close(kind === "set" ? "set" : "delete")
    }
    a.events.push({ kind, avu, row })
    events.push({ kind, avu, row, attribute: row.attribute })
  }
  for (const { attribute, bar } of open.values()) {
    byAttribute.get(attribute)!.bars.push({ ...bar, end, open: true, endKind: undefined })
  }
  const attributes = [...byAttribute.entries()]
    .sort(([x], [y]) => (x < y ? -1 : x > y ? 1 : 0))
    .map(([attribute, a]) => ({ attribute, avus: a.avus, bars: a.bars, events: a.events }))
  return {
    attributes,
    events,
    actors: distinctSorted(sorted.map((r) => r.actor)),
    first: sorted[0]?.ts,
    last
  }
}

const distinctSorted = (xs: ReadonlyArray<string>) => [...new Set(xs)].sort()

export interface Ranked {
  readonly name: string
  readonly count: number
}

export interface Overview {
  /** Change rows counted (at most the report's limit; `truncated` when the project has more). */
  readonly changes: number
  readonly truncated: boolean
  readonly adds: number
  readonly deletes: number
  readonly paths: number
  readonly attributes: number
  readonly actors: number
  readonly first: Date | undefined
  readonly last: Date | undefined
  /** Changes per UTC day of valid time and stored op, oldest day first. */
  readonly perDay: ReadonlyArray<{ readonly day: Date; readonly op: "add" | "delete"; readonly count: number }>
  readonly topAttributes: ReadonlyArray<Ranked>
  readonly topActors: ReadonlyArray<Ranked>
}

/** The `n` most frequent names of a count map, most first (ties by name). */
const top = (counts: ReadonlyMap<string, number>, n: number): ReadonlyArray<Ranked> =>
  [...counts.entries()]
    .map(([name, count]) => ({ name, count }))
    .sort((a, b) => b.count - a.count || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
    .slice(0, n)

const DAY_MS = 86_400_000

const bump = <K>(m: Map<K, number>, k: K) => m.set(k, (m.get(k) ?? 0) + 1)

/** The project's overview from its change rows (`truncated`: the rows are the newest of more). One pass. */
export const buildOverview = (rows: ReadonlyArray<ChangeRow>, truncated: boolean, topN = 10): Overview => {
  // Per day: adds at 2·day, deletes at 2·day + 1 (days since the epoch, so the keys stay numbers).
  const perDay = new Map<number, number>()
  const attributes = new Map<string, number>()
  const actors = new Map<string, number>()
  const paths = new Set<string>()
  let first = Number.POSITIVE_INFINITY
  let last = Number.NEGATIVE_INFINITY
  let adds = 0
  for (const r of rows) {
    const t = r.ts.getTime()
    if (t < first) first = t
    if (t > last) last = t
    if (r.op === "add") adds++
    bump(perDay, Math.floor(t / DAY_MS) * 2 + (r.op === "add" ? 0 : 1))
    bump(attributes, r.attribute)
    bump(actors, r.actor)
    paths.add(r.irodsPath)
  }
  return {
    changes: rows.length,
    truncated,
    adds,
    deletes: rows.length - adds,
    paths: paths.size,
    attributes: attributes.size,
    actors: actors.size,
    first: rows.length === 0 ? undefined : new Date(first),
    last: rows.length === 0 ? undefined : new Date(last),
    perDay: [...perDay.entries()]
      .sort(([a], [b]) => a - b)
      .map(([k, count]) => ({ day: new Date(Math.floor(k / 2) * DAY_MS), op: k % 2 === 0 ? "add" as const : "delete" as const, count })),
    topAttributes: top(attributes, topN),
    topActors: top(actors, topN)
  }
}
