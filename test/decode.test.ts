/**
 * `decodeChangeFast` (the plain-JS path bulk ingest uses) must agree with the Schema decoder: whatever it accepts,
 * the Schema decoder accepts with the same result, and whatever the Schema decoder refuses, it refuses too.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Either } from "effect"
import fc from "fast-check"
import { decodeChange, decodeChangeFast, decodeChangeSchema, MAX_AVU_BYTES } from "../src/core/domain.js"

const text = fc.oneof(
  fc.string({ maxLength: 8 }),
  fc.string({ unit: "binary", maxLength: 6 }),
  fc.constantFrom("", " ", "a\u0000b", "\ud800", "x\udc00", "😀", "ok", "é".repeat(MAX_AVU_BYTES / 2 + 1), "a".repeat(MAX_AVU_BYTES + 1))
)
const maybe = <A>(a: fc.Arbitrary<A>) => fc.option(a, { nil: undefined })
const change = fc.record({
  irodsPath: fc.oneof(
    fc.constantFrom("/z/home/a/x", "/z//home/a/", "z/rel", "/z/./a", "/z/a\u0001", "/", "/z/😀/b", "/z/\ud800"),
    fc.string({ maxLength: 10 }).map((s) => `/z/${s}`),
    fc.integer()
  ),
  targetType: fc.constantFrom("data_object", "collection", "resource", "user", "file", 3),
  attribute: text,
  value: text,
  unit: maybe(text),
  op: fc.constantFrom("add", "delete", "set", "remove", null),
  actor: text,
  source: maybe(text),
  viaTicket: maybe(text),
  ruleInvocation: maybe(text),
  onBehalfOf: maybe(text),
  objectId: maybe(fc.oneof(fc.integer({ min: -3, max: 2 ** 40 }), fc.double(), fc.constant("7"))),
  ts: maybe(fc.oneof(
    fc.constantFrom("2026-01-01T00:00:00Z", "2026-01-01 10:00", "2026-01-01", "1899-12-31T00:00:00Z", "yesterday", "2026-13-45T00:00:00Z", null),
    fc.constantFrom("2024-02-30T00:00:00Z", "2023-02-29", "2024-01-01T24:00:00Z", "2024-12-31T23:59:60Z", "2024-01-01T00:00:00+24:00", "2024-02-29T12:00:00+02"),
    fc.integer({ min: -1e13, max: 1e13 }),
    fc.date({ noInvalidDate: false })
  )),
  extra: maybe(fc.constant("surplus"))
}, { requiredKeys: [] })

const valid = fc.record({
  irodsPath: fc.string({ minLength: 1, maxLength: 10 }).map((s) => `/z/home/${s.replace(/[./\u0000-\u001f\u007f]/g, "_")}`),
  targetType: fc.constantFrom("data_object", "collection"),
  attribute: fc.string({ minLength: 1, maxLength: 8 }).map((s) => `a${s}`),
  value: fc.string({ unit: "grapheme", minLength: 1, maxLength: 6 }).map((s) => `v${s}`),
  unit: maybe(fc.string({ maxLength: 4 })),
  op: fc.constantFrom("add", "delete", "set"),
  actor: fc.constantFrom("alice", "bob#tempZone"),
  source: maybe(fc.constantFrom("mesa-mcp:tool", "rule")),
  objectId: maybe(fc.integer({ min: 1, max: 2 ** 40 })),
  ts: maybe(fc.oneof(fc.constantFrom("2026-01-01T00:00:00Z", "2026-01-01 10:00", "2026-01-01+0200"), fc.integer({ min: 0, max: 2e12 })))
}, { requiredKeys: ["irodsPath", "targetType", "attribute", "value", "op", "actor"] })
/** A valid change with one field (maybe) replaced by a field from the hostile generator. */
const mostlyValid = fc.tuple(valid, change, fc.constantFrom(...Object.keys(change_keys()), "none")).map(([ok, bad, key]) =>
  key === "none" ? ok : { ...ok, [key]: (bad as Record<string, unknown>)[key] }
)
function change_keys() {
  return { irodsPath: 1, targetType: 1, attribute: 1, value: 1, unit: 1, op: 1, actor: 1, source: 1, viaTicket: 1, ruleInvocation: 1, onBehalfOf: 1, objectId: 1, ts: 1, extra: 1 }
}

const run = <A, E>(e: Effect.Effect<A, E>) => Effect.runSync(Effect.either(e))

describe("decodeChangeFast", () => {
  it("accepts exactly what the Schema decoder accepts, with the same result", () => {
    let fastHits = 0
    fc.assert(
      fc.property(fc.oneof(change, mostlyValid), (raw) => {
        const slow = run(decodeChangeSchema(raw, 0))
        const fast = decodeChangeFast(raw)
        if (fast !== undefined) {
          fastHits++
          expect(Either.isRight(slow)).toBe(true)
          if (Either.isRight(slow)) expect(fast).toEqual(slow.right)
        }
        if (Either.isLeft(slow)) expect(fast).toBeUndefined()
        // The public decoder gives the Schema decoder's answer either way.
        expect(run(decodeChange(raw, 0))).toEqual(slow)
      }),
      { numRuns: 3000 }
    )
    // The comparison means something only if the fast path answers a fair share of valid inputs.
    expect(fastHits).toBeGreaterThan(300)
  })

  it("refuses every impossible date as the Schema decoder does, naming ts (issue 16, defect 8)", () => {
    const pad = (n: number) => String(n).padStart(2, "0")
    const leap = (y: number) => y % 4 === 0 && (y % 100 !== 0 || y % 400 === 0)
    const last = (y: number, m: number) => (m === 2 ? (leap(y) ? 29 : 28) : [4, 6, 9, 11].includes(m) ? 30 : 31)
    /** A timestamp with exactly one calendar field out of range. */
    const impossible = fc.tuple(
      fc.integer({ min: 1901, max: 9998 }),
      fc.integer({ min: 1, max: 12 }),
      fc.constantFrom("month", "day", "hour", "minute", "second", "offset"),
      fc.integer({ min: 0, max: 99 }),
      fc.constantFrom("Z", "", "+05:30", "-0800", " ")
    ).map(([y, m, broken, n, zone]) => {
      const sep = zone === " " ? " " : "T"
      const z = zone === " " ? "" : zone
      const month = broken === "month" ? (n % 2 === 0 ? 0 : 13 + (n % 87)) : m
      const day = broken === "day" ? last(y, m) + 1 + (n % (99 - last(y, m))) : Math.min(28, 1 + n % 31)
      const hour = broken === "hour" ? 24 + (n % 76) : n % 24
      const minute = broken === "minute" ? 60 + (n % 40) : n % 60
      const second = broken === "second" ? 60 + (n % 40) : n % 60
      const offset = broken === "offset" ? (n % 2 === 0 ? `+${24 + (n % 76)}:00` : `-${pad(n % 24)}:${60 + (n % 40)}`) : z
      return `${y}-${pad(month)}-${pad(day)}${sep}${pad(hour)}:${pad(minute)}:${pad(second)}${offset}`
    })
    fc.assert(
      fc.property(valid, impossible, (ok, ts) => {
        const raw = { ...ok, ts }
        expect(decodeChangeFast(raw), ts).toBeUndefined()
        const slow = run(decodeChangeSchema(raw, 2))
        expect(Either.isLeft(slow) && [slow.left.field, slow.left.index], ts).toEqual(["ts", 2])
        expect(run(decodeChange(raw, 2))).toEqual(slow)
      }),
      { numRuns: 2000 }
    )
  })

  it("leaves unusual shapes to the Schema decoder", () => {
    class Change {
      irodsPath = "/z/a"
      targetType = "data_object"
      attribute = "k"
      value = "v"
      op = "add"
      actor = "me"
    }
    expect(decodeChangeFast(new Change())).toBeUndefined()
    expect(decodeChangeFast([])).toBeUndefined()
    expect(decodeChangeFast(null)).toBeUndefined()
    expect(decodeChangeFast({ irodsPath: "/z/a", targetType: "data_object", attribute: "k", value: "v", op: "add", actor: "me" }))
      .toMatchObject({ irodsPath: "/z/a", unit: "", source: "mesa-mcp", ts: null, objectId: null })
  })
})
