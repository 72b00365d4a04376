/**
 * Fixtures for the listener tests: a private RabbitMQ node (scripts/rabbitmq.sh, stopped with the scope), the fake
 * iRODS server with the Data Store's publisher on a per-test exchange, and the listener running in a fiber over the
 * file's embedded client.
 */
import { Effect, Fiber, Layer, Option, Redacted } from "effect"
import * as Discovery from "../../src/operations/discovery.js"
import { execFile } from "node:child_process"
import * as fs from "node:fs"
import { createServer } from "node:net"
import * as os from "node:os"
import * as nodePath from "node:path"
import { promisify } from "node:util"
import { Catalog } from "../../src/catalog/Catalog.js"
import { DuckLakeClient } from "../../src/client/DuckLakeClient.js"
import { emptyCounters, type ListenerCounters, type ListenerSettings, runListener } from "../../src/events/Listener.js"
import { IrodsClient } from "../../src/irods/IrodsClient.js"
import { type FakeIrodsServer, startFakeIrods } from "../fake-irods/FakeIrods.js"
import { connectPublisher, DataStore } from "../fake-irods/DataStoreFeed.js"
import { fakeLogin } from "../irods/helpers.js"

const run = promisify(execFile)
const SCRIPT = nodePath.resolve(import.meta.dirname, "../../scripts/rabbitmq.sh")

const portFree = (port: number) =>
  new Promise<boolean>((resolve) => {
    const s = createServer()
    s.once("error", () => resolve(false))
    s.listen(port, "127.0.0.1", () => s.close(() => resolve(true)))
  })

/** A free AMQP port whose epmd (+10000) and distribution (+20000) ports are free too. */
const freePort = async () => {
  for (;;) {
    const port = 20000 + Math.floor(Math.random() * 25000)
    if ((await portFree(port)) && (await portFree(port + 10000)) && (await portFree(port + 20000))) return port
  }
}

export interface Broker {
  readonly uri: string
  readonly dir: string
  readonly port: number
  readonly start: () => Promise<void>
  readonly stop: () => Promise<void>
}

export const startBroker = async (): Promise<Broker> => {
  const dir = fs.mkdtempSync(nodePath.join(os.tmpdir(), "mesa-rabbit-"))
  const port = await freePort()
  const start = async () => {
    await run(SCRIPT, ["start", dir, String(port)], { timeout: 120_000 })
  }
  const stop = async () => {
    await run(SCRIPT, ["stop", dir], { timeout: 60_000 }).catch(() => undefined)
  }
  await start()
  return { uri: `amqp://guest:guest@127.0.0.1:${port}`, dir, port, start, stop }
}

/** The broker for a test file, stopped (and its directory removed) with the scope. */
export const brokerScoped = Effect.acquireRelease(
  Effect.promise(startBroker),
  (b) => Effect.promise(async () => {
    await b.stop()
    fs.rmSync(b.dir, { recursive: true, force: true })
  })
)

let n = 0
/** Listener settings for one test: its own exchange and queue, small windows, no backstop unless asked. */
export const settingsFor = (broker: Broker, overrides: Partial<ListenerSettings> = {}): ListenerSettings => {
  const id = `${process.pid}-${++n}`
  return {
    uri: Redacted.make(broker.uri),
    exchange: `irods-${id}`,
    queue: `mesa-test-${id}`,
    prefetch: 4000,
    maxAge: "1D",
    batchMax: 2000,
    batchWindowMs: 100,
    actor: "mesa-ducklake:listen",
    backstop: false,
    reconnectMaxMs: 1000,
    ...overrides
  }
}

/** A fake iRODS server (zone testZone) and the Data Store publishing to `exchange`. */
export const dataStoreScoped = (broker: Broker, exchange: string) =>
  Effect.acquireRelease(
    Effect.promise(async () => {
      const server: FakeIrodsServer = await startFakeIrods({ zone: "testZone" })
      const publisher = connectPublisher(broker.uri, exchange)
      return { server, store: new DataStore(server, publisher), publisher }
    }),
    ({ publisher, server }) => Effect.promise(async () => {
      await publisher.close()
      await server.stop()
    })
  )

/**
 * Starts the listener in a fiber (interrupted with the scope) against the fake server; answers its live counters.
 */
export const listenerScoped = (server: FakeIrodsServer, settings: ListenerSettings, options: { readonly discovery?: boolean } = {}) =>
  Effect.gen(function*() {
    const counters = emptyCounters()
    let connected = false
    const irods = yield* IrodsClient.make(fakeLogin(server, { retryBase: "10 millis", requestTimeout: "5 seconds" }))
    const client = yield* DuckLakeClient
    const catalog = yield* Catalog
    const discovery = options.discovery === true ? Option.some(yield* Discovery.make(irods, client)) : Option.none()
    const fiber = yield* runListener(settings, {
      counters,
      onConnection: (state) => void (connected = state === "connected")
    }).pipe(
      Effect.provideService(IrodsClient, irods),
      Effect.provideService(DuckLakeClient, client),
      Effect.provideService(Catalog, catalog),
      Option.isSome(discovery) ? Effect.provideService(Discovery.ProjectDiscovery, discovery.value) : (e) => e,
      Effect.forkScoped
    )
    // The queue exists (and is bound) once the listener is connected: the exchange drops what comes before.
    const until = Date.now() + 60_000
    while (!connected && Date.now() < until) yield* Effect.sleep("20 millis")
    return { counters, fiber, irods }
  })

/** Waits until `done(counters)` holds (polling), or fails after `ms`. */
export const waitFor = (counters: ListenerCounters, done: (c: ListenerCounters) => boolean, ms = 90_000) =>
  Effect.gen(function*() {
    const until = Date.now() + ms
    while (!done(counters)) {
      if (Date.now() > until) return yield* Effect.dieMessage(`timed out; counters ${JSON.stringify(counters)}`)
      yield* Effect.sleep("25 millis")
    }
  })

/** Events the listener has accounted for (every delivery it consumed). */
export const seen = (c: ListenerCounters) => c.lastOffset + 1

/** The history's current AVUs under a project, in the oracle's form. */
export const historyState = (projectId: string, paths: Iterable<string>) =>
  Effect.gen(function*() {
    const client = yield* DuckLakeClient
    const out = new Map<string, Array<string>>()
    for (const path of paths) {
      const avus = yield* client.getAvus(projectId, path)
      const list = avus.filter((a) => a.attribute !== "ipc_UUID").map((a) => `${a.attribute}=${a.value}[${a.unit}]`).sort()
      if (list.length > 0) out.set(path, list)
    }
    return out
  })

export const stopFiber = Fiber.interrupt
export { Layer }
