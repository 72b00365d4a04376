#!/usr/bin/env node
/**
 * `mesa-ducklake`: the command line over `DuckLakeClient`.
 *
 *   mesa-ducklake --help              every command, with its options; `<command> --help` for one
 *
 * Configuration is the library's environment (MESA_DUCKLAKE_DSN, MESA_DUCKLAKE_STORAGE, MESA_DUCKLAKE_MOUNT_ROOT,
 * …; see the README), never arguments, so no secret lands in a process list. Output: human tables on stdout, or
 * one JSON document with `--json`; errors: one JSON line `{"code","message"}` on stderr; exit codes in
 * `./cli/output.ts` (`ExitCode`). Runs through `NodeRuntime.runMain`: SIGINT/SIGTERM interrupt the command and
 * release its connections and files before the process exits.
 */
import { Command } from "@effect/cli"
import * as NodeContext from "@effect/platform-node/NodeContext"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { Cause, Effect, Exit, Layer, Logger, LogLevel } from "effect"
import { drift } from "./cli/commands/drift.js"
import { jobs } from "./cli/commands/jobs.js"
import { maintenance } from "./cli/commands/maintenance.js"
import { project } from "./cli/commands/project.js"
import { queries } from "./cli/commands/query.js"
import { record } from "./cli/commands/record.js"
import { captureUsageText, EXIT_CODES_HELP, ExitCode, reportFailure } from "./cli/output.js"

const root = Command.make("mesa-ducklake").pipe(
  Command.withDescription(`history of iRODS AVU metadata (DuckLake catalog + Parquet in iRODS). ${EXIT_CODES_HELP}`),
  Command.withSubcommands([project, record, ...queries, ...maintenance, ...jobs, drift])
)

const cli = Command.run(root, { name: "mesa-ducklake", version: "0.1.0" })

/** Logs go to stderr (stdout is for results), at Warning and above unless `--log-level` says otherwise. */
const StderrLogger = Logger.replace(
  Logger.defaultLogger,
  Logger.make((options) => {
    process.stderr.write(Logger.logfmtLogger.log(options) + "\n")
  })
)

/** The OpenTelemetry exporter, loaded only when configured (its modules are slow to import). */
const TelemetryLive = Layer.unwrapEffect(
  process.env.MESA_DUCKLAKE_OTEL_ENDPOINT?.trim()
    ? Effect.promise(() => import("../src/telemetry.js")).pipe(Effect.map((t) => t.layerConfig))
    : Effect.succeed(Layer.empty)
)

const main = captureUsageText(cli(process.argv)).pipe(
  Effect.as(ExitCode.ok as number),
  Effect.catchAllCause((cause) => (Cause.isInterruptedOnly(cause) ? Effect.failCause(cause) : reportFailure(cause))),
  Logger.withMinimumLogLevel(LogLevel.Warning),
  Effect.provide(Layer.mergeAll(NodeContext.layer, TelemetryLive, StderrLogger))
)

NodeRuntime.runMain(main, {
  disableErrorReporting: true,
  disablePrettyLogger: true,
  teardown: (exit, onExit) =>
    onExit(
      Exit.isSuccess(exit)
        ? (exit.value as unknown as number)
        : Cause.isInterruptedOnly(exit.cause)
        ? ExitCode.interrupted
        : ExitCode.invalid
    )
})
