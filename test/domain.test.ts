/** The domain's parsers: paths, timestamps and changes, with the field each refusal names. */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Either } from "effect"
import { decodeChange, isWithin, parseIrodsPath, parseTimestamp } from "../src/domain.js"

const run = <A, E>(e: Effect.Effect<A, E>) => Effect.runSync(Effect.either(e))

describe("iRODS paths", () => {
  it("normalise repeated and trailing slashes", () => {
    expect(run(parseIrodsPath("/zone//home///a/"))).toEqual(Either.right("/zone/home/a"))
    expect(run(parseIrodsPath("/"))).toEqual(Either.right("/"))
    expect(run(parseIrodsPath("/zone/ünï cödé/'q'&\"x\""))).toEqual(Either.right("/zone/ünï cödé/'q'&\"x\""))
  })
  it("refuse relative, dot segments, control characters, lone surrogates and over-long paths", () => {
    for (const bad of ["", "a/b", "/a/./b", "/a/../b", "/..", "/a\u0000", "/a\u001fb", "/a\u007f", "/\ud800x", `/${"x".repeat(1087)}`, 42, null]) {
      const r = run(parseIrodsPath(bad))
      expect(Either.isLeft(r), String(bad)).toBe(true)
      if (Either.isLeft(r)) expect(r.left.field).toBe("irodsPath")
    }
    expect(Either.isRight(run(parseIrodsPath(`/${"x".repeat(1086)}`)))).toBe(true)
  })
  it("containment is by whole segments", () => {
    expect(isWithin("/z/a/b", "/z/a")).toBe(true)
    expect(isWithin("/z/a", "/z/a")).toBe(true)
    expect(isWithin("/z/ab", "/z/a")).toBe(false)
    expect(isWithin("/z/a", "/")).toBe(true)
  })
})

describe("timestamps", () => {
  const ms = (s: unknown) => Either.map(run(parseTimestamp(s)), (d) => d.toISOString())
  it("convert offsets to UTC and take naive times as UTC", () => {
    expect(ms("2026-03-01T12:00:00+02:00")).toEqual(Either.right("2026-03-01T10:00:00.000Z"))
    expect(ms("2026-03-01 12:00:00-0130")).toEqual(Either.right("2026-03-01T13:30:00.000Z"))
    expect(ms("2026-03-01T12:00:00.123456Z")).toEqual(Either.right("2026-03-01T12:00:00.123Z"))
    expect(ms("2026-03-01T12:00:00")).toEqual(Either.right("2026-03-01T12:00:00.000Z"))
    expect(ms("2026-03-01")).toEqual(Either.right("2026-03-01T00:00:00.000Z"))
    expect(ms(new Date(0))).toEqual(Either.right("1970-01-01T00:00:00.000Z"))
    expect(ms(1_700_000_000_000)).toEqual(Either.right("2023-11-14T22:13:20.000Z"))
  })
  it("refuse anything else", () => {
    for (const bad of ["now", "03/01/2026", "2026-13-01T00:00:00Z", "2026-03-01T12:00Z junk", "", {}, Number.NaN, Infinity, new Date("x"), "1899-12-31T23:59:59Z", "+010000-01-01T00:00:00Z"]) {
      expect(Either.isLeft(run(parseTimestamp(bad))), String(bad)).toBe(true)
    }
  })
})

describe("changes", () => {
  const base = { irodsPath: "/z/p/o", targetType: "data_object", attribute: "a", value: "v", op: "add", actor: "alice" }
  it("fill defaults: empty unit, source mesa-mcp, valid time unset", () => {
    const r = run(decodeChange(base, 0))
    expect(Either.isRight(r)).toBe(true)
    if (Either.isRight(r)) {
      expect(r.right).toMatchObject({ unit: "", source: "mesa-mcp", ts: null, viaTicket: null, ruleInvocation: null, objectId: null })
    }
  })
  it("accept every target type of the original and refuse others", () => {
    for (const t of ["data_object", "collection", "resource", "user"]) expect(Either.isRight(run(decodeChange({ ...base, targetType: t }, 0)))).toBe(true)
    const r = run(decodeChange({ ...base, targetType: "file" }, 3))
    expect(Either.isLeft(r) && [r.left.field, r.left.index]).toEqual(["targetType", 3])
  })
})
