/**
 * The write protocol under failure: storage faults give typed errors and leave nothing visible; a writer that dies
 * at a step leaves a write-ahead row that `recoverPendingPushes` finishes exactly once, or reports.
 */
import { expect, layer } from "@effect/vitest"
import { Effect, Exit, Layer, Option } from "effect"
import * as fs from "node:fs"
import * as nodePath from "node:path"
import { client, mounted } from "../layers/components.js"
import { Catalog } from "../src/catalog/Catalog.js"
import { DuckDb, DuckDbError } from "../src/duckdb/DuckDb.js"
import type { Project } from "../src/core/domain.js"
import * as DuckLakeClientLayers from "../src/client/DuckLakeClient.js"
import { DuckLakeClient } from "../src/client/DuckLakeClient.js"
import * as EmbeddedPostgres from "../src/postgres/EmbeddedPostgres.js"
import { LakeStorage } from "../src/storage/LakeStorage.js"
import { LocalCache } from "../src/storage/LocalCache.js"
import * as LocalCacheModule from "../src/storage/LocalCache.js"
import { faultyStorage, overriding, type StorageFault } from "./faults.js"
import { change, freshRoot, listTree, tempDirs, withFakeClient } from "./support.js"

type Fault = "none" | "unavailable" | "corrupt" | "die-after-put" | "die-before-commit" | "die-after-commit"

const dirs = tempDirs("recovery")
let fault: Fault = "none"
let putCalls = 0
/** The writer dies right after storing the n-th snapshot file counted from when this is set (a bulk ingest's). */
let dieAfterParquetPut: number | undefined
let parquetPuts = 0

/** What each switchable fault does to a put (the others are the catalog's). */
const putFaults: Partial<Record<Fault, StorageFault>> = { unavailable: "Unavailable", corrupt: "corrupt", "die-after-put": "die-after" }

/** The mounted storage with switchable faults. */
const faultyMount = faultyStorage(mounted({ mountRoot: dirs.zoneDir, logicalPrefix: "/" }), {
  put: (_local, path) => {
    putCalls++
    if (dieAfterParquetPut !== undefined && path.endsWith(".parquet") && ++parquetPuts === dieAfterParquetPut) {
      return "die-after"
    }
    return putFaults[fault]
  }
})

/** The catalog with a writer that dies just before, or just after, the commit transaction. */
const faultyCatalog = overriding(Catalog, (real) => ({
  commitSnapshot: (...args) =>
    fault === "die-before-commit"
      ? Effect.interrupt
      : fault === "die-after-commit"
      ? Effect.zipRight(real.commitSnapshot(...args), Effect.interrupt)
      : real.commitSnapshot(...args)
}))

const Live = Layer.unwrapScoped(Effect.gen(function*() {
  const pg = yield* EmbeddedPostgres.make()
  yield* Effect.addFinalizer(() => Effect.sync(() => fs.rmSync(dirs.base, { recursive: true, force: true })))
  return client({ dsn: pg.dsn, cacheDir: dirs.cacheDir }, faultyMount)
}))

/** A DuckDB whose Parquet writer fails (a full disk, say). */
const failingDuck = overriding(DuckDb, () => ({
  writeSnapshotFile: () => Effect.fail(new DuckDbError("IO Error: No space left on device"))
}))

/** A second client over this file's parts, with a catalog that dies around the commit. */
const withFaultyCatalog = withFakeClient(faultyCatalog)

const register = Effect.flatMap(DuckLakeClient, (c) => c.registerProject({ irodsPath: freshRoot("rec"), actor: "alice" }))

/** A write that died just before its commit, whose local file and stored copy are then lost. */
const diedBeforeCommitFileGone = (p: Project) =>
  Effect.gen(function*() {
    const catalog = yield* Catalog
    fault = "die-before-commit"
    yield* Effect.exit(withFaultyCatalog(attempt(p.projectId, p.irodsPath, "1")))
    fault = "none"
    const [w] = (yield* catalog.pendingWrites({ limit: 1000 })).filter((x) => x.projectId === p.projectId)
    fs.rmSync(w!.localFile)
    fs.rmSync(nodePath.join(dirs.zoneDir, w!.remotePath))
  })

const attempt = (projectId: string, root: string, value: string) =>
  Effect.flatMap(DuckLakeClient, (c) =>
    c.recordChanges({ projectId, actor: "alice", changes: [change(`${root}/obj`, "k", value)] }))

layer(Live, { timeout: "120 seconds", excludeTestServices: true })("write failures and recovery", (it) => {
  it.effect("a storage outage: retried, then a typed error; nothing visible and the id is not reused", () =>
    Effect.gen(function*() {
      const c = yield* DuckLakeClient
      const catalog = yield* Catalog
      const p = yield* register
      fault = "unavailable"
      putCalls = 0
      const e = yield* Effect.flip(attempt(p.projectId, p.irodsPath, "1"))
      fault = "none"
      expect(e._tag).toBe("StorageError")
      expect(putCalls).toBe(4) // first try + 3 retries with backoff
      expect(yield* c.listSnapshots(p.projectId)).toEqual([])
      expect(yield* c.getAvus(p.projectId, `${p.irodsPath}/obj`)).toEqual([])
      const wal = (yield* catalog.withSql((sql) =>
        sql<any>`SELECT state FROM mesa_ducklake.pending_writes WHERE project_id = ${p.projectId}`
      ))
      expect(wal.map((w) => w.state)).toEqual(["failed"])
      const ok = yield* attempt(p.projectId, p.irodsPath, "2")
      expect(ok.recorded && ok.snapshotId).toBe(3) // 2 went to the failed write and is never reused
      yield* c.flush
      const report = yield* c.recoverPendingPushes()
      expect(report).toEqual({ pushed: 0, committed: 0, failed: 0, orphaned: 0, missingLocal: 0, markers: 0 })
      expect((yield* c.getAvus(p.projectId, `${p.irodsPath}/obj`)).map((a) => a.value)).toEqual(["2"])
    }))

  it.effect("a checksum mismatch after upload: ChecksumMismatch, the bad copy removed, nothing visible", () =>
    Effect.gen(function*() {
      const c = yield* DuckLakeClient
      const p = yield* register
      const lakeDir = nodePath.join(dirs.zoneDir, p.ducklakePath, "main/avu_changes")
      fault = "corrupt"
      const e = yield* Effect.flip(attempt(p.projectId, p.irodsPath, "1"))
      fault = "none"
      expect(e._tag).toBe("ChecksumMismatch")
      expect(fs.readdirSync(lakeDir)).toEqual([])
      expect(yield* c.listSnapshots(p.projectId)).toEqual([])
    }))

  it.effect("a cache directory that cannot be made is a typed StorageError, not a crash; nothing committed", () =>
    Effect.gen(function*() {
      const c = yield* DuckLakeClient
      const cache = yield* LocalCache
      const p = yield* register
      const blocker = nodePath.join(cache.directory, p.projectId)
      fs.rmSync(blocker, { recursive: true, force: true })
      fs.writeFileSync(blocker, "not a directory")
      const e = yield* Effect.flip(attempt(p.projectId, p.irodsPath, "1"))
      expect(e._tag).toBe("StorageError")
      if (e._tag === "StorageError") expect(e.operation).toBe("cache")
      expect(yield* c.listSnapshots(p.projectId)).toEqual([])
      fs.rmSync(blocker)
      const ok = yield* attempt(p.projectId, p.irodsPath, "2")
      expect(ok.recorded).toBe(true)
      expect((yield* c.getAvus(p.projectId, `${p.irodsPath}/obj`)).map((a) => a.value)).toEqual(["2"])
    }))

  it.effect("a Parquet write failure is a LakeWriteError at write-parquet; nothing visible or stored", () =>
    Effect.gen(function*() {
      const c = yield* DuckLakeClient
      const p = yield* register
      const e = yield* Effect.flip(withFakeClient(failingDuck)(attempt(p.projectId, p.irodsPath, "1")))
      expect(e._tag).toBe("LakeWriteError")
      if (e._tag === "LakeWriteError") {
        expect(e.step).toBe("write-parquet")
        expect(e.snapshotId).toBe(2)
        expect(e.message).toContain("No space left")
      }
      expect(yield* c.listSnapshots(p.projectId)).toEqual([])
      expect(listTree(nodePath.join(dirs.zoneDir, p.ducklakePath, "main/avu_changes"))).toEqual([])
    }))

  it.effect("a catalog that answers but refuses the commit is a CatalogError; the write is failed, its file removed", () =>
    Effect.gen(function*() {
      const c = yield* DuckLakeClient
      const catalog = yield* Catalog
      const p = yield* register
      // Someone broke this project's lake by hand.
      yield* catalog.withSql((sql) => sql`DROP TABLE ${sql(p.metadataSchema)}.mesa_snapshot`)
      const e = yield* Effect.flip(attempt(p.projectId, p.irodsPath, "1"))
      expect(e._tag).toBe("CatalogError")
      expect(listTree(nodePath.join(dirs.zoneDir, p.ducklakePath, "main/avu_changes"))).toEqual([])
      const [w] = yield* catalog.withSql((sql) =>
        sql<any>`SELECT state FROM mesa_ducklake.pending_writes WHERE project_id = ${p.projectId}`
      )
      expect(w.state).toBe("failed")
      const snaps = yield* catalog.withSql((sql) =>
        sql<any>`SELECT count(*)::int AS n FROM ${sql(p.metadataSchema)}.ducklake_snapshot`
      )
      expect(snaps[0].n).toBe(2) // only the lake's own snapshots 0 and 1
      void c
    }))

  it.effect("a bulk ingest that dies after storing a file: recovery commits it behind the lagging index, reads stay exact", () =>
    Effect.scoped(Effect.gen(function*() {
      // A client that leaves the index catch-up to others, so the state recovery meets is the one asserted.
      const c = yield* DuckLakeClientLayers.make({ catchUpAfterIngest: false })
      const catalog = yield* Catalog
      const p = yield* register
      const objects = Array.from({ length: 6 }, (_, i) => `${p.irodsPath}/o${i}`)
      const changes = Array.from({ length: 900 }, (_, i) =>
        change(objects[i % 6]!, `k${i % 4}`, `v${i % 7}`, i % 5 === 4 ? "set" : i % 3 === 2 ? "delete" : "add"))
      parquetPuts = 0
      dieAfterParquetPut = 2
      const exit = yield* Effect.exit(c.ingestChanges({ projectId: p.projectId, actor: "importer", changes, snapshotSize: 300 }))
      dieAfterParquetPut = undefined
      expect(Exit.isInterrupted(exit)).toBe(true)
      // The first snapshot is committed, its index deferred; the second is stored but not committed.
      expect((yield* c.listSnapshots(p.projectId)).length).toBe(1)
      expect(yield* catalog.indexThrough(p)).not.toBeNull()
      const report = yield* c.recoverPendingPushes()
      expect(report.committed).toBe(1)
      expect((yield* c.listSnapshots(p.projectId)).length).toBe(2)
      // Recovery committed it behind the lag: the answers come from the files, and equal them after the catch-up.
      const answers = Effect.forEach(objects, (o) => c.getAvus(p.projectId, o))
      const fromFiles = yield* Effect.forEach(objects, (o) => c.getAvusAsOf(p.projectId, o, "9999-12-31T00:00:00Z"))
      expect(yield* answers).toEqual(fromFiles)
      expect(yield* c.catchUpIndex(p.projectId)).toBe(2)
      expect(yield* catalog.indexThrough(p)).toBeNull()
      expect(yield* answers).toEqual(fromFiles)
      // The two snapshots hold the first 600 changes; nothing of the third was written.
      const snaps = yield* c.listSnapshots(p.projectId)
      const rows = yield* Effect.forEach(snaps, (s) => c.getSnapshotChanges(p.projectId, s.snapshotId))
      expect(rows.flat().length).toBe(snaps.reduce((n, s) => n + s.changeCount, 0))
      yield* c.flush
    })))

  for (
    const [step, expected] of [
      ["die-after-put", { pushed: 0, committed: 1, markers: 1 }],
      ["die-before-commit", { pushed: 0, committed: 1, markers: 1 }],
      ["die-after-commit", { pushed: 0, committed: 0, markers: 1 }]
    ] as const
  ) {
    it.effect(`a writer dying at ${step} is finished by recovery exactly once`, () =>
      Effect.gen(function*() {
        const c = yield* DuckLakeClient
        const catalog = yield* Catalog
        const p = yield* register
        fault = step
        const write = attempt(p.projectId, p.irodsPath, "1")
        const exit = step === "die-after-put"
          ? yield* Effect.exit(write)
          : yield* Effect.exit(withFaultyCatalog(write))
        fault = "none"
        expect(Exit.isInterrupted(exit)).toBe(true)
        const visibleBefore = (yield* c.listSnapshots(p.projectId)).length
        expect(visibleBefore).toBe(step === "die-after-commit" ? 1 : 0)
        const report = yield* c.recoverPendingPushes()
        expect(report).toEqual({ failed: 0, orphaned: 0, missingLocal: 0, ...expected })
        const snaps = yield* c.listSnapshots(p.projectId)
        expect(snaps.length).toBe(1)
        expect((yield* c.getAvus(p.projectId, `${p.irodsPath}/obj`)).map((a) => a.value)).toEqual(["1"])
        expect((yield* c.getHistory(p.projectId)).length).toBe(1)
        const wal = yield* catalog.pendingWrites({ limit: 1000 })
        expect(wal.filter((w) => w.projectId === p.projectId)).toEqual([])
        // A second recovery has nothing to do.
        expect(yield* c.recoverPendingPushes()).toEqual({ pushed: 0, committed: 0, failed: 0, orphaned: 0, missingLocal: 0, markers: 0 })
      }))
  }

  it.effect("an interrupted write overtaken by a later snapshot is reported as orphaned, never committed out of order", () =>
    Effect.gen(function*() {
      const c = yield* DuckLakeClient
      const catalog = yield* Catalog
      const p = yield* register
      fault = "die-after-put"
      yield* Effect.exit(attempt(p.projectId, p.irodsPath, "lost"))
      fault = "none"
      // The next writer sees the pending write (same host) and the recovery it triggers... is explicit here:
      // we write a later snapshot first, so the pending one can no longer be committed in order.
      const later = yield* attempt(p.projectId, p.irodsPath, "later")
      expect(later.recorded && later.snapshotId).toBe(3)
      const report = yield* c.recoverPendingPushes()
      expect(report.orphaned).toBe(1)
      expect(report.committed).toBe(0)
      expect((yield* c.getAvus(p.projectId, `${p.irodsPath}/obj`)).map((a) => a.value)).toEqual(["later"])
      const [w] = yield* catalog.withSql((sql) =>
        sql<any>`SELECT state, last_error FROM mesa_ducklake.pending_writes WHERE project_id = ${p.projectId}`
      )
      expect(w.state).toBe("failed")
      expect(w.last_error).toContain("superseded")
    }))

  it.effect("a pending write of this host whose file never existed fails at once: its writer is provably gone", () =>
    Effect.gen(function*() {
      const c = yield* DuckLakeClient
      const catalog = yield* Catalog
      const p = yield* register
      yield* diedBeforeCommitFileGone(p)
      // Recovery holds the project's lock, which the writer held from reservation to commit: on this host, with no
      // local file and nothing stored, nothing can ever finish the write.
      const first = yield* c.recoverPendingPushes({ maxAttempts: 5 })
      expect(first).toEqual({ pushed: 0, committed: 0, failed: 1, orphaned: 0, missingLocal: 1, markers: 0 })
      expect(yield* c.recoverPendingPushes({ maxAttempts: 5 })).toEqual({ pushed: 0, committed: 0, failed: 0, orphaned: 0, missingLocal: 0, markers: 0 })
      const [row] = yield* catalog.withSql((sql) =>
        sql<any>`SELECT state FROM mesa_ducklake.pending_writes WHERE project_id = ${p.projectId}`
      )
      expect(row.state).toBe("failed")
      expect(yield* c.listSnapshots(p.projectId)).toEqual([])
    }))

  it.effect("a pending write of another host whose file is not here is retried (that host may finish it) up to the limit", () =>
    Effect.gen(function*() {
      const c = yield* DuckLakeClient
      const catalog = yield* Catalog
      const p = yield* register
      yield* diedBeforeCommitFileGone(p)
      yield* catalog.withSql((sql) =>
        sql`UPDATE mesa_ducklake.pending_writes SET host = 'another-host' WHERE project_id = ${p.projectId}`
      )
      const first = yield* c.recoverPendingPushes({ maxAttempts: 2 })
      expect(first).toEqual({ pushed: 0, committed: 0, failed: 0, orphaned: 0, missingLocal: 1, markers: 0 })
      const second = yield* c.recoverPendingPushes({ maxAttempts: 2 })
      expect(second).toEqual({ pushed: 0, committed: 0, failed: 1, orphaned: 0, missingLocal: 1, markers: 0 })
      expect(yield* c.recoverPendingPushes({ maxAttempts: 2 })).toEqual({ pushed: 0, committed: 0, failed: 0, orphaned: 0, missingLocal: 0, markers: 0 })
      expect(yield* c.listSnapshots(p.projectId)).toEqual([])
    }))

  it.effect("the cache cap evicts least recently used files but never a pinned one (a pending write's)", () =>
    Effect.gen(function*() {
      const dir = nodePath.join(dirs.base, "small-cache")
      const cache = yield* LocalCacheModule.make({ directory: dir, maxBytes: 1000 })
      const file = (name: string, size: number, ageSeconds: number) => {
        const f = nodePath.join(dir, "proj", name)
        fs.mkdirSync(nodePath.dirname(f), { recursive: true })
        fs.writeFileSync(f, Buffer.alloc(size))
        const t = new Date(Date.now() - ageSeconds * 1000)
        fs.utimesSync(f, t, t)
        return f
      }
      const pinned = file("pending.parquet", 700, 300)
      const oldest = file("old.parquet", 400, 200)
      const middle = file("mid.parquet", 400, 100)
      const newest = file("new.parquet", 100, 0)
      yield* cache.added(1600)
      const freed = yield* cache.evict(new Set([pinned]))
      // 1600 bytes > 1000: the oldest unpinned files go until the rest fits (700 + 100 = 800).
      expect(freed).toBe(800)
      expect([pinned, oldest, middle, newest].map((f) => fs.existsSync(f))).toEqual([true, false, false, true])
      // Even when the pinned files alone exceed the cap, they stay.
      const big = file("big-pending.parquet", 5000, 500)
      yield* cache.added(5000)
      expect(yield* cache.evict(new Set([pinned, big]))).toBe(100)
      expect(fs.existsSync(big) && fs.existsSync(pinned)).toBe(true)
    }))

  it.effect("reads work from the mount after the cache is emptied", () =>
    Effect.gen(function*() {
      const c = yield* DuckLakeClient
      const cache = yield* LocalCache
      const p = yield* register
      for (let i = 0; i < 3; i++) yield* attempt(p.projectId, p.irodsPath, String(i))
      fs.rmSync(nodePath.join(cache.directory, p.projectId), { recursive: true, force: true })
      expect((yield* c.getAvusAsOf(p.projectId, `${p.irodsPath}/obj`, new Date())).length).toBe(3)
      expect(Option.isSome((yield* LakeStorage).localPath(p.ducklakePath))).toBe(true)
      expect(listTree(nodePath.join(dirs.zoneDir, p.ducklakePath)).filter((f) => f.endsWith(".parquet")).length).toBe(3)
    }))
})
