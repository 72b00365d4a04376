/**
 * `mesa-ducklake gc`: the files a compaction replaced wait in `replaced/avu_changes/` for the grace period, then go;
 * `main/avu_changes/` holds the live files only throughout. Bad input is a usage error that deletes nothing.
 */
import * as fs from "node:fs"
import * as nodePath from "node:path"
import { describe, expect, it } from "vitest"
import { cliFixture, runCli, stderrJson } from "./support.js"

const { env, register } = cliFixture("gc", "gc")

const parquet = (dir: string) => (fs.existsSync(dir) ? fs.readdirSync(dir).filter((f) => f.endsWith(".parquet")) : [])

describe("gc", () => {
  it("keeps replaced files for the grace period, deletes them after; main/ holds the live files only", async () => {
    const p = await register()
    for (const v of ["1", "2", "3"]) {
      const r = await runCli(["record"], {
        env,
        stdin: JSON.stringify({ irods_path: `${p.irods_path}/x.csv`, target_type: "data_object", attribute: "v", value: v, op: "add" })
      })
      expect(r.code, r.stderr).toBe(0)
    }
    const compact = await runCli(["compact", "--json", "--min-files", "2", p.project_id], { env })
    expect(compact.code, compact.stderr).toBe(0)
    const lake = nodePath.join(env.MESA_DUCKLAKE_MOUNT_ROOT!, p.ducklake_path)
    expect(parquet(nodePath.join(lake, "main", "avu_changes")).length).toBe(1)
    expect(parquet(nodePath.join(lake, "replaced", "avu_changes")).length).toBe(3)

    const kept = await runCli(["gc", "--json", p.irods_path], { env })
    expect(kept.code, kept.stderr).toBe(0)
    expect(JSON.parse(kept.stdout)).toMatchObject({ deleted: 0 })
    for (const bad of [["--grace-days", "-1"], ["--grace-days", "soon"]]) {
      const r = await runCli(["gc", ...bad, p.project_id], { env })
      expect(r.code, r.stderr).toBe(1)
    }
    const unknown = await runCli(["gc", "/cliZone/home/nobody/none"], { env })
    expect(unknown.code).toBe(2)
    expect(stderrJson(unknown).code).toBe("ProjectNotFound")
    expect(parquet(nodePath.join(lake, "replaced", "avu_changes")).length).toBe(3)

    const now = await runCli(["gc", "--json", "--grace-days", "0", p.project_id], { env })
    expect(now.code, now.stderr).toBe(0)
    expect(JSON.parse(now.stdout)).toMatchObject({ deleted: 3 })
    expect(parquet(nodePath.join(lake, "replaced", "avu_changes"))).toEqual([])
    const avus = await runCli(["avus", "--json", `${p.irods_path}/x.csv`], { env })
    expect(JSON.parse(avus.stdout).map((a: any) => a.value)).toEqual(["1", "2", "3"])
  })
})
