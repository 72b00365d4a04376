/**
 * `mesa-ducklake report` as a user runs it (the built CLI in a child process, a real PostgreSQL and a directory as
 * the zone): the page written whole to `--out` (or stdout with `--out -`) and what it holds, read back through a DOM;
 * a project report by id; a path outside every project (exit 2), an unwritable `--out` (exit 5) and missing charting
 * packages (exit 3) leave no file behind.
 */
import * as fs from "node:fs"
import * as nodePath from "node:path"
import { parseHTML } from "linkedom"
import { describe, expect, it } from "vitest"
import { cliFixture, runCli, stderrJson } from "../cli/support.js"
import { REPO } from "./support.js"

const fx = cliFixture("report", "rep")
const day = (d: number) => new Date(Date.UTC(2026, 10, d, 9)).toISOString()
const ndjson = (rows: ReadonlyArray<object>) => rows.map((r) => JSON.stringify(r)).join("\n") + "\n"

/** Bars per attribute chart, and the snapshot rows, as a DOM reads them. */
const readPage = (html: string) => {
  const { document } = parseHTML(html)
  return {
    bars: Object.fromEntries(
      [...document.querySelectorAll("section.attribute")].map((s) => [
        s.querySelector("h3")?.textContent,
        s.querySelectorAll('g[aria-label="bar"] rect').length
      ])
    ),
    snapshotNotes: [...document.querySelectorAll("table.snapshots tbody tr")].map((tr) => tr.querySelectorAll("td")[4]?.textContent),
    changes: document.querySelector('[data-count="changes"] dd')?.textContent,
    scripts: document.querySelectorAll("script").length
  }
}

const filesIn = (dir: string) => fs.readdirSync(dir).sort()

describe("mesa-ducklake report", () => {
  it("writes the page of a path, of a project, to a file or stdout; refuses cleanly", async () => {
    const p = await fx.register()
    const obj = `${p.irods_path}/run-7/reads.fastq`
    const row = (attribute: string, value: string, op: string, actor: string, d: number) => ({
      irods_path: obj,
      target_type: "data_object",
      attribute,
      value,
      op,
      actor,
      ts: day(d)
    })
    const rec = async (rows: ReadonlyArray<object>, actor: string, note: string) => {
      const r = await runCli(["record", "--actor", actor, "--note", note, "--json"], { env: fx.env, stdin: ndjson(rows) })
      expect(r.code, r.stderr).toBe(0)
    }
    await rec([row("organism", "E. coli", "add", "alice", 1), row("quality", "low", "add", "alice", 1)], "alice", "import")
    await rec([row("quality", "high", "set", "bob", 2)], "bob", "re-run <b>QC</b>")
    await rec([row("organism", "E. coli", "delete", "alice", 3)], "alice", "wrong organism")

    const out = nodePath.join(fx.dir, "pages")
    fs.mkdirSync(out)
    const file = nodePath.join(out, "reads.html")
    const r = await runCli(["report", "--out", file, "--json", obj], { env: fx.env })
    expect(r.code, r.stderr).toBe(0)
    const summary = JSON.parse(r.stdout)
    const html = fs.readFileSync(file, "utf8")
    expect(summary).toMatchObject({
      file,
      bytes: Buffer.byteLength(html),
      project_id: p.project_id,
      path: obj,
      path_changes: 5,
      attributes: 2,
      bars: 3,
      project_changes: 5,
      snapshots: 3,
      truncated: { path: false, project: false, snapshots: false }
    })
    expect(summary.render_ms).toBeGreaterThan(0)
    expect(filesIn(out)).toEqual(["reads.html"]) // no temporary file left beside it
    const page = readPage(html)
    expect(page.bars).toEqual({ organism: 1, quality: 2 })
    expect(page.snapshotNotes).toEqual(["wrong organism", "re-run <b>QC</b>", "import"])
    expect(page.changes).toBe("5")
    expect(page.scripts).toBe(0)
    expect(html).toContain("re-run &lt;b&gt;QC&lt;/b&gt;")

    // The human summary names the file; a project report (by id) to stdout has no timeline.
    const human = await runCli(["report", "--out", file, obj], { env: fx.env })
    expect(human.code, human.stderr).toBe(0)
    expect(human.stdout).toMatch(new RegExp(`^report: +${file}$`, "m"))
    expect(human.stdout).toMatch(/^timeline: +5 changes, 2 attributes, 3 bars$/m)
    const stdout = await runCli(["report", "--out", "-", p.project_id], { env: fx.env })
    expect(stdout.code, stdout.stderr).toBe(0)
    expect(stdout.stdout.startsWith("<!doctype html>")).toBe(true)
    expect(readPage(stdout.stdout)).toMatchObject({ bars: {}, changes: "5" })
    expect(stdout.stdout).not.toContain('id="timeline"')

    // Refusals: nothing written.
    const missing = nodePath.join(out, "missing.html")
    const outside = await runCli(["report", "--out", missing, "/cliZone/home/nobody/x.csv"], { env: fx.env })
    expect(outside.code).toBe(2)
    expect(stderrJson(outside).code).toBe("ProjectNotFound")
    const unwritable = await runCli(["report", "--out", nodePath.join(out, "no-such-dir", "r.html"), obj], { env: fx.env })
    expect(unwritable.code).toBe(5)
    expect(stderrJson(unwritable).code).toBe("ReportWriteFailed")
    const noCharts = await runCli(["report", "--out", missing, obj], {
      env: { ...fx.env, NODE_OPTIONS: `--import ${nodePath.join(REPO, "test/report/fixtures/no-charting.mjs")}` }
    })
    expect(noCharts.code, noCharts.stderr).toBe(3)
    expect(stderrJson(noCharts)).toMatchObject({ code: "ReportError" })
    expect(stderrJson(noCharts).message).toContain("npm install @observablehq/plot linkedom")
    expect(filesIn(out)).toEqual(["reads.html"])
    const cut = await runCli(["report", "--max-path-changes", "2", "--max-snapshots", "1", "--json", "--out", missing, obj], { env: fx.env })
    expect(cut.code, cut.stderr).toBe(0)
    expect(JSON.parse(cut.stdout)).toMatchObject({ path_changes: 2, snapshots: 1, truncated: { path: true, project: false, snapshots: true } })
    fs.rmSync(missing)
    const bad = await runCli(["report", "--max-changes", "0", "--out", missing, obj], { env: fx.env })
    expect(bad.code).toBe(1)
    expect(stderrJson(bad).code).toBe("InvalidChange")
    expect(filesIn(out)).toEqual(["reads.html"])
  }, 180_000)
})
