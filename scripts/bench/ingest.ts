/**
 * The bulk-ingest benchmark, run in a process of its own so its peak RSS is the ingest's (a process's resident set
 * does not shrink back: measured inside the benchmark, it would carry whatever the write and read runs left). The
 * parent (`benchIngest`) starts this module as a child with the catalog's DSN and directories; the child registers
 * a project, ingests the changes, reads while the index catches up, waits for the catch-up and prints one JSON line.
 *
 * The changes: `total` over 100 collections and 100,000 objects, 10 attributes, 50 values, 10% deletes.
 */
import { NodeRuntime } from "@effect/platform-node"
import { Effect, Redacted } from "effect"
import { spawn } from "node:child_process"
import * as fs from "node:fs"
import * as nodePath from "node:path"
import { fileURLToPath } from "node:url"
import { client, mounted } from "../../layers/components.js"
import { Catalog } from "../../src/catalog/Catalog.js"
import { DuckLakeClient } from "../../src/client/DuckLakeClient.js"

export interface IngestResult {
  readonly total: number
  /** Until `ingestChanges` returned. */
  readonly ingestMs: number
  /** From then until the current-state index had caught up (its mark gone: getAvus answers from the index). */
  readonly catchUpMs: number
  /** From then until the background work that follows (automatic compaction) had finished (`flush`). */
  readonly afterMs: number
  readonly laggingReadMs: ReadonlyArray<number>
  /** Resident set before the ingest (library loaded, client built), and the process's peak (`maxRSS`). */
  readonly rssBefore: number
  readonly peakRss: number
  /** Peak sampled while the ingest ran, while the index caught up, and while the compaction after it ran. */
  readonly peakDuringIngest: number
  readonly peakDuringCatchUp: number
  readonly peakDuringAfter: number
}

/** Runs the ingest in a child process and returns what it measured. */
export const benchIngest = (options: {
  readonly dsn: string
  readonly dir: string
  readonly total: number
  readonly seed: number
  /** Node options for the child (e.g. a V8 heap limit). */
  readonly nodeArgs?: ReadonlyArray<string>
  /** The project's name under /benchZone/home/bench (one per run: the catalog is shared). */
  readonly name?: string
}): Promise<IngestResult> =>
  new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...(options.nodeArgs ?? []), fileURLToPath(import.meta.url)], {
      env: {
        ...process.env,
        BENCH_INGEST_CHILD: "1",
        BENCH_INGEST_DSN: options.dsn,
        BENCH_INGEST_DIR: options.dir,
        BENCH_INGEST_TOTAL: String(options.total),
        BENCH_INGEST_SEED: String(options.seed),
        BENCH_INGEST_NAME: options.name ?? "bulk"
      },
      stdio: ["ignore", "pipe", "inherit"]
    })
    let out = ""
    child.stdout.on("data", (d) => (out += d))
    child.on("error", reject)
    child.on("exit", (code) => {
      const line = out.trim().split("\n").pop() ?? ""
      if (code !== 0) return reject(new Error(`the ingest child exited ${code}: ${out}`))
      try {
        resolve(JSON.parse(line) as IngestResult)
      } catch (e) {
        reject(new Error(`the ingest child printed no result: ${out}`))
      }
    })
  })

const child = Effect.gen(function*() {
  const lake = yield* DuckLakeClient
  const total = Number(process.env.BENCH_INGEST_TOTAL)
  let seed = Number(process.env.BENCH_INGEST_SEED ?? 42)
  const rand = (n: number) => {
    seed = (seed * 1103515245 + 12345) % 2147483648
    return Math.floor((seed / 2147483648) * n)
  }
  const bulk = yield* lake.registerProject({ irodsPath: `/benchZone/home/bench/${process.env.BENCH_INGEST_NAME ?? "bulk"}`, actor: "bench" })
  const source = function*() {
    for (let i = 0; i < total; i++) {
      yield {
        irodsPath: `${bulk.irodsPath}/c${i % 100}/o${rand(100_000)}.dat`,
        targetType: "data_object",
        attribute: `attr-${rand(10)}`,
        value: `value-${rand(50)}`,
        op: rand(10) === 0 ? "delete" : "add",
        actor: "bench",
        source: "import"
      }
    }
  }
  const rssBefore = process.memoryUsage.rss()
  let peak = rssBefore
  const timer = setInterval(() => (peak = Math.max(peak, process.memoryUsage.rss())), 20)
  const t0 = performance.now()
  yield* lake.ingestChanges({ projectId: bulk.projectId, actor: "bench", changes: source() })
  const ingestMs = performance.now() - t0
  const peakDuringIngest = Math.max(peak, process.memoryUsage.rss())
  peak = 0
  // Reads while the index catches up (answered from the files while it lags).
  const sample = `${bulk.irodsPath}/c7/o${rand(100_000)}.dat`
  const laggingReadMs: Array<number> = []
  for (let i = 0; i < 10; i++) {
    const t = performance.now()
    yield* lake.getAvus(bulk.projectId, sample)
    laggingReadMs.push(performance.now() - t)
  }
  // Caught up: the index's mark is gone (getAvus answers from the index again).
  const catalog = yield* Catalog
  while ((yield* catalog.indexThrough(bulk)) !== null) yield* Effect.sleep("10 millis")
  const catchUpMs = performance.now() - t0 - ingestMs
  const peakDuringCatchUp = Math.max(peak, process.memoryUsage.rss())
  peak = 0
  yield* lake.flush
  const afterMs = performance.now() - t0 - ingestMs - catchUpMs
  clearInterval(timer)
  const peakDuringAfter = Math.max(peak, process.memoryUsage.rss())
  const result: IngestResult = {
    total,
    ingestMs,
    catchUpMs,
    afterMs,
    laggingReadMs,
    rssBefore,
    peakRss: process.resourceUsage().maxRSS * 1024,
    peakDuringIngest,
    peakDuringCatchUp,
    peakDuringAfter
  }
  console.log(JSON.stringify(result))
})

if (process.env.BENCH_INGEST_CHILD === "1") {
  const dir = process.env.BENCH_INGEST_DIR!
  fs.mkdirSync(nodePath.join(dir, "zone"), { recursive: true })
  NodeRuntime.runMain(child.pipe(
    Effect.provide(client(
      { dsn: Redacted.make(process.env.BENCH_INGEST_DSN!), cacheDir: nodePath.join(dir, "cache") },
      mounted({ mountRoot: nodePath.join(dir, "zone"), logicalPrefix: "/" })
    ))
  ))
}
