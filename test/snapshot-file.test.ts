/**
 * A snapshot file as `DuckDb.writeSnapshotFile` writes it: columns that vary within a batch are staged through data
 * chunks (numbers and times as DOUBLE), constant ones are written as SQL literals, and the statistics of large
 * batches come partly from DuckDB and partly from one row. Whatever the mix, the file must hold exactly the rows
 * given, and the statistics returned must equal what DuckDB computes from the file itself (`describeFile`, which
 * recovery and rebuild use).
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import fc from "fast-check"
import * as fs from "node:fs"
import * as os from "node:os"
import * as nodePath from "node:path"
import type { ChangeRow } from "../src/core/domain.js"
import { DuckDb, layer as duckLayer } from "../src/duckdb/DuckDb.js"
import { avuFields } from "./arbitraries.js"

const text = fc.oneof(
  fc.string({ maxLength: 10 }),
  fc.string({ unit: "grapheme", maxLength: 5 }),
  fc.constantFrom("", "a", "é", "\uFF5E", "😀", "it's", "x\u0000y")
)

/**
 * Each field constant across the batch, taken from a small pool (dictionary-encoded when staged) or drawn per row,
 * so every mix of literal, dictionary and plain staged columns occurs.
 */
const field = <A>(arb: fc.Arbitrary<A>) =>
  fc.oneof(
    arb.map((v) => (_i: number) => v),
    fc.array(arb, { minLength: 2, maxLength: 6 }).map((pool) => (i: number) => pool[i % pool.length]!),
    fc.constant(undefined)
  ).map((k) => (k === undefined ? null : k))

/** The varying fields of a row, each drawn per batch through `field` or per row. */
const { ts, ...avus } = avuFields(text)
const fields = { ts, irodsPath: text.map((t) => `/zone/p/${t}`), ...avus }
type Fields = { [K in keyof typeof fields]: (typeof fields)[K] extends fc.Arbitrary<infer A> ? A : never }
type Spec = { [K in keyof Fields]: ((i: number) => Fields[K]) | null }

const batch = (minLength: number, maxLength: number) =>
  fc.record({
    n: fc.integer({ min: minLength, max: maxLength }),
    snapshotId: fc.integer({ min: 2, max: 2 ** 40 }),
    spec: fc.record(Object.fromEntries(Object.entries(fields).map(([k, arb]) => [k, field(arb as fc.Arbitrary<unknown>)])) as {
      [K in keyof Spec]: fc.Arbitrary<Spec[K]>
    })
  }).chain(({ n, snapshotId, spec }) =>
    fc.array(fc.record(fields), { minLength: n, maxLength: n }).map((drawn) =>
      drawn.map((d, i): ChangeRow => {
        const pick = <K extends keyof Fields>(k: K): Fields[K] => {
          const f = spec[k] as ((i: number) => Fields[K]) | null
          return f === null ? d[k] : f(i)
        }
        return {
          snapshotId,
          changeSeq: i,
          ts: pick("ts"),
          irodsPath: pick("irodsPath"),
          targetType: pick("targetType"),
          objectId: pick("objectId"),
          attribute: pick("attribute"),
          value: pick("value"),
          unit: pick("unit"),
          op: pick("op"),
          actor: pick("actor"),
          source: "test",
          viaTicket: pick("viaTicket"),
          ruleInvocation: null,
          onBehalfOf: null
        }
      })
    )
  )

describe("snapshot files", () => {
  const dir = fs.mkdtempSync(nodePath.join(os.tmpdir(), "mesa-snapfile-"))
  let k = 0
  const roundTrip = (rows: ReadonlyArray<ChangeRow>) =>
    Effect.gen(function*() {
      const duck = yield* DuckDb
      const file = nodePath.join(dir, `f${k++}.parquet`)
      const written = yield* duck.writeSnapshotFile(file, rows, "project-x", { snapshot_id: String(rows[0]!.snapshotId) })
      const described = yield* duck.describeFile(file)
      expect(written.recordCount).toBe(rows.length)
      // Sizes come from the writer's own report and may differ from the footer's; the values may not.
      const strip = (s: typeof written.stats) => s.map(({ columnSizeBytes: _, ...rest }) => rest)
      expect(strip(written.stats)).toEqual(strip(described.stats))
      const back = yield* duck.changes([file], {}, { order: "oldest" })
      expect([...back].sort((a, b) => a.changeSeq - b.changeSeq)).toEqual(rows)
      fs.rmSync(file)
    })

  it.effect("hold exactly the rows, with the statistics DuckDB computes from the file (small batches)", () =>
    Effect.promise(() =>
      fc.assert(
        fc.asyncProperty(batch(1, 12), (rows) => Effect.runPromise(roundTrip(rows).pipe(Effect.provide(duckLayer())))),
        { numRuns: 60 }
      )
    ))

  it.effect("hold exactly the rows, with the statistics DuckDB computes from the file (bulk batches)", () =>
    Effect.promise(() =>
      fc.assert(
        fc.asyncProperty(batch(2_000, 2_600), (rows) => Effect.runPromise(roundTrip(rows).pipe(Effect.provide(duckLayer())))),
        { numRuns: 12, endOnFailure: true }
      )
    ), 120_000)
})
