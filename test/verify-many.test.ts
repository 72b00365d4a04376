/**
 * `verifyProject` over a project past snapshot 9 (ids of one and two digits): after a bulk ingest of 40 snapshots,
 * after a compaction of them, and after 12 ordinary writes, nothing is reported. Ordering the chain by the text form
 * of its ids ("10" before "2") reported every such project as tampered.
 */
import { expect, layer } from "@effect/vitest"
import { Effect } from "effect"
import { DuckLakeClient } from "../src/client/DuckLakeClient.js"
import { change, embedded, record, registerFresh } from "./support.js"

const { layer: Live } = embedded("verify-many")

layer(Live, { timeout: "300 seconds", excludeTestServices: true })("verify past snapshot 9", (it) => {
  it.effect("an ingest of 40 snapshots, its compaction, and 12 writes verify clean", () =>
    Effect.gen(function*() {
      const c = yield* DuckLakeClient
      const p = yield* registerFresh("verify-ingest")
      const changes = Array.from({ length: 4000 }, (_, i) => change(`${p.irodsPath}/o${i % 37}`, `a${i % 5}`, `v${i}`))
      const r = yield* c.ingestChanges({ projectId: p.projectId, actor: "alice", changes, snapshotSize: 100 })
      expect(r.recorded && r.snapshots.length).toBe(40)
      yield* c.flush
      expect((yield* c.verifyProject(p.projectId)).problems).toEqual([])
      yield* c.compact(p.projectId)
      expect((yield* c.verifyProject(p.projectId)).problems).toEqual([])
      const q = yield* registerFresh("verify-writes")
      for (let i = 0; i < 12; i++) yield* record(q.projectId, [change(`${q.irodsPath}/x`, "k", `v${i}`)])
      expect((yield* c.verifyProject(q.projectId)).problems).toEqual([])
    }))
})
