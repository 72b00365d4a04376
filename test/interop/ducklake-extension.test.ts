/**
 * Interop: DuckDB's official `ducklake` extension (1.5.x, from PyPI, loaded offline) ATTACHes a project's catalog
 * written by our library and must agree with our answers: every change row, every snapshot's author and message,
 * and the effective AVUs of every path at every snapshot (`AT (VERSION => n)`), at times between snapshots
 * (`AT (TIMESTAMP => t)`) and bitemporally (a version plus a valid-time bound). The README's DuckDB queries run here
 * too, against our API's answers. Bad input: a catalog that is not ours, or of another DuckLake version, is refused
 * with `CatalogSchemaMismatch` and left untouched.
 *
 *   npx vitest run --config vitest.interop.config.ts
 */
import { beforeAll, describe, expect, it, layer } from "@effect/vitest"
import { NodeContext } from "@effect/platform-node"
import * as BackupModule from "../../src/backup/Backup.js"
import { Backup } from "../../src/backup/Backup.js"
import type { DuckDb } from "../../src/duckdb/DuckDb.js"
import type { LakeStorage } from "../../src/storage/LakeStorage.js"
import { Effect, Either, Layer, Redacted } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as nodePath from "node:path"
import * as Embedded from "../../layers/embedded.js"
import { client as clientLayer, mounted } from "../../layers/components.js"
import * as Catalog from "../../src/catalog/Catalog.js"
import { COLUMNS } from "../../src/catalog/ducklakeSchema.js"
import type { Avu, ChangeRow, Project } from "../../src/core/domain.js"
import { DuckLakeClient } from "../../src/client/DuckLakeClient.js"
import { EmbeddedPostgres } from "../../src/postgres/EmbeddedPostgres.js"
import { attachSql, readmeQueries } from "./readme.js"
import { buildSteps, pathsOf, type Step } from "./scenario.js"
import {
  type AsOfRequest,
  type ExtAvu,
  type ExtRow,
  runReader,
  setupPython,
  splitPassword,
  toConninfo
} from "./support.js"

const base = fs.mkdtempSync(nodePath.join(os.tmpdir(), "mesa-interop-"))
const zoneDir = nodePath.join(base, "zone")
// The temp dir is removed after PostgreSQL has stopped (the cleanup layer is built first, released last).
const Live = Embedded.layer({ zoneDir, cacheDir: nodePath.join(base, "cache") }).pipe(
  Layer.provideMerge(
    Layer.scopedDiscard(Effect.addFinalizer(() => Effect.sync(() => fs.rmSync(base, { recursive: true, force: true }))))
  )
)

/** The local directory a project's lake collection is mounted at: what an analyst passes as DATA_PATH. */
const dataPathOf = (p: Project) => `${nodePath.join(zoneDir, p.ducklakePath)}/`

/** A reader request's catalog part as an analyst sends it: the README's ATTACH, the password in PGPASSWORD. */
const asAnalyst = (p: Project) => ({
  metadataSchema: p.metadataSchema,
  dataPath: dataPathOf(p),
  attach: attachSql({ metadataSchema: p.metadataSchema, dataPath: dataPathOf(p) }),
  passwordViaEnv: true
})
const FAR_FUTURE = "9999-12-31T23:59:59.999Z"
const DAY = 86_400_000

/** Our answers in the extension's shape (times as epoch microseconds, so a sub-millisecond drift shows). */
const rowOf = (p: Project) => (r: ChangeRow): ExtRow => ({
  snapshot_id: r.snapshotId,
  change_seq: r.changeSeq,
  ts_us: r.ts.getTime() * 1000,
  irods_path: r.irodsPath,
  target_type: r.targetType,
  object_id: r.objectId,
  attribute: r.attribute,
  value: r.value,
  unit: r.unit,
  op: r.op,
  actor: r.actor,
  source: r.source,
  via_ticket: r.viaTicket,
  rule_invocation: r.ruleInvocation,
  on_behalf_of: r.onBehalfOf,
  project_id: p.projectId
})
const avuOf = (a: Avu): ExtAvu => ({
  attribute: a.attribute,
  value: a.value,
  unit: a.unit,
  actor: a.actor,
  ts_us: a.ts.getTime() * 1000,
  snapshot_id: a.snapshotId,
  source: a.source,
  via_ticket: a.viaTicket,
  rule_invocation: a.ruleInvocation
})
const cmp = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0)
const sortAvus = (xs: ReadonlyArray<ExtAvu>) =>
  [...xs].sort((a, b) => cmp(a.attribute, b.attribute) || cmp(a.value, b.value) || cmp(a.unit, b.unit))
const byKey = (a: ExtRow, b: ExtRow) => a.snapshot_id - b.snapshot_id || a.change_seq - b.change_seq

/** A catalog of our own next to the client, for direct SQL (tampering, and checking what was left untouched). */
const withCatalogSql = <A, E>(dsn: Redacted.Redacted<string>, f: (c: Catalog.CatalogService) => Effect.Effect<A, E>) =>
  Effect.scoped(Effect.flatMap(Layer.build(Catalog.layer({ dsn })), (ctx) => f(ctx.unsafeMap.get(Catalog.Catalog.key))))

/** Every row of every table of a PostgreSQL schema, as text: to prove it was not modified. */
const dumpSchema = (dsn: Redacted.Redacted<string>, schema: string) =>
  withCatalogSql(dsn, (c) =>
    c.withSql((sql) =>
      Effect.gen(function*() {
        const tables = yield* sql<any>`SELECT table_name FROM information_schema.tables
                                       WHERE table_schema = ${schema} ORDER BY table_name`
        const out: Record<string, Array<string>> = {}
        for (const { table_name } of tables) {
          const rows = yield* sql<any>`SELECT t::text AS r FROM ${sql(schema)}.${sql(table_name)} t`
          out[table_name] = rows.map((x) => x.r as string).sort()
        }
        return out
      })
    ))

beforeAll(() => setupPython(), 15 * 60_000)

describe("conninfo for the extension", () => {
  it("turns our postgresql:// URL into libpq key=value pairs, quoting where needed", () => {
    expect(toConninfo("postgresql://postgres:s3cr%20t'x@127.0.0.1:5433/mesa?sslmode=disable")).toBe(
      "host=127.0.0.1 port=5433 dbname=mesa user=postgres password='s3cr t\\'x' sslmode=disable"
    )
    expect(toConninfo("host=h dbname=d")).toBe("host=h dbname=d")
    expect(splitPassword("host=127.0.0.1 port=5433 dbname=mesa user=postgres password='s3cr t\\'x' sslmode=disable"))
      .toEqual({ password: "s3cr t'x", rest: "host=127.0.0.1 port=5433 dbname=mesa user=postgres sslmode=disable" })
  })
})

layer(Live, { timeout: "240 seconds", excludeTestServices: true })("DuckDB ducklake extension interop", (it) => {
  describe("a project written by our library", () => {
    it.effect("reads the same rows, snapshots and as-of answers as our client", () =>
      Effect.gen(function*() {
        const started = Date.now()
        const client = yield* DuckLakeClient
        const { dsn } = yield* EmbeddedPostgres
        const root = "/interopZone/home/alice/soil-survey"
        const p = yield* client.registerProject({ irodsPath: root, actor: "alice" })
        // A second project in the same database: the extension must see only the attached schema's rows.
        const other = yield* client.registerProject({ irodsPath: "/interopZone/home/bob/other", actor: "bob" })
        yield* client.recordChanges({
          projectId: other.projectId,
          actor: "bob",
          changes: [{ irodsPath: `${other.irodsPath}/x`, targetType: "data_object", attribute: "status", value: "raw", op: "add", actor: "bob" }]
        })

        const now = Date.now()
        const steps = buildSteps(root, now)
        const written = yield* writeSteps(p, steps)
        const history = yield* client.getHistory(p.projectId, { limit: 1_000_000 })
        const ours = yield* client.listSnapshots(p.projectId, { limit: 1_000_000 })
        const paths = pathsOf(root)
        expect(ours.length).toBeGreaterThanOrEqual(40)
        expect(written.gaps.length).toBe(1)
        const ids = new Set(ours.map((s) => s.snapshotId))
        for (const gap of written.gaps) expect([ids.has(gap - 1), ids.has(gap), ids.has(gap + 1)]).toEqual([true, false, true])

        // The requests: every snapshot × every path; the exact commit time, just before it and halfway to the next;
        // and bitemporal pairs (a version plus a valid-time bound).
        const versions = [1, ...ours.map((s) => s.snapshotId)].sort((a, b) => a - b)
        const times = [...ours].sort((a, b) => a.snapshotId - b.snapshotId).map((s) => s.ts.getTime())
        const instants = new Set<number>()
        times.forEach((t, i) => {
          instants.add(t)
          if (i > 0 && t - 1 > times[i - 1]!) instants.add(t - 1)
          if (i + 1 < times.length && times[i + 1]! - t >= 2) instants.add(t + Math.floor((times[i + 1]! - t) / 2))
        })
        instants.add(times[times.length - 1]! + DAY)
        const validAts = [
          "2019-06-15T00:00:00.000Z",
          "2023-11-05T12:00:00.000Z",
          "2024-02-20T00:00:00.000Z",
          new Date(now - 20 * DAY).toISOString(),
          new Date(now - 2 * DAY).toISOString()
        ]
        const asOf: Array<AsOfRequest & { readonly ours: Effect.Effect<ReadonlyArray<Avu>, unknown> }> = []
        for (const path of paths) {
          for (const n of versions) {
            asOf.push({ path, version: n, ours: client.getAvusAsOf(p.projectId, path, FAR_FUTURE, { knownAt: n }) })
          }
          for (const t of instants) {
            const timestamp = new Date(t).toISOString()
            asOf.push({ path, timestamp, ours: client.getAvusAsOf(p.projectId, path, FAR_FUTURE, { knownAt: timestamp }) })
          }
          for (const validAt of validAts) {
            for (const n of versions.filter((_, i) => i % 3 === 0 || i === versions.length - 1)) {
              asOf.push({ path, version: n, validAt, ours: client.getAvusAsOf(p.projectId, path, validAt, { knownAt: n }) })
            }
          }
        }
        const sample = paths[2]!
        const readme = readmeQueries({ path: sample, attribute: "status", date: "2024-02-20" })

        // The README's ATTACH, password from PGPASSWORD as an analyst would do.
        const ext = yield* runReader(dsn, {
          ...asAnalyst(p),
          asOf: asOf.map(({ ours: _, ...q }) => q),
          queries: readme.map(({ name, sql }) => ({ name, sql }))
        })
        expect(ext.duckdb).toMatch(/^1\.5\./)
        expect(ext.extensions.map((e) => e.name)).toEqual(["ducklake", "postgres_scanner"])

        // 1. Every row, every column (ts to the microsecond).
        const expectedRows = history.map(rowOf(p)).sort(byKey)
        expect(ext.rows.length).toBe(expectedRows.length)
        expect([...ext.rows].sort(byKey)).toEqual(expectedRows)
        // …and what we were asked to record came back byte for byte (adds and deletes are stored as given).
        for (const c of written.inputs) {
          const hit = ext.rows.find((r) =>
            r.irods_path === c.irodsPath && r.attribute === c.attribute && r.value === c.value &&
            r.unit === (c.unit ?? "") && r.op === c.op && r.actor === c.actor &&
            (c.ts === undefined || r.ts_us === Date.parse(c.ts as string) * 1000)
          )
          expect(hit, `input ${JSON.stringify(c)} not found in the extension's rows`).toBeDefined()
        }

        // Statistics both readers prune with must be exact: a bound that is too tight silently drops rows for both.
        const stats = yield* withCatalogSql(dsn, (c) =>
          c.withSql((sql) =>
            sql<any>`SELECT d.begin_snapshot::int AS snapshot_id, d.record_count::int AS records, s.column_id::int AS column_id,
                            s.null_count::int AS null_count, s.min_value, s.max_value
                     FROM ${sql(p.metadataSchema)}.ducklake_data_file d
                     JOIN ${sql(p.metadataSchema)}.ducklake_file_column_stats s ON s.data_file_id = d.data_file_id`
          )
        )
        expect(stats.length).toBe(COLUMNS.length * ours.length)
        for (const st of stats) {
          const col = COLUMNS.find((c) => c.id === st.column_id)!
          const inFile = ext.rows.filter((r) => r.snapshot_id === st.snapshot_id)
          const values = inFile.map((r) => (col.name === "ts" ? r.ts_us : (r as any)[col.name])).filter((v) => v !== null)
          const label = `stats of snapshot ${st.snapshot_id}, column ${col.name}`
          expect([inFile.length, st.null_count], label).toEqual([st.records, st.records - values.length])
          const asValue = (s: string | null) =>
            s === null ? null : col.name === "ts" ? Date.parse(s.replace(" ", "T").replace(/\+00$/, "Z")) * 1000
              : col.type.startsWith("int") ? Number(s) : s
          const order = (a: any, b: any) => typeof a === "string" ? byteCmp(a, b) : a - b
          const sorted = [...values].sort(order)
          expect([asValue(st.min_value), asValue(st.max_value)], label).toEqual([sorted[0] ?? null, sorted[sorted.length - 1] ?? null])
        }

        // 2. Snapshots: the same ids (0 and 1 create the lake and table), times, authors and messages.
        expect(ext.snapshots.map((s) => s.snapshot_id)).toEqual([0, 1, ...ours.map((s) => s.snapshotId).sort((a, b) => a - b)])
        for (const s of ours) {
          const e = ext.snapshots.find((x) => x.snapshot_id === s.snapshotId)!
          expect({ id: e.snapshot_id, time_us: e.time_us, author: e.author, message: e.commit_message })
            .toEqual({ id: s.snapshotId, time_us: s.ts.getTime() * 1000, author: s.actor, message: s.note })
          expect(e.changes).toEqual({ tables_inserted_into: ["1"] })
        }
        for (const gap of written.gaps) expect(ext.snapshots.some((x) => x.snapshot_id === gap)).toBe(false)

        // 3. Effective AVUs: each pair compared, none skipped. A third answer, computed here from the full row list
        //    (no catalog, no statistics, no file pruning), guards against both readers trusting a wrong statistic.
        expect(ext.asOf.length).toBe(asOf.length)
        const answers = yield* Effect.forEach(asOf, (q) => q.ours, { concurrency: 4 })
        const snapshotAt = (iso: string) =>
          Math.max(...ext.snapshots.filter((s) => s.time_us <= Date.parse(iso) * 1000).map((s) => s.snapshot_id))
        let checked = 0
        let nonEmpty = 0
        asOf.forEach((q, i) => {
          const { ours: _, ...label } = q
          const mine = sortAvus(answers[i]!.map(avuOf))
          expect(sortAvus(ext.asOf[i]!), JSON.stringify(label)).toEqual(mine)
          const upTo = q.version ?? snapshotAt(q.timestamp!)
          expect(mine, `oracle ${JSON.stringify(label)}`).toEqual(sortAvus(effective(expectedRows, q.path, upTo, q.validAt ?? FAR_FUTURE)))
          checked++
          if (answers[i]!.length > 0) nonEmpty++
        })
        expect(checked).toBe(asOf.length)
        expect(nonEmpty).toBeGreaterThan(asOf.length / 3)

        // 4. The README queries, against our API.
        for (const q of readme) {
          const result = ext.queries[q.name]
          expect(result, q.name).toBeDefined()
          const expected = yield* q.expected(client, p.projectId, now)
          expect(result!.rows.length, q.name).toBeGreaterThan(0)
          expect(q.normalise(result!.columns, result!.rows), q.name).toEqual(expected)
        }

        // 4b. After losing the catalog and rebuilding it from storage alone (Parquet files + commit markers), the
        //     extension reads the rebuilt catalog: the same rows, and the same answer at every version.
        yield* (yield* DuckLakeClient).flush
        yield* withCatalogSql(dsn, (c) =>
          c.withSql((sql) =>
            Effect.all([
              sql`DROP SCHEMA ${sql(p.metadataSchema)} CASCADE`,
              sql`DELETE FROM mesa_ducklake.projects WHERE project_id = ${p.projectId}`
            ], { discard: true })
          ))
        const parts = yield* Effect.context<Catalog.Catalog | LakeStorage | DuckDb>()
        const rebuilt = yield* Effect.flatMap(Backup, (b) => b.rebuild({ root })).pipe(
          Effect.provide(BackupModule.layer({ dsn }).pipe(
            Layer.provide(Layer.mergeAll(Layer.succeedContext(parts), NodeContext.layer))
          ))
        )
        expect(rebuilt.snapshots).toBe(ours.length)
        const versionPairs = asOf.flatMap((q, i) => (q.version !== undefined && q.validAt === undefined ? [i] : []))
        const ext3 = yield* runReader(dsn, {
          ...asAnalyst(p),
          asOf: versionPairs.map((i) => { const { ours: _, ...q } = asOf[i]!; return q }),
          queries: []
        })
        expect([...ext3.rows].sort(byKey)).toEqual(expectedRows)
        versionPairs.forEach((i, k) => {
          expect(sortAvus(ext3.asOf[k]!), `extension after rebuild ${JSON.stringify({ path: asOf[i]!.path, version: asOf[i]!.version })}`)
            .toEqual(sortAvus(answers[i]!.map(avuOf)))
        })
        console.log(`interop: after a rebuild from storage alone, ${ext3.rows.length} rows and ${versionPairs.length} version comparisons checked`)

        // 5. After compaction (DuckLake's merge-adjacent representation) and the removal of the replaced files, the
        //    extension still reads every row and agrees at every version and time; so do we, with the same answers.
        const liveBefore = yield* withCatalogSql(dsn, (c) => c.liveFiles(p))
        const compaction = yield* client.compact(p.projectId, {
          targetFileSize: Math.ceil(liveBefore.reduce((n, f) => n + f.fileSizeBytes, 0) / 3) + 1
        })
        expect(compaction.filesWritten).toBeGreaterThanOrEqual(2)
        expect(yield* client.deleteScheduledFiles(p.projectId, { graceMs: 0 })).toBe(compaction.filesBefore - (compaction.filesAfter - compaction.filesWritten))
        const ext2 = yield* runReader(dsn, {
          ...asAnalyst(p),
          asOf: asOf.map(({ ours: _, ...q }) => q),
          queries: []
        })
        expect([...ext2.rows].sort(byKey)).toEqual(expectedRows)
        for (const id of compaction.snapshots) {
          expect(ext2.snapshots.find((x) => x.snapshot_id === id), `compaction snapshot ${id}`).toBeDefined()
        }
        const answersAfter = yield* Effect.forEach(asOf, (q) => q.ours, { concurrency: 4 })
        let checkedAfter = 0
        asOf.forEach((q, i) => {
          const { ours: _, ...label } = q
          const before = sortAvus(answers[i]!.map(avuOf))
          expect(sortAvus(answersAfter[i]!.map(avuOf)), `ours after compaction ${JSON.stringify(label)}`).toEqual(before)
          expect(sortAvus(ext2.asOf[i]!), `extension after compaction ${JSON.stringify(label)}`).toEqual(before)
          checkedAfter++
        })
        expect(checkedAfter).toBe(asOf.length)

        const seconds = ((Date.now() - started) / 1000).toFixed(1)
        console.log(
          `interop: after compaction (${compaction.filesBefore} → ${compaction.filesAfter} files), ${ext2.rows.length} rows and ` +
            `${checkedAfter} as-of comparisons checked again`
        )
        console.log(
          `interop: ${ext.snapshots.length} snapshots, ${ext.rows.length} rows, ${checked} as-of comparisons checked ` +
            `(+${readme.length} README queries; duckdb ${ext.duckdb}, python ${JSON.stringify(ext.timings)}; ${seconds}s)`
        )
      }))
  })

  describe("the README's ATTACH", () => {
    it.effect("with a mistyped METADATA_SCHEMA fails (READ_ONLY never creates a lake) and never shows the password", () =>
      Effect.gen(function*() {
        const { dsn } = yield* EmbeddedPostgres
        const schema = "lake_typo"
        const r = yield* Effect.either(runReader(dsn, {
          metadataSchema: schema,
          dataPath: `${base}/`,
          attach: attachSql({ metadataSchema: schema, dataPath: `${base}/` }),
          passwordViaEnv: true
        }))
        expect(Either.isLeft(r)).toBe(true)
        const message = Either.isLeft(r) ? r.left.message : ""
        expect(message).toMatch(/creating a new DuckLake is explicitly disabled/)
        const password = splitPassword(toConninfo(Redacted.value(dsn))).password!
        expect(message).not.toContain(password)
        // With the password inside the conninfo, the error (which quotes the conninfo) is scrubbed too.
        const r2 = yield* Effect.either(runReader(dsn, { metadataSchema: schema, dataPath: `${base}/` }))
        expect(Either.isLeft(r2) ? r2.left.message : "").toMatch(/explicitly disabled/)
        expect(Either.isLeft(r2) ? r2.left.message : password).not.toContain(password)
        const exists = yield* withCatalogSql(dsn, (c) =>
          c.withSql((sql) => sql<any>`SELECT count(*)::int AS n FROM pg_namespace WHERE nspname = ${schema}`)
        )
        expect(exists[0].n).toBe(0)
      }))
  })

  describe("golden lake", () => {
    it.effect("the extension writing the same history itself makes the same catalog rows as our writer", () =>
      Effect.gen(function*() {
        const client = yield* DuckLakeClient
        const { dsn } = yield* EmbeddedPostgres
        const root = "/interopZone/home/alice/golden-source"
        const p = yield* client.registerProject({ irodsPath: root, actor: "alice" })
        const steps = buildSteps(root, Date.now()).filter((s) => s.kind === "batch").slice(0, 12)
        yield* writeSteps(p, steps)
        const goldenData = nodePath.join(base, "golden-data") + "/"
        fs.mkdirSync(goldenData, { recursive: true })
        yield* runReader(dsn, {
          mode: "golden",
          metadataSchema: p.metadataSchema,
          dataPath: dataPathOf(p),
          goldenSchema: "golden",
          goldenDataPath: goldenData
        })
        const [ours, golden] = yield* Effect.all([catalogRows(dsn, p.metadataSchema), catalogRows(dsn, "golden")])
        const deviations = [
          ...Object.keys(golden).filter((t) => !["snapshot_changes", "file_column_stats", "table_column_stats"].includes(t))
            .flatMap((t) => diffRows(t, ours[t]!, golden[t]!, (a, b) => JSON.stringify(a) === JSON.stringify(b))),
          // The bootstrap snapshots carry our author and message; the extension's DDL had none.
          ...diffRows("snapshot_changes", ours.snapshot_changes!, golden.snapshot_changes!, (a, b) =>
            a.changes_made === b.changes_made &&
            (Number(a.n) <= 2 || (a.author === b.author && a.commit_message === b.commit_message))),
          ...diffRows("file_column_stats", ours.file_column_stats!, golden.file_column_stats!, sameStats),
          ...diffRows("table_column_stats", ours.table_column_stats!, golden.table_column_stats!, sameStats)
        ]
        const summary = [...new Set(deviations.map((d) => d.split("[")[0]!))].map((t) => {
          const mine = deviations.filter((d) => d.startsWith(`${t}[`))
          return `${t}: ${mine.length} rows differ, e.g.\n  ${mine.slice(0, 3).join("\n  ")}`
        })
        expect(deviations.length, `our writer's catalog rows differ from the extension's:\n${summary.join("\n")}\n`).toBe(0)
      }))
  })

  describe("bad input", () => {
    it.effect("refuses a DuckLake catalog of another version, and leaves it unmodified", () =>
      Effect.gen(function*() {
        const client = yield* DuckLakeClient
        const { dsn } = yield* EmbeddedPostgres
        const p = yield* client.registerProject({ irodsPath: "/interopZone/home/carol/v11", actor: "carol" })
        yield* client.recordChanges({
          projectId: p.projectId,
          actor: "carol",
          changes: [{ irodsPath: `${p.irodsPath}/a`, targetType: "data_object", attribute: "k", value: "v", op: "add", actor: "carol" }]
        })
        yield* withCatalogSql(dsn, (c) =>
          c.withSql((sql) => sql`UPDATE ${sql(p.metadataSchema)}.ducklake_metadata SET value = '1.1' WHERE key = 'version'`)
        )
        const before = yield* dumpSchema(dsn, p.metadataSchema)
        const lakeFiles = listTree(nodePath.join(zoneDir, p.ducklakePath))

        const errors = yield* attempts(dsn, p)
        for (const e of errors) {
          expect(e).toMatchObject({ _tag: "CatalogSchemaMismatch", schema: p.metadataSchema, found: "DuckLake 1.1", expected: "DuckLake 1.0" })
        }
        expect(yield* dumpSchema(dsn, p.metadataSchema)).toEqual(before)
        expect(listTree(nodePath.join(zoneDir, p.ducklakePath))).toEqual(lakeFiles)
      }))

    it.effect("refuses a DuckLake catalog that is not ours (made by the extension), and leaves it unmodified", () =>
      Effect.gen(function*() {
        const client = yield* DuckLakeClient
        const { dsn } = yield* EmbeddedPostgres
        const p = yield* client.registerProject({ irodsPath: "/interopZone/home/dave/foreign", actor: "dave" })
        const foreignData = nodePath.join(base, "foreign-data") + "/"
        const made = yield* runReader(dsn, { mode: "create-foreign", metadataSchema: "foreign_lake", dataPath: foreignData })
        expect(made.snapshots as unknown as number).toBeGreaterThan(1)
        // Point the project's registry row at it, as a mistaken (or malicious) registry edit would.
        yield* withCatalogSql(dsn, (c) =>
          c.withSql((sql) =>
            sql`UPDATE mesa_ducklake.projects SET metadata_schema = 'foreign_lake' WHERE project_id = ${p.projectId}`
          )
        )
        const before = yield* dumpSchema(dsn, "foreign_lake")
        expect(before.ducklake_metadata!.some((r) => r.startsWith("(version,1.0,"))).toBe(true)
        const dataFiles = listTree(foreignData)

        const errors = yield* attempts(dsn, { ...p, metadataSchema: "foreign_lake" })
        for (const e of errors) {
          expect(e).toMatchObject({ _tag: "CatalogSchemaMismatch", schema: "foreign_lake", found: "not a mesa-ducklake lake" })
        }
        expect(yield* dumpSchema(dsn, "foreign_lake")).toEqual(before)
        expect(listTree(foreignData)).toEqual(dataFiles)
      }))

    it.effect("refuses a schema that is no DuckLake catalog at all", () =>
      Effect.gen(function*() {
        const client = yield* DuckLakeClient
        const { dsn } = yield* EmbeddedPostgres
        const p = yield* client.registerProject({ irodsPath: "/interopZone/home/erin/plain", actor: "erin" })
        yield* withCatalogSql(dsn, (c) =>
          c.withSql((sql) =>
            Effect.gen(function*() {
              yield* sql`CREATE SCHEMA plain_app`
              yield* sql`CREATE TABLE plain_app.samples (id int PRIMARY KEY, name text)`
              yield* sql`INSERT INTO plain_app.samples VALUES (1, 'unrelated')`
              yield* sql`UPDATE mesa_ducklake.projects SET metadata_schema = 'plain_app' WHERE project_id = ${p.projectId}`
            })
          )
        )
        const before = yield* dumpSchema(dsn, "plain_app")
        const errors = yield* attempts(dsn, { ...p, metadataSchema: "plain_app" })
        for (const e of errors) {
          expect(e).toMatchObject({ _tag: "CatalogSchemaMismatch", schema: "plain_app", found: "no ducklake_metadata table" })
        }
        expect(yield* dumpSchema(dsn, "plain_app")).toEqual(before)
      }))
  })
})

/** The effective-AVU rule over raw rows: per triple the latest by (ts, snapshot, seq) among those visible; adds. */
const effective = (rows: ReadonlyArray<ExtRow>, path: string, maxSnapshot: number, validAt: string): Array<ExtAvu> => {
  const limit = Date.parse(validAt) * 1000
  const latest = new Map<string, ExtRow>()
  for (const r of rows) {
    if (r.irods_path !== path || r.snapshot_id > maxSnapshot || r.ts_us > limit) continue
    const k = JSON.stringify([r.attribute, r.value, r.unit])
    const cur = latest.get(k)
    if (
      cur === undefined || r.ts_us > cur.ts_us || (r.ts_us === cur.ts_us && r.snapshot_id > cur.snapshot_id) ||
      (r.ts_us === cur.ts_us && r.snapshot_id === cur.snapshot_id && r.change_seq > cur.change_seq)
    ) latest.set(k, r)
  }
  return [...latest.values()].filter((r) => r.op === "add").map((r) => ({
    attribute: r.attribute,
    value: r.value,
    unit: r.unit,
    actor: r.actor,
    ts_us: r.ts_us,
    snapshot_id: r.snapshot_id,
    source: r.source,
    via_ticket: r.via_ticket,
    rule_invocation: r.rule_invocation
  }))
}

/**
 * The catalog rows of a lake that a writer decides, keyed by table, without what legitimately differs between
 * two writers of the same history: uuids, wall-clock times, file names and byte sizes (different Parquet encoders).
 * Snapshots are numbered by position (ours may have gaps left by failed writes).
 */
const catalogRows = (dsn: Redacted.Redacted<string>, schema: string) =>
  withCatalogSql(dsn, (c) =>
    c.withSql((sql) =>
      Effect.gen(function*() {
        const S = sql(schema)
        const q = (text: string) => sql.unsafe<any>(text.replaceAll("{S}", `"${schema}"`))
        void S
        return {
          metadata: yield* q(`SELECT key, value, scope, scope_id FROM {S}.ducklake_metadata
                              WHERE key NOT IN ('created_by', 'data_path') AND key NOT LIKE 'mesa_%' ORDER BY key`),
          schema: yield* q(`SELECT schema_id, begin_snapshot, end_snapshot, schema_name, path, path_is_relative FROM {S}.ducklake_schema`),
          table: yield* q(`SELECT table_id, begin_snapshot, end_snapshot, schema_id, table_name, path, path_is_relative FROM {S}.ducklake_table`),
          column: yield* q(`SELECT * FROM {S}.ducklake_column ORDER BY column_id`),
          schema_versions: yield* q(`SELECT * FROM {S}.ducklake_schema_versions ORDER BY begin_snapshot`),
          snapshot: yield* q(`SELECT row_number() OVER (ORDER BY snapshot_id) AS n, schema_version, next_catalog_id, next_file_id
                              FROM {S}.ducklake_snapshot ORDER BY snapshot_id`),
          snapshot_changes: yield* q(`SELECT row_number() OVER (ORDER BY snapshot_id) AS n, changes_made, author, commit_message
                                      FROM {S}.ducklake_snapshot_changes ORDER BY snapshot_id`),
          data_file: yield* q(`SELECT data_file_id, table_id, end_snapshot, file_order, path_is_relative, file_format,
                                      record_count, row_id_start, partition_id, encryption_key, mapping_id, partial_max
                               FROM {S}.ducklake_data_file ORDER BY data_file_id`),
          file_column_stats: yield* q(`SELECT data_file_id, table_id, column_id, value_count, null_count, min_value,
                                              max_value, contains_nan, extra_stats
                                       FROM {S}.ducklake_file_column_stats ORDER BY data_file_id, column_id`),
          table_stats: yield* q(`SELECT table_id, record_count, next_row_id FROM {S}.ducklake_table_stats`),
          table_column_stats: yield* q(`SELECT * FROM {S}.ducklake_table_column_stats ORDER BY table_id, column_id`),
          delete_file: yield* q(`SELECT count(*)::int AS n FROM {S}.ducklake_delete_file`),
          inlined_data_tables: yield* q(`SELECT count(*)::int AS n FROM {S}.ducklake_inlined_data_tables`),
          column_mapping: yield* q(`SELECT count(*)::int AS n FROM {S}.ducklake_column_mapping`)
        } as Record<string, ReadonlyArray<any>>
      })
    ))

/** Row-by-row differences of one catalog table, as readable lines. */
const diffRows = (
  table: string,
  ours: ReadonlyArray<any>,
  golden: ReadonlyArray<any>,
  same: (a: any, b: any) => boolean
): Array<string> => {
  const out: Array<string> = []
  for (let i = 0; i < Math.max(ours.length, golden.length); i++) {
    const a = ours[i]
    const b = golden[i]
    if (a === undefined || b === undefined || !same(a, b)) {
      const fields = a === undefined || b === undefined
        ? "missing row"
        : Object.keys(b).filter((k) => JSON.stringify(a[k]) !== JSON.stringify(b[k]))
          .map((k) => `${k}: ours ${JSON.stringify(a[k])?.slice(0, 60)} vs extension ${JSON.stringify(b[k])?.slice(0, 60)}`).join("; ")
      out.push(`${table}[${i}] ${JSON.stringify(b ?? a).slice(0, 80)}: ${fields}`)
    }
  }
  return out
}

const byteCmp = (a: string, b: string) => Buffer.compare(Buffer.from(a, "utf8"), Buffer.from(b, "utf8"))
/**
 * Column statistics agree: equal, except that DuckDB truncates long string bounds (and bumps the last kept
 * character of a max), where ours are exact: then ours must lie within the extension's bounds.
 */
const sameStats = (a: any, b: any) => {
  const { min_value: aMin, max_value: aMax, ...aRest } = a
  const { min_value: bMin, max_value: bMax, ...bRest } = b
  if (JSON.stringify(aRest) !== JSON.stringify(bRest)) return false
  const bound = (x: string | null, y: string | null, ok: (c: number) => boolean) =>
    x === y || (x !== null && y !== null && x.length !== y.length && ok(byteCmp(x, y)))
  return bound(aMin, bMin, (c) => c >= 0) && bound(aMax, bMax, (c) => c <= 0)
}

/** Every file below a directory, relative, sorted. */
const listTree = (dir: string): Array<string> =>
  fs.existsSync(dir) ? (fs.readdirSync(dir, { recursive: true }) as Array<string>).map(String).sort() : []

/**
 * A read and a write through a NEW client (its schema check has not run yet), over the same database and zone.
 * Returns the failures; each call must fail.
 */
const attempts = (dsn: Redacted.Redacted<string>, p: Project) =>
  Effect.gen(function*() {
    const fresh = yield* DuckLakeClient
    const path = `${p.irodsPath}/a`
    const calls = [
      fresh.getAvus(p.projectId, path),
      fresh.getAvusAsOf(p.projectId, path, FAR_FUTURE),
      fresh.getHistory(p.projectId),
      fresh.listSnapshots(p.projectId),
      fresh.recordChanges({
        projectId: p.projectId,
        actor: "mallory",
        changes: [{ irodsPath: path, targetType: "data_object", attribute: "k", value: "w", op: "set", actor: "mallory" }]
      })
    ] as const
    const out: Array<unknown> = []
    for (const call of calls) {
      const r = yield* Effect.either(call as Effect.Effect<unknown, unknown>)
      expect(Either.isLeft(r), "the call must fail").toBe(true)
      if (Either.isLeft(r)) out.push(r.left)
    }
    return out
  }).pipe(
    Effect.provide(
      clientLayer({ dsn, cacheDir: nodePath.join(base, `cache-${Math.random().toString(36).slice(2)}`) }, mounted({
        mountRoot: zoneDir,
        logicalPrefix: "/"
      }))
    )
  )

/** Runs the steps through our client; returns the inputs of the committed batches and the snapshot ids lost. */
const writeSteps = (p: Project, steps: ReadonlyArray<Step>) =>
  Effect.gen(function*() {
    const client = yield* DuckLakeClient
    const inputs: Array<any> = []
    const gaps: Array<number> = []
    const results: Array<number> = []
    for (const [k, step] of steps.entries()) {
      if (step.kind === "batch") {
        const r = yield* client.recordChanges({
          projectId: p.projectId,
          actor: step.actor,
          changes: step.changes,
          idempotencyKey: `interop-${k}`,
          ...(step.note === undefined ? {} : { note: step.note })
        })
        if (!r.recorded) return yield* Effect.dieMessage("not recorded")
        results.push(r.snapshotId)
        inputs.push(...step.changes.filter((c) => c.op !== "set"))
      } else if (step.kind === "replay") {
        const original = steps[step.of]!
        if (original.kind !== "batch") return yield* Effect.dieMessage("replay of a non-batch")
        const r = yield* client.recordChanges({
          projectId: p.projectId,
          actor: original.actor,
          changes: original.changes,
          idempotencyKey: `interop-${step.of}`,
          ...(original.note === undefined ? {} : { note: original.note })
        })
        expect(r.recorded && r.replayed).toBe(true)
      } else {
        // A failed write: the table's collection is briefly a file, so the push fails; its snapshot id is lost.
        const dir = nodePath.join(zoneDir, p.ducklakePath, "main/avu_changes")
        fs.renameSync(dir, `${dir}.aside`)
        fs.writeFileSync(dir, "not a collection")
        const r = yield* Effect.either(client.recordChanges({
          projectId: p.projectId,
          actor: "alice",
          changes: [{ irodsPath: `${p.irodsPath}/lost`, targetType: "data_object", attribute: "lost", value: "1", op: "add", actor: "alice" }]
        }))
        fs.rmSync(dir)
        fs.renameSync(`${dir}.aside`, dir)
        expect(Either.isLeft(r)).toBe(true)
        gaps.push(results[results.length - 1]! + 1)
      }
    }
    return { inputs, gaps, snapshots: results }
  })
