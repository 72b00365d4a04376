/**
 * The `LakeStorage` operations of a mounted zone, each a function of the adapter's `MountContext`: stat, checksum
 * (no-follow), verified put (temporary name, links checked again before the rename), get, list (lstat, links listed
 * as what they are), move (a checked rename), remove, makeCollection (checked before and after) and the synchronous
 * `localPath`.
 */
import { Effect, Option } from "effect"
import { randomBytes } from "node:crypto"
import * as nodeFs from "node:fs"
import * as nodePath from "node:path"
import { ChecksumMismatch, StorageError } from "../core/errors.js"
import { checksumFile, type LakeStorageService, type StoredEntry } from "./LakeStorage.js"
import { entryOf, type MountContext } from "./mountContext.js"
import { codeOf, readBackNoFollow, runSync, syncProbe } from "./mountLinks.js"

export const stat = (ctx: MountContext): LakeStorageService["stat"] => (path) =>
  Effect.flatMap(ctx.resolve("stat", path), (local) =>
    ctx.fs.stat(local).pipe(
      Effect.map((info) => Option.some(entryOf(path, info))),
      Effect.catchIf(
        (e) => e._tag === "SystemError" && e.reason === "NotFound",
        () => Effect.succeed(Option.none<StoredEntry>())
      ),
      Effect.mapError(ctx.fail("stat", path))
    ))

export const checksum = (ctx: MountContext): LakeStorageService["checksum"] => (path) =>
  Effect.flatMap(ctx.resolve("checksum", path), (local) =>
    Effect.tryPromise({
      try: () => readBackNoFollow(local).then((read) => read.checksum),
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

export const put = (ctx: MountContext): LakeStorageService["put"] => (localFile, path, options) =>
  Effect.gen(function*() {
    const at = ctx.lexical(path)
    if (at === undefined) return yield* ctx.denied("put", path)
    const { local: target, root } = at
    const dir = nodePath.dirname(target)
    // Copy under a temporary name and rename, so a reader never sees a half-written file. The copy goes through the
    // FileSystem service (which has no no-follow flag); the temporary name is random, and right before the rename
    // the directories, the temporary file and the target are checked again for links. Each step is a round trip
    // through libuv's thread pool, so what does not depend on another runs beside it, and a check asks one question
    // of one path: the collection's real path (the directories; one realpath(3) when it exists) and an lstat(2) of
    // the target (a link there is refused; something there is refused unless overwriting). Five steps in all:
    // checks, copy, checks again, rename, read back.
    const temp = `${target}.part-${randomBytes(4).toString("hex")}`
    const removeTemp = ctx.fs.remove(temp).pipe(Effect.ignore)
    const targetCheck = Effect.flatMap(lstatKind(target), (kind) =>
      kind === "link"
        ? Effect.fail(ctx.denied("put", path, `${target} is a symbolic link`))
        : kind !== "absent" && options?.overwrite !== true
        ? Effect.fail(new StorageError({ operation: "put", path, reason: "AlreadyExists" }))
        : Effect.void)
    const [expected] = yield* Effect.all([
      Effect.tryPromise({
        try: () => checksumFile(localFile, "sha256"),
        catch: (cause) => new StorageError({ operation: "put", path: localFile, reason: "NotFound", cause })
      }),
      ctx.refuseLinks("put", path, root, dir),
      targetCheck
    ], { concurrency: 3 })
    yield* ctx.fs.copyFile(localFile, temp).pipe(
      Effect.mapError(ctx.fail("put", path)),
      // The temporary file's real path covers the directories above it too.
      Effect.zipRight(Effect.all([ctx.refuseLinks("put", path, root, temp), targetCheck], { concurrency: 2, discard: true })),
      Effect.zipRight(ctx.fs.rename(temp, target).pipe(Effect.mapError(ctx.fail("put", path)))),
      Effect.tapError(() => removeTemp)
    )
    // The stored copy read back (not following a link at its name), beside one more look at the directories.
    const [stored] = yield* Effect.all([
      Effect.tryPromise({
        try: () => readBackNoFollow(target),
        catch: (cause) =>
          new StorageError({ operation: "put", path, reason: codeOf(cause) === "ELOOP" ? "PermissionDenied" : "Unknown", cause })
      }),
      ctx.refuseLinks("put", path, root, dir)
    ], { concurrency: 2 })
    if (stored.checksum.hex !== expected.hex) {
      return yield* new ChecksumMismatch({ path, expected: expected.hex, actual: stored.checksum.hex })
    }
    return { path, size: stored.size, checksum: stored.checksum }
  })

/** What is at a path, not following a link there; an error other than "nothing there" fails. */
const lstatKind = (local: string, operation = "put") =>
  Effect.tryPromise({
    try: () =>
      nodeFs.promises.lstat(local).then(
        (st) => (st.isSymbolicLink() ? "link" as const : "entry" as const),
        (e) => {
          // Nothing there, or a file where a directory should be (the copy then fails and says so).
          if (codeOf(e) === "ENOENT" || codeOf(e) === "ENOTDIR") return "absent" as const
          throw e
        }
      ),
    catch: (cause) =>
      new StorageError({ operation, path: local, reason: codeOf(cause) === "EACCES" ? "PermissionDenied" : "Unknown", cause })
  })

export const get = (ctx: MountContext): LakeStorageService["get"] => (path, localFile) =>
  Effect.gen(function*() {
    const source = yield* ctx.resolve("get", path)
    const temp = `${localFile}.part-${randomBytes(4).toString("hex")}`
    yield* ctx.fs.copyFile(source, temp).pipe(
      Effect.zipRight(ctx.fs.rename(temp, localFile)),
      Effect.tapError(() => ctx.fs.remove(temp).pipe(Effect.ignore)),
      Effect.mapError(ctx.fail("get", path))
    )
  })

export const list = (ctx: MountContext): LakeStorageService["list"] => (collection) =>
  Effect.gen(function*() {
    const dir = yield* ctx.resolve("list", collection)
    const names = yield* ctx.fs.readDirectory(dir).pipe(Effect.mapError(ctx.fail("list", collection)))
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

/**
 * A rename within the mount, checked like a put: the source is its own real path (no link on the way, none at the
 * end), the target's collection too, and no link is at the target; all three side by side, then the rename, then
 * the target's real path once more (a link swapped in meanwhile is reported). The target's collection is made when
 * missing, and the rename tried again.
 */
export const move = (ctx: MountContext): NonNullable<LakeStorageService["move"]> => (from, to) =>
  Effect.gen(function*() {
    const source = ctx.lexical(from)
    const target = ctx.lexical(to)
    if (source === undefined) return yield* ctx.denied("move", from)
    if (target === undefined) return yield* ctx.denied("move", to)
    const dir = nodePath.dirname(target.local)
    const check = Effect.all([
      ctx.refuseLinks("move", from, source.root, source.local),
      ctx.refuseLinks("move", to, target.root, dir),
      Effect.flatMap(lstatKind(target.local, "move"), (kind) =>
        kind === "link" ? Effect.fail(ctx.denied("move", to, `${target.local} is a symbolic link`)) : Effect.void)
    ], { concurrency: 3, discard: true })
    const rename = ctx.fs.rename(source.local, target.local).pipe(Effect.mapError(ctx.fail("move", to)))
    yield* check
    yield* rename.pipe(
      Effect.catchIf(
        (e) => e.reason === "NotFound",
        // The source is there (just checked): the target's collection is not yet.
        (e) =>
          Effect.flatMap(Effect.either(lstatKind(source.local, "move")), (kind) =>
            kind._tag === "Right" && kind.right === "entry"
              ? Effect.zipRight(makeCollection(ctx)(nodePath.posix.dirname(to)), Effect.zipRight(check, rename))
              : Effect.fail(e))
      )
    )
    yield* ctx.refuseLinks("move", to, target.root, target.local)
  })

export const remove = (ctx: MountContext): LakeStorageService["remove"] => (path) =>
  Effect.flatMap(ctx.resolve("remove", path), (local) => ctx.fs.remove(local).pipe(Effect.mapError(ctx.fail("remove", path))))

// Checked before creating and again after: a link that appeared in between is reported, though directories may
// have been created through it by then.
export const makeCollection = (ctx: MountContext): LakeStorageService["makeCollection"] => (path) =>
  Effect.flatMap(
    ctx.resolve("makeCollection", path),
    (local) =>
      ctx.fs.makeDirectory(local, { recursive: true }).pipe(
        Effect.mapError(ctx.fail("makeCollection", path)),
        Effect.zipRight(ctx.resolve("makeCollection", path))
      )
  ).pipe(Effect.asVoid)

// Synchronous by contract, and called for every file DuckDB reads: one realpath(3) per call (a few µs on a local
// disk; no cache, which would only widen the check-to-use window described in MountedStorage.ts). A path that
// fails the check gets None, so the caller falls back to `get`, which refuses it with a typed error. On a stalled
// mount this call blocks the thread.
export const localPath = (ctx: MountContext): LakeStorageService["localPath"] => (path) => {
  const at = ctx.lexical(path)
  if (at === undefined) return Option.none()
  // The common case (the file exists and is its own real path) without the generator; the full check otherwise.
  if (syncProbe.realpath(at.local) === at.local) return Option.some(at.local)
  return runSync(at.root, at.local) === undefined ? Option.some(at.local) : Option.none()
}
