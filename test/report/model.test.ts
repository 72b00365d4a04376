/**
 * How the report reads stored rows back (src/report/model.ts), on rows made by hand for the cases a recorded
 * history rarely shows: a `set` that kept its own value, an add while already in effect, a history cut short (a
 * delete with no add before it), a bar still open past the report's time, and the overview's day buckets before
 * 1970.
 */
import { describe, expect, it } from "vitest"
import type { ChangeRow } from "../../src/core/domain.js"
import { buildOverview, buildTimeline } from "../../src/report/model.js"

let seq = 0
const row = (
  snapshotId: number,
  ts: string,
  op: "add" | "delete",
  attribute: string,
  value: string,
  extra: Partial<ChangeRow> = {}
): ChangeRow => ({
  snapshotId,
  changeSeq: seq++,
  ts: new Date(ts),
  irodsPath: "/z/p/a.csv",
  targetType: "data_object",
  objectId: null,
  attribute,
  value,
  unit: "",
  op,
  actor: "alice",
  source: "test",
  viaTicket: null,
  ruleInvocation: null,
  onBehalfOf: null,
  ...extra
})

const NOW = new Date("2026-06-01T00:00:00Z")

describe("the report's reading of a history", () => {
  it("marks a set where one snapshot deletes an attribute's values then adds, and only there", () => {
    const t = buildTimeline([
      row(2, "2026-01-01T00:00:00Z", "add", "k", "a"),
      row(2, "2026-01-01T00:00:00Z", "add", "k", "b"),
      row(3, "2026-01-02T00:00:00Z", "delete", "k", "a"),
      row(3, "2026-01-02T00:00:00Z", "delete", "k", "b"),
      row(3, "2026-01-02T00:00:00Z", "add", "k", "c", { actor: "bob" }),
      // A delete and an add of the same attribute at different times of one snapshot: not a set.
      row(4, "2026-01-03T00:00:00Z", "delete", "k", "c"),
      row(4, "2026-01-03T00:00:01Z", "add", "k", "d")
    ], NOW)
    expect(t.events.map((e) => `${e.kind}:${e.row.value}`)).toEqual(["add:a", "add:b", "set:a", "set:b", "set:c", "delete:c", "add:d"])
    const k = t.attributes[0]!
    expect(k.bars.map((b) => `${b.startKind}>${b.endKind ?? "open"}:${k.avus[b.avu]!.value}`)).toEqual([
      "add>set:a",
      "add>set:b",
      "set>delete:c",
      "add>open:d"
    ])
    expect(k.bars.at(-1)!.end).toEqual(NOW)
    expect(t.actors).toEqual(["alice", "bob"])
  })

  it("keeps a bar going through a repeated add, marks a delete that had no add (history cut short), ends open bars at the last change when it is later than now", () => {
    const t = buildTimeline([
      row(2, "2026-01-01T00:00:00Z", "delete", "k", "old"),
      row(3, "2026-01-02T00:00:00Z", "add", "k", "v"),
      row(4, "2026-01-03T00:00:00Z", "add", "k", "v", { actor: "bob" }),
      row(5, "2027-01-01T00:00:00Z", "add", "other", "x")
    ], NOW)
    const k = t.attributes.find((a) => a.attribute === "k")!
    expect(k.events.map((e) => e.kind)).toEqual(["delete", "add", "add"])
    expect(k.bars).toHaveLength(1)
    expect(k.bars[0]).toMatchObject({ actor: "alice", open: true, end: new Date("2027-01-01T00:00:00Z") })
  })

  it("reads an add of an AVU the object had at its earlier path as the rename, and splits the bar there", () => {
    const t = buildTimeline([
      row(2, "2026-01-01T00:00:00Z", "add", "k", "v", { irodsPath: "/z/p/old.csv" }),
      row(3, "2026-01-05T00:00:00Z", "add", "k", "v", { actor: "dave" })
    ], NOW)
    const k = t.attributes[0]!
    expect(k.bars.map((b) => [b.irodsPath, b.startKind, b.endKind, b.actor])).toEqual([
      ["/z/p/old.csv", "add", "rename", "alice"],
      ["/z/p/a.csv", "rename", undefined, "dave"]
    ])
  })

  it("counts the overview per UTC day and op, before 1970 too, and ranks ties by name", () => {
    const o = buildOverview([
      row(2, "1969-12-31T23:00:00Z", "add", "b", "1"),
      row(2, "1969-12-31T01:00:00Z", "delete", "a", "1", { actor: "bob" }),
      row(3, "1970-01-01T00:00:00Z", "add", "a", "1"),
      row(3, "2026-03-04T12:00:00Z", "add", "c", "1", { irodsPath: "/z/p/b.csv" })
    ], false)
    expect(o.perDay.map((d) => `${d.day.toISOString().slice(0, 10)} ${d.op} ${d.count}`)).toEqual([
      "1969-12-31 add 1",
      "1969-12-31 delete 1",
      "1970-01-01 add 1",
      "2026-03-04 add 1"
    ])
    expect(o).toMatchObject({ changes: 4, adds: 3, deletes: 1, paths: 2, attributes: 3, actors: 2 })
    expect(o.topAttributes).toEqual([{ name: "a", count: 2 }, { name: "b", count: 1 }, { name: "c", count: 1 }])
    expect(o.first).toEqual(new Date("1969-12-31T01:00:00Z"))
    expect(buildOverview([], false)).toMatchObject({ changes: 0, first: undefined, perDay: [], topActors: [] })
  })
})
