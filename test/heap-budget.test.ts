/**
 * The bulk ingest's heap bound (src/client/heapBudget.ts): a full collection is asked for once the V8 heap has grown
 * by the headroom, never with a headroom of 0, and at the end once it has grown by a quarter of it.
 */
import { describe, expect, it } from "@effect/vitest"
import * as v8 from "node:v8"
import { makeHeapBudget } from "../src/client/heapBudget.js"

const used = () => v8.getHeapStatistics().used_heap_size
const MB = 1024 * 1024

/**
 * About `mb` megabytes of small arrays (as an ingest's rows are), held until `drop` makes them garbage: nothing is
 * allocated between the drop and the check that follows, so no collection of V8's own comes between.
 */
const allocate = (mb: number) => {
  const kept: Array<Array<number>> = []
  for (let i = 0; i < (mb * MB) / 800; i++) kept.push(Array.from({ length: 90 }, (_, k) => k + i))
  return { drop: () => void (kept.length = 0) }
}

describe("heap budget", () => {
  it("collects once the heap has grown by the headroom, and not before", () => {
    const budget = makeHeapBudget(16)
    budget.check()
    const before = budget.collections().count
    const held = allocate(40)
    const grown = used()
    held.drop()
    budget.check()
    expect(budget.collections().count).toBe(before + 1)
    expect(used()).toBeLessThan(grown - 20 * MB)
    // Right after, the heap has not grown again: nothing to do.
    budget.check()
    expect(budget.collections().count).toBe(before + 1)
  })

  it("at the end collects once the heap has grown by a quarter of the headroom", () => {
    const budget = makeHeapBudget(64)
    const held = allocate(30)
    held.drop()
    budget.check()
    expect(budget.collections().count).toBe(0)
    budget.end()
    expect(budget.collections().count).toBe(1)
  })
  // Last: it leaves its garbage behind (a collection of V8's own during another test's allocation could take it).
  it("with a headroom of 0 never collects", () => {
    const budget = makeHeapBudget(0)
    allocate(40).drop()
    budget.check()
    budget.end()
    expect(budget.collections().count).toBe(0)
  })
})
