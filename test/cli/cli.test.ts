/**
 * The built CLI as a user runs it: `node dist/scripts/cli.js`, configuration in the environment (the DSN of a
 * real embedded PostgreSQL, a temporary directory as the mounted zone), changes piped on stdin.
 */
import * as fs from "node:fs"
import { createServer, type Server } from "node:http"
import * as nodePath from "node:path"
import { describe, expect, it } from "vitest"
import { cliFixture, closedPort, runCli, stderrJson } from "./support.js"
import { LATEST_MIGRATION } from "../../src/catalog/migrations.js"

const cli = cliFixture("main", "p")
const { env, register } = cli

const change = (path: string, attribute: string, value: string, extra: Record<string, unknown> = {}) => ({
  irods_path: path,
  target_type: "data_object",
  attribute,
  value,
  op: "add",
  actor: "alice",
  ...extra
})

describe("help", () => {
  it("lists every command and the exit codes; --help works on subcommands", async () => {
    const r = await runCli(["--help"], { env })
    expect(r.code).toBe(0)
    for (const c of ["project register", "project list", "project show", "project find", "project grant-reader", "record", "avus", "as-of", "history", "snapshots", "diff", "recover", "migrate", "doctor", "backup", "restore", "rebuild", "compact", "drift"]) {
      expect(r.stdout).toContain(`- ${c}`)
    }
    expect(r.stdout).toContain("exit codes")
    const sub = await runCli(["as-of", "--help"], { env })
    expect(sub.code).toBe(0)
    expect(sub.stdout).toContain("--known-at")
  })
})

describe("record and query", () => {
  it("records a single snake_case object, as the original CLI took it, and prints its keys", async () => {
    const p = await register()
    const path = `${p.irods_path}/site-1/a.csv`
    const r = await runCli(["record", "--json"], {
      env,
      stdin: JSON.stringify(change(path, "depth", "10", { unit: "cm", source: "irods-rule:acPostProcForModifyAVUMetadata", rule_invocation: "r-1" }))
    })
    expect(r.code, r.stderr).toBe(0)
    expect(r.stderr).toBe("")
    const out = JSON.parse(r.stdout)
    expect(out).toMatchObject({ recorded: true, project_id: p.project_id, change_count: 1, replayed: false })
    expect(out.snapshot_id).toBeGreaterThan(1)
    expect(out.parquet_file).toMatch(new RegExp(`^${p.ducklake_path}/main/avu_changes/snapshot_\\d+_[0-9a-f]+\\.parquet$`))
    // The file is in the (mounted) zone, where the project's history travels with its data.
    expect(fs.existsSync(nodePath.join(env.MESA_DUCKLAKE_MOUNT_ROOT!, out.parquet_file))).toBe(true)

    const avus = await runCli(["avus", "--json", path], { env })
    expect(avus.code, avus.stderr).toBe(0)
    expect(JSON.parse(avus.stdout)).toMatchObject([
      { attribute: "depth", value: "10", unit: "cm", actor: "alice", source: "irods-rule:acPostProcForModifyAVUMetadata", rule_invocation: "r-1" }
    ])
  })

  it("records an array, an envelope and NDJSON (snake_case and camelCase), one snapshot per invocation", async () => {
    const p = await register()
    const a = `${p.irods_path}/a.csv`
    const b = `${p.irods_path}/b.csv`
    const arr = await runCli(["record", "--json", "--note", "initial"], {
      env,
      stdin: JSON.stringify([change(a, "crop", "wheat"), { irodsPath: b, targetType: "data_object", attribute: "crop", value: "rye", op: "add", actor: "alice" }])
    })
    expect(arr.code, arr.stderr).toBe(0)
    const s1 = JSON.parse(arr.stdout)
    expect(s1.change_count).toBe(2)

    const envelope = await runCli(["record", "--json"], {
      env,
      stdin: JSON.stringify({ project_id: p.project_id, actor: "bob", note: "QC", changes: [change(a, "crop", "barley", { op: "set", actor: "bob" })] })
    })
    expect(envelope.code, envelope.stderr).toBe(0)
    const s2 = JSON.parse(envelope.stdout)
    expect(s2.change_count).toBe(2) // set = delete wheat + add barley

    const ndjson = [change(b, "status", "raw"), change(b, "status", "raw", { op: "delete" }), change(b, "status", "clean")]
      .map((c) => JSON.stringify(c)).join("\n") + "\n"
    const nd = await runCli(["record", "--json", "--actor", "carol"], { env, stdin: ndjson })
    expect(nd.code, nd.stderr).toBe(0)
    const s3 = JSON.parse(nd.stdout)
    expect(s3.change_count).toBe(3)
    expect([s1.snapshot_id, s2.snapshot_id, s3.snapshot_id]).toEqual([s1.snapshot_id, s1.snapshot_id + 1, s1.snapshot_id + 2])

    // snapshots: table and JSON
    const snaps = await runCli(["snapshots", "--json", p.irods_path], { env })
    expect(JSON.parse(snaps.stdout).map((s: any) => [s.snapshot_id, s.actor, s.note, s.change_count])).toEqual([
      [s3.snapshot_id, "carol", null, 3],
      [s2.snapshot_id, "bob", "QC", 2],
      [s1.snapshot_id, "alice", "initial", 2]
    ])
    const table = await runCli(["snapshots", p.project_id], { env })
    expect(table.code).toBe(0)
    expect(table.stdout.split("\n")[0]).toMatch(/^SNAPSHOT\s+COMMITTED\s+ACTOR\s+CHANGES\s+NOTE$/)
    expect(table.stdout).toMatch(new RegExp(`\\n${s2.snapshot_id}\\s+\\S+\\s+bob\\s+2\\s+QC\\n`))

    // avus as a table
    const avus = await runCli(["avus", a], { env })
    expect(avus.code).toBe(0)
    expect(avus.stdout).toMatch(/^ATTRIBUTE\s+VALUE\s+UNIT\s+ACTOR\s+TS\s+SNAPSHOT\s+SOURCE\n-+/)
    expect(avus.stdout).toMatch(/\ncrop\s+barley\s+bob\s/)
    expect(avus.stdout).not.toContain("wheat")

    // as-of, by transaction time: as known at the first snapshot, a.csv still had wheat
    const asOf = await runCli(["as-of", "--json", "--known-at", String(s1.snapshot_id), a, "2999-01-01T00:00:00Z"], { env })
    expect(asOf.code, asOf.stderr).toBe(0)
    expect(JSON.parse(asOf.stdout).map((x: any) => x.value)).toEqual(["wheat"])

    // history of a path, newest first; of the project with --project
    const hist = await runCli(["history", "--json", a], { env })
    expect(JSON.parse(hist.stdout).map((h: any) => `${h.op} ${h.value}`)).toEqual(["add barley", "delete wheat", "add wheat"])
    const all = await runCli(["history", "--project", p.project_id, "--limit", "2"], { env })
    expect(all.code).toBe(0)
    expect(all.stdout.trim().split("\n")).toHaveLength(4) // header, rule, 2 rows

    // diff between the first and the last snapshot
    const diff = await runCli(["diff", "--json", p.project_id, String(s1.snapshot_id), String(s3.snapshot_id)], { env })
    expect(JSON.parse(diff.stdout)).toEqual([
      { irods_path: a, added: [{ attribute: "crop", value: "barley", unit: "" }], removed: [{ attribute: "crop", value: "wheat", unit: "" }] },
      { irods_path: b, added: [{ attribute: "status", value: "clean", unit: "" }], removed: [] }
    ])
    const diffTable = await runCli(["diff", p.project_id, String(s1.snapshot_id), String(s3.snapshot_id)], { env })
    expect(diffTable.stdout).toMatch(/a\.csv\s+-\s+crop\s+wheat/)
    expect(diffTable.stdout).toMatch(/a\.csv\s+\+\s+crop\s+barley/)
  })

  it("project list, show and find, in table and JSON form", async () => {
    const p = await register()
    const list = await runCli(["project", "list", "--json"], { env })
    expect(JSON.parse(list.stdout).map((x: any) => x.project_id)).toContain(p.project_id)
    const table = await runCli(["project", "list"], { env })
    expect(table.stdout).toMatch(/^PROJECT\s+ROOT\s+STATUS\s+CREATED\s+BY\n/)
    const show = await runCli(["project", "show", p.project_id], { env })
    expect(show.stdout).toContain(`root:           ${p.irods_path}`)
    const find = await runCli(["project", "find", "--json", `${p.irods_path}/deep/inside/x.csv`], { env })
    expect(JSON.parse(find.stdout).project_id).toBe(p.project_id)
  })

  it("project grant-reader makes a role for one project's schema; a bad role name exits 1 and makes nothing", async () => {
    const p = await register()
    const role = `cli_reader_${process.pid}`
    const r = await runCli(["project", "grant-reader", "--role", role, "--json", p.project_id], {
      env: { ...env, MESA_DUCKLAKE_READER_PASSWORD: "a long enough secret" }
    })
    expect(r.code, r.stderr).toBe(0)
    const out = JSON.parse(r.stdout)
    expect(out.role).toBe(role)
    expect(out.schema).toMatch(/^lake_/)
    expect(r.stdout + r.stderr).not.toContain("a long enough secret")
    const bad = await runCli(["project", "grant-reader", "--role", "Robert'); DROP", "--password", "a long enough secret", p.project_id], { env })
    expect(bad.code).toBe(1)
  })

  it("recover and migrate report; migrate --to beyond the latest is refused", async () => {
    const rec = await runCli(["recover", "--json"], { env })
    expect(rec.code, rec.stderr).toBe(0)
    expect(JSON.parse(rec.stdout)).toMatchObject({ pushed: 0, committed: 0, failed: 0, orphaned: 0 })
    const mig = await runCli(["migrate", "--json"], { env })
    expect(mig.code, mig.stderr).toBe(0)
    expect(JSON.parse(mig.stdout)).toMatchObject({ version: LATEST_MIGRATION, latest: LATEST_MIGRATION })
    const beyond = await runCli(["migrate", "--to", "99"], { env })
    expect(beyond.code).toBe(1)
    expect(stderrJson(beyond).code).toBe("InvalidChange")
  })
})

describe("jobs", () => {
  it("compact merges a project's files; backup dumps its catalog into the project", async () => {
    const p = await register()
    for (const v of ["1", "2", "3"]) {
      const r = await runCli(["record"], { env, stdin: JSON.stringify(change(`${p.irods_path}/x.csv`, "v", v)) })
      expect(r.code, r.stderr).toBe(0)
    }
    const compact = await runCli(["compact", "--json", "--min-files", "2", p.project_id], { env })
    expect(compact.code, compact.stderr).toBe(0)
    expect(JSON.parse(compact.stdout)).toMatchObject({ files_before: 3, files_after: 1 })
    const avus = await runCli(["avus", "--json", `${p.irods_path}/x.csv`], { env })
    expect(JSON.parse(avus.stdout).map((a: any) => a.value)).toEqual(["1", "2", "3"])
    const backup = await runCli(["backup", "--json", p.irods_path], { env })
    expect(backup.code, backup.stderr).toBe(0)
    const b = JSON.parse(backup.stdout)
    expect(b.path).toMatch(new RegExp(`^${p.ducklake_path}/backups/.+\\.dump$`))
    expect(fs.existsSync(nodePath.join(env.MESA_DUCKLAKE_MOUNT_ROOT!, b.path))).toBe(true)
  })
})

describe("exit codes", () => {
  it("1: bad input (not JSON, invalid change, unknown field, nothing on stdin) and usage errors", async () => {
    const p = await register()
    const cases: Array<[string, string]> = [
      ["{not json", "InvalidInput"],
      ["", "InvalidInput"],
      [JSON.stringify(change("relative/path", "a", "1")), "InvalidChange"],
      [JSON.stringify(change(`${p.irods_path}/x`, "a", "1", { op: "replace" })), "InvalidChange"],
      [JSON.stringify(change(`${p.irods_path}/x`, "a", "1", { colour: "red" })), "InvalidChange"],
      [JSON.stringify([change(`${p.irods_path}/x`, "a", "1", { project_id: p.project_id }), change(`${p.irods_path}/y`, "a", "1", { project_id: "00000000-0000-0000-0000-000000000001" })]), "InvalidChange"]
    ]
    for (const [stdin, code] of cases) {
      const r = await runCli(["record"], { env, stdin })
      expect(r.code, stdin).toBe(1)
      expect(r.stdout).toBe("")
      expect(stderrJson(r).code, stdin).toBe(code)
    }
    const usage = await runCli(["avus"], { env })
    expect(usage.code).toBe(1)
    expect(stderrJson(usage)).toMatchObject({ code: "UsageError" })
    expect(stderrJson(usage).message).toContain("irods-path")
    const unknown = await runCli(["frobnicate"], { env })
    expect(unknown.code).toBe(1)
    expect(stderrJson(unknown).code).toBe("UsageError")
  })

  it("2: unknown project or a path in no project", async () => {
    const r = await runCli(["record"], { env, stdin: JSON.stringify(change("/cliZone/home/nobody/x.csv", "a", "1")) })
    expect(r.code).toBe(2)
    expect(stderrJson(r)).toMatchObject({ code: "ProjectNotFound" })
    const s = await runCli(["snapshots", "00000000-0000-4000-8000-000000000000"], { env })
    expect(s.code).toBe(2)
    expect(stderrJson(s).code).toBe("ProjectNotFound")
  })

  it("3: no catalog configured — record validates, prints not-recorded and exits 3; reads exit 3", async () => {
    const noDsn = { ...env, MESA_DUCKLAKE_DSN: undefined }
    const r = await runCli(["record", "--json"], { env: noDsn, stdin: JSON.stringify(change("/cliZone/home/alice/x.csv", "a", "1")) })
    expect(r.code).toBe(3)
    expect(JSON.parse(r.stdout)).toEqual({ recorded: false, reason: "no-catalog" })
    expect(stderrJson(r)).toMatchObject({ code: "CatalogUnavailable" })
    const bad = await runCli(["record"], { env: noDsn, stdin: "[]" })
    expect(bad.code).toBe(1)
    const read = await runCli(["avus", "/cliZone/home/alice/x.csv"], { env: { ...env, MESA_DUCKLAKE_DSN: "  " } })
    expect(read.code).toBe(3)
    expect(stderrJson(read).message).toContain("no catalog is configured")
  })

  it("4: catalog unreachable, without leaking the password", async () => {
    const dsn = `postgresql://mesa:s3cret-pw@127.0.0.1:${closedPort()}/mesa`
    const r = await runCli(["project", "list"], { env: { ...env, MESA_DUCKLAKE_DSN: dsn } })
    expect(r.code).toBe(4)
    expect(stderrJson(r)).toMatchObject({ code: "CatalogUnavailable" })
    expect(r.stderr + r.stdout).not.toContain("s3cret-pw")
    const rec = await runCli(["record"], { env: { ...env, MESA_DUCKLAKE_DSN: dsn }, stdin: JSON.stringify(change("/cliZone/home/alice/x.csv", "a", "1")) })
    expect(rec.code).toBe(4)
  })

  it("5: write failure (the lake collection is not writable as a collection)", async () => {
    const p = await register()
    // Put a data object where the lake's table collection must go: the push cannot make it.
    const main = nodePath.join(env.MESA_DUCKLAKE_MOUNT_ROOT!, p.ducklake_path, "main")
    fs.rmSync(main, { recursive: true, force: true })
    fs.writeFileSync(main, "in the way")
    const r = await runCli(["record"], { env, stdin: JSON.stringify(change(`${p.irods_path}/x.csv`, "a", "1")) })
    expect(r.code, r.stderr).toBe(5)
    expect(["StorageError", "LakeWriteError"]).toContain(stderrJson(r).code)
    // Nothing became visible.
    const snaps = await runCli(["snapshots", "--json", p.project_id], { env })
    expect(JSON.parse(snaps.stdout)).toEqual([])
  })

  it("130: SIGINT while waiting on stdin interrupts cleanly", async () => {
    const r = await runCli(["record"], {
      env,
      // Signal once the CLI is surely up and reading stdin: start-up takes 1–2 s, more on a loaded CI machine (a
      // signal before the handler is installed kills the process instead of testing the clean exit).
      onSpawn: (child) => setTimeout(() => child.kill("SIGINT"), 8000)
    })
    expect(r.code).toBe(130)
  })
})

describe("doctor", () => {
  it("healthy configuration: every check ok, exit 0", async () => {
    const r = await runCli(["doctor"], { env })
    expect(r.code, r.stdout + r.stderr).toBe(0)
    expect(r.stdout).toMatch(/^CHECK\s+STATUS\s+DETAIL\n/)
    for (const c of ["config", "catalog", "storage", "pg_dump", "cache"]) expect(r.stdout).toMatch(new RegExp(`\\n${c}\\s+ok\\s`))
    expect(r.stdout).toContain(`migration ${LATEST_MIGRATION} (latest)`)
    const j = await runCli(["doctor", "--json"], { env })
    expect(JSON.parse(j.stdout)).toMatchObject({ healthy: true })
  })

  it("broken configuration: a table of failed checks and a non-zero exit", async () => {
    const broken = {
      ...env,
      MESA_DUCKLAKE_DSN: `postgresql://mesa:pw@127.0.0.1:${closedPort()}/mesa`,
      MESA_DUCKLAKE_MOUNT_ROOT: nodePath.join(cli.dir, "no-such-mount"),
      MESA_DUCKLAKE_BACKUP_PG_DUMP: nodePath.join(cli.dir, "no-pg_dump")
    }
    const r = await runCli(["doctor"], { env: broken })
    expect(r.code).toBe(4)
    expect(r.stdout).toMatch(/\ncatalog\s+FAILED\s+catalog 127\.0\.0\.1:\d+\/mesa is unreachable/)
    expect(r.stdout).toMatch(/\nstorage\s+FAILED\s/)
    expect(r.stdout).toMatch(/\npg_dump\s+FAILED\s/)
    expect(r.stdout).toMatch(/\ncache\s+ok\s/)
    expect(r.stdout).toContain("3 check(s) failed")
    expect(stderrJson(r).code).toBe("DoctorFailed")
    const none = await runCli(["doctor", "--json"], { env: { ...env, MESA_DUCKLAKE_DSN: undefined } })
    expect(none.code).toBe(3)
    expect(JSON.parse(none.stdout).checks.filter((c: any) => !c.ok).map((c: any) => c.check)).toEqual(["config", "catalog"])
  })
})

describe("observability", () => {
  it("exports spans to an OTLP collector when MESA_DUCKLAKE_OTEL_ENDPOINT is set", async () => {
    const bodies: Array<{ path: string; size: number }> = []
    const server: Server = createServer((req, res) => {
      let size = 0
      req.on("data", (d: Buffer) => (size += d.length))
      req.on("end", () => {
        bodies.push({ path: req.url ?? "", size })
        res.writeHead(200, { "content-type": "application/json" }).end("{}")
      })
    })
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()))
    const port = (server.address() as { port: number }).port
    try {
      const r = await runCli(["project", "list"], { env: { ...env, MESA_DUCKLAKE_OTEL_ENDPOINT: `http://127.0.0.1:${port}` } })
      expect(r.code, r.stderr).toBe(0)
      expect(bodies.some((b) => b.path === "/v1/traces" && b.size > 0)).toBe(true)
    } finally {
      await new Promise<void>((r) => server.close(() => r()))
    }
  })
})
