/**
 * `LakeStorage` over the native iRODS client (hosted mode: no mount). Puts are verified end to end: after the
 * upload the server recomputes the object's checksum, and the local file is digested in the same algorithm
 * (MD5 or SHA-256, whatever the zone's policy is); anything but equality is a `ChecksumMismatch`.
 */
import { Effect, Layer, Option } from "effect"
import { posix } from "node:path"
import { ChecksumMismatch, StorageError } from "../core/errors.js"
import {
  checksumFile,
  formatIrodsChecksum,
  LakeStorage,
  type LakeStorageService,
  type StoredEntry
} from "./LakeStorage.js"
import { OBJ_TYPE } from "../irods/Api.js"
import { irodsConfig } from "../irods/Config.js"
import { IrodsClient, type IrodsClientService } from "../irods/IrodsClient.js"
import { type IrodsError, toStorageError } from "../irods/Errors.js"

const mapError = <A, E extends { readonly _tag: string }>(effect: Effect.Effect<A, E>) =>
  Effect.catchIf(
    effect,
    (e): e is Extract<E, IrodsError> => e._tag === "IrodsError",
    (e) => Effect.fail(toStorageError(e))
  )

/** Builds the storage service over a client. */
export const fromClient = (client: IrodsClientService): LakeStorageService => {
  const put: LakeStorageService["put"] = (localFile, path, options) =>
    Effect.gen(function*() {
      const { size } = yield* mapError(client.put(localFile, path, { overwrite: options?.overwrite ?? false }))
      const remote = yield* mapError(client.checksum(path, { force: true }))
      const local = yield* Effect.tryPromise({
        try: () => checksumFile(localFile, remote.algorithm),
        catch: (cause) => new StorageError({ operation: "put", path: localFile, reason: "Unknown", cause })
      })
      if (local.hex !== remote.hex) {
        return yield* Effect.fail(new ChecksumMismatch({
          path,
          expected: formatIrodsChecksum(local),
          actual: formatIrodsChecksum(remote)
        }))
      }
      return { path, size, checksum: remote }
    }).pipe(Effect.withSpan("IrodsStorage.put", { attributes: { path } }))

  const stat: LakeStorageService["stat"] = (path) =>
    mapError(client.objStat(path)).pipe(
      Effect.map(Option.map((st): StoredEntry => ({
        path,
        name: posix.basename(path),
        type: st.objType === OBJ_TYPE.COLL_OBJ ? "collection" : "data_object",
        size: st.objType === OBJ_TYPE.COLL_OBJ ? 0 : st.objSize,
        modified: st.modifyTime,
        objectId: st.dataId || null
      })))
    )

  const list: LakeStorageService["list"] = (collection) =>
    mapError(client.listCollection(collection)).pipe(
      Effect.map((listing) => [
        ...listing.collections.map((c): StoredEntry => ({
          path: c.path,
          name: c.name,
          type: "collection",
          size: 0,
          modified: c.modified,
          objectId: c.id
        })),
        ...listing.dataObjects.map((d): StoredEntry => ({
          path: d.path,
          name: d.name,
          type: "data_object",
          size: d.size,
          modified: d.modified,
          objectId: d.id
        }))
      ])
    )

  return {
    kind: "irods-native",
    resolvesObjectIds: true,
    put,
    get: (path, localFile) => mapError(client.get(path, localFile)).pipe(Effect.asVoid),
    stat,
    checksum: (path) => mapError(client.checksum(path)),
    list,
    remove: (path) => mapError(client.unlink(path, { force: true })),
    makeCollection: (path) => mapError(client.collCreate(path, { parents: true })),
    localPath: () => Option.none(),
    anchor: {
      read: (root, attribute) =>
        mapError(client.listAvus({ type: "collection", path: root })).pipe(
          Effect.map((avus) => Option.fromNullable(avus.find((a) => a.name === attribute)?.value))
        ),
      write: (root, attribute, value) =>
        mapError(client.setAvu({ type: "collection", path: root }, { name: attribute, value, units: "" }))
    }
  }
}

/** `LakeStorage` from an `IrodsClient` in context. */
export const layer: Layer.Layer<LakeStorage, never, IrodsClient> = Layer.effect(
  LakeStorage,
  Effect.map(IrodsClient, fromClient)
)

/**
 * `LakeStorage` with its own client, configured from `~/.irods/irods_environment.json` + `.irodsA` and the
 * `MESA_DUCKLAKE_IRODS_*` variables.
 */
export const layerConfig = layer.pipe(Layer.provide(IrodsClient.layerConfig(irodsConfig)))

export const IrodsStorage = { fromClient, layer, layerConfig } as const
