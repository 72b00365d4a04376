/** The Promise facade, as a caller without Effect uses it, on a real embedded PostgreSQL. */
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { Effect, Exit, Redacted, Scope } from "effect"
import * as fs from "node:fs"
import * as nodePath from "node:path"
import * as EmbeddedPostgres from "../src/postgres/EmbeddedPostgres.js"
import { openDuckLake } from "../src/facade.js"
import { change, tempDirs } from "./support.js"

const dirs = tempDirs("facade")
let dsn = ""
let scope: Scope.CloseableScope

beforeAll(async () => {
  scope = Effect.runSync(Scope.make())
  const pg = await Effect.runPromise(Scope.extend(EmbeddedPostgres.make(), scope))
  dsn = Redacted.value(pg.dsn)
})
afterAll(async () => {
  await Effect.runPromise(Scope.close(scope, Exit.void))
  fs.rmSync(dirs.base, { recursive: true, force: true })
})

describe("openDuckLake", () => {
  it("records and reads with plain promises, and rejects with our tagged errors", async () => {
    await using lake = await openDuckLake({ dsn, storage: { mountRoot: dirs.zoneDir }, cacheDir: dirs.cacheDir })
    expect(lake.recording).toBe(true)
    const p = await lake.registerProject({ irodsPath: "/fz/home/bob/proj", actor: "bob" })
    const r = await lake.recordChanges({ projectId: p.projectId, actor: "bob", changes: [change("/fz/home/bob/proj/o", "k", "v")] })
    expect(r.recorded).toBe(true)
    expect((await lake.getAvus(p.projectId, "/fz/home/bob/proj/o")).map((a) => a.value)).toEqual(["v"])
    expect((await lake.listProjects()).map((x) => x.projectId)).toEqual([p.projectId])
    expect(fs.existsSync(nodePath.join(dirs.zoneDir, "fz/home/bob/proj/.mesa/ducklake/main/avu_changes"))).toBe(true)
    const err = await lake.recordChanges({ projectId: p.projectId, actor: "bob", changes: [] }).catch((e) => e)
    expect(err._tag).toBe("InvalidChange")
    expect(err.field).toBe("changes")
    const nf = await lake.getProject("00000000-0000-4000-8000-000000000000").catch((e) => e)
    expect(nf._tag).toBe("ProjectNotFound")
  })

  it("without a DSN: not recorded, reads reject with CatalogUnavailable", async () => {
    const lake = await openDuckLake({ storage: { mountRoot: dirs.zoneDir }, cacheDir: dirs.cacheDir })
    expect(lake.recording).toBe(false)
    expect(await lake.recordChanges({ projectId: "x", actor: "a", changes: [change("/z/o", "k", "v")] })).toEqual({
      recorded: false,
      reason: "no-catalog"
    })
    const e = await lake.getAvus("x", "/z/o").catch((x) => x)
    expect(e._tag).toBe("CatalogUnavailable")
    await lake.close()
    await lake.close() // idempotent
  })
})
