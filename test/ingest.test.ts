/**
 * Bulk ingest: a long sequence of changes becomes consecutive snapshots through the normal write protocol. The
 * result equals recording the same changes batch by batch; a bad change stops the ingest with its position, the
 * snapshots before it stay, and rerunning with the same idempotency key resumes without recording anything twice.
 */
import { expect, layer } from "@effect/vitest"
import { Effect, Layer, Runtime } from "effect"
import { Catalog } from "../src/catalog/Catalog.js"
import type { AvuChangeInput, Project } from "../src/core/domain.js"
import { DuckLakeClient, make as makeClient, notConfigured } from "../src/client/DuckLakeClient.js"
import { WriteProbe } from "../src/client/context.js"
import { catalogState, change, embedded, registerFresh, withFakeClient } from "./support.js"

const { layer: Live } = embedded("ingest")

const changesFor = (root: string, n: number): Array<AvuChangeInput> =>
  Array.from({ length: n }, (_, i) =>
    change(`${root}/c${i % 7}/o${i % 40}.dat`, `a${i % 5}`, `v${i % 11}`, i % 9 === 8 ? "set" : i % 6 === 5 ? "delete" : "add"))

async function* slowly<A>(xs: ReadonlyArray<A>) {
  for (const x of xs) yield x
}

/**
 * Mixed changes on a few objects, each with an explicit valid time (so two projects fed the same changes must
 * answer identically), many of them back-dated out of order.
 */
const mixedFor = (root: string, n: number, seed: number): Array<AvuChangeInput> => {
  let s = seed
  // The high bits of the LCG (its low bits cycle with short periods).
  const rand = (k: number) => Math.floor(((s = (s * 1103515245 + 12345) % 2147483648) / 2147483648) * k)
  return Array.from({ length: n }, () =>
    change(`${root}/o${rand(12)}.dat`, `a${rand(4)}`, `v${rand(5)}`, (["add", "add", "delete", "set"] as const)[rand(4)]!, {
      unit: rand(5) === 0 ? "mm" : "",
      ts: new Date(Date.UTC(2026, 0, 1) + rand(400) * 3_600_000).toISOString()
    }))
}

/** Every object's current AVUs, by path relative to the project root. */
const currentOf = (p: Project, objects: ReadonlyArray<string>) =>
  Effect.flatMap(DuckLakeClient, (c) =>
    Effect.forEach(objects, (o) =>
      Effect.map(c.getAvus(p.projectId, `${p.irodsPath}/${o}`), (avus) =>
        [o, avus.map((a) => `${a.attribute}=${a.value}[${a.unit}] ${a.ts.toISOString()}`).sort()] as const)))

const objects = [...Array.from({ length: 12 }, (_, i) => `o${i}.dat`), "moved.dat"]

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

  it.effect("the index lags an ingest: reads answer from the files; a write, a rename or catchUpIndex brings it up to date", () =>
    Effect.scoped(Effect.gen(function*() {
      const c = yield* DuckLakeClient
      const catalog = yield* Catalog
      // A second client over the same catalog that leaves the catch-up to others (so the lag can be observed).
      const lazy = yield* makeClient({ catchUpAfterIngest: false })
      const p = yield* registerFresh("lag")
      const ref = yield* registerFresh("lag-ref")
      /** The same changes into `p` by bulk ingest and into the reference batch by batch (index kept in each commit). */
      const both = (changes: (root: string) => Array<AvuChangeInput>, size: number) =>
        Effect.gen(function*() {
          const r = yield* lazy.ingestChanges({ projectId: p.projectId, actor: "importer", changes: changes(p.irodsPath), snapshotSize: size })
          if (!r.recorded) return expect.unreachable()
          const all = changes(ref.irodsPath)
          let unmatched = 0
          for (let i = 0; i < all.length; i += size) {
            const b = yield* c.recordChanges({ projectId: ref.projectId, actor: "importer", changes: all.slice(i, i + size) })
            if (b.recorded) unmatched += b.unmatchedDeletes
          }
          // Deletes that matched nothing are counted against the same state either way.
          expect(r.unmatchedDeletes).toBe(unmatched)
          return r
        })
      const same = Effect.gen(function*() {
        expect(yield* currentOf(p, objects)).toEqual(yield* currentOf(ref, objects))
        // And the lake's own answer from its files, for every object.
        for (const o of objects) {
          const now = yield* c.getAvus(p.projectId, `${p.irodsPath}/${o}`)
          expect(now).toEqual(yield* c.getAvusAsOf(p.projectId, `${p.irodsPath}/${o}`, "9999-12-31T00:00:00Z"))
        }
      })
      const r1 = yield* both((root) => mixedFor(root, 3_000, 11), 700)
      expect(r1.snapshots.length).toBe(5)
      expect(yield* catalog.indexThrough(p)).toBe(r1.snapshots[0]! - 1)
      yield* same
      expect(yield* catalog.indexThrough(p)).not.toBeNull()
      // A write while the index lags catches it up first (it expands `set` against the state).
      const w = (root: string) => [change(`${root}/o3.dat`, "a1", "fresh", "set", { ts: "2026-06-01T00:00:00Z" })]
      yield* lazy.recordChanges({ projectId: p.projectId, actor: "importer", changes: w(p.irodsPath) })
      yield* c.recordChanges({ projectId: ref.projectId, actor: "importer", changes: w(ref.irodsPath) })
      expect(yield* catalog.indexThrough(p)).toBeNull()
      yield* same
      // A rename while it lags carries the state the files say.
      yield* both((root) => mixedFor(root, 900, 12), 400)
      expect(yield* catalog.indexThrough(p)).not.toBeNull()
      for (const q of [p, ref]) {
        yield* lazy.recordRename({ projectId: q.projectId, actor: "importer", from: `${q.irodsPath}/o5.dat`, to: `${q.irodsPath}/moved.dat`, ts: "2026-07-01T00:00:00Z" })
      }
      expect(yield* catalog.indexThrough(p)).toBeNull()
      yield* same
      // catchUpIndex applies what is left, once.
      const r3 = yield* both((root) => mixedFor(root, 1_500, 13), 500)
      yield* same
      expect(yield* lazy.catchUpIndex(p.projectId)).toBe(r3.snapshots.length)
      expect(yield* lazy.catchUpIndex(p.projectId)).toBe(0)
      expect(yield* catalog.indexThrough(p)).toBeNull()
      yield* same
      // The default client catches up in the background after an ingest; flush waits for it.
      yield* c.ingestChanges({ projectId: p.projectId, actor: "importer", changes: mixedFor(p.irodsPath, 800, 14), snapshotSize: 300 })
      yield* c.flush
      expect(yield* catalog.indexThrough(p)).toBeNull()
    })))

  it.effect("another writer between an ingest's snapshots: the ingest expands its later changes against that write", () =>
    Effect.gen(function*() {
      const c = yield* DuckLakeClient
      const run = Runtime.runPromise(yield* Effect.runtime<DuckLakeClient>())
      const p = yield* registerFresh("interleave")
      const ref = yield* registerFresh("interleave-ref")
      const size = 500
      const changes = (root: string) => mixedFor(root, 2_000, 21)
      const other = (root: string) => [
        change(`${root}/o1.dat`, "a2", "other", "set", { ts: "2026-02-01T00:00:00Z" }),
        change(`${root}/o2.dat`, "a0", "v1", "delete", { ts: "2026-03-01T00:00:00Z" })
      ]
      // The source pauses at change 1,250 until the ingest's first two snapshots are committed, then another writer
      // records its batch; the ingest's third snapshot (changes 1,000–1,499) is written after it.
      const source = async function*() {
        const all = changes(p.irodsPath)
        for (let i = 0; i < all.length; i++) {
          if (i === 1_250) {
            while ((await run(c.listSnapshots(p.projectId))).length < 2) await new Promise((r) => setTimeout(r, 10))
            await run(c.recordChanges({ projectId: p.projectId, actor: "other", changes: other(p.irodsPath) }))
          }
          yield all[i]
        }
      }
      const r = yield* c.ingestChanges({ projectId: p.projectId, actor: "importer", changes: source(), snapshotSize: size })
      if (!r.recorded) return expect.unreachable()
      const all = changes(ref.irodsPath)
      let unmatched = 0
      for (let i = 0; i < all.length; i += size) {
        if (i === 1_000) yield* c.recordChanges({ projectId: ref.projectId, actor: "other", changes: other(ref.irodsPath) })
        const b = yield* c.recordChanges({ projectId: ref.projectId, actor: "importer", changes: all.slice(i, i + size) })
        if (b.recorded) unmatched += b.unmatchedDeletes
      }
      expect(r.unmatchedDeletes).toBe(unmatched)
      yield* c.flush
      expect(yield* currentOf(p, objects)).toEqual(yield* currentOf(ref, objects))
      const rows = (q: Project) =>
        Effect.map(c.getHistory(q.projectId, { limit: 100_000 }), (h) => h.map((x) => [x.irodsPath.slice(q.irodsPath.length), x.attribute, x.value, x.unit, x.op, x.actor]))
      expect(yield* rows(p)).toEqual(yield* rows(ref))
    }))

  it.effect("a write between the ingest's early read of its next snapshot's state and that snapshot's lock: the state is read again", () =>
    Effect.gen(function*() {
      const c = yield* DuckLakeClient
      const p = yield* registerFresh("early-read")
      const x = `${p.irodsPath}/x.dat`
      yield* c.recordChanges({ projectId: p.projectId, actor: "before", changes: [change(x, "k", "a")] })
      // The ingest reads its second snapshot's state while its first is being written. Once the first has committed
      // (and released the lock), and before the second reserves, another writer deletes k=a and adds k=z.
      let other = false
      const probe = Layer.succeed(WriteProbe, {
        after: (step) =>
          step !== "committed" || other ? Effect.void : Effect.gen(function*() {
            other = true
            yield* Effect.sleep("300 millis")
            yield* c.recordChanges({ projectId: p.projectId, actor: "other", changes: [change(x, "k", "a", "delete"), change(x, "k", "z")] }).pipe(Effect.orDie)
          })
      })
      const r = yield* Effect.flatMap(DuckLakeClient, (ingester) =>
        ingester.ingestChanges({
          projectId: p.projectId,
          actor: "importer",
          snapshotSize: 2,
          changes: [change(`${p.irodsPath}/y.dat`, "k", "b"), change(`${p.irodsPath}/y.dat`, "k", "d"), change(x, "k", "a", "delete"), change(x, "k", "c", "set")]
        })).pipe(withFakeClient(probe))
      if (!r.recorded) return expect.unreachable()
      expect(other).toBe(true)
      expect(r.snapshots).toHaveLength(2)
      // Against the state read early, the delete would match k=a and the set would leave k=z.
      expect(r.unmatchedDeletes).toBe(1)
      expect((yield* c.getAvus(p.projectId, x)).map((a) => a.value)).toEqual(["c"])
      const history = yield* c.getHistory(p.projectId, { irodsPath: x, limit: 100 })
      expect(history.filter((h) => h.snapshotId === r.snapshots[1]).map((h) => `${h.op} ${h.value}`).sort()).toEqual(["add c", "delete a", "delete z"])
    }))

  it.effect("a delete is counted as unmatched against the latest state: the index, the ingest's own snapshots, other writers", () =>
    Effect.gen(function*() {
      const c = yield* DuckLakeClient
      const run = Runtime.runPromise(yield* Effect.runtime<DuckLakeClient>())
      const at = (day: number) => ({ ts: new Date(Date.UTC(2026, 1, day)).toISOString() })
      const ingest = (p: Project, changes: AsyncIterable<AvuChangeInput>) =>
        Effect.flatMap(c.ingestChanges({ projectId: p.projectId, actor: "importer", changes, snapshotSize: 1 }), (r) =>
          r.recorded ? Effect.succeed(r) : Effect.die("not recorded"))
      // k=a is in the index before the ingest, which deletes it twice (one change per snapshot): the first delete
      // matches the index, the second matches nothing (only the ingest's own first delete says so).
      const p = yield* registerFresh("unmatched")
      const obj = `${p.irodsPath}/o.dat`
      yield* c.recordChanges({ projectId: p.projectId, actor: "a", changes: [change(obj, "k", "a", "add", at(1))] })
      const twice = yield* ingest(p, slowly([change(obj, "k", "a", "delete", at(2)), change(obj, "k", "a", "delete", at(3))]))
      expect(twice.unmatchedDeletes).toBe(1)
      // A fresh project: the ingest adds k=b, another writer deletes it between the ingest's snapshots, and the
      // ingest's own delete then matches nothing.
      const q = yield* registerFresh("unmatched-other")
      const obj2 = `${q.irodsPath}/o.dat`
      const source = async function*() {
        yield change(obj2, "k", "b", "add", at(4))
        while ((await run(c.listSnapshots(q.projectId))).length < 1) await new Promise((r) => setTimeout(r, 10))
        await run(c.recordChanges({ projectId: q.projectId, actor: "other", changes: [change(obj2, "k", "b", "delete", at(5))] }))
        yield change(obj2, "k", "b", "delete", at(6))
      }
      const other = yield* ingest(q, source())
      expect(other.snapshots.length).toBe(2)
      expect(other.unmatchedDeletes).toBe(1)
      for (const [x, o] of [[p, obj], [q, obj2]] as const) expect(yield* c.getAvus(x.projectId, o)).toEqual([])
    }))

  it.effect("an ingest past its memory limit catches the index up and goes on, with the same answers and counts", () =>
    Effect.scoped(Effect.gen(function*() {
      const c = yield* DuckLakeClient
      const catalog = yield* Catalog
      const small = yield* makeClient({ ingestMemoryTriples: 150, catchUpAfterIngest: false })
      const p = yield* registerFresh("limit")
      const ref = yield* registerFresh("limit-ref")
      const size = 100
      const r = yield* small.ingestChanges({ projectId: p.projectId, actor: "importer", changes: mixedFor(p.irodsPath, 1_200, 31), snapshotSize: size })
      if (!r.recorded) return expect.unreachable()
      const all = mixedFor(ref.irodsPath, 1_200, 31)
      let unmatched = 0
      for (let i = 0; i < all.length; i += size) {
        const b = yield* c.recordChanges({ projectId: ref.projectId, actor: "importer", changes: all.slice(i, i + size) })
        if (b.recorded) unmatched += b.unmatchedDeletes
      }
      expect(r.unmatchedDeletes).toBe(unmatched)
      // It caught up on the way (so only its last stretch is behind the index now).
      const mark = yield* catalog.indexThrough(p)
      expect(mark).not.toBeNull()
      expect(mark!).toBeGreaterThan(r.snapshots[0]!)
      expect(yield* currentOf(p, objects)).toEqual(yield* currentOf(ref, objects))
    })))

  it.effect("a batch that changes nothing makes no snapshot: recordChanges says so, an ingest skips that part", () =>
    Effect.gen(function*() {
      const c = yield* DuckLakeClient
      const catalog = yield* Catalog
      const p = yield* registerFresh("noop")
      const obj = `${p.irodsPath}/o.dat`
      yield* c.recordChanges({ projectId: p.projectId, actor: "a", changes: [change(obj, "k", "v")] })
      // `set` to the only value already there: nothing to write.
      expect(yield* c.recordChanges({ projectId: p.projectId, actor: "a", changes: [change(obj, "k", "v", "set")] }))
        .toEqual({ recorded: false, reason: "nothing-to-record" })
      const r = yield* c.ingestChanges({
        projectId: p.projectId,
        actor: "a",
        changes: [change(obj, "k", "v", "set"), change(obj, "k", "v", "set"), change(obj, "x", "1")],
        snapshotSize: 2
      })
      if (!r.recorded) return expect.unreachable()
      expect(r.changeCount).toBe(3)
      expect(r.snapshots.length).toBe(1)
      expect((yield* c.listSnapshots(p.projectId)).length).toBe(2)
      expect((yield* c.getAvus(p.projectId, obj)).map((a) => `${a.attribute}=${a.value}`)).toEqual(["k=v", "x=1"])
      const open = yield* catalog.withSql((sql) =>
        sql<any>`SELECT count(*)::int AS n FROM mesa_ducklake.pending_writes WHERE project_id = ${p.projectId}`
      )
      expect(open[0].n).toBe(0)
    }))

  it.effect("a source the ingest stops reading early is closed", () =>
    Effect.gen(function*() {
      const c = yield* DuckLakeClient
      const p = yield* registerFresh("close")
      let closed = false
      const source = function*() {
        try {
          for (let i = 0; i < 100; i++) yield i === 5 ? { bad: true } : change(`${p.irodsPath}/o${i}`, "k", "v")
        } finally {
          closed = true
        }
      }
      const e = yield* Effect.flip(c.ingestChanges({ projectId: p.projectId, actor: "a", changes: source() }))
      expect(e._tag).toBe("InvalidChange")
      expect(closed).toBe(true)
    }))
})

