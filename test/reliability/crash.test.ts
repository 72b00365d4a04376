/**
 * Crash injection with real processes: a writer process (its own client over the same catalog, zone and cache) is
 * SIGKILLed at each step of the write protocol, over and over. After each kill the parent runs
 * `recoverPendingPushes` and checks that every batch the writer was told was committed is there exactly once,
 * that nothing half-written is visible, that every stored file is committed or reported, and that ids are unique.
 *
 *   RELIABILITY_KILLS_PER_STEP   kills per step (default 17: 102 kills over 6 steps)
 *   RELIABILITY_SEED             PRNG seed (printed)
 */
import { expect, layer } from "@effect/vitest"
import { Effect } from "effect"
import { inject } from "vitest"
import { DuckLakeClient } from "../../src/client/DuckLakeClient.js"
import { EmbeddedPostgres } from "../../src/postgres/EmbeddedPostgres.js"
import { embedded, freshRoot } from "../support.js"
import { capturingLogger, checkProject, passwordOf, prng, runWriter, type WriterEnv } from "./harness.js"
import { addTally } from "./tally.js"
import type { KillStep } from "./writer.js"

const STEPS: ReadonlyArray<KillStep> = ["reserved", "parquet-written", "mid-push", "pushed", "committed"]
const KILLS_PER_STEP = Number(process.env.RELIABILITY_KILLS_PER_STEP ?? 17)
const SEED = Number(process.env.RELIABILITY_SEED ?? Date.now() % 1_000_000)
const LANES = 2

const { dirs, layer: Live } = embedded("crash")
const logs = capturingLogger()

layer(Live, { timeout: "8 minutes", excludeTestServices: true })("writers killed at every step", (it) => {
  it.effect(`${KILLS_PER_STEP} SIGKILLs per step over ${STEPS.length} steps; recovery loses and duplicates nothing`, () =>
    Effect.gen(function*() {
      const lake = yield* DuckLakeClient
      const pg = yield* EmbeddedPostgres
      const secret = passwordOf(pg.dsn)
      const env: WriterEnv = { bundle: inject("writerBundle"), dsn: pg.dsn, zoneDir: dirs.zoneDir, cacheDir: dirs.cacheDir }
      const rand = prng(SEED)
      console.log(`crash test: seed ${SEED} (RELIABILITY_SEED), ${KILLS_PER_STEP} kills per step, ${LANES} lanes`)

      const kills: Record<string, number> = Object.fromEntries(STEPS.map((s) => [s, 0]))
      const recovery = { pushed: 0, committed: 0, failed: 0, orphaned: 0, missingLocal: 0, markers: 0 }
      let written = 0
      let recovered = 0
      let unacknowledgedReported = 0
      let lost = 0
      let duplicates = 0
      let children = 0
      const started = Date.now()

      // Jobs interleave the steps, and alternate between lanes (each lane a project and one writer at a time).
      const jobs = Array.from({ length: KILLS_PER_STEP * STEPS.length }, (_, i) => ({
        n: i,
        step: STEPS[i % STEPS.length]!,
        at: 1 + rand(3),
        changes: 1 + rand(4)
      }))

      const lane = (laneNo: number) =>
        Effect.gen(function*() {
          const p = yield* lake.registerProject({ irodsPath: freshRoot(`crash-lane${laneNo}`), actor: "alice" })
          const acked = new Map<string, number>()
          for (const job of jobs.filter((j) => j.n % LANES === laneNo)) {
            const run = yield* runWriter(env, {
              projects: [{ id: p.projectId, root: p.irodsPath }],
              batches: job.at,
              keyPrefix: `job${job.n}`,
              changesPerBatch: job.changes,
              kill: { step: job.step, at: job.at }
            })
            children++
            expect(run.signal, `job ${job.n} (${job.step}): ${run.stderr}`).toBe("SIGKILL")
            // The password travels in the environment only: never in argv, never printed.
            expect(run.cmdline).not.toContain(secret)
            expect(run.stdout + run.stderr).not.toContain(secret)
            kills[job.step]!++
            const attempts = run.lines.filter((l) => l.t === "attempt")
            const inflight = attempts[attempts.length - 1]
            expect(inflight?.t === "attempt" && inflight.key).toBe(`job${job.n}-${job.at - 1}`)
            const ackedNow = run.lines.flatMap((l) => (l.t === "committed" ? [l] : []))
            expect(ackedNow.length).toBe(job.at - 1)
            for (const l of ackedNow) {
              expect([...acked.values()]).not.toContain(l.snapshotId)
              acked.set(l.key, l.snapshotId)
              written++
            }

            const report = yield* lake.recoverPendingPushes({ maxAttempts: 1 })
            for (const k of Object.keys(recovery) as Array<keyof typeof recovery>) recovery[k] += report[k]

            const check = yield* checkProject(p, dirs.zoneDir, { afterRecovery: true })
            expect(check.problems, `job ${job.n} (${job.step})`).toEqual([])
            duplicates += check.duplicates
            for (const [key, id] of acked) {
              const ids = check.committedByNote.get(key) ?? []
              if (ids.length !== 1 || ids[0] !== id) lost++
            }
            const key = `job${job.n}-${job.at - 1}`
            const inflightIds = check.committedByNote.get(key) ?? []
            if (job.step === "reserved" && inflightIds.length === 1) {
              // The file is built while the reservation is flushed (src/client/write.ts, `planned`): killed right
              // after the reservation, its local file may already be whole, and recovery finishes the write.
              recovered++
            } else if (job.step === "reserved") {
              // Killed before its file existed: never committed, and reported as a failed write.
              expect(inflightIds).toEqual([])
              expect(check.view.wal.filter((w) => w.note === key).map((w) => w.state)).toEqual(["failed"])
              unacknowledgedReported++
            } else {
              // Its file was written (or more): recovery finishes it, or it was committed already.
              expect(inflightIds.length, `job ${job.n} (${job.step})`).toBe(1)
              recovered++
            }
          }
          expect(lost).toBe(0)
          expect(duplicates).toBe(0)

          // Whole-content check: every committed snapshot's rows, read back through the client from its file.
          const check = yield* checkProject(p, dirs.zoneDir, { afterRecovery: true })
          const history = yield* lake.getHistory(p.projectId, { limit: 1_000_000 })
          const rowsBySnapshot = new Map<number, Array<(typeof history)[number]>>()
          for (const r of history) rowsBySnapshot.set(r.snapshotId, [...(rowsBySnapshot.get(r.snapshotId) ?? []), r])
          expect(rowsBySnapshot.size).toBe(check.view.snapshots.length)
          for (const s of check.view.snapshots) {
            const rows = rowsBySnapshot.get(s.snapshotId) ?? []
            expect(rows.length).toBe(s.changeCount)
            expect(new Set(rows.map((r) => r.value))).toEqual(new Set([s.note]))
            expect(rows.every((r) => r.irodsPath.endsWith(`/${s.note}`))).toBe(true)
          }
          for (const [key] of acked) {
            const path = `${p.irodsPath}/${key.split("-")[0]}/${key}`
            expect((yield* lake.getAvus(p.projectId, path)).map((a) => a.value)).not.toEqual([])
          }
        })

      yield* Effect.all(Array.from({ length: LANES }, (_, i) => lane(i)), { concurrency: LANES })

      const seconds = (Date.now() - started) / 1000
      console.log(
        `crash test: ${children} writer processes, ${Object.values(kills).reduce((a, b) => a + b, 0)} kills in ${seconds.toFixed(1)} s`,
        kills,
        { written, recovered, lost, duplicates },
        recovery
      )
      addTally(inject("tallyDir"), "crash", {
        ...Object.fromEntries(Object.entries(kills).map(([s, n]) => [`kills at ${s}`, n])),
        "batches written (acknowledged)": written,
        "batches recovered": recovered,
        "unacknowledged, reported failed": unacknowledgedReported,
        "batches lost": lost,
        duplicates,
        "recovery: pushed": recovery.pushed,
        "recovery: committed": recovery.committed,
        "recovery: failed": recovery.failed,
        "recovery: markers": recovery.markers
      }, [`seed ${SEED}; ${children} writer processes in ${seconds.toFixed(1)} s`])
      // The parent's own log lines (recovery reports) never carry the password either.
      expect(logs.lines.length).toBeGreaterThan(0)
      expect(logs.lines.filter((l) => l.includes(secret))).toEqual([])
    }).pipe(Effect.provide(logs.layer)))
})
