/**
 * The column statistics we compute in JS for each new Parquet file must equal DuckDB's own aggregates over the
 * same rows (`CAST(min(col) AS VARCHAR)` …): the catalog's min/max drive file pruning for us and for the DuckLake
 * extension, so a bound that is off by one character or one millisecond would make readers skip a file wrongly.
 */
import { describe, expect, it } from "@effect/vitest"
import { DuckDBInstance, DuckDBTimestampTZValue } from "@duckdb/node-api"
import fc from "fast-check"
import { COLUMNS } from "../src/catalog/ducklakeSchema.js"
import { batchStats, duckTimestampText } from "../src/catalog/stats.js"
import type { ChangeRow } from "../src/core/domain.js"
import { avuFields } from "./arbitraries.js"

const text = fc.oneof(
  fc.string({ maxLength: 12 }),
  fc.string({ unit: "grapheme", maxLength: 6 }),
  fc.constantFrom("", "a", "A", "é", "\uFF5E", "😀", "z\u00e9", "Z")
)
const row = fc.record({
  snapshotId: fc.integer({ min: 1, max: 2 ** 40 }),
  changeSeq: fc.integer({ min: 0, max: 100_000 }),
  irodsPath: text,
  ...avuFields(text),
  source: text,
  ruleInvocation: fc.option(text, { nil: null }),
  onBehalfOf: fc.option(text, { nil: null })
}) satisfies fc.Arbitrary<ChangeRow>

describe("batch column statistics", () => {
  it("timestamps print as DuckDB prints them", () => {
    expect(duckTimestampText(new Date("2026-01-01T00:00:00.120Z"))).toBe("2026-01-01 00:00:00.12+00")
    expect(duckTimestampText(new Date("0044-03-15T00:00:00.001Z"))).toBe("0044-03-15 00:00:00.001+00")
    expect(duckTimestampText(new Date("-000001-01-01T00:00:00Z"))).toBeUndefined()
  })

  it("equal DuckDB's aggregates over the same rows (random batches, any text)", async () => {
    const db = await DuckDBInstance.create(":memory:")
    const con = await db.connect()
    await con.run("SET TimeZone = 'UTC'")
    await con.run(`CREATE TABLE b (${COLUMNS.map((c) => `${c.name} ${c.duck}`).join(", ")})`)
    const aggregates = COLUMNS.map((c) =>
      `CAST(min(${c.name}) AS VARCHAR), CAST(max(${c.name}) AS VARCHAR), CAST(count(${c.name}) AS INTEGER)`
    ).join(", ")
    try {
      await fc.assert(
        fc.asyncProperty(fc.array(row, { minLength: 1, maxLength: 12 }), async (rows) => {
          await con.run("DELETE FROM b")
          const app = await con.createAppender("b")
          for (const r of rows) {
            app.appendBigInt(BigInt(r.snapshotId))
            app.appendInteger(r.changeSeq)
            app.appendTimestampTZ(new DuckDBTimestampTZValue(BigInt(r.ts.getTime()) * 1000n))
            for (const v of [r.irodsPath, r.targetType]) app.appendVarchar(v)
            if (r.objectId === null) app.appendNull()
            else app.appendBigInt(BigInt(r.objectId))
            for (const v of [r.attribute, r.value, r.unit, r.op, r.actor, r.source]) app.appendVarchar(v)
            for (const v of [r.viaTicket, r.ruleInvocation, r.onBehalfOf]) {
              if (v === null) app.appendNull()
              else app.appendVarchar(v)
            }
            app.appendVarchar("project-x")
            app.endRow()
          }
          app.closeSync()
          const duck = (await con.runAndReadAll(`SELECT ${aggregates} FROM b`)).getRows()[0]!
          const ours = batchStats(rows, "project-x")!.flatMap((c) => [c.min, c.max, c.valueCount])
          expect(ours).toEqual(duck)
        }),
        { numRuns: 300 }
      )
    } finally {
      con.closeSync()
      db.closeSync()
    }
  })
})
