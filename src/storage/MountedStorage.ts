/**
 * `LakeStorage` over a mounted iRODS zone (irodsfs, davfs2, the VICE `/data-store` mount) — or any local
 * directory standing in for one — through @effect/platform's FileSystem.
 *
 * The mount is described by the logical prefix it stands for and the local directory it appears at:
 * `{ logicalPrefix: "/iplant/home", mountRoot: "/data-store/iplant/home" }` maps
 * `/iplant/home/alice/x` ↔ `/data-store/iplant/home/alice/x`.
 *
 * Symbolic links. iRODS has none, so below the mount root a link is never part of the zone: it is something placed
 * on the local file system that would send a read or a write somewhere else (outside the zone, or into another
 * project's lake, where a commit marker would overwrite the other project's). Every operation therefore resolves its
 * real path first and refuses — `StorageError` "PermissionDenied", nothing read or written — any path whose existing
 * part is not exactly its own real path: a link in any component below the mount root, or the target itself a
 * link (dangling ones included). The mount root may be a link (`/data-store` often is): it is resolved once, when
 * the adapter is built (or on first use, if the mount was not there yet), and its real path is used from then on.
 *
 * What this does not close: the check and the operation are separate system calls, so a process that can change
 * the directories on this machine can swap a directory for a link in between (time of check to time of use). `put`
 * checks again right before its rename, `checksum` opens with O_NOFOLLOW, and `makeCollection` checks again after
 * creating, which narrows the window to microseconds but does not shut it; and `localPath` hands DuckDB a path that
 * DuckDB opens later, on its own. Hard links and bind mounts are not links to `realpath` and are not detected.
 * Whoever can write the mount's directories outside iRODS must be trusted to that extent.
 */
import { FileSystem } from "@effect/platform"
import type { PlatformError } from "@effect/platform/Error"
import { Config, Effect, Layer, Option } from "effect"
import { createHash, randomBytes } from "node:crypto"
import * as nodeFs from "node:fs"
import * as nodePath from "node:path"
import { ChecksumMismatch, StorageError } from "../errors.js"
import { type Checksum, checksumFile, LakeStorage, type LakeStorageService, type StoredEntry } from "../LakeStorage.js"

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

const codeOf = (e: unknown): string | undefined => (e as NodeJS.ErrnoException | undefined)?.code

/** The two system calls a link check needs, synchronous or not (`localPath` is synchronous by contract). */
interface LinkProbe<F> {
  readonly realpath: (p: string) => F
  readonly lstat: (p: string) => F
}

/**
 * Why `local` (below `root`) is not its own real path, or undefined when it is. Walks up from `local` to the deepest
 * path that exists and compares its real path with its lexical one (one `realpath` when the path exists, which is
 * the common case). An absent path is fine (nothing below it exists either) unless it is a dangling link: `lstat`
 * sees those. Written once as a generator so the synchronous and the asynchronous check cannot drift apart.
 */
function* linkCheck<F>(root: string, local: string, probe: LinkProbe<F>): Generator<F, string | undefined, any> {
  for (let p = local; p !== root && p !== nodePath.dirname(p); p = nodePath.dirname(p)) {
    const real = yield probe.realpath(p)
    if (typeof real === "string") return real === p ? undefined : `${p} is, or lies under, a symbolic link (it resolves to ${real})`
    if (real.code !== "ENOENT" && real.code !== "ENOTDIR") return `${p} cannot be resolved (${real.code})`
    const link = yield probe.lstat(p)
    if (link === true) return `${p} is a symbolic link that resolves to nothing`
    if (link.code !== "ENOENT" && link.code !== "ENOTDIR") return `${p} cannot be examined (${link.code})`
  }
  return undefined
}

/** A probe result: the real path, `true` for an existing entry (lstat), or the error code. */
type Probed = string | true | { readonly code: string | undefined }

const syncProbe: LinkProbe<Probed> = {
  realpath: (p) => {
    try {
      return nodeFs.realpathSync.native(p)
    } catch (e) {
      return { code: codeOf(e) }
    }
  },
  lstat: (p) => {
    try {
      nodeFs.lstatSync(p)
      return true
    } catch (e) {
      return { code: codeOf(e) }
    }
  }
}

const asyncProbe: LinkProbe<Promise<Probed>> = {
  realpath: (p) => nodeFs.promises.realpath(p).then((r) => r, (e) => ({ code: codeOf(e) })),
  lstat: (p) => nodeFs.promises.lstat(p).then(() => true as const, (e) => ({ code: codeOf(e) }))
}

const runSync = (root: string, local: string): string | undefined => {
  const it = linkCheck(root, local, syncProbe)
  for (let step = it.next(); ; ) {
    if (step.done === true) return step.value
    step = it.next(step.value)
  }
}

const runAsync = async (root: string, local: string): Promise<string | undefined> => {
  const it = linkCheck(root, local, asyncProbe)
  for (let step = it.next(); ; ) {
    if (step.done === true) return step.value
    step = it.next(await step.value)
  }
}

/** SHA-256 of a stored file, opened without following a link in its last component (O_NOFOLLOW: ELOOP). */
const checksumNoFollow = async (file: string): Promise<Checksum> => {
  const handle = await nodeFs.promises.open(file, nodeFs.constants.O_RDONLY | (nodeFs.constants.O_NOFOLLOW ?? 0))
  try {
    const h = createHash("sha256")
    for await (const chunk of handle.createReadStream({ autoClose: false })) h.update(chunk as Buffer)
    return { algorithm: "sha256", hex: h.digest("hex") }
  } finally {
    await handle.close()
  }
}

export const make = (config: MountConfig) =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
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

    const entryOf = (
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
          try: () => checksumNoFollow(local),
          catch: (cause) =>
            new StorageError({
              operation: "checksum",
              path,
              reason: codeOf(cause) === "ENOENT"
                ? "NotFound"
                : codeOf(cause) === "ELOOP" || codeOf(cause) === "EACCES"
                ? "PermissionDenied"
                : "Unknown",
              cause
            })
        }))

    const put: LakeStorageService["put"] = (localFile, path, options) =>
      Effect.gen(function*() {
        const { local: target, root } = yield* resolveAt("put", path)
        if (options?.overwrite !== true && (yield* fs.exists(target).pipe(Effect.mapError(fail("put", path))))) {
          return yield* new StorageError({ operation: "put", path, reason: "AlreadyExists" })
        }
        const expected = yield* Effect.tryPromise({
          try: () => checksumFile(localFile, "sha256"),
          catch: (cause) => new StorageError({ operation: "put", path: localFile, reason: "NotFound", cause })
        })
        // Copy under a temporary name and rename, so a reader never sees a half-written file. The copy goes
        // through the FileSystem service (which has no no-follow flag); the temporary name is random, and right
        // before the rename the directories, the temporary file and the target are checked again for links.
        const temp = `${target}.part-${randomBytes(4).toString("hex")}`
        yield* fs.copyFile(localFile, temp).pipe(
          Effect.mapError(fail("put", path)),
          Effect.zipRight(refuseLinks("put", path, root, temp)),
          Effect.zipRight(refuseLinks("put", path, root, target)),
          Effect.zipRight(fs.rename(temp, target).pipe(Effect.mapError(fail("put", path)))),
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
            // lstat: an entry that is a link is listed as what it is here (not followed); reading it is refused.
            return Effect.tryPromise(() => nodeFs.promises.lstat(`${dir}/${name}`)).pipe(
              Effect.map((st) => ({
                type: st.isDirectory() ? "Directory" as const : "File" as const,
                size: st.size,
                mtime: Option.some(st.mtime)
              })),
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

    // Checked before creating and again after: a link that appeared in between is reported, though directories may
    // have been created through it by then.
    const makeCollection: LakeStorageService["makeCollection"] = (path) =>
      Effect.flatMap(
        resolve("makeCollection", path),
        (local) =>
          fs.makeDirectory(local, { recursive: true }).pipe(
            Effect.mapError(fail("makeCollection", path)),
            Effect.zipRight(resolve("makeCollection", path))
          )
      ).pipe(Effect.asVoid)

    // Synchronous by contract, and called for every file DuckDB reads: one realpath(3) per call (a few µs on a local
    // disk; no cache, which would only widen the window above). A path that fails the check gets None, so the
    // caller falls back to `get`, which refuses it with a typed error. On a stalled mount this call blocks the thread.
    const localPath: LakeStorageService["localPath"] = (path) => {
      const at = lexical(path)
      if (at === undefined) return Option.none()
      // The common case (the file exists and is its own real path) without the generator; the full check otherwise.
      if (syncProbe.realpath(at.local) === at.local) return Option.some(at.local)
      return runSync(at.root, at.local) === undefined ? Option.some(at.local) : Option.none()
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
