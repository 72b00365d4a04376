/**
 * What every capability of the client shares: its services (catalog, storage, DuckDB, local cache), the settings,
 * the write probe, the project lookup with its lake-schema check, the per-client caches the capabilities keep, the
 * interface of the background runner, and the argument checks of the public methods.
 *
 * Owns: `ClientContext`, `makeCore`, `ClientSettings`, `WriteProbe`, the error unions and the argument helpers.
 * May call: the services and the domain only. Every other module in src/client/ may import it.
 */
import { Context, type Deferred, Effect, Option } from "effect"
import { Catalog, type CatalogService, checkLakeSchema } from "../catalog/Catalog.js"
import { MAX_TEXT_BYTES, type Project } from "../core/domain.js"
import { DuckDb, type DuckDbService } from "../duckdb/DuckDb.js"
import {
  type CatalogError,
  type CatalogSchemaMismatch,
  type CatalogUnavailable,
  type ChecksumMismatch,
  InvalidChange,
  type LakeReadError,
  ProjectNotFound,
  type StorageError
} from "../core/errors.js"
import { LakeStorage, type LakeStorageService } from "../storage/LakeStorage.js"
import { LocalCache, type LocalCacheService } from "../storage/LocalCache.js"

export type CatalogFailure = CatalogUnavailable | CatalogError | CatalogSchemaMismatch
export type ReadError = CatalogFailure | ProjectNotFound | InvalidChange | StorageError | LakeReadError | ChecksumMismatch

export interface ClientSettings {
  /**
   * Compact a project in the background after every N-th snapshot (0: never; default 50, every layer reads
   * `MESA_DUCKLAKE_AUTO_COMPACT_EVERY`). Automatic compaction is tiered (see `CompactOptions.tierRatio`) and takes
   * the writer lock only to commit, so reads stay flat as history grows without holding writes up.
   */
  readonly autoCompactEvery?: number
  /**
   * Keep the current-state index current during each bulk ingest (default true): each committed snapshot's rows are
   * applied in the background while the next is written, and `flush` waits for the last. Off, the index lags until
   * the next write to the project, a `catchUpIndex` call or a drift check; reads are exact either way.
   */
  readonly catchUpAfterIngest?: boolean
  /**
   * With `catchUpAfterIngest: false` only: how many change rows of its own a bulk ingest keeps in memory (to expand
   * its deletes and sets) before it catches the index up from its files and starts again (default 200,000, about
   * 80 MB). With the index kept current, the ingest keeps at most three snapshots' rows whatever this says.
   */
  readonly ingestMemoryTriples?: number
  /**
   * How far (MB) a bulk ingest lets the V8 heap grow between the full collections it asks for between snapshots
   * (default 48; 0: never ask, V8 decides; components read `MESA_DUCKLAKE_INGEST_HEAP_HEADROOM_MB`). See heapBudget.ts.
   */
  readonly ingestHeapHeadroomMb?: number
}

/** The steps of the write protocol, in order, as `WriteProbe` sees them. */
export type WriteStep = "reserved" | "parquet-written" | "pushed" | "committed"

/**
 * An optional observer called after each step of the write protocol. Production code provides none; the
 * reliability tests provide one that kills the process at a chosen step.
 */
export class WriteProbe extends Context.Tag("mesa-ducklake/WriteProbe")<
  WriteProbe,
  { readonly after: (step: WriteStep, snapshotId: number) => Effect.Effect<void> }
>() {}

/**
 * The client's background work (built by `background.ts` in the client's scope): commit markers of new snapshots,
 * automatic compactions and index catch-ups. `flush` waits until all of it is done.
 */
export interface Background {
  /** Queues the commit marker of a just-committed snapshot (then the chain's anchor). */
  readonly enqueueMarker: (p: Project, snapshotId: number) => Effect.Effect<void>
  /**
   * Runs `work` as background work in the client's scope, under the span `name`: `flush` waits for it, and closing
   * the client can interrupt it (it may be forked from a finalizer).
   */
  /** `onEnd` runs when the fiber ends, whatever ends it (also when it is interrupted before its first step). */
  readonly fork: (work: Effect.Effect<void>, name: string, onEnd?: () => void) => Effect.Effect<void>
  readonly flush: Effect.Effect<void>
}

/** The client's services and per-client state, as every capability sees them (`make` adds the background). */
export interface ClientCore {
  readonly catalog: CatalogService
  readonly storage: LakeStorageService
  readonly duck: DuckDbService
  readonly cache: LocalCacheService
  readonly settings: ClientSettings
  /** The `WriteProbe` if one is provided, else nothing. */
  readonly probe: (step: WriteStep, snapshotId: number) => Effect.Effect<void>
  /** The project, with its lake schema checked once per client (ours, DuckLake 1.0). */
  readonly project: (projectId: unknown) => Effect.Effect<Project, ProjectNotFound | CatalogFailure>
  /**
   * The project for a write: an active project this client has looked up before is answered from memory (the
   * reservation checks, in its own statement, that the project is still registered and not archived); any other
   * answer is looked up as `project` does.
   */
  readonly projectForWrite: (projectId: unknown) => Effect.Effect<Project, ProjectNotFound | CatalogFailure>
  /**
   * Kept by files.ts: files checked against the catalog's checksum, by local path → the checksum and the stat
   * fingerprint they had then.
   */
  readonly verifiedFiles: Map<string, string>
  /** Foreground writes in flight (background compaction lets them go first between its steps). */
  readonly foreground: { active: number }
  /** Kept by markers.ts: the chain anchor last written per project by this client. */
  readonly anchored: Map<string, string>
  /** Kept by compaction.ts: the compaction running in this client per project (one at a time per project). */
  readonly compacting: Map<string, RunningCompaction>
  /** Kept by compaction.ts: projects whose automatic compaction was triggered again while a compaction ran. */
  readonly compactAgain: Set<string>
}

/** A compaction running in a client (automatic, or one asked for with `compact`). */
export interface RunningCompaction {
  /** Completed when it ends, whatever ends it. */
  readonly done: Deferred.Deferred<void>
  /** A `compact` waits for it: an automatic one then stops after its current round instead of going round again. */
  requested: boolean
}

export interface ClientContext extends ClientCore {
  readonly background: Background
}

export const makeCore = (settings: ClientSettings) =>
  Effect.gen(function*() {
    const catalog = yield* Catalog
    const storage = yield* LakeStorage
    const duck = yield* DuckDb
    const cache = yield* LocalCache
    const probe = Option.match(yield* Effect.serviceOption(WriteProbe), {
      onNone: () => (_step: WriteStep, _id: number) => Effect.void,
      onSome: (p) => p.after
    })
    const verifiedSchemas = new Set<string>()
    const project = (projectId: unknown) =>
      Effect.gen(function*() {
        if (typeof projectId !== "string") return yield* new ProjectNotFound({})
        const p = yield* catalog.getProject(projectId)
        if (!verifiedSchemas.has(p.metadataSchema)) {
          yield* catalog.withSql((sql) => checkLakeSchema(sql, p.metadataSchema))
          verifiedSchemas.add(p.metadataSchema)
        }
        return p
      }).pipe(Effect.withSpan("project.lookup"))
    const active = new Map<string, Project>()
    /** The write path's copy of a project just looked up: kept while active, dropped otherwise. */
    const remember = (p: Project) => {
      if (p.status === "active") active.set(p.projectId, p)
      else active.delete(p.projectId)
    }
    const projectForWrite = (projectId: unknown) =>
      Effect.suspend(() => {
        const known = typeof projectId === "string" ? active.get(projectId) : undefined
        return known !== undefined ? Effect.succeed(known) : Effect.tap(project(projectId), remember)
      })
    const core: ClientCore = {
      catalog,
      storage,
      duck,
      cache,
      settings,
      probe,
      project: (projectId) =>
        project(projectId).pipe(
          // A fresh lookup also refreshes (or drops) the write path's copy.
          Effect.tap((p) => {
            if (active.has(p.projectId)) remember(p)
          }),
          Effect.tapError((e) =>
            Effect.sync(() => {
              if (e._tag === "ProjectNotFound" && typeof projectId === "string") active.delete(projectId)
            })
          )
        ),
      projectForWrite,
      verifiedFiles: new Map(),
      foreground: { active: 0 },
      anchored: new Map(),
      compacting: new Map(),
      compactAgain: new Set()
    }
    return core
  })

/** Later than any valid time a change can have (they are refused beyond a few minutes in the future). */
export const END_OF_TIME = new Date("9999-12-31T23:59:59.999Z")

/** Future valid times are refused beyond this allowance for clock skew between hosts. */
export const FUTURE_SKEW_MS = 5 * 60_000

export const invalid = (field: string, reason: string) => new InvalidChange({ field, reason })

export const textArg = (field: string, value: unknown, opts: { readonly optional: boolean }) =>
  Effect.suspend(() => {
    if (value === undefined || value === null) {
      return opts.optional ? Effect.succeed(null) : Effect.fail(invalid(field, "is required"))
    }
    if (typeof value !== "string") return Effect.fail(invalid(field, "must be a string"))
    if (value.trim().length === 0) return Effect.fail(invalid(field, "must not be blank"))
    if (value.includes("\u0000")) return Effect.fail(invalid(field, "must not contain NUL"))
    if (Buffer.byteLength(value) > MAX_TEXT_BYTES) return Effect.fail(invalid(field, `is over ${MAX_TEXT_BYTES} bytes`))
    return Effect.succeed(value)
  })

export const limitArg = (value: unknown, fallback: number) =>
  Effect.suspend(() => {
    if (value === undefined) return Effect.succeed(fallback)
    if (typeof value !== "number" || !Number.isInteger(value) || value < 1 || value > 1_000_000) {
      return Effect.fail(invalid("limit", "must be an integer from 1 to 1,000,000"))
    }
    return Effect.succeed(value)
  })

export const snapshotArg = (field: string, value: unknown) =>
  typeof value === "number" && Number.isSafeInteger(value) && value >= 0
    ? Effect.succeed(value)
    : Effect.fail(invalid(field, "must be a non-negative integer snapshot id"))
