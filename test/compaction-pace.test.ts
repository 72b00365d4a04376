/**
 * Automatic compaction lets foreground writes go first: before each step it waits while a `recordChanges` is in
 * flight, for a bounded time only (a writer that never pauses slows compaction down, never stops it).
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { afterForeground } from "../src/client/compaction.js"

const elapsed = <A, E>(e: Effect.Effect<A, E>) =>
  Effect.gen(function*() {
    const t = performance.now()
    yield* e
    return performance.now() - t
  })

describe("compaction pacing", () => {
  it.live("goes on at once when no write is in flight", () =>
    Effect.gen(function*() {
      expect(yield* elapsed(afterForeground({ active: 0 }, 1_000))).toBeLessThan(100)
    }))

  it.live("waits while a write is in flight and goes on as soon as it ends", () =>
    Effect.gen(function*() {
      const foreground = { active: 1 }
      setTimeout(() => (foreground.active = 0), 50)
      const ms = yield* elapsed(afterForeground(foreground, 5_000))
      expect(ms).toBeGreaterThanOrEqual(45)
      expect(ms).toBeLessThan(2_000)
    }))

  it.live("waits no longer than its bound behind writes that never pause", () =>
    Effect.gen(function*() {
      const ms = yield* elapsed(afterForeground({ active: 2 }, 60))
      expect(ms).toBeGreaterThanOrEqual(55)
      expect(ms).toBeLessThan(2_000)
    }))
})
