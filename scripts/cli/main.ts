/**
 * `mesa-ducklake`: the command line over `DuckLakeClient` (its entry, `scripts/cli.ts`, loads this module).
 *
 *   mesa-ducklake --help              every command, with its options; `<command> --help` for one
 *
 * Configuration is the library's environment (MESA_DUCKLAKE_DSN, MESA_DUCKLAKE_STORAGE, MESA_DUCKLAKE_MOUNT_ROOT,
 * …; see the README), never arguments, so no secret lands in a process list. Output: human tables on stdout, or
 * one JSON document with `--json`; errors: one JSON line `{"code","message"}` on stderr; exit codes in
 * `./output.ts` (`ExitCode`). Runs through `NodeRuntime.runMain`: SIGINT/SIGTERM interrupt the command and
 * release its connections and files before the process exits (130).
 *
 * Start-up: this file and the command definitions (`cli/commands/*.ts`, `cli/options.ts`, `cli/output.ts`) import
 * only @effect/cli, @effect/platform-node's runtime and `effect` by module path. Each command's handler
 * (`cli/run/*.ts`: the client, DuckDB, pg, the layers) is imported when that command runs, so `--help` and usage
 * errors never load them.
 */
import * as Command from "@effect/cli/Command"
import * as NodeContext from "@effect/platform-node/NodeContext"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as HashMap from "effect/HashMap"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import { drift } from "./commands/drift.js"
import { gc } from "./commands/gc.js"
import { jobs } from "./commands/jobs.js"
import { listen } from "./commands/listen.js"
import { maintenance } from "./commands/maintenance.js"
import { attachSql, project } from "./commands/project.js"
import { queries } from "./commands/query.js"
import { archive, ingest, record, rename } from "./commands/record.js"
import { report } from "./commands/report.js"
import { verify } from "./commands/verify.js"
import { signalled } from "./early.js"
import { captureUsageText, CommandFailed, EXIT_CODES_HELP, ExitCode, progressFromLog, reportFailure } from "./output.js"

const root = Command.make("mesa-ducklake").pipe(
  Command.withDescription(`history of iRODS AVU metadata (DuckLake catalog + Parquet in iRODS). ${EXIT_CODES_HELP}`),
  Command.withSubcommands([
    project,
    record,
    ingest,
    rename,
    archive,
    ...queries,
    attachSql,
    ...maintenance,
    ...jobs,
    gc,
    drift,
    listen,
    verify,
    report
  ])
)

const cli = Command.run(root, { name: "mesa-ducklake", version: "0.1.0" })

/**
 * Logs go to stderr (stdout is for results), at Warning and above unless `--log-level` says otherwise (below). The
 * library's progress logs (Info, `… 3/10 …`) are shown as the running command's progress line instead.
 */
const stderrLogger = (level: LogLevel.LogLevel) =>
  Logger.replace(
    Logger.defaultLogger,
    Logger.make((options) => {
      const message = Array.isArray(options.message) ? options.message.map(String).join(" ") : String(options.message)
      if (LogLevel.lessThan(options.logLevel, level)) {
        if (options.logLevel._tag === "Info") progressFromLog(message, HashMap.toEntries(options.annotations))
        return
      }
      process.stderr.write(Logger.logfmtLogger.log(options) + "\n")
    })
  )

/** The OpenTelemetry exporter, loaded only when configured (its modules are slow to import). */
const TelemetryLive = Layer.unwrapEffect(
  process.env.MESA_DUCKLAKE_OTEL_ENDPOINT?.trim()
    ? Effect.promise(() => import("../../src/telemetry.js")).pipe(Effect.map((t) => t.layerConfig))
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

// Signals that came while the modules loaded (see `scripts/cli.ts`): nothing has been opened yet, so exit now.
if (signalled()) process.exit(ExitCode.interrupted)

const level = args instanceof CommandFailed ? LogLevel.Warning : args.level

const main = (args instanceof CommandFailed ? Effect.fail(args) : captureUsageText(cli(args.argv))).pipe(
  Effect.as(ExitCode.ok as number),
  Effect.catchAllCause((cause) => (Cause.isInterruptedOnly(cause) ? Effect.failCause(cause) : reportFailure(cause))),
  // Info reaches the logger for the progress logs; it prints only what `level` lets through.
  Logger.withMinimumLogLevel(LogLevel.lessThan(level, LogLevel.Info) ? level : LogLevel.Info),
  Effect.provide(Layer.mergeAll(NodeContext.layer, TelemetryLive, stderrLogger(level)))
)

NodeRuntime.runMain(main, {
  disableErrorReporting: true,
  disablePrettyLogger: true,
  // The command is over, its finalizers have run: exit now, whatever handle a library left open (runMain itself
  // exits only after a signal or a failure, and would otherwise wait for the event loop to drain). Writes to
  // stdout and stderr are synchronous for files and pipes, so nothing printed is lost.
  // A signal makes it 130 whatever the command's exit: one that lands while the command's scope is closing finds its
  // body done (see `early.ts`).
  teardown: (exit, onExit) => {
    const code = signalled()
      ? ExitCode.interrupted
      : Exit.isSuccess(exit)
      ? (exit.value as unknown as number)
      : Cause.isInterruptedOnly(exit.cause)
      ? ExitCode.interrupted
      : ExitCode.invalid
    onExit(code)
    process.exit(code)
  }
})
