/**
 * `mesa-ducklake verify` as a user runs it (issue 16, tamper evidence): an intact project verifies (exit 0, the
 * records counted); one changed byte of a stored Parquet file, or one changed `mesa_snapshot` column, fails with
 * exit 2 naming the snapshot, the file and what differs (first broken link first, then every problem); `--json`
 * prints the whole report; `--all` verifies every project; errors keep the usual exit codes.
 */
import * as fs from "node:fs"
import * as nodePath from "node:path"
import pg from "pg"
import { describe, expect, it } from "vitest"
import { type CliResult, cliFixture, closedPort, type Registered, runCli, stderrJson } from "./support.js"

const cli = cliFixture("verify", "v")
const { env } = cli

interface Recorded {
  readonly snapshot_id: number
  readonly parquet_file: string
}

interface Report {
  readonly project_id: string
  readonly ok: boolean
  readonly records: number
  readonly head_snapshot: number | null
  readonly head_hash: string | null
  readonly files_checked: number
  readonly markers_checked: number
  readonly anchor: string
  readonly unverifiable: number
  readonly problems: ReadonlyArray<{ kind: string; snapshot_id?: number; file?: string; detail: string }>
}

const change = (path: string, value: string) => ({
  irods_path: path,
  target_type: "data_object",
  attribute: "label",
  value,
  op: "add",
  actor: "alice"
})

/** A project with three recorded batches (one CLI `record` each). */
const projectWithHistory = async () => {
  const p = await cli.register()
  const batches: Array<Recorded> = []
  for (const value of ["one", "two", "three"]) {
    const rec = await runCli(["record", "--json"], { env, stdin: JSON.stringify(change(`${p.irods_path}/a.csv`, value)) })
    expect(rec.code, rec.stderr).toBe(0)
    batches.push(JSON.parse(rec.stdout) as Recorded)
  }
  return { p, batches }
}

/** The stored file in the mounted zone, and its name as verify reports it (relative to the lake). */
const stored = (p: Registered, b: Recorded) => ({
  local: nodePath.join(env.MESA_DUCKLAKE_MOUNT_ROOT!, b.parquet_file),
  relative: nodePath.posix.relative(p.ducklake_path, b.parquet_file)
})

const sql = async (text: string) => {
  const conn = new pg.Client({ connectionString: cli.dsn })
  await conn.connect()
  try {
    return await conn.query(text)
  } finally {
    await conn.end()
  }
}

const verify = (...args: Array<string>) => runCli(["verify", ...args], { env })

const passes = (r: CliResult) => {
  expect(r.code, `${r.stdout}\n${r.stderr}`).toBe(0)
  expect(r.stderr).toBe("")
}

const fails = (r: CliResult) => {
  expect(r.code, `${r.stdout}\n${r.stderr}`).toBe(2)
  const e = stderrJson(r)
  expect(e.code).toBe("VerifyFailed")
  return e
}

describe("verify <project>", () => {
  it("passes on an intact project (by id or by a path inside it) and counts its records", async () => {
    const { p, batches } = await projectWithHistory()
    const r = await verify(p.project_id)
    passes(r)
    expect(r.stdout).toMatch(new RegExp(`^verified 3 records of project ${p.project_id} \\(${p.irods_path}\\): head snapshot ${batches[2]!.snapshot_id} [0-9a-f]{64}; 3 file\\(s\\) and 3 marker\\(s\\) checked; anchor not supported`))

    passes(await verify(`${p.irods_path}/a.csv`))
    // --log-level anywhere among the options, as every command.
    passes(await verify("--log-level", "info", "--json", p.irods_path))

    const json = await verify("--json", p.project_id)
    passes(json)
    const report = JSON.parse(json.stdout) as Report
    expect(report).toMatchObject({
      project_id: p.project_id,
      ok: true,
      records: 3,
      head_snapshot: batches[2]!.snapshot_id,
      files_checked: 3,
      markers_checked: 3,
      anchor: "not-supported",
      unverifiable: 0,
      problems: []
    })
    expect(report.head_hash).toMatch(/^[0-9a-f]{64}$/)
  }, 120_000)

  it("fails with exit 2 naming the file when one byte of a stored Parquet file changes, and passes once it is restored", async () => {
    const { p, batches } = await projectWithHistory()
    passes(await verify(p.project_id))
    const victim = batches[1]!
    const { local, relative } = stored(p, victim)
    expect(relative).toMatch(/^main\/avu_changes\/snapshot_\d+_[0-9a-f]+\.parquet$/)
    const original = fs.readFileSync(local)
    const changed = Buffer.from(original)
    const at = Math.floor(changed.length / 2)
    changed[at] = changed[at]! ^ 0x01
    fs.writeFileSync(local, changed)
    try {
      const r = await verify(p.project_id)
      const e = fails(r)
      expect(e.message).toContain(relative)
      expect(e.message).toContain(`snapshot ${victim.snapshot_id}`)
      // The first broken link prominently: which snapshot, which file, what differs.
      const lines = r.stdout.split("\n")
      expect(lines[0]).toBe(`VERIFY FAILED  project ${p.project_id} (${p.irods_path}): 1 problem(s)`)
      expect(lines[1]).toMatch(new RegExp(`^first broken link: snapshot ${victim.snapshot_id}, ${relative}: file-altered: its checksum is \\S+, the chain says \\S+$`))
      // Then every problem, one per line (a table).
      expect(lines.filter((l) => l.startsWith(`${victim.snapshot_id} `) && l.includes(relative) && l.includes("file-altered"))).toHaveLength(1)

      const json = await verify("--json", p.project_id)
      fails(json)
      const report = JSON.parse(json.stdout) as Report
      expect(report.ok).toBe(false)
      expect(report.problems).toEqual([
        { kind: "file-altered", snapshot_id: victim.snapshot_id, file: relative, detail: expect.stringContaining("checksum") }
      ])
    } finally {
      fs.writeFileSync(local, original)
    }
    passes(await verify(p.project_id))
  }, 120_000)

  it("fails with exit 2 naming mesa_snapshot when one of its columns changes; --json prints the whole report", async () => {
    const { p, batches } = await projectWithHistory()
    const victim = batches[0]!
    await sql(`UPDATE "${p.metadata_schema}".mesa_snapshot SET actor = 'mallory' WHERE snapshot_id = ${victim.snapshot_id}`)

    const r = await verify(p.irods_path)
    const e = fails(r)
    expect(e.message).toContain("mesa_snapshot")
    expect(r.stdout).toContain(`first broken link: snapshot ${victim.snapshot_id}, mesa_snapshot: catalog-row-altered: actor is "mallory", the chain says "alice"`)

    const json = await verify("--json", p.project_id)
    fails(json)
    const report = JSON.parse(json.stdout) as Report
    expect(report).toMatchObject({ project_id: p.project_id, ok: false, records: 3, files_checked: 3 })
    expect(report.problems[0]).toMatchObject({ kind: "catalog-row-altered", snapshot_id: victim.snapshot_id, file: "mesa_snapshot" })
    expect(report.problems[0]!.detail).toContain("mallory")

    await sql(`UPDATE "${p.metadata_schema}".mesa_snapshot SET actor = 'alice' WHERE snapshot_id = ${victim.snapshot_id}`)
    passes(await verify(p.project_id))
  }, 120_000)
})

describe("verify --all and failures", () => {
  it("--all verifies every project and exits 2 naming the ones that fail", async () => {
    const good = await projectWithHistory()
    const bad = await projectWithHistory()
    const { local, relative } = stored(bad.p, bad.batches[2]!)
    fs.appendFileSync(local, "x")

    const r = await verify("--all")
    const e = fails(r)
    expect(e.message).toContain(bad.p.project_id)
    expect(e.message).not.toContain(good.p.project_id)
    expect(r.stdout).toContain(`verified 3 records of project ${good.p.project_id}`)
    expect(r.stdout).toContain(`VERIFY FAILED  project ${bad.p.project_id}`)
    expect(r.stdout).toMatch(/\d+ of \d+ project\(s\) verified, \d+ FAILED$/m)

    const json = await verify("--all", "--json")
    fails(json)
    const all = JSON.parse(json.stdout) as { ok: boolean; projects: Array<Report & { irods_path: string }> }
    expect(all.ok).toBe(false)
    expect(all.projects.find((x) => x.project_id === good.p.project_id)).toMatchObject({ ok: true, irods_path: good.p.irods_path })
    expect(all.projects.find((x) => x.project_id === bad.p.project_id)).toMatchObject({
      ok: false,
      irods_path: bad.p.irods_path,
      problems: [{ kind: "file-altered", snapshot_id: bad.batches[2]!.snapshot_id, file: relative }]
    })
  }, 120_000)

  it("bad usage exits 1; an unknown project, no catalog and an unreachable catalog keep their usual codes", async () => {
    // Neither a project nor --all, or both: exit 1, with or without a catalog.
    for (const args of [[], ["--all", "/cliZone/home/alice/x"]]) {
      for (const runEnv of [env, { ...env, MESA_DUCKLAKE_DSN: "" }]) {
        const r = await runCli(["verify", ...args], { env: runEnv })
        expect(r.code, r.stderr).toBe(1)
        expect(stderrJson(r).code).toBe("InvalidInput")
        expect(r.stdout).toBe("")
      }
    }
    // As every command: no such project is exit 2 with its own code (not VerifyFailed), nothing on stdout.
    const missing = await verify("--json", "/cliZone/home/nobody/none")
    expect(missing.code, missing.stderr).toBe(2)
    expect(stderrJson(missing).code).not.toBe("VerifyFailed")
    expect(missing.stdout).toBe("")

    const none = await runCli(["verify", "/cliZone/home/alice/x"], { env: { ...env, MESA_DUCKLAKE_DSN: "" } })
    expect(none.code).toBe(3)
    expect(stderrJson(none).code).toBe("CatalogUnavailable")

    const down = await runCli(["verify", "--all"], { env: { ...env, MESA_DUCKLAKE_DSN: `postgresql://mesa:pw@127.0.0.1:${closedPort()}/mesa` } })
    expect(down.code).toBe(4)
    expect(stderrJson(down).code).toBe("CatalogUnavailable")
  }, 120_000)
})
