/**
 * `report [--out file.html] [--max-changes n] [--max-path-changes n] [--max-snapshots n] [--json] <path-or-project>`:
 * a picture of the history as one self-contained HTML page (src/report/Report.ts): the timeline of each AVU of a
 * path, the project's snapshots, and its overview. `--out -` writes the page to stdout.
 *
 * The definition imports only @effect/cli and `effect` by module path; the client, the layers and the report
 * (and, through it, the charting library) are imported when the command runs, so `--help` stays fast.
 */
import * as Args from "@effect/cli/Args"
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as fs from "node:fs"
import * as nodePath from "node:path"

const DEFAULT_OUT = "mesa-ducklake-report.html"

const config = {
  out: Options.text("out").pipe(
    Options.withAlias("o"),
    Options.withDescription(`where to write the page (default ./${DEFAULT_OUT}; - for stdout); replaced whole, never half-written`),
    Options.optional
  ),
  maxChanges: Options.integer("max-changes").pipe(
    Options.withDescription("the newest this many changes of the project are counted in the overview (default 100000)"),
    Options.withDefault(100_000)
  ),
  maxPathChanges: Options.integer("max-path-changes").pipe(
    Options.withDescription("the newest this many changes of the path are drawn (default 10000)"),
    Options.withDefault(10_000)
  ),
  maxSnapshots: Options.integer("max-snapshots").pipe(
    Options.withDescription("the newest this many snapshots are listed (default 1000)"),
    Options.withDefault(1_000)
  ),
  json: Options.boolean("json").pipe(Options.withDescription("print what was written as one JSON document")),
  target: Args.text({ name: "path-or-project" }).pipe(
    Args.withDescription("an iRODS path (its AVUs' timeline, and its project) or a project id (overview and snapshots)")
  )
}

type Parsed = Command.Command.ParseConfig<typeof config>

const load = () =>
  Promise.all([
    import("../environment.js"),
    import("../output.js"),
    import("../../../src/report/Report.js"),
    import("../../../src/client/DuckLakeClient.js")
  ])

type Modules = Awaited<ReturnType<typeof load>>

/** Writes `text` to `file` through a temporary file beside it and a rename: the file is whole or untouched. */
const writeWhole = (file: string, text: string) => {
  const temp = nodePath.join(nodePath.dirname(file), `.${nodePath.basename(file)}.${process.pid}.tmp`)
  try {
    fs.writeFileSync(temp, text, { mode: 0o644 })
    fs.renameSync(temp, file)
  } catch (e) {
    fs.rmSync(temp, { force: true })
    throw e
  }
}

const run = (o: Parsed, [env, output, Report, Client]: Modules) =>
  Effect.gen(function*() {
    const client = yield* Client.DuckLakeClient
    const started = performance.now()
    const report = yield* Report.renderReport(client, o.target, {
      maxChanges: o.maxChanges,
      maxPathChanges: o.maxPathChanges,
      maxSnapshots: o.maxSnapshots
    }).pipe(
      Effect.catchTag("ReportError", (e) =>
        Effect.fail(
          e.reason === "missing-dependency"
            ? new output.CommandFailed({ code: "ReportError", reason: e.message, exitCode: output.ExitCode.notConfigured })
            : e
        ))
    )
    const renderMs = Math.round(performance.now() - started)
    const out = Option.getOrElse(o.out, () => DEFAULT_OUT)
    if (out === "-") {
      yield* Effect.sync(() => process.stdout.write(report.html))
      return
    }
    const file = nodePath.resolve(out)
    yield* Effect.try({
      try: () => writeWhole(file, report.html),
      catch: (e) =>
        new output.CommandFailed({
          code: "ReportWriteFailed",
          reason: `could not write the report to ${file}: ${e instanceof Error ? e.message : String(e)}`,
          exitCode: output.ExitCode.writeFailure
        })
    })
    const summary = {
      file,
      bytes: Buffer.byteLength(report.html),
      renderMs,
      projectId: report.project.projectId,
      project: report.project.irodsPath,
      path: report.path ?? null,
      ...report.counts,
      truncated: report.truncated
    }
    yield* output.emit(o.json, summary, (s) =>
      output.formatRecord([
        ["report", s.file],
        ["bytes", s.bytes],
        ["project", `${s.projectId} (${s.project})`],
        ["path", s.path ?? "(project report)"],
        ["timeline", s.path === null ? "-" : `${s.pathChanges} changes, ${s.attributes} attributes, ${s.bars} bars`],
        ["overview", `${s.projectChanges} changes${s.truncated.project ? ` (the newest; more exist)` : ""}`],
        ["snapshots", s.snapshots],
        ["render ms", s.renderMs]
      ]))
  }).pipe(Effect.provide(env.ClientLive))

export const report = Command.make("report", config, (o) => Effect.flatMap(Effect.promise(load), (m) => run(o, m))).pipe(
  Command.withDescription(
    "a picture of the history as one self-contained HTML page: each AVU's timeline on a path, the snapshots, the project's overview"
  )
)
