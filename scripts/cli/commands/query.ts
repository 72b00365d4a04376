/**
 * Reads: `avus`, `as-of`, `history`, `snapshots`, `diff` (their handlers: `../run/query.ts`, loaded when run).
 */
import * as Args from "@effect/cli/Args"
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import { json, lazy, limit, pathArg, projectArg, projectOption } from "../options.js"

const run = () => import("../run/query.js")

export const avusConfig = { project: projectOption, json, path: pathArg }

const avus = Command.make("avus", avusConfig, lazy(run, (m) => m.avus)).pipe(
  Command.withDescription("AVUs in effect on a path now, as the history has them")
)

export const asOfConfig = {
  project: projectOption,
  knownAt: Options.text("known-at").pipe(
    Options.withDescription("only what had been recorded by then: a snapshot id or a time (transaction time)"),
    Options.optional
  ),
  json,
  path: pathArg,
  at: Args.text({ name: "time" }).pipe(Args.withDescription("valid time, ISO-8601 (Z or offset; naive = UTC)"))
}

const asOf = Command.make("as-of", asOfConfig, lazy(run, (m) => m.asOf)).pipe(
  Command.withDescription("AVUs in effect on a path at a time (inclusive), optionally as known at a snapshot or time")
)

export const historyConfig = {
  project: projectOption,
  attribute: Options.text("attribute").pipe(Options.withDescription("only this attribute"), Options.optional),
  from: Options.text("from").pipe(Options.withDescription("changes valid at or after this time"), Options.optional),
  to: Options.text("to").pipe(Options.withDescription("changes valid at or before this time"), Options.optional),
  limit: limit(100),
  json,
  path: pathArg.pipe(Args.optional)
}

const history = Command.make("history", historyConfig, lazy(run, (m) => m.history)).pipe(
  Command.withDescription(
    "change rows, newest first (of a path, or of a whole project with --project); says when more rows exist than --limit"
  )
)

export const snapshotsConfig = { limit: limit(100), json, project: projectArg }

const snapshots = Command.make("snapshots", snapshotsConfig, lazy(run, (m) => m.snapshots)).pipe(
  Command.withDescription("a project's snapshots, newest first; says when more exist than --limit")
)

export const diffConfig = {
  json,
  project: projectArg,
  from: Args.integer({ name: "from-snapshot" }).pipe(Args.withDescription("exclusive")),
  to: Args.integer({ name: "to-snapshot" }).pipe(Args.withDescription("inclusive"))
}

const diff = Command.make("diff", diffConfig, lazy(run, (m) => m.diff)).pipe(
  Command.withDescription("AVUs added (+) and removed (-) per path between two snapshots")
)

export const queries = [avus, asOf, history, snapshots, diff] as const
