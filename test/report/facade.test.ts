/**
 * The report without Effect: `renderReportAsync` over the Promise facade (`openDuckLake`), on a real embedded
 * PostgreSQL, as the README's "Without Effect" caller would use it; rejections are our tagged errors.
 */
import { Effect, Exit, Redacted, Scope } from "effect"
import * as fs from "node:fs"
import { parseHTML } from "linkedom"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import * as EmbeddedPostgres from "../../src/postgres/EmbeddedPostgres.js"
import { openDuckLake, renderReportAsync } from "../../src/index.js"
import { change, tempDirs } from "../support.js"

const dirs = tempDirs("report-facade")
let dsn = ""
let scope: Scope.CloseableScope

beforeAll(async () => {
  scope = Effect.runSync(Scope.make())
  const pg = await Effect.runPromise(Scope.extend(EmbeddedPostgres.make(), scope))
  dsn = Redacted.value(pg.dsn)
}, 120_000)
afterAll(async () => {
  await Effect.runPromise(Scope.close(scope, Exit.void))
  fs.rmSync(dirs.base, { recursive: true, force: true })
})

describe("renderReportAsync", () => {
  it("draws a path's page from the Promise client and rejects with tagged errors", async () => {
    await using lake = await openDuckLake({ dsn, storage: { mountRoot: dirs.zoneDir }, cacheDir: dirs.cacheDir })
    const p = await lake.registerProject({ irodsPath: "/fz/home/erin/proj", actor: "erin" })
    const obj = "/fz/home/erin/proj/o.csv"
    await lake.recordChanges({ projectId: p.projectId, actor: "erin", changes: [change(obj, "k", "v1", "add", { actor: "erin" })] })
    await lake.recordChanges({ projectId: p.projectId, actor: "frank", note: "fix", changes: [change(obj, "k", "v2", "set", { actor: "frank" })] })

    const report = await renderReportAsync(lake, obj)
    expect(report.counts).toMatchObject({ pathChanges: 3, attributes: 1, bars: 2, projectChanges: 3, snapshots: 2 })
    const { document } = parseHTML(report.html)
    expect(document.querySelectorAll('section.attribute g[aria-label="bar"] rect').length).toBe(2)
    expect([...document.querySelectorAll("table.snapshots tbody tr td:nth-child(5)")].map((td) => td.textContent)).toEqual(["fix", ""])

    const nf = await renderReportAsync(lake, "/fz/home/nobody/x").catch((e) => e)
    expect(nf._tag).toBe("ProjectNotFound")
    const bad = await renderReportAsync(lake, obj, { maxSnapshots: 1.5 }).catch((e) => e)
    expect(bad._tag).toBe("InvalidChange")
    expect(bad.field).toBe("maxSnapshots")
  }, 120_000)
})
