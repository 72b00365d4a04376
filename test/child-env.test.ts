/**
 * Issue 16, defect 7: no child process we start inherits a secret. Read from the kernel's copy of each child's
 * environment (`/proc/<pid>/environ`), not from what we meant to pass:
 * - the embedded PostgreSQL: `initdb`, its bootstrap backends and the postmaster (which, as root, run as the
 *   `postgres` user: another user must not get our DSN);
 * - the CLI's `doctor`, whose `pg_dump --version` is a fake `pg_dump` first on PATH that records its environment.
 */
import { Effect, Exit, Redacted, Scope } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as nodePath from "node:path"
import pg from "pg"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { serverEnv, toolEnv } from "../src/postgres/childEnv.js"
import * as EmbeddedPostgres from "../src/postgres/EmbeddedPostgres.js"
import { ensureBuilt, runCli } from "./cli/support.js"

const tag = () => Math.random().toString(36).slice(2, 10)

/** What a hosted deployment's environment holds: our DSN and other secrets of ours, and one we never heard of. */
const secrets = () => {
  const dsnPassword = `dsnpw-${tag()}`
  return {
    dsnPassword,
    vars: {
      MESA_DUCKLAKE_DSN: `postgresql://mesa:${dsnPassword}@127.0.0.1:1/mesa`,
      MESA_DUCKLAKE_IRODS_PASSWORD: `irodspw-${tag()}`,
      PGPASSWORD: `pgpw-${tag()}`,
      ACME_CLOUD_SECRET_TOKEN: `acme-${tag()}`
    } as Record<string, string>
  }
}

/** Sets variables for the duration of `f`, then puts the environment back exactly as it was. */
const withEnv = async <A>(vars: Record<string, string>, f: () => Promise<A>): Promise<A> => {
  const saved = Object.fromEntries(Object.keys(vars).map((k) => [k, process.env[k]] as const))
  Object.assign(process.env, vars)
  try {
    return await f()
  } finally {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k]
      else process.env[k] = v
    }
  }
}

const parseEnviron = (raw: Buffer): Map<string, string> =>
  new Map(raw.toString("utf8").split("\0").filter((s) => s !== "").map((s) => {
    const i = s.indexOf("=")
    return [s.slice(0, i), s.slice(i + 1)] as const
  }))

/** The environment a process was started with, as the kernel keeps it (undefined when it is gone). */
const environOf = (pid: number): { raw: string; vars: Map<string, string> } | undefined => {
  try {
    const raw = fs.readFileSync(`/proc/${pid}/environ`)
    return { raw: raw.toString("utf8"), vars: parseEnviron(raw) }
  } catch {
    return undefined
  }
}

/**
 * Every process whose command line mentions `needle`, sampled every few milliseconds until `stop`: catches the
 * short-lived `initdb` and its bootstrap backends too. Keyed by pid, the first environ read.
 */
const watchProcesses = (needle: string) => {
  const seen = new Map<number, { cmdline: string; raw: string; vars: Map<string, string> }>()
  let running = true
  const scan = () => {
    for (const entry of fs.readdirSync("/proc")) {
      if (!/^\d+$/.test(entry)) continue
      const pid = Number(entry)
      if (seen.has(pid) || pid === process.pid) continue
      let cmdline: string
      try {
        cmdline = fs.readFileSync(`/proc/${pid}/cmdline`).toString("utf8").split("\0").join(" ")
      } catch {
        continue
      }
      if (!cmdline.includes(needle)) continue
      const env = environOf(pid)
      if (env !== undefined) seen.set(pid, { cmdline, ...env })
    }
  }
  const loop = (async () => {
    while (running) {
      scan()
      await new Promise((r) => setTimeout(r, 5))
    }
  })()
  return {
    seen,
    stop: async () => {
      running = false
      await loop
      return seen
    }
  }
}

const expectNoSecret = (
  what: string,
  env: { raw: string; vars: Map<string, string> },
  s: ReturnType<typeof secrets>
) => {
  for (const name of Object.keys(s.vars)) expect(env.vars.has(name), `${what}: ${name} inherited`).toBe(false)
  expect([...env.vars.keys()].filter((k) => k.startsWith("MESA_DUCKLAKE_")), what).toEqual([])
  // Nowhere in the environment's bytes, under any name.
  for (const value of [s.dsnPassword, ...Object.values(s.vars)]) {
    expect(env.raw.includes(value), `${what}: a secret's value is in its environment`).toBe(false)
  }
}

describe("childEnv", () => {
  it("serverEnv: PATH, LD_LIBRARY_PATH, TZ, TMPDIR and LC_ALL=C; nothing else, whatever our environment holds", () => {
    const s = secrets()
    const source = {
      ...s.vars,
      PATH: "/usr/bin:/bin",
      LD_LIBRARY_PATH: "/opt/lib",
      TZ: "Europe/Amsterdam",
      TMPDIR: "/scratch",
      HOME: "/root",
      USER: "root",
      LANG: "de_DE.UTF-8",
      LC_ALL: "de_DE.UTF-8",
      PGHOST: "db",
      PGDATA: "/elsewhere",
      MESA_DUCKLAKE_READER_PASSWORD: "r",
      AWS_SECRET_ACCESS_KEY: "k"
    }
    expect(serverEnv(source)).toEqual({
      PATH: "/usr/bin:/bin",
      LD_LIBRARY_PATH: "/opt/lib",
      TZ: "Europe/Amsterdam",
      TMPDIR: "/scratch",
      LC_ALL: "C"
    })
    expect(serverEnv({})).toEqual({ LC_ALL: "C" })
    // The client tools' allow-list keeps none of the secrets either (Backup re-exports it).
    const tool = toolEnv(undefined, source, [s.dsnPassword])
    for (const name of [...Object.keys(s.vars), "MESA_DUCKLAKE_READER_PASSWORD", "AWS_SECRET_ACCESS_KEY"]) {
      expect(tool).not.toHaveProperty(name)
    }
  })
})

describe("embedded PostgreSQL", () => {
  it("initdb, its bootstrap backends and the postmaster inherit no secret; the server works", async () => {
    const s = secrets()
    const base = fs.mkdtempSync(nodePath.join(os.tmpdir(), "mesa-childenv-"))
    fs.chmodSync(base, 0o755) // as root, the postgres user must reach the data directory
    const dataDir = nodePath.join(base, `data-${tag()}`)
    const before = Object.fromEntries(Object.keys(s.vars).map((k) => [k, process.env[k]] as const))
    const scope = Effect.runSync(Scope.make())
    try {
      const watch = watchProcesses(dataDir)
      const server = await withEnv(s.vars, () =>
        Effect.runPromise(Scope.extend(EmbeddedPostgres.make({ dataDir }), scope)).finally(() => watch.stop()))

      // The postmaster, by the pid it wrote itself.
      const pid = Number(fs.readFileSync(nodePath.join(dataDir, "postmaster.pid"), "utf8").split("\n")[0])
      expect(pid).toBeGreaterThan(0)
      const postmaster = environOf(pid)
      expect(postmaster, `no /proc/${pid}/environ`).toBeDefined()
      expectNoSecret("postmaster", postmaster!, s)
      expect(postmaster!.vars.get("LC_ALL")).toBe("C")
      expect(postmaster!.vars.has("PATH")).toBe(true)

      // initdb and what it started (bootstrap and single-user backends), sampled while they ran.
      const initdb = [...watch.seen.values()].filter((p) => /\binitdb\b/.test(p.cmdline.split(" ")[0]!))
      expect(initdb.length, "initdb was not seen running").toBeGreaterThan(0)
      for (const p of watch.seen.values()) expectNoSecret(p.cmdline.slice(0, 80), p, s)

      // The server works, with the password from its DSN.
      const client = new pg.Client({ connectionString: Redacted.value(server.dsn) })
      await client.connect()
      try {
        expect((await client.query("SELECT 41 + 1 AS n")).rows[0].n).toBe(42)
      } finally {
        await client.end()
      }

      // A restart (stop, start) with the secrets still in our environment: the new postmaster is as clean.
      await withEnv(s.vars, async () => {
        await Effect.runPromise(server.stop)
        await Effect.runPromise(server.start)
      })
      const again = Number(fs.readFileSync(nodePath.join(dataDir, "postmaster.pid"), "utf8").split("\n")[0])
      expect(again).not.toBe(pid)
      expectNoSecret("restarted postmaster", environOf(again)!, s)
    } finally {
      await Effect.runPromise(Scope.close(scope, Exit.void))
      fs.rmSync(base, { recursive: true, force: true })
    }
    // Our own environment is as it was.
    expect(Object.fromEntries(Object.keys(s.vars).map((k) => [k, process.env[k]] as const))).toEqual(before)
  }, 180_000)
})

describe("CLI doctor", () => {
  let work: string
  beforeAll(async () => {
    await ensureBuilt()
    work = fs.mkdtempSync(nodePath.join(os.tmpdir(), "mesa-childenv-cli-"))
  }, 300_000)
  afterAll(() => fs.rmSync(work, { recursive: true, force: true }))

  it("pg_dump --version inherits no secret: MESA_DUCKLAKE_DSN and the others stay out of its /proc/<pid>/environ", async () => {
    const s = secrets()
    // A fake pg_dump first on PATH: records the environment it was started with, prints a version. Absolute paths
    // only: it must not depend on what its environment holds.
    const bin = nodePath.join(work, "bin")
    fs.mkdirSync(bin)
    const captured = nodePath.join(work, "pg_dump.environ")
    fs.writeFileSync(
      nodePath.join(bin, "pg_dump"),
      ["#!/bin/sh", `/bin/cat /proc/$$/environ > '${captured}'`, "echo 'pg_dump (PostgreSQL) 99.1'", ""].join("\n"),
      { mode: 0o755 }
    )
    const zone = nodePath.join(work, "zone")
    fs.mkdirSync(zone)
    const r = await runCli(["doctor", "--json"], {
      env: {
        ...s.vars,
        PATH: `${bin}:${process.env.PATH ?? "/usr/bin:/bin"}`,
        MESA_DUCKLAKE_MOUNT_ROOT: zone,
        MESA_DUCKLAKE_CACHE_DIR: nodePath.join(work, "cache")
      }
    })
    // The catalog in the DSN does not exist: doctor fails that check, and still asks pg_dump for its version.
    const report = JSON.parse(r.stdout) as { checks: Array<{ check: string; ok: boolean; detail: string }> }
    expect(report.checks.find((c) => c.check === "pg_dump"), r.stdout + r.stderr).toMatchObject({
      ok: true,
      detail: "pg_dump (PostgreSQL) 99.1"
    })
    expect(fs.existsSync(captured), "the fake pg_dump did not run").toBe(true)
    const env = { raw: fs.readFileSync(captured, "utf8"), vars: parseEnviron(fs.readFileSync(captured)) }
    expectNoSecret("doctor's pg_dump", env, s)
    expect(env.vars.get("PATH")).toBe(`${bin}:${process.env.PATH ?? "/usr/bin:/bin"}`)
    // No secret in what doctor printed either.
    for (const value of [s.dsnPassword, ...Object.values(s.vars)]) expect(r.stdout + r.stderr).not.toContain(value)
  }, 120_000)
})
