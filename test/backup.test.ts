/**
 * Backup and restore on a real embedded PostgreSQL with the real pg_dump/pg_restore (PATH): a recorded history
 * survives losing its catalog; a backup holds one project only; retention and corrupt dumps; typed tool errors;
 * the password never reaches argv or the environment.
 */
import { expect, layer } from "@effect/vitest"
import { Effect, Layer, Redacted } from "effect"
import { execFile } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as nodePath from "node:path"
import pg from "pg"
import * as BackupModule from "../src/backup/Backup.js"
import { Backup, BackupProbe, connectionOf, passfileLine, pgDumpArgs, toolEnv } from "../src/backup/Backup.js"
import { Catalog } from "../src/catalog/Catalog.js"
import { DuckLakeClient } from "../src/client/DuckLakeClient.js"
import { answers, dropCatalog, embeddedBackup, recordHistory, sleep, withBackup } from "./backup-support.js"
import { change, EmbeddedPostgres, listTree, record, registerFresh } from "./support.js"

const spawned: Array<{ readonly tool: string; readonly args: ReadonlyArray<string>; readonly env: Readonly<Record<string, string>> }> = []
let corruptNextDump = false

const Probe = Layer.succeed(BackupProbe, {
  spawned: (tool, args, env) =>
    Effect.sync(() => {
      // The password file must exist while the tool runs, and hold the password.
      expect(fs.existsSync(env.PGPASSFILE!)).toBe(true)
      spawned.push({ tool, args, env })
    }),
  afterDump: (file) =>
    Effect.sync(() => {
      if (!corruptNextDump) return
      corruptNextDump = false
      // Lose the tail, as a full disk or a killed copy would. The head still lists (pg_restore --list succeeds):
      // only a full read of the archive finds the damage.
      fs.truncateSync(file, fs.statSync(file).size - 64)
    })
})

const RETENTION = 3
const { dirs, layer: Live } = embeddedBackup("backup", { config: { retention: RETENTION }, probe: Probe })

const password = Effect.map(EmbeddedPostgres, (pg) => connectionOf(Redacted.value(pg.dsn)).password!)

const run = (file: string, args: ReadonlyArray<string>, env: Record<string, string> = {}) =>
  new Promise<string>((resolve, reject) =>
    execFile(file, [...args], { env: { ...process.env, ...env }, maxBuffer: 64 * 1024 * 1024 }, (error, stdout, stderr) =>
      error ? reject(new Error(`${error.message}\n${stderr}`)) : resolve(stdout))
  )

layer(Live, { timeout: "300 seconds", excludeTestServices: true })("backup and restore", (it) => {
  it.effect("connection details: the password never goes into argv", () =>
    Effect.sync(() => {
      const url = connectionOf("postgresql://mesa:s3cr%3At@db.example.org:5433/catalog?sslmode=require")
      expect(url.password).toBe("s3cr:t")
      expect(url.conninfo).toBe("postgresql://mesa@db.example.org:5433/catalog?sslmode=require")
      const kv = connectionOf("host=db port=5432 dbname=mesa user=alice password='p w\\'x'")
      expect(kv.password).toBe("p w'x")
      expect(kv.conninfo).toBe("host='db' port='5432' dbname='mesa' user='alice'")
      expect(pgDumpArgs(url.conninfo, "lake_x", "/tmp/x.dump").join(" ")).not.toContain("s3cr")
      expect(passfileLine("a:b\\c")).toBe("*:*:*:*:a\\:b\\\\c\n")
    }))

  it.effect("toolEnv: a child's environment is built from an allow-list; secrets, known or not, stay out", () =>
    Effect.sync(() => {
      const env = toolEnv("/tmp/mesa-pgtool-x/pgpass", {
        PATH: "/usr/bin",
        HOME: "/home/svc",
        TZ: "UTC",
        LC_ALL: "C.UTF-8",
        PGHOST: "db.example.org",
        PGSSLROOTCERT: "/etc/ssl/ca.pem",
        PGOPTIONS: "-c search_path=s3cret", // holds the password: dropped
        MESA_DUCKLAKE_DSN: "postgresql://mesa:s3cret@db/catalog",
        MESA_DUCKLAKE_IRODS_PASSWORD: "x",
        MESA_DUCKLAKE_STORAGE: "mounted",
        PGPASSWORD: "other",
        PGPASSFILE: "/home/svc/.pgpass-of-someone-else",
        AWS_SECRET_ACCESS_KEY: "y",
        LC_SECRET: "z",
        UNSET: undefined
      }, ["s3cret"])
      expect(env).toEqual({
        PATH: "/usr/bin",
        HOME: "/home/svc",
        TZ: "UTC",
        LC_ALL: "C.UTF-8",
        PGHOST: "db.example.org",
        PGSSLROOTCERT: "/etc/ssl/ca.pem",
        LC_MESSAGES: "C",
        PGPASSFILE: "/tmp/mesa-pgtool-x/pgpass"
      })
      expect(toolEnv(undefined, { PGPASSFILE: "/elsewhere", PATH: "/bin" })).toEqual({ PATH: "/bin", LC_MESSAGES: "C" })
      expect(pgDumpArgs("host=db", "lake_x", "/tmp/x.dump")).toContain("--no-password")
    }))

  it.effect("back up, drop the catalog and its registry row, restore: every as-of answer is the same", () =>
    Effect.gen(function*() {
      const backup = yield* Backup
      const c = yield* DuckLakeClient
      const p = yield* registerFresh("restore")
      const grid = yield* recordHistory(p)
      const before = yield* answers(p.projectId, grid)
      spawned.length = 0
      const result = yield* backup.backupProject(p.projectId)
      expect(result.path).toMatch(
        new RegExp(`^${p.irodsPath}/\\.mesa/ducklake/backups/mesa-ducklake-${p.projectId}-\\d{8}T\\d{6}\\.\\d{3}Z\\.dump$`)
      )
      expect(result.latestSnapshot).toBe(grid.ids[grid.ids.length - 1])
      // What the children were given: no password anywhere in argv or the environment, a private passfile instead.
      const secret = yield* password
      expect(spawned.map((s) => s.tool)).toContain("pg_dump")
      for (const s of spawned) {
        expect(s.args.join(" ")).not.toContain(secret)
        expect(Object.values(s.env).join(" ")).not.toContain(secret)
        expect(s.env.PGPASSWORD).toBeUndefined()
        expect(fs.existsSync(s.env.PGPASSFILE!)).toBe(false) // removed after the run
      }
      expect(result.path).not.toContain(secret)

      yield* dropCatalog(p)
      expect((yield* Effect.flip(c.getAvus(p.projectId, grid.paths[0]!)))._tag).toBe("ProjectNotFound")
      const restored = yield* backup.restore({ root: p.irodsPath })
      expect(restored.projectId).toBe(p.projectId)
      expect(restored.snapshots).toBe(grid.ids.length)
      expect(restored.rejected).toEqual([])
      expect(restored.consistency).toEqual({
        checked: grid.ids.length,
        ok: grid.ids.length,
        missing: [],
        sizeMismatch: [],
        checksumMismatch: [],
        newerInStorage: []
      })
      expect(yield* c.getProject(p.projectId)).toEqual(p)
      expect(yield* answers(p.projectId, grid)).toEqual(before)
      // Writing carries on after the restore, without reusing an id.
      const next = yield* record(p.projectId, [change(grid.paths[0]!, "after", "restore")])
      expect(next.snapshotId).toBe(grid.ids[grid.ids.length - 1]! + 1)
    }))

  it.effect("restore refuses a non-empty catalog unless forced; snapshots committed after the dump are reported", () =>
    Effect.gen(function*() {
      const backup = yield* Backup
      const p = yield* registerFresh("force")
      const grid = yield* recordHistory(p)
      const before = yield* answers(p.projectId, grid)
      yield* backup.backupProject(p.projectId)
      const e = yield* Effect.flip(backup.restore({ root: p.irodsPath }))
      expect(e._tag).toBe("CatalogNotEmpty")
      // A later commit, then a forced restore: the catalog is the dump's again, and the newer snapshot is flagged.
      const later = yield* record(p.projectId, [change(grid.paths[1]!, "late", "1")])
      const r = yield* backup.restore({ root: p.irodsPath, force: true })
      expect(r.consistency.newerInStorage).toEqual([later.snapshotId])
      expect(yield* answers(p.projectId, grid)).toEqual(before)
      const schemas = yield* Effect.flatMap(Catalog, (cat) =>
        cat.withSql((sql) => sql<any>`SELECT nspname FROM pg_namespace WHERE nspname LIKE ${p.metadataSchema + "%"}`))
      expect(schemas.map((s) => s.nspname)).toEqual([p.metadataSchema]) // the replaced copy is gone
    }))

  it.effect("project A's backup holds none of project B's rows (pg_restore --list, and a restore into a scratch database)", () =>
    Effect.gen(function*() {
      const backup = yield* Backup
      const pgs = yield* EmbeddedPostgres
      const a = yield* registerFresh("iso-a")
      const b = yield* registerFresh("iso-b")
      yield* record(a.projectId, [change(`${a.irodsPath}/x`, "owner", "only-in-A")])
      yield* record(b.projectId, [change(`${b.irodsPath}/y`, "owner", "SECRET-OF-B")])
      const result = yield* backup.backupProject(a.projectId)
      const dump = nodePath.join(dirs.zoneDir, result.path)
      const toc = yield* Effect.promise(() => run("pg_restore", ["--list", dump]))
      expect(toc).toContain(a.metadataSchema)
      expect(toc).not.toContain(b.metadataSchema)
      expect(toc).not.toContain("mesa_ducklake")
      const script = yield* Effect.promise(() => run("pg_restore", ["--file=-", dump]))
      expect(script).toContain("only-in-A")
      for (const secret of [b.projectId, b.irodsPath, "SECRET-OF-B", b.metadataSchema]) expect(script).not.toContain(secret)
      const manifest = fs.readFileSync(`${dump}.json`, "utf8")
      expect(manifest).toContain(a.projectId)
      expect(manifest).not.toContain(b.projectId)

      // Restore it alone into an empty database: only A's schema appears, and its rows are A's.
      const env = { PGPASSWORD: yield* password }
      const admin = new pg.Client({ host: "127.0.0.1", port: pgs.port, user: "postgres", password: env.PGPASSWORD, database: "postgres" })
      yield* Effect.promise(() => admin.connect())
      yield* Effect.promise(() => admin.query("CREATE DATABASE scratch"))
      yield* Effect.promise(() => admin.end())
      yield* Effect.promise(() =>
        run("pg_restore", ["--no-owner", "--exit-on-error", `--dbname=postgresql://postgres@127.0.0.1:${pgs.port}/scratch`, dump], env)
      )
      const scratch = new pg.Client({ host: "127.0.0.1", port: pgs.port, user: "postgres", password: env.PGPASSWORD, database: "scratch" })
      yield* Effect.promise(() => scratch.connect())
      const schemas = yield* Effect.promise(() =>
        scratch.query(`SELECT nspname FROM pg_namespace WHERE nspname NOT LIKE 'pg\\_%' AND nspname <> 'information_schema' ORDER BY 1`)
      )
      expect(schemas.rows.map((r) => r.nspname)).toEqual([a.metadataSchema, "public"].sort())
      const owners = yield* Effect.promise(() =>
        scratch.query(`SELECT DISTINCT irods_path FROM ${a.metadataSchema}.mesa_current_avus`)
      )
      expect(owners.rows.map((r) => r.irods_path)).toEqual([`${a.irodsPath}/x`])
      const meta = yield* Effect.promise(() =>
        scratch.query(`SELECT value FROM ${a.metadataSchema}.ducklake_metadata WHERE key = 'mesa_project_id'`)
      )
      expect(meta.rows).toEqual([{ value: a.projectId }])
      yield* Effect.promise(() => scratch.end())
    }))

  it.effect("retention keeps exactly the configured number of backups, newest first", () =>
    Effect.gen(function*() {
      const backup = yield* Backup
      const p = yield* registerFresh("keep")
      yield* record(p.projectId, [change(`${p.irodsPath}/x`, "k", "v")])
      const made: Array<string> = []
      for (let i = 0; i < RETENTION + 2; i++) {
        made.push((yield* backup.backupProject(p.projectId)).path.split("/").pop()!)
        yield* sleep(5)
      }
      const listed = yield* backup.listBackups(p.irodsPath)
      expect(listed.map((b) => b.name)).toEqual(made.slice(-RETENTION).reverse())
      expect(listed.every((b) => b.status === "complete")).toBe(true)
      const files = fs.readdirSync(nodePath.join(dirs.zoneDir, p.irodsPath, ".mesa/ducklake/backups")).sort()
      expect(files).toEqual(made.slice(-RETENTION).flatMap((n) => [n, `${n}.json`]).sort())
      // Asking for fewer keeps exactly that many.
      const r = yield* backup.applyRetention(p.irodsPath, 1)
      expect(r.kept).toEqual([made[made.length - 1]])
      expect((yield* backup.listBackups(p.irodsPath)).length).toBe(1)
    }))

  it.effect("a corrupt dump is detected and never replaces a good one", () =>
    Effect.gen(function*() {
      const backup = yield* Backup
      const p = yield* registerFresh("corrupt")
      const grid = yield* recordHistory(p)
      const before = yield* answers(p.projectId, grid)
      const good = yield* backup.backupProject(p.projectId)
      const dir = nodePath.join(dirs.zoneDir, p.irodsPath, ".mesa/ducklake/backups")
      const goodFiles = listTree(dir)

      // 1. pg_dump's output damaged before upload: refused, nothing uploaded, retention never ran.
      corruptNextDump = true
      const e = yield* Effect.flip(backup.backupProject(p.projectId))
      expect(e._tag).toBe("BackupCorrupt")
      expect(e.message).toContain("does not read back")
      expect(e.message).not.toContain("--list failed")
      expect(listTree(dir)).toEqual(goodFiles)

      // 2. A stored dump damaged later (truncated in storage): verify says so; retention does not count it;
      //    restore skips it for the newest good one.
      yield* sleep(5)
      const second = yield* backup.backupProject(p.projectId)
      const secondFile = nodePath.join(dirs.zoneDir, second.path)
      fs.truncateSync(secondFile, Math.floor(fs.statSync(secondFile).size / 2))
      const v = yield* Effect.flip(backup.verify(second.path))
      expect(v._tag).toBe("BackupCorrupt")
      const kept = yield* backup.applyRetention(p.irodsPath, 1)
      expect(kept.kept).toEqual([good.path.split("/").pop()])
      expect(kept.unusable).toEqual([second.path.split("/").pop()])
      expect(kept.removed).toEqual([])
      yield* dropCatalog(p)
      const r = yield* backup.restore({ root: p.irodsPath })
      expect(r.backup).toBe(good.path.split("/").pop())
      expect(r.rejected.length).toBe(1)
      expect(r.rejected[0]).toContain(second.path.split("/").pop())
      expect(yield* answers(p.projectId, grid)).toEqual(before)
      // Asked for by name, the damaged one is an error, and the catalog is left as it was.
      const named = yield* Effect.flip(backup.restore({ root: p.irodsPath, backup: second.path.split("/").pop()!, force: true }))
      expect(named._tag).toBe("BackupCorrupt")
      expect(yield* answers(p.projectId, grid)).toEqual(before)
    }))

  it.effect("a missing or too old pg_dump is a typed error that says what to install", () =>
    Effect.gen(function*() {
      const pgs = yield* EmbeddedPostgres
      const p = yield* registerFresh("tools")
      const withConfig = (config: Partial<BackupModule.BackupConfig>) =>
        Effect.flip(withBackup(config, (b) => b.backupProject(p.projectId)))
      const missing = yield* withConfig({ pgDump: "/nonexistent/bin/pg_dump" })
      expect(missing._tag).toBe("BackupToolMissing")
      expect(missing.message).toContain("postgresql-client-15")
      expect(missing.message).toContain("MESA_DUCKLAKE_BACKUP_PG_DUMP")
      const fake = nodePath.join(fs.mkdtempSync(nodePath.join(os.tmpdir(), "mesa-fake-")), "pg_dump")
      fs.writeFileSync(fake, "#!/bin/sh\necho 'pg_dump (PostgreSQL) 13.2'\n", { mode: 0o755 })
      const old = yield* withConfig({ pgDump: fake })
      expect(old._tag).toBe("BackupToolTooOld")
      if (old._tag === "BackupToolTooOld") {
        expect(old.found).toBe("13.2")
        expect(old.message).toContain("postgresql-client-15")
      }
      expect(old.message).not.toContain(Redacted.value(pgs.dsn))
    }))

  it.effect("backupAll: every project, with a summary", () =>
    Effect.gen(function*() {
      const backup = yield* Backup
      const client = yield* DuckLakeClient
      const projects = yield* client.listProjects
      const summary = yield* backup.backupAll
      expect(summary.projects).toBe(projects.length)
      expect(summary.failed).toEqual([])
      expect(summary.succeeded).toBe(projects.length)
      expect(summary.files).toBe(2 * projects.length)
      expect(summary.bytes).toBeGreaterThan(0)
    }))
})
