/**
 * The charting packages are optional and loaded only by a report: importing "mesa-ducklake" never resolves
 * @observablehq/plot, linkedom or d3, and without them a report fails with `ReportError { reason:
 * "missing-dependency" }` naming what to install, before reading anything. Checked in a child process whose module
 * resolution refuses those packages (fixtures/no-charting.mjs), running the source through tsx.
 */
import { spawnSync } from "node:child_process"
import * as nodePath from "node:path"
import { describe, expect, it } from "vitest"
import { REPO } from "./support.js"

const FIXTURES = nodePath.join(REPO, "test/report/fixtures")

describe("the report's charting packages", () => {
  it("are not loaded by importing the package, and their absence is a typed missing-dependency error", () => {
    const r = spawnSync(
      process.execPath,
      ["--import", "tsx", "--import", "./no-charting.mjs", "import-check.ts"],
      { cwd: FIXTURES, encoding: "utf8", timeout: 60_000 }
    )
    expect(r.status, r.stderr).toBe(0)
    const stderr = r.stderr.split("\n").filter((l) => l.startsWith("imported") || l.startsWith("blocked-import:"))
    // Nothing tried to resolve them before the import finished; the report tried, and was refused.
    expect(stderr[0]).toBe("imported")
    expect(stderr.slice(1).sort()).toEqual(["blocked-import: @observablehq/plot", "blocked-import: linkedom"])
    const out = JSON.parse(r.stdout.trim())
    expect(out).toMatchObject({ tag: "ReportError", reason: "missing-dependency" })
    expect(out.message).toContain("npm install @observablehq/plot linkedom")
  })
})
