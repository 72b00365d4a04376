/**
 * The bulk ingest's memory of its own rows must answer like a plain Map keyed by the full strings: the latest change
 * per triple by (valid time, snapshot, position), and the pairs touched, through growth and for keys that differ
 * only in where one part ends and the next begins.
 */
import { describe, expect, it } from "@effect/vitest"
import fc from "fast-check"
import { laterThan, PairSet, type TripleState, TripleTable } from "../src/catalog/tripleTable.js"

const part = fc.oneof(fc.constantFrom("", "a", "ab", "b", "é", "😀"), fc.string({ maxLength: 4 }))
const op = fc.record({
  triple: fc.tuple(part, part, part, part),
  ts: fc.integer({ min: 0, max: 20 }),
  snapshotId: fc.integer({ min: 1, max: 20 }),
  changeSeq: fc.integer({ min: 0, max: 5 }),
  add: fc.boolean()
})

describe("TripleTable and PairSet", () => {
  it("answer like a Map of full keys (latest change per triple, pairs touched)", () => {
    fc.assert(
      fc.property(fc.array(op, { maxLength: 400 }), fc.array(fc.tuple(part, part, part, part), { maxLength: 50 }), (ops, probes) => {
        const table = new TripleTable()
        const pairs = new PairSet()
        const ref = new Map<string, TripleState>()
        const refPairs = new Set<string>()
        for (const o of ops) {
          const [p, a, v, u] = o.triple
          table.record(p, a, v, u, o.ts, o.snapshotId, o.changeSeq, o.add)
          pairs.add(p, a)
          const k = JSON.stringify(o.triple)
          const cur = ref.get(k)
          const next = { ts: o.ts, snapshotId: o.snapshotId, changeSeq: o.changeSeq, add: o.add }
          if (cur === undefined || laterThan(next, cur)) ref.set(k, next)
          refPairs.add(JSON.stringify([p, a]))
        }
        expect(table.size).toBe(ref.size)
        expect(pairs.size).toBe(refPairs.size)
        for (const t of [...ops.map((o) => o.triple), ...probes]) {
          expect(table.get(...t)).toEqual(ref.get(JSON.stringify(t)))
          expect(pairs.has(t[0], t[1])).toBe(refPairs.has(JSON.stringify([t[0], t[1]])))
        }
      }),
      { numRuns: 200 }
    )
  })

  it("keep every key through many growths", () => {
    const table = new TripleTable()
    const n = 300_000
    for (let i = 0; i < n; i++) table.record(`/z/p/o${i % 50_000}`, `a${i % 7}`, `v${i}`, "", i, 2, 0, i % 3 !== 0)
    expect(table.size).toBe(n)
    for (let i = 0; i < n; i += 997) {
      expect(table.get(`/z/p/o${i % 50_000}`, `a${i % 7}`, `v${i}`, "")).toEqual({ ts: i, snapshotId: 2, changeSeq: 0, add: i % 3 !== 0 })
    }
    expect(table.get("/z/p/o1", "a1", "never", "")).toBeUndefined()
  })
})
