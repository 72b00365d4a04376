/**
 * Shared test fixtures: an embedded PostgreSQL + a real directory standing in for the iRODS zone, per test file.
 * Each test registers its own project (unique root), so tests sharing one layer do not see each other's data.
 */
import { ConfigProvider, Context, type Duration, Effect, Layer } from "effect"
import { client } from "../layers/components.js"
import { IrodsClient } from "../src/irods/IrodsClient.js"
import * as IrodsStorage from "../src/storage/IrodsStorage.js"
import { LakeStorage } from "../src/storage/LakeStorage.js"
import * as Permissions from "../src/access/Permissions.js"
import * as EmbeddedPostgresModule from "../src/postgres/EmbeddedPostgres.js"
import { fakeIrodsScoped, type FakeIrodsServer } from "./fake-irods/FakeIrods.js"
import { fakeLogin } from "./irods/helpers.js"
import * as fs from "node:fs"
import * as os from "node:os"
import * as nodePath from "node:path"
import * as Embedded from "../layers/embedded.js"
import type { AvuChangeInput } from "../src/core/domain.js"
import { type ClientSettings, DuckLakeClient, layerWith as clientLayerWith } from "../src/client/DuckLakeClient.js"
import { EmbeddedPostgres } from "../src/postgres/EmbeddedPostgres.js"
import { Catalog } from "../src/catalog/Catalog.js"
import type { DuckDb } from "../src/duckdb/DuckDb.js"
import type { LocalCache } from "../src/storage/LocalCache.js"

export const ZONE = "/testZone"

export interface Dirs {
  readonly base: string
  readonly zoneDir: string
  readonly cacheDir: string
}

export const tempDirs = (label: string): Dirs => {
  const base = fs.mkdtempSync(nodePath.join(os.tmpdir(), `mesa-${label}-`))
  return { base, zoneDir: nodePath.join(base, "zone"), cacheDir: nodePath.join(base, "cache") }
}

/** The fake iRODS server behind a native-storage test layer (to switch its faults on). */
export class FakeIrods extends Context.Tag("test/FakeIrods")<FakeIrods, FakeIrodsServer>() {}

export type StorageKind = "mounted" | "irods"

/**
 * The permission service checking as the service account `rods` over the native client, against the layer's fake
 * server: built in the caller's scope, with the client alongside (to change ACLs and objects).
 */
export const rodsPermissions = (ttlMs: number) =>
  Effect.flatMap(FakeIrods, (fake) =>
    Layer.build(Permissions.layerIrods({ ttlMs }).pipe(Layer.provideMerge(IrodsClient.layer(fakeLogin(fake))))))

/**
 * The client over a real embedded PostgreSQL and either storage: `mounted` (a real directory standing in for the
 * zone) or `irods` (our native-protocol client talking to the fake iRODS 4.2.8 server, zone `testZone`).
 */
const irodsEmbedded = (dirs: Dirs, requestTimeout: Duration.DurationInput = "5 seconds") =>
  Layer.unwrapScoped(
    Effect.gen(function*() {
      const server = yield* fakeIrodsScoped({ zone: "testZone", users: { rods: "rods" } })
      const pg = yield* EmbeddedPostgresModule.make()
      const storage = IrodsStorage.layer.pipe(
        Layer.provide(IrodsClient.layer(fakeLogin(server, { retryBase: "10 millis", requestTimeout })))
      )
      return Layer.mergeAll(
        client({ dsn: pg.dsn, cacheDir: dirs.cacheDir }, storage),
        Layer.succeed(EmbeddedPostgres, pg),
        Layer.succeed(FakeIrods, server)
      )
    })
  )

/**
 * A composition root's layer (`layers/local`, `layers/hosted`) configured by `env` alone (no process environment),
 * as those variables would configure it.
 */
export const configured = <A, E, R>(root: Layer.Layer<A, E, R>, env: Readonly<Record<string, string>> = {}) =>
  root.pipe(Layer.provide(Layer.setConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(env))))))

/** The parts a DuckLakeClient is made of (every embedded test layer provides them). */
export type ClientParts = Catalog | LakeStorage | DuckDb | LocalCache

/** What every embedded test layer provides. */
export type EmbeddedServices = DuckLakeClient | ClientParts | EmbeddedPostgres

/**
 * A second DuckLakeClient over the parts the test already has (same database, storage, DuckDB and cache), some of
 * them replaced or added by `over`: a fault-injecting storage, catalog or DuckDB over the real one (see faults.ts),
 * a `WriteProbe`. `settings` as for `DuckLakeClient.layerWith`.
 */
export const fakeClientLayer = <P, R>(over: Layer.Layer<P, never, R>, settings: ClientSettings = {}) =>
  clientLayerWith(settings).pipe(Layer.provide(over))

/** Runs `effect` with a `fakeClientLayer(over, settings)` client (a new one each run). */
export const withFakeClient = <P, R>(over: Layer.Layer<P, never, R>, settings: ClientSettings = {}) =>
<A, E, R2>(effect: Effect.Effect<A, E, R2>) => Effect.provide(effect, fakeClientLayer(over, settings))

const removing = (dirs: Dirs) =>
  Layer.scopedDiscard(
    Effect.addFinalizer(() => Effect.sync(() => fs.rmSync(dirs.base, { recursive: true, force: true })))
  )

/** The embedded client layer for one test file (over either storage), plus its directories. */
export const embedded = (label: string, storage: StorageKind = "mounted") => {
  const dirs = tempDirs(`${label}-${storage}`)
  const layer: Layer.Layer<EmbeddedServices, unknown> = storage === "mounted"
    ? Embedded.layer({ zoneDir: dirs.zoneDir, cacheDir: dirs.cacheDir }).pipe(Layer.provideMerge(removing(dirs)))
    : irodsEmbedded(dirs).pipe(Layer.provideMerge(removing(dirs)))
  return { dirs, layer }
}

/** The native-storage layer with the fake server exposed, for fault injection. */
export const embeddedIrods = (label: string, options: { readonly requestTimeout?: Duration.DurationInput } = {}) => {
  const dirs = tempDirs(`${label}-irods`)
  return { dirs, layer: irodsEmbedded(dirs, options.requestTimeout).pipe(Layer.provideMerge(removing(dirs))) }
}

/** Copy a stored file to a local temporary file (whatever the storage), for inspection. */
export const fetchLocal = (path: string) =>
  Effect.gen(function*() {
    const storage = yield* LakeStorage
    const local = nodePath.join(fs.mkdtempSync(nodePath.join(os.tmpdir(), "mesa-fetch-")), nodePath.basename(path))
    yield* storage.get(path, local)
    return local
  })

let counter = 0
/** A fresh project root for one test. */
export const freshRoot = (name = "p") => `${ZONE}/home/alice/${name}-${process.pid}-${++counter}`

export const registerFresh = (name?: string) =>
  Effect.flatMap(DuckLakeClient, (c) => c.registerProject({ irodsPath: freshRoot(name), actor: "alice" }))

export const change = (
  irodsPath: string,
  attribute: string,
  value: string,
  op: "add" | "delete" | "set" = "add",
  extra: Partial<AvuChangeInput> = {}
): AvuChangeInput => ({
  irodsPath,
  targetType: "data_object",
  attribute,
  value,
  unit: "",
  op,
  actor: "alice",
  source: "test",
  ...extra
})

/** Record or die: for tests whose subject is not the write. */
export const record = (projectId: string, changes: ReadonlyArray<AvuChangeInput>, actor = "alice", note?: string) =>
  Effect.flatMap(DuckLakeClient, (c) =>
    c.recordChanges({ projectId, actor, changes, ...(note === undefined ? {} : { note }) }).pipe(
      Effect.flatMap((r) => (r.recorded ? Effect.succeed(r) : Effect.dieMessage("not recorded")))
    ))

/** Every file below a directory, relative, sorted: to assert storage is unchanged. */
export const listTree = (dir: string): Array<string> => {
  if (!fs.existsSync(dir)) return []
  return (fs.readdirSync(dir, { recursive: true }) as Array<string>).map(String).sort()
}

/** Counts of the catalog rows any write would change, for one project and overall. */
export const catalogState = (metadataSchema: string) =>
  Effect.flatMap(Catalog, (catalog) =>
    catalog.withSql((sql) =>
      Effect.map(
        sql<any>`SELECT
          (SELECT count(*) FROM ${sql(metadataSchema)}.ducklake_snapshot)::int AS snapshots,
          (SELECT count(*) FROM ${sql(metadataSchema)}.ducklake_data_file)::int AS files,
          (SELECT count(*) FROM ${sql(metadataSchema)}.mesa_current_avus)::int AS current,
          (SELECT count(*) FROM mesa_ducklake.pending_writes)::int AS pending,
          (SELECT count(*) FROM mesa_ducklake.projects)::int AS projects,
          (SELECT last_snapshot_id FROM mesa_ducklake.projects WHERE metadata_schema = ${metadataSchema})::int AS last_id`,
        (rows) => rows[0] as { snapshots: number; files: number; current: number; pending: number; projects: number; last_id: number }
      )
    ))

export { EmbeddedPostgres }
