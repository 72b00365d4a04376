/**
 * The history report in a real headless Chromium (Debian's, driven by playwright-core): a known history with a
 * set, a delete, a rename and hostile strings is drawn; the page is opened from disk and what it shows — bars per
 * attribute and their actors' colours, change marks, legends, the change and snapshot tables, the overview's counts
 * and charts — is checked against that history. The page makes no request, runs no script and shows every hostile
 * string as text. The page and a screenshot are kept in .ci/results/report/ (report.html, report.png).
 */
import { expect, layer } from "@effect/vitest"
import { Effect } from "effect"
import * as fs from "node:fs"
import * as nodePath from "node:path"
import type { Browser } from "playwright-core"
import { afterAll, beforeAll } from "vitest"
import { DuckLakeClient } from "../../src/client/DuckLakeClient.js"
import { renderReport } from "../../src/report/Report.js"
import { change, embedded, record, registerFresh } from "../support.js"
import { ARTIFACTS, ensureChromium, launchChromium, openPage, summarise } from "./support.js"

const { layer: Live } = embedded("report")

const day = (d: number) => new Date(Date.UTC(2026, 10, d, 10)).toISOString()
const HOSTILE_VALUE = "<script>alert(1)</script>"
const HOSTILE_ATTRIBUTE = "<img src=x onerror=alert(2)>"
const CAROL = `carol "<i>c</i>" & co`
const HOSTILE_NOTE = "<script>alert(3)</script>"

let browser: Browser | undefined
beforeAll(async () => {
  ensureChromium()
  browser = await launchChromium()
}, 15 * 60_000)
afterAll(async () => {
  await browser?.close()
})

/**
 * The known history. X = site-1/sample.csv, renamed to Y = site-1/sample-final.csv on day 4; Z another object.
 *   day 1 alice  "first survey": X depth=10 cm, status=raw, owner=lab; Z depth=3 cm
 *   day 2 bob    "QC pass":      X depth set 12 cm (stored: delete 10 cm, add 12 cm)
 *   day 3 carol  hostile note:   X delete status=raw; add HOSTILE_ATTRIBUTE=HOSTILE_VALUE
 *   day 4 dave   rename X → Y (3 deletes at X, 3 adds at Y)
 *   day 5 alice  (no note):      Y delete owner=lab
 */
const knownHistory = Effect.gen(function*() {
  const c = yield* DuckLakeClient
  const p = yield* registerFresh("report")
  const x = `${p.irodsPath}/site-1/sample.csv`
  const y = `${p.irodsPath}/site-1/sample-final.csv`
  const z = `${p.irodsPath}/site-2/other.csv`
  const at = (d: number, actor: string) => ({ ts: day(d), actor })
  yield* record(p.projectId, [
    change(x, "depth", "10", "add", { unit: "cm", ...at(1, "alice") }),
    change(x, "status", "raw", "add", at(1, "alice")),
    change(x, "owner", "lab", "add", at(1, "alice")),
    change(z, "depth", "3", "add", { unit: "cm", ...at(1, "alice") })
  ], "alice", "first survey")
  yield* record(p.projectId, [change(x, "depth", "12", "set", { unit: "cm", ...at(2, "bob") })], "bob", "QC pass")
  yield* record(p.projectId, [
    change(x, "status", "raw", "delete", at(3, CAROL)),
    change(x, HOSTILE_ATTRIBUTE, HOSTILE_VALUE, "add", at(3, CAROL))
  ], CAROL, HOSTILE_NOTE)
  yield* c.recordRename({ projectId: p.projectId, actor: "dave", from: x, to: y, ts: day(4), note: "moved to final" })
  yield* record(p.projectId, [change(y, "owner", "lab", "delete", at(5, "alice"))], "alice")
  return { p, x, y, z }
})

layer(Live, { timeout: "300 seconds", excludeTestServices: true })("the history report in Chromium", (it) => {
  it.effect("shows each AVU's timeline, the snapshots and the overview of a known history, hostile strings as text", () =>
    Effect.gen(function*() {
      const c = yield* DuckLakeClient
      const { p, x, y } = yield* knownHistory
      const snapshots = yield* c.listSnapshots(p.projectId)

      const started = performance.now()
      const report = yield* renderReport(c, y)
      const renderMs = performance.now() - started
      // Once more, with the charting packages loaded and the files cached: a report's own cost.
      const again = performance.now()
      expect((yield* renderReport(c, y)).counts).toEqual(report.counts)
      const warmMs = performance.now() - again
      expect(report.counts).toEqual({ pathChanges: 11, attributes: 4, bars: 8, projectChanges: 15, snapshots: snapshots.length })
      expect(report.truncated).toEqual({ path: false, project: false, snapshots: false })
      fs.mkdirSync(ARTIFACTS, { recursive: true })
      const file = nodePath.join(ARTIFACTS, "report.html")
      fs.writeFileSync(file, report.html)
      const bytes = Buffer.byteLength(report.html)
      const metrics = { bytes, renderMs: Math.round(renderMs), warmMs: Math.round(warmMs) }
      fs.writeFileSync(nodePath.join(ARTIFACTS, "metrics.json"), JSON.stringify(metrics, null, 2))
      console.log(`report: ${bytes} bytes, drawn in ${metrics.renderMs} ms (first of the process), ${metrics.warmMs} ms again`)
      expect(bytes).toBeLessThan(400_000)

      const opened = yield* Effect.promise(() => openPage(browser!, file))
      const page = yield* Effect.promise(() => summarise(opened.page))
      yield* Effect.promise(() => opened.page.screenshot({ path: nodePath.join(ARTIFACTS, "report.png"), fullPage: true }))
      yield* Effect.promise(() => opened.page.close())

      // Nothing but the page itself was requested; nothing ran; no error (a CSP violation would log one).
      expect(opened.requests).toEqual([`file://${file}`])
      expect(opened.dialogs).toEqual([])
      expect(opened.errors).toEqual([])
      expect(page.elementCounts).toEqual({ script: 0, img: 0, i: 0, iframe: 0, link: 0 })
      expect(page.sections).toEqual(["timeline", "overview", "snapshots"])
      expect(page.title).toBe(`History of ${y} — mesa-ducklake`)

      // A chart per attribute (names sorted), with one bar per stretch of time an AVU was in effect.
      const byName = Object.fromEntries(page.attributes.map((a) => [a.name, a]))
      expect(page.attributes.map((a) => a.name)).toEqual([HOSTILE_ATTRIBUTE, "depth", "owner", "status"])
      expect(page.attributes.map((a) => a.dataAttribute)).toEqual([HOSTILE_ATTRIBUTE, "depth", "owner", "status"])
      const barActors = (name: string) => byName[name]!.bars.map((b) => /\bby (.*) at \d{4}-/.exec(b.title)?.[1])
      expect(barActors("depth")).toEqual(["alice", "bob", "dave"])
      expect(barActors(HOSTILE_ATTRIBUTE)).toEqual([CAROL, "dave"])
      expect(barActors("owner")).toEqual(["alice", "dave"])
      expect(barActors("status")).toEqual(["alice"])
      expect(byName["depth"]!.ticks).toEqual(["10 [cm]", "12 [cm]"])
      expect(byName[HOSTILE_ATTRIBUTE]!.ticks).toEqual([HOSTILE_VALUE])
      // How each bar began and ended, and where the object was.
      const depth = byName["depth"]!.bars.map((b) => b.title)
      expect(depth[0]).toContain(`add by alice at ${day(1).replace(".000Z", "Z")}`)
      expect(depth[0]).toContain(`until ${day(2).replace(".000Z", "Z")} (set)`)
      expect(depth[0]).toContain(`on ${x}`)
      expect(depth[1]).toContain("set by bob")
      expect(depth[1]).toContain("(rename)")
      expect(depth[2]).toContain("rename by dave")
      expect(depth[2]).toContain("still in effect")
      expect(depth[2]).toContain(`on ${y}`)
      expect(byName["owner"]!.bars[1]!.title).toContain(`until ${day(5).replace(".000Z", "Z")} (delete)`)
      expect(byName["status"]!.bars[0]!.title).toContain("(delete)")

      // Colours: every bar has its actor's colour in the legend, and the actors' colours differ.
      expect(page.actorLegend.map((l) => l.name)).toEqual(["alice", "bob", CAROL, "dave"])
      const colorOf = Object.fromEntries(page.actorLegend.map((l) => [l.name, l.color]))
      expect(new Set(Object.values(colorOf)).size).toBe(4)
      for (const a of page.attributes) {
        a.bars.forEach((b, i) => expect(b.fill, `${a.name} bar ${i}`).toBe(colorOf[barActors(a.name)[i]!]))
      }

      // A mark per change, by kind.
      const marks = (name: string) => byName[name]!.marks.map((t) => t.split(":")[0])
      expect(marks("depth")).toEqual(["add", "set (replaced)", "set", "rename"])
      expect(marks(HOSTILE_ATTRIBUTE)).toEqual(["add", "rename"])
      expect(marks("owner")).toEqual(["add", "rename", "delete"])
      expect(marks("status")).toEqual(["add", "delete"])
      expect(page.kindLegend).toEqual(["add", "delete", "set", "rename"])

      // The change table: 11 changes of the path, newest first; the earlier path named on the rows from before the
      // move; hostile strings as text.
      expect(page.eventKinds).toEqual(["delete", "rename", "rename", "rename", "add", "delete", "set", "set", "add", "add", "add"])
      expect(page.events[0]!.slice(0, 6)).toEqual(["2026-11-05 10:00:00Z", "delete", "owner", "lab", "", "alice"])
      expect(page.events.filter((r) => r[2] === "depth").map((r) => `${r[1]} ${r[3]}`)).toEqual([
        "rename 12",
        "set 12",
        "set (replaced) 10",
        "add 10"
      ])
      const hostileRow = page.events.find((r) => r[2] === HOSTILE_ATTRIBUTE && r[1] === "add")!
      expect(hostileRow.slice(3, 6)).toEqual([HOSTILE_VALUE, "", CAROL])
      expect(hostileRow[8]).toBe(x)
      expect(page.events.filter((r) => r[8] === "").length).toBe(4) // the rename's 3 adds at Y and the delete there

      // Snapshots: all of them, newest first, with authors and notes.
      expect(page.snapshots.map((r) => r[0])).toEqual(snapshots.map((s) => String(s.snapshotId)))
      expect(page.snapshots.map((r) => r[2])).toEqual(snapshots.map((s) => s.actor))
      expect(page.snapshots.map((r) => r[3])).toEqual(snapshots.map((s) => String(s.changeCount)))
      expect(page.snapshots.slice(0, 5).map((r) => [r[2], r[4]])).toEqual([
        ["alice", ""],
        ["dave", "moved to final"],
        [CAROL, HOSTILE_NOTE],
        ["bob", "QC pass"],
        ["alice", "first survey"]
      ])

      // The project overview.
      expect(page.counts).toEqual({
        changes: "15",
        adds: "9",
        deletes: "6",
        paths: "3",
        attributes: "4",
        actors: "4",
        snapshots: String(snapshots.length),
        first: "2026-11-01",
        last: "2026-11-05"
      })
      expect(page.perDay).toEqual([
        "2026-11-01: 4 adds",
        "2026-11-02: 1 add",
        "2026-11-02: 1 delete",
        "2026-11-03: 1 add",
        "2026-11-03: 1 delete",
        "2026-11-04: 3 adds",
        "2026-11-04: 3 deletes",
        "2026-11-05: 1 delete"
      ])
      expect(page.topAttributes).toEqual(["depth: 6", "owner: 4", `${HOSTILE_ATTRIBUTE}: 3`, "status: 2"])
      expect(page.topActors).toEqual(["dave: 6", "alice: 5", "bob: 2", `${CAROL}: 2`])
      expect(fs.statSync(nodePath.join(ARTIFACTS, "report.png")).size).toBeGreaterThan(20_000)
    }))

  it.effect("a project report (by id) has the overview and the snapshots, no timeline", () =>
    Effect.gen(function*() {
      const c = yield* DuckLakeClient
      const { p } = yield* knownHistory
      const report = yield* renderReport(c, p.projectId)
      expect(report.path).toBeUndefined()
      const file = nodePath.join(ARTIFACTS, "project-report.html")
      fs.mkdirSync(ARTIFACTS, { recursive: true })
      fs.writeFileSync(file, report.html)
      const opened = yield* Effect.promise(() => openPage(browser!, file))
      const page = yield* Effect.promise(() => summarise(opened.page))
      yield* Effect.promise(() => opened.page.close())
      expect(opened.requests).toEqual([`file://${file}`])
      expect(opened.errors).toEqual([])
      expect(page.sections).toEqual(["overview", "snapshots"])
      expect(page.attributes).toEqual([])
      expect(page.counts["changes"]).toBe("15")
      expect(page.topActors).toEqual(["dave: 6", "alice: 5", "bob: 2", `${CAROL}: 2`])
    }))

  it.effect("a path without history says so; limits cut the history to the newest rows and the page says so", () =>
    Effect.gen(function*() {
      const c = yield* DuckLakeClient
      const { p, y } = yield* knownHistory
      const empty = yield* renderReport(c, `${p.irodsPath}/site-9/never-touched.csv`)
      expect(empty.counts).toMatchObject({ pathChanges: 0, attributes: 0, bars: 0, projectChanges: 15 })
      expect(empty.html).toContain(`data-empty="timeline">No AVU changes are recorded for this path.`)
      const report = yield* renderReport(c, y, { maxChanges: 5, maxPathChanges: 3, maxSnapshots: 2 })
      expect(report.truncated).toEqual({ path: true, project: true, snapshots: true })
      expect(report.counts).toMatchObject({ pathChanges: 3, projectChanges: 5, snapshots: 2 })
      expect(report.html).toContain("Only the newest 3 changes of this path are drawn")
      expect(report.html).toContain("Counted over the newest 5 changes; the project has more.")
      expect(report.html).toContain("Only the newest 2 snapshots are listed.")
      const bad = yield* Effect.flip(renderReport(c, y, { maxChanges: 0 }))
      expect(bad._tag).toBe("InvalidChange")
      const outside = yield* Effect.flip(renderReport(c, "/elsewhere/x.csv"))
      expect(outside._tag).toBe("ProjectNotFound")
      const relative = yield* Effect.flip(renderReport(c, ""))
      expect(relative._tag).toBe("InvalidChange")
    }))
})
