/**
 * Access control and hidden snapshots (issue 16, defect 3). A caller who may read a project's root but not
 * `secret.dat` must not learn that snapshots touching only `secret.dat` exist: through its view, a project WITH such
 * snapshots answers every read exactly as the same project WITHOUT them, snapshot ids aside. Ids are bounds: a
 * hidden or never-used id answers as the nearest visible snapshot below it; a snapshot's parent is the nearest
 * visible snapshot before it; a note shows only when the caller may see every row of its snapshot.
 *
 * Against the fake iRODS 4.2.8 server with real ACLs, as `access.test.ts`.
 */
import { expect, layer } from "@effect/vitest"
import { Effect } from "effect"
import * as DuckLakeAccessModule from "../src/access/DuckLakeAccess.js"
import type { CallerView } from "../src/access/DuckLakeAccess.js"
import type { AvuChangeInput, Project } from "../src/core/domain.js"
import { DuckLakeClient } from "../src/client/DuckLakeClient.js"
import { change, embeddedIrods, FakeIrods, freshRoot, record, rodsPermissions } from "./support.js"

const { layer: Live } = embeddedIrods("access-hidden")

/** The access service over this test's client, checking permissions as the service account `rods`. */
const accessLayer = rodsPermissions(60_000)

/** Valid times, all in the past, so both projects carry the same ones. */
const T = (day: number) => `2024-01-${String(day).padStart(2, "0")}T00:00:00.000Z`
const FAR = "2030-01-01T00:00:00Z"

interface Step {
  /** Only on `secret.dat`: never recorded in the project without hidden snapshots. */
  readonly hidden: boolean
  readonly changes: (paths: Paths) => ReadonlyArray<AvuChangeInput>
  readonly note?: string
  /** The note as recorded in the project without hidden snapshots (a partly visible snapshot's is hidden). */
  readonly visibleNote?: string
}

interface Paths {
  readonly a: string
  readonly b: string
  readonly secret: string
  readonly never: string
}

const at = (day: number) => ({ ts: T(day) })
/** The history: hidden snapshots before the first visible one, between visible ones and after the last. */
const STEPS: ReadonlyArray<Step> = [
  { hidden: true, changes: (p) => [change(p.secret, "s", "0", "add", at(1))], note: "secret: before everything" },
  { hidden: false, changes: (p) => [change(p.a, "k", "1", "add", at(2))], note: "first", visibleNote: "first" },
  { hidden: true, changes: (p) => [change(p.secret, "s", "1", "add", at(3))], note: "secret plans" },
  { hidden: true, changes: (p) => [change(p.secret, "s", "2", "add", at(4))] },
  {
    // Partly visible: dana sees the b.dat row, not the secret.dat row after it, nor the note.
    hidden: false,
    changes: (p) => [change(p.b, "k", "1", "add", at(5)), change(p.secret, "s", "3", "add", at(5))],
    note: "mixed: secret s=3"
  },
  { hidden: true, changes: (p) => [change(p.secret, "s", "1", "delete", at(6))], note: "secret cleanup" },
  {
    hidden: false,
    changes: (p) => [change(p.a, "k", "1", "delete", at(7)), change(p.a, "k", "2", "add", at(7))],
    note: "last visible",
    visibleNote: "last visible"
  },
  { hidden: true, changes: (p) => [change(p.secret, "s", "4", "add", at(8))], note: "secret: after everything" }
]

/** One recorded project and what the test knows about it. */
interface Lake {
  readonly project: Project
  readonly paths: Paths
  /** Snapshot ids, in order, of the snapshots dana may see. */
  readonly visible: ReadonlyArray<number>
  /** Every recorded snapshot: id, hidden or not, commit time. */
  readonly recorded: ReadonlyArray<{ readonly id: number; readonly hidden: boolean; readonly ts: Date }>
}

const READER = "dana"

/** Two projects with the same visible history: `withHidden` also records the hidden steps. */
const fixture = Effect.gen(function*() {
  const fake = yield* FakeIrods
  for (const u of ["alice", READER]) {
    try {
      fake.addUser(u, { password: u })
    } catch {
      // already there
    }
  }
  const client = yield* DuckLakeClient
  const make = (withHidden: boolean) =>
    Effect.gen(function*() {
      const root = freshRoot(withHidden ? "hidden" : "plain")
      fake.makeCollection(root, { owner: "alice" })
      const paths: Paths = {
        a: `${root}/a.dat`,
        b: `${root}/b.dat`,
        secret: `${root}/secret.dat`,
        never: `${root}/never.dat`
      }
      for (const path of Object.values(paths)) fake.putObject(path, "x", { owner: "alice" })
      // dana reads the root and every object but secret.dat.
      for (const path of [root, paths.a, paths.b, paths.never]) fake.setAccess(path, READER, "read")
      const project = yield* client.registerProject({ irodsPath: root, actor: "alice" })
      const visible: Array<number> = []
      const recorded: Array<{ id: number; hidden: boolean; ts: Date }> = []
      for (const step of STEPS) {
        if (step.hidden && !withHidden) continue
        const all = step.changes(paths)
        const changes = withHidden ? all : all.filter((c) => c.irodsPath !== paths.secret)
        const note = withHidden ? step.note : step.visibleNote
        const r = yield* record(project.projectId, changes, "alice", note)
        if (!step.hidden) visible.push(r.snapshotId)
        recorded.push({ id: r.snapshotId, hidden: step.hidden, ts: new Date(0) })
      }
      const listed = yield* client.listSnapshots(project.projectId, { limit: 1000 })
      const tsOf = new Map(listed.map((s) => [s.snapshotId, s.ts]))
      return {
        project,
        paths,
        visible,
        recorded: recorded.map((r) => ({ ...r, ts: tsOf.get(r.id)! }))
      } satisfies Lake
    })
  const withHidden = yield* make(true)
  const without = yield* make(false)
  const ctx = yield* accessLayer
  const access = yield* DuckLakeAccessModule.make.pipe(Effect.provide(ctx))
  const dana = yield* access.forCaller(`${READER}#testZone`)
  const alice = yield* access.forCaller("alice#testZone")
  return { withHidden, without, dana, alice }
})

/** An answer or the error's tag (and field, for a refused argument). */
const settle = <A, E extends { readonly _tag: string }>(e: Effect.Effect<A, E>) =>
  Effect.match(e, {
    onFailure: (x) => ({ error: x._tag, ...("field" in x ? { field: (x as any).field } : {}) }),
    onSuccess: (a) => ({ ok: a as unknown })
  })

/**
 * What must differ between the two projects, made equal: the project's id, root and schema, its creation and commit
 * times, the iRODS ids of its objects, and the ids of the snapshots dana may see (by their order among them, `#1`, `#2`, ...). Any other
 * snapshot id is left as it is, so one that leaks makes the two answers differ.
 */
const normaliser = (lake: Lake) => {
  const label = new Map(lake.visible.map((id, i) => [id, `#${i + 1}`]))
  const root = lake.project.irodsPath
  const walk = (x: unknown, key?: string): unknown => {
    if (x instanceof Date) return x.toISOString()
    if (typeof x === "number" && (key === "snapshotId" || key === "parentSnapshot")) return label.get(x) ?? x
    // iRODS object ids: a.dat of one project is not a.dat of the other.
    if (typeof x === "number" && key === "objectId") return "<object>"
    if (typeof x === "string") {
      if (key === "dataFile") {
        return x.replace(/snapshot_(\d+)_[0-9a-f]+\.parquet$/, (_, id) => `snapshot_${label.get(Number(id)) ?? id}.parquet`)
      }
      return x.split(root).join("<root>").split(lake.project.projectId).join("<project>")
        .split(lake.project.metadataSchema).join("<schema>")
    }
    if (Array.isArray(x)) return x.map((v) => walk(v))
    if (x !== null && typeof x === "object") {
      const o = x as Record<string, unknown>
      const out: Record<string, unknown> = {}
      for (const [k, v] of Object.entries(o)) {
        // A snapshot's commit time and a project's creation time are the two clocks the projects cannot share.
        if (k === "ts" && "dataFile" in o) out[k] = "<committed>"
        else if (k === "createdAt" && "metadataSchema" in o) out[k] = "<created>"
        else out[k] = walk(v, k)
      }
      return out
    }
    return x
  }
  return walk
}

/** The id in `lake` that stands where `x` stands in `from`: the same visible snapshot, or the base (0) below all. */
const boundIn = (from: Lake, lake: Lake, x: number) => {
  const i = from.visible.filter((v) => v <= x).length
  return i === 0 ? 0 : lake.visible[i - 1]!
}

/**
 * Every read of the view for one project, keyed by a description that does not mention the project's own ids. The
 * snapshot ids asked about come from a shared `domain`: `bound(x)` for the ids that are bounds (`knownAt`, `diff`),
 * `exact(x)` for `getSnapshotChanges`, `commitTime(x)` for `knownAt` as a transaction time.
 */
const everything = (
  v: CallerView,
  lake: Lake,
  domain: ReadonlyArray<number>,
  bound: (x: number) => number,
  exact: (x: number) => number,
  commitTime: (x: number) => Date
) =>
  Effect.gen(function*() {
    const id = lake.project.projectId
    const out: Record<string, unknown> = {}
    const paths = Object.entries(lake.paths)
    out.getProject = yield* settle(v.getProject(id))
    out.listProjects = yield* settle(Effect.map(v.listProjects, (ps) => ps.filter((p) => p.projectId === id)))
    for (const [name, path] of paths) {
      out[`findProjectByPath ${name}`] = yield* settle(v.findProjectByPath(path))
      out[`getAvus ${name}`] = yield* settle(v.getAvus(id, path))
      out[`getHistory ${name}`] = yield* settle(v.getHistory(id, { irodsPath: path }))
      for (const when of [T(3), T(5), FAR]) {
        out[`getAvusAsOf ${name} ${when}`] = yield* settle(v.getAvusAsOf(id, path, when))
        for (const x of domain) {
          out[`getAvusAsOf ${name} ${when} knownAt #${x}`] = yield* settle(
            v.getAvusAsOf(id, path, when, { knownAt: bound(x) })
          )
          out[`getAvusAsOf ${name} ${when} knownAt time of #${x}`] = yield* settle(
            v.getAvusAsOf(id, path, when, { knownAt: commitTime(x) })
          )
        }
      }
    }
    out.getHistory = yield* settle(v.getHistory(id))
    for (const limit of [1, 2, 3, 10]) out[`getHistory limit ${limit}`] = yield* settle(v.getHistory(id, { limit }))
    for (const attribute of ["k", "s"]) out[`getHistory ${attribute}`] = yield* settle(v.getHistory(id, { attribute }))
    out["getHistory from to"] = yield* settle(v.getHistory(id, { from: T(3), to: T(6) }))
    out.listSnapshots = yield* settle(v.listSnapshots(id))
    for (const limit of [1, 2, 3, 10]) out[`listSnapshots ${limit}`] = yield* settle(v.listSnapshots(id, { limit }))
    for (const x of domain) {
      out[`getSnapshotChanges #${x}`] = yield* settle(v.getSnapshotChanges(id, exact(x)))
      for (const y of domain) {
        out[`diff #${x} #${y}`] = yield* settle(x <= y ? v.diff(id, bound(x), bound(y)) : v.diff(id, x, y))
      }
    }
    return normaliser(lake)(out) as Record<string, unknown>
  })

layer(Live, { timeout: "300 seconds", excludeTestServices: true })("access control: hidden snapshots", (it) => {
  it.effect("a project with hidden snapshots answers every read as the same project without them", () =>
    Effect.gen(function*() {
      const { dana, withHidden: w, without: plain } = yield* fixture
      expect(w.visible.length).toBe(plain.visible.length)
      // Every id of the project with hidden snapshots, and a few never used, beyond its last.
      const last = Math.max(...w.recorded.map((r) => r.id))
      const domain = Array.from({ length: last + 4 }, (_, i) => i)
      const hiddenAnswers = yield* everything(
        dana,
        w,
        domain,
        (x) => x,
        (x) => x,
        // The commit time of the newest snapshot at or below the id (before all of them for the base ids).
        (x) => w.recorded.filter((r) => r.id <= x).at(-1)?.ts ?? new Date(0)
      )
      // The same questions of the project without them: each id as the nearest visible snapshot below it, an id
      // of no visible snapshot as one never used there, a commit time as the commit time of that bound.
      const plainAnswers = yield* everything(
        dana,
        plain,
        domain,
        (x) => boundIn(w, plain, x),
        (x) => (w.visible.includes(x) ? boundIn(w, plain, x) : 1_000_000 + x),
        (x) => {
          const b = boundIn(w, plain, x)
          return plain.recorded.find((r) => r.id === b)?.ts ?? new Date(0)
        }
      )
      expect(Object.keys(hiddenAnswers)).toEqual(Object.keys(plainAnswers))
      const differing = Object.keys(hiddenAnswers).filter((k) =>
        JSON.stringify(hiddenAnswers[k]) !== JSON.stringify(plainAnswers[k])
      )
      expect(differing.map((k) => ({ [k]: { withHidden: hiddenAnswers[k], without: plainAnswers[k] } }))).toEqual([])
      // The comparison means something: dana sees the visible history and none of the hidden one.
      expect(hiddenAnswers.listSnapshots).toMatchObject({ ok: [{ snapshotId: "#3" }, { snapshotId: "#2" }, { snapshotId: "#1" }] })
      expect(hiddenAnswers[`getAvusAsOf a ${FAR} knownAt #${last + 3}`]).toMatchObject({ ok: [{ value: "2" }] })
      expect(hiddenAnswers[`getAvus secret`]).toEqual({ ok: [] })
    }).pipe(Effect.scoped), 180_000)

  it.effect("ids are bounds: a hidden or never-used id answers as the nearest visible snapshot below it", () =>
    Effect.gen(function*() {
      const { dana, withHidden: w } = yield* fixture
      const id = w.project.projectId
      const [v1, v2, v3] = w.visible as [number, number, number]
      const hidden = w.recorded.filter((r) => r.hidden).map((r) => r.id)
      const last = Math.max(...hidden)
      expect(last).toBeGreaterThan(v3)
      const asOf = (knownAt: number) => settle(dana.getAvusAsOf(id, w.paths.a, FAR, { knownAt }))
      const diff = (a: number, b: number) => settle(dana.diff(id, a, b))
      // Each hidden id, the last hidden id and an id never used answer as the visible snapshot below them.
      for (const h of hidden) {
        const below = Math.max(0, ...w.visible.filter((v) => v < h))
        expect(yield* asOf(h)).toEqual(yield* asOf(below))
        expect(yield* diff(0, h)).toEqual(yield* diff(0, below))
        expect(yield* diff(h, last + 100)).toEqual(yield* diff(below, v3))
      }
      expect(yield* asOf(last)).toEqual(yield* asOf(last + 1))
      expect(yield* asOf(last + 1)).toMatchObject({ ok: [{ value: "2", snapshotId: v3 }] })
      expect(yield* diff(v1, last + 1)).toEqual(yield* diff(v1, v3))
      expect(yield* diff(last, last + 1)).toEqual({ ok: [] })
      expect((yield* diff(v1, v2 + 1))).toEqual({
        ok: [{ irodsPath: w.paths.b, added: [{ attribute: "k", value: "1", unit: "" }], removed: [] }]
      })
      // A snapshot with nothing dana may see is not found, exactly as one never used.
      const missing = (snapshotId: number) =>
        Effect.map(Effect.flip(dana.getSnapshotChanges(id, snapshotId)), (e) => ({ error: { ...e }, message: e.message }))
      const notFound = (snapshotId: number) => ({
        error: { _tag: "SnapshotNotFound", projectId: id, snapshotId },
        message: `snapshot ${snapshotId} not found in project ${id}`
      })
      for (const x of [...hidden, last + 1, 0, 1]) expect(yield* missing(x)).toEqual(notFound(x))
      // Arguments are still checked as the client checks them.
      expect(yield* diff(v2, v1)).toMatchObject({ error: "InvalidChange", field: "fromSnapshot" })
      expect(yield* settle(dana.getAvusAsOf(id, w.paths.a, FAR, { knownAt: -1 }))).toMatchObject({
        error: "InvalidChange",
        field: "knownAt"
      })
    }).pipe(Effect.scoped))

  it.effect("snapshot lists skip hidden snapshots in parent links and show a note only when every row is visible", () =>
    Effect.gen(function*() {
      const { alice, dana, withHidden: w } = yield* fixture
      const id = w.project.projectId
      const [v1, v2, v3] = w.visible as [number, number, number]
      const listed = yield* dana.listSnapshots(id)
      expect(listed.map((s) => [s.snapshotId, s.parentSnapshot, s.changeCount, s.note])).toEqual([
        [v3, v2, 2, "last visible"],
        [v2, v1, 1, null],
        [v1, null, 1, "first"]
      ])
      // A limited list links to the same parents.
      expect((yield* dana.listSnapshots(id, { limit: 1 })).map((s) => s.parentSnapshot)).toEqual([v2])
      // The owner of the project sees every snapshot, parent and note, as the client lists them.
      const trusted = yield* DuckLakeClient
      expect(yield* alice.listSnapshots(id)).toEqual(yield* trusted.listSnapshots(id))
    }).pipe(Effect.scoped))
})
