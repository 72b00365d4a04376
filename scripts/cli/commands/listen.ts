/**
 * `listen [--json] [--every <seconds>]`: capture every AVU change the Data Store publishes on its AMQP feed into
 * the history (issue 20), until interrupted (SIGINT/SIGTERM: the batch in hand is finished or left to the next
 * start, connections closed). Prints a health/progress line every `--every` seconds (one JSON object per line with
 * `--json`). Configuration: `MESA_DUCKLAKE_AMQP_*` (README "Capturing every change"). Handler: `../run/listen.ts`.
 */
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import { json, lazy } from "../options.js"

export const listenConfig = {
  json,
  every: Options.integer("every").pipe(
    Options.withDescription("seconds between progress lines (default 10)"),
    Options.withDefault(10)
  )
}

export const listen = Command.make("listen", listenConfig, lazy(() => import("../run/listen.js"), (m) => m.listen)).pipe(
  Command.withDescription("record the Data Store's AMQP AVU events into the history (runs until interrupted)")
)
