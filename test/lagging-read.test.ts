/**
 * `getAvus` while the current-state index lags a bulk ingest: the index holds every change through its mark, so the
 * answer is the latest change of each triple among what it holds of the path and the path's changes after the mark,
 * read from the files of the snapshots after the mark alone. It must equal the answer from every file, with
 * deletes, `set`s, re-adds and back-dated changes after the mark.
 */
import { expect, layer } from "@effect/vitest"
import { Effect } from "effect"
import { Catalog } from "../src/catalog/Catalog.js"
import { DuckLakeClient, make as makeClient } from "../src/client/DuckLakeClient.js"
import { DuckDb } from "../src/duckdb/DuckDb.js"
import { overriding } from "./faults.js"
import { change, embedded, registerFresh, withFakeClient } from "./support.js"

const { layer: Live } = embedded("lagging-read")

const at = (iso: string) => new Date(iso)

layer(Live, { timeout: "300 seconds", excludeTestServices: true })("getAvus while the index lags", (it) => {
  it.scoped("index through its mark + the files after it = every file's answer; only the later files are read", () =>
    Effect.gen(function*() {
      const c = yield* DuckLakeClient
      const catalog = yield* Catalog
      const p = yield* registerFresh("lag")
      const path = (i: number) => `${p.irodsPath}/o${i}`
      // Indexed: three snapshots of ordinary writes.
      yield* c.recordChanges({ projectId: p.projectId, actor: "alice", changes: [
        change(path(1), "k", "a", "add", { ts: at("2026-01-01T00:00:00Z") }),
        change(path(1), "k", "b", "add", { ts: at("2026-01-02T00:00:00Z") }),
        change(path(2), "k", "x", "add", { ts: at("2026-01-01T00:00:00Z") }),
        change(path(3), "color", "red", "add", { unit: "rgb", ts: at("2026-01-01T00:00:00Z") })
      ] })
      yield* c.recordChanges({ projectId: p.projectId, actor: "alice", changes: [
        change(path(2), "k", "gone", "add", { ts: at("2026-01-03T00:00:00Z") }),
        change(path(2), "k", "gone", "delete", { ts: at("2026-01-04T00:00:00Z") })
      ] })
      yield* c.recordChanges({ projectId: p.projectId, actor: "alice", changes: [change(path(4), "z", "1")] })
      // Then an ingest that leaves the index behind (its mark at the last indexed snapshot).
      const lazy = yield* makeClient({ catchUpAfterIngest: false })
      yield* lazy.ingestChanges({ projectId: p.projectId, actor: "bob", snapshotSize: 2, changes: [
        // A delete of an indexed AVU, and a set that replaces both indexed values with one.
        change(path(1), "k", "a", "delete", { ts: at("2026-02-01T00:00:00Z") }),
        change(path(1), "k", "c", "set", { ts: at("2026-02-02T00:00:00Z") }),
        // Back-dated: an add older than the indexed delete of the same triple stays deleted.
        change(path(2), "k", "gone", "add", { ts: at("2026-01-03T12:00:00Z") }),
        // A re-add after the indexed delete, later in valid time: present again.
        change(path(2), "k", "back", "add", { ts: at("2026-02-03T00:00:00Z") }),
        // An AVU only in the later files, and a path the index never saw.
        change(path(3), "size", "9", "add", { unit: "mm", ts: at("2026-02-04T00:00:00Z") }),
        change(path(5), "new", "v", "add", { ts: at("2026-02-05T00:00:00Z") }),
        // Deleted and added again within the later snapshots.
        change(path(4), "z", "1", "delete", { ts: at("2026-03-01T00:00:00Z") }),
        change(path(4), "z", "1", "add", { ts: at("2026-03-02T00:00:00Z") })
      ] })
      const through = yield* catalog.indexThrough(p)
      expect(through).not.toBeNull()
      const total = (yield* catalog.files(p, {})).length
      const later = (yield* catalog.files(p, { afterSnapshot: through! })).length
      expect(later).toBeLessThan(total)
      // The reading client records how many files each DuckDB read was given.
      const given: Array<number> = []
      const counting = overriding(DuckDb, (real) => ({
        changes: (files, filter, options) => Effect.zipRight(Effect.sync(() => given.push(files.length)), real.changes(files, filter, options))
      }))
      const values = (avus: ReadonlyArray<{ attribute: string; value: string; unit: string }>) =>
        avus.map((a) => `${a.attribute}=${a.value}${a.unit === "" ? "" : ` ${a.unit}`}`)
      const lagging = yield* Effect.flatMap(DuckLakeClient, (reader) =>
        Effect.forEach([1, 2, 3, 4, 5, 6], (i) => reader.getAvus(p.projectId, path(i)))).pipe(withFakeClient(counting))
      expect(lagging.map(values)).toEqual([["k=c"], ["k=back", "k=x"], ["color=red rgb", "size=9 mm"], ["z=1"], ["new=v"], []])
      // o6 is in no later file (its path statistics rule every one out): no DuckDB read at all for it.
      expect(given.length).toBe(5)
      for (const n of given) expect(n).toBeLessThanOrEqual(later)
      // The same as the answer from every file, field by field.
      for (const i of [1, 2, 3, 4, 5, 6]) {
        expect(lagging[i - 1]).toEqual(yield* c.getAvusAsOf(p.projectId, path(i), new Date(8e12)))
      }
      // And the same once the index has caught up.
      yield* c.catchUpIndex(p.projectId)
      expect(yield* catalog.indexThrough(p)).toBeNull()
      for (const i of [1, 2, 3, 4, 5, 6]) expect(yield* c.getAvus(p.projectId, path(i))).toEqual(lagging[i - 1])
    }))
})
