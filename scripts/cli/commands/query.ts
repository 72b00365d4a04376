/**
 * Reads: `avus`, `as-of`, `history`, `snapshots`, `diff`.
 */
import { Args, Command, Options } from "@effect/cli"
import { Effect, Option } from "effect"
import type { Avu } from "../../../src/core/domain.js"
import { DuckLakeClient } from "../../../src/client/DuckLakeClient.js"
import { InvalidChange } from "../../../src/core/errors.js"
import { ClientLive, json, limit, pathArg, projectArg, projectFor, projectOption, resolveProject } from "../environment.js"
import { emit, formatTable } from "../output.js"

const avuTable = (avus: ReadonlyArray<Avu>) =>
  formatTable(
    ["ATTRIBUTE", "VALUE", "UNIT", "ACTOR", "TS", "SNAPSHOT", "SOURCE"],
    avus.map((a) => [a.attribute, a.value, a.unit, a.actor, a.ts, a.snapshotId, a.source])
  )

const avus = Command.make("avus", { project: projectOption, json, path: pathArg }, (o) =>
  Effect.gen(function*() {
    const client = yield* DuckLakeClient
    const project = yield* projectFor(o.project, o.path)
    const rows = yield* client.getAvus(project.projectId, o.path)
    yield* emit(o.json, rows, avuTable)
  }).pipe(Effect.provide(ClientLive))).pipe(Command.withDescription("AVUs in effect on a path now, as the history has them"))

const asOf = Command.make(
  "as-of",
  {
    project: projectOption,
    knownAt: Options.text("known-at").pipe(
      Options.withDescription("only what had been recorded by then: a snapshot id or a time (transaction time)"),
      Options.optional
    ),
    json,
    path: pathArg,
    at: Args.text({ name: "time" }).pipe(Args.withDescription("valid time, ISO-8601 (Z or offset; naive = UTC)"))
  },
  (o) =>
    Effect.gen(function*() {
      const client = yield* DuckLakeClient
      const project = yield* projectFor(o.project, o.path)
      const knownAt = Option.map(o.knownAt, (k) => (/^\d+$/.test(k.trim()) ? Number(k) : k))
      const rows = yield* client.getAvusAsOf(
        project.projectId,
        o.path,
        o.at,
        Option.match(knownAt, { onNone: () => ({}), onSome: (k) => ({ knownAt: k }) })
      )
      yield* emit(o.json, rows, avuTable)
    }).pipe(Effect.provide(ClientLive))
).pipe(Command.withDescription("AVUs in effect on a path at a time (inclusive), optionally as known at a snapshot or time"))

const history = Command.make(
  "history",
  {
    project: projectOption,
    attribute: Options.text("attribute").pipe(Options.withDescription("only this attribute"), Options.optional),
    from: Options.text("from").pipe(Options.withDescription("changes valid at or after this time"), Options.optional),
    to: Options.text("to").pipe(Options.withDescription("changes valid at or before this time"), Options.optional),
    limit: limit(100),
    json,
    path: pathArg.pipe(Args.optional)
  },
  (o) =>
    Effect.gen(function*() {
      const client = yield* DuckLakeClient
      const ref = Option.orElse(o.project, () => o.path)
      if (Option.isNone(ref)) {
        return yield* new InvalidChange({ field: "project", reason: "give a path or --project" })
      }
      const project = yield* resolveProject(ref.value)
      const opt = <A>(key: string, v: Option.Option<A>) => Option.match(v, { onNone: () => ({}), onSome: (x) => ({ [key]: x }) })
      const rows = yield* client.getHistory(project.projectId, {
        ...opt("irodsPath", o.path),
        ...opt("attribute", o.attribute),
        ...opt("from", o.from),
        ...opt("to", o.to),
        limit: o.limit
      })
      yield* emit(o.json, rows, (rs) =>
        formatTable(
          ["TS", "SNAPSHOT", "OP", "PATH", "ATTRIBUTE", "VALUE", "UNIT", "ACTOR", "SOURCE"],
          rs.map((r) => [r.ts, r.snapshotId, r.op, r.irodsPath, r.attribute, r.value, r.unit, r.actor, r.source])
        ))
    }).pipe(Effect.provide(ClientLive))
).pipe(Command.withDescription("change rows, newest first (of a path, or of a whole project with --project)"))

const snapshots = Command.make("snapshots", { limit: limit(100), json, project: projectArg }, (o) =>
  Effect.gen(function*() {
    const client = yield* DuckLakeClient
    const project = yield* resolveProject(o.project)
    const rows = yield* client.listSnapshots(project.projectId, { limit: o.limit })
    yield* emit(o.json, rows, (rs) =>
      formatTable(
        ["SNAPSHOT", "COMMITTED", "ACTOR", "CHANGES", "NOTE"],
        rs.map((s) => [s.snapshotId, s.ts, s.actor, s.changeCount, s.note])
      ))
  }).pipe(Effect.provide(ClientLive))).pipe(Command.withDescription("a project's snapshots, newest first"))

const diff = Command.make(
  "diff",
  {
    json,
    project: projectArg,
    from: Args.integer({ name: "from-snapshot" }).pipe(Args.withDescription("exclusive")),
    to: Args.integer({ name: "to-snapshot" }).pipe(Args.withDescription("inclusive"))
  },
  (o) =>
    Effect.gen(function*() {
      const client = yield* DuckLakeClient
      const project = yield* resolveProject(o.project)
      const rows = yield* client.diff(project.projectId, o.from, o.to)
      yield* emit(o.json, rows, (ds) =>
        formatTable(
          ["PATH", "CHANGE", "ATTRIBUTE", "VALUE", "UNIT"],
          ds.flatMap((d) => [
            ...d.removed.map((t) => [d.irodsPath, "-", t.attribute, t.value, t.unit]),
            ...d.added.map((t) => [d.irodsPath, "+", t.attribute, t.value, t.unit])
          ])
        ))
    }).pipe(Effect.provide(ClientLive))
).pipe(Command.withDescription("AVUs added (+) and removed (-) per path between two snapshots"))

export const queries = [avus, asOf, history, snapshots, diff] as const
