/**
 * Reads stay flat by default: every client compacts automatically (tiered, every 50 snapshots unless configured,
 * and a project left with many files when the client first uses it), with no manual `compact`, and the answers are those of a project that is never compacted. Compaction merges
 * without the writer lock; two compactions racing over the same files commit one merge and leave no stray file.
 */
import { expect, layer } from "@effect/vitest"
import { Effect } from "effect"
import * as fs from "node:fs"
import * as nodePath from "node:path"
import { Catalog, COLUMNS } from "../src/catalog/Catalog.js"
import { DuckDb } from "../src/duckdb/DuckDb.js"
import type { LiveFile } from "../src/catalog/Catalog.js"
import { compactionGroups } from "../src/client/compaction.js"
import * as DuckLakeClientModule from "../src/client/DuckLakeClient.js"
import { DuckLakeClient } from "../src/client/DuckLakeClient.js"
import type { Project } from "../src/core/domain.js"
import { overriding } from "./faults.js"
import { change, type ClientParts, embedded, freshRoot, record, registerFresh, withFakeClient } from "./support.js"

const { dirs, layer: Live } = embedded("auto-compaction")

const file = (i: number, size: number): LiveFile =>
  ({ dataFileId: i, fileName: `f${i}`, fileSizeBytes: size, beginSnapshot: i, lastSnapshot: i, rowIdStart: 0, checksum: "x" }) as any

/** Valid-time and known-at answers of every path at every snapshot rank, and the history, for comparisons. */
const view = (q: Project, names: ReadonlyArray<string>) =>
  Effect.gen(function*() {
    const c = yield* DuckLakeClient
    const snaps = (yield* c.listSnapshots(q.projectId, { limit: 10_000 })).filter((s) => s.changeCount > 0)
    const rank = new Map(snaps.map((s, i) => [s.snapshotId, i]))
    const out: Array<unknown> = []
    for (const s of snaps.filter((_, i) => i % 7 === 0)) {
      for (const x of names) {
        const avus = yield* c.getAvusAsOf(q.projectId, `${q.irodsPath}/${x}`, new Date(8e12), { knownAt: s.snapshotId })
        out.push([rank.get(s.snapshotId), x, avus.map((v) => `${v.attribute}=${v.value}`).sort()])
      }
    }
    for (const x of names) {
      for (const day of [3, 9, 15]) {
        const avus = yield* c.getAvusAsOf(q.projectId, `${q.irodsPath}/${x}`, new Date(Date.UTC(2026, 0, day)))
        out.push([day, x, avus.map((v) => `${v.attribute}=${v.value}`).sort()])
      }
    }
    out.push((yield* c.getHistory(q.projectId, { limit: 10_000 })).map((r) => [rank.get(r.snapshotId), r.irodsPath.slice(q.irodsPath.length), r.attribute, r.value, r.op]))
    return out
  })

const writeSame = <R>(projectId: string, root: string, n: number, write: (id: string, changes: Array<unknown>) => Effect.Effect<unknown, unknown, R>) =>
  Effect.forEach(Array.from({ length: n }, (_, i) => i), (i) =>
    write(projectId, [
      change(`${root}/o${i % 6}`, `a${i % 4}`, `v${i % 9}`, i % 5 === 4 ? "set" : i % 7 === 3 ? "delete" : "add", {
        ts: new Date(Date.UTC(2026, 0, 1 + (i % 18))).toISOString()
      })
    ]), { discard: true })

layer(Live, { timeout: "300 seconds", excludeTestServices: true })("automatic compaction", (it) => {
  it("tiered groups: a large file is merged again only once the newer files weigh a fair share of it", () => {
    const tiny = (i: number) => file(i, 1_000)
    // A 100 kB file and 50 tiny ones (50 kB): 100 > 4 × 50 is false → all merged.
    expect(compactionGroups([file(0, 100_000), ...Array.from({ length: 50 }, (_, i) => tiny(i + 1))], 64e6, 2, 4)[0]!.length).toBe(51)
    // A 1 MB file and 50 tiny ones: the big one stays, the tiny ones merge.
    const g = compactionGroups([file(0, 1_000_000), ...Array.from({ length: 50 }, (_, i) => tiny(i + 1))], 64e6, 2, 4)
    expect(g.length).toBe(1)
    expect(g[0]!.map((f) => f.dataFileId)).toEqual(Array.from({ length: 50 }, (_, i) => i + 1))
    // Without a ratio (manual compaction) everything under the target merges.
    expect(compactionGroups([file(0, 1_000_000), tiny(1), tiny(2)], 64e6, 2)[0]!.length).toBe(3)
    // Nothing to merge once only the leading file would be left.
    expect(compactionGroups([file(0, 1_000_000), tiny(1)], 64e6, 2, 4)).toEqual([])
    // Rows cap a merge too (DuckDB sorts a group at once): runs of at most 100,000 rows; a file with as many stays.
    const rows = (i: number, n: number) => ({ ...file(i, 1_000), recordCount: n })
    const capped = compactionGroups([rows(0, 40_000), rows(1, 40_000), rows(2, 40_000), rows(3, 100_000), rows(4, 10), rows(5, 10)], 64e6, 2, undefined, 100_000)
    expect(capped.map((g) => g.map((f) => f.dataFileId))).toEqual([[0, 1], [4, 5]])
  })

  it.effect("with no setting a client compacts on its own: live files stay few, answers equal a never-compacted project's", () =>
    Effect.gen(function*() {
      const catalog = yield* Catalog
      const c = yield* DuckLakeClient
      expect(DuckLakeClientModule.DEFAULT_AUTO_COMPACT_EVERY).toBe(50)
      const names = ["o0", "o1", "o2", "o3", "o4", "o5"]
      const p = yield* registerFresh("auto-default")
      yield* writeSame(p.projectId, p.irodsPath, 230, (id, changes) => c.recordChanges({ projectId: id, actor: "alice", changes }))
      yield* c.flush
      const live = yield* catalog.liveFiles(p)
      // About 225 snapshot files; compactions after the 50th, 100th, 150th and 200th snapshot ids.
      expect(live.length).toBeLessThan(60)
      const parts = yield* Effect.context<ClientParts>()
      const never = yield* DuckLakeClientModule.make({ autoCompactEvery: 0 }).pipe(Effect.provide(parts))
      const ref = yield* never.registerProject({ irodsPath: freshRoot("auto-ref"), actor: "alice" })
      yield* writeSame(ref.projectId, ref.irodsPath, 230, (id, changes) => never.recordChanges({ projectId: id, actor: "alice", changes }))
      // A few writes change nothing (a set to the value already there) and make no snapshot.
      const refFiles = (yield* catalog.liveFiles(ref)).length
      expect(refFiles).toBeGreaterThan(200)
      expect(live.length).toBeLessThan(refFiles / 4)
      const [got, want] = [yield* view(p, names), yield* view(ref, names)]
      const at = got.findIndex((x, i) => JSON.stringify(x) !== JSON.stringify(want[i]))
      expect(at === -1 ? "same" : JSON.stringify([at, got[at], want[at]]).slice(0, 600)).toBe("same")
    }).pipe(Effect.scoped))

  it.effect("a project left with many files is compacted when a client first uses it, even only to read", () =>
    Effect.gen(function*() {
      const catalog = yield* Catalog
      const parts = yield* Effect.context<ClientParts>()
      const names = ["o0", "o1", "o2", "o3", "o4", "o5"]
      // Written by a client that never compacts: one file per snapshot.
      const never = yield* DuckLakeClientModule.make({ autoCompactEvery: 0 }).pipe(Effect.provide(parts))
      const p = yield* never.registerProject({ irodsPath: freshRoot("first-use"), actor: "alice" })
      yield* writeSame(p.projectId, p.irodsPath, 120, (id, changes) => never.recordChanges({ projectId: id, actor: "alice", changes }))
      const files = (yield* catalog.liveFiles(p)).length
      expect(files).toBeGreaterThan(100)
      const want = yield* view(p, names).pipe(Effect.provideService(DuckLakeClient, never))
      // Another client with compaction off only reads: the files stay.
      const off = yield* DuckLakeClientModule.make({ autoCompactEvery: 0 }).pipe(Effect.provide(parts))
      yield* off.getAvusAsOf(p.projectId, `${p.irodsPath}/o1`, new Date())
      yield* off.flush
      expect((yield* catalog.liveFiles(p)).length).toBe(files)
      // A client with the default only reads, and the project is compacted behind its first read.
      const reader = yield* DuckLakeClientModule.make({}).pipe(Effect.provide(parts))
      yield* reader.getAvusAsOf(p.projectId, `${p.irodsPath}/o1`, new Date())
      yield* reader.flush
      expect((yield* catalog.liveFiles(p)).length).toBeLessThan(10)
      const got = yield* view(p, names).pipe(Effect.provideService(DuckLakeClient, reader))
      const at = got.findIndex((x, i) => JSON.stringify(x) !== JSON.stringify(want[i]))
      expect(at === -1 ? "same" : JSON.stringify([at, got[at], want[at]]).slice(0, 600)).toBe("same")
      // A project with few files is left alone on first use.
      const small = yield* never.registerProject({ irodsPath: freshRoot("first-use-small"), actor: "alice" })
      yield* writeSame(small.projectId, small.irodsPath, 10, (id, changes) => never.recordChanges({ projectId: id, actor: "alice", changes }))
      const smallFiles = (yield* catalog.liveFiles(small)).length
      yield* reader.getAvus(small.projectId, `${small.irodsPath}/o1`)
      yield* reader.flush
      expect((yield* catalog.liveFiles(small)).length).toBe(smallFiles)
    }).pipe(Effect.scoped))

  it.effect("a client closed just after its first use of a project closes at once (its background work not begun)", () =>
    Effect.gen(function*() {
      const parts = yield* Effect.context<ClientParts>()
      const p = yield* registerFresh("first-use-close")
      // The first use forks the file count; the scope closes before that fiber has taken a step. It used to wait
      // for that fiber forever (it was counted in flight, and counted done only by a step it never took).
      const closed = yield* Effect.scoped(Effect.gen(function*() {
        const c = yield* DuckLakeClientModule.make({})
        yield* c.getProject(p.projectId)
      })).pipe(Effect.provide(parts), Effect.timeout("20 seconds"), Effect.option)
      expect(closed._tag).toBe("Some")
    }))

  it.effect("two compactions racing over the same files: one merge commits, the other leaves nothing behind", () =>
    Effect.gen(function*() {
      const catalog = yield* Catalog
      const c = yield* DuckLakeClient
      const p = yield* registerFresh("auto-race")
      for (let i = 0; i < 30; i++) yield* record(p.projectId, [change(`${p.irodsPath}/x${i % 3}`, "k", `v${i}`)])
      const before = yield* c.getHistory(p.projectId, { limit: 1000 })
      const [a, b] = yield* Effect.all([c.compact(p.projectId), c.compact(p.projectId)], { concurrency: 2 })
      expect(a.filesWritten + b.filesWritten).toBe(1)
      const live = yield* catalog.liveFiles(p)
      expect(live.length).toBe(1)
      expect(yield* c.getHistory(p.projectId, { limit: 1000 })).toEqual(before)
      // In storage: the one live merged file in main/, the 30 replaced files aside (kept for the grace period).
      const parquetIn = (sub: string) =>
        fs.readdirSync(nodePath.join(dirs.zoneDir, p.ducklakePath, sub, "avu_changes")).filter((f) => f.endsWith(".parquet"))
      expect(parquetIn("main")).toEqual([live[0]!.fileName])
      expect(parquetIn("replaced").length).toBe(30)
      // Writes go on while a compaction merges (it takes the writer lock only to commit).
      for (let i = 0; i < 60; i++) yield* record(p.projectId, [change(`${p.irodsPath}/y${i % 3}`, "k", `w${i}`)])
      const [, written] = yield* Effect.all([
        c.compact(p.projectId),
        record(p.projectId, [change(`${p.irodsPath}/z`, "k", "during")])
      ], { concurrency: 2 })
      expect(written.recorded).toBe(true)
      expect((yield* c.getAvus(p.projectId, `${p.irodsPath}/z`)).map((v) => v.value)).toEqual(["during"])
    }))

  it.effect("main/avu_changes read directly is the history, each change once, after compactions; gc removes what was replaced", () =>
    Effect.gen(function*() {
      const c = yield* DuckLakeClient
      const catalog = yield* Catalog
      const duck = yield* DuckDb
      const p = yield* registerFresh("direct-read")
      const main = nodePath.join(dirs.zoneDir, p.ducklakePath, "main", "avu_changes")
      const aside = nodePath.join(dirs.zoneDir, p.ducklakePath, "replaced", "avu_changes")
      for (let i = 0; i < 20; i++) yield* record(p.projectId, [change(`${p.irodsPath}/x${i % 4}`, "k", `v${i}`), change(`${p.irodsPath}/y`, `a${i}`, "1")])
      yield* c.compact(p.projectId)
      for (let i = 0; i < 7; i++) yield* record(p.projectId, [change(`${p.irodsPath}/z`, "k", `w${i}`)])
      yield* c.compact(p.projectId)
      const history = yield* c.getHistory(p.projectId, { limit: 10_000 })
      expect(history.length).toBe(47)
      // The README's direct read (section "Compaction and reading the files directly"), as printed there.
      const readme = fs.readFileSync(nodePath.join(import.meta.dirname, "..", "README.md"), "utf8")
      const block = /```sql\n(SELECT COLUMNS\(c ->[\s\S]*?)```/.exec(readme)![1]!
      const documented = block.replace(/'\/data-store[^']*\*\.parquet'/, `'${main}/*.parquet'`).replace(/;\s*$/, "")
      const direct = yield* duck.query(
        `SELECT count(*)::INTEGER AS n, count(DISTINCT (snapshot_id, change_seq))::INTEGER AS d FROM (${documented})`
      )
      expect(direct[0]).toEqual({ n: 47, d: 47 })
      const columns = Object.keys((yield* duck.query(`${documented} LIMIT 1`))[0]!)
      expect(columns).toEqual(COLUMNS.map((c) => c.name))
      expect(fs.readdirSync(aside).length).toBe(28)
      // A compaction cut short before its move leaves a replaced file in main/: gc moves it aside.
      const stranded = fs.readdirSync(aside)[0]!
      fs.copyFileSync(nodePath.join(aside, stranded), nodePath.join(main, stranded))
      yield* catalog.withSql((sql) =>
        sql`UPDATE ${sql(p.metadataSchema)}.ducklake_files_scheduled_for_deletion
            SET path = ${`main/avu_changes/${stranded}`} WHERE path = ${`replaced/avu_changes/${stranded}`}`)
      fs.rmSync(nodePath.join(aside, stranded))
      expect(yield* c.deleteScheduledFiles(p.projectId)).toBe(0)
      expect(fs.readdirSync(main)).not.toContain(stranded)
      expect(yield* c.deleteScheduledFiles(p.projectId, { graceMs: 0 })).toBe(28)
      expect(fs.readdirSync(aside)).toEqual([])
      expect(fs.readdirSync(main).length).toBe(1)
      expect(yield* c.getHistory(p.projectId, { limit: 10_000 })).toEqual(history)
    }))

  it.effect("a read whose listed files a compaction moved away meanwhile lists them again and answers", () =>
    Effect.gen(function*() {
      const c = yield* DuckLakeClient
      const p = yield* registerFresh("relist")
      const path = `${p.irodsPath}/x`
      for (let i = 0; i < 6; i++) yield* record(p.projectId, [change(path, `k${i % 2}`, `v${i}`)])
      const expected = yield* c.getAvusAsOf(p.projectId, path, new Date())
      // DuckDB is asked to read the files listed before a compaction that commits (and moves them) first.
      let beforeRead: Effect.Effect<unknown, unknown> | undefined = c.compact(p.projectId)
      let reads = 0
      const racing = overriding(DuckDb, (real) => ({
        avusAsOf: (files, irodsPath, validAt, maxSnapshot) =>
          Effect.suspend(() => {
            reads++
            const first = beforeRead
            beforeRead = undefined
            return Effect.zipRight(first === undefined ? Effect.void : Effect.orDie(first), real.avusAsOf(files, irodsPath, validAt, maxSnapshot))
          })
      }))
      const answer = yield* Effect.flatMap(DuckLakeClient, (fake) => fake.getAvusAsOf(p.projectId, path, new Date()))
        .pipe(withFakeClient(racing))
      expect(answer).toEqual(expected)
      expect(reads).toBe(2)
    }))
})
