/**
 * The commit is one round trip built on what the reservation read (the latest snapshot, the table's counters). Its
 * guard, checked by the commit statement itself under the table lock, refuses to build on a basis that no longer
 * holds: another DuckLake writer (the extension, say) committed in between, or the current-state index fell behind.
 * A refused commit leaves nothing of the snapshot behind, and the write is failed (its id is never reused).
 */
import { expect, layer } from "@effect/vitest"
import { Effect, Layer } from "effect"
import * as fs from "node:fs"
import * as nodePath from "node:path"
import { Catalog } from "../src/catalog/Catalog.js"
import { INDEX_THROUGH_KEY } from "../src/catalog/currentState.js"
import { DuckLakeClient } from "../src/client/DuckLakeClient.js"
import type { Project } from "../src/core/domain.js"
import { overriding } from "./faults.js"
import { change, embedded, registerFresh, withFakeClient } from "./support.js"

const { dirs, layer: Live } = embedded("commit-guard")

/** A catalog whose commit runs `before` (on the catalog, outside the commit) right before the real commit. */
const meddling = (before: (project: Project) => Effect.Effect<void, unknown>) =>
  overriding(Catalog, (real) => ({
    commitSnapshot: (project, ...rest) => Effect.zipRight(Effect.orDie(before(project)), real.commitSnapshot(project, ...rest))
  }))

/** What the catalog holds of a snapshot id, table by table. */
const traces = (p: Project, snapshotId: number) =>
  Effect.flatMap(Catalog, (catalog) =>
    catalog.withSql((sql) =>
      sql<{ files: string; ours: string; changes: string; wal: string }>`
        SELECT (SELECT count(*) FROM ${sql(p.metadataSchema)}.ducklake_data_file WHERE begin_snapshot = ${snapshotId})::text AS files,
               (SELECT count(*) FROM ${sql(p.metadataSchema)}.mesa_snapshot WHERE snapshot_id = ${snapshotId})::text AS ours,
               (SELECT count(*) FROM ${sql(p.metadataSchema)}.ducklake_snapshot_changes WHERE snapshot_id = ${snapshotId})::text AS changes,
               (SELECT state FROM mesa_ducklake.pending_writes WHERE project_id = ${p.projectId} AND snapshot_id = ${snapshotId}) AS wal`
    ))

layer(Live, { timeout: "300 seconds", excludeTestServices: true })("commit guard", (it) => {
  it.effect("another DuckLake writer commits between reservation and commit: refused, nothing half-written", () =>
    Effect.gen(function*() {
      const c = yield* DuckLakeClient
      const catalog = yield* Catalog
      const p = yield* registerFresh("guard")
      const path = `${p.irodsPath}/x`
      yield* c.recordChanges({ projectId: p.projectId, actor: "alice", changes: [change(path, "k", "1")] })
      // Ids handed out but never committed (failed writes) leave a gap: the next reservation is not latest + 1, so
      // only the guard (not the snapshot's primary key) can notice a foreign snapshot committed meanwhile.
      yield* catalog.withSql((sql) =>
        sql`UPDATE mesa_ducklake.projects SET last_snapshot_id = last_snapshot_id + 5 WHERE project_id = ${p.projectId}`
      )
      const foreign = meddling((project) =>
        catalog.withSql((sql) =>
          sql`INSERT INTO ${sql(project.metadataSchema)}.ducklake_snapshot
              SELECT max(snapshot_id) + 1, now(), max(schema_version), max(next_catalog_id), max(next_file_id)
              FROM ${sql(project.metadataSchema)}.ducklake_snapshot`
        )
      )
      const e = yield* Effect.flip(Effect.flatMap(DuckLakeClient, (fake) =>
        fake.recordChanges({ projectId: p.projectId, actor: "alice", changes: [change(path, "k", "2")] })
      ).pipe(withFakeClient(foreign)))
      expect(e._tag).toBe("CatalogError")
      expect(String((e as any).cause?.cause?.message ?? e.message)).toMatch(/was committed meanwhile/)
      // The refused snapshot: no DuckLake rows, no provenance, its write-ahead row failed, its file gone.
      const [reserved] = yield* catalog.withSql((sql) =>
        sql<{ id: string }>`SELECT max(snapshot_id)::text AS id FROM mesa_ducklake.pending_writes WHERE project_id = ${p.projectId}`
      )
      const id = Number(reserved!.id)
      expect(yield* traces(p, id)).toEqual([{ files: "0", ours: "0", changes: "0", wal: "failed" }])
      const stored = fs.readdirSync(nodePath.join(dirs.zoneDir, p.ducklakePath, "main", "avu_changes"))
      expect(stored.some((f) => f.startsWith(`snapshot_${String(id).padStart(10, "0")}_`))).toBe(false)
      expect((yield* c.getAvus(p.projectId, path)).map((a) => a.value)).toEqual(["1"])
    }))

  it.effect("the current-state index falls behind between reservation and commit: refused", () =>
    Effect.gen(function*() {
      const catalog = yield* Catalog
      const p = yield* registerFresh("guard-index")
      const path = `${p.irodsPath}/x`
      const behind = meddling((project) =>
        catalog.withSql((sql) =>
          sql`INSERT INTO ${sql(project.metadataSchema)}.ducklake_metadata (key, value, scope, scope_id)
              VALUES (${INDEX_THROUGH_KEY}, '0', NULL, NULL)`
        )
      )
      const e = yield* Effect.flip(Effect.flatMap(DuckLakeClient, (fake) =>
        fake.recordChanges({ projectId: p.projectId, actor: "alice", changes: [change(path, "k", "1")] })
      ).pipe(withFakeClient(behind)))
      expect(e._tag).toBe("CatalogError")
      expect(String((e as any).cause?.cause?.message ?? e.message)).toMatch(/current-state index is behind/)
      const snaps = yield* Effect.flatMap(DuckLakeClient, (c) => c.listSnapshots(p.projectId))
      expect(snaps).toEqual([])
    }))

  it.effect("a project archived by another client while this one holds it in memory: the reservation refuses", () =>
    Effect.gen(function*() {
      const c = yield* DuckLakeClient
      const catalog = yield* Catalog
      const p = yield* registerFresh("guard-archived")
      const path = `${p.irodsPath}/x`
      const write = (value: string) => c.recordChanges({ projectId: p.projectId, actor: "alice", changes: [change(path, "k", value)] })
      yield* write("1")
      const other = (status: "active" | "archived") =>
        Effect.flatMap(DuckLakeClient, (o) => o.setProjectStatus(p.projectId, status)).pipe(withFakeClient(Layer.empty))
      yield* other("archived")
      const walBefore = (yield* catalog.pendingWrites({ limit: 1000 })).filter((w) => w.projectId === p.projectId)
      const e = yield* Effect.flip(write("2"))
      expect(e._tag).toBe("ProjectArchived")
      // Nothing was reserved for the refused write.
      expect((yield* catalog.pendingWrites({ limit: 1000 })).filter((w) => w.projectId === p.projectId)).toEqual(walBefore)
      yield* other("active")
      expect(yield* write("3")).toMatchObject({ recorded: true })
      expect((yield* c.getHistory(p.projectId)).map((h) => h.value).sort()).toEqual(["1", "3"])
    }))
})
