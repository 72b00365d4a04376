/**
 * A bulk ingest keeps the current-state index current while it runs: each committed snapshot's rows are applied in
 * the background, in order, each apply moving the mark in the same transaction. At every moment the index must hold
 * exactly the latest change per triple of the snapshots through its mark (all of them once the mark is gone), reads
 * must be exact throughout, and whatever interrupts the applying (another writer, a failed apply, an interrupted
 * ingest) must leave a mark that a catch-up finishes from.
 */
import { expect, it, layer } from "@effect/vitest"
import { Effect, Fiber, Runtime } from "effect"
import { Catalog } from "../src/catalog/Catalog.js"
import { latestPerTriple } from "../src/catalog/currentState.js"
import type { AvuChangeInput, ChangeRow, Project } from "../src/core/domain.js"
import { DuckLakeClient, make as makeClient } from "../src/client/DuckLakeClient.js"
import { change, embedded, registerFresh } from "./support.js"

const { layer: Live } = embedded("ingest-index")

/** Mixed changes on a few objects with explicit, often back-dated valid times (seeded). */
const mixedFor = (root: string, n: number, seed: number): Array<AvuChangeInput> => {
  let s = seed
  const rand = (k: number) => Math.floor(((s = (s * 1103515245 + 12345) % 2147483648) / 2147483648) * k)
  return Array.from({ length: n }, () =>
    change(`${root}/o${rand(15)}.dat`, `a${rand(4)}`, `v${rand(5)}`, (["add", "add", "delete", "set"] as const)[rand(4)]!, {
      unit: rand(5) === 0 ? "mm" : "",
      ts: new Date(Date.UTC(2026, 0, 1) + rand(400) * 3_600_000).toISOString()
    }))
}

const objects = Array.from({ length: 15 }, (_, i) => `o${i}.dat`)

const later = (a: ChangeRow, b: ChangeRow) =>
  a.ts.getTime() !== b.ts.getTime()
    ? a.ts > b.ts
    : a.snapshotId !== b.snapshotId
    ? a.snapshotId > b.snapshotId
    : a.changeSeq > b.changeSeq

const line = (path: string, attribute: string, value: string, unit: string, op: string, snapshotId: number, seq: number) =>
  [path, attribute, value, unit, op, snapshotId, seq].join("|")

/** The index's rows and its mark, read in one statement. */
const indexOf = (p: Project) =>
  Effect.flatMap(Catalog, (catalog) =>
    catalog.withSql((sql) =>
      Effect.map(
        sql<any>`SELECT m.through, c.irods_path, c.attribute, c.value, c.unit, c.op, c.snapshot_id::int AS s, c.change_seq
                 FROM (SELECT (SELECT value FROM ${sql(p.metadataSchema)}.ducklake_metadata
                               WHERE key = 'mesa_index_through' AND scope IS NULL) AS through) m
                 LEFT JOIN ${sql(p.metadataSchema)}.mesa_current_avus c ON true`,
        (rows) => ({
          through: rows[0].through === null ? null : Number(rows[0].through),
          rows: rows.filter((r) => r.irods_path !== null)
            .map((r) => line(r.irods_path, r.attribute, r.value, r.unit, r.op, r.s, r.change_seq)).sort()
        })
      )
    ))

/** The latest change per triple over the committed snapshots through `through` (all of them when null). */
const truthOf = (p: Project, through: number | null) =>
  Effect.flatMap(DuckLakeClient, (c) =>
    Effect.map(c.getHistory(p.projectId, { limit: 1_000_000 }), (history) => {
      const latest = new Map<string, ChangeRow>()
      for (const r of history) {
        if (through !== null && r.snapshotId > through) continue
        const k = JSON.stringify([r.irodsPath, r.attribute, r.value, r.unit])
        const seen = latest.get(k)
        if (seen === undefined || later(r, seen)) latest.set(k, r)
      }
      return [...latest.values()].map((r) => line(r.irodsPath, r.attribute, r.value, r.unit, r.op, r.snapshotId, r.changeSeq)).sort()
    }))

/** The index holds exactly what its mark says (every snapshot through it; all of them without one). */
const expectConsistent = (p: Project, label: string) =>
  Effect.gen(function*() {
    const index = yield* indexOf(p)
    expect(index.rows, `${label}: index through ${index.through}`).toEqual(yield* truthOf(p, index.through))
    return index.through
  })

/** getAvus (index or files) answers like the files at the end of time, for every object. */
const expectExactReads = (p: Project) =>
  Effect.gen(function*() {
    const c = yield* DuckLakeClient
    for (const o of objects) {
      const path = `${p.irodsPath}/${o}`
      expect(yield* c.getAvus(p.projectId, path), path).toEqual(yield* c.getAvusAsOf(p.projectId, path, "9999-12-31T00:00:00Z"))
    }
  })

/** A source that runs `pause` (awaited) before the changes at the given positions. */
const pausing = (changes: ReadonlyArray<AvuChangeInput>, at: ReadonlyArray<number>, pause: (i: number) => Promise<void>) =>
  (async function*() {
    for (let i = 0; i < changes.length; i++) {
      if (at.includes(i)) await pause(i)
      yield changes[i]!
    }
  })()

layer(Live, { timeout: "300 seconds", excludeTestServices: true })("bulk ingest keeps the index current", (it) => {
  it.effect("during the ingest the index holds exactly its mark's snapshots and reads are exact; after flush it is complete", () =>
    Effect.gen(function*() {
      const c = yield* DuckLakeClient
      const catalog = yield* Catalog
      const run = Runtime.runPromise(yield* Effect.runtime<DuckLakeClient | Catalog>())
      const p = yield* registerFresh("ii-during")
      // Something in the index before the ingest.
      yield* c.recordChanges({ projectId: p.projectId, actor: "a", changes: mixedFor(p.irodsPath, 50, 1) })
      const marks: Array<boolean> = []
      const changes = mixedFor(p.irodsPath, 6_000, 2)
      const r = yield* c.ingestChanges({
        projectId: p.projectId,
        actor: "importer",
        snapshotSize: 400,
        changes: pausing(changes, [1_000, 2_200, 3_500, 4_700, 5_900], async (i) => {
          // As it is (applies may be under way), then once the applier has caught up with the commits so far:
          // while the ingest waits for its source, the index (and its mark) reach the latest snapshot without any
          // catch-up. The mark stays until the ingest ends: only the writer lock may remove it.
          await run(expectConsistent(p, `at change ${i}`))
          // The parts before this one are committed (the one before may still be in flight as we pause).
          const until = Date.now() + 20_000
          let snaps = await run(c.listSnapshots(p.projectId))
          while (snaps.length < 1 + Math.floor(i / 400)) {
            await new Promise((r) => setTimeout(r, 5))
            snaps = await run(c.listSnapshots(p.projectId))
          }
          const latest = Math.max(...snaps.map((s) => s.snapshotId))
          while ((await run(catalog.indexThrough(p))) !== latest && Date.now() < until) await new Promise((r) => setTimeout(r, 5))
          marks.push((await run(expectConsistent(p, `at change ${i}, caught up`))) === latest)
          await run(expectExactReads(p))
        })
      })
      if (!r.recorded) return expect.unreachable()
      expect(r.snapshots.length).toBe(15)
      expect(marks).toEqual([true, true, true, true, true])
      yield* c.flush
      expect(yield* catalog.indexThrough(p)).toBeNull()
      expect(yield* expectConsistent(p, "after flush")).toBeNull()
      yield* expectExactReads(p)
    }))

  it.effect("another client's writes between the ingest's snapshots: the same answers as one writer doing it all", () =>
    Effect.scoped(Effect.gen(function*() {
      const c = yield* DuckLakeClient
      const other = yield* makeClient({})
      const run = Runtime.runPromise(yield* Effect.runtime<DuckLakeClient | Catalog>())
      const p = yield* registerFresh("ii-other")
      const ref = yield* registerFresh("ii-other-ref")
      const size = 300
      const changes = (root: string) => mixedFor(root, 3_000, 3)
      const between = (root: string, k: number) => mixedFor(root, 40, 100 + k)
      const pauses = [700, 1_300, 1_950, 2_500]
      // At each pause the other client writes once the ingest has committed what came before; the reference
      // records the same writes at the same positions, batch by batch, through one client.
      const r = yield* c.ingestChanges({
        projectId: p.projectId,
        actor: "importer",
        snapshotSize: size,
        changes: pausing(changes(p.irodsPath), pauses, async (i) => {
          const want = Math.floor(i / size) + pauses.indexOf(i)
          while ((await run(c.listSnapshots(p.projectId))).length < want) await new Promise((r) => setTimeout(r, 5))
          await run(other.recordChanges({ projectId: p.projectId, actor: "other", changes: between(p.irodsPath, i) }))
        })
      })
      if (!r.recorded) return expect.unreachable()
      const all = changes(ref.irodsPath)
      let unmatched = 0
      for (let i = 0, part = 0; i < all.length; i += size, part++) {
        // The other write came while the ingest pulled this part, after the parts before it were committed.
        for (const at of pauses) {
          if (Math.floor(at / size) === part) {
            yield* c.recordChanges({ projectId: ref.projectId, actor: "other", changes: between(ref.irodsPath, at) })
          }
        }
        const b = yield* c.recordChanges({ projectId: ref.projectId, actor: "importer", changes: all.slice(i, i + size) })
        if (b.recorded) unmatched += b.unmatchedDeletes
      }
      expect(r.unmatchedDeletes).toBe(unmatched)
      yield* c.flush
      yield* other.flush
      expect(yield* expectConsistent(p, "after flush")).toBeNull()
      yield* expectExactReads(p)
      const rel = (q: Project) =>
        Effect.map(Effect.forEach(objects, (o) => c.getAvus(q.projectId, `${q.irodsPath}/${o}`)), (xs) =>
          xs.map((avus) => avus.map((a) => `${a.attribute}=${a.value}[${a.unit}] ${a.actor}`).sort()))
      expect(yield* rel(p)).toEqual(yield* rel(ref))
    })))

  it.effect("a failed apply leaves a consistent mark; the ingest catches up and goes on; catchUpIndex finishes a lasting failure", () =>
    Effect.gen(function*() {
      const c = yield* DuckLakeClient
      const catalog = yield* Catalog
      // A real failure inside PostgreSQL: a statement trigger on the index table raises while `fail` says so.
      const breakIndex = (p: Project, from: number, to: number) =>
        catalog.withSql((sql) =>
          Effect.gen(function*() {
            const s = sql(p.metadataSchema)
            yield* sql`CREATE SEQUENCE ${s}.test_apply_no`
            yield* sql.unsafe(`CREATE FUNCTION "${p.metadataSchema}".test_fail_apply() RETURNS trigger LANGUAGE plpgsql AS $$
              DECLARE n bigint := nextval('"${p.metadataSchema}".test_apply_no');
              BEGIN IF n >= ${from} AND n <= ${to} THEN RAISE EXCEPTION 'test: apply % refused', n; END IF; RETURN NULL; END $$`)
            yield* sql.unsafe(`CREATE TRIGGER test_fail_apply BEFORE INSERT ON "${p.metadataSchema}".mesa_current_avus
              FOR EACH STATEMENT EXECUTE FUNCTION "${p.metadataSchema}".test_fail_apply()`)
          })
        )
      const mend = (p: Project) =>
        catalog.withSql((sql) => sql.unsafe(`DROP TRIGGER test_fail_apply ON "${p.metadataSchema}".mesa_current_avus`))

      // One apply fails (the second): the ingest's next snapshot catches up from the files, the applies go on.
      const p = yield* registerFresh("ii-fail-once")
      yield* breakIndex(p, 2, 2)
      const once = yield* c.ingestChanges({ projectId: p.projectId, actor: "importer", snapshotSize: 300, changes: mixedFor(p.irodsPath, 3_000, 4) })
      if (!once.recorded) return expect.unreachable()
      yield* c.flush
      expect(yield* expectConsistent(p, "after a failed apply")).toBeNull()
      yield* expectExactReads(p)

      // Every apply from the second on fails: the ingest stops on its catch-up (a typed catalog error), the mark
      // stays where the first apply left it, reads stay exact, and catchUpIndex finishes once it can.
      const q = yield* registerFresh("ii-fail-lasting")
      yield* breakIndex(q, 2, 1_000_000)
      const e = yield* Effect.flip(
        c.ingestChanges({ projectId: q.projectId, actor: "importer", snapshotSize: 300, changes: mixedFor(q.irodsPath, 3_000, 5) })
      )
      expect(e._tag).toBe("CatalogError")
      yield* c.flush
      const snaps = yield* c.listSnapshots(q.projectId)
      expect(snaps.length).toBeGreaterThanOrEqual(2)
      const through = yield* expectConsistent(q, "after lasting failures")
      expect(through).not.toBeNull()
      expect(through!).toBeLessThan(Math.max(...snaps.map((s) => s.snapshotId)))
      yield* expectExactReads(q)
      yield* mend(q)
      expect(yield* c.catchUpIndex(q.projectId)).toBeGreaterThan(0)
      expect(yield* expectConsistent(q, "after catchUpIndex")).toBeNull()
      yield* expectExactReads(q)
    }))

  it.effect("while an apply upserts, the ingest goes on committing and the next apply stages beside it; it upserts after", () =>
    Effect.gen(function*() {
      const c = yield* DuckLakeClient
      const catalog = yield* Catalog
      const p = yield* registerFresh("ii-overlap")
      const schema = `"${p.metadataSchema}"`
      // The first upsert into the index stalls 1.5 s inside its transaction (a statement trigger), and notes the
      // latest snapshot before and after, and how many staging sessions are open beside it (a COPY done, its
      // transaction waiting). Every later upsert notes its start. Applies that locked the commit's table would let
      // no snapshot commit meanwhile, and one connection would stage nothing beside.
      yield* catalog.withSql((sql) =>
        Effect.gen(function*() {
          yield* sql.unsafe(`CREATE SEQUENCE ${schema}.test_apply_no`)
          yield* sql.unsafe(`CREATE TABLE ${schema}.test_apply_log (n bigint, before bigint, after bigint, staged int, at timestamptz)`)
          yield* sql.unsafe(`CREATE FUNCTION ${schema}.test_slow_apply() RETURNS trigger LANGUAGE plpgsql AS $$
            DECLARE n bigint := nextval('${schema}.test_apply_no'); b bigint; a bigint; st int;
            BEGIN
              b := (SELECT max(snapshot_id) FROM ${schema}.ducklake_snapshot);
              IF n = 1 THEN PERFORM pg_sleep(1.5); END IF;
              a := (SELECT max(snapshot_id) FROM ${schema}.ducklake_snapshot);
              st := (SELECT count(*) FROM pg_stat_activity WHERE state = 'idle in transaction'
                     AND query LIKE 'COPY mesa_stage_avus%' AND pid <> pg_backend_pid());
              INSERT INTO ${schema}.test_apply_log VALUES (n, b, a, st, clock_timestamp());
              RETURN NULL;
            END $$`)
          yield* sql.unsafe(`CREATE TRIGGER test_slow_apply BEFORE INSERT ON ${schema}.mesa_current_avus
            FOR EACH STATEMENT EXECUTE FUNCTION ${schema}.test_slow_apply()`)
        })
      )
      const r = yield* c.ingestChanges({ projectId: p.projectId, actor: "importer", snapshotSize: 300, changes: mixedFor(p.irodsPath, 3_000, 8) })
      if (!r.recorded) return expect.unreachable()
      yield* c.flush
      const log = yield* catalog.withSql((sql) =>
        sql.unsafe<{ n: string; before: string; after: string; staged: number }>(
          `SELECT n, before, after, staged FROM ${schema}.test_apply_log ORDER BY n`
        )
      )
      const first = log[0]!
      expect(Number(first.n)).toBe(1)
      // Snapshots committed while the first apply held its lock.
      expect(Number(first.after)).toBeGreaterThan(Number(first.before))
      // The next snapshot's rows were staged meanwhile, on the other connection.
      expect(first.staged).toBeGreaterThanOrEqual(1)
      // Every snapshot reached the index, in order, and the mark is gone.
      expect(yield* expectConsistent(p, "after the stalled apply")).toBeNull()
      yield* expectExactReads(p)
    }))

  it.effect("values COPY must escape (tab, newline, carriage return, backslash, a literal \\N) reach the index intact", () =>
    Effect.gen(function*() {
      const c = yield* DuckLakeClient
      const p = yield* registerFresh("ii-escape")
      const odd = ["a\tb", "line\nnext", "cr\rhere", "back\\slash", "\\N", "é😀", "\\\t\\n"]
      const changes = odd.flatMap((v, i) => [
        change(`${p.irodsPath}/o${i}.dat`, `k${v}`, v, "add", { unit: v }),
        change(`${p.irodsPath}/o0.dat`, "many", v, "add")
      ])
      const r = yield* c.ingestChanges({ projectId: p.projectId, actor: "importer\twith tab", snapshotSize: 5, changes })
      if (!r.recorded) return expect.unreachable()
      yield* c.flush
      expect(yield* expectConsistent(p, "after flush")).toBeNull()
      yield* expectExactReads(p)
      expect((yield* c.getAvus(p.projectId, `${p.irodsPath}/o0.dat`)).filter((a) => a.attribute === "many").map((a) => a.value).sort())
        .toEqual([...odd].sort())

      // One change per snapshot: every column but the path has one value in the snapshot, so it reaches the upsert
      // as an SQL literal rather than through COPY (quotes and backslashes included).
      const q = yield* registerFresh("ii-escape-literal")
      const actor = "o'brien \\ \"q\" \n"
      const single = odd.map((v, i) => change(`${q.irodsPath}/o${i}.dat`, `k'${v}`, `${v}'`, "add", { unit: `\\${v}`, actor }))
      const r2 = yield* c.ingestChanges({ projectId: q.projectId, actor, snapshotSize: 1, changes: single })
      if (!r2.recorded) return expect.unreachable()
      yield* c.flush
      expect(yield* expectConsistent(q, "after flush")).toBeNull()
      for (const [i, v] of odd.entries()) {
        const avus = yield* c.getAvus(q.projectId, `${q.irodsPath}/o${i}.dat`)
        expect(avus.map((a) => [a.attribute, a.value, a.unit, a.actor])).toEqual([[`k'${v}`, `${v}'`, `\\${v}`, actor]])
      }
    }))

  it.effect("an ingest interrupted mid-way leaves a consistent index; recovery and a catch-up complete it", () =>
    Effect.gen(function*() {
      const c = yield* DuckLakeClient
      const run = Runtime.runPromise(yield* Effect.runtime<DuckLakeClient>())
      const p = yield* registerFresh("ii-interrupt")
      let go: () => void = () => {}
      const reached = new Promise<void>((resolve) => (go = resolve))
      const changes = mixedFor(p.irodsPath, 20_000, 6)
      const source = pausing(changes, [1_500], async () => {
        while ((await run(c.listSnapshots(p.projectId))).length < 4) await new Promise((r) => setTimeout(r, 5))
        go()
      })
      const fiber = yield* Effect.fork(c.ingestChanges({ projectId: p.projectId, actor: "importer", snapshotSize: 300, changes: source }))
      yield* Effect.promise(() => reached)
      // Interrupted while it writes (and applies): a few ms on.
      yield* Effect.sleep("30 millis")
      yield* Fiber.interrupt(fiber)
      yield* c.flush
      yield* expectConsistent(p, "after the interruption")
      yield* expectExactReads(p)
      // A write the interruption left pending is settled by recovery; then the index is complete.
      yield* c.recoverPendingPushes()
      yield* c.catchUpIndex(p.projectId)
      expect(yield* expectConsistent(p, "after recovery and catchUpIndex")).toBeNull()
      yield* expectExactReads(p)
      expect((yield* c.listSnapshots(p.projectId)).length).toBeGreaterThanOrEqual(4)
    }))
})

it("latestPerTriple: one row per triple, the latest (valid time, snapshot, position), in the order of each triple's first row", () => {
  let seed = 7
  const rand = (n: number) => {
    seed = (seed * 1103515245 + 12345) % 2147483648
    return Math.floor((seed / 2147483648) * n)
  }
  const row = (i: number): ChangeRow => ({
    snapshotId: 1 + rand(3),
    changeSeq: i,
    ts: new Date(1_000 * (1 + rand(3))),
    irodsPath: `/z/p/o${rand(40)}`,
    targetType: "data_object",
    objectId: null,
    attribute: `a${rand(2)}`,
    value: `v${rand(2)}`,
    unit: rand(4) === 0 ? "u" : "",
    op: rand(3) === 0 ? "delete" : "add",
    actor: "t",
    source: "import",
    viaTicket: null,
    ruleInvocation: null,
    onBehalfOf: null
  })
  /** The reference: a key per row, the latest kept at its triple's first place. */
  const reference = (rows: ReadonlyArray<ChangeRow>) => {
    const latest = new Map<string, ChangeRow>()
    for (const r of rows) {
      const k = JSON.stringify([r.irodsPath, r.attribute, r.value, r.unit])
      const s = latest.get(k)
      const later = s === undefined ||
        (r.ts.getTime() !== s.ts.getTime() ? r.ts > s.ts : r.snapshotId !== s.snapshotId ? r.snapshotId > s.snapshotId : r.changeSeq > s.changeSeq)
      if (later) latest.set(k, r)
    }
    return [...latest.values()]
  }
  let repeated = 0
  for (const n of [0, 1, 5, 30, 200, 1_000]) {
    const rows = Array.from({ length: n }, (_, i) => row(i))
    const want = reference(rows)
    if (want.length < rows.length) repeated++
    expect(latestPerTriple(rows)).toEqual(want)
    // Distinct paths: nothing can repeat, the rows come back as they are.
    const distinct = rows.map((r, i) => ({ ...r, irodsPath: `/z/p/d${i}` }))
    expect(latestPerTriple(distinct)).toBe(distinct)
  }
  expect(repeated).toBeGreaterThan(2)
})
