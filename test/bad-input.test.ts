/**
 * Bad input at every public entry point: each case is a typed error naming what was wrong, and neither the catalog
 * nor the storage directory changes.
 */
import { expect, layer } from "@effect/vitest"
import { Effect } from "effect"
import { DuckLakeClient } from "../src/client/DuckLakeClient.js"
import { catalogState, change, embedded, listTree, record, registerFresh } from "./support.js"

const { dirs, layer: Live } = embedded("badinput")

interface Case {
  readonly name: string
  readonly tag: string
  readonly field?: string
  readonly run: (c: DuckLakeClient["Type"], projectId: string, root: string) => Effect.Effect<unknown, any>
}

const recordWith = (projectId: string, changes: ReadonlyArray<unknown>, extra: Record<string, unknown> = {}) =>
  (c: DuckLakeClient["Type"]) => c.recordChanges({ projectId, actor: "alice", changes, ...extra })

const good = (root: string) => change(`${root}/obj`, "a", "v")

const cases: ReadonlyArray<Case> = [
  // recordChanges: paths
  { name: "relative path", tag: "InvalidChange", field: "irodsPath", run: (c, id) => recordWith(id, [change("rel/path", "a", "v")])(c) },
  { name: ".. segment", tag: "InvalidChange", field: "irodsPath", run: (c, id, r) => recordWith(id, [change(`${r}/../escape`, "a", "v")])(c) },
  { name: ". segment", tag: "InvalidChange", field: "irodsPath", run: (c, id, r) => recordWith(id, [change(`${r}/./x`, "a", "v")])(c) },
  { name: "NUL in path", tag: "InvalidChange", field: "irodsPath", run: (c, id, r) => recordWith(id, [change(`${r}/a\u0000b`, "a", "v")])(c) },
  { name: "control char in path", tag: "InvalidChange", field: "irodsPath", run: (c, id, r) => recordWith(id, [change(`${r}/a\nb`, "a", "v")])(c) },
  { name: "lone surrogate in path", tag: "InvalidChange", field: "irodsPath", run: (c, id, r) => recordWith(id, [change(`${r}/\ud800`, "a", "v")])(c) },
  { name: "path over 1087 bytes", tag: "InvalidChange", field: "irodsPath", run: (c, id, r) => recordWith(id, [change(`${r}/${"x".repeat(1100)}`, "a", "v")])(c) },
  { name: "change outside the root", tag: "InvalidChange", field: "irodsPath", run: (c, id) => recordWith(id, [change("/testZone/home/mallory/x", "a", "v")])(c) },
  { name: "change to a sibling sharing a prefix", tag: "InvalidChange", field: "irodsPath", run: (c, id, r) => recordWith(id, [change(`${r}x/obj`, "a", "v")])(c) },
  { name: "change inside the lake itself", tag: "InvalidChange", field: "irodsPath", run: (c, id, r) => recordWith(id, [change(`${r}/.mesa/ducklake/x`, "a", "v")])(c) },
  // recordChanges: AVU fields
  { name: "NUL in value", tag: "InvalidChange", field: "value", run: (c, id, r) => recordWith(id, [change(`${r}/o`, "a", "v\u0000")])(c) },
  { name: "value of 2701 bytes", tag: "InvalidChange", field: "value", run: (c, id, r) => recordWith(id, [change(`${r}/o`, "a", "x".repeat(2701))])(c) },
  { name: "value of 2701 bytes in 2-byte chars", tag: "InvalidChange", field: "value", run: (c, id, r) => recordWith(id, [change(`${r}/o`, "a", "é".repeat(1350) + "x")])(c) },
  { name: "attribute of 2701 bytes", tag: "InvalidChange", field: "attribute", run: (c, id, r) => recordWith(id, [change(`${r}/o`, "a".repeat(2701), "v")])(c) },
  { name: "unit of 2701 bytes", tag: "InvalidChange", field: "unit", run: (c, id, r) => recordWith(id, [change(`${r}/o`, "a", "v", "add", { unit: "u".repeat(2701) })])(c) },
  { name: "empty attribute", tag: "InvalidChange", field: "attribute", run: (c, id, r) => recordWith(id, [change(`${r}/o`, "", "v")])(c) },
  { name: "empty value", tag: "InvalidChange", field: "value", run: (c, id, r) => recordWith(id, [change(`${r}/o`, "a", "")])(c) },
  { name: "blank change actor", tag: "InvalidChange", field: "actor", run: (c, id, r) => recordWith(id, [change(`${r}/o`, "a", "v", "add", { actor: "  " })])(c) },
  { name: "blank source", tag: "InvalidChange", field: "source", run: (c, id, r) => recordWith(id, [change(`${r}/o`, "a", "v", "add", { source: "" })])(c) },
  { name: "unknown op", tag: "InvalidChange", field: "op", run: (c, id, r) => recordWith(id, [{ ...change(`${r}/o`, "a", "v"), op: "mod" }])(c) },
  { name: "unknown target type", tag: "InvalidChange", field: "targetType", run: (c, id, r) => recordWith(id, [{ ...change(`${r}/o`, "a", "v"), targetType: "file" }])(c) },
  { name: "unexpected field", tag: "InvalidChange", field: "sneaky", run: (c, id, r) => recordWith(id, [{ ...change(`${r}/o`, "a", "v"), sneaky: 1 }])(c) },
  { name: "change that is not an object", tag: "InvalidChange", run: (c, id) => recordWith(id, ["add a=v"])(c) },
  { name: "negative object id", tag: "InvalidChange", field: "objectId", run: (c, id, r) => recordWith(id, [change(`${r}/o`, "a", "v", "add", { objectId: -1 })])(c) },
  // recordChanges: timestamps
  { name: "garbage timestamp", tag: "InvalidChange", field: "ts", run: (c, id, r) => recordWith(id, [change(`${r}/o`, "a", "v", "add", { ts: "yesterday" })])(c) },
  { name: "impossible date", tag: "InvalidChange", field: "ts", run: (c, id, r) => recordWith(id, [change(`${r}/o`, "a", "v", "add", { ts: "2026-02-30T25:00:00Z" })])(c) },
  { name: "timestamp before 1900", tag: "InvalidChange", field: "ts", run: (c, id, r) => recordWith(id, [change(`${r}/o`, "a", "v", "add", { ts: "1800-01-01T00:00:00Z" })])(c) },
  { name: "timestamp in the future", tag: "InvalidChange", field: "ts", run: (c, id, r) => recordWith(id, [change(`${r}/o`, "a", "v", "add", { ts: "2999-01-01T00:00:00Z" })])(c) },
  { name: "NaN timestamp", tag: "InvalidChange", field: "ts", run: (c, id, r) => recordWith(id, [change(`${r}/o`, "a", "v", "add", { ts: Number.NaN })])(c) },
  // recordChanges: the batch
  { name: "empty batch", tag: "InvalidChange", field: "changes", run: (c, id) => recordWith(id, [])(c) },
  { name: "batch over 10,000", tag: "InvalidChange", field: "changes", run: (c, id, r) => recordWith(id, Array.from({ length: 10_001 }, () => good(r)))(c) },
  { name: "changes not an array", tag: "InvalidChange", field: "changes", run: (c, id) => c.recordChanges({ projectId: id, actor: "a", changes: "x" as any }) },
  { name: "one bad change spoils the batch", tag: "InvalidChange", field: "value", run: (c, id, r) => recordWith(id, [good(r), good(r), change(`${r}/o`, "a", "x".repeat(3000))])(c) },
  { name: "blank snapshot actor", tag: "InvalidChange", field: "actor", run: (c, id, r) => c.recordChanges({ projectId: id, actor: " ", changes: [good(r)] }) },
  { name: "NUL in note", tag: "InvalidChange", field: "note", run: (c, id, r) => c.recordChanges({ projectId: id, actor: "a", note: "x\u0000", changes: [good(r)] }) },
  { name: "unknown project", tag: "ProjectNotFound", run: (c, _id, r) => recordWith("00000000-0000-4000-8000-000000000000", [good(r)])(c) },
  { name: "project id that is not a uuid", tag: "ProjectNotFound", run: (c, _id, r) => recordWith("x' OR '1'='1", [good(r)])(c) },
  // registerProject
  { name: "register a relative root", tag: "InvalidChange", field: "irodsPath", run: (c) => c.registerProject({ irodsPath: "home/x", actor: "a" }) },
  { name: "register the zone root /", tag: "InvalidChange", field: "irodsPath", run: (c) => c.registerProject({ irodsPath: "/", actor: "a" }) },
  { name: "register without actor", tag: "InvalidChange", field: "actor", run: (c) => c.registerProject({ irodsPath: "/testZone/home/new", actor: "" }) },
  { name: "register into another zone", tag: "InvalidChange", field: "zone", run: (c) => c.registerProject({ irodsPath: "/testZone/home/new", actor: "a", zone: "other" }) },
  { name: "register inside a project", tag: "ProjectConflict", run: (c, _id, r) => c.registerProject({ irodsPath: `${r}/sub`, actor: "a" }) },
  // reads
  { name: "getAvus with a relative path", tag: "InvalidChange", field: "irodsPath", run: (c, id) => c.getAvus(id, "x/y") },
  { name: "getAvusAsOf with a bad timestamp", tag: "InvalidChange", field: "timestamp", run: (c, id, r) => c.getAvusAsOf(id, `${r}/o`, "13/13/2026") },
  { name: "getAvusAsOf with a bad knownAt", tag: "InvalidChange", field: "knownAt", run: (c, id, r) => c.getAvusAsOf(id, `${r}/o`, new Date(), { knownAt: "soon" }) },
  { name: "getAvusAsOf with a negative knownAt", tag: "InvalidChange", field: "knownAt", run: (c, id, r) => c.getAvusAsOf(id, `${r}/o`, new Date(), { knownAt: -3 }) },
  { name: "getAvusAsOf with an unknown snapshot", tag: "SnapshotNotFound", run: (c, id, r) => c.getAvusAsOf(id, `${r}/o`, new Date(), { knownAt: 424242 }) },
  { name: "getHistory with limit 0", tag: "InvalidChange", field: "limit", run: (c, id) => c.getHistory(id, { limit: 0 }) },
  { name: "getHistory with from after to", tag: "InvalidChange", field: "from", run: (c, id) => c.getHistory(id, { from: "2026-02-01T00:00:00Z", to: "2026-01-01T00:00:00Z" }) },
  { name: "getHistory with a bad path", tag: "InvalidChange", field: "irodsPath", run: (c, id) => c.getHistory(id, { irodsPath: "../x" }) },
  { name: "listSnapshots with a fractional limit", tag: "InvalidChange", field: "limit", run: (c, id) => c.listSnapshots(id, { limit: 1.5 }) },
  { name: "diff from after to", tag: "InvalidChange", field: "fromSnapshot", run: (c, id) => c.diff(id, 3, 2) },
  { name: "diff with a negative id", tag: "InvalidChange", field: "fromSnapshot", run: (c, id) => c.diff(id, -1, 2) },
  { name: "diff to an unknown snapshot", tag: "SnapshotNotFound", run: (c, id) => c.diff(id, 2, 99) },
  { name: "findProjectByPath with NUL", tag: "InvalidChange", field: "irodsPath", run: (c) => c.findProjectByPath("/testZone/\u0000") },
  { name: "getProject of an unknown id", tag: "ProjectNotFound", run: (c) => c.getProject("12345678-1234-4234-8234-123456789012") }
]

layer(Live, { timeout: "120 seconds", excludeTestServices: true })("bad input", (it) => {
  it.effect(`${cases.length} bad inputs: typed errors, catalog and storage unchanged`, () =>
    Effect.gen(function*() {
      const client = yield* DuckLakeClient
      const p = yield* registerFresh("bad")
      yield* record(p.projectId, [good(p.irodsPath)])
      yield* client.flush
      const before = yield* catalogState(p.metadataSchema)
      const treeBefore = listTree(dirs.zoneDir)
      const avusBefore = yield* client.getAvus(p.projectId, `${p.irodsPath}/obj`)
      for (const c of cases) {
        const error = yield* Effect.flip(c.run(client, p.projectId, p.irodsPath))
        expect(error._tag, c.name).toBe(c.tag)
        if (c.field !== undefined) expect(error.field, c.name).toBe(c.field)
        expect(typeof error.message, c.name).toBe("string")
        expect(error.message.length, c.name).toBeGreaterThan(5)
        expect(yield* catalogState(p.metadataSchema), c.name).toEqual(before)
        expect(listTree(dirs.zoneDir), c.name).toEqual(treeBefore)
      }
      expect(yield* client.getAvus(p.projectId, `${p.irodsPath}/obj`)).toEqual(avusBefore)
      // Boundaries that are valid: 2700 bytes exactly, an empty unit, control characters in a value.
      const ok = yield* client.recordChanges({
        projectId: p.projectId,
        actor: "alice",
        changes: [
          change(`${p.irodsPath}/o`, "a".repeat(2700), "é".repeat(1350), "add", { unit: "" }),
          change(`${p.irodsPath}/o`, "tab", "a\tb\r\n")
        ]
      })
      expect(ok.recorded).toBe(true)
    }))
})
