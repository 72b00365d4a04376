/**
 * Compaction merges snapshot files the way DuckLake's merge_adjacent_files does; every answer — valid time, known-at
 * (transaction time), history, diff — is the same before and after, also with writers running alongside.
 */
import { expect, layer } from "@effect/vitest"
import { Effect, Option } from "effect"
import { Catalog } from "../src/catalog/Catalog.js"
import type { Project } from "../src/core/domain.js"
import { DuckDb } from "../src/duckdb/DuckDb.js"
import * as DuckLakeClientModule from "../src/client/DuckLakeClient.js"
import { DuckLakeClient } from "../src/client/DuckLakeClient.js"
import { LakeStorage } from "../src/storage/LakeStorage.js"
import { LocalCache } from "../src/storage/LocalCache.js"
import { change, embedded, freshRoot, record, registerFresh } from "./support.js"

const { layer: Live } = embedded("compaction")

/** Every answer we can give about a project, for before/after comparisons. */
const answers = (p: Project, paths: ReadonlyArray<string>, times: ReadonlyArray<Date>) =>
  Effect.gen(function*() {
    const c = yield* DuckLakeClient
    const snaps = (yield* c.listSnapshots(p.projectId, { limit: 10_000 })).map((s) => s.snapshotId)
    const out: Record<string, unknown> = {}
    for (const path of paths) {
      out[`now ${path}`] = yield* c.getAvus(p.projectId, path)
      for (const t of times) out[`valid ${path} ${t.toISOString()}`] = yield* c.getAvusAsOf(p.projectId, path, t)
      for (const id of snaps) {
        out[`known ${path} ${id}`] = yield* c.getAvusAsOf(p.projectId, path, new Date(8e12), { knownAt: id })
      }
    }
    out.history = yield* c.getHistory(p.projectId, { limit: 100_000 })
    for (let i = 0; i + 1 < snaps.length; i += 3) {
      out[`diff ${snaps[i + 1]}..${snaps[i]}`] = yield* c.diff(p.projectId, snaps[i + 1]!, snaps[i]!)
    }
    out.snapshots = snaps
    return out
  })

const populate = (p: Project, paths: ReadonlyArray<string>, n: number, offset = 0) =>
  Effect.forEach(Array.from({ length: n }, (_, i) => i + offset), (i) =>
    record(p.projectId, [
      change(paths[i % paths.length]!, `a${i % 3}`, `v${i % 5}`, i % 4 === 3 ? "set" : "add", {
        ts: new Date(Date.UTC(2026, 0, 1 + (i % 20))).toISOString()
      }),
      change(paths[(i + 1) % paths.length]!, `a${i % 2}`, `v${(i + 1) % 5}`, i % 3 === 2 ? "delete" : "add")
    ]), { discard: true })

layer(Live, { timeout: "300 seconds", excludeTestServices: true })("compaction", (it) => {
  it.effect("merges small files, keeps every answer, and removes old files only after the grace period", () =>
    Effect.gen(function*() {
      const c = yield* DuckLakeClient
      const catalog = yield* Catalog
      const storage = yield* LakeStorage
      const p = yield* registerFresh("compact")
      const paths = ["a", "b/c", "d", "é 🌱"].map((x) => `${p.irodsPath}/${x}`)
      yield* populate(p, paths, 30)
      const times = [1, 5, 10, 20].map((d) => new Date(Date.UTC(2026, 0, d))).concat([new Date()])
      const before = yield* answers(p, paths, times)

      const live = yield* catalog.liveFiles(p)
      const perFile = live[0]!.fileSizeBytes
      // A target of ~12 small files per output: several groups, so adjacent runs are exercised.
      const report = yield* c.compact(p.projectId, { targetFileSize: perFile * 12 })
      expect(report.filesBefore).toBe(30)
      expect(report.filesWritten).toBeGreaterThanOrEqual(2)
      expect(report.filesAfter).toBeLessThan(10)
      expect(report.snapshots.length).toBe(report.filesWritten)
      const after = yield* answers(p, paths, times)
      expect(after).toEqual(before)

      // Catalog shape: compacted files begin at their first source and record the last in partial_max.
      const files = yield* catalog.withSql((sql) =>
        sql<any>`SELECT begin_snapshot::int AS b, partial_max::int AS pm, row_id_start FROM ${sql(p.metadataSchema)}.ducklake_data_file ORDER BY 1`
      )
      expect(files.filter((f) => f.pm !== null).every((f) => f.pm > f.b && f.row_id_start === null)).toBe(true)
      const changes = yield* catalog.withSql((sql) =>
        sql<any>`SELECT changes_made FROM ${sql(p.metadataSchema)}.ducklake_snapshot_changes WHERE snapshot_id IN ${sql.in(report.snapshots)}`
      )
      expect(changes.map((x) => x.changes_made)).toEqual(report.snapshots.map(() => "merge_adjacent:1"))
      // Compaction snapshots are not AVU snapshots: listSnapshots is unchanged (compared above), but each snapshot
      // now names the compacted file that holds its rows.
      const listed = yield* c.listSnapshots(p.projectId, { limit: 100 })
      expect(listed.every((x) => x.dataFile.startsWith("main/avu_changes/compacted_"))).toBe(true)
      const marker = yield* storage.stat(`${p.ducklakePath}/_mesa_log/compaction_${String(report.snapshots[0]).padStart(10, "0")}.json`)
      expect(Option.isSome(marker)).toBe(true)

      // main/ holds the live files only; the replaced ones wait in replaced/ until the grace period is over.
      const parquet = (entries: ReadonlyArray<{ readonly name: string }>) => entries.filter((e) => e.name.endsWith(".parquet")).length
      const dir = `${p.ducklakePath}/main/avu_changes`
      const aside = `${p.ducklakePath}/replaced/avu_changes`
      const replaced = 30 - (report.filesAfter - report.filesWritten)
      expect(parquet(yield* storage.list(dir))).toBe(report.filesAfter)
      expect(parquet(yield* storage.list(aside))).toBe(replaced)
      expect(yield* c.deleteScheduledFiles(p.projectId)).toBe(0)
      expect(yield* c.deleteScheduledFiles(p.projectId, { graceMs: 0 })).toBe(replaced)
      expect(parquet(yield* storage.list(dir))).toBe(report.filesAfter)
      expect(parquet(yield* storage.list(aside))).toBe(0)
      expect(yield* answers(p, paths, times)).toEqual(before)

      // More writes, then compaction over compacted and new files together.
      yield* populate(p, paths, 10, 30)
      const before2 = yield* answers(p, paths, times)
      const again = yield* c.compact(p.projectId, { targetFileSize: 64 * 1024 * 1024 })
      expect(again.filesAfter).toBe(1)
      expect(yield* answers(p, paths, times)).toEqual(before2)
      yield* c.deleteScheduledFiles(p.projectId, { graceMs: 0 })
      expect(yield* answers(p, paths, times)).toEqual(before2)
    }))

  it.effect("writers running during compaction lose nothing and see consistent answers", () =>
    Effect.gen(function*() {
      const c = yield* DuckLakeClient
      const p = yield* registerFresh("compact-conc")
      const paths = ["x", "y"].map((x) => `${p.irodsPath}/${x}`)
      yield* populate(p, paths, 20)
      const [report, written] = yield* Effect.all([
        c.compact(p.projectId, { targetFileSize: 1024 * 1024 }),
        Effect.forEach(Array.from({ length: 10 }, (_, i) => i), (i) =>
          record(p.projectId, [change(`${p.irodsPath}/z`, "n", String(i))]), { concurrency: 3 })
      ], { concurrency: 2 })
      expect(report.filesWritten).toBe(1)
      expect(written.length).toBe(10)
      const z = yield* c.getAvus(p.projectId, `${p.irodsPath}/z`)
      expect(z.map((a) => a.value).sort()).toEqual(Array.from({ length: 10 }, (_, i) => String(i)).sort())
      const zAsOf = yield* c.getAvusAsOf(p.projectId, `${p.irodsPath}/z`, new Date())
      expect(zAsOf).toEqual(z)
      // Every row of every committed snapshot is readable exactly once.
      const snaps = yield* c.listSnapshots(p.projectId, { limit: 1000 })
      expect(snaps.length).toBe(30)
      const history = yield* c.getHistory(p.projectId, { limit: 10_000 })
      expect(history.length).toBe(snaps.reduce((n, s) => n + s.changeCount, 0))
      expect(new Set(history.map((r) => `${r.snapshotId}.${r.changeSeq}`)).size).toBe(history.length)
    }))

  it.effect("automatic compaction after every N-th snapshot keeps every answer", () =>
    Effect.gen(function*() {
      const catalog = yield* Catalog
      const parts = yield* Effect.context<Catalog | LakeStorage | DuckDb | LocalCache>()
      // A second client over the same parts, compacting after every 8th snapshot.
      const auto = yield* DuckLakeClientModule.make({ autoCompactEvery: 8 }).pipe(Effect.provide(parts))
      const p = yield* auto.registerProject({ irodsPath: freshRoot("auto-compact"), actor: "alice" })
      const paths = ["a", "b"].map((x) => `${p.irodsPath}/${x}`)
      for (let i = 0; i < 13; i++) {
        yield* auto.recordChanges({ projectId: p.projectId, actor: "alice", changes: [change(paths[i % 2]!, `k${i % 3}`, `v${i}`)] })
      }
      yield* auto.flush
      // Snapshots 2..14 were written; the 8th id triggered a compaction of the files before it.
      const live = yield* catalog.liveFiles(p)
      expect(live.length).toBeLessThan(13)
      const compactions = yield* catalog.withSql((sql) =>
        sql<any>`SELECT count(*)::int AS n FROM ${sql(p.metadataSchema)}.ducklake_snapshot_changes WHERE changes_made LIKE 'merge_adjacent%'`
      )
      expect(compactions[0].n).toBe(1)
      // The same writes into a project that is never compacted give the same answers, at every snapshot.
      const c = yield* DuckLakeClient
      const ref = yield* registerFresh("auto-compact-ref")
      for (let i = 0; i < 13; i++) {
        yield* record(ref.projectId, [change(`${ref.irodsPath}/${["a", "b"][i % 2]}`, `k${i % 3}`, `v${i}`)])
      }
      expect((yield* catalog.liveFiles(ref)).length).toBe(13)
      const view = (q: Project) =>
        Effect.gen(function*() {
          // Snapshot ids differ (a compaction takes one), so snapshots are compared by their rank.
          const out: Array<unknown> = []
          const snaps = yield* c.listSnapshots(q.projectId, { limit: 100 })
          const rank = new Map(snaps.map((s, i) => [s.snapshotId, i]))
          for (const s of snaps) {
            for (const x of ["a", "b"]) {
              const avus = yield* c.getAvusAsOf(q.projectId, `${q.irodsPath}/${x}`, new Date(8e12), { knownAt: s.snapshotId })
              out.push([rank.get(s.snapshotId), x, avus.map((v) => `${v.attribute}=${v.value}`).sort()])
            }
          }
          out.push((yield* c.getHistory(q.projectId, { limit: 100 })).map((r) => [rank.get(r.snapshotId), r.attribute, r.value, r.op]))
          return out
        })
      expect(yield* view(p)).toEqual(yield* view(ref))
    }).pipe(Effect.scoped))

  it.effect("file-id lists travel as one array parameter: 70,000 ids in one statement (PostgreSQL caps a statement at 65,535 parameters)", () =>
    Effect.gen(function*() {
      const catalog = yield* Catalog
      const p = yield* registerFresh("compact-many-ids")
      const ids = Array.from({ length: 70_000 }, (_, i) => 1_000_000 + i)
      yield* catalog.forgetScheduled(p, ids)
      expect((yield* catalog.scheduledForDeletion(p, new Date())).length).toBe(0)
    }))

  it.effect("bad compaction options are typed errors and change nothing", () =>
    Effect.gen(function*() {
      const c = yield* DuckLakeClient
      const catalog = yield* Catalog
      const p = yield* registerFresh("compact-bad")
      yield* populate(p, [`${p.irodsPath}/x`], 3)
      for (const opts of [{ targetFileSize: 10 }, { minFiles: 1 }, { targetFileSize: Number.NaN }]) {
        const e = yield* Effect.flip(c.compact(p.projectId, opts))
        expect(e._tag).toBe("InvalidChange")
      }
      expect((yield* Effect.flip(c.compact("00000000-0000-4000-8000-000000000000")))._tag).toBe("ProjectNotFound")
      expect((yield* catalog.liveFiles(p)).length).toBe(3)
    }))
})
