/**
 * Access control against the fake iRODS 4.2.8 server with real ACLs: a view made for one iRODS user answers only
 * with what that user may read now, records only what it may modify, under its own name; permissions come from
 * iRODS through a short-lived cache that our own writes invalidate. And the per-project PostgreSQL reader role
 * sees its project's lake schema and no other.
 */
import { expect, layer } from "@effect/vitest"
import { Effect, Redacted } from "effect"
import pg from "pg"
import { Catalog } from "../src/catalog/Catalog.js"
import * as DuckLakeAccessModule from "../src/access/DuckLakeAccess.js"
import type { CallerView } from "../src/access/DuckLakeAccess.js"
import type { Project } from "../src/core/domain.js"
import { DuckLakeClient } from "../src/client/DuckLakeClient.js"
import { IrodsClient } from "../src/irods/IrodsClient.js"
import { change, EmbeddedPostgres, embeddedIrods, FakeIrods, freshRoot, registerFresh, rodsPermissions } from "./support.js"

const { layer: Live } = embeddedIrods("access")
const TTL_MS = 1_500

/** The access service over this test's client, checking permissions as the service account `rods`. */
const accessLayer = rodsPermissions(TTL_MS)

/** Everything a caller can learn about a project's history, for "nothing leaks" comparisons. */
const everything = (v: CallerView, projectId: string, paths: ReadonlyArray<string>) =>
  Effect.gen(function*() {
    const out: Record<string, unknown> = {}
    const settle = <A, E extends { readonly _tag: string }>(e: Effect.Effect<A, E>) =>
      Effect.match(e, { onFailure: (x) => ({ error: x._tag }), onSuccess: (a) => ({ ok: a }) })
    for (const path of paths) {
      out[`avus ${path}`] = yield* settle(v.getAvus(projectId, path))
      out[`asOf ${path}`] = yield* settle(v.getAvusAsOf(projectId, path, new Date()))
      out[`history ${path}`] = yield* settle(v.getHistory(projectId, { irodsPath: path }))
    }
    out.history = yield* settle(v.getHistory(projectId))
    out.snapshots = yield* settle(v.listSnapshots(projectId))
    out.diff = yield* settle(v.diff(projectId, 1, 2))
    out.snapshot2 = yield* settle(v.getSnapshotChanges(projectId, 2))
    return out
  })

layer(Live, { timeout: "180 seconds", excludeTestServices: true })("access control", (it) => {
  it.effect("reads see only what the caller may read now; writes need modify; the actor is the caller", () =>
    Effect.gen(function*() {
      const fake = yield* FakeIrods
      const root = freshRoot("acl")
      for (const u of ["alice", "bob", "carol"]) {
        try {
          fake.addUser(u, { password: u })
        } catch {
          // already there
        }
      }
      try {
        fake.addGroup("lab")
      } catch {
        // exists
      }
      fake.addToGroup("lab", "carol")
      fake.makeCollection(root, { owner: "alice" })
      const [a, b, never] = ["a.dat", "b.dat", "never.dat"].map((x) => `${root}/${x}`) as [string, string, string]
      for (const path of [a, b, never]) fake.putObject(path, "x", { owner: "alice" })

      const ctx = yield* accessLayer
      const access = yield* DuckLakeAccessModule.make.pipe(Effect.provide(ctx))
      const as = (user: string) => access.forCaller(`${user}#testZone`)
      const [alice, bob, carol] = [yield* as("alice"), yield* as("bob"), yield* as("carol")]

      // Registering needs own on the root.
      expect((yield* Effect.flip(bob.registerProject({ irodsPath: root })))._tag).toBe("PermissionDenied")
      const p = yield* alice.registerProject({ irodsPath: root })

      const r1 = yield* alice.recordChanges({ projectId: p.projectId, changes: [change(a, "k", "1"), change(b, "k", "1", "add", { actor: "mallory" })] })
      const r2 = yield* alice.recordChanges({ projectId: p.projectId, changes: [change(a, "k", "2")] })
      expect(r1.recorded && r2.recorded).toBe(true)
      // The caller is the actor, whatever the input claimed.
      const trusted = yield* DuckLakeClient
      const rows = yield* trusted.getHistory(p.projectId)
      expect(new Set(rows.map((r) => r.actor))).toEqual(new Set(["alice#testZone"]))
      expect((yield* trusted.listSnapshots(p.projectId)).map((s) => s.actor)).toEqual(["alice#testZone", "alice#testZone"])

      // bob cannot read the root: the project does not exist for him, exactly as an unknown project.
      const unknown = "00000000-0000-4000-8000-000000000000"
      expect((yield* Effect.flip(bob.getProject(p.projectId)))._tag).toBe("ProjectNotFound")
      expect((yield* Effect.flip(bob.findProjectByPath(a)))._tag).toBe("ProjectNotFound")
      expect((yield* bob.listProjects).map((x) => x.projectId)).not.toContain(p.projectId)
      expect(yield* everything(bob, p.projectId, [a])).toEqual(yield* everything(bob, unknown, [a]))
      expect((yield* Effect.flip(bob.recordChanges({ projectId: p.projectId, changes: [change(a, "k", "x")] })))._tag)
        .toBe("ProjectNotFound")

      // With read on the root only, bob sees the project but no history: a.dat looks like never.dat.
      fake.setAccess(root, "bob", "read")
      const bob2 = yield* as("bob")
      yield* Effect.sleep(TTL_MS + 100)
      expect((yield* bob2.getProject(p.projectId)).projectId).toBe(p.projectId)
      const seen = yield* everything(bob2, p.projectId, [a])
      const blank = yield* everything(bob2, p.projectId, [never])
      expect(Object.values(seen)).toEqual(Object.values(blank))
      expect(seen[`avus ${a}`]).toEqual({ ok: [] })
      expect(seen.snapshots).toEqual({ ok: [] })
      expect(seen.snapshot2).toEqual({ error: "SnapshotNotFound" })

      // A group grant gives carol a.dat (not b.dat); her snapshot list counts only what she may see.
      fake.setAccess(root, "lab", "read")
      fake.setAccess(a, "lab", "read")
      yield* Effect.sleep(TTL_MS + 100)
      expect((yield* carol.getAvus(p.projectId, a)).map((x) => x.value)).toEqual(["1", "2"])
      expect(yield* carol.getAvus(p.projectId, b)).toEqual([])
      expect((yield* carol.getHistory(p.projectId)).every((r) => r.irodsPath === a)).toBe(true)
      expect((yield* carol.listSnapshots(p.projectId)).map((s) => s.changeCount)).toEqual([1, 1])
      expect((yield* carol.diff(p.projectId, 1, 3)).map((d) => d.irodsPath)).toEqual([a])
      expect((yield* carol.getSnapshotChanges(p.projectId, r1.recorded ? r1.snapshotId : 0)).map((r) => r.irodsPath)).toEqual([a])

      // Read is not modify: carol cannot record on a.dat, and nothing is written.
      const before = (yield* trusted.listSnapshots(p.projectId)).length
      const denied = yield* Effect.flip(carol.recordChanges({ projectId: p.projectId, changes: [change(a, "k", "3")] }))
      expect(denied._tag).toBe("PermissionDenied")
      if (denied._tag === "PermissionDenied") expect(denied).toMatchObject({ caller: "carol#testZone", irodsPath: a, needed: "modify" })
      expect((yield* trusted.listSnapshots(p.projectId)).length).toBe(before)

      // A revoked grant: still cached until the TTL passes, then gone.
      fake.setAccess(a, "lab", "null")
      expect((yield* carol.getAvus(p.projectId, a)).length).toBe(2)
      yield* Effect.sleep(TTL_MS + 100)
      expect(yield* carol.getAvus(p.projectId, a)).toEqual([])

      // ... and at once after our own write to the path.
      fake.setAccess(a, "lab", "read")
      yield* Effect.sleep(TTL_MS + 100)
      expect((yield* carol.getAvus(p.projectId, a)).length).toBe(2)
      fake.setAccess(a, "lab", "null")
      yield* alice.recordChanges({ projectId: p.projectId, changes: [change(a, "k", "4")] })
      expect(yield* carol.getAvus(p.projectId, a)).toEqual([])

      // A service acting for carol (modify through her group): the service is the actor, carol is onBehalfOf.
      fake.setAccess(b, "lab", "write")
      yield* Effect.sleep(TTL_MS + 100)
      const viaMcp = yield* access.forCaller("carol#testZone", { identity: "rods#testZone", tool: "mesa-mcp:set_metadata" })
      const r3 = yield* viaMcp.recordChanges({ projectId: p.projectId, changes: [change(b, "k", "by-carol")] })
      expect(r3.recorded).toBe(true)
      const mine = (yield* trusted.getHistory(p.projectId, { irodsPath: b })).find((r) => r.value === "by-carol")
      expect(mine).toMatchObject({ actor: "rods#testZone", onBehalfOf: "carol#testZone", source: "mesa-mcp:set_metadata" })

      // Bulk ingest through a view: checked path by path as the changes stream past; a path the caller may not
      // modify stops it with PermissionDenied before that snapshot, and the snapshots before it stand.
      const denied2 = yield* Effect.flip(carol.ingestChanges({
        projectId: p.projectId,
        changes: [change(b, "bulk", "1"), change(b, "bulk", "2"), change(a, "bulk", "3")],
        snapshotSize: 2
      }))
      expect(denied2._tag).toBe("PermissionDenied")
      expect((yield* trusted.getHistory(p.projectId, { attribute: "bulk" })).map((r) => r.value).sort()).toEqual(["1", "2"])
      const bulk = yield* alice.ingestChanges({ projectId: p.projectId, changes: [change(a, "bulk", "4"), change(never, "bulk", "5")] })
      expect(bulk.recorded && bulk.changeCount).toBe(2)
      expect((yield* trusted.getHistory(p.projectId, { attribute: "bulk" })).filter((r) => r.value >= "4").every((r) => r.actor === "alice#testZone"))
        .toBe(true)

      // A path removed from iRODS has no ACL left: only an owner of the root (alice) still sees its history.
      expect((yield* carol.getAvus(p.projectId, b)).map((x) => x.value)).toContain("by-carol")
      yield* Effect.flatMap(IrodsClient, (irods) => irods.unlink(b, { force: true })).pipe(Effect.provide(ctx))
      yield* Effect.sleep(TTL_MS + 100)
      expect(yield* carol.getAvus(p.projectId, b)).toEqual([])
      expect((yield* carol.getHistory(p.projectId)).some((r) => r.irodsPath === b)).toBe(false)
      expect((yield* alice.getAvus(p.projectId, b)).map((x) => x.value)).toContain("by-carol")

      // Bad identities are typed errors.
      for (const bad of ["carol", "carol#", "#zone", "a b#zone", 42]) {
        expect((yield* Effect.flip(access.forCaller(bad)))._tag).toBe("InvalidChange")
      }
    }).pipe(Effect.scoped))

  it.effect("trusted mode stamps the caller but filters nothing", () =>
    Effect.gen(function*() {
      const access = yield* DuckLakeAccessModule.makeTrusted
      const p = yield* registerFresh("trusted")
      const v = yield* access.forCaller("zed#testZone")
      yield* v.recordChanges({ projectId: p.projectId, changes: [change(`${p.irodsPath}/x`, "k", "v")] })
      expect((yield* v.getAvus(p.projectId, `${p.irodsPath}/x`)).map((a) => a.actor)).toEqual(["zed#testZone"])
      expect(access.trusted).toBe(yield* DuckLakeClient)
    }))

  it.effect("a project's reader role reads its lake schema and no other project's", () =>
    Effect.gen(function*() {
      const c = yield* DuckLakeClient
      const pgServer = yield* EmbeddedPostgres
      const mine: Project = yield* registerFresh("reader")
      const other: Project = yield* registerFresh("reader-other")
      yield* c.recordChanges({ projectId: mine.projectId, actor: "alice", changes: [change(`${mine.irodsPath}/x`, "k", "v")] })
      const role = `reader_${process.pid}`
      const granted = yield* c.grantProjectReader(mine.projectId, role, Redacted.make("correct horse battery"))
      expect(granted.schema).toBe(mine.metadataSchema)
      for (const [bad, field] of [["Bad-Name", "role"], ["pg_x", "role"]] as const) {
        const e = yield* Effect.flip(c.grantProjectReader(mine.projectId, bad, Redacted.make("correct horse battery")))
        expect(e._tag === "InvalidChange" && e.field).toBe(field)
      }
      expect((yield* Effect.flip(c.grantProjectReader(mine.projectId, role, Redacted.make("short"))))._tag).toBe("InvalidChange")
      const url = new URL(Redacted.value(pgServer.dsn))
      url.username = role
      url.password = "correct horse battery"
      const result = yield* Effect.promise(async () => {
        const conn = new pg.Client({ connectionString: url.toString() })
        await conn.connect()
        try {
          const own = await conn.query(`SELECT count(*)::int AS n FROM "${mine.metadataSchema}".ducklake_snapshot`)
          const theirs = await conn.query(`SELECT count(*) FROM "${other.metadataSchema}".ducklake_snapshot`).then(
            () => "readable",
            (e: any) => e.code
          )
          const registry = await conn.query(`SELECT count(*) FROM mesa_ducklake.projects`).then(() => "readable", (e: any) => e.code)
          const write = await conn.query(`DELETE FROM "${mine.metadataSchema}".ducklake_snapshot`).then(() => "written", (e: any) => e.code)
          return { own: own.rows[0].n, theirs, registry, write }
        } finally {
          await conn.end()
        }
      })
      const [snaps] = yield* (yield* Catalog).withSql((sql) =>
        sql<any>`SELECT count(*)::int AS n FROM ${sql(mine.metadataSchema)}.ducklake_snapshot`
      )
      expect(result).toEqual({ own: snaps.n, theirs: "42501", registry: "42501", write: "42501" })
    }))
})
