/**
 * Storage faults below and around the client: a fault-injecting `LakeStorage` (failed put, timeouts), a
 * fault-injecting `FileSystem` under the real mounted adapter (short write, a bit flipped after the rename), a real
 * full disk (a small tmpfs, when this process may mount one; `/dev/full` otherwise) for the cache and the zone.
 * Each write either answers success with its file whole in storage, or a typed error with nothing visible —
 * never "committed" without the file safely stored, never a defect. A random fault schedule (fast-check) covers
 * the combinations.
 */
import { SystemError } from "@effect/platform/Error"
import { expect, layer } from "@effect/vitest"
import { Cause, Deferred, Effect, Exit, Fiber, Layer, Option } from "effect"
import fc from "fast-check"
import { execFileSync } from "node:child_process"
import { randomBytes } from "node:crypto"
import * as fs from "node:fs"
import * as nodePath from "node:path"
import { inject } from "vitest"
import { client, mounted } from "../../layers/components.js"
import type { Project } from "../../src/core/domain.js"
import type { Catalog } from "../../src/catalog/Catalog.js"
import type { DuckDb } from "../../src/duckdb/DuckDb.js"
import { DuckLakeClient, WriteProbe } from "../../src/client/DuckLakeClient.js"
import { EmbeddedPostgres } from "../../src/postgres/EmbeddedPostgres.js"
import type { LakeStorage } from "../../src/storage/LakeStorage.js"
import { LocalCache } from "../../src/storage/LocalCache.js"
import * as MountedStorage from "../../src/storage/MountedStorage.js"
import { faultyFileSystem, faultyStorage, overriding, type StorageFault } from "../faults.js"
import { change, embedded, freshRoot, withFakeClient } from "../support.js"
import { catalogView, checkProject, filesBelow, sha2Of } from "./harness.js"
import { addTally } from "./tally.js"

const { dirs, layer: Live } = embedded("storage-faults")

type PutFault = "none" | "unavailable" | "timeout" | "permission" | "short-write" | "bit-flip" | "no-space"
/** Faults consumed one per `put` of a Parquet file (markers are left alone); "none" once the queue is empty. */
let putFaults: Array<PutFault> = []
let parquetPuts = 0
const nextFault = (path: string): PutFault => {
  if (!path.endsWith(".parquet")) return "none"
  parquetPuts++
  return putFaults.shift() ?? "none"
}
let fsFault: PutFault = "none"

/** A FileSystem whose copy truncates or corrupts the destination, or fails with ENOSPC, when `fsFault` says so. */
const faultyFiles = faultyFileSystem((real) => ({
  copyFile: (from: string, to: string) =>
    Effect.suspend(() => {
      const fault = fsFault
      if (fault === "short-write") {
        return Effect.sync(() => {
          const bytes = fs.readFileSync(from)
          fs.writeFileSync(to, bytes.subarray(0, Math.floor(bytes.length / 2)))
        })
      }
      if (fault === "no-space") {
        return Effect.fail(new SystemError({ reason: "Unknown", module: "FileSystem", method: "copyFile", pathOrDescriptor: to, description: "ENOSPC: no space left on device" }))
      }
      return real.copyFile(from, to)
    }),
  rename: (from: string, to: string) =>
    Effect.zipRight(
      real.rename(from, to),
      Effect.sync(() => {
        if (fsFault === "bit-flip" && to.endsWith(".parquet")) {
          const bytes = fs.readFileSync(to)
          bytes[bytes.length >> 1] = bytes[bytes.length >> 1]! ^ 0x40
          fs.writeFileSync(to, bytes)
        }
      })
    )
}))

/** What the faults that fail a put at once answer. */
const failing: Partial<Record<PutFault, StorageFault>> = { unavailable: "Unavailable", timeout: "Timeout", permission: "PermissionDenied" }
const resetFsFault = <A, E>(put: Effect.Effect<A, E>) =>
  Effect.ensuring(put, Effect.sync(() => {
    fsFault = "none"
  }))

/** The real mounted adapter over the faulty FileSystem, wrapped by a LakeStorage that fails puts on schedule. */
const faultyMount = faultyStorage(
  MountedStorage.layer({ mountRoot: dirs.zoneDir, logicalPrefix: "/" }).pipe(Layer.provide(faultyFiles)),
  {
    put: (_local, path) => {
      const fault = nextFault(path)
      fsFault = fault
      return failing[fault] ?? resetFsFault
    }
  }
)

/** A client of our own over the file's PostgreSQL, with the given storage and cache. */
const clientWith = <E>(storage: Layer.Layer<LakeStorage, E>, cacheDir = dirs.cacheDir, extra: Layer.Layer<never> = Layer.empty) =>
  <A, E2>(effect: Effect.Effect<A, E2, DuckLakeClient | Catalog | LakeStorage | LocalCache | DuckDb>) =>
    Effect.flatMap(EmbeddedPostgres, (pg) =>
      effect.pipe(Effect.provide(client({ dsn: pg.dsn, cacheDir }, storage).pipe(Layer.provide(extra)))))

const register = Effect.flatMap(DuckLakeClient, (c) => c.registerProject({ irodsPath: freshRoot("sf"), actor: "alice" }))
const write = (p: Project, value: string) =>
  Effect.flatMap(DuckLakeClient, (c) =>
    c.recordChanges({ projectId: p.projectId, actor: "alice", note: value, changes: [change(`${p.irodsPath}/obj-${value}`, "k", value)] }))

const parquetFiles = (p: Project) =>
  filesBelow(nodePath.join(dirs.zoneDir, p.ducklakePath, "main/avu_changes"))

/** Try to mount a small tmpfs (root with CAP_SYS_ADMIN); undefined when this machine will not let us. */
const smallDisk = (dir: string, size: string): string | undefined => {
  fs.mkdirSync(dir, { recursive: true })
  try {
    execFileSync("mount", ["-t", "tmpfs", "-o", `size=${size}`, "tmpfs", dir], { stdio: "ignore" })
    return dir
  } catch {
    return undefined
  }
}
const unmount = (dir: string) => {
  try {
    execFileSync("umount", ["-l", dir], { stdio: "ignore" })
  } catch {
    // not mounted
  }
}

let tried = 0
const notes: Array<string> = []

layer(Live, { timeout: "5 minutes", excludeTestServices: true })("storage faults", (it) => {
  it.effect("transient put failures (unavailable, timeout) are retried: committed once", () =>
    clientWith(faultyMount)(Effect.gen(function*() {
      const p = yield* register
      for (const faults of [["unavailable"], ["timeout", "timeout"], ["unavailable", "timeout", "unavailable"]] as const) {
        putFaults = [...faults]
        parquetPuts = 0
        const r = yield* write(p, `t${faults.length}`)
        expect(r.recorded).toBe(true)
        expect(parquetPuts).toBe(faults.length + 1)
        tried++
      }
      // Commit markers are written in the background: let them land before checking for them.
      yield* Effect.flatMap(DuckLakeClient, (c) => c.flush)
      const check = yield* checkProject(p, dirs.zoneDir, { afterRecovery: true })
      expect(check.problems).toEqual([])
      expect(check.view.snapshots.map((s) => s.note)).toEqual(["t1", "t2", "t3"])
    })))

  it.effect("a permanent put failure is not retried: StorageError, nothing visible, the id not reused", () =>
    clientWith(faultyMount)(Effect.gen(function*() {
      const p = yield* register
      putFaults = ["permission"]
      parquetPuts = 0
      const e = yield* Effect.flip(write(p, "x"))
      expect(e._tag).toBe("StorageError")
      expect(e._tag === "StorageError" && e.reason).toBe("PermissionDenied")
      expect(parquetPuts).toBe(1)
      const view = yield* catalogView(p)
      expect(view.snapshots).toEqual([])
      expect(view.wal.map((w) => w.state)).toEqual(["failed"])
      expect(parquetFiles(p)).toEqual([])
      const ok = yield* write(p, "y")
      expect(ok.recorded && ok.snapshotId).toBe(3)
      tried++
    })))

  for (const fault of ["short-write", "bit-flip"] as const) {
    it.effect(`${fault} under the mounted adapter: ChecksumMismatch, the bad copy removed, nothing visible`, () =>
      clientWith(faultyMount)(Effect.gen(function*() {
        const p = yield* register
        putFaults = [fault]
        const e = yield* Effect.flip(write(p, "bad"))
        expect(e._tag).toBe("ChecksumMismatch")
        expect(parquetFiles(p)).toEqual([])
        expect((yield* catalogView(p)).snapshots).toEqual([])
        const ok = yield* write(p, "good")
        expect(ok.recorded).toBe(true)
        yield* Effect.flatMap(DuckLakeClient, (c) => c.flush)
        const check = yield* checkProject(p, dirs.zoneDir, { afterRecovery: true })
        expect(check.problems).toEqual([])
        tried++
      })))
  }

  it.effect("a full zone disk (ENOSPC on copy): StorageError NoSpace, no temporary file left", () =>
    clientWith(faultyMount)(Effect.gen(function*() {
      const p = yield* register
      putFaults = ["no-space"]
      const e = yield* Effect.flip(write(p, "full"))
      expect(e._tag).toBe("StorageError")
      expect(e._tag === "StorageError" && e.reason).toBe("NoSpace")
      expect(parquetFiles(p)).toEqual([])
      expect((yield* catalogView(p)).snapshots).toEqual([])
      tried++
    })))

  it.effect("a full cache disk (real ENOSPC from DuckDB's Parquet writer): LakeWriteError at write-parquet", () =>
    Effect.gen(function*() {
      const tiny = smallDisk(nodePath.join(dirs.base, "tiny-cache"), "96k")
      if (tiny === undefined) {
        notes.push("full cache disk: no tmpfs available (not root / no CAP_SYS_ADMIN); case skipped")
        return
      }
      yield* Effect.addFinalizer(() => Effect.sync(() => unmount(tiny)))
      yield* clientWith(mounted({ mountRoot: dirs.zoneDir, logicalPrefix: "/" }), tiny)(Effect.gen(function*() {
        const c = yield* DuckLakeClient
        const p = yield* register
        const big = Array.from({ length: 3000 }, (_, i) => change(`${p.irodsPath}/o${i}`, `attr-${i}`, randomBytes(600).toString("base64")))
        const e = yield* Effect.flip(c.recordChanges({ projectId: p.projectId, actor: "alice", changes: big }))
        expect(e._tag).toBe("LakeWriteError")
        expect(e._tag === "LakeWriteError" && e.step).toBe("write-parquet")
        expect(parquetFiles(p)).toEqual([])
        const view = yield* catalogView(p)
        expect(view.snapshots).toEqual([])
        expect(view.wal.map((w) => w.state)).toEqual(["failed"])
        tried++
      }))
    }).pipe(Effect.scoped))

  // A cache that cannot take the commit marker (the write to `/dev/full` fails with a real ENOSPC): the snapshot is
  // committed, so the caller must hear success (the marker is deferred to recovery), not a defect.
  it.effect("a full cache when the commit marker is written: the committed write still answers success", () =>
    Effect.gen(function*() {
      const link = nodePath.join(dirs.base, "full-device")
      if (!fs.existsSync(link)) fs.symlinkSync("/dev/full", link)
      const fullMarkers = overriding(LocalCache, (real) => ({
        pathFor: (projectId, name) => (name.includes(".json.") ? Effect.succeed(link) : real.pathFor(projectId, name))
      }))
      const c0 = yield* DuckLakeClient
      const p = yield* register
      const exit = yield* Effect.exit(
        Effect.flatMap(DuckLakeClient, (c) =>
          c.recordChanges({ projectId: p.projectId, actor: "alice", note: "m", changes: [change(`${p.irodsPath}/m`, "k", "v")] })).pipe(
            withFakeClient(fullMarkers)
          )
      )
      const visible = (yield* catalogView(p)).snapshots.length
      expect(visible).toBe(1)
      expect(Exit.isFailure(exit) && Cause.isDie(exit.cause) ? "defect: " + Cause.pretty(exit.cause).split("\n")[0] : "ok").toBe("ok")
      // Recovery writes the missing marker.
      expect((yield* c0.recoverPendingPushes()).markers).toBe(1)
      tried++
    }))

  // Recovery reads the write-ahead rows, then takes each project's writer lock. A write that was in flight when the
  // row was read, and then failed (its caller told so), must not be committed by that recovery.
  it.effect("recovery running while a write fails never commits the failed write", () =>
    Effect.gen(function*() {
      const c = yield* DuckLakeClient
      const p = yield* register
      const reserved = yield* Deferred.make<void>()
      const release = yield* Deferred.make<void>()
      const probe = Layer.succeed(WriteProbe, {
        after: (step) => (step === "parquet-written" ? Effect.zipRight(Deferred.succeed(reserved, void 0), Deferred.await(release)) : Effect.void)
      })
      putFaults = ["permission"]
      const writer = yield* Effect.fork(
        Effect.either(write(p, "doomed")).pipe(withFakeClient(Layer.merge(probe, faultyMount)))
      )
      yield* Deferred.await(reserved)
      // Recovery starts now: it sees the in-flight write's row, and waits for the project's lock.
      const recovery = yield* Effect.fork(c.recoverPendingPushes({ maxAttempts: 1 }))
      yield* Effect.sleep("300 millis")
      yield* Deferred.succeed(release, void 0)
      const result = yield* Fiber.join(writer)
      expect(result._tag).toBe("Left") // the caller is told the write failed
      yield* Fiber.join(recovery)
      const view = yield* catalogView(p)
      expect(view.snapshots.map((s) => s.note)).toEqual([]) // ... so it must not be committed
      tried++
    }))

  it.effect("random fault schedules (fast-check): success means stored whole and visible; failure means invisible", () =>
    clientWith(faultyMount)(Effect.gen(function*() {
      const c = yield* DuckLakeClient
      const p = yield* register
      const fault = fc.constantFrom<PutFault>("none", "unavailable", "timeout", "permission", "short-write", "bit-flip", "no-space")
      const samples = fc.sample(fc.array(fc.array(fault, { minLength: 0, maxLength: 5 }), { minLength: 20, maxLength: 20 }), { numRuns: 2, seed: 4711 })
      let n = 0
      for (const schedule of samples.flat()) {
        putFaults = [...schedule]
        const value = `r${n++}`
        const exit = yield* Effect.exit(write(p, value))
        putFaults = []
        // Never a defect; failures are typed.
        if (Exit.isFailure(exit)) {
          expect(Cause.isFailType(exit.cause) || Option.isSome(Cause.failureOption(exit.cause))).toBe(true)
          expect(Cause.isDie(exit.cause)).toBe(false)
        }
        const view = yield* catalogView(p)
        const committed = view.snapshots.filter((s) => s.note === value)
        if (Exit.isSuccess(exit)) {
          expect(committed.length).toBe(1)
          const file = nodePath.join(dirs.zoneDir, p.ducklakePath, "main/avu_changes", committed[0]!.fileName)
          expect(sha2Of(file)).toBe(committed[0]!.checksum)
        } else {
          expect(committed).toEqual([])
        }
        tried++
      }
      yield* c.flush
      expect(yield* c.recoverPendingPushes()).toMatchObject({ committed: 0, pushed: 0 })
      const check = yield* checkProject(p, dirs.zoneDir, { afterRecovery: true })
      expect(check.problems).toEqual([])
      addTally(inject("tallyDir"), "storage-faults", { "random fault schedules": n })
    })))

  it.effect("tally", () =>
    Effect.sync(() => {
      addTally(inject("tallyDir"), "storage-faults", { "storage fault cases": tried }, notes)
    }))
})
