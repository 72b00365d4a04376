/**
 * Mode A, hosted: the catalog DSN is set (`MESA_DUCKLAKE_DSN`) and every change is recorded. Storage is the
 * mounted zone or the native iRODS client (`MESA_DUCKLAKE_STORAGE`, see `storageFromConfig`).
 */
import { Config, Effect, Layer } from "effect"
import { cacheConfig, client, storageFromConfig } from "./components.js"

export const HostedConfig = Config.all({
  dsn: Config.redacted("MESA_DUCKLAKE_DSN"),
  cache: cacheConfig,
  /** Compact each project in the background after every N-th snapshot; 0 turns it off. */
  autoCompactEvery: Config.integer("MESA_DUCKLAKE_AUTO_COMPACT_EVERY").pipe(
    Config.validate({ message: "must be 0 or more", validation: (n) => n >= 0 }),
    Config.withDefault(1000)
  )
})

/** The hosted client from configuration. */
export const layer = Layer.unwrapEffect(
  Effect.map(HostedConfig, ({ autoCompactEvery, cache, dsn }) =>
    client({ dsn, ...cache, autoCompactEvery }, storageFromConfig))
)
