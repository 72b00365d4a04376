/**
 * History that tells the truth: an object's history follows it across renames and moves (iRODS imv), old paths
 * still answer for their time, retried batches never duplicate (also concurrently), and parity fields survive.
 */
import { expect, layer } from "@effect/vitest"
import { Effect } from "effect"
import { DuckLakeClient } from "../src/client/DuckLakeClient.js"
import { change, embedded, record, registerFresh } from "./support.js"

const { layer: Live } = embedded("truth")
const day = (d: number) => new Date(Date.UTC(2026, 2, d)).toISOString()
const values = (avus: ReadonlyArray<{ readonly attribute: string; readonly value: string }>) =>
  avus.map((a) => `${a.attribute}=${a.value}`).sort()

layer(Live, { timeout: "120 seconds", excludeTestServices: true })("history that tells the truth", (it) => {
  it.effect("a renamed data object keeps one history; the old path still answers for its time", () =>
    Effect.gen(function*() {
      const c = yield* DuckLakeClient
      const p = yield* registerFresh("rename")
      const a = `${p.irodsPath}/raw/a.csv`
      const b = `${p.irodsPath}/clean/b.csv`
      yield* record(p.projectId, [change(a, "stage", "raw", "add", { ts: day(1) }), change(a, "owner", "lab", "add", { ts: day(1) })])
      yield* record(p.projectId, [change(a, "stage", "qc", "set", { ts: day(2) })])
      const beforeMove = (yield* c.listSnapshots(p.projectId))[0]!.snapshotId
      const moved = yield* c.recordRename({ projectId: p.projectId, actor: "alice", from: a, to: b, ts: day(3), objectId: 10042 })
      expect(moved.recorded && moved.changeCount).toBe(4) // 2 deletes at the old path, 2 adds at the new
      yield* record(p.projectId, [change(b, "stage", "published", "set", { ts: day(4) })])

      expect(values(yield* c.getAvus(p.projectId, b))).toEqual(["owner=lab", "stage=published"])
      expect(yield* c.getAvus(p.projectId, a)).toEqual([])
      // By the new path, before the move: the object's state back then.
      expect(values(yield* c.getAvusAsOf(p.projectId, b, day(1)))).toEqual(["owner=lab", "stage=raw"])
      expect(values(yield* c.getAvusAsOf(p.projectId, b, day(2)))).toEqual(["owner=lab", "stage=qc"])
      expect(values(yield* c.getAvusAsOf(p.projectId, b, day(3)))).toEqual(["owner=lab", "stage=qc"])
      // By the old path: it answers for its time, and is empty after the move.
      expect(values(yield* c.getAvusAsOf(p.projectId, a, day(2)))).toEqual(["owner=lab", "stage=qc"])
      expect(yield* c.getAvusAsOf(p.projectId, a, day(3))).toEqual([])
      // As known before the move was recorded, the new path had no history at all.
      expect(yield* c.getAvusAsOf(p.projectId, b, day(2), { knownAt: beforeMove })).toEqual([])
      // The new path's history includes the old path's, up to the move (not its deletes at the move).
      const h = yield* c.getHistory(p.projectId, { irodsPath: b })
      expect(h.map((r) => `${r.irodsPath === a ? "a" : "b"}:${r.op}:${r.attribute}=${r.value}`)).toEqual([
        "b:add:stage=published",
        "b:delete:stage=qc",
        "b:add:stage=qc",
        "b:add:owner=lab",
        "a:add:stage=qc",
        "a:delete:stage=raw",
        "a:add:owner=lab", // same time and snapshot as stage=raw: later in the batch, so newer
        "a:add:stage=raw"
      ])
      const moveRows = h.filter((r) => r.source === "mesa-ducklake:rename")
      expect(moveRows.every((r) => r.objectId === 10042 && r.actor === "alice")).toBe(true)
      // A chain of moves: b → c.
      const cPath = `${p.irodsPath}/final/c.csv`
      yield* c.recordRename({ projectId: p.projectId, actor: "bob", from: b, to: cPath, ts: day(5) })
      expect(values(yield* c.getAvusAsOf(p.projectId, cPath, day(1)))).toEqual(["owner=lab", "stage=raw"])
      expect(values(yield* c.getAvusAsOf(p.projectId, cPath, day(4)))).toEqual(["owner=lab", "stage=published"])
      expect((yield* c.getHistory(p.projectId, { irodsPath: cPath })).filter((r) => r.irodsPath === a).length).toBe(4)
    }))

  it.effect("moving a collection moves its members' histories", () =>
    Effect.gen(function*() {
      const c = yield* DuckLakeClient
      const p = yield* registerFresh("move-coll")
      const coll = `${p.irodsPath}/incoming/batch7`
      const x = `${coll}/x.dat`
      const y = `${coll}/sub/y.dat`
      yield* record(p.projectId, [
        change(coll, "batch", "7", "add", { ts: day(1), targetType: "collection" }),
        change(x, "kind", "scan", "add", { ts: day(1) }),
        change(y, "kind", "photo", "add", { ts: day(2) })
      ])
      const to = `${p.irodsPath}/archive/2026/batch7`
      const r = yield* c.recordRename({ projectId: p.projectId, actor: "alice", from: coll, to, targetType: "collection", ts: day(10) })
      expect(r.recorded && r.changeCount).toBe(6)
      expect(values(yield* c.getAvus(p.projectId, `${to}/sub/y.dat`))).toEqual(["kind=photo"])
      expect(values(yield* c.getAvusAsOf(p.projectId, `${to}/x.dat`, day(5)))).toEqual(["kind=scan"])
      expect(values(yield* c.getAvusAsOf(p.projectId, to, day(5)))).toEqual(["batch=7"])
      expect(yield* c.getAvusAsOf(p.projectId, `${to}/sub/y.dat`, day(1))).toEqual([]) // y was tagged on day 2
      expect(yield* c.getAvus(p.projectId, x)).toEqual([])
      const hist = yield* c.getHistory(p.projectId, { irodsPath: to })
      expect(hist.find((h) => h.irodsPath === coll && h.op === "add")?.targetType).toBe("collection")
      // A sibling sharing the name's prefix is not moved.
      yield* record(p.projectId, [change(`${coll}-other/z`, "k", "v")])
      expect(values(yield* c.getAvus(p.projectId, `${coll}-other/z`))).toEqual(["k=v"])
    }))

  it.effect("renames are refused or not recorded when they make no sense", () =>
    Effect.gen(function*() {
      const c = yield* DuckLakeClient
      const p = yield* registerFresh("rename-bad")
      const a = `${p.irodsPath}/a`
      yield* record(p.projectId, [change(a, "k", "v")])
      const bad = [
        { from: a, to: a, field: "to" },
        { from: `${p.irodsPath}/coll`, to: `${p.irodsPath}/coll/inner`, field: "to", targetType: "collection" as const },
        { from: a, to: "/elsewhere/a", field: "to" },
        { from: "relative", to: a, field: "from" },
        { from: a, to: `${p.irodsPath}/.mesa/ducklake/x`, field: "to" }
      ]
      for (const b of bad) {
        const e = yield* Effect.flip(c.recordRename({ projectId: p.projectId, actor: "x", ...b }))
        expect(e._tag, JSON.stringify(b)).toBe("InvalidChange")
        if (e._tag === "InvalidChange") expect(e.field).toBe(b.field)
      }
      expect(yield* c.recordRename({ projectId: p.projectId, actor: "x", from: `${p.irodsPath}/no-avus`, to: `${p.irodsPath}/n` }))
        .toEqual({ recorded: false, reason: "nothing-to-record" })
      expect((yield* c.listSnapshots(p.projectId)).length).toBe(1)
    }))

  it.effect("retries with one idempotency key, even concurrent ones, make one snapshot", () =>
    Effect.gen(function*() {
      const c = yield* DuckLakeClient
      const p = yield* registerFresh("idem-conc")
      const batch = [change(`${p.irodsPath}/x`, "k", "v", "add", { ts: day(1) })]
      const results = yield* Effect.forEach(
        Array.from({ length: 8 }, () => 0),
        () => c.recordChanges({ projectId: p.projectId, actor: "mcp", changes: batch, idempotencyKey: "retry-1" }),
        { concurrency: 8 }
      )
      const ids = new Set(results.map((r) => (r.recorded ? r.snapshotId : -1)))
      expect(ids.size).toBe(1)
      expect(results.filter((r) => r.recorded && !r.replayed).length).toBe(1)
      expect((yield* c.listSnapshots(p.projectId)).length).toBe(1)
      const renamed = yield* Effect.forEach([1, 2, 3], () =>
        c.recordRename({ projectId: p.projectId, actor: "mcp", from: `${p.irodsPath}/x`, to: `${p.irodsPath}/y`, ts: day(2), idempotencyKey: "mv-1" }), { concurrency: 3 })
      expect(new Set(renamed.map((r) => (r.recorded ? r.snapshotId : -1))).size).toBe(1)
      expect((yield* c.listSnapshots(p.projectId)).length).toBe(2)
    }))

  it.effect("parity fields: rule invocation, resource and user targets, archived projects", () =>
    Effect.gen(function*() {
      const c = yield* DuckLakeClient
      const p = yield* registerFresh("parity")
      yield* record(p.projectId, [
        change(`${p.irodsPath}/o`, "k", "v", "add", { ruleInvocation: "acPostProcForPut(x)", source: "irods-rule:acPostProcForPut", viaTicket: "t123" }),
        change(`${p.irodsPath}/resc`, "tier", "hot", "add", { targetType: "resource" }),
        change(`${p.irodsPath}/user`, "role", "pi", "add", { targetType: "user" })
      ])
      const h = yield* c.getHistory(p.projectId)
      expect(h.map((r) => r.targetType).sort()).toEqual(["data_object", "resource", "user"])
      const o = h.find((r) => r.attribute === "k")!
      expect([o.ruleInvocation, o.source, o.viaTicket]).toEqual(["acPostProcForPut(x)", "irods-rule:acPostProcForPut", "t123"])
      const archived = yield* c.setProjectStatus(p.projectId, "archived")
      expect(archived.status).toBe("archived")
      expect((yield* Effect.flip(record(p.projectId, [change(`${p.irodsPath}/o`, "k", "w")])))._tag).toBe("ProjectArchived")
      expect(values(yield* c.getAvus(p.projectId, `${p.irodsPath}/o`))).toEqual(["k=v"])
      yield* c.setProjectStatus(p.projectId, "active")
      yield* record(p.projectId, [change(`${p.irodsPath}/o`, "k", "w")])
    }))
})
