/**
 * The report page: one self-contained HTML document (inline CSS, inline SVG, no script, nothing fetched: a
 * Content-Security-Policy of `default-src 'none'` makes the browser refuse any request the page could make).
 *
 * Every string that comes from the history (paths, attribute names, values, units, actors, sources, notes) is
 * untrusted: it goes through `escapeHtml` here, or through the DOM in charts.ts.
 */
import type { Project, Snapshot } from "../core/domain.js"
import { eventLabel, type Overview, type Timeline } from "./model.js"

/** Text for HTML text and double- or single-quoted attribute values. */
export const escapeHtml = (s: string): string =>
  s.replace(/[&<>"']/g, (c) => (c === "&" ? "&amp;" : c === "<" ? "&lt;" : c === ">" ? "&gt;" : c === '"' ? "&quot;" : "&#39;"))

const esc = (v: string | number | null | undefined): string => (v === null || v === undefined ? "" : escapeHtml(String(v)))
const iso = (d: Date | undefined) => (d === undefined ? "" : d.toISOString())
/** `2026-11-05 10:00:00Z` (milliseconds only when there are some), for table cells. */
const when = (d: Date) => d.toISOString().replace("T", " ").replace(".000Z", "Z")
const plural = (n: number, one: string, many = `${one}s`) => `${n.toLocaleString("en-US")} ${n === 1 ? one : many}`

const CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'"

const STYLE = `
:root { color-scheme: light; --muted: #5f6b7a; --line: #d9dee5; --accent: #1f5fa8; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", "DejaVu Sans", sans-serif; color: #1c2430; background: #fff; }
header, main, footer { max-width: 1000px; margin: 0 auto; padding: 0 20px; }
header { padding-top: 18px; border-bottom: 1px solid var(--line); }
h1 { font-size: 22px; margin: 0 0 6px; word-break: break-all; }
h2 { font-size: 18px; margin: 28px 0 8px; border-bottom: 1px solid var(--line); padding-bottom: 4px; }
h3 { font-size: 15px; margin: 18px 0 4px; word-break: break-all; }
code { font: 12.5px ui-monospace, "DejaVu Sans Mono", monospace; background: #f3f5f8; padding: 1px 4px; border-radius: 3px; word-break: break-all; }
.meta { color: var(--muted); margin: 4px 0 10px; }
nav { display: flex; gap: 16px; padding: 6px 0 10px; }
nav a { color: var(--accent); text-decoration: none; }
.note { color: var(--muted); }
.warning { background: #fff6db; border: 1px solid #f0d98c; padding: 6px 10px; border-radius: 4px; }
.legends { display: flex; flex-wrap: wrap; gap: 8px 32px; align-items: center; margin: 8px 0; }
.legend-title { font-weight: 600; margin-right: 8px; }
.legend { display: flex; align-items: center; }
figure { margin: 10px 0; }
figcaption { font-weight: 600; margin-bottom: 4px; }
.pair { display: flex; flex-wrap: wrap; gap: 20px; }
.pair > figure { flex: 1 1 440px; }
dl.counts { display: grid; grid-template-columns: repeat(auto-fill, minmax(150px, 1fr)); gap: 8px; margin: 8px 0; }
dl.counts > div { border: 1px solid var(--line); border-radius: 6px; padding: 6px 10px; }
dt { color: var(--muted); font-size: 12px; }
dd { margin: 0; font-size: 18px; font-weight: 600; }
table { border-collapse: collapse; width: 100%; font-size: 12.5px; }
th, td { text-align: left; border-bottom: 1px solid var(--line); padding: 4px 6px; vertical-align: top; }
th { background: #f3f5f8; position: sticky; top: 0; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
table.snapshots td.num, table.snapshots th.num { width: 6em; }
td.time { white-space: nowrap; font-variant-numeric: tabular-nums; }
td.text { word-break: break-word; white-space: pre-wrap; max-width: 360px; }
tr.touches-path td { background: #eef5ff; }
details { margin: 10px 0; }
summary { cursor: pointer; color: var(--accent); }
footer { color: var(--muted); font-size: 12px; padding: 24px 20px; }
@media print { nav, details > summary { display: none; } details { display: block; } th { position: static; } }
`

export interface PageInput {
  readonly project: Project
  /** The path whose timeline is shown (absent: a project report). */
  readonly path: string | undefined
  readonly generatedAt: Date
  readonly timeline: Timeline | undefined
  readonly timelineTruncated: boolean
  readonly charts: {
    readonly legends: { readonly actors: string; readonly kinds: string }
    readonly attributes: ReadonlyArray<string>
    readonly perDay: string
    readonly topAttributes: string
    readonly topActors: string
  }
  readonly overview: Overview
  readonly snapshots: ReadonlyArray<Snapshot>
  readonly snapshotsTruncated: boolean
}

const timelineSection = (input: PageInput): string => {
  const { path, timeline } = input
  if (path === undefined || timeline === undefined) return ""
  const head = `<section id="timeline"><h2>Timeline of each AVU of <code>${esc(path)}</code></h2>`
  if (timeline.events.length === 0) {
    return `${head}<p class="note" data-empty="timeline">No AVU changes are recorded for this path.</p></section>`
  }
  const truncated = input.timelineTruncated
    ? `<p class="warning">Only the newest ${plural(timeline.events.length, "change")} of this path are drawn; older ones exist.</p>`
    : ""
  const attributes = timeline.attributes.map((a, i) =>
    `<section class="attribute" data-attribute="${esc(a.attribute)}"><h3>${esc(a.attribute)}</h3>` +
    `<p class="note">${plural(a.avus.length, "value")}, ${plural(a.events.length, "change")}</p>${input.charts.attributes[i] ?? ""}</section>`
  ).join("\n")
  const rows = [...timeline.events].reverse().map((e) =>
    `<tr data-kind="${e.kind}"><td class="time">${esc(when(e.row.ts))}</td><td>${eventLabel(e)}</td><td class="text">${esc(e.attribute)}</td>` +
    `<td class="text">${esc(e.row.value)}</td><td class="text">${esc(e.row.unit)}</td><td>${esc(e.row.actor)}</td>` +
    `<td class="num">${e.row.snapshotId}</td><td class="text">${esc(e.row.source)}</td>` +
    `<td class="text">${e.row.irodsPath === path ? "" : esc(e.row.irodsPath)}</td></tr>`
  ).join("\n")
  return `${head}
<p class="note">One row per value an attribute had; a bar for each stretch of valid time (UTC) it was in effect,
coloured by who put it there, from ${esc(iso(timeline.first))} to the report's time. Marks: each change (a set where a
snapshot replaced an attribute's values; a rename where the object arrived here from another path, named in the table
below). Hover a bar or a mark for its details.</p>
${truncated}
<div class="legends"><div class="legend" data-legend="actors"><span class="legend-title">actors</span>${input.charts.legends.actors}</div>
<div class="legend" data-legend="kinds"><span class="legend-title">changes</span>${input.charts.legends.kinds}</div></div>
${attributes}
<details class="changes"><summary>All ${plural(timeline.events.length, "change")} of this path, newest first</summary>
<table class="events"><thead><tr><th>valid time (UTC)</th><th>change</th><th>attribute</th><th>value</th><th>unit</th>
<th>actor</th><th class="num">snapshot</th><th>source</th><th>earlier path</th></tr></thead><tbody>
${rows}
</tbody></table></details></section>`
}

const count = (name: string, label: string, value: string | number) =>
  `<div data-count="${name}"><dt>${label}</dt><dd>${esc(typeof value === "number" ? value.toLocaleString("en-US") : value)}</dd></div>`

const overviewSection = (input: PageInput): string => {
  const o = input.overview
  const truncated = o.truncated
    ? `<p class="warning">Counted over the newest ${plural(o.changes, "change")}; the project has more.</p>`
    : ""
  const day = (d: Date | undefined) => (d === undefined ? "–" : d.toISOString().slice(0, 10))
  return `<section id="overview"><h2>Project overview</h2>
${truncated}
<dl class="counts">${count("changes", "changes", o.changes)}${count("adds", "adds", o.adds)}${count("deletes", "deletes", o.deletes)}
${count("paths", "paths", o.paths)}${count("attributes", "attributes", o.attributes)}${count("actors", "actors", o.actors)}
${count("snapshots", "snapshots", input.snapshots.length)}${count("first", "first change", day(o.first))}${count("last", "last change", day(o.last))}</dl>
<figure data-chart="per-day"><figcaption>Changes per day (valid time, UTC days)</figcaption>${input.charts.perDay}</figure>
<div class="pair"><figure data-chart="top-attributes"><figcaption>Top attributes (changes)</figcaption>${input.charts.topAttributes}</figure>
<figure data-chart="top-actors"><figcaption>Top actors (changes)</figcaption>${input.charts.topActors}</figure></div>
</section>`
}

const snapshotsSection = (input: PageInput): string => {
  const touched = new Set(input.timeline?.events.map((e) => e.row.snapshotId) ?? [])
  const rows = input.snapshots.map((s) =>
    `<tr data-snapshot="${s.snapshotId}"${touched.has(s.snapshotId) ? ` class="touches-path"` : ""}><td class="num">${s.snapshotId}</td>` +
    `<td class="time">${esc(when(s.ts))}</td><td>${esc(s.actor)}</td><td class="num">${s.changeCount}</td><td class="text">${esc(s.note)}</td></tr>`
  ).join("\n")
  const more = input.snapshotsTruncated ? `<p class="warning">Only the newest ${plural(input.snapshots.length, "snapshot")} are listed.</p>` : ""
  const hint = touched.size > 0 ? " Highlighted: snapshots that changed this path." : ""
  return `<section id="snapshots"><h2>Snapshots</h2>
<p class="note">${plural(input.snapshots.length, "snapshot")}, newest first; committed is transaction time.${hint}</p>${more}
<table class="snapshots"><thead><tr><th class="num">snapshot</th><th>committed (UTC)</th><th>author</th><th class="num">changes</th><th>note</th></tr></thead>
<tbody>
${rows}
</tbody></table></section>`
}

/** The whole page. */
export const renderPage = (input: PageInput): string => {
  const { project, path } = input
  const subject = path === undefined ? project.irodsPath : path
  const heading = path === undefined
    ? `History of project <code>${esc(project.irodsPath)}</code>`
    : `AVU history of <code>${esc(path)}</code>`
  const nav = [
    path === undefined ? "" : `<a href="#timeline">Timeline</a>`,
    `<a href="#overview">Project overview</a>`,
    `<a href="#snapshots">Snapshots</a>`
  ].join("")
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="${CSP}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="mesa-ducklake report">
<title>${esc(`History of ${subject} — mesa-ducklake`)}</title>
<style>${STYLE}</style>
</head>
<body>
<header>
<h1>${heading}</h1>
<p class="meta">project <code>${esc(project.irodsPath)}</code> · id <code>${esc(project.projectId)}</code> · ${esc(project.status)}
· generated ${esc(iso(input.generatedAt))}</p>
<nav>${nav}</nav>
</header>
<main>
${timelineSection(input)}
${overviewSection(input)}
${snapshotsSection(input)}
</main>
<footer>mesa-ducklake report: valid time is when a change happened in iRODS; transaction time is when its snapshot was
committed. Drawn with Observable Plot; this page loads nothing from the network.</footer>
</body>
</html>
`
}
