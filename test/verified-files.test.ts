/**
 * The client's record of files already checked against the catalog's checksum is bounded: the least recently used
 * entry leaves first, so a long-running writer (whose compactions read every small file once) does not keep one
 * entry per snapshot it ever wrote.
 */
import { describe, expect, it } from "@effect/vitest"
import { markVerified, stillVerified, VERIFIED_CAP } from "../src/client/files.js"

describe("verified files", () => {
  it("never holds more than the cap; the least recently used leaves first", () => {
    const m = new Map<string, string>()
    for (let i = 0; i < 5; i++) markVerified(m, `f${i}`, `p${i}`, 4)
    expect([...m.keys()]).toEqual(["f1", "f2", "f3", "f4"])
    // A hit refreshes an entry; the next insertion evicts the oldest untouched one.
    expect(stillVerified(m, "f1", "p1")).toBe(true)
    markVerified(m, "f5", "p5", 4)
    expect([...m.keys()]).toEqual(["f3", "f4", "f1", "f5"])
    // A different fingerprint is no hit and changes nothing; re-verifying replaces the entry without evicting.
    expect(stillVerified(m, "f3", "changed")).toBe(false)
    expect(m.get("f3")).toBe("p3")
    markVerified(m, "f3", "changed", 4)
    expect(m.size).toBe(4)
    expect([...m.entries()].at(-1)).toEqual(["f3", "changed"])
  })

  it("the default cap holds a lake's live files, not every file a writer ever wrote", () => {
    const m = new Map<string, string>()
    for (let i = 0; i < VERIFIED_CAP * 3; i++) markVerified(m, `/zone/lake/snapshot_${i}.parquet`, `sum|${i}`)
    expect(m.size).toBe(VERIFIED_CAP)
    expect(m.has(`/zone/lake/snapshot_${VERIFIED_CAP * 3 - 1}.parquet`)).toBe(true)
    expect(m.has(`/zone/lake/snapshot_0.parquet`)).toBe(false)
  })
})
