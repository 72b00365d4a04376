/**
 * Handlers of `record`, `rename` and `archive` (`../commands/record.ts`). Without a catalog (modes B/C) `record`
 * validates its input, prints `{"recorded":false,"reason":"no-catalog"}` and exits 3, as the original CLI did.
 */
import type { Command } from "@effect/cli"
import { Effect, Option } from "effect"
import { isWithin, type Project } from "../../../src/core/domain.js"
import { DuckLakeClient } from "../../../src/client/DuckLakeClient.js"
import { CatalogUnavailable, InvalidChange } from "../../../src/core/errors.js"
import type { archiveConfig, recordConfig, renameConfig } from "../commands/record.js"
import { actorOf, ClientLive, defaultActor, dsnOption, projectFor, resolveProject } from "../environment.js"
import { type Fill, parseBatch, readStdin, type StdinBatch } from "../input.js"
import { CLI_SOURCE } from "../options.js"
import { doneProgress, emit, formatRecord, progress } from "../output.js"

type Parsed<C extends Command.Command.Config> = Command.Command.ParseConfig<C>

const opt = <A>(key: string, v: Option.Option<A>) => Option.match(v, { onNone: () => ({}), onSome: (x) => ({ [key]: x }) })

/**
 * What fills changes that lack an actor or a source: `--actor`, else the batch's `actor`, else the default actor
 * ($MESA_DUCKLAKE_ACTOR or the OS user); `--source`, else the CLI's own source.
 */
export const fillFrom = (actor: Option.Option<string>, source: Option.Option<string>) => (envelopeActor: string | undefined) =>
  Effect.map(
    Option.match(actor, {
      onSome: Effect.succeed,
      onNone: () => (envelopeActor === undefined ? defaultActor : Effect.succeed(envelopeActor))
    }),
    (a): Fill => ({ actor: a, source: Option.getOrElse(source, () => CLI_SOURCE) })
  )

/** The snapshot's author: `--actor`, the batch's `actor`, the changes' common actor, or the default. */
const snapshotActor = (option: Option.Option<string>, batch: StdinBatch) =>
  Effect.gen(function*() {
    if (Option.isSome(option)) return option.value
    if (batch.actor !== undefined) return batch.actor
    const actors = [...new Set(batch.changes.map((c) => c.actor as string))]
    if (actors.length === 1) return actors[0]!
    return yield* defaultActor
  })

const recorded = (project: Project, r: {
  readonly snapshotId: number
  readonly parquetFile: string
  readonly projectId: string
  readonly changeCount: number
  readonly unmatchedDeletes: number
  readonly replayed: boolean
}) => ({
  recorded: true,
  snapshotId: r.snapshotId,
  parquetFile: `${project.ducklakePath}/${r.parquetFile}`,
  projectId: r.projectId,
  changeCount: r.changeCount,
  unmatchedDeletes: r.unmatchedDeletes,
  replayed: r.replayed
})

const recordedText = (project: Project) => (r: ReturnType<typeof recorded>) =>
  formatRecord([
    [r.replayed ? "replayed snapshot" : "recorded snapshot", r.snapshotId],
    ["project", `${r.projectId} (${project.irodsPath})`],
    ["changes", r.changeCount],
    ...(r.unmatchedDeletes > 0 ? [["deletes matching nothing", r.unmatchedDeletes] as const] : []),
    ["parquet file", r.parquetFile]
  ])

export const record = (o: Parsed<typeof recordConfig>) =>
  Effect.gen(function*() {
    yield* progress("reading changes from stdin…")
    const batch = yield* parseBatch(yield* readStdin, fillFrom(o.actor, o.source))
    const who = yield* snapshotActor(o.actor, batch)
    if (Option.isNone(yield* dsnOption)) {
      yield* doneProgress
      yield* emit(o.json, { recorded: false, reason: "no-catalog" }, () => "not recorded: no catalog is configured (MESA_DUCKLAKE_DSN is blank)")
      return yield* new CatalogUnavailable({ reason: "not-configured" })
    }
    yield* Effect.gen(function*() {
      const client = yield* DuckLakeClient
      const first = batch.changes[0]!.irodsPath as string
      const project = yield* resolveProject(Option.getOrElse(Option.orElse(o.project, () => Option.fromNullable(batch.projectId)), () => first))
      const outside = batch.changes.findIndex((c) => !isWithin(String(c.irodsPath).replace(/\/+$/, ""), project.irodsPath))
      if (outside >= 0) {
        return yield* new InvalidChange({
          field: "irodsPath",
          reason: `not inside project ${project.projectId} (${project.irodsPath}); one invocation records one project's snapshot`,
          index: outside
        })
      }
      yield* progress(`recording ${batch.changes.length} change(s) in ${project.irodsPath}…`)
      const note = Option.getOrUndefined(o.note) ?? batch.note
      const key = Option.getOrUndefined(o.idempotencyKey) ?? batch.idempotencyKey
      const result = yield* client.recordChanges({
        projectId: project.projectId,
        actor: who,
        changes: batch.changes,
        ...(note === undefined ? {} : { note }),
        ...(key === undefined ? {} : { idempotencyKey: key })
      })
      yield* doneProgress
      if (!result.recorded) return yield* new CatalogUnavailable({ reason: "not-configured" })
      const out = recorded(project, result)
      yield* Effect.logInfo("snapshot recorded", { projectId: out.projectId, snapshotId: out.snapshotId, changes: out.changeCount })
      yield* emit(o.json, out, recordedText(project))
    }).pipe(Effect.provide(ClientLive))
  })

export const rename = (o: Parsed<typeof renameConfig>) =>
  Effect.gen(function*() {
    const client = yield* DuckLakeClient
    const project = yield* projectFor(o.project, o.from)
    const result = yield* client.recordRename({
      projectId: project.projectId,
      actor: yield* actorOf(o.actor),
      from: o.from,
      to: o.to,
      targetType: o.collection ? "collection" : "data_object",
      source: Option.getOrElse(o.source, () => CLI_SOURCE),
      ...opt("ts", o.ts),
      ...opt("objectId", o.objectId),
      ...opt("note", o.note),
      ...opt("idempotencyKey", o.idempotencyKey)
    })
    if (!result.recorded) {
      // A move of a path without AVUs: nothing to carry, nothing recorded (not an error).
      return yield* emit(o.json, { recorded: false, reason: result.reason, from: o.from, to: o.to }, (r) =>
        `not recorded (${r.reason}): ${r.from} has no AVUs in the history to carry to ${r.to}`)
    }
    yield* emit(o.json, recorded(project, result), recordedText(project))
  }).pipe(Effect.provide(ClientLive))

export const archive = (o: Parsed<typeof archiveConfig>) =>
  Effect.gen(function*() {
    const client = yield* DuckLakeClient
    const project = yield* resolveProject(o.project)
    const updated = yield* client.setProjectStatus(project.projectId, o.reactivate ? "active" : "archived")
    yield* emit(o.json, updated, (p) =>
      formatRecord([
        ["project", `${p.projectId} (${p.irodsPath})`],
        ["status", p.status],
        ["writes", p.status === "archived" ? "refused (ProjectArchived); reads go on" : "accepted"]
      ]))
  }).pipe(Effect.provide(ClientLive))
