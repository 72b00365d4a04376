/**
 * Hostile input, property-based (fast-check): random unicode, NUL and control characters, `..` and double
 * slashes, values of exactly 2700 and 2701 bytes, SQL metacharacters and quotes, timestamps out of range or without
 * a zone, huge batches. Each call is a typed `InvalidChange` with nothing written, or a write whose every field
 * reads back verbatim (from the Parquet file and from the current-state index) — never a defect, another error or
 * a partial write.
 *
 *   RELIABILITY_HOSTILE_RUNS   batches per property (default 250)
 */
import { expect, layer } from "@effect/vitest"
import { Cause, Effect, Exit } from "effect"
import fc from "fast-check"
import * as nodePath from "node:path"
import { inject } from "vitest"
import type { Project } from "../../src/core/domain.js"
import { DuckLakeClient } from "../../src/client/DuckLakeClient.js"
import { embedded, freshRoot, listTree } from "../support.js"
import { catalogView } from "./harness.js"
import { addTally } from "./tally.js"

const RUNS = Number(process.env.RELIABILITY_HOSTILE_RUNS ?? 250)
const { dirs, layer: Live } = embedded("hostile")
let tried = 0

/** The documented path normalisation: repeated slashes collapsed, a trailing slash dropped. */
const normalised = (s: string) => s.replace(/\/{2,}/g, "/").replace(/(.)\/$/, "$1")
const bytes = (s: string) => Buffer.byteLength(s, "utf8")
const wellFormed = (s: string) => !/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/.test(s)
/** The documented rule for attribute, value, actor, source: non-blank, no NUL, valid UTF-8, at most 2700 bytes. */
const acceptable = (s: string, allowEmpty = false) =>
  (allowEmpty || s.trim().length > 0) && !s.includes("\u0000") && wellFormed(s) && bytes(s) <= 2700

const SQL = [
  "'; DROP TABLE mesa_ducklake.projects; --",
  "\" OR 1=1 --",
  "$1",
  "$$; SELECT pg_sleep(10); $$",
  "\\",
  "%_%",
  "E'\\x00'",
  "'||(SELECT current_user)||'",
  "); DELETE FROM mesa_ducklake.pending_writes; --",
  "`rm -rf /`"
]
const EDGE = [
  "x".repeat(2700),
  "x".repeat(2701),
  "é".repeat(1350),
  "é".repeat(1350) + "x",
  "😀".repeat(675),
  "😀".repeat(675) + "x",
  "a\u0000b",
  "\u0000",
  " ",
  "\t\n\r\u0001\u001f\u007f",
  "\ud800",
  "a\udc00b",
  "\u200b",
  "\u202e evil",
  "..",
  "../../etc/passwd",
  "//double//slash//"
]

// Mostly acceptable (so that many batches are written and read back), with refusals mixed in.
const text = fc.oneof(
  { weight: 8, arbitrary: fc.string({ unit: "grapheme", minLength: 1, maxLength: 40 }) },
  { weight: 1, arbitrary: fc.string({ unit: "binary", minLength: 0, maxLength: 40 }) },
  { weight: 1, arbitrary: fc.string({ unit: fc.constantFrom("\u0000", "\u0001", "\n", "\t", "\u007f", "a"), maxLength: 10 }) },
  { weight: 4, arbitrary: fc.constantFrom(...SQL) },
  { weight: 2, arbitrary: fc.constantFrom(...EDGE) }
)
const provenance = fc.oneof({ weight: 6, arbitrary: fc.constant("mesa-mcp") }, { weight: 1, arbitrary: text })

const segment = fc.oneof(
  { weight: 4, arbitrary: fc.string({ unit: "grapheme", minLength: 1, maxLength: 12 }).filter((s) => !s.includes("/")) },
  { weight: 1, arbitrary: fc.constantFrom("..", ".", "", "a\u0000b", "a\nb", "%", "_", "'", "\\", "\ud800", "x".repeat(1100)) }
)
const pathUnder = (root: string) =>
  fc.array(segment, { minLength: 1, maxLength: 4 }).map((segs) => `${root}/${segs.join(fc.sample(fc.constantFrom("/", "//"), 1)[0]!)}`)

/** A timestamp input and the instant it must be stored as, or "refuse". */
const timestamp = fc.oneof(
  fc.constant({ input: undefined as unknown, expect: "default" as const }),
  fc.constant({ input: undefined as unknown, expect: "default" as const }),
  fc.date({ min: new Date(Date.UTC(1900, 0, 1)), max: new Date() , noInvalidDate: true }).map((d) => ({ input: d.toISOString(), expect: d.getTime() })),
  fc.date({ min: new Date(Date.UTC(1900, 0, 2)), max: new Date(Date.now() - 86_400_000), noInvalidDate: true }).chain((d) =>
    fc.constantFrom("+05:30", "-08:00", "+00:00", "+14:00").map((off) => {
      const local = d.toISOString().slice(0, 19)
      return { input: `${local}${off}`, expect: Date.parse(`${local}${off}`) }
    })
  ),
  // Without a zone: taken as UTC (documented).
  fc.date({ min: new Date(Date.UTC(1900, 0, 2)), max: new Date(Date.now() - 86_400_000), noInvalidDate: true }).map((d) => ({
    input: d.toISOString().slice(0, 23),
    expect: d.getTime()
  })),
  fc.date({ min: new Date(-8.64e15), max: new Date(8.64e15), noInvalidDate: false }).map((d) => {
    const ms = d.getTime()
    const ok = Number.isFinite(ms) && ms >= Date.UTC(1900, 0, 1) && ms <= Date.now() + 60_000
    return { input: d, expect: ok ? ms : "refuse" as const }
  }),
  fc.constantFrom(
    { input: "1899-12-31T23:59:59.999Z", expect: "refuse" as const },
    { input: "10000-01-01T00:00:00Z", expect: "refuse" as const },
    { input: "+275760-09-13T00:00:00Z", expect: "refuse" as const },
    { input: "yesterday", expect: "refuse" as const },
    { input: "", expect: "refuse" as const },
    { input: Number.NaN, expect: "refuse" as const },
    { input: Number.POSITIVE_INFINITY, expect: "refuse" as const },
    { input: "2999-01-01T00:00:00Z", expect: "refuse" as const },
    { input: "2024-06-01T12:00:00'; DROP TABLE x; --", expect: "refuse" as const },
    { input: { toISOString: () => "2024-01-01T00:00:00Z" }, expect: "refuse" as const }
  )
)

const hostileChange = (root: string) =>
  fc.record({
    irodsPath: fc.oneof({ weight: 3, arbitrary: fc.constant(`${root}/obj`) }, { weight: 2, arbitrary: pathUnder(root) }),
    targetType: fc.constantFrom("data_object" as const, "collection" as const),
    attribute: text,
    value: text,
    unit: text,
    op: fc.constantFrom("add" as const, "delete" as const),
    actor: provenance,
    source: provenance,
    ts: timestamp
  })

/**
 * What must not change when a call is refused: the project's catalog rows and its storage (once the commit markers
 * of earlier writes, written in the background, have landed).
 */
const footprint = (p: Project) =>
  Effect.zipRight(Effect.flatMap(DuckLakeClient, (c) => c.flush), Effect.map(catalogView(p), (v) => ({
    snapshots: v.snapshots.length,
    wal: v.wal.length,
    last: v.lastSnapshotId,
    files: listTree(nodePath.join(dirs.zoneDir, p.ducklakePath)).length
  })))

layer(Live, { timeout: "5 minutes", excludeTestServices: true })("hostile input", (it) => {
  it.effect(`random AVU fields, paths and timestamps (${RUNS} batches): typed refusal or exact round-trip`, () =>
    Effect.gen(function*() {
      const lake = yield* DuckLakeClient
      const p = yield* lake.registerProject({ irodsPath: freshRoot("hostile"), actor: "alice" })
      const batches = fc.sample(fc.array(hostileChange(p.irodsPath), { minLength: 1, maxLength: 3 }), { numRuns: RUNS, seed: 7 })
      let accepted = 0
      let refused = 0
      for (const batch of batches) {
        const changes = batch.map((c) => ({ ...c, ts: c.ts.input }))
        tried += changes.length
        const before = yield* footprint(p)
        const exit = yield* Effect.exit(lake.recordChanges({ projectId: p.projectId, actor: "hostile", changes }))
        const fieldsOk = batch.every((c) =>
          acceptable(c.attribute) && acceptable(c.value) && acceptable(c.unit, true) && acceptable(c.actor) && acceptable(c.source)
        )
        const tsOk = batch.every((c) => c.ts.expect !== "refuse")
        if (Exit.isFailure(exit)) {
          expect(Cause.isDie(exit.cause), Cause.pretty(exit.cause)).toBe(false)
          const e = Cause.squash(exit.cause) as { _tag: string; field: string }
          expect(e._tag, JSON.stringify(changes).slice(0, 300)).toBe("InvalidChange")
          // Refused only for a reason the documented rules give (the path rules are checked by the path cases).
          if (fieldsOk && tsOk) expect(e.field).toBe("irodsPath")
          expect(yield* footprint(p)).toEqual(before) // nothing written, no id burned
          refused++
          continue
        }
        expect(fieldsOk && tsOk, JSON.stringify(changes).slice(0, 300)).toBe(true)
        const r = exit.value
        if (!r.recorded) return yield* Effect.dieMessage("not recorded")
        accepted++
        // Every field back verbatim, from the Parquet file, in batch order.
        const rows = (yield* lake.getHistory(p.projectId, { limit: 1_000_000 })).filter((x) => x.snapshotId === r.snapshotId)
          .sort((a, b) => a.changeSeq - b.changeSeq)
        expect(rows.length).toBe(batch.length)
        for (const [i, c] of batch.entries()) {
          const row = rows[i]!
          expect(row.irodsPath).toBe(normalised(c.irodsPath))
          expect([row.attribute, row.value, row.unit, row.op, row.actor, row.source]).toEqual([c.attribute, c.value, c.unit, c.op, c.actor, c.source])
          if (c.ts.expect !== "default") expect(row.ts.getTime()).toBe(c.ts.expect)
        }
        // ... and from the current-state index in PostgreSQL: the last add of each triple is in effect.
        const last = new Map<string, (typeof batch)[number]>()
        for (const c of batch) last.set(JSON.stringify([normalised(c.irodsPath), c.attribute, c.value, c.unit]), c)
        for (const [key, c] of last) {
          if (c.op !== "add" || c.ts.expect !== "default") continue
          const [path] = JSON.parse(key) as [string]
          const avus = yield* lake.getAvus(p.projectId, path)
          expect(avus.some((a) => a.attribute === c.attribute && a.value === c.value && a.unit === c.unit)).toBe(true)
        }
      }
      console.log(`hostile input: ${batches.length} batches, ${accepted} accepted and read back exactly, ${refused} refused (typed)`)
      expect(accepted).toBeGreaterThan(5)
      expect(refused).toBeGreaterThan(5)
      addTally(inject("tallyDir"), "hostile-input", { "batches accepted, exact round-trip": accepted, "batches refused, nothing written": refused })
    }))

  it.effect("values of exactly 2700 bytes are kept, 2701 refused, in 1-, 2- and 4-byte characters", () =>
    Effect.gen(function*() {
      const lake = yield* DuckLakeClient
      const p = yield* lake.registerProject({ irodsPath: freshRoot("edge"), actor: "alice" })
      for (const [value, ok] of [["x".repeat(2700), true], ["é".repeat(1350), true], ["😀".repeat(675), true], ["x".repeat(2701), false], ["é".repeat(1350) + "x", false], ["😀".repeat(675) + "x", false]] as const) {
        for (const field of ["attribute", "value", "unit"] as const) {
          tried++
          const c = { irodsPath: `${p.irodsPath}/o`, targetType: "data_object", attribute: "a", value: "v", unit: "", op: "add", actor: "a", [field]: value }
          const exit = yield* Effect.exit(lake.recordChanges({ projectId: p.projectId, actor: "a", changes: [c] }))
          if (ok) {
            expect(Exit.isSuccess(exit)).toBe(true)
            const avus = yield* lake.getAvus(p.projectId, `${p.irodsPath}/o`)
            expect(avus.some((a) => a[field] === value)).toBe(true)
          } else {
            expect(Exit.isFailure(exit) && (Cause.squash(exit.cause) as any).field).toBe(field)
          }
        }
      }
    }))

  it.effect("huge batches: 10,000 changes of 2700-byte values round-trip; 10,001 are refused whole", () =>
    Effect.gen(function*() {
      const lake = yield* DuckLakeClient
      const p = yield* lake.registerProject({ irodsPath: freshRoot("huge"), actor: "alice" })
      const big = Array.from({ length: 10_000 }, (_, i) => ({
        irodsPath: `${p.irodsPath}/o${i % 97}`,
        targetType: "data_object",
        attribute: `a${i}`,
        // Exactly 2700 bytes of quotes, comment and LIKE metacharacters.
        value: `${i}:` + "'\"; --\\%_".repeat(400).slice(0, 2700 - String(i).length - 1),
        op: "add",
        actor: "a"
      }))
      tried += big.length + 10_001
      const over = yield* Effect.flip(lake.recordChanges({ projectId: p.projectId, actor: "a", changes: [...big, big[0]] }))
      expect(over._tag).toBe("InvalidChange")
      expect((yield* catalogView(p)).snapshots).toEqual([])
      const r = yield* lake.recordChanges({ projectId: p.projectId, actor: "a", changes: big })
      expect(r.recorded && r.changeCount).toBe(10_000)
      const rows = yield* lake.getHistory(p.projectId, { limit: 1_000_000 })
      expect(rows.length).toBe(10_000)
      expect(big.every((c) => Buffer.byteLength(c.value) === 2700)).toBe(true)
      const byAttr = new Map(rows.map((x) => [x.attribute, x.value]))
      expect(big.every((c) => byAttr.get(c.attribute) === c.value)).toBe(true)
    }))

  it.effect("project roots with LIKE and quote metacharacters: findProjectByPath matches exactly the containing root", () =>
    Effect.gen(function*() {
      const lake = yield* DuckLakeClient
      const stem = freshRoot("meta")
      const names = ["a%b", "a_b", "a\\b", "a'b", "a\"b", "a b", "ab"]
      const projects = yield* Effect.forEach(names, (n) => lake.registerProject({ irodsPath: `${stem}/${n}`, actor: "alice" }))
      const probe = fc.sample(
        fc.tuple(fc.constantFrom(...names, "aXb", "a%", "a", "%", "_b"), fc.constantFrom("", "/x", "/%/y", "/_")),
        { numRuns: 200, seed: 11 }
      )
      for (const [n, rest] of probe) {
        tried++
        const path = `${stem}/${n}${rest}`
        const expected = projects.find((p) => path === p.irodsPath || path.startsWith(p.irodsPath + "/"))
        const found = yield* Effect.either(lake.findProjectByPath(path))
        if (expected === undefined) expect(found._tag === "Left" && found.left._tag).toBe("ProjectNotFound")
        else expect(found._tag === "Right" && found.right.projectId).toBe(expected.projectId)
      }
    }))

  it.effect("tally", () => Effect.sync(() => addTally(inject("tallyDir"), "hostile-input", { "hostile inputs tried": tried })))
})
