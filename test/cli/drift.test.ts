/**
 * `drift` and `project find --discover` against the fake iRODS 4.2.8 server: the built CLI uses native iRODS
 * storage (`MESA_DUCKLAKE_STORAGE=irods`) and a real embedded PostgreSQL. AVUs "added outside the library" are
 * written with the iRODS client straight into the zone, as iCommands would.
 */
import { Effect, type ManagedRuntime, ManagedRuntime as MR } from "effect"
import * as fs from "node:fs"
import * as nodePath from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { DRIFT_SOURCE } from "../../src/operations/drift.js"
import { IrodsClient, type AvuTarget } from "../../src/irods/IrodsClient.js"
import { type FakeIrodsServer, startFakeIrods } from "../fake-irods/FakeIrods.js"
import { fakeLogin } from "../irods/helpers.js"
import { ensureBuilt, runCli, startPostgres, stderrJson, tempDir } from "./support.js"

let pg: Awaited<ReturnType<typeof startPostgres>>
let server: FakeIrodsServer
let work: ReturnType<typeof tempDir>
let env: Record<string, string>
let irods: ManagedRuntime.ManagedRuntime<IrodsClient, never>

/** iCommands-like access to the fake zone, outside mesa-ducklake. */
const icommand = <A, E>(f: (c: IrodsClient["Type"]) => Effect.Effect<A, E>) => irods.runPromise(Effect.flatMap(IrodsClient, f))
const put = (path: string) =>
  icommand((c) =>
    Effect.gen(function*() {
      const local = nodePath.join(work.dir, "upload.txt")
      fs.writeFileSync(local, `contents of ${path}`)
      yield* c.collCreate(nodePath.posix.dirname(path))
      yield* c.put(local, path)
    })
  )
const avu = (op: "add" | "remove", target: AvuTarget, name: string, value: string, units = "") =>
  icommand((c) => (op === "add" ? c.addAvu : c.removeAvu)(target, { name, value, units }))

beforeAll(async () => {
  await ensureBuilt()
  server = await startFakeIrods({ zone: "testZone", users: { rods: "rods" } })
  pg = await startPostgres()
  work = tempDir("drift")
  env = {
    MESA_DUCKLAKE_DSN: pg.dsn,
    MESA_DUCKLAKE_STORAGE: "irods",
    MESA_DUCKLAKE_IRODS_HOST: server.host,
    MESA_DUCKLAKE_IRODS_PORT: String(server.port),
    MESA_DUCKLAKE_IRODS_ZONE: "testZone",
    MESA_DUCKLAKE_IRODS_USER: "rods",
    MESA_DUCKLAKE_IRODS_PASSWORD: "rods",
    MESA_DUCKLAKE_IRODS_ENV_FILE: nodePath.join(work.dir, "no-irods-environment.json"),
    MESA_DUCKLAKE_CACHE_DIR: nodePath.join(work.dir, "cache")
  }
  irods = MR.make(IrodsClient.layer(fakeLogin(server, { retryBase: "10 millis" })))
}, 300_000)

afterAll(async () => {
  await irods?.dispose()
  await pg?.close()
  await server?.stop()
  work?.remove()
})

describe("drift", () => {
  it("reports an AVU added outside the library, records it with --record, and then reports nothing", async () => {
    const root = "/testZone/home/rods/survey"
    const obj = `${root}/site-1/sample.csv`
    await put(obj)
    const reg = await runCli(["project", "register", "--actor", "rods", "--json", root], { env })
    expect(reg.code, reg.stderr).toBe(0)
    const project = JSON.parse(reg.stdout)

    // mesa-mcp's way: write in iRODS and mirror into the history.
    await avu("add", { type: "data_object", path: obj }, "depth", "10", "cm")
    await avu("add", { type: "data_object", path: obj }, "crop", "wheat")
    const rec = await runCli(["record"], {
      env,
      stdin: [
        { irods_path: obj, target_type: "data_object", attribute: "depth", value: "10", unit: "cm", op: "add", actor: "rods" },
        { irods_path: obj, target_type: "data_object", attribute: "crop", value: "wheat", op: "add", actor: "rods" }
      ].map((c) => JSON.stringify(c)).join("\n")
    })
    expect(rec.code, rec.stderr).toBe(0)
    const clean = await runCli(["drift", root], { env })
    expect(clean.code, clean.stderr).toBe(0)
    expect(clean.stdout).toContain("no drift: 2 AVUs in iRODS")

    // Outside the library (iCommands, the portal): an AVU added to the object and one to a collection, one removed.
    await avu("add", { type: "data_object", path: obj }, "reviewed", "yes")
    await avu("add", { type: "collection", path: `${root}/site-1` }, "site", "north field")
    await avu("remove", { type: "data_object", path: obj }, "crop", "wheat")

    const found = await runCli(["drift", "--json", project.project_id], { env })
    expect(found.code, found.stderr).toBe(0)
    const report = JSON.parse(found.stdout)
    expect(report.renames).toEqual([])
    expect(report.paths).toEqual([
      {
        irods_path: `${root}/site-1`,
        target_type: "collection",
        object_id: expect.any(Number),
        extra: [{ attribute: "site", value: "north field", unit: "" }],
        missing: []
      },
      {
        irods_path: obj,
        target_type: "data_object",
        object_id: expect.any(Number),
        extra: [{ attribute: "reviewed", value: "yes", unit: "" }],
        missing: [{ attribute: "crop", value: "wheat", unit: "" }]
      }
    ])
    const table = await runCli(["drift", root], { env })
    expect(table.stdout).toMatch(/sample\.csv\s+data_object\s+extra \(in iRODS only\)\s+reviewed\s+yes/)
    expect(table.stdout).toMatch(/sample\.csv\s+data_object\s+missing \(history only\)\s+crop\s+wheat/)

    const recorded = await runCli(["drift", "--record", "--actor", "operator", "--json", root], { env })
    expect(recorded.code, recorded.stderr).toBe(0)
    const r = JSON.parse(recorded.stdout)
    expect(r.recorded).toBe(true)
    expect(r.snapshot_id).toBeGreaterThan(0)

    const after = await runCli(["drift", "--json", root], { env })
    expect(JSON.parse(after.stdout).paths).toEqual([])

    // The history now says where those changes came from.
    const history = await runCli(["history", "--json", obj], { env })
    const rows = JSON.parse(history.stdout)
    expect(rows.filter((h: any) => h.source === DRIFT_SOURCE).map((h: any) => `${h.op} ${h.attribute}=${h.value} by ${h.actor}`).sort())
      .toEqual(["add reviewed=yes by operator", "delete crop=wheat by operator"])
    const avus = await runCli(["avus", "--json", `${root}/site-1`], { env })
    expect(JSON.parse(avus.stdout).map((a: any) => [a.attribute, a.value, a.source])).toEqual([["site", "north field", DRIFT_SOURCE]])
    const snaps = await runCli(["snapshots", "--json", root], { env })
    expect(JSON.parse(snaps.stdout)[0]).toMatchObject({ snapshot_id: r.snapshot_id, actor: "operator", note: "drift reconciliation: 2 added, 1 removed" })
  })

  it("an unknown project exits 2; without iRODS settings drift is a configuration error", async () => {
    const r = await runCli(["drift", "/testZone/home/rods/nowhere"], { env })
    expect(r.code).toBe(2)
    expect(stderrJson(r).code).toBe("ProjectNotFound")
    const noIrods = { ...env, MESA_DUCKLAKE_STORAGE: "mounted", MESA_DUCKLAKE_MOUNT_ROOT: work.dir, MESA_DUCKLAKE_IRODS_HOST: undefined }
    const c = await runCli(["drift", "/testZone/home/rods/survey"], { env: noIrods })
    expect(c.code).toBe(3)
    expect(stderrJson(c)).toMatchObject({ code: "ConfigError" })
    expect(stderrJson(c).message).toContain("MESA_DUCKLAKE_IRODS_HOST")
  })
})

describe("project find --discover", () => {
  it("finds the root by its mesa.enabled marker (any case of true/yes/1) and registers it once", async () => {
    const root = "/testZone/home/rods/marked"
    const obj = `${root}/a/b/data.csv`
    await put(obj)
    const before = await runCli(["project", "find", "--discover", obj], { env })
    expect(before.code).toBe(2)
    expect(stderrJson(before).code).toBe("NotMesaEnabled")

    await avu("add", { type: "collection", path: root }, "mesa.enabled", "TRUE")
    const first = await runCli(["project", "find", "--discover", "--actor", "rods", "--json", obj], { env })
    expect(first.code, first.stderr).toBe(0)
    const p = JSON.parse(first.stdout)
    expect(p).toMatchObject({ irods_path: root, created_by: "rods" })
    const second = await runCli(["project", "find", "--discover", "--json", `${root}/a`], { env })
    expect(JSON.parse(second.stdout).project_id).toBe(p.project_id)
    // Registration made the lake's collection in iRODS.
    expect(server.state.collections.has(`${root}/.mesa/ducklake`)).toBe(true)
  })
})
