/**
 * A compaction merges on a DuckDB instance of its own (one thread, made for the merge and closed after it), so what
 * the merge allocates is given back and the client's own instance is not even started by it.
 */
import { expect, layer } from "@effect/vitest"
import { Effect } from "effect"
import { DuckDb } from "../src/duckdb/DuckDb.js"
import { DuckLakeClient } from "../src/client/DuckLakeClient.js"
import { change, embedded, registerFresh } from "./support.js"

const { layer: Live } = embedded("compaction-instance")

layer(Live, { timeout: "120 seconds", excludeTestServices: true })("compaction instance", (it) => {
  it.effect("a compaction leaves the client's DuckDB unstarted, and the merged file answers", () =>
    Effect.gen(function*() {
      const c = yield* DuckLakeClient
      const duck = yield* DuckDb
      const p = yield* registerFresh("compaction-instance")
      for (let i = 0; i < 6; i++) {
        yield* c.recordChanges({ projectId: p.projectId, actor: "alice", changes: [change(`${p.irodsPath}/o${i % 3}.dat`, "a", `v${i}`)] })
      }
      // Small batches are written without DuckDB.
      expect(yield* duck.started).toBe(false)
      const report = yield* c.compact(p.projectId, { minFiles: 2 })
      expect(report.filesWritten).toBe(1)
      expect(report.filesAfter).toBe(1)
      expect(yield* duck.started).toBe(false)
      // Read back (this starts the client's instance): every AVU the six snapshots left on o1.
      const avus = yield* c.getAvusAsOf(p.projectId, `${p.irodsPath}/o1.dat`, "9999-12-31T00:00:00Z")
      expect(avus.map((a) => a.value).sort()).toEqual(["v1", "v4"])
      expect(yield* duck.started).toBe(true)
    }))
})
