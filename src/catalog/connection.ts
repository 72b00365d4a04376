/**
 * The catalog's connection: configuration and deadlines, the lazily opened PostgreSQL client (held in a
 * `SynchronizedRef`, opened on first use and again on the next call after a failure), the writer lock, and the
 * mapping of every SQL failure to `CatalogUnavailable` (down, slow, login refused, no such database: see `dsn.ts`)
 * or `CatalogError` (a statement failed) with the password scrubbed. Every statement module runs its SQL through the `Conn` made here.
 */
// Deep imports: the packages' index modules load every module they have (msgpackr's native addon among them).
import * as Reactivity from "@effect/experimental/Reactivity"
import * as PgClient from "@effect/sql-pg/PgClient"
import type { SqlClient, SqlError, Statement } from "@effect/sql"
import pg from "pg"
import { Config, Duration, Effect, ExecutionStrategy, Exit, Option, Redacted, Scope, SynchronizedRef } from "effect"
import { CatalogError, CatalogSchemaMismatch, CatalogUnavailable } from "../core/errors.js"
import { inlineStatement } from "./inline.js"
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
  /**
   * Runs `body` in a write session of the project: a connection of its own on which the writer lock is taken with
   * the session's first statement and released with its commit (see `WriteSession`), or when the body ends.
   */
  readonly writeSession: <A, E, R>(
    projectId: string,
    body: (session: WriteSession) => Effect.Effect<A, E, R>
  ) => Effect.Effect<A, E | Failure, R>
  /** host:port/database, for messages (no password). */
  readonly target: string
}

/**
 * A writer's session on a connection of its own. The project's writer lock is taken in the same round trip as the
 * session's first statements (`run`), polled while another writer holds it, and released in the same round trip as
 * the commit (`commitAndUnlock`): a write's lock costs no round trip of its own. Whatever ends the session first
 * (an error, an interruption, a body that never commits) releases the lock then.
 */
export interface WriteSession {
  readonly projectId: string
  /** True while the session holds the writer lock. */
  readonly held: () => boolean
  /**
   * Runs the statements on the session's connection as one query (one implicit transaction, see inline.ts), taking
   * the writer lock first in the same query unless the session holds it. Answers the rows of each statement.
   */
  readonly run: (
    statements: (sql: SqlClient.SqlClient) => ReadonlyArray<Statement.Statement<unknown>>,
    operation: string
  ) => Effect.Effect<ReadonlyArray<ReadonlyArray<any>>, Failure>
  /**
   * Runs the statements as one transaction (BEGIN … COMMIT) and, once it has committed, releases the writer lock:
   * one round trip. A failed transaction is rolled back; the lock then stays held until the session ends. Answers
   * the rows of each statement.
   */
  readonly commitAndUnlock: (
    statements: (sql: SqlClient.SqlClient) => ReadonlyArray<Statement.Statement<unknown>>,
    operation: string
  ) => Effect.Effect<ReadonlyArray<ReadonlyArray<any>>, Failure>
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

/**
 * How long one attempt waits in PostgreSQL for the writer lock (a write holds it a few milliseconds). A waiter is
 * woken the moment the lock is free, in the order the writers came; past this it fails with `lock_not_available`
 * and asks again, so a wait can be interrupted between attempts as well as during one (its query is cancelled).
 */
const LOCK_WAIT_MS = 100

/** The writer lock's key: one per project, across processes (a SQL literal). */
const lockKey = (projectId: string) => pg.escapeLiteral(`mesa-ducklake:${projectId}`)

/**
 * The statements that take the writer lock, waiting at most `LOCK_WAIT_MS`, and then put the session's own
 * `lock_timeout` back for whatever follows in the same query (so only the lock itself can time out). First they
 * release any session-level advisory lock the connection (reserved for the lock alone) still holds: a lock granted
 * just as `lock_timeout` fired survives its failed statement (a session lock outlives the abort), and the attempt
 * after it would then hold it twice, and leave it held by the pooled connection after the single unlock (writers of
 * the project stalled 30 s, the pool's idle timeout, in 2 of 4 runs of the concurrent-writers test).
 */
const lockStatements = (key: string) => [
  `SELECT pg_advisory_unlock_all()`,
  `SELECT set_config('mesa_ducklake.lock_timeout', current_setting('lock_timeout'), true)`,
  `SELECT set_config('lock_timeout', '${LOCK_WAIT_MS}ms', true)`,
  `SELECT pg_advisory_lock(hashtextextended(${key}, 0))`,
  `SELECT set_config('lock_timeout', current_setting('mesa_ducklake.lock_timeout'), true)`
]

/** True when a query failed because the lock did not come free in time (SQLSTATE 55P03, lock_not_available). */
const lockTimedOut = (e: unknown) => {
  for (let c: any = e, depth = 0; c !== undefined && c !== null && depth < 5; c = c.cause, depth++) {
    if (c?.code === "55P03") return true
  }
  return false
}

/**
 * A write session (`WriteSession`) on a reserved connection. When the lock does not come free in time its statement
 * fails, which skips the statements after it in the same query, and the query is sent again. A session-level
 * advisory lock outlives a rolled-back transaction, so after any other failure of a query that asked for it the
 * session counts it as held; and from the moment it is asked for until a commit releases it, the session's end
 * releases every advisory lock of the connection (reserved by this session alone), rolling back a transaction block
 * left open.
 */
const writeSession = <A, E, R>(
  sql: SqlClient.SqlClient,
  t: Target,
  projectId: string,
  body: (session: WriteSession) => Effect.Effect<A, E, R>
) =>
  Effect.scoped(Effect.gen(function*() {
    const conn = yield* sql.reserve
    const key = lockKey(projectId)
    const lock = lockStatements(key)
    let held = false
    // Whether the lock may be held: from the moment it is asked for (an interruption can land after it was granted,
    // before its query was answered) until the commit released it.
    let asked = false
    let inBlock = false
    yield* Effect.addFinalizer(() =>
      Effect.zipRight(
        inBlock ? conn.executeUnprepared("ROLLBACK", [], undefined).pipe(Effect.ignore) : Effect.void,
        asked ? conn.executeUnprepared("SELECT pg_advisory_unlock_all()", [], undefined).pipe(Effect.ignore) : Effect.void
      )
    )
    const query = (texts: ReadonlyArray<string>, operation: string) =>
      Effect.map(
        mapSqlErrors(t, operation)(conn.executeUnprepared(texts.join(";\n"), [], undefined)),
        // One statement answers its rows; several, one array of rows per statement.
        (result) => (texts.length === 1 ? [result] : result) as ReadonlyArray<ReadonlyArray<any>>
      )
    const compiled = (statements: (sql: SqlClient.SqlClient) => ReadonlyArray<Statement.Statement<unknown>>) =>
      Effect.orDie(Effect.try(() => statements(sql).map(inlineStatement)))
    const session: WriteSession = {
      projectId,
      held: () => held,
      run: (statements, operation) =>
        Effect.flatMap(compiled(statements), (texts) => {
          if (held) return texts.length === 0 ? Effect.succeed([]) : query(texts, operation)
          asked = true
          return query([...lock, ...texts], operation).pipe(
            Effect.tapError((e) => Effect.sync(() => {
              if (!lockTimedOut(e)) held = true
            })),
            Effect.retry({ while: lockTimedOut }),
            Effect.tap(() => Effect.sync(() => {
              held = true
            })),
            Effect.map((rows) => rows.slice(lock.length)),
            Effect.withSpan("write.lockWith", { attributes: { operation } })
          )
        }),
      commitAndUnlock: (statements, operation) =>
        Effect.flatMap(compiled(statements), (texts) =>
          Effect.suspend(() => {
            // A commit outside the lock would be a bug of the caller's, not a catalog failure.
            if (!held) return Effect.dieMessage(`${operation}: the session does not hold the writer lock`)
            inBlock = true
            const unlock = `SELECT pg_advisory_unlock(hashtextextended(${key}, 0))`
            return query(["BEGIN", ...texts, "COMMIT", unlock], operation).pipe(
              Effect.tap(() => Effect.sync(() => {
                inBlock = false
                held = false
                asked = false
              })),
              Effect.tapError(() =>
                // Rolled back now, so the lock (still held) is released by the session's end on a usable connection.
                Effect.zipRight(
                  conn.executeUnprepared("ROLLBACK", [], undefined).pipe(Effect.ignore),
                  Effect.sync(() => {
                    inBlock = false
                  })
                )
              ),
              Effect.map((rows) => rows.slice(1, 1 + texts.length))
            )
          }))
    }
    return yield* body(session)
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
        // A write session that takes the lock before `effect` and releases it when `effect` ends.
        mapSqlErrors(t, "withWriteLock")(Effect.flatMap(client, (sql) =>
          writeSession(sql, t, projectId, (session) =>
            Effect.zipRight(session.run(() => [], "withWriteLock").pipe(Effect.withSpan("write.lock")), effect)))) as any,
      writeSession: (projectId, body) =>
        mapSqlErrors(t, "writeSession")(Effect.flatMap(client, (sql) => writeSession(sql, t, projectId, body))) as any,
      target: t.target
    }
    return conn
  })
