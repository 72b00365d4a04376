/**
 * The connection pool behind `IrodsClient`: authenticated connections pooled with a TTL, and `withConnection`,
 * which borrows one for an operation, drops it from the pool when it broke, and retries transient faults
 * (refused, reset, timed out) from the start with exponential backoff. Logical and auth errors are never retried.
 */
import { Duration, Effect, Pool, Schedule, type Scope } from "effect"
import type { IrodsClientOptions } from "./ClientTypes.js"
import { acquireConnection, type ConnectionOptions, type IrodsConnection } from "./Connection.js"
import { IrodsError } from "./Errors.js"

const DEFAULT_CHUNK = 4 * 1024 * 1024

/** What every capability of the client shares: the pool (through `withConnection`) and a few settings. */
export interface IrodsSession {
  /** Borrows a connection; drops it from the pool when it broke; retries transient faults from the start. */
  readonly withConnection: <A, E>(
    f: (conn: IrodsConnection) => Effect.Effect<A, E | IrodsError>
  ) => Effect.Effect<A, E | IrodsError>
  /** Bytes per DATA_OBJ_WRITE / DATA_OBJ_READ. */
  readonly chunkSize: number
  /** The client's own zone (the default for user look-ups). */
  readonly zone: string
}

/** Opens the pool; it lives as long as the surrounding scope. */
export const makeSession = (options: IrodsClientOptions): Effect.Effect<IrodsSession, never, Scope.Scope> =>
  Effect.gen(function*() {
    const connOptions: ConnectionOptions = {
      host: options.host,
      port: options.port,
      zone: options.zone,
      user: options.user,
      password: options.password,
      applicationName: options.applicationName ?? "mesa-ducklake",
      connectTimeout: Duration.decode(options.connectTimeout ?? "10 seconds"),
      requestTimeout: Duration.decode(options.requestTimeout ?? "60 seconds"),
      forceLegacyAuth: options.forceLegacyAuth ?? false
    }
    const pool = yield* Pool.makeWithTTL({
      acquire: acquireConnection(connOptions),
      min: 0,
      max: options.poolSize ?? 4,
      timeToLive: options.idleTimeout ?? "60 seconds",
      timeToLiveStrategy: "usage"
    })

    const retrySchedule = Schedule.exponential(options.retryBase ?? "100 millis", 2).pipe(
      Schedule.intersect(Schedule.recurs(options.retries ?? 3))
    )

    const withConnection = <A, E>(
      f: (conn: IrodsConnection) => Effect.Effect<A, E | IrodsError>
    ): Effect.Effect<A, E | IrodsError> =>
      Effect.scoped(
        Effect.flatMap(Pool.get(pool), (conn) =>
          f(conn).pipe(
            Effect.ensuring(Effect.suspend(() => (conn.broken ? Pool.invalidate(pool, conn) : Effect.void)))
          ))
      ).pipe(
        Effect.retry({
          schedule: retrySchedule,
          while: (e) => e instanceof IrodsError && e.transient
        })
      )

    return { withConnection, chunkSize: options.chunkSize ?? DEFAULT_CHUNK, zone: options.zone }
  })
