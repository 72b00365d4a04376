/**
 * Handler of `listen`: runs the listener in the `layers/listen.ts` composition and prints progress lines (counters,
 * connection changes) on stdout until interrupted.
 */
import type { Command } from "@effect/cli"
import { Effect } from "effect"
import { layer as ListenLive } from "../../../layers/listen.js"
import { publicTarget } from "../../../src/events/Amqp.js"
import { emptyCounters, ListenerConfig, runListener } from "../../../src/events/Listener.js"
import type { listenConfig } from "../commands/listen.js"
import { requireDsn } from "../environment.js"
import { printJson, printLine } from "../output.js"

export const listen = (o: Command.Command.ParseConfig<typeof listenConfig>) =>
  Effect.gen(function*() {
    yield* requireDsn
    const settings = yield* ListenerConfig
    const counters = emptyCounters()
    const target = publicTarget(settings.uri)
    // Suspended: each line reads the counters and the clock when it is printed.
    const line = (event: string, extra: Record<string, unknown> = {}) =>
      Effect.suspend(() => o.json
        ? printJson({ event, at: new Date().toISOString(), broker: target, queue: settings.queue, ...counters, ...extra })
        : printLine(
          `${new Date().toISOString()} ${event}: received ${counters.received}, changes ${counters.changes} in ` +
            `${counters.snapshots} snapshot(s), renames ${counters.renames}, unchanged ${counters.unchanged}, ` +
            `outside ${counters.outside}, dead-lettered ${counters.deadLettered}, unresolved ${counters.unresolved}, ` +
            `drifts ${counters.drifts}, reconnects ${counters.reconnects}, offset ${counters.lastOffset}` +
            Object.entries(extra).map(([k, v]) => `, ${k} ${String(v)}`).join("")
        ))
    yield* line("starting", { exchange: settings.exchange })
    const connection = (state: string, detail: string) => Effect.runFork(line(state, { detail }))
    yield* Effect.forever(Effect.zipRight(Effect.sleep(`${Math.max(1, o.every)} seconds`), line("progress"))).pipe(
      Effect.forkScoped
    )
    return yield* runListener(settings, { counters, onConnection: connection })
  }).pipe(Effect.scoped, Effect.provide(ListenLive))
