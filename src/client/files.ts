/**
 * The client's two paths to stored bytes. Reading: every lake file DuckDB reads is first checked against the
 * catalog's checksum (the mount itself, or a cached copy fetched through the local cache), and DuckDB failures
 * become `LakeReadError`s naming the file. Writing: uploads with retries, and marker files staged in the cache.
 *
 * Owns: `readable`, `readableAll`, `verifyLocal` (and its bounded record of verified files), `readFiles`,
 * `duckFailure`, `upload`, `push`, `putMarker`.
 * May call: context.ts and the services.
 */
import { Effect, Option, Schedule } from "effect"
import { randomBytes } from "node:crypto"
import * as fs from "node:fs/promises"
import type { FileFilter, LakeFile, PendingWrite } from "../catalog/Catalog.js"
import { markerDigest } from "../catalog/chain.js"
import type { Project } from "../core/domain.js"
import type { DuckDbError } from "../duckdb/DuckDb.js"
import { ChecksumMismatch, LakeReadError, StorageError } from "../core/errors.js"
import { checksumFile, formatIrodsChecksum, parseIrodsChecksum } from "../storage/LakeStorage.js"
import { MARKER_DIR } from "../core/layout.js"
import type { ClientCore } from "./context.js"

const remoteOf = (p: Project, relative: string) => `${p.ducklakePath}/${relative}`

/**
 * `ctx.verifiedFiles` holds at most this many entries, the least recently used leaving first. Each is a file checked
 * against the catalog's checksum: the checksum and the stat fingerprint (device, inode, size, mtime and ctime in
 * nanoseconds) it had then. A file that changes in any way, or is swapped for another (a rename gives a new inode), is
 * checked again before it is read; an unchanged one costs one stat. Most entries go stale soon: every small file is
 * read once by the compaction that replaces it. The cap was 200,000 (cleared when full): a writer kept one entry
 * per snapshot written, ~0.65 KB each (measured: JS heap +2.6 MB per 4,000 snapshots, about 130 MB at the cap).
 * Compaction keeps a lake's live files far below this cap.
 */
export const VERIFIED_CAP = 10_000

/** Whether `local` was verified with this fingerprint; a hit becomes the most recently used (a Map keeps insertion order). */
export const stillVerified = (verified: Map<string, string>, local: string, print: string) => {
  if (verified.get(local) !== print) return false
  verified.delete(local)
  verified.set(local, print)
  return true
}

/** Records a verified file, the least recently used entry leaving when `cap` is reached. */
export const markVerified = (verified: Map<string, string>, local: string, print: string, cap = VERIFIED_CAP) => {
  verified.delete(local)
  if (verified.size >= cap) verified.delete(verified.keys().next().value!)
  verified.set(local, print)
}

/** Fails unless `local` holds exactly the bytes the catalog vouches for (`ChecksumMismatch` naming the file). */
export const verifyLocal = (ctx: ClientCore, p: Project, f: LakeFile, local: string) => {
  const verifiedFiles = ctx.verifiedFiles
  return Effect.tryPromise({
    try: async () => {
      const st = await fs.stat(local, { bigint: true })
      const print = `${f.checksum}|${st.dev}:${st.ino}:${st.size}:${st.mtimeNs}:${st.ctimeNs}`
      if (stillVerified(verifiedFiles, local, print)) return undefined
      if (Number(st.size) !== f.fileSizeBytes) {
        return { expected: `${f.fileSizeBytes} bytes`, actual: `${st.size} bytes` }
      }
      const expected = parseIrodsChecksum(f.checksum)
      // A checksum the catalog does not have (a compacted file of a lake upgraded from layout 1) cannot be checked.
      if (expected === undefined) return undefined
      const actual = await checksumFile(local, expected.algorithm)
      if (actual.hex !== expected.hex) return { expected: f.checksum, actual: formatIrodsChecksum(actual) }
      markVerified(verifiedFiles, local, print)
      return undefined
    },
    catch: (cause) =>
      new LakeReadError({
        projectId: p.projectId,
        file: f.relativePath,
        reason: (cause as NodeJS.ErrnoException)?.code === "ENOENT" ? "missing" : "unreadable",
        cause
      })
  }).pipe(
    Effect.flatMap((bad) =>
      bad === undefined
        ? Effect.void
        : Effect.zipRight(
          Effect.sync(() => verifiedFiles.delete(local)),
          Effect.fail(new ChecksumMismatch({ path: remoteOf(p, f.relativePath), ...bad }))
        )
    )
  )
}

/**
 * A local path DuckDB can read for a lake file, holding the bytes the catalog's checksum vouches for: the mount
 * itself, or a cached copy of a remote file (a cached copy that does not match is fetched again, once).
 */
export const readable = (ctx: ClientCore, p: Project, f: LakeFile) =>
  Effect.gen(function*() {
    const { cache, storage } = ctx
    const remote = remoteOf(p, f.relativePath)
    const direct = storage.localPath(remote)
    if (Option.isSome(direct)) {
      yield* verifyLocal(ctx, p, f, direct.value)
      return direct.value
    }
    const local = yield* cache.pathFor(p.projectId, f.relativePath.split("/").pop()!)
    if (yield* cache.has(local)) {
      yield* cache.touch(local)
      const ok = yield* Effect.either(verifyLocal(ctx, p, f, local))
      if (ok._tag === "Right") return local
      yield* Effect.promise(() => fs.rm(local, { force: true }).catch(() => undefined))
    }
    yield* storage.get(remote, local).pipe(
      Effect.mapError((e) =>
        e.reason === "NotFound"
          ? new LakeReadError({ projectId: p.projectId, file: f.relativePath, reason: "missing", cause: e })
          : e
      )
    )
    yield* cache.added(f.fileSizeBytes)
    yield* cache.secure(local)
    yield* verifyLocal(ctx, p, f, local).pipe(
      Effect.tapError(() => Effect.promise(() => fs.rm(local, { force: true }).catch(() => undefined)))
    )
    return local
  })

export const readableAll = (ctx: ClientCore, p: Project, files: ReadonlyArray<LakeFile>) =>
  Effect.forEach(files, (f) => readable(ctx, p, f), { concurrency: 8 })

/** A DuckDB failure while reading lake files: a read-side error naming the file when DuckDB names it. */
export const duckFailure = (p: Project, files: ReadonlyArray<LakeFile> = [], local: ReadonlyArray<string> = []) =>
(e: DuckDbError) => {
  const text = String((e as any)?.cause?.message ?? e.message ?? "")
  const at = local.findIndex((l) => text.includes(l))
  const named = at >= 0 ? files[at]?.relativePath : undefined
  const reason = /No such file|does not exist|cannot open file|Could not open|No files found/i.test(text)
    ? "missing" as const
    : /magic|corrupt|invalid|truncat|too small|out of range|parquet/i.test(text)
    ? "corrupt" as const
    : "unreadable" as const
  return new LakeReadError({ projectId: p.projectId, ...(named === undefined ? {} : { file: named }), reason, cause: e })
}

/** A DuckDB read over the files the catalog lists for `filter` (pruned by their statistics, through the cache). */
export const readFiles = <A>(
  ctx: ClientCore,
  p: Project,
  filter: FileFilter,
  read: (local: ReadonlyArray<string>) => Effect.Effect<A, DuckDbError>
) =>
  relisting(Effect.flatMap(ctx.catalog.files(p, filter), (files) =>
    Effect.flatMap(readableAll(ctx, p, files), (local) => read(local).pipe(Effect.mapError(duckFailure(p, files, local))))))

/**
 * Runs a list-then-read again (twice at most) when a listed file went missing: a compaction that committed after
 * the listing moves the files it replaced out of `main/`. A file missing for any other reason is missing again on
 * the new listing, and the error stands.
 */
export const relisting = <A, E, R>(read: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  Effect.retry(read, {
    times: 2,
    while: (e) => e instanceof LakeReadError && e.reason === "missing"
  })

/** Upload with a few retries for transient faults; the parent collection is created on demand. */
export const upload = (ctx: ClientCore, localFile: string, remotePath: string) => {
  const storage = ctx.storage
  return storage.put(localFile, remotePath, { overwrite: true }).pipe(
    Effect.catchIf(
      (e) => e._tag === "StorageError" && e.reason === "NotFound",
      () =>
        Effect.zipRight(
          storage.makeCollection(remotePath.slice(0, remotePath.lastIndexOf("/"))),
          storage.put(localFile, remotePath, { overwrite: true })
        )
    ),
    Effect.retry({
      while: (e) => e._tag === "StorageError" && (e.reason === "Unavailable" || e.reason === "Timeout"),
      schedule: Schedule.exponential("100 millis").pipe(Schedule.intersect(Schedule.recurs(3)))
    })
  )
}

/** Step 3 of the write protocol: a reserved write's local file goes to its place in storage. */
export const push = (ctx: ClientCore, w: PendingWrite) => upload(ctx, w.localFile, w.remotePath)

const writeLocalFile = (file: string, text: string) =>
  Effect.tryPromise({
    try: () => fs.writeFile(file, text, { mode: 0o600 }),
    catch: (cause) =>
      new StorageError({
        operation: "write",
        path: file,
        reason: (cause as NodeJS.ErrnoException)?.code === "ENOSPC" ? "NoSpace" : "Unknown",
        cause
      })
  })

/** Stores a marker file under `_mesa_log/`, staged through the cache. */
export const putMarker = (ctx: ClientCore, p: Project, name: string, record: unknown) =>
  Effect.gen(function*() {
    const local = yield* ctx.cache.pathFor(p.projectId, `${name}.${randomBytes(4).toString("hex")}`)
    // A full or broken cache is a typed failure (the caller defers the marker to recovery), never a defect.
    // The marker carries a digest of its own text, so any change to it shows (verifyProject).
    const signed = { ...(record as object), digest: markerDigest(record) }
    yield* writeLocalFile(local, JSON.stringify(signed, null, 2) + "\n").pipe(
      Effect.zipRight(upload(ctx, local, `${p.ducklakePath}/${MARKER_DIR}/${name}`)),
      Effect.ensuring(Effect.promise(() => fs.rm(local, { force: true }).catch(() => undefined)))
    )
  })
