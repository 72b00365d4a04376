/**
 * Object identity against the fake iRODS server: with native storage, recorded changes carry the iRODS object id;
 * when the object is moved outside the library (as `imv` would), drift recognises the move by its id and records it
 * as a rename, so the object's history follows it.
 */
import { expect, layer } from "@effect/vitest"
import { Effect, Layer } from "effect"
import * as fs from "node:fs"
import * as nodePath from "node:path"
import { detectDrift, recordDrift } from "../../src/operations/drift.js"
import { DuckLakeClient } from "../../src/client/DuckLakeClient.js"
import { IrodsClient } from "../../src/irods/IrodsClient.js"
import { change, embeddedIrods, FakeIrods, freshRoot } from "../support.js"
import { fakeLogin } from "./helpers.js"

const { dirs, layer: Base } = embeddedIrods("drift-rename")
const Live = Layer.unwrapEffect(Effect.map(FakeIrods, (server) =>
  IrodsClient.layer(fakeLogin(server, { retryBase: "10 millis", requestTimeout: "5 seconds" })))).pipe(
  Layer.provideMerge(Base)
)

layer(Live, { timeout: "120 seconds", excludeTestServices: true })("object identity and drift", (it) => {
  it.effect("a move made outside the library is found by object id and recorded as a rename", () =>
    Effect.gen(function*() {
      const client = yield* DuckLakeClient
      const irods = yield* IrodsClient
      const fake = yield* FakeIrods
      const p = yield* client.registerProject({ irodsPath: freshRoot("moved"), actor: "rods" })
      const a = `${p.irodsPath}/raw/a.csv`
      const b = `${p.irodsPath}/clean/b.csv`
      const local = nodePath.join(dirs.base, "a.csv")
      fs.writeFileSync(local, "x,y\n1,2\n")
      yield* irods.collCreate(`${p.irodsPath}/raw`)
      yield* irods.put(local, a)
      yield* irods.addAvu({ type: "data_object", path: a }, { name: "stage", value: "raw", units: "" })
      const id = fake.state.dataObjects.get(a)!.id
      // Recorded without an object id: the native storage resolves it.
      const r = yield* client.recordChanges({ projectId: p.projectId, actor: "rods", changes: [change(a, "stage", "raw")] })
      expect(r.recorded).toBe(true)
      expect((yield* client.getHistory(p.projectId, { irodsPath: a }))[0]!.objectId).toBe(id)
      const beforeMove = new Date()
      yield* Effect.sleep("5 millis")

      // imv, as iCommands would do it: same object (same id), new path.
      yield* irods.collCreate(`${p.irodsPath}/clean`)
      const obj = fake.state.dataObjects.get(a)!
      fake.state.dataObjects.delete(a)
      obj.path = b
      fake.state.dataObjects.set(b, obj)

      const report = yield* detectDrift(p)
      expect(report.renames).toEqual([{ from: a, to: b, objectId: id, targetType: "data_object" }])
      expect(report.paths).toEqual([])
      const recorded = yield* recordDrift(report, { actor: "rods" })
      expect(recorded).toBeNull() // nothing left to reconcile once the move is recorded
      const after = yield* detectDrift(p)
      expect([after.renames, after.paths]).toEqual([[], []])
      expect((yield* client.getAvus(p.projectId, b)).map((x) => x.value)).toEqual(["raw"])
      expect((yield* client.getAvusAsOf(p.projectId, b, beforeMove)).map((x) => x.value)).toEqual(["raw"])
      expect((yield* client.getAvusAsOf(p.projectId, a, beforeMove)).map((x) => x.value)).toEqual(["raw"])
      expect(yield* client.getAvus(p.projectId, a)).toEqual([])
      // The move's rows carry drift's source: the arrival in b's history, the departure in a's.
      const bMoves = (yield* client.getHistory(p.projectId, { irodsPath: b })).filter((h) => h.source === "mesa-ducklake:drift-reconciliation")
      expect(bMoves.map((m) => [m.op, m.irodsPath, m.objectId])).toEqual([["add", b, id]])
      const aMoves = (yield* client.getHistory(p.projectId, { irodsPath: a })).filter((h) => h.source === "mesa-ducklake:drift-reconciliation")
      expect(aMoves.map((m) => [m.op, m.irodsPath])).toEqual([["delete", a]])
    }))
})
