/**
 * The write path builds a snapshot's Parquet file while its reservation is flushed, from a plan of the id and clock
 * the reservation will hand out. When the reservation does not match the plan (something reserved or committed in
 * between), the early file is dropped and the snapshot is built again from the state read anew: the recorded
 * history is the same, and no early file is left in the cache.
 */
import { expect, layer } from "@effect/vitest"
import { Effect, Layer } from "effect"
import * as fs from "node:fs"
import * as nodePath from "node:path"
import { Catalog } from "../src/catalog/Catalog.js"
import { DuckLakeClient } from "../src/client/DuckLakeClient.js"
import { SMALL_BATCH_MAX_ROWS } from "../src/duckdb/snapshotFile.js"
import { overriding } from "./faults.js"
import { change, embedded, registerFresh, withFakeClient } from "./support.js"

const { dirs, layer: Live } = embedded("write-plan")

const cacheFiles = (projectId: string) => {
  const dir = nodePath.join(dirs.cacheDir, projectId)
  return fs.existsSync(dir) ? fs.readdirSync(dir).filter((f) => f.endsWith(".parquet")).sort() : []
}

/** The snapshot files in the project's lake collection (the zone directory stands in for iRODS). */
const storedFiles = (ducklakePath: string) => {
  const dir = nodePath.join(dirs.zoneDir, ducklakePath, "main", "avu_changes")
  return fs.existsSync(dir) ? fs.readdirSync(dir).filter((f) => f.endsWith(".parquet")).sort() : []
}

layer(Live, { timeout: "300 seconds", excludeTestServices: true })("write plan", (it) => {
  it.effect("a plan the reservation does not match (wrong id, wrong clock): the snapshot is built again, right", () =>
    Effect.gen(function*() {
      const c = yield* DuckLakeClient
      const p = yield* registerFresh("plan")
      const path = `${p.irodsPath}/x`
      yield* c.recordChanges({ projectId: p.projectId, actor: "alice", changes: [change(path, "k", "1")] })
      for (const skew of [{ id: 7, ms: 0 }, { id: 0, ms: -5_000 }]) {
        const wrong = overriding(Catalog, (real) => ({
          planReservation: (project) =>
            Effect.map(real.planReservation(project), (plan) => ({
              ...plan,
              snapshotId: plan.snapshotId + skew.id,
              clock: new Date(plan.clock.getTime() + skew.ms)
            }))
        }))
        const before = cacheFiles(p.projectId)
        // Past the small-batch size: only a batch DuckDB writes is planned (a small one reserves and reads at once).
        let planned = 0
        const counting = overriding(Catalog, (real) => ({
          planReservation: (project) => Effect.tap(real.planReservation(project), () => Effect.sync(() => planned++))
        }))
        const filler = Array.from({ length: SMALL_BATCH_MAX_ROWS }, (_, i) => change(`${p.irodsPath}/filler-${i}`, "k", "v"))
        const r = yield* Effect.flatMap(DuckLakeClient, (fake) =>
          fake.recordChanges({ projectId: p.projectId, actor: "alice", changes: [change(path, "k", `set-${skew.id}`, "set"), ...filler] })
        ).pipe(withFakeClient(Layer.provideMerge(wrong, counting)))
        expect(planned).toBe(1)
        expect(r).toMatchObject({ recorded: true })
        if (!r.recorded) continue
        // The file in the cache is the committed one; the early file (named for the planned id) is gone, from
        // the cache and from storage (it is never pushed before its reservation).
        const added = cacheFiles(p.projectId).filter((f) => !before.includes(f))
        expect(added).toEqual([r.parquetFile.split("/").pop()])
        const committed = (yield* c.listSnapshots(p.projectId)).map((snap) => snap.dataFile.split("/").pop()).sort()
        expect(storedFiles(p.ducklakePath)).toEqual(committed)
        const rows = yield* c.getSnapshotChanges(p.projectId, r.snapshotId)
        expect(rows.filter((x) => x.irodsPath === path).map((x) => [x.op, x.value]))
          .toEqual([["delete", before.length === 1 ? "1" : "set-7"], ["add", `set-${skew.id}`]])
        expect(rows.length).toBe(2 + SMALL_BATCH_MAX_ROWS)
      }
      expect((yield* c.getAvus(p.projectId, path)).map((a) => a.value)).toEqual(["set-0"])
      // A small batch is not planned: it reserves and reads the state at once (its file takes a fraction of a ms).
      let plans = 0
      const counted = overriding(Catalog, (real) => ({
        planReservation: (project) => Effect.tap(real.planReservation(project), () => Effect.sync(() => plans++))
      }))
      yield* Effect.flatMap(DuckLakeClient, (fake) =>
        fake.recordChanges({ projectId: p.projectId, actor: "alice", changes: [change(path, "k", "small", "set")] })
      ).pipe(withFakeClient(counted))
      expect(plans).toBe(0)
      expect((yield* c.getAvus(p.projectId, path)).map((a) => a.value)).toEqual(["small"])
      const snaps = yield* c.listSnapshots(p.projectId)
      // Snapshot times strictly increase with ids, whatever clock the plan proposed.
      const times = snaps.map((s) => s.ts.getTime()).reverse()
      expect(times.every((t, i) => i === 0 || t > times[i - 1]!)).toBe(true)
    }))
})
