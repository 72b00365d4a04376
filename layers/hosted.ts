/**
 * Mode A, hosted: the catalog DSN is set (`MESA_DUCKLAKE_DSN`) and every change is recorded. Storage is the
 * mounted zone or the native iRODS client (`MESA_DUCKLAKE_STORAGE`, see `storageFromConfig`).
 */
import { Config, Effect, Layer } from "effect"
import { cacheConfig, client, storageFromConfig } from "./components.js"

export const HostedConfig = Config.all({
  dsn: Config.redacted("MESA_DUCKLAKE_DSN"),
  cache: cacheConfig
})

/** The hosted client from configuration. */
export const layer = Layer.unwrapEffect(
  Effect.map(HostedConfig, ({ cache, dsn }) => client({ dsn, ...cache }, storageFromConfig))
)
