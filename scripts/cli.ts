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
import { report } from "./cli/commands/report.js"
import { verify } from "./cli/commands/verify.js"
import { captureUsageText, CommandFailed, EXIT_CODES_HELP, ExitCode, reportFailure } from "./cli/output.js"

const root = Command.make("mesa-ducklake").pipe(
  Command.withDescription(`history of iRODS AVU metadata (DuckLake catalog + Parquet in iRODS). ${EXIT_CODES_HELP}`),
  Command.withSubcommands([project, record, ...queries, ...maintenance, ...jobs, drift, verify, report])
)

const cli = Command.run(root, { name: "mesa-ducklake", version: "0.1.0" })

/** Logs go to stderr (stdout is for results), at Warning and above unless `--log-level` says otherwise (below). */
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

const LOG_LEVELS: Record<string, LogLevel.LogLevel> = {
  all: LogLevel.All,
  trace: LogLevel.Trace,
  debug: LogLevel.Debug,
  info: LogLevel.Info,
  warning: LogLevel.Warning,
  error: LogLevel.Error,
  fatal: LogLevel.Fatal,
  none: LogLevel.None
}

/**
 * `--log-level <level>` (or `--log-level=<level>`), taken out of the arguments wherever it stands (before a `--`).
 * @effect/cli lists it in every command's help but recognises it only directly after the command name (among its
 * built-in options): after any of the command's own options (`record --json --log-level info`) it was a usage
 * error. Taking it out here makes every command accept it in any option position; the last one given wins.
 */
const splitLogLevel = (argv: ReadonlyArray<string>): { readonly argv: ReadonlyArray<string>; readonly level: LogLevel.LogLevel } | CommandFailed => {
  const rest: Array<string> = argv.slice(0, 2)
  let level: LogLevel.LogLevel = LogLevel.Warning
  for (let i = 2; i < argv.length; i++) {
    const arg = argv[i]!
    if (arg === "--") {
      rest.push(...argv.slice(i))
      break
    }
    if (arg !== "--log-level" && !arg.startsWith("--log-level=")) {
      rest.push(arg)
      continue
    }
    const value = arg === "--log-level" ? argv[++i] : arg.slice("--log-level=".length)
    const chosen = value === undefined ? undefined : LOG_LEVELS[value]
    if (chosen === undefined) {
      return new CommandFailed({
        code: "UsageError",
        reason: `--log-level ${value === undefined ? "needs a value" : `${JSON.stringify(value)} is not a level`}: one of ${Object.keys(LOG_LEVELS).join(", ")}`,
        exitCode: ExitCode.invalid
      })
    }
    level = chosen
  }
  return { argv: rest, level }
}

const args = splitLogLevel(process.argv)

const main = (args instanceof CommandFailed ? Effect.fail(args) : captureUsageText(cli(args.argv))).pipe(
  Effect.as(ExitCode.ok as number),
  Effect.catchAllCause((cause) => (Cause.isInterruptedOnly(cause) ? Effect.failCause(cause) : reportFailure(cause))),
  Logger.withMinimumLogLevel(args instanceof CommandFailed ? LogLevel.Warning : args.level),
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
