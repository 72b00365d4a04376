/**
 * Security: changes outside their project's root, roots nested in (or around) another project's, and a project id
 * of one catalog used against another catalog are refused, with nothing written; the DSN password shows in no
 * error (message, JSON, cause chain, pretty cause) and no log line, through a catalog outage too. (Writer
 * processes' argv, stdout and stderr are checked by the crash, concurrency and catalog-fault tests.)
 */
import { expect, layer } from "@effect/vitest"
import { Cause, Effect, Exit, Redacted, Schedule } from "effect"
import fc from "fast-check"
import pg from "pg"
import { inject } from "vitest"
import { client, mounted } from "../../layers/components.js"
import { DuckLakeClient } from "../../src/client/DuckLakeClient.js"
import { EmbeddedPostgres } from "../../src/postgres/EmbeddedPostgres.js"
import { change, embedded, freshRoot, listTree } from "../support.js"
import { capturingLogger, catalogView, passwordOf } from "./harness.js"
import { addTally } from "./tally.js"

const { dirs, layer: Live } = embedded("security")
const logs = capturingLogger()
let tried = 0

/** Everything an error can show: message, JSON, each cause's message and stack, the pretty cause. */
const everythingShown = (exit: Exit.Exit<unknown, unknown>) => {
  if (Exit.isSuccess(exit)) return ""
  const parts = [Cause.pretty(exit.cause)]
  for (let c: any = Cause.squash(exit.cause), depth = 0; c !== undefined && c !== null && depth < 8; c = c.cause, depth++) {
    parts.push(String(c.message ?? ""), String(c.stack ?? ""))
    try {
      parts.push(JSON.stringify(c))
    } catch {
      // circular: the other parts carry it
    }
  }
  return parts.join("\n")
}

layer(Live, { timeout: "5 minutes", excludeTestServices: true })("security", (it) => {
  it.effect("changes outside the project's root (or into its lake) are refused, nothing written", () =>
    Effect.gen(function*() {
      const lake = yield* DuckLakeClient
      const p = yield* lake.registerProject({ irodsPath: freshRoot("sec"), actor: "alice" })
      const parent = p.irodsPath.slice(0, p.irodsPath.lastIndexOf("/"))
      const outside = fc.oneof(
        fc.constantFrom(`${p.irodsPath}x/o`, `${p.irodsPath}-evil/o`, parent, `${parent}/other/o`, "/", "/testZone", `${p.irodsPath}/../x/o`,
          `${p.irodsPath}/./../../o`, `${p.irodsPath}/.mesa/ducklake/main/avu_changes/x.parquet`, `${p.irodsPath}//.mesa//ducklake`,
          `/otherZone${p.irodsPath}`, p.irodsPath.toUpperCase()),
        fc.string({ unit: "grapheme", minLength: 1, maxLength: 20 }).map((s) => `/${s.replace(/^\/+/, "")}`)
          .filter((s) => !(s === p.irodsPath || s.startsWith(p.irodsPath + "/")))
      )
      for (const path of fc.sample(outside, { numRuns: 150, seed: 3 })) {
        tried++
        const exit = yield* Effect.exit(lake.recordChanges({ projectId: p.projectId, actor: "mallory", changes: [change(path, "k", "v")] }))
        expect(Exit.isFailure(exit), path).toBe(true)
        const e = Cause.squash((exit as Exit.Failure<unknown, unknown>).cause) as { _tag: string; field: string }
        expect([e._tag, e.field]).toEqual(["InvalidChange", "irodsPath"])
      }
      const view = yield* catalogView(p)
      expect(view.snapshots.length + view.wal.length).toBe(0)
      expect(view.lastSnapshotId).toBe(1)
      expect(listTree(`${dirs.zoneDir}${p.ducklakePath}`).filter((f) => f.endsWith(".parquet"))).toEqual([])
    }))

  it.effect("roots inside, around or equal to another project's are refused, also when registrations race", () =>
    Effect.gen(function*() {
      const lake = yield* DuckLakeClient
      const a = yield* lake.registerProject({ irodsPath: freshRoot("outer"), actor: "alice" })
      for (
        const [path, relation] of [
          [a.irodsPath, "duplicate"],
          [`${a.irodsPath}/`, "duplicate"],
          [a.irodsPath.replace(/\//g, "//"), "duplicate"],
          [`${a.irodsPath}/inner`, "nested-inside"],
          [`${a.irodsPath}//deep///er/`, "nested-inside"],
          [`${a.irodsPath}/.mesa`, "nested-inside"],
          [a.irodsPath.slice(0, a.irodsPath.lastIndexOf("/")), "contains"]
        ] as const
      ) {
        tried++
        const e = yield* Effect.flip(lake.registerProject({ irodsPath: path, actor: "mallory" }))
        expect(e._tag, path).toBe("ProjectConflict")
        expect(e._tag === "ProjectConflict" && e.relation).toBe(relation)
      }
      // Racing registrations of a root and a root inside it: exactly one wins each time.
      for (let round = 0; round < 10; round++) {
        const root = freshRoot("race")
        const results = yield* Effect.all(
          [root, `${root}/inside`, root, `${root}/inside/deeper`].map((r) => Effect.either(lake.registerProject({ irodsPath: r, actor: "a" }))),
          { concurrency: "unbounded" }
        )
        tried += results.length
        expect(results.filter((r) => r._tag === "Right").length).toBe(1)
        for (const r of results) if (r._tag === "Left") expect(r.left._tag).toBe("ProjectConflict")
      }
    }))

  it.effect("a project id of one catalog is refused by another catalog (two databases on one server)", () =>
    Effect.gen(function*() {
      const lake = yield* DuckLakeClient
      const server = yield* EmbeddedPostgres
      const url = new URL(Redacted.value(server.dsn))
      yield* Effect.promise(async () => {
        const c = new pg.Client({ connectionString: url.toString() })
        await c.connect()
        await c.query("DROP DATABASE IF EXISTS mesa_other").catch(() => undefined)
        await c.query("CREATE DATABASE mesa_other")
        await c.end()
      })
      url.pathname = "/mesa_other"
      const other = client({ dsn: Redacted.make(url.toString()), cacheDir: `${dirs.cacheDir}-other` }, mounted({ mountRoot: dirs.zoneDir, logicalPrefix: "/" }))
      const mine = yield* lake.registerProject({ irodsPath: freshRoot("cat1"), actor: "alice" })
      yield* Effect.gen(function*() {
        const lake2 = yield* DuckLakeClient
        const theirs = yield* lake2.registerProject({ irodsPath: freshRoot("cat2"), actor: "bob" })
        const calls = (l: typeof lake, id: string, root: string) => [
          l.recordChanges({ projectId: id, actor: "x", changes: [change(`${root}/o`, "k", "v")] }),
          l.getProject(id),
          l.getAvus(id, `${root}/o`),
          l.getAvusAsOf(id, `${root}/o`, new Date()),
          l.getHistory(id),
          l.listSnapshots(id),
          l.diff(id, 0, 1)
        ]
        for (const call of [...calls(lake2, mine.projectId, mine.irodsPath), ...calls(lake, theirs.projectId, theirs.irodsPath)]) {
          tried++
          const e = yield* Effect.flip(call as Effect.Effect<unknown, { _tag: string }>)
          expect(e._tag).toBe("ProjectNotFound")
        }
        expect((yield* lake2.listProjects).map((p) => p.projectId)).toEqual([theirs.projectId])
        expect((yield* lake2.findProjectByPath(`${mine.irodsPath}/o`).pipe(Effect.flip))._tag).toBe("ProjectNotFound")
      }).pipe(Effect.provide(other))
      const view = yield* catalogView(mine)
      expect(view.snapshots.length + view.wal.length).toBe(0)
    }))

  it.effect("the DSN password is in no error and no log line, through a catalog outage", () =>
    Effect.gen(function*() {
      const lake = yield* DuckLakeClient
      const server = yield* EmbeddedPostgres
      const secret = passwordOf(server.dsn)
      expect(secret.length).toBeGreaterThan(8)
      const p = yield* lake.registerProject({ irodsPath: freshRoot("pw"), actor: "alice" })
      const exits: Array<Exit.Exit<unknown, unknown>> = []
      const everything = Effect.forEach([
        lake.recordChanges({ projectId: p.projectId, actor: "a", changes: [change(`${p.irodsPath}/o`, "k", "v")] }),
        lake.getAvus(p.projectId, `${p.irodsPath}/o`),
        lake.getHistory(p.projectId),
        lake.listProjects,
        lake.recoverPendingPushes(),
        lake.registerProject({ irodsPath: freshRoot("pw2"), actor: "a" })
      ] as ReadonlyArray<Effect.Effect<unknown, unknown>>, (e) => Effect.exit(e).pipe(Effect.tap((x) => exits.push(x))))
      yield* everything
      yield* server.stop
      yield* everything
      yield* server.start
      yield* lake.listProjects.pipe(Effect.retry({ times: 10, schedule: Schedule.spaced("300 millis") }))
      yield* everything
      const failures = exits.filter(Exit.isFailure)
      expect(failures.length).toBeGreaterThanOrEqual(6) // the outage
      for (const exit of exits) expect(everythingShown(exit)).not.toContain(secret)
      // Errors logged the way an application would log them.
      for (const exit of failures) yield* Effect.logError("call failed", exit.cause)
      expect(logs.lines.length).toBeGreaterThan(0)
      expect(logs.lines.filter((l) => l.includes(secret))).toEqual([])
      tried += exits.length
    }).pipe(Effect.provide(logs.layer)))

  it.effect("tally", () => Effect.sync(() => addTally(inject("tallyDir"), "security", { "refusals and secret checks": tried })))
})

