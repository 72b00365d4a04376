/**
 * What the CLI prints: human tables on stdout by default, one JSON document with `--json`; errors as one JSON
 * line `{"code","message"}` on stderr; progress on stderr (a line redrawn in place on a terminal; for long work,
 * a plain line now and then otherwise); help without colours when stdout is not a terminal or `NO_COLOR` is set.
 * Exit codes by error tag.
 *
 * Loaded at start-up (by `--help` too): it imports `effect` by module path only.
 */
import * as ValidationError from "@effect/cli/ValidationError"
import * as Cause from "effect/Cause"
import * as ConfigError from "effect/ConfigError"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import * as Schedule from "effect/Schedule"
import * as Schema from "effect/Schema"

/** Exit codes (documented in `mesa-ducklake --help` and the README). */
export const ExitCode = {
  ok: 0,
  /** Invalid input or usage; also unexpected internal errors (code `Defect`). */
  invalid: 1,
  /** Not MESA-enabled, or no such project or snapshot. */
  notFound: 2,
  /** `rebuild` (and its dry run) reported problems: files or markers it did not merge. */
  problemsReported: 2,
  /** No catalog configured (modes B/C; `record` answers "not recorded"), or other required configuration missing. */
  notConfigured: 3,
  /** The catalog is unreachable, timing out, or not a catalog this build can use. */
  catalogUnavailable: 4,
  /** A write or storage operation failed. */
  writeFailure: 5,
  /** Interrupted (SIGINT/SIGTERM); resources were released. */
  interrupted: 130
} as const

export const EXIT_CODES_HELP = [
  "exit codes: 0 ok · 1 invalid input or usage · 2 not MESA-enabled / project or snapshot not found / rebuild or verify reported problems",
  "· 3 catalog not configured (MESA_DUCKLAKE_DSN blank; record prints not-recorded) or configuration missing",
  "· 4 catalog unavailable · 5 write or storage failure · 130 interrupted"
].join(" ")

/** Invalid stdin or arguments found by the CLI itself (before the library sees them). */
export class InvalidInput extends Schema.TaggedError<InvalidInput>()("InvalidInput", {
  reason: Schema.String
}) {
  override get message() {
    return this.reason
  }
}

/** A command that finished its output but must end with a given exit code (doctor with failed checks). */
export class CommandFailed extends Schema.TaggedError<CommandFailed>()("CommandFailed", {
  code: Schema.String,
  reason: Schema.String,
  exitCode: Schema.Number
}) {
  override get message() {
    return this.reason
  }
}

const tagOf = (e: unknown): string =>
  typeof e === "object" && e !== null && "_tag" in e && typeof e._tag === "string" ? e._tag : "Error"

/** The exit code and stderr line for a failure. */
export const describeFailure = (error: unknown): { readonly exitCode: number; readonly code: string; readonly message: string } => {
  if (ValidationError.isValidationError(error)) {
    return { exitCode: ExitCode.invalid, code: "UsageError", message: usageMessage(error) }
  }
  if (ConfigError.isConfigError(error)) {
    return { exitCode: ExitCode.notConfigured, code: "ConfigError", message: String(error) }
  }
  const tag = tagOf(error)
  const message = error instanceof Error ? error.message : String(error)
  switch (tag) {
    case "CommandFailed":
      return { exitCode: (error as CommandFailed).exitCode, code: (error as CommandFailed).code, message }
    case "InvalidChange":
    case "InvalidInput":
    case "InvalidDsn":
    case "ProjectConflict":
    case "IdempotencyConflict":
      return { exitCode: ExitCode.invalid, code: tag, message }
    case "CatalogNotEmpty":
      return { exitCode: ExitCode.invalid, code: tag, message }
    case "ProjectNotFound":
    case "SnapshotNotFound":
    case "BackupNotFound":
    case "NotMesaEnabled":
      return { exitCode: ExitCode.notFound, code: tag, message }
    case "CatalogUnavailable":
      return {
        exitCode: (error as { reason?: string }).reason === "not-configured" ? ExitCode.notConfigured : ExitCode.catalogUnavailable,
        code: tag,
        message
      }
    case "CatalogSchemaMismatch":
      return { exitCode: ExitCode.catalogUnavailable, code: tag, message }
    case "LakeWriteError":
    case "LakeReadError":
    case "ChecksumMismatch":
    case "StorageError":
    case "CatalogError":
    case "ProjectArchived":
    case "BackupCorrupt":
    case "BackupToolMissing":
    case "BackupToolTooOld":
    case "BackupToolFailed":
    case "RebuildError":
      return { exitCode: ExitCode.writeFailure, code: tag, message }
    default:
      return { exitCode: ExitCode.invalid, code: tag, message }
  }
}

const ANSI = /\u001b\[[0-9;]*m/g

/** The help text @effect/cli printed for a usage error, captured (see `captureUsageText`). */
let lastUsageText = ""
const usageMessage = (e: ValidationError.ValidationError): string => {
  const text = lastUsageText.replace(ANSI, "").replace(/\s+/g, " ").trim()
  return text.length > 0 ? text : e._tag
}

/** Colours only on a terminal, and never with `NO_COLOR` set (https://no-color.org). */
export const colours = (): boolean => process.stdout.isTTY === true && (process.env.NO_COLOR ?? "") === ""

const plain = (args: ReadonlyArray<unknown>): ReadonlyArray<unknown> =>
  colours() ? args : args.map((a) => (typeof a === "string" ? a.replace(ANSI, "") : a))

/**
 * A `Console` whose `error` is captured instead of printed: @effect/cli prints usage errors as help text on
 * stderr; we keep stderr to one JSON line and put that text into its message. Its `log` (help, completions)
 * drops @effect/cli's colour codes when stdout is not a terminal or `NO_COLOR` is set.
 */
export const captureUsageText = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.flatMap(Effect.console, (console) =>
    Effect.withConsole(effect, {
      ...console,
      log: (...args: ReadonlyArray<unknown>) => console.log(...plain(args)),
      error: (...args: ReadonlyArray<unknown>) =>
        Effect.sync(() => {
          lastUsageText = args.map(String).join(" ")
        }),
      unsafe: {
        ...console.unsafe,
        log: (...args: ReadonlyArray<unknown>) => console.unsafe.log(...plain(args)),
        error: (...args: ReadonlyArray<unknown>) => {
          lastUsageText = args.map(String).join(" ")
        }
      }
    }))

/** Report a failed run on stderr and answer its exit code. Interruption is the caller's business. */
export const reportFailure = (cause: Cause.Cause<unknown>): Effect.Effect<number> =>
  Effect.sync(() => {
    clearProgress()
    const failure = Cause.failureOption(cause)
    const d = Option.isSome(failure)
      ? describeFailure(failure.value)
      : { exitCode: ExitCode.invalid, code: "Defect", message: Cause.pretty(cause).split("\n")[0] ?? "internal error" }
    process.stderr.write(JSON.stringify({ code: d.code, message: d.message }) + "\n")
    return d.exitCode
  })

// ---------------------------------------------------------------------------------------------------------------
// stdout

const snake = (k: string) => k.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`)

/** JSON form of a result: snake_case keys (like the original CLI's), dates as ISO-8601 strings. */
export const toJson = (value: unknown): unknown => {
  if (value instanceof Date) return value.toISOString()
  if (Array.isArray(value)) return value.map(toJson)
  if (value instanceof Set) return [...value].map(toJson)
  if (typeof value === "object" && value !== null) {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [snake(k), toJson(v)]))
  }
  return value
}

export const printJson = (value: unknown) => Effect.sync(() => process.stdout.write(JSON.stringify(toJson(value)) + "\n"))

export const printLine = (text: string) => Effect.sync(() => process.stdout.write(text + "\n"))

const cell = (v: unknown): string => {
  if (v === null || v === undefined) return ""
  if (v instanceof Date) return v.toISOString()
  return String(v).replace(/[\r\n\t]/g, " ")
}

/** A plain-text table: a header row, a rule, the rows; `(none)` when empty. */
export const formatTable = (headers: ReadonlyArray<string>, rows: ReadonlyArray<ReadonlyArray<unknown>>): string => {
  if (rows.length === 0) return "(none)"
  const cells = rows.map((r) => r.map(cell))
  const widths = headers.map((h, i) => Math.max(h.length, ...cells.map((r) => (r[i] ?? "").length)))
  const line = (r: ReadonlyArray<string>) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join("  ").trimEnd()
  return [line(headers), line(widths.map((w) => "-".repeat(w))), ...cells.map(line)].join("\n")
}

export const printTable = (headers: ReadonlyArray<string>, rows: ReadonlyArray<ReadonlyArray<unknown>>) =>
  printLine(formatTable(headers, rows))

/** `key: value` lines, aligned. */
export const formatRecord = (entries: ReadonlyArray<readonly [string, unknown]>): string => {
  const width = Math.max(...entries.map(([k]) => k.length))
  return entries.map(([k, v]) => `${(k + ":").padEnd(width + 1)} ${cell(v)}`).join("\n")
}

/** Human output or JSON, as `--json` says. */
export const emit = <A>(json: boolean, value: A, human: (value: A) => string) =>
  json ? printJson(value) : printLine(human(value))

// ---------------------------------------------------------------------------------------------------------------
// progress and notes (stderr)

let progressShown = false

/** A status line on stderr when it is a terminal (redrawn in place); nothing otherwise. */
export const progress = (text: string) =>
  Effect.sync(() => {
    if (!process.stderr.isTTY) return
    process.stderr.write(`\r\u001b[K${text}`)
    progressShown = true
  })

export const clearProgress = () => {
  if (progressShown) process.stderr.write("\r\u001b[K")
  progressShown = false
}

export const doneProgress = Effect.sync(clearProgress)

/** A note for the reader on stderr (stdout stays the result): `note: …`. */
export const note = (text: string) =>
  Effect.sync(() => {
    clearProgress()
    process.stderr.write(`note: ${text}\n`)
  })

/**
 * How often long work prints a progress line when stderr is not a terminal (`MESA_DUCKLAKE_PROGRESS_INTERVAL_MS`,
 * default 10 s); the first such line comes one interval after the work started, so short runs print nothing.
 */
const lineInterval = (): number => {
  const ms = Number(process.env.MESA_DUCKLAKE_PROGRESS_INTERVAL_MS)
  return Number.isFinite(ms) && ms > 0 ? ms : 10_000
}

/** Progress of long work with counts: redrawn on a terminal, a `progress: …` line every interval otherwise. */
export const makeProgressLine = () => {
  const started = Date.now()
  const every = lineInterval()
  let nextLine = started + every
  let lastDraw = 0
  return {
    started,
    show: (text: string) => {
      const now = Date.now()
      if (process.stderr.isTTY) {
        if (now - lastDraw < 100) return
        lastDraw = now
        process.stderr.write(`\r\u001b[K${text}`)
        progressShown = true
      } else if (now >= nextLine) {
        nextLine = now + every
        process.stderr.write(`progress: ${text}\n`)
      }
    }
  }
}

/** The running long command's progress: its line, its label, and the latest progress the library logged. */
let current: { readonly line: ReturnType<typeof makeProgressLine>; readonly label: string; latest: string | undefined } | undefined

const elapsedOf = (started: number) => duration((Date.now() - started) / 1000)

/**
 * Runs long work with a progress line on stderr: `label` (or the latest progress the library logged, such as
 * `rebuild scan 3/10 files`) and the elapsed time, redrawn every second; cleared when the work ends, however.
 */
export const withProgress = <A, E, R>(label: string, effect: Effect.Effect<A, E, R>) =>
  Effect.acquireUseRelease(
    Effect.sync(() => (current = { line: makeProgressLine(), label, latest: undefined })),
    (p) =>
      Effect.flatMap(
        Effect.forkDaemon(Effect.repeat(
          Effect.sync(() => p.line.show(`${p.latest ?? p.label} · ${elapsedOf(p.line.started)}`)),
          Schedule.spaced("1 second")
        )),
        (ticker) => Effect.ensuring(effect, Fiber.interrupt(ticker))
      ),
    () =>
      Effect.sync(() => {
        current = undefined
        clearProgress()
      })
  )

/** A library log message that reports progress (`… 3/10 …`), shown as progress while a long command runs. */
export const progressFromLog = (message: string, annotations: ReadonlyArray<readonly [string, unknown]> = []): boolean => {
  if (current === undefined || !/\b\d+\/\d+\b/.test(message)) return false
  const extra = annotations
    .filter(([k]) => k === "bytes" || k === "project")
    .map(([k, v]) => (k === "bytes" && typeof v === "number" ? `${(v / 1024 / 1024).toFixed(1)} MB` : String(v)))
  current.latest = [message, ...extra].join(" · ")
  current.line.show(`${current.latest} · ${elapsedOf(current.line.started)}`)
  return true
}

/** `1,234,567` */
export const count = (n: number) => n.toLocaleString("en-US")

/** `12.3 s`, `4 min 05 s`, `1 h 02 min` */
export const duration = (seconds: number): string => {
  if (!Number.isFinite(seconds) || seconds < 0) return "?"
  if (seconds < 60) return `${seconds.toFixed(seconds < 10 ? 1 : 0)} s`
  const s = Math.round(seconds)
  if (s < 3600) return `${Math.floor(s / 60)} min ${String(s % 60).padStart(2, "0")} s`
  return `${Math.floor(s / 3600)} h ${String(Math.floor((s % 3600) / 60)).padStart(2, "0")} min`
}
