/**
 * Bulk ingest: a long sequence of changes becomes consecutive snapshots through the normal write protocol. The
 * result equals recording the same changes batch by batch; a bad change stops the ingest with its position, the
 * snapshots before it stay, and rerunning with the same idempotency key resumes without recording anything twice.
 */
import { expect, layer } from "@effect/vitest"
import { Effect } from "effect"
import { Catalog } from "../src/Catalog.js"
import type { AvuChangeInput } from "../src/domain.js"
import { DuckLakeClient, notConfigured } from "../src/DuckLakeClient.js"
import { catalogState, change, embedded, registerFresh } from "./support.js"

const { layer: Live } = embedded("ingest")

const changesFor = (root: string, n: number): Array<AvuChangeInput> =>
  Array.from({ length: n }, (_, i) =>
    change(`${root}/c${i % 7}/o${i % 40}.dat`, `a${i % 5}`, `v${i % 11}`, i % 9 === 8 ? "set" : i % 6 === 5 ? "delete" : "add"))

async function* slowly<A>(xs: ReadonlyArray<A>) {
  for (const x of xs) yield x
}

layer(Live, { timeout: "300 seconds", excludeTestServices: true })("bulk ingest", (it) => {
  it.effect("records snapshots of at most snapshotSize changes, equal to recording them batch by batch", () =>
    Effect.gen(function*() {
      const c = yield* DuckLakeClient
      const bulk = yield* registerFresh("ingest")
      const batched = yield* registerFresh("ingest-ref")
      const n = 2_345
      const r = yield* c.ingestChanges({
        projectId: bulk.projectId,
        actor: "importer",
        note: "import",
        changes: slowly(changesFor(bulk.irodsPath, n)),
        snapshotSize: 1_000
      })
      if (!r.recorded) return expect.unreachable()
      expect(r.changeCount).toBe(n)
      expect(r.snapshots.length).toBe(3)
      expect(r.replayed).toBe(0)
      // The reference: the same changes, as three recordChanges calls.
      const ref = changesFor(batched.irodsPath, n)
      for (let i = 0; i < n; i += 1_000) {
        yield* c.recordChanges({ projectId: batched.projectId, actor: "importer", note: "import", changes: ref.slice(i, i + 1_000) })
      }
      const rel = (root: string, path: string) => path.slice(root.length)
      for (let k = 0; k < 40; k++) {
        const [a, b] = [bulk, batched].map((p) => `${p.irodsPath}/c${k % 7}/o${k}.dat`)
        const strip = (xs: ReadonlyArray<{ readonly attribute: string; readonly value: string; readonly unit: string }>) =>
          xs.map((x) => `${x.attribute}=${x.value}[${x.unit}]`).sort()
        expect(strip(yield* c.getAvus(bulk.projectId, a!)), a).toEqual(strip(yield* c.getAvus(batched.projectId, b!)))
      }
      const h1 = yield* c.getHistory(bulk.projectId, { limit: 100_000 })
      const h2 = yield* c.getHistory(batched.projectId, { limit: 100_000 })
      expect(h1.map((x) => [rel(bulk.irodsPath, x.irodsPath), x.attribute, x.value, x.op])).toEqual(
        h2.map((x) => [rel(batched.irodsPath, x.irodsPath), x.attribute, x.value, x.op])
      )
      const snaps = yield* c.listSnapshots(bulk.projectId)
      expect(snaps.map((s) => s.changeCount).reduce((x, y) => x + y, 0)).toBe(h1.length)
      expect(snaps.every((s) => s.actor === "importer" && s.note === "import")).toBe(true)
    }))

  it.effect("a bad change stops the ingest at its position; rerunning with the key resumes exactly", () =>
    Effect.gen(function*() {
      const c = yield* DuckLakeClient
      const catalog = yield* Catalog
      const p = yield* registerFresh("ingest-resume")
      const good = changesFor(p.irodsPath, 2_500)
      const bad = good.map((x, i) => (i === 1_700 ? { ...x, irodsPath: "relative/path" } : x))
      const e = yield* Effect.flip(c.ingestChanges({ projectId: p.projectId, actor: "importer", changes: bad, snapshotSize: 1_000, idempotencyKey: "import-1" }))
      expect(e._tag).toBe("InvalidChange")
      if (e._tag === "InvalidChange") {
        expect(e.index).toBe(1_700)
        expect(e.field).toBe("irodsPath")
      }
      // The first 1,000 changes are one committed snapshot; nothing of the second is visible.
      const after = yield* c.listSnapshots(p.projectId)
      expect(after.map((s) => s.changeCount)).toEqual([(yield* c.getSnapshotChanges(p.projectId, after[0]!.snapshotId)).length])
      const state = yield* catalogState(p.metadataSchema)
      // Resume with the fixed input and the same key: the first snapshot is replayed, the rest recorded once.
      const r = yield* c.ingestChanges({ projectId: p.projectId, actor: "importer", changes: good, snapshotSize: 1_000, idempotencyKey: "import-1" })
      if (!r.recorded) return expect.unreachable()
      expect(r.replayed).toBe(1)
      expect(r.snapshots[0]).toBe(after[0]!.snapshotId)
      expect(r.snapshots.length).toBe(3)
      expect((yield* c.listSnapshots(p.projectId)).length).toBe(3)
      expect(state).not.toEqual(yield* catalogState(p.metadataSchema))
      const pending = yield* catalog.withSql((sql) =>
        sql<any>`SELECT count(*)::int AS n FROM mesa_ducklake.pending_writes WHERE project_id = ${p.projectId} AND state <> 'failed'`
      )
      expect(pending[0].n).toBe(0)
    }))

  it.effect("bad arguments are typed errors and record nothing; without a catalog nothing is recorded", () =>
    Effect.gen(function*() {
      const c = yield* DuckLakeClient
      const p = yield* registerFresh("ingest-bad")
      const before = yield* catalogState(p.metadataSchema)
      const ok = changesFor(p.irodsPath, 3)
      const cases: Array<[string, unknown]> = [
        ["snapshotSize", { projectId: p.projectId, actor: "a", changes: ok, snapshotSize: 0 }],
        ["snapshotSize", { projectId: p.projectId, actor: "a", changes: ok, snapshotSize: 1.5 }],
        ["snapshotSize", { projectId: p.projectId, actor: "a", changes: ok, snapshotSize: 10_000_000 }],
        ["changes", { projectId: p.projectId, actor: "a", changes: 42 }],
        ["changes", { projectId: p.projectId, actor: "a", changes: "abc" }],
        ["changes", { projectId: p.projectId, actor: "a", changes: [] }],
        ["actor", { projectId: p.projectId, actor: "", changes: ok }],
        ["irodsPath", { projectId: p.projectId, actor: "a", changes: [change("/elsewhere/x", "k", "v")] }]
      ]
      for (const [field, input] of cases) {
        const e = yield* Effect.flip(c.ingestChanges(input as any))
        expect(e._tag, JSON.stringify(input)).toBe("InvalidChange")
        if (e._tag === "InvalidChange") expect(e.field).toBe(field)
      }
      const failing = (async function*() {
        yield ok[0]
        throw new Error("source broke")
      })()
      const e = yield* Effect.flip(c.ingestChanges({ projectId: p.projectId, actor: "a", changes: failing }))
      expect(e._tag).toBe("InvalidChange")
      expect((yield* Effect.flip(c.ingestChanges({ projectId: "nope", actor: "a", changes: ok })))._tag).toBe("ProjectNotFound")
      expect(yield* catalogState(p.metadataSchema)).toEqual(before)
      expect(yield* notConfigured.ingestChanges({ projectId: p.projectId, actor: "a", changes: ok }))
        .toEqual({ recorded: false, reason: "no-catalog" })
    }))
})
