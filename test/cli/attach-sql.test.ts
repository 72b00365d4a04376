/**
 * `mesa-ducklake attach-sql` (issue 19, item 3): its output, run as printed in DuckDB with the official extensions
 * loaded offline from the PyPI wheels (the interop venv), as the project's reader role (the password in
 * PGPASSWORD), reads the project's rows — not just counts from statistics. The ATTACH `project grant-reader`
 * prints is the same statement and reads the same rows.
 */
import { execFile } from "node:child_process"
import * as fs from "node:fs"
import * as nodePath from "node:path"
import { beforeAll, describe, expect, it } from "vitest"
import { PYTHON, setupPython } from "../interop/support.js"
import { cliFixture, runCli } from "./support.js"

const cli = cliFixture("attach", "at")
const { env } = cli
const PASSWORD = "reader secret for attach-sql"

beforeAll(async () => {
  await setupPython()
}, 900_000)

/**
 * Runs SQL text as printed, then a query, in DuckDB (Python) that cannot download anything: autoinstall and
 * autoload off, an empty extension directory, an unreachable repository. Answers the query's rows.
 */
const duckdb = async (script: string, query: string, extraEnv: Record<string, string>) => {
  const dir = fs.mkdtempSync(nodePath.join(cli.dir, "duck-"))
  const code = `
import duckdb, json, sys
con = duckdb.connect(config={"autoinstall_known_extensions": False, "autoload_known_extensions": False,
                             "extension_directory": ${JSON.stringify(dir)}, "custom_extension_repository": "http://127.0.0.1:9/none"})
con.execute(sys.stdin.read())
print(json.dumps(con.execute(${JSON.stringify(query)}).fetchall(), default=str))
`
  const child = execFile(PYTHON, ["-c", code], { env: { ...process.env, ...extraEnv }, timeout: 120_000 })
  child.stdin!.end(script)
  const out = await new Promise<{ stdout: string; stderr: string; code: number | null }>((resolve) => {
    let stdout = ""
    let stderr = ""
    child.stdout!.on("data", (d) => (stdout += d))
    child.stderr!.on("data", (d) => (stderr += d))
    child.on("close", (code) => resolve({ stdout, stderr, code }))
  })
  expect(out.code, out.stderr).toBe(0)
  return JSON.parse(out.stdout) as Array<Array<unknown>>
}

describe("attach-sql", () => {
  it("prints LOAD lines from the wheels and an ATTACH with DATA_PATH that reads rows as the reader role", async () => {
    const p = await cli.register()
    const change = (value: string) => ({
      irods_path: `${p.irods_path}/site/x.csv`,
      target_type: "data_object",
      attribute: "depth",
      value,
      unit: "cm",
      op: "add",
      actor: "alice"
    })
    for (const batch of [[change("10")], [change("12"), change("14")]]) {
      const r = await runCli(["record"], { env, stdin: JSON.stringify(batch) })
      expect(r.code, r.stderr).toBe(0)
    }
    const role = `at_reader_${process.pid}`
    const grant = await runCli(["project", "grant-reader", "--role", role, "--json", p.project_id], {
      env: { ...env, MESA_DUCKLAKE_READER_PASSWORD: PASSWORD }
    })
    expect(grant.code, grant.stderr).toBe(0)
    const granted = JSON.parse(grant.stdout)
    expect(granted.attach).toContain("DATA_PATH")
    expect(granted.attach).toContain("OVERRIDE_DATA_PATH true")
    expect(grant.stdout).not.toContain(PASSWORD)

    const sql = await runCli(["attach-sql", "--role", role, "--python", PYTHON, p.project_id], { env })
    expect(sql.code, sql.stderr).toBe(0)
    const script = sql.stdout
    expect(script).toMatch(/^LOAD '\/.+postgres_scanner\.duckdb_extension';$/m)
    expect(script).toMatch(/^LOAD '\/.+ducklake\.duckdb_extension';$/m)
    expect(script).toContain(`METADATA_SCHEMA '${p.metadata_schema}'`)
    const dataPath = nodePath.join(env.MESA_DUCKLAKE_MOUNT_ROOT!, p.ducklake_path) + "/"
    expect(script).toContain(`DATA_PATH '${dataPath}'`)
    expect(script).toContain(`user=${role}`)
    expect(script + sql.stderr).not.toContain(new URL(cli.dsn).password)

    // As printed, as the reader (password from PGPASSWORD): rows, not only statistics.
    const rows = await duckdb(script, "SELECT value, actor, source FROM lake.avu_changes ORDER BY snapshot_id, change_seq", {
      PGPASSWORD: PASSWORD
    })
    expect(rows).toEqual([["10", "alice", "mesa-ducklake-cli"], ["12", "alice", "mesa-ducklake-cli"], ["14", "alice", "mesa-ducklake-cli"]])

    // The ATTACH grant-reader printed, after the same LOAD lines, reads the same rows.
    const loads = script.split("\n").filter((l) => l.startsWith("LOAD ")).join("\n")
    const again = await duckdb(`${loads}\n${granted.attach}`, "SELECT count(*), max(value) FROM lake.avu_changes", { PGPASSWORD: PASSWORD })
    expect(again).toEqual([[3, "14"]])

    // --json: the parts, for programs that build their own statements.
    const parts = await runCli(["attach-sql", "--json", "--role", role, "--python", PYTHON, p.project_id], { env })
    expect(JSON.parse(parts.stdout)).toMatchObject({ metadata_schema: p.metadata_schema, data_path: dataPath })
  }, 300_000)

  it("--mount and --mount-prefix place DATA_PATH on another machine's mount; without the wheels it prints INSTALL lines", async () => {
    const p = await cli.register()
    const r = await runCli(["attach-sql", "--mount", "/data-store", "--mount-prefix", "/", "--python", "/nonexistent/python", p.project_id], { env })
    expect(r.code, r.stderr).toBe(0)
    expect(r.stdout).toContain(`DATA_PATH '/data-store${p.ducklake_path}/'`)
    expect(r.stdout).toContain("INSTALL postgres; INSTALL ducklake;")
    expect(r.stderr).toMatch(/^note: no offline extensions/m)
    const bad = await runCli(["attach-sql", "--mount", "/mnt", "--mount-prefix", "/otherZone", p.project_id], { env })
    expect(bad.code).toBe(1)
  })
})
