/**
 * Rebuild from storage alone, on a real embedded PostgreSQL and real DuckDB: no dump at all, the catalog schema and
 * the registry row gone; the Parquet files and commit markers give back the same project, the same snapshots and
 * the same answers. Orphan, duplicate, partial, foreign and tampered files are reported, never merged, never deleted.
 */
import { expect, layer } from "@effect/vitest"
import { Effect } from "effect"
import * as fs from "node:fs"
import * as nodePath from "node:path"
import { Backup } from "../src/backup/Backup.js"
import { Catalog } from "../src/catalog/Catalog.js"
import type { Project } from "../src/core/domain.js"
import { DuckLakeClient } from "../src/client/DuckLakeClient.js"
import { MARKER_DIR } from "../src/core/layout.js"
import { answers, dropCatalog, embeddedBackup, type Grid, recordHistory } from "./backup-support.js"
import { change, listTree, record, registerFresh } from "./support.js"

// These rebuilds compare the catalog row for row, which holds for snapshots that were never compacted. A chain of
// compactions rebuilds to the same answers but without the inner compactions' own snapshot rows (see
// rebuild-compacted.test.ts): this file's client does not compact automatically.
process.env.MESA_DUCKLAKE_AUTO_COMPACT_EVERY = "0"
const { dirs, layer: Live } = embeddedBackup("rebuild")

/**
 * The catalog rows a rebuild must reproduce: every DuckLake row of the data snapshots (ids, times, files, row ids,
 * statistics), the table-level statistics, and our provenance and current-state tables.
 */
const catalogRows = (p: Project) =>
  Effect.flatMap(Catalog, (catalog) =>
    catalog.withSql((sql) => {
      const s = sql(p.metadataSchema)
      return Effect.all({
        snapshots: sql`SELECT snapshot_id::int, snapshot_time, schema_version::int, next_catalog_id::int, next_file_id::int
                       FROM ${s}.ducklake_snapshot WHERE snapshot_id >= 2 ORDER BY 1`,
        changes: sql`SELECT * FROM ${s}.ducklake_snapshot_changes WHERE snapshot_id >= 2 ORDER BY snapshot_id`,
        files: sql`SELECT * FROM ${s}.ducklake_data_file ORDER BY data_file_id`,
        fileStats: sql`SELECT * FROM ${s}.ducklake_file_column_stats ORDER BY data_file_id, column_id`,
        tableStats: sql`SELECT * FROM ${s}.ducklake_table_stats`,
        columnStats: sql`SELECT * FROM ${s}.ducklake_table_column_stats ORDER BY column_id`,
        columns: sql`SELECT * FROM ${s}.ducklake_column ORDER BY column_id`,
        current: sql`SELECT * FROM ${s}.mesa_current_avus ORDER BY irods_path, attribute, value, unit`,
        mesa: sql`SELECT * FROM ${s}.mesa_snapshot ORDER BY snapshot_id`,
        metadata: sql`SELECT key, value FROM ${s}.ducklake_metadata WHERE key <> 'created_by' ORDER BY key`,
        registry: sql`SELECT project_id, irods_path, irods_zone, ducklake_path, metadata_schema, status, last_snapshot_id
                      FROM mesa_ducklake.projects WHERE project_id = ${p.projectId}`
      })
    }))

const lakeDir = (p: Project) => nodePath.join(dirs.zoneDir, p.ducklakePath)
const tableDir = (p: Project) => nodePath.join(lakeDir(p), "main/avu_changes")
const parquetFiles = (p: Project) => fs.readdirSync(tableDir(p)).filter((f) => f.endsWith(".parquet")).sort()

layer(Live, { timeout: "300 seconds", excludeTestServices: true })("rebuild from storage", (it) => {
  it.effect("no dump, no schema, no registry row: the files give back the same project, snapshots and answers", () =>
    Effect.gen(function*() {
      const backup = yield* Backup
      const client = yield* DuckLakeClient
      const p = yield* registerFresh("rebuild")
      const grid = yield* recordHistory(p)
      const before = yield* answers(p.projectId, grid)
      const rowsBefore = yield* catalogRows(p)
      yield* client.flush
      const storageBefore = listTree(lakeDir(p))
      yield* dropCatalog(p)
      expect((yield* Effect.flip(client.getProject(p.projectId)))._tag).toBe("ProjectNotFound")

      const report = yield* backup.rebuild({ root: p.irodsPath, actor: "alice" })
      expect(report.problems).toEqual([])
      expect(report).toMatchObject({
        projectId: p.projectId,
        metadataSchema: p.metadataSchema,
        written: true,
        snapshots: grid.ids.length,
        firstSnapshot: grid.ids[0],
        lastSnapshot: grid.ids[grid.ids.length - 1],
        files: grid.ids.length,
        markers: grid.ids.length,
        unconfirmedIncluded: 0
      })
      const again = yield* client.getProject(p.projectId)
      expect({ ...again, createdAt: p.createdAt }).toEqual(p)
      expect(yield* answers(p.projectId, grid)).toEqual(before)
      expect(yield* catalogRows(p)).toEqual(rowsBefore)
      expect(listTree(lakeDir(p))).toEqual(storageBefore)
      // Bootstrap snapshots precede the first data snapshot in transaction time.
      const order = yield* Effect.flatMap(Catalog, (c) =>
        c.withSql((sql) => sql<any>`SELECT snapshot_id::int AS id FROM ${sql(p.metadataSchema)}.ducklake_snapshot ORDER BY snapshot_time`))
      expect(order.map((r) => r.id)).toEqual([0, 1, ...grid.ids])
      // And the project carries on.
      const next = yield* record(p.projectId, [change(grid.paths[0]!, "after", "rebuild")])
      expect(next.snapshotId).toBe(grid.ids[grid.ids.length - 1]! + 1)
    }))

  it.effect("refuses to overwrite an existing catalog unless forced; a dry run writes nothing", () =>
    Effect.gen(function*() {
      const backup = yield* Backup
      const p = yield* registerFresh("rb-force")
      const grid = yield* recordHistory(p)
      const before = yield* answers(p.projectId, grid)
      const e = yield* Effect.flip(backup.rebuild({ root: p.irodsPath }))
      expect(e._tag).toBe("CatalogNotEmpty")
      const dry = yield* backup.rebuild({ root: p.irodsPath, dryRun: true })
      expect(dry.written).toBe(false)
      expect(dry.snapshots).toBe(grid.ids.length)
      const forced = yield* backup.rebuild({ root: p.irodsPath, force: true })
      expect(forced.snapshots).toBe(grid.ids.length)
      expect(yield* answers(p.projectId, grid)).toEqual(before)
    }))

  it.effect("orphan, duplicate, partial, foreign and tampered files are reported, never merged or deleted", () =>
    Effect.gen(function*() {
      const backup = yield* Backup
      const client = yield* DuckLakeClient
      const p = yield* registerFresh("rb-bad")
      const other = yield* registerFresh("rb-other")
      const obj = `${p.irodsPath}/x`
      const ids: Array<number> = []
      for (let i = 0; i < 6; i++) ids.push((yield* record(p.projectId, [change(obj, "n", String(i))])).snapshotId)
      yield* record(other.projectId, [change(`${other.irodsPath}/y`, "owner", "B")])
      yield* client.flush
      const files = parquetFiles(p)
      const marker = (id: number) => nodePath.join(lakeDir(p), MARKER_DIR, `snapshot_${String(id).padStart(10, "0")}.json`)
      const [s2, s3, s4, s5, s6, s7] = ids as [number, number, number, number, number, number]
      // s3: its marker lost (the writer died before writing it) → an orphan, not committed by default.
      fs.rmSync(marker(s3))
      // s2: a second file claiming the same snapshot id (a copy) → duplicate; the marker's own file is committed.
      fs.copyFileSync(nodePath.join(tableDir(p), files[0]!), nodePath.join(tableDir(p), `snapshot_${String(s2).padStart(10, "0")}_deadbeef.parquet`))
      // s4: its file gone while its marker stays → marker without file.
      fs.rmSync(nodePath.join(tableDir(p), files[2]!))
      // s5: the marker's checksum disagrees with the stored bytes → checksum mismatch.
      const m5 = JSON.parse(fs.readFileSync(marker(s5), "utf8"))
      fs.writeFileSync(marker(s5), JSON.stringify({ ...m5, checksum: "sha2:" + Buffer.alloc(32, 7).toString("base64") }))
      // A partial upload (truncated Parquet) and a file of another project.
      const partial = nodePath.join(tableDir(p), "snapshot_0000000099_cafebabe.parquet")
      fs.writeFileSync(partial, fs.readFileSync(nodePath.join(tableDir(p), files[4]!)).subarray(0, 200))
      const foreign = parquetFiles(other)[0]!
      fs.copyFileSync(nodePath.join(tableDir(other), foreign), nodePath.join(tableDir(p), `snapshot_0000000098_0badf00d.parquet`))
      const storageBefore = listTree(lakeDir(p))

      yield* dropCatalog(p)
      const report = yield* backup.rebuild({ root: p.irodsPath })
      const kinds = report.problems.map((x) => `${x.kind}:${"snapshotId" in x ? x.snapshotId : ""}`).sort()
      expect(kinds).toEqual([
        // The hash chain notices what is left out: snapshot 6's marker links to a record the rebuild could not keep.
        `chain-mismatch:${s6}`,
        `checksum-mismatch:${s5}`,
        `duplicate-snapshot:${s2}`,
        "foreign-project:",
        `marker-without-file:${s4}`,
        `no-marker:${s3}`,
        "unreadable:"
      ].sort())
      expect(report.problems.find((x) => x.kind === "foreign-project")).toMatchObject({ projectId: other.projectId })
      expect(report.problems.find((x) => x.kind === "unreadable")).toMatchObject({ file: nodePath.basename(partial) })
      // Only the confirmed snapshots are in; nothing of the other project.
      const snaps = (yield* client.listSnapshots(p.projectId)).map((s) => s.snapshotId).sort((a, b) => a - b)
      expect(snaps).toEqual([s2, s6, s7])
      expect((yield* client.getHistory(p.projectId, { limit: 100 })).map((r) => r.value).sort()).toEqual(["0", "4", "5"])
      expect(listTree(lakeDir(p))).toEqual(storageBefore)

      // Opting in takes the clean orphan too (still reported); ids seen anywhere are never handed out again.
      const withOrphans = yield* backup.rebuild({ root: p.irodsPath, force: true, includeUnconfirmed: true })
      expect(withOrphans.unconfirmedIncluded).toBe(1)
      expect((yield* client.listSnapshots(p.projectId)).map((s) => s.snapshotId).sort((a, b) => a - b)).toEqual([s2, s3, s6, s7])
      const next = yield* record(p.projectId, [change(obj, "n", "after")])
      expect(next.snapshotId).toBe(100)
      expect(listTree(lakeDir(p)).filter((f) => !f.includes(String(next.snapshotId)))).toEqual(storageBefore)
    }))

  it.effect("a root registered to another project is refused", () =>
    Effect.gen(function*() {
      const backup = yield* Backup
      const p = yield* registerFresh("rb-taken")
      yield* record(p.projectId, [change(`${p.irodsPath}/x`, "a", "1")])
      yield* dropCatalog(p)
      const squatter = yield* Effect.flatMap(DuckLakeClient, (c) => c.registerProject({ irodsPath: p.irodsPath, actor: "mallory" }))
      const e = yield* Effect.flip(backup.rebuild({ root: p.irodsPath }))
      expect(e._tag).toBe("CatalogNotEmpty")
      if (e._tag === "CatalogNotEmpty") expect(e.reason).toBe("root-registered-to-another-project")
      expect(squatter.projectId).not.toBe(p.projectId)
    }))

  it.effect("scale: 200 snapshots rebuilt, answers equal (timed)", () =>
    Effect.gen(function*() {
      const backup = yield* Backup
      const p = yield* registerFresh("rb-scale")
      for (let i = 0; i < 200; i++) {
        yield* record(p.projectId, [
          change(`${p.irodsPath}/f${i % 17}`, "n", String(i), "set"),
          change(`${p.irodsPath}/f${(i * 7) % 17}`, `k${i % 5}`, String(i), "add", { ts: new Date(Date.UTC(2020, 0, 1 + i)) })
        ])
      }
      const grid: Grid = {
        paths: [0, 3, 16].map((i) => `${p.irodsPath}/f${i}`),
        times: ["2020-03-01T00:00:00Z", "2999-01-01T00:00:00Z"],
        knownAts: [undefined, 50, 150],
        ids: []
      }
      const before = yield* answers(p.projectId, grid)
      const rowsBefore = yield* catalogRows(p)
      yield* dropCatalog(p)
      const t0 = Date.now()
      const report = yield* backup.rebuild({ root: p.irodsPath })
      const ms = Date.now() - t0
      expect(report.snapshots).toBe(200)
      expect(report.problems).toEqual([])
      expect(yield* catalogRows(p)).toEqual(rowsBefore)
      expect(yield* answers(p.projectId, grid)).toEqual(before)
      console.log(`rebuild: ${report.snapshots} snapshots, ${report.rows} rows, ${report.bytes} bytes in ${ms} ms`)
    }))
})
