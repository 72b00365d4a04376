/**
 * The DuckLakeClient end to end on a real embedded PostgreSQL, real DuckDB and a real directory standing in for the
 * iRODS zone: every method, the iRODS `set` semantics, both clocks, and the catalog layout.
 */
import { describe, expect, layer } from "@effect/vitest"
import { Effect, Either, Layer, Option, Redacted } from "effect"
import pg from "pg"
import * as fs from "node:fs"
import { Catalog } from "../src/catalog/Catalog.js"
import { CHAIN_FILE_INDEX, COLUMNS, CURRENT_FILLFACTOR } from "../src/catalog/ducklakeSchema.js"
import { DuckDb } from "../src/duckdb/DuckDb.js"
import { DuckLakeClient } from "../src/client/DuckLakeClient.js"
import { LakeStorage } from "../src/storage/LakeStorage.js"
import { EmbeddedPostgres } from "../src/postgres/EmbeddedPostgres.js"
import { change, embedded, fetchLocal, freshRoot, record, registerFresh, withFakeClient } from "./support.js"

const triples = (avus: ReadonlyArray<{ attribute: string; value: string; unit: string }>) =>
  avus.map((a) => `${a.attribute}=${a.value}${a.unit ? `[${a.unit}]` : ""}`).sort()

/** The storage options of a lake's index table (`reloptions`; null when none is set). */
const indexTableOptions = (p: { readonly metadataSchema: string }) =>
  Effect.flatMap(Catalog, (catalog) =>
    catalog.withSql((sql) =>
      sql<any>`SELECT reloptions FROM pg_class WHERE oid = to_regclass(${`"${p.metadataSchema}".mesa_current_avus`})`
    )).pipe(Effect.map((rows) => (rows[0]?.reloptions ?? null) as ReadonlyArray<string> | null))

/** The whole suite runs over both storages: the mounted zone and the native iRODS client (against the fake). */
for (const kind of ["mounted", "irods"] as const) {
const { layer: Live } = embedded("client", kind)
layer(Live, { timeout: "120 seconds", excludeTestServices: true })(`DuckLakeClient over ${kind} storage`, (it) => {
  describe("projects", () => {
    it.effect("registers a project with its own DuckLake schema and lake collection", () =>
      Effect.gen(function*() {
        const client = yield* DuckLakeClient
        const root = freshRoot("reg")
        const p = yield* client.registerProject({ irodsPath: root + "/", actor: "alice" })
        expect(p.irodsPath).toBe(root)
        expect(p.irodsZone).toBe("testZone")
        expect(p.ducklakePath).toBe(`${root}/.mesa/ducklake`)
        expect(p.createdBy).toBe("alice")
        expect(p.status).toBe("active")
        expect(p.metadataSchema).toMatch(/^lake_[0-9a-f]{32}$/)
        const lakeDir = yield* (yield* LakeStorage).stat(`${root}/.mesa/ducklake/main/avu_changes`)
        expect(Option.map(lakeDir, (e) => e.type)).toEqual(Option.some("collection"))
        expect(yield* client.getProject(p.projectId)).toEqual(p)
        const catalog = yield* Catalog
        const meta = yield* catalog.withSql((sql) =>
          sql<any>`SELECT key, value FROM ${sql(p.metadataSchema)}.ducklake_metadata ORDER BY key`
        )
        const m = Object.fromEntries(meta.map((r) => [r.key, r.value]))
        expect(m.version).toBe("1.0")
        expect(m.data_path).toBe(`${root}/.mesa/ducklake/`)
        expect(m.encrypted).toBe("false")
        const tables = yield* catalog.withSql((sql) =>
          sql<any>`SELECT count(*)::int AS n FROM information_schema.tables
                   WHERE table_schema = ${p.metadataSchema} AND table_name LIKE 'ducklake_%'`
        )
        expect(tables[0].n).toBe(28)
        const cols = yield* catalog.withSql((sql) =>
          sql<any>`SELECT column_id::int AS id, column_name AS name FROM ${sql(p.metadataSchema)}.ducklake_column ORDER BY 1`
        )
        expect(cols).toEqual(COLUMNS.map((c) => ({ id: c.id, name: c.name })))
      }))

    it.effect("refuses duplicate, nested and containing roots", () =>
      Effect.gen(function*() {
        const client = yield* DuckLakeClient
        const outer = freshRoot("nest")
        const root = `${outer}/project`
        const p = yield* client.registerProject({ irodsPath: root, actor: "alice" })
        for (
          const [path, relation] of [[root, "duplicate"], [`${root}//`, "duplicate"], [`${root}/sub`, "nested-inside"], [outer, "contains"]] as const
        ) {
          const e = yield* Effect.flip(client.registerProject({ irodsPath: path, actor: "bob" }))
          expect(e._tag).toBe("ProjectConflict")
          if (e._tag === "ProjectConflict") {
            expect(e.relation).toBe(relation)
            expect(e.existingProjectId).toBe(p.projectId)
          }
        }
        // A sibling whose name merely starts with the root's name is not nested.
        const sibling = yield* client.registerProject({ irodsPath: `${root}-sibling`, actor: "bob" })
        expect(sibling.projectId).not.toBe(p.projectId)
      }))

    it.effect("finds the project containing a path, and only that one", () =>
      Effect.gen(function*() {
        const client = yield* DuckLakeClient
        const p = yield* registerFresh("find")
        expect((yield* client.findProjectByPath(p.irodsPath)).projectId).toBe(p.projectId)
        expect((yield* client.findProjectByPath(`${p.irodsPath}/a/b/c.txt`)).projectId).toBe(p.projectId)
        expect((yield* client.findProjectByPath(`${p.irodsPath}/a/`)).projectId).toBe(p.projectId)
        const miss = yield* Effect.flip(client.findProjectByPath(`${p.irodsPath}x/file`))
        expect(miss._tag).toBe("ProjectNotFound")
        const other = yield* Effect.flip(client.findProjectByPath(`/elsewhere/x`))
        expect(other._tag).toBe("ProjectNotFound")
        const listed = yield* client.listProjects
        expect(listed.map((x) => x.projectId)).toContain(p.projectId)
      }))

    it.effect("unknown project ids are ProjectNotFound", () =>
      Effect.gen(function*() {
        const client = yield* DuckLakeClient
        for (const id of ["00000000-0000-4000-8000-000000000000", "not-a-uuid", "'; DROP TABLE x; --"]) {
          const e = yield* Effect.flip(client.getProject(id))
          expect(e._tag).toBe("ProjectNotFound")
          const e2 = yield* Effect.flip(client.getAvus(id, "/testZone/x"))
          expect(e2._tag).toBe("ProjectNotFound")
        }
      }))

    it.effect("the chain's file index and the index table's fill factor come with a new lake and are added once to a lake made without them", () =>
      Effect.gen(function*() {
        const client = yield* DuckLakeClient
        const catalog = yield* Catalog
        const p = yield* registerFresh("chain-index")
        for (let i = 0; i < 3; i++) yield* record(p.projectId, [change(`${p.irodsPath}/a.txt`, "k", `v${i}`)])
        const index = catalog.withSql((sql) =>
          sql<any>`SELECT indexdef FROM pg_indexes WHERE schemaname = ${p.metadataSchema} AND indexname = ${CHAIN_FILE_INDEX}`
        ).pipe(Effect.map((rows) => rows.map((r) => r.indexdef as string)))
        expect((yield* index)[0]).toContain("(data_file_id)")
        const options = indexTableOptions(p)
        expect(yield* options).toEqual([`fillfactor=${CURRENT_FILLFACTOR}`])
        const before = yield* client.getAvusAsOf(p.projectId, `${p.irodsPath}/a.txt`, new Date())
        yield* catalog.withSql((sql) => sql`DROP INDEX ${sql(p.metadataSchema)}.${sql(CHAIN_FILE_INDEX)}`)
        yield* catalog.withSql((sql) => sql`ALTER TABLE ${sql(p.metadataSchema)}.mesa_current_avus RESET (fillfactor)`)
        expect(yield* index).toEqual([])
        expect(yield* options).toBeNull()
        // Clients that have not used the lake yet add it on first use; two at once make one index, both answer.
        const [asOf, current] = yield* Effect.all([
          Effect.flatMap(DuckLakeClient, (c) => c.getAvusAsOf(p.projectId, `${p.irodsPath}/a.txt`, new Date()))
            .pipe(withFakeClient(Layer.empty)),
          Effect.flatMap(DuckLakeClient, (c) => c.getAvus(p.projectId, `${p.irodsPath}/a.txt`))
            .pipe(withFakeClient(Layer.empty))
        ], { concurrency: 2 })
        expect(yield* index).toHaveLength(1)
        expect(yield* options).toEqual([`fillfactor=${CURRENT_FILLFACTOR}`])
        // A fill factor chosen by someone else is kept.
        yield* catalog.withSql((sql) => sql`ALTER TABLE ${sql(p.metadataSchema)}.mesa_current_avus SET (fillfactor = 85)`)
        yield* Effect.flatMap(DuckLakeClient, (c) => c.getAvus(p.projectId, `${p.irodsPath}/a.txt`)).pipe(withFakeClient(Layer.empty))
        expect(yield* options).toEqual(["fillfactor=85"])
        expect(asOf).toEqual(before)
        expect(triples(current)).toEqual(triples(before))
        expect(before.map((a) => a.value)).toEqual(["v0", "v1", "v2"])
      }))

    it.effect("a lake whose index table another session holds (a VACUUM, say) is used at once and tuned by a later client", () =>
      Effect.gen(function*() {
        const catalog = yield* Catalog
        const p = yield* registerFresh("tune-held")
        yield* record(p.projectId, [change(`${p.irodsPath}/a.txt`, "k", "v")])
        const options = indexTableOptions(p)
        yield* catalog.withSql((sql) => sql`ALTER TABLE ${sql(p.metadataSchema)}.mesa_current_avus RESET (fillfactor)`)
        const use = Effect.flatMap(DuckLakeClient, (c) =>
          Effect.zipRight(
            c.recordChanges({ projectId: p.projectId, actor: "t", changes: [change(`${p.irodsPath}/a.txt`, "k", "w")] }),
            c.getAvus(p.projectId, `${p.irodsPath}/a.txt`)
          )).pipe(withFakeClient(Layer.empty))
        // The lock a VACUUM takes, held by a session of its own while a new client writes and reads.
        const server = yield* EmbeddedPostgres
        const [held, ms] = yield* Effect.acquireUseRelease(
          Effect.promise(async () => {
            const session = new pg.Client({ connectionString: Redacted.value(server.dsn) })
            await session.connect()
            await session.query(`BEGIN; LOCK TABLE "${p.metadataSchema}".mesa_current_avus IN SHARE UPDATE EXCLUSIVE MODE`)
            return session
          }),
          () =>
            Effect.gen(function*() {
              const t = Date.now()
              const avus = yield* use
              return [avus, Date.now() - t] as const
            }),
          (session) => Effect.promise(() => session.query("ROLLBACK").then(() => session.end()))
        )
        expect(held.map((a) => a.value).sort()).toEqual(["v", "w"])
        expect(ms).toBeLessThan(15_000)
        expect(yield* options).toBeNull()
        // Released: the next client's first use tunes it.
        yield* use
        expect(yield* options).toEqual([`fillfactor=${CURRENT_FILLFACTOR}`])
      }))
  })

  describe("recordChanges", () => {
    it.effect("commits one self-describing Parquet file per snapshot, inside the project", () =>
      Effect.gen(function*() {
        const p = yield* registerFresh("write")
        const obj = `${p.irodsPath}/data/a.csv`
        const r = yield* record(p.projectId, [change(obj, "k", "v"), change(obj, "k2", "v2", "add", { unit: "m" })], "bob", "first")
        expect(r.snapshotId).toBe(2)
        expect(r.changeCount).toBe(2)
        expect(r.replayed).toBe(false)
        const file = yield* fetchLocal(`${p.ducklakePath}/${r.parquetFile}`)
        const duck = yield* DuckDb
        const kv = yield* duck.fileMetadata(file)
        expect(kv.snapshot_id).toBe("2")
        expect(kv.project_id).toBe(p.projectId)
        expect(kv.author).toBe("bob")
        expect(kv.commit_message).toBe("first")
        const schema = yield* duck.query(
          `SELECT name, CAST(field_id AS INTEGER) AS field_id FROM parquet_schema('${file}') WHERE field_id IS NOT NULL`
        )
        expect(schema.map((s) => [s.name, s.field_id])).toEqual(COLUMNS.map((c) => [c.name, c.id]))
        // A small batch is written by our own Parquet writer, uncompressed (compaction rewrites files with zstd).
        const meta = yield* duck.query(
          `SELECT DISTINCT compression, created_by FROM parquet_metadata('${file}'), parquet_file_metadata('${file}')`
        )
        expect(meta.map((m) => [m.compression, m.created_by])).toEqual([["UNCOMPRESSED", "mesa-ducklake"]])
        // The catalog's file row matches the file exactly.
        const catalog = yield* Catalog
        const [row] = yield* catalog.withSql((sql) =>
          sql<any>`SELECT path, record_count::int AS n, file_size_bytes::int AS size, row_id_start::int AS r,
                          begin_snapshot::int AS b FROM ${sql(p.metadataSchema)}.ducklake_data_file`
        )
        expect(row).toEqual({ path: r.parquetFile.split("/").pop(), n: 2, size: fs.statSync(file).size, r: 0, b: 2 })
        const [change0] = yield* catalog.withSql((sql) =>
          sql<any>`SELECT changes_made, author, commit_message FROM ${sql(p.metadataSchema)}.ducklake_snapshot_changes
                   WHERE snapshot_id = 2`
        )
        expect(change0).toEqual({ changes_made: "inserted_into_table:1", author: "bob", commit_message: "first" })
        const r2 = yield* record(p.projectId, [change(obj, "k3", "v3")])
        expect(r2.snapshotId).toBe(3)
        const [row2] = yield* catalog.withSql((sql) =>
          sql<any>`SELECT row_id_start::int AS r FROM ${sql(p.metadataSchema)}.ducklake_data_file WHERE begin_snapshot = 3`
        )
        expect(row2.r).toBe(2)
        // Its commit marker is in storage (written in the background): what a rebuild from storage alone trusts.
        yield* (yield* DuckLakeClient).flush
        const marker = JSON.parse(fs.readFileSync(yield* fetchLocal(`${p.ducklakePath}/_mesa_log/snapshot_0000000002.json`), "utf8"))
        expect(marker).toMatchObject({ format: "mesa-ducklake-commit/1", projectId: p.projectId, snapshotId: 2, fileName: r.parquetFile.split("/").pop(), recordCount: 2, actor: "bob", note: "first" })
        const snaps = yield* (yield* DuckLakeClient).listSnapshots(p.projectId)
        expect(marker.snapshotTime).toBe(snaps.find((x) => x.snapshotId === 2)!.ts.toISOString())
        // Nothing is left in the write-ahead log.
        const wal = yield* catalog.pendingWrites({ limit: 10 })
        expect(wal.filter((w) => w.projectId === p.projectId)).toEqual([])
      }))

    it.effect("set replaces every value of the attribute, recorded as explicit deletes plus the add", () =>
      Effect.gen(function*() {
        const client = yield* DuckLakeClient
        const p = yield* registerFresh("set")
        const obj = `${p.irodsPath}/x`
        yield* record(p.projectId, [
          change(obj, "color", "red"),
          change(obj, "color", "blue", "add", { unit: "u" }),
          change(obj, "size", "3")
        ])
        const r = yield* record(p.projectId, [change(obj, "color", "green", "set")])
        expect(r.changeCount).toBe(3)
        expect(triples(yield* client.getAvus(p.projectId, obj))).toEqual(["color=green", "size=3"])
        const hist = yield* client.getHistory(p.projectId, { irodsPath: obj, attribute: "color", limit: 3 })
        expect(hist.map((h) => `${h.op}:${h.value}${h.unit}`)).toEqual(["add:green", "delete:red", "delete:blueu"])
        // set of a value already present (and alone) records nothing but keeps it; within a batch, order counts.
        const r2 = yield* record(p.projectId, [change(obj, "color", "green", "set"), change(obj, "color", "pink", "add")])
        expect(r2.changeCount).toBe(1)
        const r3 = yield* record(p.projectId, [change(obj, "color", "black", "set")])
        expect(r3.changeCount).toBe(3)
        expect(triples(yield* client.getAvus(p.projectId, obj))).toEqual(["color=black", "size=3"])
      }))

    it.effect("a delete must match the full triple: a unit mismatch is reported, not silently ignored", () =>
      Effect.gen(function*() {
        const client = yield* DuckLakeClient
        const p = yield* registerFresh("del")
        const obj = `${p.irodsPath}/x`
        yield* record(p.projectId, [change(obj, "depth", "10", "add", { unit: "cm" })])
        const r = yield* record(p.projectId, [change(obj, "depth", "10", "delete", { unit: "m" })])
        expect(r.unmatchedDeletes).toBe(1)
        expect(triples(yield* client.getAvus(p.projectId, obj))).toEqual(["depth=10[cm]"])
        const r2 = yield* record(p.projectId, [change(obj, "depth", "10", "delete", { unit: "cm" })])
        expect(r2.unmatchedDeletes).toBe(0)
        expect(yield* client.getAvus(p.projectId, obj)).toEqual([])
      }))

    it.effect("an idempotency key replays an identical batch and refuses a different one", () =>
      Effect.gen(function*() {
        const client = yield* DuckLakeClient
        const p = yield* registerFresh("idem")
        const batch = [change(`${p.irodsPath}/x`, "a", "1")]
        const first = yield* client.recordChanges({ projectId: p.projectId, actor: "a", changes: batch, idempotencyKey: "k1" })
        const again = yield* client.recordChanges({ projectId: p.projectId, actor: "a", changes: batch, idempotencyKey: "k1" })
        expect(first.recorded && again.recorded).toBe(true)
        if (first.recorded && again.recorded) {
          expect(again.snapshotId).toBe(first.snapshotId)
          expect(again.replayed).toBe(true)
          expect(again.parquetFile).toBe(first.parquetFile)
        }
        const e = yield* Effect.flip(client.recordChanges({
          projectId: p.projectId,
          actor: "a",
          changes: [change(`${p.irodsPath}/x`, "a", "2")],
          idempotencyKey: "k1"
        }))
        expect(e._tag).toBe("IdempotencyConflict")
        expect((yield* client.listSnapshots(p.projectId)).length).toBe(1)
      }))

    it.effect("archived projects refuse writes", () =>
      Effect.gen(function*() {
        const client = yield* DuckLakeClient
        const catalog = yield* Catalog
        const p = yield* registerFresh("arch")
        yield* catalog.setProjectStatus(p.projectId, "archived")
        const e = yield* Effect.flip(client.recordChanges({
          projectId: p.projectId,
          actor: "a",
          changes: [change(`${p.irodsPath}/x`, "a", "1")]
        }))
        expect(e._tag).toBe("ProjectArchived")
      }))

    it.effect("concurrent writers on one project get unique, ordered snapshot ids and lose nothing", () =>
      Effect.gen(function*() {
        const client = yield* DuckLakeClient
        const p = yield* registerFresh("conc")
        const results = yield* Effect.forEach(
          Array.from({ length: 24 }, (_, i) => i),
          (i) => record(p.projectId, [change(`${p.irodsPath}/f${i % 4}`, "n", String(i))]),
          { concurrency: 8 }
        )
        const ids = results.map((r) => r.snapshotId).sort((a, b) => a - b)
        expect(new Set(ids).size).toBe(24)
        const snaps = yield* client.listSnapshots(p.projectId, { limit: 100 })
        expect(snaps.map((s) => s.snapshotId).sort((a, b) => a - b)).toEqual(ids)
        // Transaction times strictly increase with snapshot ids.
        const asc = [...snaps].reverse()
        for (let i = 1; i < asc.length; i++) expect(asc[i]!.ts.getTime()).toBeGreaterThan(asc[i - 1]!.ts.getTime())
        const all = yield* client.getHistory(p.projectId, { limit: 1000 })
        expect(all.length).toBe(24)
      }))
  })

  describe("reads", () => {
    it.effect("as-of is inclusive, ties on valid time go to the later snapshot, and back-dated changes count", () =>
      Effect.gen(function*() {
        const client = yield* DuckLakeClient
        const p = yield* registerFresh("asof")
        const obj = `${p.irodsPath}/x`
        const t1 = "2026-01-01T00:00:00Z"
        const t2 = "2026-02-01T00:00:00Z"
        yield* record(p.projectId, [change(obj, "stage", "raw", "add", { ts: t1 })])
        yield* record(p.projectId, [change(obj, "stage", "raw", "delete", { ts: t2 }), change(obj, "stage", "clean", "add", { ts: t2 })])
        // Same valid time as the previous batch, later snapshot: it wins.
        yield* record(p.projectId, [change(obj, "stage", "clean", "delete", { ts: t2 }), change(obj, "stage", "final", "add", { ts: t2 })])
        const at = (t: string) => Effect.map(client.getAvusAsOf(p.projectId, obj, t), triples)
        expect(yield* at("2025-12-31T23:59:59.999Z")).toEqual([])
        expect(yield* at(t1)).toEqual(["stage=raw"])
        expect(yield* at("2026-01-31T23:59:59.999+00:00")).toEqual(["stage=raw"])
        expect(yield* at(t2)).toEqual(["stage=final"])
        expect(yield* at("2026-02-01 01:00:00+01:00")).toEqual(["stage=final"])
        // A back-dated change recorded late changes the valid-time answer...
        const late = yield* record(p.projectId, [change(obj, "batch", "B7", "add", { ts: "2026-01-15T00:00:00Z" })])
        expect(yield* at("2026-01-20T00:00:00Z")).toEqual(["batch=B7", "stage=raw"])
        // ...but not the answer as known before it was recorded (transaction time).
        const before = yield* client.getAvusAsOf(p.projectId, obj, "2026-01-20T00:00:00Z", { knownAt: late.snapshotId - 1 })
        expect(triples(before)).toEqual(["stage=raw"])
        const snaps = yield* client.listSnapshots(p.projectId)
        const byTime = yield* client.getAvusAsOf(p.projectId, obj, "2026-01-20T00:00:00Z", { knownAt: snaps[1]!.ts })
        expect(triples(byTime)).toEqual(["stage=raw"])
        const missing = yield* Effect.flip(client.getAvusAsOf(p.projectId, obj, t2, { knownAt: 9999 }))
        expect(missing._tag).toBe("SnapshotNotFound")
        // A naive timestamp is taken as UTC.
        expect(yield* at("2026-01-01T00:00:00")).toEqual(["stage=raw"])
      }))

    it.effect("getAvus (current-state index) equals the Parquet answer after many mixed batches", () =>
      Effect.gen(function*() {
        const client = yield* DuckLakeClient
        const p = yield* registerFresh("index")
        const paths = [0, 1, 2].map((i) => `${p.irodsPath}/obj${i}`)
        let seed = 7
        const rand = (n: number) => (seed = (seed * 1103515245 + 12345) % 2147483648) % n
        for (let b = 0; b < 15; b++) {
          const batch = Array.from({ length: 1 + rand(5) }, () => {
            const op = (["add", "add", "delete", "set"] as const)[rand(4)]!
            return change(paths[rand(3)]!, `a${rand(3)}`, `v${rand(4)}`, op, { unit: rand(3) === 0 ? "u" : "" })
          })
          yield* record(p.projectId, batch)
        }
        for (const path of paths) {
          const current = yield* client.getAvus(p.projectId, path)
          const fromParquet = yield* client.getAvusAsOf(p.projectId, path, "9999-12-31T00:00:00Z")
          expect(current).toEqual(fromParquet)
        }
      }))

    it.effect("history filters by path, attribute and time, newest first, with a limit", () =>
      Effect.gen(function*() {
        const client = yield* DuckLakeClient
        const p = yield* registerFresh("hist")
        const a = `${p.irodsPath}/a`
        const b = `${p.irodsPath}/b`
        yield* record(p.projectId, [change(a, "x", "1", "add", { ts: "2026-03-01T00:00:00Z" }), change(b, "x", "1", "add", { ts: "2026-03-01T00:00:00Z" })])
        yield* record(p.projectId, [change(a, "y", "2", "add", { ts: "2026-03-02T00:00:00Z" })])
        yield* record(p.projectId, [change(a, "x", "1", "delete", { ts: "2026-03-03T00:00:00Z" })])
        const h = yield* client.getHistory(p.projectId, { irodsPath: a })
        expect(h.map((r) => `${r.op}:${r.attribute}`)).toEqual(["delete:x", "add:y", "add:x"])
        expect((yield* client.getHistory(p.projectId, { irodsPath: a, attribute: "x" })).length).toBe(2)
        expect((yield* client.getHistory(p.projectId, { from: "2026-03-02T00:00:00Z" })).length).toBe(2)
        expect((yield* client.getHistory(p.projectId, { to: "2026-03-01T00:00:00Z" })).length).toBe(2)
        expect((yield* client.getHistory(p.projectId, { limit: 1 })).map((r) => r.op)).toEqual(["delete"])
        const row = (yield* client.getHistory(p.projectId, { irodsPath: b }))[0]!
        expect(row).toMatchObject({ irodsPath: b, attribute: "x", value: "1", unit: "", op: "add", actor: "alice", source: "test", targetType: "data_object" })
        expect(row.ts.toISOString()).toBe("2026-03-01T00:00:00.000Z")
      }))

    it.effect("snapshots list newest first with author, note, count and parent", () =>
      Effect.gen(function*() {
        const client = yield* DuckLakeClient
        const p = yield* registerFresh("snaps")
        yield* record(p.projectId, [change(`${p.irodsPath}/a`, "x", "1")], "alice", "one")
        yield* record(p.projectId, [change(`${p.irodsPath}/a`, "x", "2"), change(`${p.irodsPath}/a`, "x", "3")], "bob", "two")
        const s = yield* client.listSnapshots(p.projectId)
        expect(s.map((x) => [x.snapshotId, x.actor, x.note, x.changeCount, x.parentSnapshot])).toEqual([
          [3, "bob", "two", 2, 2],
          [2, "alice", "one", 1, null]
        ])
        expect((yield* client.listSnapshots(p.projectId, { limit: 1 })).length).toBe(1)
      }))

    it.effect("diff lists AVUs added and removed per path between snapshots", () =>
      Effect.gen(function*() {
        const client = yield* DuckLakeClient
        const p = yield* registerFresh("diff")
        const a = `${p.irodsPath}/a`
        const b = `${p.irodsPath}/b`
        const s1 = yield* record(p.projectId, [change(a, "k", "1"), change(b, "k", "1")])
        const s2 = yield* record(p.projectId, [change(a, "k", "2", "set"), change(b, "j", "9")])
        const s3 = yield* record(p.projectId, [change(b, "j", "9", "delete")])
        const d = yield* client.diff(p.projectId, s1.snapshotId, s3.snapshotId)
        // b: j=9 added then removed within the range → no net change.
        expect(d).toEqual([{ irodsPath: a, added: [{ attribute: "k", value: "2", unit: "" }], removed: [{ attribute: "k", value: "1", unit: "" }] }])
        const d2 = yield* client.diff(p.projectId, s1.snapshotId, s2.snapshotId)
        expect(d2.map((x) => x.irodsPath)).toEqual([a, b])
        expect(yield* client.diff(p.projectId, s2.snapshotId, s2.snapshotId)).toEqual([])
        const whole = yield* client.diff(p.projectId, 1, s1.snapshotId)
        expect(whole.map((x) => x.added.length)).toEqual([1, 1])
        expect((yield* Effect.flip(client.diff(p.projectId, s3.snapshotId, s1.snapshotId)))._tag).toBe("InvalidChange")
        expect((yield* Effect.flip(client.diff(p.projectId, s1.snapshotId, 999)))._tag).toBe("SnapshotNotFound")
      }))

    it.effect("values are stored verbatim: unicode, quotes, SQL metacharacters, newlines, 2700 bytes", () =>
      Effect.gen(function*() {
        const client = yield* DuckLakeClient
        const p = yield* registerFresh("verbatim")
        const obj = `${p.irodsPath}/dåta/ünïcode 'quoted' & "x".csv`
        const values = ["naïve café 🌱", "'; DROP TABLE mesa_ducklake.projects; --", "a\nb\tc", "é".repeat(1350), "%_\\"]
        yield* record(p.projectId, values.map((v, i) => change(obj, `attr${i}`, v, "add", { unit: i === 1 ? "µm" : "" })))
        const got = yield* client.getAvus(p.projectId, obj)
        expect(got.map((a) => a.value).sort()).toEqual([...values].sort())
        const asOf = yield* client.getAvusAsOf(p.projectId, obj, new Date())
        expect(asOf.map((a) => a.value).sort()).toEqual([...values].sort())
        expect((yield* client.listProjects).length).toBeGreaterThan(0)
        expect(Either.isRight(yield* Effect.either(client.findProjectByPath(obj)))).toBe(true)
      }))
  })
})
}
