/**
 * The catalog's PostgreSQL pool, with deadlines that hold even when the server stops answering (a frozen or
 * partitioned server keeps its TCP connections open, so neither the kernel nor `statement_timeout` ends a wait).
 *
 * - Connection acquisition (a free pooled connection, or a new one through the whole startup handshake) waits at
 *   most `acquireTimeout`: pg's `connectionTimeoutMillis`.
 * - Every statement waits at most `statementTimeout` for its answer. Past it the connection's socket is destroyed:
 *   the statement fails with `DeadlineExceeded` in its cause chain, the pool drops the connection (a session-level
 *   advisory lock held on it is released by the server when it next runs), and no later statement queues behind
 *   an answer that may never come. A timer per statement, cleared by the answer.
 */
import { SqlError } from "@effect/sql/SqlError"
import { Duration, Effect } from "effect"
import pg from "pg"

/** The cause a statement fails with when its deadline passed. */
export class DeadlineExceeded extends Error {
  readonly code = "MESA_DEADLINE"
  constructor(readonly what: "statement" | "acquire", readonly ms: number) {
    super(`catalog ${what} deadline of ${ms} ms exceeded`)
  }
}

export interface PoolOptions {
  readonly connectionString: string
  readonly maxConnections: number
  readonly acquireTimeout: Duration.Duration
  readonly statementTimeout: Duration.Duration
  readonly idleTimeout: Duration.Duration
  readonly applicationName: string
}

const deadlineClient = (ms: number) =>
  class DeadlineClient extends pg.Client {
    override query(...args: Array<any>): any {
      const cbAt = args.findIndex((a) => typeof a === "function")
      // Promise and cursor forms (no callback) are not used by the catalog's statements; pass them through.
      if (cbAt < 0) return (super.query as any)(...args)
      const callback = args[cbAt] as (err: Error | null, res?: unknown) => void
      // A connection dropped at a deadline answers every later statement (a ROLLBACK, an unlock) with the deadline.
      if ((this as any).mesaDeadline === true) {
        process.nextTick(() => callback(new DeadlineExceeded("statement", ms)))
        return undefined
      }
      let answered = false
      const timer = setTimeout(() => {
        if (answered) return
        answered = true
        // The answer may never come: drop the connection so nothing waits behind it. Not queryable first, so the
        // pool removes it when the failed statement releases it instead of handing it to the next caller.
        ;(this as any)._queryable = false
        ;(this as any).mesaDeadline = true
        ;(this as any).connection?.stream?.destroy()
        callback(new DeadlineExceeded("statement", ms))
      }, ms)
      timer.unref?.()
      args[cbAt] = (err: Error | null, res?: unknown) => {
        clearTimeout(timer)
        if (answered) return
        answered = true
        callback(err, res)
      }
      return (super.query as any)(...args)
    }
  }

/** A pg Pool with both deadlines, ended (bounded) with the scope. */
export const acquirePool = (options: PoolOptions) =>
  Effect.acquireRelease(
    Effect.sync(() => {
      const pool = new pg.Pool({
        connectionString: options.connectionString,
        max: options.maxConnections,
        connectionTimeoutMillis: Duration.toMillis(options.acquireTimeout),
        idleTimeoutMillis: Duration.toMillis(options.idleTimeout),
        application_name: options.applicationName,
        Client: deadlineClient(Math.max(1, Math.round(Duration.toMillis(options.statementTimeout)))) as any
      })
      // Errors of idle connections (a server restart) surface on the next use; without a listener they would crash.
      pool.on("error", () => undefined)
      return pool
    }),
    (pool) =>
      Effect.promise(() => pool.end().catch(() => undefined)).pipe(
        Effect.interruptible,
        Effect.timeoutOption(1000)
      )
  ).pipe(
    Effect.tap((pool) =>
      Effect.tryPromise({
        try: () => pool.query("SELECT 1"),
        catch: (cause) => new SqlError({ cause, message: "PgClient: Failed to connect" })
      })
    )
  )

/** True when a cause chain says a deadline passed (ours, or pg's own connection timeout). */
export const isDeadline = (e: unknown): boolean => {
  for (let c: any = e, depth = 0; c !== undefined && c !== null && depth < 6; c = c.cause, depth++) {
    if (c instanceof DeadlineExceeded || c?.code === "MESA_DEADLINE") return true
    const msg = typeof c?.message === "string" ? c.message : ""
    if (/timeout exceeded when trying to connect|Connection terminated due to connection timeout/i.test(msg)) return true
  }
  return false
}
