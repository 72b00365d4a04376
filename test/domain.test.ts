/** The domain's parsers: paths, timestamps and changes, with the field each refusal names. */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Either } from "effect"
import fc from "fast-check"
import { decodeChange, isWithin, MAX_TIME, MIN_TIME, parseIrodsPath, parseTimestamp } from "../src/core/domain.js"

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

describe("impossible dates (issue 16, defect 8)", () => {
  const field = (s: unknown, name = "timestamp") => {
    const r = run(parseTimestamp(s, name))
    return Either.isLeft(r) ? { field: r.left.field, reason: r.left.reason } : r.right.toISOString()
  }
  it("refuse days past the end of the month, hour 24 and other out-of-range fields, naming why", () => {
    const cases: ReadonlyArray<readonly [string, RegExp]> = [
      ["2024-02-30T00:00:00Z", /February 2024 has 29 days/],
      ["2023-02-29T00:00:00Z", /February 2023 has 28 days/],
      ["2024-04-31", /April 2024 has 30 days/],
      ["2024-06-31 12:00:00+02:00", /June 2024 has 30 days/],
      ["2024-01-01T24:00:00Z", /hour 24/],
      ["2024-01-01T24:00", /hour 24/],
      ["2024-01-01T23:60:00Z", /minute 60/],
      ["2024-12-31T23:59:60Z", /second 60.*leap second/],
      ["2024-00-10T00:00:00Z", /month 00/],
      ["2024-13-01", /month 13/],
      ["2024-01-00T00:00:00Z", /day 00/],
      ["2024-01-01T00:00:00+24:00", /offset \+24:00/],
      ["2024-01-01T00:00:00-05:60", /offset -05:60/],
      ["2024-01-01T00:00:00+0299", /offset \+0299/]
    ]
    for (const [s, why] of cases) {
      for (const name of ["ts", "knownAt", "timestamp", "from"]) {
        const r = field(s, name)
        expect(r, s).toMatchObject({ field: name })
        if (typeof r !== "string") expect(r.reason, s).toMatch(why)
      }
      // The same refusal whichever way the change is decoded.
      const c = run(decodeChange({ irodsPath: "/z/p/o", targetType: "data_object", attribute: "a", value: "v", op: "add", actor: "alice", ts: s }, 4))
      expect(Either.isLeft(c) && [c.left.field, c.left.index], s).toEqual(["ts", 4])
    }
  })
  it("accept the last day of every month, leap days, 23:59:59.999… and offsets up to ±23:59", () => {
    expect(field("2024-02-29T23:59:59.999999Z")).toBe("2024-02-29T23:59:59.999Z")
    expect(field("2000-02-29")).toBe("2000-02-29T00:00:00.000Z")
    expect(Either.isLeft(run(parseTimestamp("1900-02-29")))).toBe(true)
    expect(Either.isLeft(run(parseTimestamp("2100-02-29T00:00:00Z")))).toBe(true)
    for (const [m, d] of [[1, 31], [3, 31], [4, 30], [5, 31], [6, 30], [7, 31], [8, 31], [9, 30], [10, 31], [11, 30], [12, 31]]) {
      const s = `2023-${String(m).padStart(2, "0")}-${d}`
      expect(field(s), s).toBe(`${s}T00:00:00.000Z`)
    }
    expect(field("2024-01-01T00:00:00+23:59")).toBe("2023-12-31T00:01:00.000Z")
    expect(field("2024-01-01T00:00:00-23:59")).toBe("2024-01-01T23:59:00.000Z")
    expect(field("2024-01-01T00:00:00-00:00")).toBe("2024-01-01T00:00:00.000Z")
    expect(field("2024-01-01T02:00:00+02")).toBe("2024-01-01T00:00:00.000Z")
    expect(field("2024-01-01t00:00z")).toBe("2024-01-01T00:00:00.000Z")
    // An invalid Date is refused; the range is checked after the offset is applied.
    expect(field(new Date(Number.NaN), "knownAt")).toMatchObject({ field: "knownAt" })
    expect(field("1900-01-01T00:30:00+01:00")).toMatchObject({ reason: expect.stringMatching(/outside 1900-01-01/) })
    expect(field("1899-12-31T23:00:00-01:00")).toBe("1900-01-01T00:00:00.000Z")
    expect(field("0050-01-01T00:00:00Z")).toMatchObject({ reason: expect.stringMatching(/outside/) })
    expect(field("9999-12-31T23:59:59.999Z")).toBe("9999-12-31T23:59:59.999Z")
  })

  const pad = (n: number, w = 2) => String(n).padStart(w, "0")
  const instant = fc.integer({ min: MIN_TIME, max: MAX_TIME }).map((ms) => new Date(ms))
  /** An offset in minutes (±23:59) and how it is written (`±HH` only for whole hours). */
  const offset = fc.oneof(
    fc.tuple(fc.integer({ min: -(23 * 60 + 59), max: 23 * 60 + 59 }), fc.constantFrom("extended", "basic")),
    fc.tuple(fc.integer({ min: -23, max: 23 }).map((h) => h * 60), fc.constant("hours"))
  )
  it("every valid instant round-trips, in every accepted form", () => {
    fc.assert(
      fc.property(instant, offset, fc.constantFrom("T", " ", "t"), fc.integer({ min: 0, max: 999_999 }), (d, [minutes, style], sep, sub) => {
        const iso = d.toISOString()
        expect(field(iso)).toBe(iso)
        expect(field(d)).toBe(iso)
        expect(field(d.getTime())).toBe(iso)
        expect(field(iso.slice(0, -1))).toBe(iso) // zone-less = UTC
        // The wall-clock time at that offset, with extra sub-millisecond digits (truncated).
        const local = new Date(d.getTime() + minutes * 60_000)
        const sign = minutes < 0 ? "-" : "+"
        const abs = Math.abs(minutes)
        const hh = `${sign}${pad(Math.floor(abs / 60))}`
        const zone = style === "extended" ? `${hh}:${pad(abs % 60)}` : style === "basic" ? `${hh}${pad(abs % 60)}` : hh
        const wall = local.toISOString().slice(0, 10) + sep + local.toISOString().slice(11, 23) + pad(sub, 6) + zone
        if (local.getTime() >= MIN_TIME && local.getTime() <= MAX_TIME) expect(field(wall), wall).toBe(iso)
      }),
      { numRuns: 2000 }
    )
  })
  it("every impossible calendar field is refused", () => {
    const daysIn = (y: number, m: number) => new Date(Date.UTC(2000, m, 0)).getUTCDate() - (m === 2 && !(y % 4 === 0 && (y % 100 !== 0 || y % 400 === 0)) ? 1 : 0)
    const impossible = fc.record({
      y: fc.integer({ min: 1901, max: 9998 }),
      m: fc.integer({ min: 1, max: 12 }),
      d: fc.integer({ min: 1, max: 28 }),
      h: fc.integer({ min: 0, max: 23 }),
      mi: fc.integer({ min: 0, max: 59 }),
      s: fc.integer({ min: 0, max: 59 }),
      zone: fc.constantFrom<string>("Z", "", "+01:00", "-0330"),
      broken: fc.constantFrom("month", "day", "hour", "minute", "second", "offset-hour", "offset-minute"),
      by: fc.integer({ min: 0, max: 60 })
    }).map((c) => {
      let { d, h, m, mi, s, zone } = c
      switch (c.broken) {
        case "month": m = c.by % 2 === 0 ? 0 : 13 + (c.by % 87); break
        case "day": d = c.by % 3 === 0 ? 0 : daysIn(c.y, m) + 1 + (c.by % (99 - daysIn(c.y, m))); break
        case "hour": h = 24 + (c.by % 76); break
        case "minute": mi = 60 + (c.by % 40); break
        case "second": s = 60 + (c.by % 40); break
        case "offset-hour": zone = `${c.by % 2 ? "+" : "-"}${24 + (c.by % 76)}:00`; break
        case "offset-minute": zone = `${c.by % 2 ? "+" : "-"}${pad(c.by % 24)}${60 + (c.by % 40)}`; break
      }
      return `${c.y}-${pad(m)}-${pad(d)}T${pad(h)}:${pad(mi)}:${pad(s)}${zone}`
    })
    fc.assert(
      fc.property(impossible, (s) => {
        expect(field(s), s).toMatchObject({ field: "timestamp" })
      }),
      { numRuns: 2000 }
    )
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
