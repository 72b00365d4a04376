/**
 * Where a mounted-storage operation may act: the mount's configuration, the logical → local path mapping (inside
 * the prefix, no `..`), the pinned real path of the mount root, the link refusal every operation runs first, and
 * the mapping of file-system errors onto `StorageError`. Built once per adapter and handed to each operation.
 */
import type * as FileSystem from "@effect/platform/FileSystem"
import type { PlatformError } from "@effect/platform/Error"
import { Effect, Option } from "effect"
import * as nodePath from "node:path"
import { StorageError } from "../core/errors.js"
import type { StoredEntry } from "./LakeStorage.js"
import { runAsync, syncProbe } from "./mountLinks.js"

export interface MountConfig {
  /** The iRODS logical path the mount stands for, e.g. `/iplant/home`. */
  readonly logicalPrefix: string
  /** Where that prefix appears on this machine, e.g. `/data-store/iplant/home`. */
  readonly mountRoot: string
}

/** A logical path mapped onto the mount: the (real) mount root and the local path below it. */
export interface MountedAt {
  readonly root: string
  readonly local: string
}

/** What every mounted-storage operation shares. */
export interface MountContext {
  readonly fs: FileSystem.FileSystem
  /** The local path of a logical one, or undefined when it is outside the prefix or climbs out with `..`. */
  readonly lexical: (path: string) => MountedAt | undefined
  /** Fails unless `local` is its own real path below the mount root (no symbolic link on the way, none at the end). */
  readonly refuseLinks: (operation: string, path: string, root: string, local: string) => Effect.Effect<void, StorageError>
  /** Map a logical path onto the mount, refusing anything outside the prefix or reached through a symbolic link. */
  readonly resolveAt: (operation: string, path: string) => Effect.Effect<MountedAt, StorageError>
  /** `resolveAt`, the local path only. */
  readonly resolve: (operation: string, path: string) => Effect.Effect<string, StorageError>
  /** A file-system error of an operation as a `StorageError`. */
  readonly fail: (operation: string, path: string) => (e: PlatformError) => StorageError
  /** A refused path (`PermissionDenied`), with why when known. */
  readonly denied: (operation: string, path: string, why?: string) => StorageError
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

/** Builds the context; the mount root's real path is pinned now if the mount is there, else on first use. */
export const makeMountContext = (fs: FileSystem.FileSystem, config: MountConfig): MountContext => {
  const prefix = config.logicalPrefix === "/" ? "" : config.logicalPrefix.replace(/\/+$/, "")
  const lexicalRoot = nodePath.resolve(config.mountRoot)
  // The mount root's real path, pinned the first time it exists (normally now, when the adapter is built).
  let pinnedRoot: string | undefined
  const rootNow = (): string => {
    if (pinnedRoot === undefined) {
      const real = syncProbe.realpath(lexicalRoot)
      if (typeof real !== "string") return lexicalRoot
      pinnedRoot = real
    }
    return pinnedRoot
  }
  rootNow()

  const fail = (operation: string, path: string) => (e: PlatformError) =>
    new StorageError({ operation, path, reason: reasonOf(e), cause: e })

  const denied = (operation: string, path: string, why?: string) =>
    new StorageError({ operation, path, reason: "PermissionDenied", ...(why === undefined ? {} : { cause: new Error(why) }) })

  /** The local path of a logical one, or undefined when it is outside the prefix or climbs out with `..`. */
  const lexical = (path: string): { readonly root: string; readonly local: string } | undefined => {
    const inside = path === prefix || path.startsWith(prefix + "/")
    if (!inside || path.split("/").some((s) => s === "..")) return undefined
    const root = rootNow()
    // No trailing separator (`/` under the prefix `/` is the root itself): the link check compares exact paths.
    const rel = path.slice(prefix.length).replace(/^\/+|\/+$/g, "")
    return { root, local: rel === "" ? root : nodePath.join(root, rel) }
  }

  /** Fails unless `local` is its own real path below the mount root (no symbolic link on the way, none at the end). */
  const refuseLinks = (operation: string, path: string, root: string, local: string) =>
    Effect.flatMap(Effect.promise(() => runAsync(root, local)), (why) =>
      why === undefined ? Effect.void : Effect.fail(denied(operation, path, why)))

  /** Map a logical path onto the mount, refusing anything outside the prefix or reached through a symbolic link. */
  const resolveAt = (operation: string, path: string) =>
    Effect.suspend(() => {
      const at = lexical(path)
      if (at === undefined) return Effect.fail(denied(operation, path))
      return Effect.as(refuseLinks(operation, path, at.root, at.local), at)
    })
  const resolve = (operation: string, path: string) => Effect.map(resolveAt(operation, path), (at) => at.local)

  return { fs, lexical, refuseLinks, resolveAt, resolve, fail, denied }
}

/** A stored entry from a file's (or lstat's) type, size and modification time. */
export const entryOf = (
  path: string,
  info: Pick<FileSystem.File.Info, "type" | "mtime"> & { readonly size: bigint | number }
): StoredEntry => ({
  path,
  name: nodePath.posix.basename(path),
  type: info.type === "Directory" ? "collection" : "data_object",
  size: Number(info.size),
  modified: Option.getOrElse(info.mtime, () => new Date(0)),
  // A mount's inode numbers are not iRODS object ids: the mount cannot resolve those.
  objectId: null
})
