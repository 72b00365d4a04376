/**
 * `LocalCache`: the directory where snapshot files are written before they are pushed, and where remote files are
 * fetched for reading. It has a size cap; eviction removes least recently used files but never one that a pending
 * or failed write still refers to (the upstream library could delete the only copy of an unpushed file).
 *
 * The history in it is private to the service's user: directories are 0700 (also ones an older version left more
 * open) and files 0600 (`secure`), whatever the umask.
 */
import { Context, Effect, Layer } from "effect"
import { StorageError } from "../core/errors.js"
import * as fs from "node:fs/promises"
import * as nodePath from "node:path"

export interface LocalCacheConfig {
  readonly directory: string
  /** Size cap in bytes (default 1 GiB). */
  readonly maxBytes?: number
}

export interface LocalCacheService {
  readonly directory: string
  readonly maxBytes: number
  /** Local path for a project's file (directories are created; a directory that cannot be is a typed error). */
  readonly pathFor: (projectId: string, fileName: string) => Effect.Effect<string, StorageError>
  /** Makes a file in the cache readable by its owner only (0600); a file that is gone is not an error. */
  readonly secure: (file: string) => Effect.Effect<void>
  /** True when the file is present locally. */
  readonly has: (file: string) => Effect.Effect<boolean>
  /** Mark as recently used. */
  readonly touch: (file: string) => Effect.Effect<void>
  /** Account for a file added to the cache (written or fetched), so eviction knows when to look. */
  readonly added: (bytes: number) => Effect.Effect<void>
  /**
   * Evict LRU files until under the cap, sparing `pinned`. Returns bytes freed. Cheap while the running total is
   * under the cap: the directory is only walked when it is over.
   */
  readonly evict: (pinned: ReadonlySet<string>) => Effect.Effect<number>
  /** True when the running total says the cache is over its cap (so an eviction, and its pin list, is worth it). */
  readonly overCap: Effect.Effect<boolean>
  readonly sizeBytes: Effect.Effect<number>
}

export class LocalCache extends Context.Tag("mesa-ducklake/LocalCache")<LocalCache, LocalCacheService>() {}

const walk = async (dir: string): Promise<Array<{ file: string; size: number; atime: number }>> => {
  const out: Array<{ file: string; size: number; atime: number }> = []
  let entries: Array<import("node:fs").Dirent>
  try {
    entries = await fs.readdir(dir, { withFileTypes: true })
  } catch {
    return out
  }
  for (const e of entries) {
    const p = nodePath.join(dir, e.name)
    if (e.isDirectory()) out.push(...(await walk(p)))
    else if (e.isFile()) {
      const st = await fs.stat(p).catch(() => undefined)
      if (st !== undefined) out.push({ file: p, size: st.size, atime: Math.max(st.atimeMs, st.mtimeMs) })
    }
  }
  return out
}

export const make = (config: LocalCacheConfig) =>
  Effect.gen(function*() {
    const directory = nodePath.resolve(config.directory)
    const maxBytes = config.maxBytes ?? 1024 ** 3
    yield* Effect.promise(async () => {
      await fs.mkdir(directory, { recursive: true, mode: 0o700 })
      await fs.chmod(directory, 0o700).catch(() => undefined)
    })
    /** Project directories already made private by this process. */
    const privateDirs = new Set<string>()
    // Running total of the cache's size: starts from one walk, then follows our own additions and evictions.
    let approxBytes = (yield* Effect.promise(() => walk(directory))).reduce((n, f) => n + f.size, 0)

    return LocalCache.of({
      directory,
      maxBytes,
      pathFor: (projectId, fileName) => {
        const dir = nodePath.join(directory, projectId.replace(/[^0-9a-zA-Z-]/g, "_"))
        return Effect.tryPromise({
          try: async () => {
            if (!privateDirs.has(dir)) {
              await fs.mkdir(dir, { recursive: true, mode: 0o700 })
              await fs.chmod(dir, 0o700)
              privateDirs.add(dir)
            }
            return nodePath.join(dir, nodePath.basename(fileName))
          },
          catch: (cause) => {
            const code = (cause as NodeJS.ErrnoException)?.code
            return new StorageError({
              operation: "cache",
              path: dir,
              reason: code === "ENOSPC" ? "NoSpace" : code === "EACCES" || code === "EPERM" ? "PermissionDenied" : "Unknown",
              cause
            })
          }
        })
      },
      secure: (file) => Effect.promise(() => fs.chmod(file, 0o600).catch(() => undefined)),
      has: (file) => Effect.promise(() => fs.access(file).then(() => true, () => false)),
      touch: (file) =>
        Effect.promise(() => {
          const now = new Date()
          return fs.utimes(file, now, now).catch(() => undefined)
        }),
      added: (bytes) =>
        Effect.sync(() => {
          approxBytes += bytes
        }),
      overCap: Effect.sync(() => approxBytes > maxBytes),
      evict: (pinned) =>
        Effect.promise(async () => {
          if (approxBytes <= maxBytes) return 0
          const files = await walk(directory)
          let total = files.reduce((n, f) => n + f.size, 0)
          approxBytes = total
          if (total <= maxBytes) return 0
          let freed = 0
          for (const f of files.sort((a, b) => a.atime - b.atime)) {
            if (total <= maxBytes) break
            if (pinned.has(f.file) || /\.part-/.test(f.file)) continue
            // A file that cannot be removed is skipped, not fatal: eviction is housekeeping.
            if (!(await fs.rm(f.file, { force: true }).then(() => true, () => false))) continue
            total -= f.size
            freed += f.size
          }
          approxBytes = total
          return freed
        }),
      sizeBytes: Effect.promise(async () => (await walk(directory)).reduce((n, f) => n + f.size, 0))
    })
  })

export const layer = (config: LocalCacheConfig) => Layer.effect(LocalCache, make(config))
