/**
 * `npm run bench`: latency of the write path and of reads as history grows, on the embedded default (real
 * PostgreSQL from npm, real DuckDB, a local directory standing in for the mounted zone). Not a test: it prints a
 * table, and the figures are compared within one run.
 *
 *   MESA_BENCH_SNAPSHOTS=100,1000,10000   checkpoints for the read measurements
 *   MESA_BENCH_SEED=42                     generator seed (paths, values, query times)
 */
import { NodeRuntime } from "@effect/platform-node"
import { Console, Effect } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as nodePath from "node:path"
import * as Embedded from "../layers/embedded.js"
import type { AvuChangeInput } from "../src/domain.js"
import { DuckLakeClient } from "../src/DuckLakeClient.js"

const checkpoints = (process.env.MESA_BENCH_SNAPSHOTS ?? "100,1000,10000").split(",").map(Number)
let seed = Number(process.env.MESA_BENCH_SEED ?? 42)
const rand = (n: number) => {
  seed = (seed * 1103515245 + 12345) % 2147483648
  return seed % n
}

const percentile = (xs: ReadonlyArray<number>, p: number) => {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!
}
const fmt = (ms: number) => ms.toFixed(ms < 10 ? 2 : 1)

const timed = <A, E, R>(e: Effect.Effect<A, E, R>) =>
  Effect.gen(function*() {
    const t = performance.now()
    yield* e
    return performance.now() - t
  })

const changeOf = (root: string, i: number, paths: number): AvuChangeInput => ({
  irodsPath: `${root}/collection-${i % 17}/object-${rand(paths)}.dat`,
  targetType: "data_object",
  attribute: `attr-${rand(20)}`,
  value: `value-${rand(50)}`,
  unit: rand(4) === 0 ? "mm" : "",
  op: rand(5) === 0 ? "delete" : rand(6) === 0 ? "set" : "add",
  actor: "bench",
  source: "mesa-mcp:bench"
})

const program = Effect.gen(function*() {
  const client = yield* DuckLakeClient
  const rows: Array<Array<string>> = []

  // 1. recordChanges latency by batch size.
  const lat = yield* client.registerProject({ irodsPath: "/benchZone/home/bench/latency", actor: "bench" })
  for (const [size, runs] of [[1, 60], [10, 60], [100, 30], [1000, 12]] as const) {
    const times: Array<number> = []
    for (let r = 0; r < runs; r++) {
      const batch = Array.from({ length: size }, (_, i) => changeOf(lat.irodsPath, i, 500))
      times.push(yield* timed(client.recordChanges({ projectId: lat.projectId, actor: "bench", changes: batch })))
    }
    rows.push([`recordChanges (${size} change${size > 1 ? "s" : ""})`, "-", fmt(percentile(times, 50)), fmt(percentile(times, 95)), `${Math.round(size / (percentile(times, 50) / 1000))}/s`])
  }

  // 2. Reads as history grows: one snapshot per mesa-mcp call (1–3 changes on one object).
  const big = yield* client.registerProject({ irodsPath: "/benchZone/home/bench/history", actor: "bench" })
  const paths = Array.from({ length: 200 }, (_, i) => `${big.irodsPath}/c${i % 10}/obj-${i}.dat`)
  const start = Date.now()
  let written = 0
  const readRows: Array<{ n: number; avus: number; asOf: number; asOfP95: number; compactMs: number; files: string; asOfCompacted: number; asOfCompactedP95: number }> = []
  for (const target of checkpoints) {
    const t0 = performance.now()
    while (written < target) {
      const path = paths[rand(paths.length)]!
      const n = 1 + rand(3)
      const changes = Array.from({ length: n }, () => ({
        irodsPath: path,
        targetType: "data_object" as const,
        attribute: `attr-${rand(8)}`,
        value: `v${rand(10)}`,
        op: rand(4) === 0 ? "delete" as const : "add" as const,
        actor: "bench",
        source: "mesa-mcp:bench"
      }))
      yield* client.recordChanges({ projectId: big.projectId, actor: "bench", changes })
      written++
    }
    const ingest = performance.now() - t0
    yield* Console.error(`  ${written} snapshots written (${fmt(ingest / 1000)} s for this step)`)
    const span = Date.now() - start
    const avus: Array<number> = []
    const asOf: Array<number> = []
    for (let q = 0; q < 40; q++) {
      const path = paths[rand(paths.length)]!
      avus.push(yield* timed(client.getAvus(big.projectId, path)))
      asOf.push(yield* timed(client.getAvusAsOf(big.projectId, path, new Date(start + rand(span)))))
    }
    // The same queries after compacting the history (one run of compaction over everything so far).
    const queries = Array.from({ length: 40 }, () => ({ path: paths[rand(paths.length)]!, at: new Date(start + rand(span)) }))
    const before: Array<number> = []
    for (const q of queries) before.push(yield* timed(client.getAvusAsOf(big.projectId, q.path, q.at)))
    const t1 = performance.now()
    const report = yield* client.compact(big.projectId)
    const compactMs = performance.now() - t1
    yield* client.deleteScheduledFiles(big.projectId, { graceMs: 0 })
    const after: Array<number> = []
    for (const q of queries) after.push(yield* timed(client.getAvusAsOf(big.projectId, q.path, q.at)))
    readRows.push({
      n: written,
      avus: percentile(avus, 50),
      asOf: percentile([...asOf, ...before], 50),
      asOfP95: percentile([...asOf, ...before], 95),
      compactMs,
      files: `${report.filesBefore}→${report.filesAfter}`,
      asOfCompacted: percentile(after, 50),
      asOfCompactedP95: percentile(after, 95)
    })
  }
  for (const r of readRows) {
    rows.push([`getAvus @ ${r.n} snapshots`, String(r.n), fmt(r.avus), "-", "-"])
    rows.push([`getAvusAsOf @ ${r.n} snapshots (files as written)`, String(r.n), fmt(r.asOf), fmt(r.asOfP95), "-"])
    rows.push([`compact ${r.files} files`, String(r.n), fmt(r.compactMs), "-", "-"])
    rows.push([`getAvusAsOf @ ${r.n} snapshots (compacted)`, String(r.n), fmt(r.asOfCompacted), fmt(r.asOfCompactedP95), "-"])
  }

  const header = ["operation", "snapshots", "p50 ms", "p95 ms", "throughput"]
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)))
  const line = (r: ReadonlyArray<string>) => r.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join("  ")
  yield* Console.log(`\nmesa-ducklake benchmark (${os.cpus().length} cores, Node ${process.version}, seed ${process.env.MESA_BENCH_SEED ?? 42})\n`)
  yield* Console.log(line(header))
  yield* Console.log(widths.map((w) => "-".repeat(w)).join("  "))
  for (const r of rows) yield* Console.log(line(r))
  const first = readRows[0]
  const last = readRows[readRows.length - 1]
  if (first !== undefined && last !== undefined && last !== first) {
    yield* Console.log(
      `\nratio ${last.n}/${first.n} snapshots: getAvus ${(last.avus / first.avus).toFixed(2)}x, ` +
        `getAvusAsOf ${(last.asOf / first.asOf).toFixed(2)}x as written, ${(last.asOfCompacted / first.asOfCompacted).toFixed(2)}x compacted`
    )
  }
})

const base = fs.mkdtempSync(nodePath.join(os.tmpdir(), "mesa-bench-"))
NodeRuntime.runMain(
  program.pipe(
    Effect.provide(Embedded.layer({ zoneDir: nodePath.join(base, "zone"), cacheDir: nodePath.join(base, "cache") })),
    Effect.ensuring(Effect.sync(() => fs.rmSync(base, { recursive: true, force: true })))
  )
)
