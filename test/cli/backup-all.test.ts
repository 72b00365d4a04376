/**
 * `mesa-ducklake backup` of every project: the summary names what was backed up and what failed, and a project that
 * failed makes the run exit 5 (as `scripts/backup.ts` exits non-zero), while the others are still backed up.
 */
import * as fs from "node:fs"
import * as nodePath from "node:path"
import { describe, expect, it } from "vitest"
import { cliFixture, runCli, stderrJson } from "./support.js"

const { env, register } = cliFixture("backup-all", "ball")

describe("backup of every project", () => {
  it("one project's backup failing: the others are backed up, the summary says which failed, exit 5", async () => {
    const good = await register()
    const bad = await register()
    for (const p of [good, bad]) {
      const r = await runCli(["record"], {
        env,
        stdin: JSON.stringify({ irods_path: `${p.irods_path}/x.csv`, target_type: "data_object", attribute: "k", value: "1", op: "add" })
      })
      expect(r.code, r.stderr).toBe(0)
    }
    // The bad project's backups collection cannot be made: a plain file stands where it should be.
    const zone = env.MESA_DUCKLAKE_MOUNT_ROOT!
    fs.writeFileSync(nodePath.join(zone, bad.ducklake_path, "backups"), "not a collection")
    const all = await runCli(["backup", "--json"], { env })
    expect(all.code, all.stderr).toBe(5)
    expect(stderrJson(all).code).toBe("BackupFailed")
    expect(stderrJson(all).message).toContain(bad.irods_path)
    const summary = JSON.parse(all.stdout)
    expect(summary.failed.map((f: any) => f.irods_path ?? f.irodsPath)).toEqual([bad.irods_path])
    const dumps = fs.readdirSync(nodePath.join(zone, good.ducklake_path, "backups")).filter((f) => f.endsWith(".dump"))
    expect(dumps.length).toBe(1)
  })
})
