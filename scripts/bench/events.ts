/**
 * Benchmark row for the AMQP listener (issue 20): events per second sustained end to end — from the Data Store's
 * publish to the committed snapshot — and the lag per event (p50, p95). A private RabbitMQ node
 * (scripts/rabbitmq.sh), the fake iRODS server with the Data Store's publisher in a child process
 * (test/fake-irods via tsx: `test/events/feed-process.ts`), and the listener in this process over an embedded
 * PostgreSQL and a local zone directory. After a warm-up (one event per object, so every UUID has been looked up
 * once), the publisher offers `rate` events/s (default 10,000: more than the listener takes, so the figure is its
 * capacity) for `events` events (default 30,000) to one project of 1,000 objects (add 50%, set 20%, mod 10%, rm
 * 20%); the figure is events / (last commit − first publish), the lag each event's commit time − publish time.
 *
 * `benchEvents()` is for scripts/bench.ts (the lead's runner); `tsx scripts/bench/events.ts` runs it alone.
 */
import { Effect, Fiber, Layer, Redacted } from "effect"
import { execFile, spawn } from "node:child_process"
import * as fs from "node:fs"
import { createServer } from "node:net"
import * as os from "node:os"
import * as nodePath from "node:path"
import * as readline from "node:readline"
import { promisify } from "node:util"
import * as Embedded from "../../layers/embedded.js"
import { DuckLakeClient } from "../../src/client/DuckLakeClient.js"
import { emptyCounters, runListener } from "../../src/events/Listener.js"
import { IrodsClient } from "../../src/irods/IrodsClient.js"

export interface EventsBenchOptions {
  readonly events?: number
  readonly rate?: number
  readonly batchMax?: number
  readonly batchWindowMs?: number
}

export interface EventsBenchResult {
  readonly events: number
  readonly offeredRate: number
  /** Events / (last commit − first publish). */
  readonly eventsPerSecond: number
  readonly lagP50Ms: number
  readonly lagP95Ms: number
  readonly lagMaxMs: number
  readonly snapshots: number
  readonly changes: number
  /** Publishes the broker did not confirm (should be 0). */
  readonly lost: number
  /** How long the publisher took for all events (the offered rate, as achieved). */
  readonly publishSeconds: number
}

/** The checkout: where scripts/rabbitmq.sh is (this file runs from scripts/bench/ or, compiled, dist/scripts/bench/). */
const ROOT = (() => {
  let dir = import.meta.dirname
  while (!fs.existsSync(nodePath.join(dir, "scripts/rabbitmq.sh")) && nodePath.dirname(dir) !== dir) dir = nodePath.dirname(dir)
  return dir
})()
const SCRIPT = nodePath.join(ROOT, "scripts/rabbitmq.sh")

const portFree = (port: number) =>
  new Promise<boolean>((resolve) => {
    const s = createServer()
    s.once("error", () => resolve(false))
    s.listen(port, "127.0.0.1", () => s.close(() => resolve(true)))
  })

const percentile = (xs: ReadonlyArray<number>, p: number) => {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? 0
}

export const benchEvents = async (options: EventsBenchOptions = {}): Promise<EventsBenchResult> => {
  const events = options.events ?? 30_000
  const rate = options.rate ?? 10_000
  const objects = 1000
  const base = fs.mkdtempSync(nodePath.join(os.tmpdir(), "mesa-bench-events-"))
  let port = 0
  do port = 20000 + Math.floor(Math.random() * 25000)
  while (!(await portFree(port)) || !(await portFree(port + 10000)) || !(await portFree(port + 20000)))
  const rabbitDir = nodePath.join(base, "rabbit")
  await promisify(execFile)(SCRIPT, ["start", rabbitDir, String(port)], { timeout: 180_000 })
  const uri = `amqp://guest:guest@127.0.0.1:${port}`
  const exchange = "irods"
  const feed = spawn("npx", ["tsx", nodePath.join(ROOT, "test/events/feed-process.ts")], {
    cwd: ROOT,
    env: { ...process.env, BENCH_OBJECTS: String(objects), BENCH_AMQP_URI: uri, BENCH_EXCHANGE: exchange, BENCH_EVENTS: String(events), BENCH_RATE: String(rate) },
    stdio: ["pipe", "pipe", "inherit"]
  })
  const lines = readline.createInterface({ input: feed.stdout! })
  const next = () => new Promise<{ t: string; [k: string]: unknown }>((resolve) => lines.once("line", (l) => resolve(JSON.parse(l))))
  try {
    const ready = await next() as unknown as { host: string; port: number; zone: string; root: string }
    const commits: Array<{ first: number; last: number; at: number }> = []
    const counters = emptyCounters()
    const warm = next()
    let published: Promise<unknown> = Promise.resolve()
    const program = Effect.gen(function*() {
      const client = yield* DuckLakeClient
      yield* client.registerProject({ irodsPath: ready.root, actor: "bench" })
      const fiber = yield* runListener({
        uri: Redacted.make(uri),
        exchange,
        queue: "mesa-bench",
        prefetch: 2 * (options.batchMax ?? 5000),
        maxAge: "1D",
        batchMax: options.batchMax ?? 5000,
        batchWindowMs: options.batchWindowMs ?? 500,
        actor: "mesa-ducklake:listen",
        backstop: false,
        reconnectMaxMs: 1000
      }, {
        counters,
        onBatch: (b) => commits.push({ first: b.firstOffset, last: b.lastOffset, at: b.committedAt }),
        onConnection: (state) => {
          if (state === "connected") feed.stdin!.write("warm\n")
        }
      }).pipe(Effect.fork)
      // Warm-up: one event per object, so each UUID has been looked up once; then the timed run.
      yield* Effect.promise(() => warm)
      published = next()
      while (counters.lastOffset < objects - 1) yield* Effect.sleep("20 millis")
      commits.length = 0
      feed.stdin!.write("go\n")
      while (counters.lastOffset < objects + events - 1) yield* Effect.sleep("20 millis")
      yield* Fiber.interrupt(fiber)
    })
    const irods = IrodsClient.layer({ host: ready.host, port: ready.port, zone: ready.zone, user: "rods", password: Redacted.make("rods") })
    await Effect.runPromise(program.pipe(
      Effect.provide(Layer.mergeAll(Embedded.layer({ zoneDir: nodePath.join(base, "zone"), cacheDir: nodePath.join(base, "cache") }), irods))
    ) as Effect.Effect<void>)
    const { lost, times } = await published as unknown as { times: Array<number>; lost: number }
    const lags: Array<number> = []
    for (const c of commits) for (let o = Math.max(c.first, objects); o <= c.last; o++) lags.push(c.at - times[o - objects]!)
    const lastCommit = Math.max(...commits.map((c) => c.at))
    return {
      events,
      offeredRate: rate,
      eventsPerSecond: Math.round(events / ((lastCommit - times[0]!) / 1000)),
      lagP50Ms: percentile(lags, 50),
      lagP95Ms: percentile(lags, 95),
      lagMaxMs: Math.max(...lags),
      snapshots: counters.snapshots,
      changes: counters.changes,
      lost,
      publishSeconds: (times[times.length - 1]! - times[0]!) / 1000
    }
  } finally {
    feed.stdin!.end()
    await new Promise((r) => feed.once("exit", r))
    await promisify(execFile)(SCRIPT, ["stop", rabbitDir], { timeout: 60_000 }).catch(() => undefined)
    fs.rmSync(base, { recursive: true, force: true })
  }
}

if (process.argv[1] !== undefined && nodePath.resolve(process.argv[1]) === nodePath.resolve(import.meta.filename)) {
  const r = await benchEvents({
    ...(process.env.MESA_BENCH_EVENTS ? { events: Number(process.env.MESA_BENCH_EVENTS) } : {}),
    ...(process.env.MESA_BENCH_EVENT_RATE ? { rate: Number(process.env.MESA_BENCH_EVENT_RATE) } : {})
  })
  console.log(JSON.stringify(r))
}
