/**
 * `LakeStorage` over a mounted iRODS zone (irodsfs, davfs2, the VICE `/data-store` mount) — or any local
 * directory standing in for one — through @effect/platform's FileSystem.
 *
 * The mount is described by the logical prefix it stands for and the local directory it appears at:
 * `{ logicalPrefix: "/iplant/home", mountRoot: "/data-store/iplant/home" }` maps
 * `/iplant/home/alice/x` ↔ `/data-store/iplant/home/alice/x`.
 */
import { FileSystem } from "@effect/platform"
import type { PlatformError } from "@effect/platform/Error"
import { Config, Effect, Layer, Option } from "effect"
import { randomBytes } from "node:crypto"
import * as nodePath from "node:path"
import { ChecksumMismatch, StorageError } from "../errors.js"
import { checksumFile, LakeStorage, type LakeStorageService, type StoredEntry } from "../LakeStorage.js"

export interface MountConfig {
  /** The iRODS logical path the mount stands for, e.g. `/iplant/home`. */
  readonly logicalPrefix: string
  /** Where that prefix appears on this machine, e.g. `/data-store/iplant/home`. */
  readonly mountRoot: string
}

const reasonOf = (e: PlatformError): StorageError["reason"] => {
  if (e._tag !== "SystemError") return "Unknown"
  switch (e.reason) {
    case "NotFound":
      return "NotFound"
    case "AlreadyExists":
      return "AlreadyExists"
    case "PermissionDenied":
      return "PermissionDenied"
    case "TimedOut":
      return "Timeout"
    case "Busy":
    case "WouldBlock":
      return "Unavailable"
    default:
      return /ENOSPC/.test(e.message) ? "NoSpace" : "Unknown"
  }
}

export const make = (config: MountConfig) =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const prefix = config.logicalPrefix === "/" ? "" : config.logicalPrefix.replace(/\/+$/, "")
    const root = nodePath.resolve(config.mountRoot)

    const fail = (operation: string, path: string) => (e: PlatformError) =>
      new StorageError({ operation, path, reason: reasonOf(e), cause: e })

    /** Map a logical path onto the mount, refusing anything outside the prefix. */
    const resolve = (operation: string, path: string) =>
      Effect.suspend(() => {
        const inside = path === prefix || path.startsWith(prefix + "/")
        if (!inside || path.split("/").some((s) => s === "..")) {
          return Effect.fail(new StorageError({ operation, path, reason: "PermissionDenied" }))
        }
        return Effect.succeed(root + path.slice(prefix.length))
      })

    const entryOf = (path: string, info: FileSystem.File.Info): StoredEntry => ({
      path,
      name: nodePath.posix.basename(path),
      type: info.type === "Directory" ? "collection" : "data_object",
      size: Number(info.size),
      modified: Option.getOrElse(info.mtime, () => new Date(0)),
      // A mount's inode numbers are not iRODS object ids: the mount cannot resolve those.
      objectId: null
    })

    const stat: LakeStorageService["stat"] = (path) =>
      Effect.flatMap(resolve("stat", path), (local) =>
        fs.stat(local).pipe(
          Effect.map((info) => Option.some(entryOf(path, info))),
          Effect.catchIf(
            (e) => e._tag === "SystemError" && e.reason === "NotFound",
            () => Effect.succeed(Option.none<StoredEntry>())
          ),
          Effect.mapError(fail("stat", path))
        ))

    const checksum: LakeStorageService["checksum"] = (path) =>
      Effect.flatMap(resolve("checksum", path), (local) =>
        Effect.tryPromise({
          try: () => checksumFile(local, "sha256"),
          catch: (cause) =>
            new StorageError({
              operation: "checksum",
              path,
              reason: (cause as NodeJS.ErrnoException)?.code === "ENOENT" ? "NotFound" : "Unknown",
              cause
            })
        }))

    const put: LakeStorageService["put"] = (localFile, path, options) =>
      Effect.gen(function*() {
        const target = yield* resolve("put", path)
        if (options?.overwrite !== true && (yield* fs.exists(target).pipe(Effect.mapError(fail("put", path))))) {
          return yield* new StorageError({ operation: "put", path, reason: "AlreadyExists" })
        }
        const expected = yield* Effect.tryPromise({
          try: () => checksumFile(localFile, "sha256"),
          catch: (cause) => new StorageError({ operation: "put", path: localFile, reason: "NotFound", cause })
        })
        // Copy under a temporary name and rename, so a reader never sees a half-written file.
        const temp = `${target}.part-${randomBytes(4).toString("hex")}`
        yield* fs.copyFile(localFile, temp).pipe(
          Effect.zipRight(fs.rename(temp, target)),
          Effect.mapError(fail("put", path)),
          Effect.tapError(() => fs.remove(temp).pipe(Effect.ignore))
        )
        const actual = yield* checksum(path)
        if (actual.hex !== expected.hex) {
          return yield* new ChecksumMismatch({ path, expected: expected.hex, actual: actual.hex })
        }
        const info = yield* fs.stat(target).pipe(Effect.mapError(fail("put", path)))
        return { path, size: Number(info.size), checksum: actual }
      })

    const get: LakeStorageService["get"] = (path, localFile) =>
      Effect.gen(function*() {
        const source = yield* resolve("get", path)
        const temp = `${localFile}.part-${randomBytes(4).toString("hex")}`
        yield* fs.copyFile(source, temp).pipe(
          Effect.zipRight(fs.rename(temp, localFile)),
          Effect.tapError(() => fs.remove(temp).pipe(Effect.ignore)),
          Effect.mapError(fail("get", path))
        )
      })

    const list: LakeStorageService["list"] = (collection) =>
      Effect.gen(function*() {
        const dir = yield* resolve("list", collection)
        const names = yield* fs.readDirectory(dir).pipe(Effect.mapError(fail("list", collection)))
        const entries = yield* Effect.forEach(
          names.filter((n) => !/\.part-[0-9a-f]{8}$/.test(n)),
          (name) => {
            const path = collection === "/" ? `/${name}` : `${collection}/${name}`
            return fs.stat(`${dir}/${name}`).pipe(
              Effect.map((info) => Option.some(entryOf(path, info))),
              // A file removed between readdir and stat is simply gone.
              Effect.catchAll(() => Effect.succeed(Option.none<StoredEntry>()))
            )
          },
          { concurrency: 16 }
        )
        return entries.flatMap((e) => (Option.isSome(e) ? [e.value] : [])).sort((a, b) =>
          a.name < b.name ? -1 : a.name > b.name ? 1 : 0
        )
      })

    const remove: LakeStorageService["remove"] = (path) =>
      Effect.flatMap(resolve("remove", path), (local) => fs.remove(local).pipe(Effect.mapError(fail("remove", path))))

    const makeCollection: LakeStorageService["makeCollection"] = (path) =>
      Effect.flatMap(
        resolve("makeCollection", path),
        (local) => fs.makeDirectory(local, { recursive: true }).pipe(Effect.mapError(fail("makeCollection", path)))
      )

    const localPath: LakeStorageService["localPath"] = (path) => {
      const inside = path === prefix || path.startsWith(prefix + "/")
      return inside ? Option.some(root + path.slice(prefix.length)) : Option.none()
    }

    return LakeStorage.of({
      kind: "mounted",
      put,
      get,
      stat,
      checksum,
      list,
      remove,
      makeCollection,
      localPath,
      resolvesObjectIds: false
    })
  })

/** A mounted-zone `LakeStorage`. Requires a `FileSystem` (e.g. `NodeFileSystem.layer`). */
export const layer = (config: MountConfig) => Layer.effect(LakeStorage, make(config))

/** From `MESA_DUCKLAKE_MOUNT_ROOT` and `MESA_DUCKLAKE_MOUNT_PREFIX` (default `/`). */
export const layerConfig = Layer.unwrapEffect(
  Effect.map(
    Config.all({
      mountRoot: Config.string("MESA_DUCKLAKE_MOUNT_ROOT"),
      logicalPrefix: Config.string("MESA_DUCKLAKE_MOUNT_PREFIX").pipe(Config.withDefault("/"))
    }),
    layer
  )
)
