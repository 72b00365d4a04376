/**
 * Project discovery as mesa-mcp does it: a project root is a collection carrying the marker AVU
 * `mesa.enabled` = `true` / `yes` / `1` (case-insensitive). For a path we check the path itself and each parent
 * collection (never `/`); the deepest marked one is the root. Answers per collection, hits and misses alike, are
 * cached for a TTL (300 s by default), so a busy tool does not query iRODS for every write. Then the project is
 * found, or registered when the root is not yet known to the catalog.
 *
 * All uncached ancestors of a path are checked in one GenQuery (`COLL_NAME in (…)`).
 */
import { Clock, Context, Duration, Effect, Layer, Option, Schema } from "effect"
import { type IrodsPath, isWithin, parseIrodsPath, type Project } from "../core/domain.js"
import { DuckLakeClient, type DuckLakeClientService } from "../client/DuckLakeClient.js"
import type { CatalogError, CatalogSchemaMismatch, CatalogUnavailable, InvalidChange, ProjectConflict, StorageError } from "../core/errors.js"
import { COL } from "../irods/Api.js"
import { toStorageError } from "../irods/Errors.js"
import { eq, IrodsClient, type IrodsClientService } from "../irods/IrodsClient.js"

/** The marker attribute. */
export const MARKER_ATTRIBUTE = "mesa.enabled"

/** True for the marker values mesa-mcp accepts. */
export const isMarkerValue = (value: string): boolean => /^(true|yes|1)$/i.test(value.trim())

/** No collection on the path or above it carries `mesa.enabled`: the path is not in a MESA project. */
export class NotMesaEnabled extends Schema.TaggedError<NotMesaEnabled>()("NotMesaEnabled", {
  irodsPath: Schema.String
}) {
  override get message() {
    return `${this.irodsPath} is not in a MESA-enabled collection (no ${MARKER_ATTRIBUTE}=true on it or a parent)`
  }
}

export type DiscoveryError =
  | NotMesaEnabled
  | InvalidChange
  | StorageError
  | ProjectConflict
  | CatalogUnavailable
  | CatalogError
  | CatalogSchemaMismatch

export interface DiscoveryOptions {
  /** How long an answer about a collection (marked or not) is trusted. Default 300 s. */
  readonly ttl?: Duration.DurationInput
  /** Most collections remembered; the oldest answers are dropped first. Default 10,000. */
  readonly capacity?: number
}

export interface ProjectDiscoveryService {
  /** The deepest collection on `path` or above it (never `/`) carrying the marker; None when there is none. */
  readonly findMarkedRoot: (path: string) => Effect.Effect<Option.Option<IrodsPath>, InvalidChange | StorageError>
  /**
   * The project a path belongs to: the marked root's project, registered (by `actor`) when the catalog does not
   * know it yet. `NotMesaEnabled` when no marked collection contains the path.
   */
  readonly discoverProject: (
    path: string,
    options: { readonly actor: string }
  ) => Effect.Effect<Project, DiscoveryError>
  /** Forget cached answers: all of them, or those about `path` and the collections above it. */
  readonly invalidate: (path?: string) => Effect.Effect<void>
}

export class ProjectDiscovery extends Context.Tag("mesa-ducklake/ProjectDiscovery")<
  ProjectDiscovery,
  ProjectDiscoveryService
>() {}

/** `path` and its ancestors, deepest first, without `/`. */
export const candidateRoots = (path: IrodsPath): Array<string> => {
  const out: Array<string> = []
  for (let p: string = path; p !== "/" && p.length > 0; p = p.slice(0, Math.max(p.lastIndexOf("/"), 0))) {
    out.push(p)
    if (p.lastIndexOf("/") === 0) break
  }
  return out
}

const quoteList = (values: ReadonlyArray<string>) => `in (${values.map((v) => `'${v}'`).join(",")})`

/** Which of `collections` carry the marker, in one GenQuery (one per path for names holding a quote). */
const markedAmong = (irods: IrodsClientService, collections: ReadonlyArray<string>) =>
  Effect.gen(function*() {
    const plain = collections.filter((c) => !c.includes("'"))
    const quoted = collections.filter((c) => c.includes("'"))
    const select = [COL.COLL_NAME, COL.META_COLL_ATTR_VALUE]
    const queries = [
      ...(plain.length === 0 ? [] : [
        { select, where: [[COL.COLL_NAME, quoteList(plain)], [COL.META_COLL_ATTR_NAME, eq(MARKER_ATTRIBUTE)]] as const }
      ]),
      ...quoted.map((c) => ({ select, where: [[COL.COLL_NAME, eq(c)], [COL.META_COLL_ATTR_NAME, eq(MARKER_ATTRIBUTE)]] as const }))
    ]
    const marked = new Set<string>()
    for (const q of queries) {
      for (const [name, value] of yield* irods.genQuery(q)) {
        if (name !== undefined && value !== undefined && isMarkerValue(value)) marked.add(name)
      }
    }
    return marked
  })

/** Discovery over an iRODS client and a `DuckLakeClient`. */
export const make = (
  irods: IrodsClientService,
  client: DuckLakeClientService,
  options: DiscoveryOptions = {}
): Effect.Effect<ProjectDiscoveryService> =>
  Effect.sync(() => {
    const ttlMs = Duration.toMillis(options.ttl ?? "300 seconds")
    const capacity = options.capacity ?? 10_000
    // collection → (marked?, expiry). Map iteration order is insertion order, so the first key is the oldest.
    const cache = new Map<string, { readonly marked: boolean; readonly expires: number }>()

    const remember = (collection: string, marked: boolean, now: number) => {
      cache.delete(collection)
      cache.set(collection, { marked, expires: now + ttlMs })
      while (cache.size > capacity) cache.delete(cache.keys().next().value!)
    }

    const findMarkedRoot: ProjectDiscoveryService["findMarkedRoot"] = Effect.fn("ProjectDiscovery.findMarkedRoot")(
      function*(raw: string) {
        const path = yield* parseIrodsPath(raw, "irodsPath")
        const candidates = candidateRoots(path)
        const now = yield* Clock.currentTimeMillis
        const unknown = candidates.filter((c) => {
          const hit = cache.get(c)
          return hit === undefined || hit.expires <= now
        })
        if (unknown.length > 0) {
          const marked = yield* markedAmong(irods, unknown).pipe(Effect.mapError(toStorageError))
          for (const c of unknown) remember(c, marked.has(c), now)
        }
        yield* Effect.annotateCurrentSpan({ irodsPath: path, checked: candidates.length, queried: unknown.length })
        const root = candidates.find((c) => cache.get(c)?.marked === true)
        return root === undefined ? Option.none() : Option.some(root as IrodsPath)
      }
    )

    const discoverProject: ProjectDiscoveryService["discoverProject"] = Effect.fn("ProjectDiscovery.discoverProject")(
      function*(raw: string, opts: { readonly actor: string }) {
        const path = yield* parseIrodsPath(raw, "irodsPath")
        const root = yield* findMarkedRoot(path)
        if (Option.isNone(root)) return yield* new NotMesaEnabled({ irodsPath: path })
        const existing = yield* client.findProjectByPath(root.value).pipe(
          Effect.map(Option.some),
          Effect.catchTag("ProjectNotFound", () => Effect.succeed(Option.none<Project>()))
        )
        const project = Option.isSome(existing) ? existing.value : yield* client.registerProject({
          irodsPath: root.value,
          actor: opts.actor
        }).pipe(
          // Another process registered it between our lookup and our registration.
          Effect.catchTag("ProjectConflict", (e) =>
            e.relation === "duplicate"
              ? client.findProjectByPath(root.value).pipe(Effect.catchTag("ProjectNotFound", () => Effect.fail(e)))
              : Effect.fail(e))
        )
        yield* Effect.annotateCurrentSpan({ projectId: project.projectId, root: project.irodsPath, registered: Option.isNone(existing) })
        if (Option.isNone(existing)) yield* Effect.logInfo("registered MESA project found by its marker", { root: project.irodsPath })
        return project
      }
    )

    const invalidate: ProjectDiscoveryService["invalidate"] = (path) =>
      Effect.sync(() => {
        if (path === undefined) return cache.clear()
        for (const key of [...cache.keys()]) if (isWithin(path, key)) cache.delete(key)
      })

    return { findMarkedRoot, discoverProject, invalidate }
  })

/** The discovery service over the `IrodsClient` and `DuckLakeClient` in context. */
export const layer = (options: DiscoveryOptions = {}): Layer.Layer<ProjectDiscovery, never, IrodsClient | DuckLakeClient> =>
  Layer.effect(
    ProjectDiscovery,
    Effect.flatMap(Effect.all([IrodsClient, DuckLakeClient]), ([irods, client]) => make(irods, client, options))
  )
