/**
 * Mode A, hosted: the catalog DSN is set (`MESA_DUCKLAKE_DSN`) and every change is recorded. Storage is the
 * mounted zone or the native iRODS client (`MESA_DUCKLAKE_STORAGE`, see `storageFromConfig`).
 */
import { Config, Effect, Layer } from "effect"
import * as DuckLakeAccessModule from "../src/access/DuckLakeAccess.js"
import { IrodsClient } from "../src/irods/IrodsClient.js"
import { irodsConfig } from "../src/irods/Config.js"
import * as Permissions from "../src/access/Permissions.js"
import { autoCompactConfig, cacheConfig, client, storageFromConfig } from "./components.js"

export const HostedConfig = Config.all({
  dsn: Config.redacted("MESA_DUCKLAKE_DSN"),
  cache: cacheConfig,
  /** Compact each project in the background after every N-th snapshot; 0 turns it off. */
  autoCompactEvery: autoCompactConfig
})

/** The hosted client from configuration. */
export const layer = Layer.unwrapEffect(
  Effect.map(HostedConfig, ({ autoCompactEvery, cache, dsn }) =>
    client({ dsn, ...cache, autoCompactEvery }, storageFromConfig))
)

/**
 * The layer for mesa-mcp (and any service answering many users): the hosted client plus `DuckLakeAccess`, which
 * filters every answer by the caller's iRODS permissions (checked through the native client as the service
 * account; `MESA_DUCKLAKE_IRODS_*`). `MESA_DUCKLAKE_ACCESS=trusted` turns the filtering off explicitly; the default
 * is enforced. Callers get their view with `access.forCaller("user#zone", { identity, tool })`.
 */
export const mesaMcpLayer = Layer.unwrapEffect(
  Effect.map(DuckLakeAccessModule.AccessConfig, ({ mode, ttlMs }) =>
    mode === "trusted"
      ? DuckLakeAccessModule.layerTrusted.pipe(Layer.provideMerge(layer))
      : DuckLakeAccessModule.layer.pipe(
        Layer.provide(Permissions.layerIrods({ ttlMs }).pipe(Layer.provide(IrodsClient.layerConfig(irodsConfig)))),
        Layer.provideMerge(layer)
      ))
)
