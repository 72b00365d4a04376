/**
 * Backup's child processes and files, as another local user or a snooping process would see them (issue 16,
 * defects 7 and 9):
 * - what `pg_dump`/`pg_restore` really received, read from `/proc/<pid>/environ` by a wrapper that then execs the
 *   real tool: no `MESA_DUCKLAKE_*` variable, no `PGPASSWORD`, no secret of ours or of anyone else's, only the
 *   allow-listed variables and our private `PGPASSFILE`;
 * - the modes of what a backup leaves on a mounted storage (dump and manifest 0600, backups collection 0700) and of
 *   its local temporary files (0600 in 0700 directories).
 */
import { expect, layer } from "@effect/vitest"
import { NodeContext } from "@effect/platform-node"
import { Effect, Layer, Redacted } from "effect"
import { execFileSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as nodePath from "node:path"
import { BackupProbe, connectionOf } from "../src/backup/Backup.js"
import type { Project } from "../src/core/domain.js"
import { withBackup } from "./backup-support.js"
import { change, embedded, EmbeddedPostgres, record, registerFresh } from "./support.js"

const { dirs, layer: Base } = embedded("backup-security")
const Live = Layer.mergeAll(Base, NodeContext.layer)

// The usual umask: without explicit modes, pg_dump's output and our copies would be 0644, directories 0755.
process.umask(0o022)

const realTool = (name: string) => execFileSync("/bin/sh", ["-c", `command -v ${name}`], { encoding: "utf8" }).trim()

/**
 * `pg_dump` and `pg_restore` wrappers that record the environment they were started with (the kernel's copy, from
 * /proc) and the modes of the password file and its directory, then exec the real tool in the same process. Only
 * absolute paths: the wrapper must not depend on what the environment holds.
 */
const wrappers = () => {
  const dir = fs.mkdtempSync(nodePath.join(os.tmpdir(), "mesa-envspy-"))
  const capture = nodePath.join(dir, "capture")
  fs.mkdirSync(capture)
  const make = (tool: string) => {
    const file = nodePath.join(dir, tool)
    fs.writeFileSync(
      file,
      [
        "#!/bin/sh",
        `/bin/cat /proc/$$/environ > '${capture}/${tool}-'$$.env`,
        `if [ -n "$PGPASSFILE" ]; then /usr/bin/stat -c '%a' "$PGPASSFILE" "$(/usr/bin/dirname "$PGPASSFILE")" > '${capture}/${tool}-'$$.modes; fi`,
        `exec '${realTool(tool)}' "$@"`,
        ""
      ].join("\n"),
      { mode: 0o755 }
    )
    return file
  }
  const read = () =>
    fs.readdirSync(capture).filter((f) => f.endsWith(".env")).sort().map((f) => {
      const raw = fs.readFileSync(nodePath.join(capture, f))
      const vars = new Map(
        raw.toString("utf8").split("\0").filter((s) => s !== "").map((s) => {
          const i = s.indexOf("=")
          return [s.slice(0, i), s.slice(i + 1)] as const
        })
      )
      const modesFile = nodePath.join(capture, f.replace(/\.env$/, ".modes"))
      const modes = fs.existsSync(modesFile) ? fs.readFileSync(modesFile, "utf8").trim().split("\n") : []
      return { file: f, raw: raw.toString("latin1"), vars, modes }
    })
  return { pgDump: make("pg_dump"), pgRestore: make("pg_restore"), read }
}

/** Sets variables for the duration of an effect, then puts the environment back exactly as it was. */
const withEnv = <A, E, R>(vars: Record<string, string>, effect: Effect.Effect<A, E, R>) =>
  Effect.acquireUseRelease(
    Effect.sync(() => {
      const saved = Object.fromEntries(Object.keys(vars).map((k) => [k, process.env[k]]))
      Object.assign(process.env, vars)
      return saved
    }),
    () => effect,
    (saved) =>
      Effect.sync(() => {
        for (const [k, v] of Object.entries(saved)) {
          if (v === undefined) delete process.env[k]
          else process.env[k] = v
        }
      })
  )

const someHistory = (p: Project) => record(p.projectId, [change(`${p.irodsPath}/a.csv`, "status", "raw")])

const modeOf = (path: string) => fs.statSync(path).mode & 0o777

layer(Live, { timeout: "300 seconds", excludeTestServices: true })("backup: child environment and file modes", (it) => {
  it.effect("pg_dump and pg_restore inherit no secret: MESA_DUCKLAKE_*, PGPASSWORD and unknown secrets stay out of /proc/<pid>/environ", () =>
    Effect.gen(function*() {
      const pgs = yield* EmbeddedPostgres
      const dsn = Redacted.value(pgs.dsn)
      const password = connectionOf(dsn).password!
      const p = yield* registerFresh("env")
      yield* someHistory(p)
      const spy = wrappers()
      // What a hosted deployment's environment holds: our DSN (with the catalog password), other secrets of ours,
      // the operator's own PGPASSWORD, a secret we have never heard of; and settings a tool legitimately needs.
      const secrets = {
        MESA_DUCKLAKE_DSN: dsn,
        MESA_DUCKLAKE_IRODS_PASSWORD: "irods-sentinel-6f1d",
        MESA_DUCKLAKE_READER_PASSWORD: "reader-sentinel-0b7e",
        MESA_DUCKLAKE_AMQP_URI: "amqps://mesa:amqp-sentinel-93ac@broker.example.org/vhost",
        PGPASSWORD: "pgpassword-sentinel-5c22",
        AWS_SECRET_ACCESS_KEY: "aws-sentinel-d41f",
        EXAMPLE_API_TOKEN: "token-sentinel-77aa"
      }
      const needed = { TZ: "UTC", LANG: "C.UTF-8", LC_CTYPE: "C.UTF-8", PGCONNECT_TIMEOUT: "17", PGAPPNAME: "mesa-backup-test" }
      yield* withEnv({ ...secrets, ...needed }, withBackup({ pgDump: spy.pgDump, pgRestore: spy.pgRestore }, (backup) =>
        Effect.gen(function*() {
          yield* backup.backupProject(p.projectId)
          yield* backup.restore({ root: p.irodsPath, force: true })
        })))

      const seen = spy.read()
      const tools = seen.map((s) => s.file.replace(/-\d+\.env$/, ""))
      // --version of each, the dump, the archive checks (twice: after the dump and before the restore), the restore.
      expect(tools.filter((t) => t === "pg_dump").length).toBeGreaterThanOrEqual(2)
      expect(tools.filter((t) => t === "pg_restore").length).toBeGreaterThanOrEqual(4)
      for (const s of seen) {
        const names = [...s.vars.keys()]
        expect(names.filter((n) => n.startsWith("MESA_DUCKLAKE_")), s.file).toEqual([])
        expect(s.vars.has("PGPASSWORD"), s.file).toBe(false)
        expect(s.vars.has("AWS_SECRET_ACCESS_KEY") || s.vars.has("EXAMPLE_API_TOKEN"), s.file).toBe(false)
        // Nowhere in the environment's bytes: not the catalog password, not any other secret's value.
        for (const value of [password, encodeURIComponent(password), ...Object.values(secrets)]) {
          expect(s.raw.includes(value), `${s.file} holds a secret`).toBe(false)
        }
        // What the tool needs did reach it.
        for (const [k, v] of Object.entries(needed)) expect(s.vars.get(k), `${s.file} ${k}`).toBe(v)
        expect(s.vars.get("PATH"), s.file).toBe(process.env.PATH)
        expect(s.vars.get("LC_MESSAGES"), s.file).toBe("C")
        // The password travels in a private password file (0600 in a 0700 directory), gone after the run.
        const passfile = s.vars.get("PGPASSFILE")
        expect(passfile, s.file).toBeDefined()
        expect(s.modes, s.file).toEqual(["600", "700"])
        expect(fs.existsSync(passfile!), s.file).toBe(false)
      }
      // Our own environment is as it was.
      for (const k of Object.keys(secrets)) if (k !== "PGPASSWORD") expect(process.env[k]).toBeUndefined()
    }))

  it.effect("a password given only as PGPASSWORD reaches pg_dump through the private password file, not the environment", () =>
    Effect.gen(function*() {
      const pgs = yield* EmbeddedPostgres
      const { conninfo, password } = connectionOf(Redacted.value(pgs.dsn))
      const p = yield* registerFresh("pgpassword")
      yield* someHistory(p)
      const spy = wrappers()
      // The catalog client (node-postgres) takes the password from PGPASSWORD when the DSN has none: so must the tools.
      const result = yield* withEnv({ PGPASSWORD: password! }, withBackup(
        { dsn: Redacted.make(conninfo), pgDump: spy.pgDump, pgRestore: spy.pgRestore },
        (backup) => backup.backupProject(p.projectId)
      ))
      expect(result.bytes).toBeGreaterThan(0)
      const seen = spy.read()
      expect(seen.length).toBeGreaterThan(0)
      for (const s of seen) {
        expect(s.vars.has("PGPASSWORD"), s.file).toBe(false)
        expect(s.raw.includes(password!), s.file).toBe(false)
        expect(s.vars.get("PGPASSFILE"), s.file).toBeDefined()
      }
    }))

  it.effect("backups are private on a mounted storage: dump and manifest 0600, backups collection 0700, local temporaries 0600 in 0700", () =>
    Effect.gen(function*() {
      const p = yield* registerFresh("modes")
      yield* someHistory(p)
      // A backups collection an older version left world-readable is tightened too.
      const collection = nodePath.join(dirs.zoneDir, p.irodsPath, ".mesa/ducklake/backups")
      fs.mkdirSync(collection, { recursive: true, mode: 0o755 })
      fs.chmodSync(collection, 0o755)
      const local: Array<{ file: number; dir: number }> = []
      const probe = Layer.succeed(BackupProbe, {
        afterDump: (file) => Effect.sync(() => local.push({ file: modeOf(file), dir: modeOf(nodePath.dirname(file)) }))
      })
      const result = yield* withBackup({}, (backup) => backup.backupProject(p.projectId), probe)
      expect(local).toEqual([{ file: 0o600, dir: 0o700 }])
      const dump = nodePath.join(dirs.zoneDir, result.path)
      expect(modeOf(dump).toString(8)).toBe("600")
      expect(modeOf(`${dump}.json`).toString(8)).toBe("600")
      expect(modeOf(collection).toString(8)).toBe("700")
      // A second backup into the existing collection: the same modes.
      const second = yield* withBackup({}, (backup) => backup.backupProject(p.projectId))
      expect(modeOf(nodePath.join(dirs.zoneDir, second.path)).toString(8)).toBe("600")
      expect(modeOf(nodePath.join(dirs.zoneDir, `${second.path}.json`)).toString(8)).toBe("600")
      expect(modeOf(collection).toString(8)).toBe("700")
    }))
})
