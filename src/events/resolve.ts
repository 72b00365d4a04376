/**
 * Entity UUIDs → paths. The feed names entities by the `ipc_UUID` AVU CyVerse puts on every collection and data
 * object (../shared/AMQP.md §3); we find the path with GenQuery through the native client, as dewey does, and keep
 * the answer. `*.mv` events rewrite cached paths (a collection's move rewrites every cached path below it), so an
 * entity's cached path is where the history has it, event by event.
 *
 * Owns: `UUID_ATTRIBUTE`, `makeResolver` (`EntityResolver`).
 */
import { Effect } from "effect"
import { posix } from "node:path"
import { isWithin } from "../core/domain.js"
import type { StorageError } from "../core/errors.js"
import { COL } from "../irods/Api.js"
import { toStorageError } from "../irods/Errors.js"
import { eq, type IrodsClientService, like } from "../irods/IrodsClient.js"
import type { EntityType } from "./messages.js"

/** The AVU holding an entity's UUID. */
export const UUID_ATTRIBUTE = "ipc_UUID"

export interface Located {
  readonly path: string
  readonly type: EntityType
}

export interface EntityResolver {
  /** The cached answer only (no iRODS call): the fast path for entities seen before. */
  readonly cached: (uuid: string) => Located | undefined
  /** Where the entity is (cache, else iRODS); undefined when no entity carries the UUID (deleted, or foreign). */
  readonly locate: (uuid: string) => Effect.Effect<Located | undefined, StorageError>
  /** A move: the entity, and with a collection everything cached below it, is now under `to`. */
  readonly moved: (uuid: string, from: string, to: string, type: EntityType) => void
  /** Data objects in `collection` whose names match the SQL pattern (`addw`). */
  readonly dataObjectsLike: (collection: string, namePattern: string) => Effect.Effect<ReadonlyArray<string>, StorageError>
  /** The live AVUs of an entity (a `cp` whose source is outside every project). */
  readonly liveAvus: (at: Located) => Effect.Effect<ReadonlyArray<{ attribute: string; value: string; unit: string }>, StorageError>
  readonly size: () => number
}

/** GenQuery strings are quoted with single quotes and have no escape: a UUID with a quote cannot name anything. */
const quotable = (s: string) => !s.includes("'")

export const makeResolver = (irods: IrodsClientService, capacity = 100_000): EntityResolver => {
  const cache = new Map<string, Located>()
  const remember = (uuid: string, at: Located) => {
    cache.delete(uuid)
    cache.set(uuid, at)
    if (cache.size > capacity) cache.delete(cache.keys().next().value!)
  }
  const locate = (uuid: string) =>
    Effect.gen(function*() {
      const hit = cache.get(uuid)
      if (hit !== undefined) return hit
      if (!quotable(uuid)) return undefined
      const [data, colls] = yield* Effect.all([
        irods.genQuery({
          select: [COL.COLL_NAME, COL.DATA_NAME],
          where: [[COL.META_DATA_ATTR_NAME, eq(UUID_ATTRIBUTE)], [COL.META_DATA_ATTR_VALUE, eq(uuid)]],
          limit: 2
        }),
        irods.genQuery({
          select: [COL.COLL_NAME],
          where: [[COL.META_COLL_ATTR_NAME, eq(UUID_ATTRIBUTE)], [COL.META_COLL_ATTR_VALUE, eq(uuid)]],
          limit: 2
        })
      ], { concurrency: 2 }).pipe(Effect.mapError(toStorageError))
      const found: Located | undefined = data[0] !== undefined
        ? { path: posix.join(data[0][0]!, data[0][1]!), type: "data_object" }
        : colls[0] !== undefined
        ? { path: colls[0][0]!, type: "collection" }
        : undefined
      if (found !== undefined) remember(uuid, found)
      return found
    })
  const moved = (uuid: string, from: string, to: string, type: EntityType) => {
    remember(uuid, { path: to, type })
    if (type !== "collection") return
    for (const [id, at] of cache) {
      if (id !== uuid && isWithin(at.path, from)) cache.set(id, { path: to + at.path.slice(from.length), type: at.type })
    }
  }
  const dataObjectsLike = (collection: string, namePattern: string) =>
    !quotable(collection) || !quotable(namePattern)
      ? Effect.succeed([])
      : irods.genQuery({
        select: [COL.COLL_NAME, COL.DATA_NAME],
        where: [[COL.COLL_NAME, eq(collection)], [COL.DATA_NAME, like(namePattern)]]
      }).pipe(
        Effect.map((rows) => [...new Set(rows.map(([c, n]) => posix.join(c!, n!)))].sort()),
        Effect.mapError(toStorageError)
      )
  const liveAvus = (at: Located) =>
    irods.listAvus({ type: at.type, path: at.path }).pipe(
      Effect.map((avus) =>
        avus.filter((a) => a.name !== UUID_ATTRIBUTE).map((a) => ({ attribute: a.name, value: a.value, unit: a.units }))
      ),
      Effect.mapError(toStorageError)
    )
  return { cached: (uuid) => cache.get(uuid), locate, moved, dataObjectsLike, liveAvus, size: () => cache.size }
}
