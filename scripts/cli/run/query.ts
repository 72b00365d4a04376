/**
 * Handlers of the reads (`../commands/query.ts`): `avus`, `as-of`, `history`, `snapshots`, `diff`.
 */
import type { Command } from "@effect/cli"
import { Effect, Option } from "effect"
import type { Avu } from "../../../src/core/domain.js"
import { DuckLakeClient } from "../../../src/client/DuckLakeClient.js"
import { InvalidChange } from "../../../src/core/errors.js"
import type { asOfConfig, avusConfig, diffConfig, historyConfig, snapshotsConfig } from "../commands/query.js"
import { ClientLive, projectFor, resolveProject } from "../environment.js"
import { emit, formatTable, note } from "../output.js"

type Parsed<C extends Command.Command.Config> = Command.Command.ParseConfig<C>

const avuTable = (avus: ReadonlyArray<Avu>) =>
  formatTable(
    ["ATTRIBUTE", "VALUE", "UNIT", "ACTOR", "TS", "SNAPSHOT", "SOURCE"],
    avus.map((a) => [a.attribute, a.value, a.unit, a.actor, a.ts, a.snapshotId, a.source])
  )

const opt = <A>(key: string, v: Option.Option<A>) => Option.match(v, { onNone: () => ({}), onSome: (x) => ({ [key]: x }) })

/** One row more than the limit (the client's own check refuses a limit out of range), to tell whether more exist. */
const probe = (limit: number) => (limit >= 1 && limit < 1_000_000 ? limit + 1 : limit)

/** Rows asked with `probe(limit)`: the first `limit` of them, and whether more exist. */
const cut = <A>(rows: ReadonlyArray<A>, limit: number) => ({ rows: rows.slice(0, limit), more: rows.length > limit })

/** On stderr, so stdout stays the rows (JSON included): there are more rows than were printed. */
const moreNote = (what: string, limit: number) =>
  note(`more ${what} exist than the ${limit} printed (newest first); raise --limit or narrow the query to see them`)

export const avus = (o: Parsed<typeof avusConfig>) =>
  Effect.gen(function*() {
    const client = yield* DuckLakeClient
    const project = yield* projectFor(o.project, o.path)
    const rows = yield* client.getAvus(project.projectId, o.path)
    yield* emit(o.json, rows, avuTable)
  }).pipe(Effect.provide(ClientLive))

export const asOf = (o: Parsed<typeof asOfConfig>) =>
  Effect.gen(function*() {
    const client = yield* DuckLakeClient
    const project = yield* projectFor(o.project, o.path)
    const knownAt = Option.map(o.knownAt, (k) => (/^\d+$/.test(k.trim()) ? Number(k) : k))
    const rows = yield* client.getAvusAsOf(project.projectId, o.path, o.at, opt("knownAt", knownAt))
    yield* emit(o.json, rows, avuTable)
  }).pipe(Effect.provide(ClientLive))

export const history = (o: Parsed<typeof historyConfig>) =>
  Effect.gen(function*() {
    const client = yield* DuckLakeClient
    const ref = Option.orElse(o.project, () => o.path)
    if (Option.isNone(ref)) {
      return yield* new InvalidChange({ field: "project", reason: "give a path or --project" })
    }
    const project = yield* resolveProject(ref.value)
    const { rows, more } = cut(
      yield* client.getHistory(project.projectId, {
        ...opt("irodsPath", o.path),
        ...opt("attribute", o.attribute),
        ...opt("from", o.from),
        ...opt("to", o.to),
        limit: probe(o.limit)
      }),
      o.limit
    )
    yield* emit(o.json, rows, (rs) =>
      formatTable(
        ["TS", "SNAPSHOT", "OP", "PATH", "ATTRIBUTE", "VALUE", "UNIT", "ACTOR", "SOURCE"],
        rs.map((r) => [r.ts, r.snapshotId, r.op, r.irodsPath, r.attribute, r.value, r.unit, r.actor, r.source])
      ))
    if (more) yield* moreNote("change rows", o.limit)
  }).pipe(Effect.provide(ClientLive))

export const snapshots = (o: Parsed<typeof snapshotsConfig>) =>
  Effect.gen(function*() {
    const client = yield* DuckLakeClient
    const project = yield* resolveProject(o.project)
    const { rows, more } = cut(yield* client.listSnapshots(project.projectId, { limit: probe(o.limit) }), o.limit)
    yield* emit(o.json, rows, (rs) =>
      formatTable(
        ["SNAPSHOT", "COMMITTED", "ACTOR", "CHANGES", "NOTE"],
        rs.map((s) => [s.snapshotId, s.ts, s.actor, s.changeCount, s.note])
      ))
    if (more) yield* moreNote("snapshots", o.limit)
  }).pipe(Effect.provide(ClientLive))

export const diff = (o: Parsed<typeof diffConfig>) =>
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
