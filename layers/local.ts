/**
 * Modes B (local workstation) and C (VICE app). With `MESA_DUCKLAKE_DSN` blank or unset, the client records
 * nothing: `recordChanges` answers `{ recorded: false }` (the caller's iRODS write stands) and reads fail with
 * `CatalogUnavailable { reason: "not-configured" }`. With a DSN, it behaves as hosted mode.
 *
 * This is the layer mesa-mcp provides: it never fails to build because a catalog is missing.
 */
import { Config, Effect, Layer, Option, Redacted } from "effect"
import { layerNotConfigured } from "../src/DuckLakeClient.js"
import { cacheConfig, client, storageFromConfig } from "./components.js"

export const layer = Layer.unwrapEffect(
  Effect.gen(function*() {
    const dsn = yield* Config.option(Config.redacted("MESA_DUCKLAKE_DSN"))
    if (Option.isNone(dsn) || Redacted.value(dsn.value).trim() === "") return layerNotConfigured
    const cache = yield* cacheConfig
    return client({ dsn: dsn.value, ...cache }, storageFromConfig)
  })
)
