/**
 * The report's charts, drawn with Observable Plot on a server-side DOM (linkedom) and returned as SVG/HTML
 * markup to inline: the timeline of one attribute's AVUs, the legends (actors, kinds of change), changes per day,
 * and the top-N bar charts.
 *
 * Plot and the DOM are passed in (`ChartKit`), loaded by `Report.ts` only when a report is drawn: this module imports
 * their types only, so importing the package never loads them. Every string a chart shows (attribute names,
 * values, actors) goes into a text node or an attribute through the DOM, which escapes it when serialised.
 */
import type * as PlotModule from "@observablehq/plot"
import type { AttributeTimeline, EventKind, Ranked, Timeline, TimelineBar, TimelineEvent } from "./model.js"
import { EVENT_KINDS, eventLabel } from "./model.js"

/** The charting library and a document to draw into. */
export interface ChartKit {
  readonly Plot: typeof PlotModule
  readonly document: NonNullable<PlotModule.PlotOptions["document"]>
}

/** What a chart or legend is once drawn (the package is compiled without the DOM's types). */
interface Drawn {
  readonly outerHTML: string
}

const WIDTH = 960
const ROW_HEIGHT = 26
/** Plot's categorical scheme for actors; the legend uses the same scale. */
const ACTOR_SCHEME: PlotModule.ColorScheme = "observable10"
const SYMBOLS: Record<EventKind, string> = { add: "circle", delete: "times", set: "diamond", rename: "triangle" }
const OP_COLORS = { add: "#3ca951", delete: "#ff725c" } as const

const serialise = (node: unknown): string => (node as Drawn).outerHTML

/** At most `max` characters (a tick label; the full text is in the title and the tables). */
export const shorten = (s: string, max = 40): string => {
  const flat = s.replace(/[\r\n\t]/g, " ")
  return flat.length <= max ? flat : `${flat.slice(0, max - 1)}…`
}

const iso = (d: Date) => d.toISOString().replace(".000Z", "Z")

export const avuLabel = (avu: { readonly value: string; readonly unit: string }) =>
  avu.unit === "" ? avu.value : `${avu.value} [${avu.unit}]`

/** A left margin wide enough for the (shortened) tick labels; pass the same to charts that share an axis. */
export const marginFor = (labels: ReadonlyArray<string>) =>
  Math.min(260, Math.max(60, 12 + 6.2 * Math.max(0, ...labels.map((l) => shorten(l).length))))

const actorColor = (actors: ReadonlyArray<string>) => ({
  type: "categorical" as const,
  domain: [...actors],
  scheme: ACTOR_SCHEME
})

const symbolScale = { domain: [...EVENT_KINDS], range: EVENT_KINDS.map((k) => SYMBOLS[k]) }

/** The swatches naming each actor's colour, and the symbols of each kind of change. */
export const legends = (kit: ChartKit, actors: ReadonlyArray<string>) => {
  const options = (scales: object) => ({ ...scales, document: kit.document }) as PlotModule.LegendScales
  return {
    actors: actors.length === 0 ? "" : serialise(kit.Plot.legend(options({ color: actorColor(actors) }))),
    kinds: serialise(
      kit.Plot.legend(options({ symbol: symbolScale, stroke: "currentColor", fill: "white" }))
    )
  }
}

const barTitle = (attribute: string, a: AttributeTimeline["avus"][number], bar: TimelineBar) =>
  [
    `${attribute} = ${avuLabel(a)}`,
    `${bar.startKind} by ${bar.actor} at ${iso(bar.start)} (snapshot ${bar.snapshotId})`,
    bar.open ? "still in effect" : `until ${iso(bar.end)} (${bar.endKind})`,
    `on ${bar.irodsPath}`
  ].join("\n")

const eventTitle = (attribute: string, e: TimelineEvent) =>
  `${eventLabel(e)}: ${attribute} = ${avuLabel(e.row)}\nby ${e.row.actor} at ${iso(e.row.ts)}, snapshot ${e.row.snapshotId}` +
  `\nsource ${e.row.source}\non ${e.row.irodsPath}`

/**
 * One attribute's timeline: a row per (value, unit) it had, a bar for each stretch of valid time it was in effect
 * (coloured by the actor who put it there), and a mark per change (add, delete, set, rename). Every attribute's
 * chart gets the same `axis` (the whole timeline's span, one left margin), so their time axes line up.
 */
export const attributeChart = (
  kit: ChartKit,
  a: AttributeTimeline,
  timeline: Pick<Timeline, "actors">,
  axis: { readonly domain: readonly [Date, Date]; readonly marginLeft: number }
): string => {
  const { domain } = axis
  const { Plot, document } = kit
  const labels = a.avus.map(avuLabel)
  const span = Math.max(1, domain[1].getTime() - domain[0].getTime())
  // A bar that lasted no time at this scale is still drawn, a sliver wide.
  const minWidth = span / 400
  const rows = a.avus.map((_, i) => String(i))
  const chart = Plot.plot({
    document,
    width: WIDTH,
    height: 46 + ROW_HEIGHT * a.avus.length,
    marginLeft: axis.marginLeft,
    marginRight: 20,
    x: { type: "utc", domain: [...domain], label: null, grid: true },
    y: { type: "band", domain: rows, tickFormat: (i: string) => shorten(labels[Number(i)] ?? ""), label: null, padding: 0.3 },
    color: actorColor(timeline.actors),
    symbol: symbolScale,
    marks: [
      Plot.barX(a.bars, {
        x1: (b: TimelineBar) => b.start,
        x2: (b: TimelineBar) => new Date(Math.max(b.end.getTime(), b.start.getTime() + minWidth)),
        y: (b: TimelineBar) => String(b.avu),
        fill: (b: TimelineBar) => b.actor,
        title: (b: TimelineBar) => barTitle(a.attribute, a.avus[b.avu]!, b)
      }),
      Plot.dot(a.events, {
        x: (e: TimelineEvent) => e.row.ts,
        y: (e: TimelineEvent) => String(e.avu),
        symbol: (e: TimelineEvent) => e.kind,
        stroke: "currentColor",
        fill: "white",
        r: 4.5,
        title: (e: TimelineEvent) => eventTitle(a.attribute, e)
      })
    ]
  })
  return serialise(chart)
}

const DAY_MS = 86_400_000

/** Changes per UTC day of valid time, stacked by stored op (add, delete). */
export const perDayChart = (
  kit: ChartKit,
  perDay: ReadonlyArray<{ readonly day: Date; readonly op: "add" | "delete"; readonly count: number }>
): string => {
  const { Plot, document } = kit
  type Day = (typeof perDay)[number]
  const days = perDay.length === 0 ? 0 : (perDay.at(-1)!.day.getTime() - perDay[0]!.day.getTime()) / DAY_MS + 1
  return serialise(
    Plot.plot({
      document,
      width: WIDTH,
      height: 240,
      marginLeft: 50,
      // A tick per day while days are few (Plot would otherwise tick hours); Plot's own choice beyond.
      x: { type: "utc", label: null, ...(days <= 14 ? { ticks: "day", tickFormat: "%b %-d" } : {}) },
      y: { label: "changes", grid: true },
      color: { domain: ["add", "delete"], range: [OP_COLORS.add, OP_COLORS.delete], legend: true },
      marks: [
        Plot.rectY(perDay, {
          x1: (d: Day) => d.day,
          x2: (d: Day) => new Date(d.day.getTime() + DAY_MS),
          y: (d: Day) => d.count,
          fill: (d: Day) => d.op,
          insetLeft: 1,
          insetRight: 1,
          title: (d: Day) => `${d.day.toISOString().slice(0, 10)}: ${d.count} ${d.op}${d.count === 1 ? "" : "s"}`
        }),
        Plot.ruleY([0])
      ]
    })
  )
}

/** A horizontal bar per name, longest first, with its count written beside it. */
export const rankedChart = (kit: ChartKit, ranked: ReadonlyArray<Ranked>, fill: string, what: string): string => {
  const { Plot, document } = kit
  const names = ranked.map((r) => r.name)
  const max = Math.max(1, ...ranked.map((r) => r.count))
  return serialise(
    Plot.plot({
      document,
      width: WIDTH / 2 - 20,
      height: 40 + ROW_HEIGHT * Math.max(1, ranked.length),
      marginLeft: marginFor(names),
      marginRight: 40,
      x: { label: what, grid: true, domain: [0, max] },
      y: { type: "band", domain: names, tickFormat: (n: string) => shorten(n, 32), label: null, padding: 0.2 },
      marks: [
        Plot.barX(ranked, {
          x: (r: Ranked) => r.count,
          y: (r: Ranked) => r.name,
          fill,
          title: (r: Ranked) => `${r.name}: ${r.count}`
        }),
        Plot.text(ranked, {
          x: (r: Ranked) => r.count,
          y: (r: Ranked) => r.name,
          text: (r: Ranked) => String(r.count),
          dx: 4,
          textAnchor: "start"
        }),
        Plot.ruleX([0])
      ]
    })
  )
}
