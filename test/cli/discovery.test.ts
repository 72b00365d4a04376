/**
 * Discovery's marker walk and TTL cache, over a counting stand-in for the iRODS client (no server needed).
 */
import { it } from "@effect/vitest"
import { Effect, Option, TestClock } from "effect"
import { describe, expect } from "vitest"
import { candidateRoots, isMarkerValue, make } from "../../src/operations/discovery.js"
import type { IrodsPath } from "../../src/core/domain.js"
import { notConfigured } from "../../src/client/DuckLakeClient.js"
import type { GenQuery, IrodsClientService } from "../../src/irods/IrodsClient.js"

/** A zone whose collections carry `mesa.enabled` values; counts GenQueries and the collections asked about. */
const zone = (markers: Record<string, string>) => {
  const asked: Array<ReadonlyArray<string>> = []
  const genQuery = (q: GenQuery) =>
    Effect.sync(() => {
      const cond = q.where?.find(([col]) => col === 501)?.[1] ?? ""
      const names = [...cond.matchAll(/'([^']*)'/g)].map((m) => m[1]!)
      asked.push(names)
      return names.filter((n) => markers[n] !== undefined).map((n) => [n, markers[n]!])
    })
  return { asked, irods: { genQuery } as unknown as IrodsClientService }
}

describe("discovery", () => {
  it("candidate roots: the path and its parents, deepest first, never /", () => {
    expect(candidateRoots("/z/home/a/x.csv" as IrodsPath)).toEqual(["/z/home/a/x.csv", "/z/home/a", "/z/home", "/z"])
    expect(candidateRoots("/z" as IrodsPath)).toEqual(["/z"])
  })

  it("marker values true/yes/1 in any case", () => {
    for (const v of ["true", "TRUE", "Yes", "1", " yes "]) expect(isMarkerValue(v)).toBe(true)
    for (const v of ["false", "0", "no", "", "enabled"]) expect(isMarkerValue(v)).toBe(false)
  })

  it.effect("walks parents in one query, and caches hits and misses for the TTL", () =>
    Effect.gen(function*() {
      const z = zone({ "/z/home/alice/proj": "Yes", "/z/home/bob/off": "false" })
      const d = yield* make(z.irods, notConfigured, { ttl: "300 seconds" })
      const root = yield* d.findMarkedRoot("/z/home/alice/proj/a/b.csv")
      expect(root).toEqual(Option.some("/z/home/alice/proj"))
      expect(z.asked).toEqual([["/z/home/alice/proj/a/b.csv", "/z/home/alice/proj/a", "/z/home/alice/proj", "/z/home/alice", "/z/home", "/z"]])
      // A sibling path only asks about what is not cached yet.
      yield* d.findMarkedRoot("/z/home/alice/proj/a/c.csv")
      expect(z.asked[1]).toEqual(["/z/home/alice/proj/a/c.csv"])
      // Misses are cached too: a value that is not a marker value is a miss.
      expect(yield* d.findMarkedRoot("/z/home/bob/off/x")).toEqual(Option.none())
      const n = z.asked.length
      expect(yield* d.findMarkedRoot("/z/home/bob/off/x")).toEqual(Option.none())
      expect(z.asked.length).toBe(n)
      // After the TTL everything is asked again.
      yield* TestClock.adjust("301 seconds")
      yield* d.findMarkedRoot("/z/home/bob/off/x")
      expect(z.asked.length).toBe(n + 1)
      expect(z.asked.at(-1)).toHaveLength(5)
      // invalidate forgets a path's chain.
      yield* d.invalidate("/z/home/bob/off/x")
      yield* d.findMarkedRoot("/z/home/bob/off/x")
      expect(z.asked.length).toBe(n + 2)
    }))

  it.effect("discoverProject: NotMesaEnabled without a marker", () =>
    Effect.gen(function*() {
      const d = yield* make(zone({}).irods, notConfigured)
      const e = yield* Effect.flip(d.discoverProject("/z/home/alice/x", { actor: "alice" }))
      expect(e._tag).toBe("NotMesaEnabled")
    }))
})
