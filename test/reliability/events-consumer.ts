/**
 * The AMQP listener in its own process, for the reliability suite's SIGKILL scenario (events.test.ts): its own
 * client over the parent's catalog (DSN from the environment only), the parent's zone directory, and a native
 * iRODS client of the parent's fake server.
 *
 * Environment: MESA_DUCKLAKE_DSN, RELIABILITY_ZONE_DIR, RELIABILITY_CACHE_DIR, EVENTS_SETTINGS (JSON listener
 * settings, the URI as text), EVENTS_IRODS (JSON `{ host, port, zone }` of the fake, logged in as rods/rods).
 *
 * Protocol on stdout, one JSON line each, written synchronously (so a line printed before a SIGKILL arrives):
 *   {"t":"connected","from"}   consuming
 *   {"t":"batch","first","last","counters"}   a batch is committed (and about to be acknowledged)
 */
import { Effect, Layer, Logger, LogLevel, Redacted } from "effect"
import * as fs from "node:fs"
import { client, mounted } from "../../layers/components.js"
import { type ListenerSettings, runListener } from "../../src/events/Listener.js"
import { IrodsClient } from "../../src/irods/IrodsClient.js"

const say = (line: Record<string, unknown>) => fs.writeSync(1, JSON.stringify(line) + "\n")
const env = (name: string) => {
  const v = process.env[name]
  if (v === undefined || v === "") throw new Error(`events-consumer: ${name} is not set`)
  return v
}

const raw = JSON.parse(env("EVENTS_SETTINGS")) as Omit<ListenerSettings, "uri"> & { uri: string }
const settings: ListenerSettings = { ...raw, uri: Redacted.make(raw.uri) }
const irods = JSON.parse(env("EVENTS_IRODS")) as { host: string; port: number; zone: string }

const live = Layer.mergeAll(
  client(
    { dsn: Redacted.make(env("MESA_DUCKLAKE_DSN")), cacheDir: env("RELIABILITY_CACHE_DIR"), autoCompactEvery: 0 },
    mounted({ mountRoot: env("RELIABILITY_ZONE_DIR"), logicalPrefix: "/" })
  ),
  IrodsClient.layer({ ...irods, user: "rods", password: Redacted.make("rods"), retryBase: "10 millis", requestTimeout: "5 seconds" })
)

const program = runListener(settings, {
  onConnection: (state, detail) => say({ t: state, detail }),
  onBatch: (b, counters) => say({ t: "batch", first: b.firstOffset, last: b.lastOffset, counters })
})

Effect.runFork(
  program.pipe(
    Effect.provide(live),
    Logger.withMinimumLogLevel(LogLevel.Error),
    Effect.tapErrorCause((c) => Effect.sync(() => say({ t: "fatal", cause: String(c) })))
  ) as Effect.Effect<unknown, unknown, never>
)
