/**
 * Modes B/C with opt-in local history: a persistent single-user catalog (embedded PostgreSQL in the user's data
 * folder) survives a restart, and its history exports into a hosted catalog with the same answers.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer } from "effect"
import * as fs from "node:fs"
import * as nodePath from "node:path"
import { client, mounted } from "../layers/components.js"
import * as Local from "../layers/local.js"
import { DuckLakeClient } from "../src/client/DuckLakeClient.js"
import * as EmbeddedPostgres from "../src/postgres/EmbeddedPostgres.js"
import { exportProject } from "../src/operations/export.js"
import { change, configured, tempDirs } from "./support.js"

const dirs = tempDirs("local-history")
// The user's data folder must be reachable by the postgres user when tests run as root.
fs.chmodSync(dirs.base, 0o755)
const dataDir = nodePath.join(dirs.base, "user-data", "mesa-ducklake", "catalog")
const localLayer = configured(Local.layer, {
  MESA_DUCKLAKE_LOCAL_HISTORY: "true",
  MESA_DUCKLAKE_LOCAL_DATA_DIR: dataDir,
  MESA_DUCKLAKE_MOUNT_ROOT: dirs.zoneDir,
  MESA_DUCKLAKE_CACHE_DIR: dirs.cacheDir
})
const root = "/vice/home/carol/field-notes"
const paths = [`${root}/a.txt`, `${root}/b/c.txt`]

/** The answers a user would compare: valid-time as-of on a grid, history content, current AVUs. */
const answers = (c: DuckLakeClient["Type"], projectId: string) =>
  Effect.gen(function*() {
    const out: Record<string, unknown> = {}
    for (const path of paths) {
      out[`now ${path}`] = (yield* c.getAvus(projectId, path)).map((a) => [a.attribute, a.value, a.unit, a.actor, a.ts.toISOString()])
      for (const day of [1, 2, 3, 4, 5, 6]) {
        const t = new Date(Date.UTC(2026, 4, day, 12))
        out[`${path} ${day}`] = (yield* c.getAvusAsOf(projectId, path, t)).map((a) => [a.attribute, a.value, a.unit, a.actor])
      }
    }
    out.history = (yield* c.getHistory(projectId, { limit: 10_000 })).map((r) =>
      [r.ts.toISOString(), r.irodsPath, r.attribute, r.value, r.unit, r.op, r.actor, r.source, r.changeSeq]
    )
    out.snapshots = (yield* c.listSnapshots(projectId)).map((s) => [s.actor, s.note, s.changeCount])
    return out
  })

describe("local history (modes B/C, opt-in)", () => {
  it.live("persists across restarts and exports into a hosted catalog with equal answers", () =>
    Effect.gen(function*() {
      // First session on the workstation.
      const first = yield* Effect.gen(function*() {
        const c = yield* DuckLakeClient
        expect(c.recording).toBe(true)
        const p = yield* c.registerProject({ irodsPath: root, actor: "carol" })
        const day = (d: number) => new Date(Date.UTC(2026, 4, d)).toISOString()
        yield* c.recordChanges({ projectId: p.projectId, actor: "carol", note: "day 1", changes: [
          change(paths[0]!, "site", "north", "add", { ts: day(1), actor: "carol" }),
          change(paths[1]!, "depth", "3", "add", { ts: day(1), unit: "m", actor: "carol" })
        ] })
        yield* c.recordChanges({ projectId: p.projectId, actor: "dave", note: "fix", changes: [
          change(paths[0]!, "site", "south", "set", { ts: day(3), actor: "dave" })
        ] })
        return { projectId: p.projectId, answers: yield* answers(c, p.projectId) }
      }).pipe(Effect.provide(localLayer))
      expect(fs.existsSync(nodePath.join(dataDir, "PG_VERSION"))).toBe(true)

      // The next session (the catalog was stopped with the client's scope) finds it all again.
      const second = yield* Effect.gen(function*() {
        const c = yield* DuckLakeClient
        const p = yield* c.findProjectByPath(paths[0]!)
        expect(p.projectId).toBe(first.projectId)
        yield* c.recordChanges({ projectId: p.projectId, actor: "carol", note: "late note", changes: [
          change(paths[1]!, "remark", "back-dated", "add", { ts: new Date(Date.UTC(2026, 4, 2)).toISOString(), actor: "carol" })
        ] })
        return yield* answers(c, p.projectId)
      }).pipe(Effect.provide(localLayer))
      expect(second.history).not.toEqual(first.answers.history)

      // Export into a hosted catalog (another PostgreSQL), twice: the second run finds everything there.
      yield* Effect.gen(function*() {
        const hostedPg = yield* EmbeddedPostgres.make()
        const hosted = yield* Layer.build(
          client({ dsn: hostedPg.dsn, cacheDir: `${dirs.cacheDir}-hosted` }, mounted({ mountRoot: `${dirs.zoneDir}-hosted`, logicalPrefix: "/" }))
        )
        const localCtx = yield* Layer.build(localLayer)
        const from = (yield* Effect.provide(DuckLakeClient, localCtx))
        const to = (yield* Effect.provide(DuckLakeClient, hosted))
        const report = yield* exportProject(from, to, first.projectId)
        expect(report).toMatchObject({ exported: 3, alreadyThere: 0 })
        expect(yield* answers(to, report.targetProjectId)).toEqual(second)
        const again = yield* exportProject(from, to, first.projectId)
        expect(again).toMatchObject({ exported: 0, alreadyThere: 3 })
        expect((yield* to.listSnapshots(report.targetProjectId)).length).toBe(3)
      }).pipe(Effect.scoped)
    }).pipe(Effect.ensuring(Effect.sync(() => fs.rmSync(dirs.base, { recursive: true, force: true })))), { timeout: 180_000 })

  it.effect("without the opt-in, modes B/C record nothing and start no database", () =>
    Effect.gen(function*() {
      const c = yield* DuckLakeClient
      expect(c.recording).toBe(false)
    }).pipe(Effect.provide(configured(Local.layer))))
})
