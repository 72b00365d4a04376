/**
 * Catalog errors name their cause (issue 19, item 5). Against a real embedded PostgreSQL: a wrong password, a wrong
 * user, a missing database, a closed port, a host that does not exist, a server that accepts and never answers, and
 * DSNs that are neither form (`notadsn`, `postgres://u:secret@[bad`, libpq pairs with a typo or an open quote) each
 * give their own error — through the Catalog service, the Promise facade and the CLI (exit codes) — and the
 * password appears in no message, no log line, no JSON error, no printed cause.
 */
import { Cause, Effect, Exit, Logger, LogLevel, Redacted, Scope } from "effect"
import fc from "fast-check"
import * as fs from "node:fs"
import { createRequire } from "node:module"
import { createServer, type Server, type Socket } from "node:net"
import { inspect } from "node:util"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import * as Catalog from "../src/catalog/Catalog.js"
import { describeDsn, parseDsn } from "../src/catalog/dsn.js"
import { openDuckLake } from "../src/facade.js"
import * as EmbeddedPostgres from "../src/postgres/EmbeddedPostgres.js"
import { closedPort, ensureBuilt, runCli, stderrJson } from "./cli/support.js"
import { tempDirs } from "./support.js"

/** node-postgres's own connection-string parser (the copy `pg` itself uses). */
const pgRequire = createRequire(createRequire(import.meta.url).resolve("pg"))
const parseConnectionString = pgRequire("pg-connection-string").parse as (url: string) => Record<string, unknown>

/** A libpq value, quoted: backslashes and quotes escaped. */
const quote = (v: string) => `'${v.replace(/\\/g, "\\\\").replace(/'/g, "\\'")}'`

const dirs = tempDirs("catalog-errors")
let scope: Scope.CloseableScope
let superDsn = ""
let port = 0
/** The server's real password: the wrong-user and missing-database cases carry it. */
let realPassword = ""
/** A TCP server that accepts connections and never says a word (a frozen catalog). */
let silent: Server
let silentPort = 0
const silentSockets: Array<Socket> = []

beforeAll(async () => {
  scope = Effect.runSync(Scope.make())
  const pg = await Effect.runPromise(Scope.extend(EmbeddedPostgres.make(), scope))
  port = pg.port
  superDsn = Redacted.value(pg.dsn)
  realPassword = decodeURIComponent(new URL(Redacted.value(pg.dsn)).password)
  silent = createServer((s) => void silentSockets.push(s))
  await new Promise<void>((resolve) => silent.listen(0, "127.0.0.1", resolve))
  silentPort = (silent.address() as { port: number }).port
}, 120_000)

afterAll(async () => {
  for (const s of silentSockets) s.destroy()
  silent?.close()
  await Effect.runPromise(Scope.close(scope, Exit.void))
  fs.rmSync(dirs.base, { recursive: true, force: true })
})

interface Case {
  readonly name: string
  readonly dsn: () => string
  /** The secret that must never show (the password the DSN carries, right or wrong). */
  readonly secret: () => string
  readonly tag: "CatalogUnavailable" | "InvalidDsn"
  readonly reason?: string
  readonly target?: () => string
  /** Words the message must contain. */
  readonly says: () => ReadonlyArray<string | RegExp>
  readonly exitCode: number
}

const WRONG = "Wr0ng-pass-9931"
const cases: ReadonlyArray<Case> = [
  {
    name: "wrong password",
    dsn: () => `postgresql://postgres:${WRONG}@127.0.0.1:${port}/mesa`,
    secret: () => WRONG,
    tag: "CatalogUnavailable",
    reason: "authentication-failed",
    target: () => `127.0.0.1:${port}/mesa`,
    says: () => ["authentication failed", `user "postgres"`],
    exitCode: 4
  },
  {
    name: "wrong user",
    dsn: () => `postgresql://nobody:${encodeURIComponent(realPassword)}@127.0.0.1:${port}/mesa`,
    secret: () => realPassword,
    tag: "CatalogUnavailable",
    reason: "authentication-failed",
    says: () => ["authentication failed", `user "nobody"`],
    exitCode: 4
  },
  {
    name: "missing database (libpq pairs)",
    dsn: () => `host=127.0.0.1 port=${port} user=postgres password='${realPassword}' dbname=no_such_db`,
    secret: () => realPassword,
    tag: "CatalogUnavailable",
    reason: "database-missing",
    target: () => `127.0.0.1:${port}/no_such_db`,
    says: () => ["does not exist", "no_such_db"],
    exitCode: 4
  },
  {
    name: "closed port",
    dsn: () => `postgresql://postgres:${encodeURIComponent(realPassword)}@127.0.0.1:${closed}/mesa`,
    secret: () => realPassword,
    tag: "CatalogUnavailable",
    reason: "unreachable",
    target: () => `127.0.0.1:${closed}/mesa`,
    says: () => ["unreachable", "connection refused"],
    exitCode: 4
  },
  {
    name: "host that does not exist",
    dsn: () => `postgresql://postgres:${WRONG}@no-such-host.invalid:${port}/mesa`,
    secret: () => WRONG,
    tag: "CatalogUnavailable",
    reason: "unreachable",
    target: () => `no-such-host.invalid:${port}/mesa`,
    // Without a resolver at hand the lookup fails instead of answering "no such host".
    says: () => ["unreachable", /\((host not found|host name lookup failed)\)/],
    exitCode: 4
  },
  {
    name: "server that never answers",
    dsn: () => `postgresql://postgres:${WRONG}@127.0.0.1:${silentPort}/mesa`,
    secret: () => WRONG,
    tag: "CatalogUnavailable",
    reason: "timeout",
    says: () => ["not answering", "timeout"],
    exitCode: 4
  },
  {
    name: "notadsn",
    dsn: () => "notadsn",
    secret: () => "notadsn",
    tag: "InvalidDsn",
    says: () => ["neither a postgresql:// URL nor libpq key=value pairs"],
    exitCode: 1
  },
  {
    name: "a URL that does not parse",
    dsn: () => "postgres://u:secret@[bad",
    secret: () => "secret",
    tag: "InvalidDsn",
    says: () => ["not a valid postgresql:// URL"],
    exitCode: 1
  },
  {
    name: "libpq pairs with an unknown key",
    dsn: () => `host=127.0.0.1 dbnmae=mesa password=Sup3rSecret`,
    secret: () => "Sup3rSecret",
    tag: "InvalidDsn",
    says: () => [`unknown key "dbnmae"`],
    exitCode: 1
  },
  {
    name: "libpq pairs with an unterminated quote",
    dsn: () => `host=127.0.0.1 user=postgres password='Sup3rSecret dbname=mesa`,
    secret: () => "Sup3rSecret",
    tag: "InvalidDsn",
    says: () => [`unterminated quoted value for "password"`],
    exitCode: 1
  }
]
let closed = 0

/** Every text a failure could end up in: message, string form, JSON, the printed cause (with its chain). */
const renderings = (e: unknown, cause?: Cause.Cause<unknown>) => [
  (e as Error).message,
  String(e),
  JSON.stringify(e),
  inspect(e, { depth: 8 }),
  ...(cause === undefined ? [] : [Cause.pretty(cause)])
]

/** The Catalog service over `dsn`, asked for its projects; the failure and every log line written meanwhile. */
const throughCatalog = (dsn: string) => {
  const logs: Array<string> = []
  const logger = Logger.make((o) => void logs.push(Logger.logfmtLogger.log(o), Logger.stringLogger.log(o)))
  return Effect.runPromise(
    Effect.flatMap(Catalog.Catalog, (c) => c.listProjects).pipe(
      Effect.provide(Catalog.layer({ dsn: Redacted.make(dsn), connectTimeout: "1500 millis", statementTimeout: "3 seconds" })),
      Effect.tapErrorCause((cause) => Effect.logError("listProjects failed", cause)),
      Effect.provide(Logger.replace(Logger.defaultLogger, logger)),
      Logger.withMinimumLogLevel(LogLevel.All),
      Effect.exit
    )
  ).then((exit) => ({ exit, logs }))
}

describe("catalog errors name their cause, never the password", () => {
  beforeAll(() => {
    closed = closedPort()
  })

  for (const c of cases) {
    it(`${c.name}: ${c.tag}${c.reason === undefined ? "" : ` (${c.reason})`} through the Catalog service`, async () => {
      const { exit, logs } = await throughCatalog(c.dsn())
      expect(Exit.isFailure(exit)).toBe(true)
      if (!Exit.isFailure(exit)) return
      const e = Cause.squash(exit.cause) as any
      expect(e._tag).toBe(c.tag)
      if (c.reason !== undefined) expect(e.reason).toBe(c.reason)
      if (c.target !== undefined) expect(e.target).toBe(c.target())
      for (const words of c.says()) expect(e.message).toMatch(words)
      expect(logs.length).toBeGreaterThan(0)
      for (const text of [...renderings(e, exit.cause), ...logs]) expect(text).not.toContain(c.secret())
    }, 30_000)

    it(`${c.name}: the Promise facade rejects with the same error`, async () => {
      const e: any = await (async () => {
        await using lake = await openDuckLake({ dsn: c.dsn(), storage: { mountRoot: dirs.zoneDir }, cacheDir: dirs.cacheDir })
        return await lake.listProjects()
      })().then(() => undefined, (err) => err)
      expect(e?._tag).toBe(c.tag)
      if (c.reason !== undefined) expect(e.reason).toBe(c.reason)
      for (const text of renderings(e)) expect(text).not.toContain(c.secret())
    }, 30_000)
  }

  it("the message's target is host:port/database of either DSN form, or <invalid DSN>", () => {
    expect(describeDsn("notadsn")).toBe("<invalid DSN>")
    expect(describeDsn("postgres://u:secret@[bad")).toBe("<invalid DSN>")
    expect(describeDsn("postgresql://u:p@db.example.org/mesa")).toBe("db.example.org:5432/mesa")
    expect(describeDsn("host=db.example.org port=6543 dbname=mesa user=u password=p")).toBe("db.example.org:6543/mesa")
    expect(describeDsn("host = ::1 dbname = 'my db'")).toBe("::1:5432/my db")
  })

  it("libpq pairs reach node-postgres exactly: any user, password and database name (property)", () => {
    const text = fc.string({
      unit: fc.constantFrom("a", "Z", "0", " ", "\t", "'", "\"", "\\", "%", "%2F", "@", ":", "&", "=", "+", "$", ",", ";", "~", "é", "😀", "/", "?", "#"),
      minLength: 1,
      maxLength: 12
    })
    fc.assert(fc.property(text, text, text.filter((d) => !/[/?#]/.test(d)), (user, password, db) => {
      const parsed = parseDsn(`host=db.example.org port=5433 user=${quote(user)} password=${quote(password)} dbname=${quote(db)}`)
      if (parsed._tag === "Left") throw new Error(parsed.left.message)
      const c = parseConnectionString(parsed.right.url)
      expect([c.user, c.password, c.database, c.host, c.port]).toEqual([user, password, db, "db.example.org", "5433"])
      expect(parsed.right.password).toBe(password)
    }), { numRuns: 300 })
    expect(parseDsn("host=h dbname='a/b'")._tag).toBe("Left")
  })

  it("a login with quotes, spaces, backslashes and % in the password and database name works through libpq pairs", async () => {
    const pg = pgRequire("pg") as typeof import("pg")
    const role = "o'dd user"
    const password = String.raw`p@ss 'w\o"rd% x`
    const database = "my db;x=1 é"
    const admin = new pg.Client({ connectionString: superDsn })
    await admin.connect()
    try {
      await admin.query(`CREATE ROLE ${admin.escapeIdentifier(role)} LOGIN PASSWORD ${admin.escapeLiteral(password)}`)
      await admin.query(`CREATE DATABASE ${admin.escapeIdentifier(database)} OWNER ${admin.escapeIdentifier(role)}`)
    } finally {
      await admin.end()
    }
    const dsn = `host=127.0.0.1 port=${port} user=${quote(role)} password=${quote(password)} dbname=${quote(database)}`
    const { exit, logs } = await throughCatalog(dsn)
    expect(Exit.isSuccess(exit) ? exit.value : Cause.pretty(exit.cause)).toEqual([])
    for (const line of logs) expect(line).not.toContain(password)
    // The same login with one character of the password wrong is refused as such.
    const wrong = await throughCatalog(dsn.replace("p@ss", "p@sS"))
    expect(Exit.isFailure(wrong.exit) && (Cause.squash(wrong.exit.cause) as any).reason).toBe("authentication-failed")
  }, 30_000)

  it("libpq pairs become one URL: quoting, escapes, IPv6, sockets and sslmode kept", () => {
    const parsed = (dsn: string) => {
      const r = parseDsn(dsn)
      if (r._tag === "Left") throw new Error(r.left.message)
      return r.right
    }
    const p = parsed(String.raw`host=h port=5433 dbname=d user='a b' password='it\'s \\ x' sslmode=require`)
    expect(p.password).toBe(String.raw`it's \ x`)
    expect(p.user).toBe("a b")
    const u = new URL(p.url)
    expect([u.hostname, u.port, u.pathname, decodeURIComponent(u.password), u.searchParams.get("sslmode")]).toEqual([
      "h",
      "5433",
      "/d",
      String.raw`it's \ x`,
      "require"
    ])
    expect(new URL(parsed("host=::1 dbname=d").url).hostname).toBe("[::1]")
    expect(new URL(parsed("host=/var/run/postgresql dbname=d").url).searchParams.get("host")).toBe("/var/run/postgresql")
    for (const bad of ["port=0", "port=70000", "host=h port=x", "=x", "mysql://u:p@h/d", "   "]) {
      expect(parseDsn(bad)._tag).toBe("Left")
    }
  })
})

describe("the CLI: one JSON error line, an exit code by cause, no password anywhere", () => {
  beforeAll(async () => {
    await ensureBuilt()
  }, 300_000)

  for (const c of cases) {
    it(`${c.name}: exit ${c.exitCode}, code ${c.tag}`, async () => {
      const r = await runCli(["--log-level", "all", "project", "list", "--json"], {
        env: {
          MESA_DUCKLAKE_DSN: c.dsn(),
          MESA_DUCKLAKE_MOUNT_ROOT: dirs.zoneDir,
          MESA_DUCKLAKE_CACHE_DIR: dirs.cacheDir,
          MESA_DUCKLAKE_CATALOG_CONNECT_TIMEOUT_MS: "1500"
        }
      })
      expect(r.code).toBe(c.exitCode)
      const err = stderrJson(r)
      expect(err.code).toBe(c.tag)
      for (const words of c.says()) expect(err.message).toMatch(words)
      expect(r.stdout + r.stderr).not.toContain(c.secret())
    }, 60_000)
  }
})
