/**
 * The AMQP listener under SIGKILL (issue 20): 10,000 Data Store events (add, adda, rm, set, mod, rmw over 60 objects
 * in two projects) are published to a real RabbitMQ while a listener process is SIGKILLed at random moments —
 * after it has committed at least one batch, so kills land between a commit and its acknowledgement, inside
 * commits and between batches — at least 20 times, then one last listener runs to the end of the stream. The
 * history must equal the fake's AVUs (the oracle) and hold exactly the rows the changes make: 0 lost, 0 duplicated.
 *
 *   RELIABILITY_EVENTS        events (default 10,000)
 *   RELIABILITY_EVENT_KILLS   SIGKILLs at least (default 20)
 *   RELIABILITY_SEED          PRNG seed (printed)
 */
import { expect, layer } from "@effect/vitest"
import { Effect, Redacted } from "effect"
import { build } from "esbuild"
import { type ChildProcess, spawn } from "node:child_process"
import * as fs from "node:fs"
import * as nodePath from "node:path"
import { inject } from "vitest"
import { DuckLakeClient } from "../../src/client/DuckLakeClient.js"
import { EmbeddedPostgres } from "../../src/postgres/EmbeddedPostgres.js"
import { connectPublisher, DataStore, UUID } from "../fake-irods/DataStoreFeed.js"
import { startFakeIrods } from "../fake-irods/FakeIrods.js"
import { brokerScoped, historyState, settingsFor } from "../events/support.js"
import { embedded } from "../support.js"
import { prng } from "./harness.js"
import { addTally } from "./tally.js"

const EVENTS = Number(process.env.RELIABILITY_EVENTS ?? 10_000)
const KILLS = Number(process.env.RELIABILITY_EVENT_KILLS ?? 20)
const SEED = Number(process.env.RELIABILITY_SEED ?? Date.now() % 1_000_000)

const { dirs, layer: Live } = embedded("events-kill")

/** The consumer bundled once (a tsx start costs ~2 s; the bundle well under 1 s). */
const bundleConsumer = async () => {
  const outDir = nodePath.resolve("node_modules/.cache/mesa-reliability")
  fs.mkdirSync(outDir, { recursive: true })
  const outfile = nodePath.join(outDir, `events-consumer-${process.pid}.mjs`)
  await build({
    entryPoints: [nodePath.resolve("test/reliability/events-consumer.ts")],
    bundle: true,
    platform: "node",
    format: "esm",
    target: "node20",
    outfile,
    external: ["@duckdb/*", "pg-native", "@opentelemetry/*"],
    banner: { js: "import { createRequire as __mesaRequire } from 'node:module'; const require = __mesaRequire(import.meta.url);" },
    logLevel: "error"
  })
  return outfile
}

interface Consumer {
  readonly child: ChildProcess
  batches: number
  last: number
  readonly exited: Promise<void>
  stderr: string
}

layer(Live, { timeout: "10 minutes", excludeTestServices: true })("the listener killed over and over", (it) => {
  it.effect(`${EVENTS} events, the listener SIGKILLed at least ${KILLS} times: history = oracle, 0 lost, 0 duplicated`, () =>
    Effect.gen(function*() {
      void inject
      const client = yield* DuckLakeClient
      const pg = yield* EmbeddedPostgres
      const rand = prng(SEED)
      console.log(`events kill test: seed ${SEED}, ${EVENTS} events, at least ${KILLS} kills`)
      const bundle = yield* Effect.promise(bundleConsumer)
      const broker = yield* brokerScoped
      const server = yield* Effect.acquireRelease(Effect.promise(() => startFakeIrods({ zone: "testZone" })), (s) => Effect.promise(s.stop))
      const settings = settingsFor(broker, { batchMax: 500, batchWindowMs: 100, prefetch: 2000 })
      const publisher = connectPublisher(broker.uri, settings.exchange)
      const store = new DataStore(server, publisher)
      const roots = [0, 1].map((i) => `/testZone/home/rods/kill-${process.pid}-${i}`)
      const paths: Array<string> = []
      for (const root of roots) {
        server.makeCollection(root)
        for (let i = 0; i < 30; i++) paths.push(server.putObject(`${root}/o${i}.csv`, "x").path)
        yield* client.registerProject({ irodsPath: root, actor: "rods" })
      }
      for (const p of paths) store.uuidOf(p)

      const start = (): Consumer => {
        const child = spawn(process.execPath, [bundle], {
          env: {
            ...process.env,
            MESA_DUCKLAKE_DSN: Redacted.value(pg.dsn),
            RELIABILITY_ZONE_DIR: dirs.zoneDir,
            RELIABILITY_CACHE_DIR: dirs.cacheDir,
            EVENTS_SETTINGS: JSON.stringify({ ...settings, uri: broker.uri }),
            EVENTS_IRODS: JSON.stringify({ host: server.host, port: server.port, zone: server.zone })
          },
          stdio: ["ignore", "pipe", "pipe"]
        })
        const c: Consumer = {
          child,
          batches: 0,
          last: -1,
          stderr: "",
          exited: new Promise((resolve) => child.once("exit", () => resolve()))
        }
        let buffer = ""
        child.stdout!.on("data", (d: Buffer) => {
          buffer += d.toString()
          let nl: number
          while ((nl = buffer.indexOf("\n")) >= 0) {
            const line = JSON.parse(buffer.slice(0, nl)) as { t: string; last?: number }
            buffer = buffer.slice(nl + 1)
            if (line.t === "batch") (c.batches++, c.last = line.last!)
          }
        })
        child.stderr!.on("data", (d: Buffer) => void (c.stderr += d.toString()))
        return c
      }

      // The queue must exist before the first publish: the first listener declares it.
      let consumer = start()
      const until = (ok: () => boolean, ms: number) =>
        Effect.promise(async () => {
          const end = Date.now() + ms
          while (!ok() && Date.now() < end) await new Promise((r) => setTimeout(r, 10))
          return ok()
        })

      // The publisher: the Data Store's operations, in chunks, while the killer works.
      let rows = 0
      let published = 0
      const snap = (path: string) => new Set(store.entity(path).e.avus.filter((a) => a.name !== UUID).map((a) => `${a.name}\u0000${a.value}\u0000${a.units}`))
      const oneOp = () => {
        const path = paths[rand(paths.length)]!
        const attr = `a${rand(4)}`
        const value = `v${rand(8)}`
        const unit = rand(3) === 0 ? "u" : ""
        const before = snap(path)
        const has = [...before].includes(`${attr}\u0000${value}\u0000${unit}`)
        const k = rand(20)
        // An operation iRODS refuses (a mod onto an AVU the object has) changes nothing and publishes nothing.
        try {
          if (k < 8 && !has) store.add(path, { attribute: attr, value, unit }, { admin: k === 0 })
          else if (k < 12) store.set(path, { attribute: attr, value, unit })
          else if (k < 14 && has) store.mod(path, { attribute: attr, value, unit }, { value: `m${rand(5)}` })
          else if (k < 15) store.rmw(path, { attribute: `a${rand(4)}`, value: `v${rand(3)}%` })
          else store.rm(path, { attribute: attr, value, unit })
          published++
        } catch {
          // refused
        }
        const after = snap(path)
        for (const x of before) if (!after.has(x)) rows++
        for (const x of after) if (!before.has(x)) rows++
      }
      yield* until(() => consumer.batches >= 0 && consumer.child.pid !== undefined, 1000)
      yield* Effect.sleep("1500 millis")
      const publishing = Effect.promise(async () => {
        while (published < EVENTS) {
          for (let i = 0; i < 250 && published < EVENTS; i++) oneOp()
          await publisher.settled()
          await new Promise((r) => setTimeout(r, 150))
        }
      }).pipe(Effect.fork)
      const pub = yield* publishing

      let kills = 0
      let killsAfterCommit = 0
      while (kills < KILLS || published < EVENTS) {
        // Once it has committed a batch (or after a while), kill it at a random moment soon after.
        const committed = yield* until(() => consumer.batches >= 1, 15_000)
        yield* Effect.sleep(`${rand(250)} millis`)
        consumer.child.kill("SIGKILL")
        yield* Effect.promise(() => consumer.exited)
        kills++
        if (committed) killsAfterCommit++
        consumer = start()
      }
      yield* pub.await
      expect(publisher.lost()).toBe(0)
      // The last listener runs to the end of the stream.
      const total = store.log.length
      const done = yield* until(() => consumer.last >= total - 1, 240_000)
      consumer.child.kill("SIGTERM")
      yield* Effect.promise(() => consumer.exited)
      yield* Effect.promise(() => publisher.close())
      expect(done, `last offset ${consumer.last} of ${total - 1}; stderr ${consumer.stderr.slice(-2000)}`).toBe(true)

      const projects = yield* client.listProjects
      let historyRows = 0
      let mismatched = 0
      for (const root of roots) {
        const p = projects.find((x) => x.irodsPath === root)!
        const oracle = store.oracle(root)
        const history = yield* historyState(p.projectId, paths.filter((x) => x.startsWith(root + "/")))
        for (const path of new Set([...oracle.keys(), ...history.keys()])) {
          if (JSON.stringify(oracle.get(path) ?? []) !== JSON.stringify(history.get(path) ?? [])) {
            mismatched++
            const rowsOf = (yield* client.getHistory(p.projectId, { irodsPath: path, limit: 100_000 }))
              .map((r) => `${r.snapshotId}.${r.changeSeq} ${r.ts.toISOString()} ${r.op} ${r.attribute}=${r.value}[${r.unit}] ${r.source}`)
            console.log(`events kill test: ${path} differs\n  oracle  ${JSON.stringify(oracle.get(path) ?? [])}\n  history ${JSON.stringify(history.get(path) ?? [])}\n  ${rowsOf.slice(0, 60).join("\n  ")}`)
            console.log(store.log.filter((m) => JSON.stringify(m.body).includes(store.uuidOf(path))).map((m) => `${m.routingKey} ${JSON.stringify(m.body)}`).slice(-40).join("\n"))
          }
        }
        historyRows += (yield* client.getHistory(p.projectId, { limit: 1_000_000 })).filter((r) => r.source.startsWith("irods-amqp:")).length
      }
      const lost = Math.max(0, rows - historyRows)
      const duplicated = Math.max(0, historyRows - rows)
      console.log(`events kill test: ${total} events, ${kills} kills (${killsAfterCommit} after a commit), ${rows} changes expected, ${historyRows} recorded, ${mismatched} paths differ`)
      addTally(inject("tallyDir"), "events", {
        "kills at listener": kills,
        "events published": total,
        "changes expected": rows,
        "changes recorded": historyRows,
        "batches lost": lost,
        duplicates: duplicated
      })
      expect(kills).toBeGreaterThanOrEqual(KILLS)
      expect(mismatched).toBe(0)
      expect(historyRows).toBe(rows)
      fs.rmSync(bundle, { force: true })
    }).pipe(Effect.scoped))
})
