/**
 * Deployment modes. A (hosted): a DSN, every change recorded, an unreachable catalog is `CatalogUnavailable`.
 * B/C (workstation, VICE): no DSN, writes answer "not recorded", reads `CatalogUnavailable`, nothing crashes.
 */
import { describe, expect, it, layer } from "@effect/vitest"
import { Effect, Redacted } from "effect"
import * as Hosted from "../layers/hosted.js"
import * as Local from "../layers/local.js"
import { DuckLakeClient } from "../src/client/DuckLakeClient.js"
import { EmbeddedPostgres, freePort } from "../src/postgres/EmbeddedPostgres.js"
import { change, configured, embedded, record, registerFresh, tempDirs } from "./support.js"

const everyRead = (c: DuckLakeClient["Type"]) => [
  c.registerProject({ irodsPath: "/z/home/a/p", actor: "a" }),
  c.getProject("00000000-0000-4000-8000-000000000000"),
  c.findProjectByPath("/z/home/a/p/x"),
  c.listProjects,
  c.getAvus("00000000-0000-4000-8000-000000000000", "/z/x"),
  c.getAvusAsOf("00000000-0000-4000-8000-000000000000", "/z/x", new Date()),
  c.getHistory("00000000-0000-4000-8000-000000000000"),
  c.listSnapshots("00000000-0000-4000-8000-000000000000"),
  c.diff("00000000-0000-4000-8000-000000000000", 1, 2),
  c.recoverPendingPushes()
]

describe("modes B and C (no catalog configured)", () => {
  for (const [label, env] of [["unset", {}], ["blank", { MESA_DUCKLAKE_DSN: "   " }]] as const) {
    it.effect(`DSN ${label}: writes are not recorded, reads are CatalogUnavailable(not-configured)`, () =>
      Effect.gen(function*() {
        const client = yield* DuckLakeClient
        expect(client.recording).toBe(false)
        const r = yield* client.recordChanges({
          projectId: "anything",
          actor: "alice",
          changes: [change("/z/home/a/p/x", "k", "v")]
        })
        expect(r).toEqual({ recorded: false, reason: "no-catalog" })
        for (const read of everyRead(client)) {
          const e = yield* Effect.flip(read as Effect.Effect<unknown, any>)
          expect(e._tag).toBe("CatalogUnavailable")
          expect(e.reason).toBe("not-configured")
        }
      }).pipe(Effect.provide(configured(Local.layer, env))))
  }
})

describe("mode A with an unreachable catalog", () => {
  it.live("every call is CatalogUnavailable(unreachable) and the password never shows", () =>
    Effect.gen(function*() {
      const port = yield* freePort
      const dirs = tempDirs("unreachable")
      const secret = "s3cret-pw-4711"
      const env = {
        MESA_DUCKLAKE_DSN: `postgresql://mesa:${secret}@127.0.0.1:${port}/mesa`,
        MESA_DUCKLAKE_MOUNT_ROOT: dirs.zoneDir,
        MESA_DUCKLAKE_CACHE_DIR: dirs.cacheDir
      }
      yield* Effect.gen(function*() {
        const client = yield* DuckLakeClient
        expect(client.recording).toBe(true)
        const calls = [
          ...everyRead(client),
          client.recordChanges({ projectId: "00000000-0000-4000-8000-000000000000", actor: "a", changes: [change("/z/x", "k", "v")] })
        ]
        for (const call of calls) {
          const e = yield* Effect.flip(call as Effect.Effect<unknown, any>)
          expect(e._tag).toBe("CatalogUnavailable")
          expect(e.reason).toBe("unreachable")
          expect(e.target).toBe(`127.0.0.1:${port}/mesa`)
          expect(e.message).not.toContain(secret)
          expect(JSON.stringify(e)).not.toContain(secret)
          expect(String(e.cause?.message ?? "")).not.toContain(secret)
        }
      }).pipe(Effect.provide(configured(Hosted.layer, env)))
    }))
})

const { layer: Live } = embedded("outage")

layer(Live, { timeout: "120 seconds", excludeTestServices: true })("mode A through a catalog outage", (it) => {
  it.effect("Postgres stopped mid-run: CatalogUnavailable, then back to normal with nothing lost", () =>
    Effect.gen(function*() {
      const client = yield* DuckLakeClient
      const pg = yield* EmbeddedPostgres
      const p = yield* registerFresh("outage")
      const obj = `${p.irodsPath}/x`
      yield* record(p.projectId, [change(obj, "before", "1")])
      yield* pg.stop
      const w = yield* Effect.flip(client.recordChanges({ projectId: p.projectId, actor: "a", changes: [change(obj, "during", "1")] }))
      expect(w._tag).toBe("CatalogUnavailable")
      const r = yield* Effect.flip(client.getAvus(p.projectId, obj))
      expect(r._tag).toBe("CatalogUnavailable")
      expect(Redacted.value(pg.dsn)).toContain("@127.0.0.1")
      expect(r.message).not.toContain(Redacted.value(pg.dsn).split(":")[2]!.split("@")[0]!)
      yield* pg.start
      // Connections broken by the restart are dropped by the pool; allow it one failed probe.
      const after = yield* client.recordChanges({ projectId: p.projectId, actor: "a", changes: [change(obj, "after", "1")] }).pipe(
        Effect.retry({ times: 2 })
      )
      expect(after.recorded).toBe(true)
      const avus = yield* client.getAvus(p.projectId, obj)
      expect(avus.map((a) => a.attribute).sort()).toEqual(["after", "before"])
      const snaps = yield* client.listSnapshots(p.projectId)
      expect(snaps.length).toBe(2)
    }))
})
