/**
 * The catalog's connection: configuration and deadlines, the lazily opened PostgreSQL client (held in a
 * `SynchronizedRef`, opened on first use and again on the next call after a failure), the writer lock, and the
 * mapping of every SQL failure to `CatalogUnavailable` (down, slow, login refused, no such database: see `dsn.ts`)
 * or `CatalogError` (a statement failed) with the password scrubbed. Every statement module runs its SQL through the `Conn` made here.
 */
// Deep imports: the packages' index modules load every module they have (msgpackr's native addon among them).
import * as Reactivity from "@effect/experimental/Reactivity"
import * as PgClient from "@effect/sql-pg/PgClient"
import type { SqlClient, SqlError } from "@effect/sql"
import { Config, Duration, Effect, ExecutionStrategy, Exit, Option, Redacted, Schedule, Scope, SynchronizedRef } from "effect"
import { CatalogError, CatalogSchemaMismatch, CatalogUnavailable } from "../core/errors.js"
import { migrate } from "./migrations.js"
import { acquirePool, isDeadline } from "./pool.js"
import { classifyConnectFailure, parseDsn } from "./dsn.js"
import type { Failure } from "./types.js"

export { describeDsn, dsnToUrl } from "./dsn.js"

export interface CatalogConfig {
  /** `postgresql://…`, `postgres://…` or libpq `key=value` pairs. */
  readonly dsn: Redacted.Redacted<string>
  readonly maxConnections?: number
  /**
   * Deadline for getting a connection (a free pooled one, or a new one through its handshake). Default: 5 s, or
   * `MESA_DUCKLAKE_CATALOG_CONNECT_TIMEOUT_MS`.
   */
  readonly connectTimeout?: Duration.DurationInput
  /**
   * Deadline for each statement's answer. Default: 30 s, or `MESA_DUCKLAKE_CATALOG_STATEMENT_TIMEOUT_MS`. Past it
   * the connection is dropped and the call fails with `CatalogUnavailable { reason: "timeout" }`.
   */
  readonly statementTimeout?: Duration.DurationInput
}

/** Default deadlines of catalog calls (see `CatalogConfig`). */
export const DEFAULT_CONNECT_TIMEOUT_MS = 5_000
export const DEFAULT_STATEMENT_TIMEOUT_MS = 30_000

/**
 * What every statement module runs its SQL through. `withSql` hands `f` the client (connecting first if need be)
 * and maps its `SqlError`s to `Failure`s, naming `operation` in a `CatalogError`.
 */
export interface Conn {
  readonly withSql: <A, E>(
    f: (sql: SqlClient.SqlClient) => Effect.Effect<A, E>,
    operation?: string
  ) => Effect.Effect<A, Exclude<E, SqlError.SqlError> | Failure>
  /** Runs `effect` holding the project's writer lock (a session advisory lock on a reserved connection). */
  readonly withWriteLock: <A, E, R>(
    projectId: string,
    effect: Effect.Effect<A, E, R>
  ) => Effect.Effect<A, E | Failure, R>
  /** host:port/database, for messages (no password). */
  readonly target: string
}

const deadlineMs = (name: string, fallback: number) =>
  Config.integer(name).pipe(
    Config.validate({ message: "must be a positive number of milliseconds", validation: (n) => n > 0 }),
    Config.withDefault(fallback)
  )

/** True when an error's cause chain says the connection was refused, lost or never made (not a failed statement). */
export const isConnectionProblem = (e: unknown): boolean => classifyConnectFailure(e) !== undefined

/** Copy of a SqlError with the password scrubbed from anything that might echo the DSN. */
export const scrub = (e: unknown, secret: string | undefined): unknown => {
  if (secret === undefined || secret.length === 0) return e
  const m = e instanceof Error ? e.message : String(e)
  return m.includes(secret) ? new Error(m.split(secret).join("***")) : e
}

/** Where failures are reported against, and what to scrub from them. */
interface Target {
  readonly target: string
  readonly user: string | undefined
  readonly secret: string | undefined
}

/** A failure about the catalog itself (deadline, refused login, missing database, network), else `undefined`. */
const unavailable = (t: Target, e: unknown): CatalogUnavailable | undefined => {
  if (isDeadline(e)) return new CatalogUnavailable({ reason: "timeout", target: t.target, cause: scrub(e, t.secret) })
  const failure = classifyConnectFailure(e)
  if (failure === undefined) return undefined
  return new CatalogUnavailable({
    reason: failure.reason,
    target: t.target,
    ...(failure.reason === "authentication-failed" && t.user !== undefined ? { user: t.user } : {}),
    ...(failure.detail === undefined ? {} : { detail: failure.detail }),
    cause: scrub(e, t.secret)
  })
}

/** A failed statement as a `Failure`: a deadline or a lost connection is `CatalogUnavailable`, the rest `CatalogError`. */
const toFailure = (t: Target, operation: string) => (e: unknown): Failure =>
  unavailable(t, e) ?? new CatalogError({ operation, cause: scrub(e, t.secret) })

/**
 * `SqlError` failures as `Failure`s. @effect/sql turns a failed ROLLBACK into a defect; on a connection dropped at a
 * deadline (or lost) that is a catalog failure like any other, not a bug, so those defects are mapped too.
 */
const mapSqlErrors = (t: Target, operation: string) => <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  effect.pipe(
    Effect.catchIf(
      (e): e is any => (e as any)?._tag === "SqlError",
      (e) => Effect.fail(toFailure(t, operation)(e))
    ),
    Effect.catchSomeDefect((d) =>
      (d as any)?._tag === "SqlError" ? Option.some(Effect.fail(toFailure(t, operation)(d))) : Option.none()
    )
  ) as Effect.Effect<A, Exclude<E, SqlError.SqlError> | Failure, R>

/** Opens the pool in a child of `scope`, then checks and migrates the shared schema; on failure the child is closed. */
const openClient = (
  scope: Scope.Scope,
  t: Target,
  options: {
    readonly url: string
    readonly maxConnections: number
    readonly connectTimeout: Duration.Duration
    readonly statementTimeout: Duration.Duration
  }
): Effect.Effect<SqlClient.SqlClient, Failure> =>
  Effect.gen(function*() {
    const child = yield* Scope.fork(scope, ExecutionStrategy.sequential)
    const client = yield* PgClient.fromPool({
      acquire: acquirePool({
        connectionString: options.url,
        maxConnections: options.maxConnections,
        acquireTimeout: options.connectTimeout,
        statementTimeout: options.statementTimeout,
        idleTimeout: Duration.seconds(30),
        applicationName: "mesa-ducklake"
      }),
      applicationName: "mesa-ducklake"
    }).pipe(
      Effect.provide(Reactivity.layer),
      Scope.extend(child),
      Effect.tapError(() => Scope.close(child, Exit.void))
    )
    yield* migrate(client).pipe(Effect.tapError(() => Scope.close(child, Exit.void)))
    return client as SqlClient.SqlClient
  }).pipe(
    Effect.mapError((e) =>
      e instanceof CatalogSchemaMismatch || e instanceof CatalogError || e instanceof CatalogUnavailable
        ? e
        : unavailable(t, e) ?? ((e as SqlError.SqlError)._tag === "SqlError"
          // Connecting failed in a way neither PostgreSQL nor the socket named (a TLS refusal, say).
          ? new CatalogUnavailable({ reason: "unreachable", target: t.target, cause: scrub(e, t.secret) })
          : new CatalogError({ operation: "connect", cause: scrub(e, t.secret) }))
    )
  )

/** The writer lock: a try-lock polled on a reserved connection, released by a finalizer (or by the server). */
const writeLock = <A, E, R>(sql: SqlClient.SqlClient, projectId: string, effect: Effect.Effect<A, E, R>) =>
  Effect.scoped(Effect.gen(function*() {
    const conn = yield* sql.reserve
    const key = `mesa-ducklake:${projectId}`
    // Poll a try-lock rather than block: a blocked query cannot be interrupted cleanly, a poll can.
    yield* conn.executeValues(`SELECT pg_try_advisory_lock(hashtextextended($1, 0))`, [key]).pipe(
      Effect.flatMap((rows) => rows[0]?.[0] === true ? Effect.void : Effect.fail("busy" as const)),
      Effect.retry({
        while: (e) => e === "busy",
        schedule: Schedule.exponential("2 millis", 1.5).pipe(
          Schedule.union(Schedule.spaced("50 millis")),
          Schedule.jittered
        )
      }),
      Effect.withSpan("write.lock")
    )
    yield* Effect.addFinalizer(() =>
      conn.executeValues(`SELECT pg_advisory_unlock(hashtextextended($1, 0))`, [key]).pipe(Effect.ignore)
    )
    return yield* effect
  }))

/**
 * The connection of one catalog: parses the DSN (`InvalidDsn` when it is neither form), reads the deadlines (config,
 * else environment, else defaults) and connects lazily. Making it never touches PostgreSQL; the pool lives in the
 * current scope once opened.
 */
export const makeConn = (config: CatalogConfig) =>
  Effect.gen(function*() {
    const scope = yield* Effect.scope
    const { password: secret, target, url, user } = yield* parseDsn(Redacted.value(config.dsn))
    const t: Target = { target, user, secret }
    const state = yield* SynchronizedRef.make<Option.Option<SqlClient.SqlClient>>(Option.none())

    const connectTimeout = config.connectTimeout === undefined
      ? Duration.millis(yield* deadlineMs("MESA_DUCKLAKE_CATALOG_CONNECT_TIMEOUT_MS", DEFAULT_CONNECT_TIMEOUT_MS))
      : Duration.decode(config.connectTimeout)
    const statementTimeout = config.statementTimeout === undefined
      ? Duration.millis(yield* deadlineMs("MESA_DUCKLAKE_CATALOG_STATEMENT_TIMEOUT_MS", DEFAULT_STATEMENT_TIMEOUT_MS))
      : Duration.decode(config.statementTimeout)
    const connect = openClient(scope, t, {
      url,
      maxConnections: config.maxConnections ?? 10,
      connectTimeout,
      statementTimeout
    })

    // Runs once; a failure leaves the ref empty, so the next call tries again.
    const client: Effect.Effect<SqlClient.SqlClient, Failure> = SynchronizedRef
      .modifyEffect(state, (current) =>
        Option.match(current, {
          onSome: (c) => Effect.succeed([c, current] as const),
          onNone: () => Effect.map(connect, (c) => [c, Option.some(c)] as const)
        }))

    const conn: Conn = {
      withSql: (f, operation = "query") => Effect.flatMap(client, (sql) => mapSqlErrors(t, operation)(f(sql))),
      withWriteLock: (projectId, effect) =>
        mapSqlErrors(t, "withWriteLock")(Effect.flatMap(client, (sql) => writeLock(sql, projectId, effect))) as any,
      target: t.target
    }
    return conn
  })
