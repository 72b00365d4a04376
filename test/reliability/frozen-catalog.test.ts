/**
 * A frozen catalog: every PostgreSQL process SIGSTOPped (the TCP connections stay open, so nothing but our own
 * deadlines ends a wait). Writes and reads fail within the deadline as `CatalogUnavailable { reason: "timeout" }`,
 * the writer lock is not held past it, and once PostgreSQL runs again a write whose commit was never acknowledged is
 * settled by recovery: with its idempotency key it is recorded exactly once.
 */
import { expect, layer } from "@effect/vitest"
import { Effect, Layer, Schedule } from "effect"
import { execFileSync } from "node:child_process"
import * as fs from "node:fs"
import { inject } from "vitest"
import { DuckLakeClient, WriteProbe } from "../../src/client/DuckLakeClient.js"
import { change, embedded, EmbeddedPostgres, freshRoot, withFakeClient } from "../support.js"
import { checkProject } from "./harness.js"
import { addTally } from "./tally.js"

// Short deadlines for this file (read by the catalog from configuration when its layer is built).
process.env.MESA_DUCKLAKE_CATALOG_STATEMENT_TIMEOUT_MS = "1500"
process.env.MESA_DUCKLAKE_CATALOG_CONNECT_TIMEOUT_MS = "1500"

const { dirs, layer: Live } = embedded("frozen-catalog")

/** Every process of the embedded server: the postmaster (its pid file) and its children (backends, workers). */
const serverPids = (dataDir: string): Array<number> => {
  const postmaster = Number(fs.readFileSync(`${dataDir}/postmaster.pid`, "utf8").split("\n")[0])
  const children = execFileSync("ps", ["-o", "pid=", "--ppid", String(postmaster)], { encoding: "utf8" })
    .split("\n").map((s) => Number(s.trim())).filter((n) => n > 0)
  return [postmaster, ...children]
}

const signalPids = (dataDir: string, signal: "SIGSTOP" | "SIGCONT") =>
  Effect.sync(() => {
    for (const pid of serverPids(dataDir)) {
      try {
        process.kill(pid, signal)
      } catch {
        // a backend that exited in between
      }
    }
  })

const signalServer = (signal: "SIGSTOP" | "SIGCONT") =>
  Effect.flatMap(EmbeddedPostgres, (pg) => signalPids(pg.dataDir, signal))

/** Runs `effect` with the server frozen, thawing it whatever happens. */
const frozen = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.acquireUseRelease(signalServer("SIGSTOP"), () => effect, () => signalServer("SIGCONT"))

const timed = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.gen(function*() {
    const start = Date.now()
    const exit = yield* Effect.exit(effect)
    return { exit, ms: Date.now() - start }
  })

const recoverWhenBack = Effect.flatMap(DuckLakeClient, (c) =>
  c.recoverPendingPushes().pipe(Effect.retry({ times: 20, schedule: Schedule.spaced("300 millis") })))

const failureTag = (exit: { readonly _tag: string }): string => {
  if (exit._tag !== "Failure") return "Success"
  const cause = (exit as any).cause
  if (cause?._tag === "Die") console.error("defect:", cause.defect)
  return cause?.error?._tag ?? cause?._tag
}
const failureReason = (exit: { readonly _tag: string }) => (exit as any).cause?.error?.reason

layer(Live, { timeout: "5 minutes", excludeTestServices: true })("frozen catalog", (it) => {
  it.effect("writes and reads fail within the deadline as CatalogUnavailable timeout; the lock is free afterwards", () =>
    Effect.gen(function*() {
      const lake = yield* DuckLakeClient
      const p = yield* lake.registerProject({ irodsPath: freshRoot("frozen"), actor: "alice" })
      const path = `${p.irodsPath}/o`
      yield* lake.recordChanges({ projectId: p.projectId, actor: "alice", note: "before", changes: [change(path, "k", "before")] })
      const input = {
        projectId: p.projectId,
        actor: "alice",
        note: "during",
        idempotencyKey: "frozen-write",
        changes: [change(path, "k", "during")]
      }
      const [write, read, list] = yield* frozen(Effect.all([
        timed(lake.recordChanges(input)),
        timed(lake.getAvus(p.projectId, path)),
        timed(lake.listSnapshots(p.projectId))
      ], { concurrency: "unbounded" }))
      for (const r of [write, read, list]) {
        expect(failureTag(r.exit)).toBe("CatalogUnavailable")
        expect(failureReason(r.exit)).toBe("timeout")
        // Deadlines of 1.5 s: a write takes a few statements, each bounded; never the unbounded wait of before.
        expect(r.ms).toBeLessThan(15_000)
      }
      // Thawed: the writer lock is not held by the dead session (a new write gets it), and the unacknowledged write
      // is settled: recovery plus the caller's retry with its key record it exactly once.
      yield* recoverWhenBack
      const retry = yield* lake.recordChanges(input).pipe(
        Effect.retry({ while: (e) => e._tag === "CatalogUnavailable", times: 20, schedule: Schedule.spaced("300 millis") })
      )
      expect(retry.recorded).toBe(true)
      const again = yield* timed(lake.recordChanges({ projectId: p.projectId, actor: "alice", note: "after", changes: [change(path, "k2", "after")] }))
      expect(again.exit._tag).toBe("Success")
      const avus = yield* lake.getAvus(p.projectId, path)
      expect(avus.map((a) => `${a.attribute}=${a.value}`).sort()).toEqual(["k2=after", "k=before", "k=during"])
      yield* lake.flush
      const check = yield* checkProject(p, dirs.zoneDir, { afterRecovery: true })
      expect(check.problems).toEqual([])
      expect(check.duplicates).toBe(0)
      expect(check.committedByNote.get("during")?.length).toBe(1)
      addTally(inject("tallyDir"), "catalog-faults", { "frozen catalog": 1, duplicates: check.duplicates })
    }))

  it.effect("frozen between push and commit: the commit times out, and recovery settles it exactly once", () =>
    Effect.gen(function*() {
      const lake = yield* DuckLakeClient
      const p = yield* lake.registerProject({ irodsPath: freshRoot("frozen-commit"), actor: "alice" })
      const input = {
        projectId: p.projectId,
        actor: "alice",
        note: "once",
        idempotencyKey: "once",
        changes: [change(`${p.irodsPath}/o`, "k", "v")]
      }
      let thawed = false
      const { dataDir } = yield* EmbeddedPostgres
      const probe = Layer.succeed(WriteProbe, {
        after: (step) => (step === "pushed" ? signalPids(dataDir, "SIGSTOP") : Effect.void)
      })
      const attempt = yield* timed(
        Effect.flatMap(DuckLakeClient, (c) => c.recordChanges(input)).pipe(
          withFakeClient(probe),
          Effect.ensuring(Effect.suspend(() => (thawed ? Effect.void : signalServer("SIGCONT"))))
        )
      )
      thawed = true
      expect(failureTag(attempt.exit)).toBe("CatalogUnavailable")
      expect(failureReason(attempt.exit)).toBe("timeout")
      expect(attempt.ms).toBeLessThan(15_000)
      yield* recoverWhenBack
      const r = yield* lake.recordChanges(input).pipe(
        Effect.retry({ while: (e) => e._tag === "CatalogUnavailable", times: 20, schedule: Schedule.spaced("300 millis") })
      )
      expect(r.recorded).toBe(true)
      yield* lake.flush
      const check = yield* checkProject(p, dirs.zoneDir, { afterRecovery: true })
      expect(check.problems).toEqual([])
      expect(check.committedByNote.get("once")?.length).toBe(1)
      addTally(inject("tallyDir"), "catalog-faults", { "frozen catalog": 1, duplicates: check.duplicates })
    }))
})
