/**
 * Building blocks shared by the composition roots: the client over a catalog DSN, a storage layer, DuckDB and the
 * local cache. Each root (hosted, local, embedded, test) picks its catalog and storage and provides them once.
 */
import * as NodeFileSystem from "@effect/platform-node/NodeFileSystem"
import { Config, type ConfigError, Effect, Layer, Option, type Redacted } from "effect"
import * as IrodsStorage from "../src/storage/IrodsStorage.js"
import * as os from "node:os"
import * as nodePath from "node:path"
import * as Catalog from "../src/catalog/Catalog.js"
import * as DuckDb from "../src/duckdb/DuckDb.js"
import * as DuckLakeClient from "../src/client/DuckLakeClient.js"
import { DEFAULT_INGEST_HEAP_HEADROOM_MB } from "../src/client/heapBudget.js"
import type { LakeStorage } from "../src/storage/LakeStorage.js"
import * as LocalCache from "../src/storage/LocalCache.js"
import * as MountedStorage from "../src/storage/MountedStorage.js"

export interface ClientOptions {
  readonly dsn: Redacted.Redacted<string>
  readonly cacheDir: string
  readonly cacheMaxBytes?: number
  /** Compact a project in the background after every N-th snapshot (0: never; absent: `MESA_DUCKLAKE_AUTO_COMPACT_EVERY`, default 50). */
  readonly autoCompactEvery?: number
}

/**
 * The full client over a DSN and a storage layer. Its parts (Catalog, LakeStorage, DuckDb, LocalCache) are
 * provided alongside, for maintenance jobs in the same process.
 */
export const client = <E, R>(options: ClientOptions, storage: Layer.Layer<LakeStorage, E, R>) =>
  Layer.unwrapEffect(Effect.map(
    Effect.all([
      options.autoCompactEvery === undefined ? autoCompactConfig : Effect.succeed(options.autoCompactEvery),
      ingestHeapHeadroomConfig
    ]),
    ([autoCompactEvery, ingestHeapHeadroomMb]) => DuckLakeClient.layerWith({ autoCompactEvery, ingestHeapHeadroomMb })
  )).pipe(
    Layer.provideMerge(
      Layer.mergeAll(
        Catalog.layer({ dsn: options.dsn }),
        storage,
        Layer.unwrapEffect(Effect.map(duckDbConfig, (o) => DuckDb.layer(o))),
        LocalCache.layer({
          directory: options.cacheDir,
          ...(options.cacheMaxBytes === undefined ? {} : { maxBytes: options.cacheMaxBytes })
        })
      )
    )
  )

/** `MESA_DUCKLAKE_AUTO_COMPACT_EVERY`: snapshots between automatic compactions (default 50; 0 turns it off). */
export const autoCompactConfig = Config.integer("MESA_DUCKLAKE_AUTO_COMPACT_EVERY").pipe(
  Config.validate({ message: "must be 0 or more", validation: (n) => n >= 0 }),
  Config.withDefault(DuckLakeClient.DEFAULT_AUTO_COMPACT_EVERY)
)

/**
 * `MESA_DUCKLAKE_INGEST_HEAP_HEADROOM_MB`: how far a bulk ingest lets the V8 heap grow between the full collections
 * it asks for (default 48; 0: never).
 */
export const ingestHeapHeadroomConfig = Config.integer("MESA_DUCKLAKE_INGEST_HEAP_HEADROOM_MB").pipe(
  Config.validate({ message: "must be 0 or more", validation: (n) => n >= 0 }),
  Config.withDefault(DEFAULT_INGEST_HEAP_HEADROOM_MB)
)

/**
 * `MESA_DUCKLAKE_DUCKDB_MEMORY_LIMIT` (default 256MB), `MESA_DUCKLAKE_DUCKDB_THREADS` (default 2),
 * `MESA_DUCKLAKE_DUCKDB_METADATA_CACHE` (default false) and `MESA_DUCKLAKE_DUCKDB_TEMP_DIR` (default: a directory of
 * the instance's own in the OS temp directory). See `DuckDbOptions`.
 */
export const duckDbConfig = Config.all({
  memoryLimit: Config.string("MESA_DUCKLAKE_DUCKDB_MEMORY_LIMIT").pipe(
    Config.validate({ message: "must be a size such as 256MB or 1GB", validation: (v) => /^\d+(\.\d+)?\s*(KB|MB|GB|KiB|MiB|GiB)$/i.test(v.trim()) }),
    Config.withDefault(DuckDb.DEFAULT_MEMORY_LIMIT)
  ),
  threads: Config.integer("MESA_DUCKLAKE_DUCKDB_THREADS").pipe(
    Config.validate({ message: "must be from 1 to 64", validation: (n) => n >= 1 && n <= 64 }),
    Config.withDefault(DuckDb.DEFAULT_THREADS)
  ),
  metadataCache: Config.boolean("MESA_DUCKLAKE_DUCKDB_METADATA_CACHE").pipe(Config.withDefault(false)),
  tempDirectory: Config.option(Config.nonEmptyString("MESA_DUCKLAKE_DUCKDB_TEMP_DIR"))
}).pipe(Config.map(({ tempDirectory, ...rest }): DuckDb.DuckDbOptions =>
  Option.isSome(tempDirectory) ? { ...rest, tempDirectory: tempDirectory.value } : rest
))

/** Mounted-zone storage on this machine's file system. */
export const mounted = (config: MountedStorage.MountConfig) =>
  MountedStorage.layer(config).pipe(Layer.provide(NodeFileSystem.layer))

export const defaultCacheDir = nodePath.join(os.homedir(), ".cache", "mesa-ducklake")

/** `MESA_DUCKLAKE_CACHE_DIR`, `MESA_DUCKLAKE_CACHE_MAX_BYTES`. */
export const cacheConfig = Config.all({
  cacheDir: Config.string("MESA_DUCKLAKE_CACHE_DIR").pipe(Config.withDefault(defaultCacheDir)),
  cacheMaxBytes: Config.integer("MESA_DUCKLAKE_CACHE_MAX_BYTES").pipe(Config.withDefault(1024 ** 3))
})

/** `MESA_DUCKLAKE_MOUNT_ROOT` (required) and `MESA_DUCKLAKE_MOUNT_PREFIX` (default `/`). */
export const mountConfig = Config.all({
  mountRoot: Config.string("MESA_DUCKLAKE_MOUNT_ROOT"),
  logicalPrefix: Config.string("MESA_DUCKLAKE_MOUNT_PREFIX").pipe(Config.withDefault("/"))
})

/**
 * Storage chosen by `MESA_DUCKLAKE_STORAGE`: `mounted` (default; `MESA_DUCKLAKE_MOUNT_*`) or `irods` (the native
 * protocol client; `MESA_DUCKLAKE_IRODS_*` over `~/.irods/irods_environment.json`).
 */
export const storageFromConfig: Layer.Layer<LakeStorage, ConfigError.ConfigError> = Layer.unwrapEffect(
  Effect.gen(function*() {
    const kind = yield* Config.literal("mounted", "irods")("MESA_DUCKLAKE_STORAGE").pipe(Config.withDefault("mounted"))
    if (kind === "irods") return IrodsStorage.layerConfig
    return mounted(yield* mountConfig)
  })
)
