/**
 * Catalog faults. Mode A: PostgreSQL stopped under a running writer process, and stopped between the push and the
 * commit; the errors are `CatalogUnavailable`, and once it is back a retry with the same idempotency key plus
 * recovery commit each batch exactly once. Modes B/C: a client with no DSN never opens a connection to anything,
 * even with libpq's PGHOST/PGPORT pointing at a listener.
 */
import { describe, expect, it, layer } from "@effect/vitest"
import { Deferred, Effect, Fiber, Layer, Schedule } from "effect"
import * as fs from "node:fs"
import { createServer } from "node:net"
import { inject } from "vitest"
import * as Local from "../../layers/local.js"
import { DuckLakeClient, WriteProbe } from "../../src/client/DuckLakeClient.js"
import { EmbeddedPostgres } from "../../src/postgres/EmbeddedPostgres.js"
import { change, configured, embedded, freshRoot, listTree, tempDirs, withFakeClient } from "../support.js"
import { capturingLogger, checkProject, passwordOf, runWriter, type WriterEnv } from "./harness.js"
import { addTally } from "./tally.js"

const { dirs, layer: Live } = embedded("catalog-faults")
const logs = capturingLogger()

/** Recovery after a restart: the pool's broken connections fail the first calls, so allow a few retries. */
const recoverWhenBack = Effect.flatMap(DuckLakeClient, (c) =>
  c.recoverPendingPushes().pipe(Effect.retry({ times: 10, schedule: Schedule.spaced("300 millis") })))

layer(Live, { timeout: "5 minutes", excludeTestServices: true })("catalog faults", (it) => {
  it.effect("PostgreSQL stopped under a writer process: CatalogUnavailable, then every batch exactly once", () =>
    Effect.gen(function*() {
      const lake = yield* DuckLakeClient
      const pg = yield* EmbeddedPostgres
      const secret = passwordOf(pg.dsn)
      const env: WriterEnv = { bundle: inject("writerBundle"), dsn: pg.dsn, zoneDir: dirs.zoneDir, cacheDir: dirs.cacheDir }
      const p = yield* lake.registerProject({ irodsPath: freshRoot("outage"), actor: "alice" })
      const tenCommitted = yield* Deferred.make<void>()
      let acked = 0
      const BATCHES = 60
      const writer = yield* Effect.fork(runWriter(env, {
        projects: [{ id: p.projectId, root: p.irodsPath }],
        batches: BATCHES,
        keyPrefix: "outage",
        changesPerBatch: 2,
        idempotent: true,
        retryUnavailable: 120
      }, (line) => {
        if (line.t === "committed" && ++acked === 10) Effect.runSync(Deferred.succeed(tenCommitted, void 0))
      }))
      yield* Deferred.await(tenCommitted)
      yield* pg.stop
      yield* Effect.sleep("3 seconds")
      yield* pg.start
      const run = yield* Fiber.join(writer)
      expect(run.code, run.stderr).toBe(0)
      expect(run.cmdline + run.stdout + run.stderr).not.toContain(secret)
      const retries = run.lines.flatMap((l) => (l.t === "retry" ? [l.tag] : []))
      expect(retries.length).toBeGreaterThan(0)
      // While the catalog was down the writer saw CatalogUnavailable and nothing else.
      expect([...new Set(retries)]).toEqual(["CatalogUnavailable"])
      const acks = run.lines.flatMap((l) => (l.t === "committed" ? [l] : []))
      expect(acks.length).toBe(BATCHES)

      const report = yield* recoverWhenBack
      const check = yield* checkProject(p, dirs.zoneDir, { afterRecovery: true })
      expect(check.problems).toEqual([])
      expect(check.duplicates).toBe(0)
      for (const a of acks) expect(check.committedByNote.get(a.key)).toEqual([a.snapshotId])
      expect(check.view.snapshots.length).toBe(BATCHES)
      expect(logs.lines.filter((l) => l.includes(secret))).toEqual([])
      addTally(inject("tallyDir"), "catalog-faults", {
        "batches written (acknowledged)": acks.length,
        "attempts refused while PostgreSQL was down": retries.length,
        "batches lost": 0,
        duplicates: check.duplicates,
        "recovery: orphaned (reported)": report.orphaned
      })
    }).pipe(Effect.provide(logs.layer)))

  for (const order of ["recovery, then the caller's retry", "the caller's retry, then recovery"] as const) {
    it.effect(`PostgreSQL stopped between push and commit; ${order}: committed exactly once`, () =>
      Effect.gen(function*() {
        const lake = yield* DuckLakeClient
        const pg = yield* EmbeddedPostgres
        const p = yield* lake.registerProject({ irodsPath: freshRoot("midcommit"), actor: "alice" })
        const input = { projectId: p.projectId, actor: "alice", note: "once", idempotencyKey: "once", changes: [change(`${p.irodsPath}/o`, "k", "v")] }
        const probe = Layer.succeed(WriteProbe, {
          after: (step) => (step === "pushed" ? Effect.orDie(pg.stop) : Effect.void)
        })
        const e = yield* Effect.flip(Effect.flatMap(DuckLakeClient, (c) => c.recordChanges(input)).pipe(withFakeClient(probe)))
        expect(e._tag).toBe("CatalogUnavailable")
        yield* pg.start
        const retry = Effect.flatMap(DuckLakeClient, (c) => c.recordChanges(input)).pipe(
          Effect.retry({ while: (x) => x._tag === "CatalogUnavailable", times: 10, schedule: Schedule.spaced("300 millis") })
        )
        if (order === "recovery, then the caller's retry") {
          const report = yield* recoverWhenBack
          expect(report.committed).toBe(1)
          const r = yield* retry
          expect(r.recorded && r.replayed).toBe(true)
        } else {
          const r = yield* retry
          expect(r.recorded && r.replayed).toBe(false)
          const report = yield* recoverWhenBack
          expect(report.orphaned).toBe(1) // the first attempt is reported, not committed after the retry
        }
        const check = yield* checkProject(p, dirs.zoneDir, { afterRecovery: true })
        expect(check.problems).toEqual([])
        expect(check.committedByNote.get("once")?.length).toBe(1)
        addTally(inject("tallyDir"), "catalog-faults", { "outages between push and commit": 1, duplicates: check.duplicates })
      }))
  }
})

describe("modes B and C", () => {
  it.live("no DSN: writes and reads open no connection to anything (PGHOST/PGPORT point at a listener)", () =>
    Effect.gen(function*() {
      let connections = 0
      const server = createServer((socket) => {
        connections++
        socket.destroy()
      })
      const port = yield* Effect.async<number>((resume) => {
        server.listen(0, "127.0.0.1", () => resume(Effect.succeed((server.address() as { port: number }).port)))
      })
      yield* Effect.addFinalizer(() => Effect.sync(() => server.close()))
      const saved = { PGHOST: process.env.PGHOST, PGPORT: process.env.PGPORT }
      process.env.PGHOST = "127.0.0.1"
      process.env.PGPORT = String(port)
      yield* Effect.addFinalizer(() =>
        Effect.sync(() => {
          for (const [k, v] of Object.entries(saved)) v === undefined ? delete process.env[k] : (process.env[k] = v)
        })
      )
      const d = tempDirs("mode-bc")
      yield* Effect.addFinalizer(() => Effect.sync(() => fs.rmSync(d.base, { recursive: true, force: true })))
      const config = { MESA_DUCKLAKE_DSN: "", MESA_DUCKLAKE_MOUNT_ROOT: d.zoneDir, MESA_DUCKLAKE_CACHE_DIR: d.cacheDir }
      yield* Effect.gen(function*() {
        const c = yield* DuckLakeClient
        expect(c.recording).toBe(false)
        for (let i = 0; i < 200; i++) {
          const r = yield* c.recordChanges({ projectId: "p", actor: "a", changes: [change(`/z/home/a/p/o${i}`, "k", String(i))] })
          expect(r).toEqual({ recorded: false, reason: "no-catalog" })
          const e = yield* Effect.flip(c.getAvus("p", `/z/home/a/p/o${i}`))
          expect(e._tag === "CatalogUnavailable" && e.reason).toBe("not-configured")
        }
        expect((yield* Effect.flip(c.recoverPendingPushes()))._tag).toBe("CatalogUnavailable")
      }).pipe(Effect.provide(configured(Local.layer, config)))
      yield* Effect.sleep("200 millis")
      expect(connections).toBe(0)
      expect(listTree(d.zoneDir)).toEqual([])
      addTally(inject("tallyDir"), "catalog-faults", { "mode B/C calls (no connection opened)": 400 + connections })
    }).pipe(Effect.scoped))
})
