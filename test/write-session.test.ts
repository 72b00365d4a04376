/**
 * A write's session with the catalog (`Catalog.writeSession`): the writer lock is taken in the reservation's round
 * trip and released in the commit's, and a small batch reads the state it depends on before the lock, beside the
 * reservation. That early read is used only when the reservation, made under the lock, sees the same catalog (the
 * same latest snapshot, the index complete); otherwise the state is read again under the lock. A writer waits for
 * the lock in PostgreSQL (woken when it comes free), attempt after attempt, and can be interrupted while it waits.
 * The lock never outlives its session: not after a commit, a refused commit or an interruption.
 */
import { expect, layer } from "@effect/vitest"
import { Deferred, Effect, Fiber } from "effect"
import { Catalog } from "../src/catalog/Catalog.js"
import { DuckLakeClient } from "../src/client/DuckLakeClient.js"
import type { Project } from "../src/core/domain.js"
import { overriding } from "./faults.js"
import { change, embedded, registerFresh, withFakeClient } from "./support.js"

const { layer: Live } = embedded("write-session")

/** Advisory locks held now, by any session (the writer locks). */
const advisoryLocks = Effect.flatMap(Catalog, (catalog) =>
  catalog.withSql((sql) =>
    sql<{ n: string }>`SELECT count(*)::text AS n FROM pg_locks WHERE locktype = 'advisory' AND granted`
  )).pipe(Effect.map((rows) => Number(rows[0]!.n)))

/** Write-ahead rows of a project, by state. */
const pendingRows = (p: Project) =>
  Effect.flatMap(Catalog, (catalog) =>
    catalog.withSql((sql) =>
      sql<{ state: string }>`SELECT state FROM mesa_ducklake.pending_writes WHERE project_id = ${p.projectId}`
    )).pipe(Effect.map((rows) => rows.map((r) => r.state)))

layer(Live, { timeout: "300 seconds", excludeTestServices: true })("write session", (it) => {
  it.effect("a small batch reads its state once, before the lock, when nothing changed meanwhile", () =>
    Effect.gen(function*() {
      const c = yield* DuckLakeClient
      const p = yield* registerFresh("early")
      const path = `${p.irodsPath}/x`
      yield* c.recordChanges({ projectId: p.projectId, actor: "alice", changes: [change(path, "k", "1")] })
      let reads = 0
      const counting = overriding(Catalog, (real) => ({
        currentRowsOf: (project, keys) => Effect.tap(real.currentRowsOf(project, keys), () => Effect.sync(() => reads++))
      }))
      const r = yield* Effect.flatMap(DuckLakeClient, (fake) =>
        fake.recordChanges({ projectId: p.projectId, actor: "alice", changes: [change(path, "k", "2", "set")] })
      ).pipe(withFakeClient(counting))
      expect(r).toMatchObject({ recorded: true, changeCount: 2 })
      expect(reads).toBe(1)
      expect((yield* c.getAvus(p.projectId, path)).map((a) => a.value)).toEqual(["2"])
      expect(yield* advisoryLocks).toBe(0)
    }))

  it.effect("another writer commits between the early read and the lock: the batch is expanded against the state under the lock", () =>
    Effect.gen(function*() {
      const c = yield* DuckLakeClient
      const p = yield* registerFresh("stale")
      const path = `${p.irodsPath}/x`
      yield* c.recordChanges({ projectId: p.projectId, actor: "alice", changes: [change(path, "k", "1")] })
      // The first read (before the lock) is followed by another client's commit of a second value of the same
      // attribute; the reservation (which takes the lock) waits until that commit is done.
      const meddled = yield* Deferred.make<void>()
      let reads = 0
      const meddling = overriding(Catalog, (real) => ({
        currentRowsOf: (project, keys) =>
          Effect.tap(real.currentRowsOf(project, keys), () =>
            reads++ > 0 ? Effect.void : c.recordChanges({ projectId: p.projectId, actor: "bob", changes: [change(path, "k", "b")] }).pipe(
              Effect.orDie,
              Effect.zipRight(Deferred.succeed(meddled, undefined))
            )),
        reserveSnapshot: (project, input, session) =>
          Effect.zipRight(Deferred.await(meddled), real.reserveSnapshot(project, input, session))
      }))
      const r = yield* Effect.flatMap(DuckLakeClient, (fake) =>
        fake.recordChanges({ projectId: p.projectId, actor: "alice", changes: [change(path, "k", "2", "set")] })
      ).pipe(withFakeClient(meddling))
      expect(reads).toBe(2)
      expect(r.recorded).toBe(true)
      if (!r.recorded) return
      // `set` replaces every value there under the lock, the one committed meanwhile included.
      const rows = yield* c.getSnapshotChanges(p.projectId, r.snapshotId)
      expect(rows.map((x) => [x.op, x.value])).toEqual([["delete", "1"], ["delete", "b"], ["add", "2"]])
      expect((yield* c.getAvus(p.projectId, path)).map((a) => a.value)).toEqual(["2"])
      expect(yield* advisoryLocks).toBe(0)
    }))

  it.effect("a refused commit (the guard) releases the lock with the session; the next write goes through", () =>
    Effect.gen(function*() {
      const c = yield* DuckLakeClient
      const catalog = yield* Catalog
      const p = yield* registerFresh("refused")
      const path = `${p.irodsPath}/x`
      yield* c.recordChanges({ projectId: p.projectId, actor: "alice", changes: [change(path, "k", "1")] })
      // A foreign snapshot right before the commit: the commit's guard refuses it.
      const foreign = overriding(Catalog, (real) => ({
        commitSnapshot: (project, ...rest) =>
          Effect.zipRight(
            Effect.orDie(catalog.withSql((sql) =>
              sql`INSERT INTO ${sql(project.metadataSchema)}.ducklake_snapshot
                  SELECT max(snapshot_id) + 1, now(), max(schema_version), max(next_catalog_id), max(next_file_id)
                  FROM ${sql(project.metadataSchema)}.ducklake_snapshot`
            )),
            real.commitSnapshot(project, ...rest)
          )
      }))
      const e = yield* Effect.flip(Effect.flatMap(DuckLakeClient, (fake) =>
        fake.recordChanges({ projectId: p.projectId, actor: "alice", changes: [change(path, "k", "2")] })
      ).pipe(withFakeClient(foreign)))
      expect(e._tag).toBe("CatalogError")
      expect(yield* advisoryLocks).toBe(0)
      expect(yield* pendingRows(p)).toEqual(["failed"])
      const next = yield* c.recordChanges({ projectId: p.projectId, actor: "alice", changes: [change(path, "k", "3")] })
      expect(next.recorded).toBe(true)
      expect(yield* advisoryLocks).toBe(0)
    }))

  it.effect("a writer waits for the lock across attempts and writes once it is free; interrupted while waiting, it leaves nothing", () =>
    Effect.gen(function*() {
      const c = yield* DuckLakeClient
      const catalog = yield* Catalog
      const p = yield* registerFresh("wait")
      const path = `${p.irodsPath}/x`
      // Held for several of the writer's attempts (each waits 100 ms in PostgreSQL).
      const taken = yield* Deferred.make<void>()
      const release = yield* Deferred.make<void>()
      const holder = yield* Effect.fork(catalog.withWriteLock(p.projectId, Effect.zipRight(Deferred.succeed(taken, undefined), Deferred.await(release))))
      yield* Deferred.await(taken)
      const writer = yield* Effect.fork(c.recordChanges({ projectId: p.projectId, actor: "alice", changes: [change(path, "k", "1")] }))
      yield* Effect.sleep("450 millis")
      // Still waiting: nothing reserved yet.
      expect(writer.unsafePoll()).toBeNull()
      expect(yield* pendingRows(p)).toEqual([])
      yield* Deferred.succeed(release, undefined)
      yield* Fiber.join(holder)
      const r = yield* Fiber.join(writer)
      expect(r.recorded).toBe(true)
      expect(yield* advisoryLocks).toBe(0)

      // Interrupted while it waits: it ends while the lock is still held by the other, with nothing reserved.
      const taken2 = yield* Deferred.make<void>()
      const release2 = yield* Deferred.make<void>()
      const holder2 = yield* Effect.fork(catalog.withWriteLock(p.projectId, Effect.zipRight(Deferred.succeed(taken2, undefined), Deferred.await(release2))))
      yield* Deferred.await(taken2)
      const waiting = yield* Effect.fork(c.recordChanges({ projectId: p.projectId, actor: "alice", changes: [change(path, "k", "2")] }))
      yield* Effect.sleep("250 millis")
      yield* Fiber.interrupt(waiting)
      expect(yield* advisoryLocks).toBe(1)
      expect(yield* pendingRows(p)).toEqual([])
      yield* Deferred.succeed(release2, undefined)
      yield* Fiber.join(holder2)
      expect(yield* advisoryLocks).toBe(0)
      expect((yield* c.getAvus(p.projectId, path)).map((a) => a.value)).toEqual(["1"])
      const after = yield* c.recordChanges({ projectId: p.projectId, actor: "alice", changes: [change(path, "k", "3")] })
      expect(after.recorded).toBe(true)
      expect(yield* advisoryLocks).toBe(0)
    }))

  it.effect("concurrent writers of one project through sessions: every batch recorded once, ids in commit order, no lock left", () =>
    Effect.gen(function*() {
      const c = yield* DuckLakeClient
      const p = yield* registerFresh("many")
      const path = `${p.irodsPath}/x`
      // Each writer `set`s the same attribute: every snapshot must delete exactly the value before it.
      const results = yield* Effect.forEach(Array.from({ length: 24 }, (_, i) => i), (i) =>
        c.recordChanges({ projectId: p.projectId, actor: "alice", changes: [change(path, "k", `v${i}`, "set")] }), { concurrency: 6 })
      expect(results.every((r) => r.recorded)).toBe(true)
      const snaps = (yield* c.listSnapshots(p.projectId)).filter((s) => s.snapshotId > 0).sort((a, b) => a.snapshotId - b.snapshotId)
      expect(snaps.length).toBe(24)
      let previous: string | undefined
      for (const s of snaps) {
        const rows = yield* c.getSnapshotChanges(p.projectId, s.snapshotId)
        const deleted = rows.filter((x) => x.op === "delete").map((x) => x.value)
        expect(deleted).toEqual(previous === undefined ? [] : [previous])
        previous = rows.find((x) => x.op === "add")!.value
      }
      expect((yield* c.getAvus(p.projectId, path)).map((a) => a.value)).toEqual([previous])
      expect(yield* advisoryLocks).toBe(0)
    }))
})
