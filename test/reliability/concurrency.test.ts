/**
 * Concurrent writer processes: 8 writers on one project, then 8 writers across 4 projects, each its own client over
 * the same catalog and zone. Snapshot ids are unique, contiguous and ordered by commit time (and by real time: a
 * batch acknowledged before another started has the smaller id), the committed count equals the successful calls,
 * no change is lost. A reader running meanwhile only ever sees whole, committed snapshots.
 *
 *   RELIABILITY_WRITERS   writer processes (default 8)
 *   RELIABILITY_BATCHES   batches per writer (default 200: the 8 × 200; lower it for a quick local run)
 */
import { expect, layer } from "@effect/vitest"
import { Effect, Fiber, Ref } from "effect"
import * as fs from "node:fs"
import * as nodePath from "node:path"
import { inject } from "vitest"
import { Catalog } from "../../src/catalog/Catalog.js"
import type { Project } from "../../src/core/domain.js"
import { DuckLakeClient } from "../../src/client/DuckLakeClient.js"
import { EmbeddedPostgres } from "../../src/postgres/EmbeddedPostgres.js"
import { embedded, freshRoot } from "../support.js"
import { checkProject, passwordOf, runWriter, sha2Of, type WriterEnv, type WriterLine, type WriterRun } from "./harness.js"
import { addTally } from "./tally.js"

const WRITERS = Number(process.env.RELIABILITY_WRITERS ?? 8)
// 200 per writer (the figure) takes ~7.5 min on a shared 2-core machine; the default keeps the suite near 8 min.
const BATCHES = Number(process.env.RELIABILITY_BATCHES ?? 200)
const CHANGES = 3

const { dirs, layer: Live } = embedded("concurrency")

type Ack = Extract<WriterLine, { t: "committed" }>

/** Acknowledged batches in real-time order must have increasing ids: A ended before B started ⇒ id(A) < id(B). */
const realTimeViolations = (acks: ReadonlyArray<Ack>) => {
  const byEnd = [...acks].sort((a, b) => a.end - b.end)
  const byStart = [...acks].sort((a, b) => a.start - b.start)
  let i = 0
  let maxId = -1
  let violations = 0
  for (const b of byStart) {
    while (i < byEnd.length && byEnd[i]!.end < b.start) maxId = Math.max(maxId, byEnd[i++]!.snapshotId)
    if (maxId >= b.snapshotId) violations++
  }
  return violations
}

/**
 * A reader in this process while the writers run: every snapshot it lists must be whole — its file stored with
 * the catalog's checksum, all its rows readable through the client, its AVUs in the current state, and no
 * write-ahead row left for it.
 */
const reader = (projects: ReadonlyArray<Project>, done: Ref.Ref<boolean>) =>
  Effect.gen(function*() {
    const lake = yield* DuckLakeClient
    const catalog = yield* Catalog
    const seen = new Set<string>()
    let reads = 0
    let verified = 0
    const problems: Array<string> = []
    while (!(yield* Ref.get(done))) {
      // Paced, so the reader does not starve the writers of CPU on a 2-core machine.
      yield* Effect.sleep("25 millis")
      for (const p of projects) {
        const snaps = yield* lake.listSnapshots(p.projectId, { limit: 5 })
        reads++
        for (const s of snaps) {
          const id = `${p.projectId}/${s.snapshotId}`
          if (seen.has(id)) continue
          seen.add(id)
          const file = nodePath.join(dirs.zoneDir, p.ducklakePath, s.dataFile)
          const [row] = yield* catalog.withSql((sql) =>
            sql<any>`SELECT checksum, (SELECT count(*)::int FROM mesa_ducklake.pending_writes
                                        WHERE project_id = ${p.projectId} AND snapshot_id = ${s.snapshotId}) AS wal
                     FROM ${sql(p.metadataSchema)}.mesa_snapshot WHERE snapshot_id = ${s.snapshotId}`
          )
          if (!fs.existsSync(file)) problems.push(`${id}: file missing`)
          else if (sha2Of(file) !== row.checksum) problems.push(`${id}: file incomplete (checksum)`)
          if (row.wal !== 0) problems.push(`${id}: visible with a write-ahead row`)
          const key = s.note!
          const path = `${p.irodsPath}/${key.split("-")[0]}/${key}`
          const rows = yield* lake.getHistory(p.projectId, { irodsPath: path, limit: 100 })
          if (rows.length !== s.changeCount || rows.some((r) => r.snapshotId !== s.snapshotId || r.value !== key)) {
            problems.push(`${id}: ${rows.length} of ${s.changeCount} rows readable`)
          }
          if ((yield* lake.getAvus(p.projectId, path)).length !== CHANGES) problems.push(`${id}: current state incomplete`)
          verified++
        }
      }
    }
    return { reads, verified, problems }
  })

layer(Live, { timeout: "15 minutes", excludeTestServices: true })("concurrent writer processes", (it) => {
  for (const projectCount of [1, 4]) {
    it.effect(`${WRITERS} writers × ${BATCHES} batches on ${projectCount} project(s), with a reader`, () =>
      Effect.gen(function*() {
        const lake = yield* DuckLakeClient
        const pg = yield* EmbeddedPostgres
        const secret = passwordOf(pg.dsn)
        const env: WriterEnv = { bundle: inject("writerBundle"), dsn: pg.dsn, zoneDir: dirs.zoneDir, cacheDir: dirs.cacheDir }
        const projects = yield* Effect.forEach(
          Array.from({ length: projectCount }),
          () => lake.registerProject({ irodsPath: freshRoot("conc"), actor: "alice" })
        )
        const done = yield* Ref.make(false)
        const readerFiber = yield* Effect.fork(reader(projects, done))
        const started = Date.now()
        const runs: Array<WriterRun> = yield* Effect.all(
          Array.from({ length: WRITERS }, (_, w) =>
            runWriter(env, {
              // Each writer starts on a different project, so the projects are written in parallel.
              projects: projects.map((_, i) => projects[(i + w) % projects.length]!).map((p) => ({ id: p.projectId, root: p.irodsPath })),
              batches: BATCHES,
              keyPrefix: `p${projectCount}w${w}`,
              changesPerBatch: CHANGES
            })),
          { concurrency: "unbounded" }
        )
        const seconds = (Date.now() - started) / 1000
        yield* Ref.set(done, true)
        const read = yield* Fiber.join(readerFiber)

        for (const run of runs) {
          expect(run.code, run.stderr).toBe(0)
          expect(run.cmdline).not.toContain(secret)
          expect(run.stdout + run.stderr).not.toContain(secret)
        }
        const acks = runs.flatMap((r) => r.lines.flatMap((l) => (l.t === "committed" ? [l] : [])))
        const errors = runs.flatMap((r) => r.lines.filter((l) => l.t === "error"))
        expect(errors).toEqual([])
        expect(acks.length).toBe(WRITERS * BATCHES)

        let lost = 0
        let duplicates = 0
        let violations = 0
        for (const p of projects) {
          const mine = acks.filter((a) => a.project === p.projectId)
          const check = yield* checkProject(p, dirs.zoneDir, { afterRecovery: true })
          expect(check.problems).toEqual([])
          duplicates += check.duplicates
          // Committed snapshots = successful calls; ids unique and contiguous (none burned, none reused).
          expect(check.view.snapshots.length).toBe(mine.length)
          expect(new Set(mine.map((a) => a.snapshotId)).size).toBe(mine.length)
          expect(check.view.snapshots.map((s) => s.snapshotId)).toEqual(Array.from({ length: mine.length }, (_, i) => i + 2))
          expect(check.view.wal).toEqual([])
          for (const a of mine) {
            const ids = check.committedByNote.get(a.key) ?? []
            if (ids.length !== 1 || ids[0] !== a.snapshotId) lost++
          }
          violations += realTimeViolations(mine)
          // No lost change: every row of every batch is in the history.
          const history = yield* lake.getHistory(p.projectId, { limit: 1_000_000 })
          expect(history.length).toBe(mine.length * CHANGES)
        }
        expect(lost).toBe(0)
        expect(duplicates).toBe(0)
        expect(violations).toBe(0)
        expect(read.problems).toEqual([])
        expect(read.verified).toBeGreaterThan(0)

        const rate = (acks.length / seconds).toFixed(0)
        console.log(
          `concurrency: ${WRITERS} writers × ${BATCHES} batches on ${projectCount} project(s): ${acks.length} committed in ` +
            `${seconds.toFixed(1)} s (${rate}/s); reader: ${read.reads} listings, ${read.verified} snapshots verified whole`
        )
        addTally(inject("tallyDir"), "concurrency", {
          [`writers × batches, ${projectCount} project(s)`]: acks.length,
          "batches written (acknowledged)": acks.length,
          "batches lost": lost,
          duplicates,
          "real-time order violations": violations,
          "snapshots verified by the reader": read.verified
        }, [`${projectCount} project(s): ${WRITERS} writers × ${BATCHES} batches in ${seconds.toFixed(1)} s (${rate}/s)`])
      }))
  }
})
