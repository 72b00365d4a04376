/**
 * The CLI's composition root: the client and its parts from the environment (as `layers/hosted.ts`, but a blank
 * `MESA_DUCKLAKE_DSN` is a typed `CatalogUnavailable { reason: "not-configured" }`, exit 3, rather than a config
 * error), the native iRODS client for drift and discovery, and helpers every command shares.
 *
 * Layers are provided per command, inside its handler, so `--help` and usage errors never open anything; this
 * module is heavy (the client, DuckDB, pg) and only handler modules (`run/*.ts`, loaded lazily) import it.
 */
import { Config, Effect, Layer, Option, Redacted } from "effect"
import * as os from "node:os"
import { cacheConfig, client, storageFromConfig } from "../../layers/components.js"
import { DuckLakeClient } from "../../src/client/DuckLakeClient.js"
import { CatalogUnavailable } from "../../src/core/errors.js"
import { irodsConfig } from "../../src/irods/Config.js"
import { IrodsClient } from "../../src/irods/IrodsClient.js"

/** `MESA_DUCKLAKE_DSN`, None when unset or blank. */
export const dsnOption = Config.option(Config.redacted("MESA_DUCKLAKE_DSN")).pipe(
  Config.map(Option.filter((dsn) => Redacted.value(dsn).trim() !== ""))
)

/** The DSN, or `CatalogUnavailable { reason: "not-configured" }`. */
export const requireDsn = Effect.flatMap(dsnOption, Option.match({
  onNone: () => Effect.fail(new CatalogUnavailable({ reason: "not-configured" })),
  onSome: Effect.succeed
}))

/** The full client (and its Catalog, LakeStorage, DuckDb, LocalCache) from the environment. */
export const ClientLive = Layer.unwrapEffect(
  Effect.map(Effect.all([requireDsn, cacheConfig]), ([dsn, cache]) => client({ dsn, ...cache }, storageFromConfig))
)

/** The native iRODS client (`MESA_DUCKLAKE_IRODS_*` over `~/.irods`), whatever storage the lake uses. */
export const IrodsLive = IrodsClient.layerConfig(irodsConfig)

/** Who acts when `--actor` is not given: `MESA_DUCKLAKE_ACTOR`, else the OS user. */
export const defaultActor = Config.string("MESA_DUCKLAKE_ACTOR").pipe(
  Config.withDefault(os.userInfo().username),
  Config.map((a) => a.trim())
)

// The shared options, for handler modules that still import them from here.
export { actor, json, limit, pathArg, projectArg, projectOption } from "./options.js"

/** The actor from `--actor` or the default. */
export const actorOf = (option: Option.Option<string>) =>
  Option.match(option, { onNone: () => defaultActor, onSome: Effect.succeed })

/** A project by id, or the registered project containing a path (`/…`). */
export const resolveProject = (ref: string) =>
  Effect.gen(function*() {
    const c = yield* DuckLakeClient
    return ref.startsWith("/") ? yield* c.findProjectByPath(ref) : yield* c.getProject(ref)
  })

/** `--project` when given, else the project containing `path`. */
export const projectFor = (option: Option.Option<string>, path: string) =>
  resolveProject(Option.getOrElse(option, () => path))
