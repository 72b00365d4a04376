/**
 * Mode A, hosted: the catalog DSN is set (`MESA_DUCKLAKE_DSN`) and every change is recorded. Storage is the mounted
 * zone (`MESA_DUCKLAKE_MOUNT_ROOT` / `MESA_DUCKLAKE_MOUNT_PREFIX`).
 */
import { Config, Effect, Layer } from "effect"
import { cacheConfig, client, mounted, mountConfig } from "./components.js"

export const HostedConfig = Config.all({
  dsn: Config.redacted("MESA_DUCKLAKE_DSN"),
  cache: cacheConfig,
  mount: mountConfig
})

/** The hosted client from configuration. */
export const layer = Layer.unwrapEffect(
  Effect.map(HostedConfig, ({ cache, dsn, mount }) => client({ dsn, ...cache }, mounted(mount)))
)
