/**
 * Rebuild after compaction: once the grace period has deleted the per-snapshot files, the merged files and the
 * compaction markers give the catalog back, with every answer (valid time, known-at, history, renames) unchanged.
 */
import { expect, layer } from "@effect/vitest"
import { Effect } from "effect"
import { Backup } from "../src/backup/Backup.js"
import { Catalog } from "../src/catalog/Catalog.js"
import type { Project } from "../src/core/domain.js"
import { DuckLakeClient } from "../src/client/DuckLakeClient.js"
import { dropCatalog, embeddedBackup } from "./backup-support.js"
import { change, record, registerFresh } from "./support.js"

const { layer: Live } = embeddedBackup("rebuild-compacted")

const day = (d: number) => new Date(Date.UTC(2026, 5, d)).toISOString()

const answers = (p: Project, paths: ReadonlyArray<string>) =>
  Effect.gen(function*() {
    const c = yield* DuckLakeClient
    const snaps = yield* c.listSnapshots(p.projectId, { limit: 1000 })
    const out: Record<string, unknown> = { snapshots: snaps }
    for (const path of paths) {
      out[`now ${path}`] = yield* c.getAvus(p.projectId, path)
      out[`history ${path}`] = yield* c.getHistory(p.projectId, { irodsPath: path })
      for (const d of [1, 3, 6, 9, 12, 20]) out[`${path} @${d}`] = yield* c.getAvusAsOf(p.projectId, path, day(d))
      for (const s of snaps) {
        out[`${path} known ${s.snapshotId}`] = yield* c.getAvusAsOf(p.projectId, path, day(25), { knownAt: s.snapshotId })
      }
    }
    return out
  })

layer(Live, { timeout: "180 seconds", excludeTestServices: true })("rebuild after compaction", (it) => {
  it.effect("merged files and compaction markers give back the same catalog answers", () =>
    Effect.gen(function*() {
      const c = yield* DuckLakeClient
      const p = yield* registerFresh("rebuild-compacted")
      const [a, b, moved] = ["a.csv", "sub/b.csv", "moved/a.csv"].map((x) => `${p.irodsPath}/${x}`) as [string, string, string]
      for (let i = 1; i <= 12; i++) {
        yield* record(p.projectId, [
          change(i % 2 === 0 ? a : b, `k${i % 3}`, `v${i}`, i % 4 === 0 ? "set" : "add", { ts: day(i) }),
          ...(i % 5 === 0 ? [change(b, "k1", `v${i - 4}`, "delete", { ts: day(i) })] : [])
        ])
      }
      yield* c.recordRename({ projectId: p.projectId, actor: "alice", from: a, to: moved, ts: day(13) })
      const live = yield* (yield* Catalog).liveFiles(p)
      const report = yield* c.compact(p.projectId, { targetFileSize: live[0]!.fileSizeBytes * 6 })
      expect(report.filesWritten).toBeGreaterThanOrEqual(2)
      yield* record(p.projectId, [change(moved, "after", "compaction", "add", { ts: day(15) })])
      const second = yield* c.compact(p.projectId, { targetFileSize: 64 * 1024 * 1024 }) // compacts compacted files
      expect(second.filesAfter).toBe(1)
      yield* record(p.projectId, [change(b, "late", "write", "add", { ts: day(16) })])
      yield* c.deleteScheduledFiles(p.projectId, { graceMs: 0 })
      const paths = [a, b, moved]
      const before = yield* answers(p, paths)

      // Lose the catalog: schema and registry row (after the background commit markers have landed).
      yield* dropCatalog(p)
      const rebuilt = yield* Effect.flatMap(Backup, (bk) => bk.rebuild({ root: p.irodsPath }))
      expect(rebuilt.problems).toEqual([])
      expect(rebuilt.snapshots).toBe((before.snapshots as ReadonlyArray<unknown>).length)
      expect(yield* answers(p, paths)).toEqual(before)

      // The rebuilt catalog takes new writes and compactions (no data file id handed out twice).
      yield* record(p.projectId, [change(b, "post", "rebuild")])
      const again = yield* c.compact(p.projectId, { targetFileSize: 64 * 1024 * 1024 })
      expect(again.filesAfter).toBe(1)
      expect((yield* c.getAvus(p.projectId, b)).some((x) => x.attribute === "post")).toBe(true)
    }))

  it.effect("within the grace period, automatic compactions and the files they moved aside: the rebuild gives the same answers, no problem", () =>
    Effect.gen(function*() {
      const c = yield* DuckLakeClient
      const p = yield* registerFresh("rebuild-auto")
      const paths = ["x", "y/z", "w"].map((x) => `${p.irodsPath}/${x}`)
      for (let i = 1; i <= 130; i++) {
        yield* c.recordChanges({
          projectId: p.projectId,
          actor: "alice",
          changes: [change(paths[i % 3]!, `k${i % 4}`, `v${i % 7}`, i % 6 === 0 ? "set" : "add", { ts: day(1 + (i % 20)) })]
        })
      }
      yield* c.flush
      const live = yield* (yield* Catalog).liveFiles(p)
      expect(live.some((f) => f.fileName.startsWith("compacted_"))).toBe(true)
      const before = yield* answers(p, paths)
      yield* dropCatalog(p)
      const rebuilt = yield* Effect.flatMap(Backup, (bk) => bk.rebuild({ root: p.irodsPath }))
      expect(rebuilt.problems).toEqual([])
      expect(yield* answers(p, paths)).toEqual(before)
    }))
})
