/**
 * A compaction's commit in two round trips under the writer lock: its basis (the latest snapshot, the chain's head,
 * which sources are still live) read with the lock, then one statement that writes everything and releases the lock
 * once committed. The statement guards itself: a snapshot committed since the basis, or a source no longer live,
 * refuses it whole. Two compactions racing for the same files: one commits, the other is skipped.
 */
import { expect, layer } from "@effect/vitest"
import { Deferred, Effect, Fiber, Ref } from "effect"
import { Catalog, type WriteSession } from "../src/catalog/Catalog.js"
import { SOURCE_GONE } from "../src/catalog/compaction.js"
import type { DataFileInfo } from "../src/catalog/types.js"
import { DuckLakeClient } from "../src/client/DuckLakeClient.js"
import { DuckDb } from "../src/duckdb/DuckDb.js"
import type { Project } from "../src/core/domain.js"
import { overriding } from "./faults.js"
import { change, embedded, freshRoot, record, registerFresh, withFakeClient } from "./support.js"

const { layer: Live } = embedded("compaction-commit")

/** Rows a compaction commit writes, counted, and the writer locks held. */
const footprint = (p: Project) =>
  Effect.flatMap(Catalog, (catalog) =>
    catalog.withSql((sql) =>
      sql<Record<string, string>>`
        SELECT (SELECT count(*) FROM ${sql(p.metadataSchema)}.ducklake_snapshot)::text AS snapshots,
               (SELECT count(*) FROM ${sql(p.metadataSchema)}.ducklake_data_file)::text AS files,
               (SELECT count(*) FROM ${sql(p.metadataSchema)}.ducklake_file_column_stats)::text AS stats,
               (SELECT count(*) FROM ${sql(p.metadataSchema)}.mesa_chain)::text AS chain,
               (SELECT count(*) FROM ${sql(p.metadataSchema)}.ducklake_files_scheduled_for_deletion)::text AS scheduled,
               (SELECT file_size_bytes::text FROM ${sql(p.metadataSchema)}.ducklake_table_stats) AS bytes,
               (SELECT last_snapshot_id::text FROM mesa_ducklake.projects WHERE project_id = ${p.projectId}) AS handed_out,
               (SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted)::text AS locks`
    )).pipe(Effect.map((rows) => rows[0]!))

/** A project with `n` one-change snapshots. */
const populated = (name: string, n: number) =>
  Effect.gen(function*() {
    const p = yield* registerFresh(name)
    for (let i = 0; i < n; i++) yield* record(p.projectId, [change(`${p.irodsPath}/o${i % 3}`, "k", `v${i}`)])
    return p
  })

/** A stand-in merged file for a commit whose file is never read (the guard refuses it first). */
const fakeFile = (live: ReadonlyArray<{ readonly fileSizeBytes: number }>): DataFileInfo => ({
  fileName: "compacted_fake.parquet",
  recordCount: live.length,
  fileSizeBytes: live.reduce((n, f) => n + f.fileSizeBytes, 0),
  footerSize: 100,
  checksum: "sha2:" + Buffer.alloc(32).toString("base64"),
  stats: [{ columnId: 1, columnSizeBytes: 10, valueCount: live.length, nullCount: 0, min: "1", max: "9" }]
})

layer(Live, { timeout: "300 seconds", excludeTestServices: true })("compaction commit", (it) => {
  it.effect("the statement refuses a source retired and a snapshot committed since its basis: nothing written, no lock left", () =>
    Effect.gen(function*() {
      const catalog = yield* Catalog
      const p = yield* populated("guard", 4)
      const live = yield* catalog.liveFiles(p)
      expect(live.length).toBe(4)
      const before = yield* footprint(p)
      const meddled = (meddle: Effect.Effect<unknown, unknown>) =>
        catalog.writeSession(p.projectId, (session) => {
          // Between the basis (first round trip) and the statement (second), another party changes the catalog.
          const between: WriteSession = {
            ...session,
            commitAndUnlock: (statements, operation) => Effect.zipRight(Effect.orDie(meddle), session.commitAndUnlock(statements, operation))
          }
          return catalog.commitCompaction(p, { sources: live, file: fakeFile(live), actor: "test" }, between)
        })
      const gone = yield* Effect.flip(meddled(catalog.withSql((sql) =>
        sql`UPDATE ${sql(p.metadataSchema)}.ducklake_data_file SET end_snapshot = begin_snapshot WHERE data_file_id = ${live[1]!.dataFileId}`
      )))
      expect(gone._tag).toBe("CatalogError")
      expect(gone.message).toContain(SOURCE_GONE)
      yield* catalog.withSql((sql) =>
        sql`UPDATE ${sql(p.metadataSchema)}.ducklake_data_file SET end_snapshot = NULL WHERE data_file_id = ${live[1]!.dataFileId}`
      )
      expect(yield* footprint(p)).toEqual(before)
      const foreign = yield* Effect.flip(meddled(catalog.withSql((sql) =>
        sql`INSERT INTO ${sql(p.metadataSchema)}.ducklake_snapshot
            SELECT max(snapshot_id) + 1, now(), max(schema_version), max(next_catalog_id), max(next_file_id)
            FROM ${sql(p.metadataSchema)}.ducklake_snapshot`
      )))
      expect(foreign._tag).toBe("CatalogError")
      expect(String((foreign as any).cause?.cause?.message)).toMatch(/was committed meanwhile/)
      expect(yield* footprint(p)).toEqual({ ...before, snapshots: String(Number(before.snapshots) + 1) })
    }))

  it.effect("a committed compaction writes one snapshot, one file, its chain record and the schedule; the lock is released", () =>
    Effect.gen(function*() {
      const c = yield* DuckLakeClient
      const catalog = yield* Catalog
      const p = yield* populated("one", 5)
      const before = yield* footprint(p)
      const live = yield* catalog.liveFiles(p)
      const report = yield* c.compact(p.projectId)
      expect(report.filesWritten).toBe(1)
      const after = yield* footprint(p)
      const merged = (yield* catalog.liveFiles(p))[0]!
      expect(after).toEqual({
        snapshots: String(Number(before.snapshots) + 1),
        files: "1",
        stats: String(Number(before.stats) / 5),
        chain: String(Number(before.chain) + 1),
        scheduled: "5",
        bytes: String(Number(before.bytes) - live.reduce((n, f) => n + f.fileSizeBytes, 0) + merged.fileSizeBytes),
        handed_out: String(report.snapshots[0]),
        locks: "0"
      })
      // The chain still verifies, and the next write comes after the compaction's snapshot.
      expect((yield* c.verifyProject(p.projectId)).ok).toBe(true)
      const next = yield* record(p.projectId, [change(`${p.irodsPath}/o9`, "k", "after")])
      expect(next.snapshotId).toBe(report.snapshots[0]! + 1)
    }))

  it.effect("two compactions racing for the same files: one commits, the other is skipped; the answers stay", () =>
    Effect.gen(function*() {
      const c = yield* DuckLakeClient
      const p = yield* populated("race", 6)
      const avus = yield* Effect.forEach([0, 1, 2], (i) => c.getAvus(p.projectId, `${p.irodsPath}/o${i}`))
      // Both list the live files before either commits.
      const arrived = yield* Ref.make(0)
      const both = yield* Deferred.make<void>()
      const together = overriding(Catalog, (real) => ({
        liveFiles: (project) =>
          Effect.tap(real.liveFiles(project), () =>
            Effect.flatMap(Ref.updateAndGet(arrived, (n) => n + 1), (n) =>
              n >= 2 ? Deferred.succeed(both, undefined) : Deferred.await(both)))
      }))
      // Two clients (two processes): within one client a `compact` waits for the other (next test). No automatic
      // compaction, whose first-use check would list the files too and open the barrier early.
      const one = Effect.flatMap(DuckLakeClient, (fake) => fake.compact(p.projectId)).pipe(
        withFakeClient(together, { autoCompactEvery: 0 })
      )
      const reports = yield* Effect.all([one, one], { concurrency: 2 })
      expect(reports.map((r) => r.filesWritten).sort()).toEqual([0, 1])
      // The one skipped listed the files again and found them merged: it says so, not 6 files after.
      expect(reports.map((r) => [r.filesBefore, r.filesAfter])).toEqual([[6, 1], [6, 1]])
      expect((yield* Catalog.pipe(Effect.flatMap((catalog) => catalog.liveFiles(p)))).length).toBe(1)
      expect(yield* Effect.forEach([0, 1, 2], (i) => c.getAvus(p.projectId, `${p.irodsPath}/o${i}`))).toEqual(avus)
      expect((yield* footprint(p)).locks).toBe("0")
      expect((yield* c.verifyProject(p.projectId)).ok).toBe(true)
    }))

  it.effect("compact while the client's automatic compaction runs: it waits for it, then merges everything (before: both merged, one was skipped)", () =>
    Effect.gen(function*() {
      const catalog = yield* Catalog
      // The automatic compaction's merge is held at a gate; every merge is counted.
      const merges = yield* Ref.make(0)
      const entered = yield* Deferred.make<void>()
      const gate = yield* Deferred.make<void>()
      const held = overriding(DuckDb, (real) => ({
        writeCompactedFile: (sources, out, metadata) =>
          Effect.flatMap(Ref.getAndUpdate(merges, (n) => n + 1), (n) =>
            n === 0
              ? Effect.zipRight(Deferred.succeed(entered, undefined), Effect.zipRight(Deferred.await(gate), real.writeCompactedFile(sources, out, metadata)))
              : real.writeCompactedFile(sources, out, metadata))
      }))
      const result = yield* Effect.gen(function*() {
        const fake = yield* DuckLakeClient
        const p = yield* fake.registerProject({ irodsPath: freshRoot("turns"), actor: "alice" })
        const write = (i: number) =>
          fake.recordChanges({ projectId: p.projectId, actor: "alice", changes: [change(`${p.irodsPath}/o${i % 3}`, "k", `v${i}`)] })
        // Every 4th snapshot triggers the automatic compaction; it stops at the gate inside its merge.
        let i = 0
        while (!(yield* Deferred.isDone(entered))) {
          yield* write(i++)
          if (i > 12) return yield* Effect.dieMessage("no automatic compaction started")
        }
        for (let k = 0; k < 3; k++) yield* write(i++)
        const avus = yield* Effect.forEach([0, 1, 2], (j) => fake.getAvus(p.projectId, `${p.irodsPath}/o${j}`))
        // Bad options and an unknown project fail at once, without waiting for the turn.
        const bad = yield* Effect.flip(fake.compact(p.projectId, { minFiles: 1 })).pipe(Effect.timeout("2 seconds"))
        const unknown = yield* Effect.flip(fake.compact("00000000-0000-4000-8000-000000000000")).pipe(Effect.timeout("2 seconds"))
        const asked = yield* Effect.fork(fake.compact(p.projectId))
        yield* Effect.sleep("400 millis")
        // Without the turn, the asked-for compaction had listed the same files and merged them meanwhile.
        const mergesWhileHeld = yield* Ref.get(merges)
        yield* Deferred.succeed(gate, undefined)
        const report = yield* Fiber.join(asked)
        yield* fake.flush
        return {
          refused: [bad._tag, "field" in bad ? bad.field : undefined, unknown._tag],
          mergesWhileHeld,
          report,
          live: (yield* catalog.liveFiles(p)).length,
          same: JSON.stringify(yield* Effect.forEach([0, 1, 2], (j) => fake.getAvus(p.projectId, `${p.irodsPath}/o${j}`))) === JSON.stringify(avus),
          ok: (yield* fake.verifyProject(p.projectId)).ok
        }
      }).pipe(withFakeClient(held, { autoCompactEvery: 4 }))
      expect(result.refused).toEqual(["InvalidChange", "minFiles", "ProjectNotFound"])
      expect(result.mergesWhileHeld).toBe(1)
      expect(result.report.filesWritten).toBe(1)
      expect(result.report.filesAfter).toBe(1)
      expect(result.live).toBe(1)
      expect(result.same).toBe(true)
      expect(result.ok).toBe(true)
    }))
})
