/**
 * `record`: a batch of changes from stdin as one snapshot (see `../input.ts` for the accepted forms).
 *
 * Prints `{"recorded":true,"snapshot_id","parquet_file","project_id",…}` with `--json` (the original CLI's keys,
 * `parquet_file` as the file's iRODS path). Without a catalog (modes B/C) it validates the input, prints
 * `{"recorded":false,"reason":"no-catalog"}` and exits 3, as the original did.
 */
import { Command, Options } from "@effect/cli"
import { Effect, Option } from "effect"
import { isWithin } from "../../../src/core/domain.js"
import { DuckLakeClient } from "../../../src/client/DuckLakeClient.js"
import { CatalogUnavailable, InvalidChange } from "../../../src/core/errors.js"
import { actor, ClientLive, defaultActor, dsnOption, json, projectOption, resolveProject } from "../environment.js"
import { parseBatch, readStdin, type StdinBatch } from "../input.js"
import { doneProgress, emit, formatRecord, progress } from "../output.js"

/** The snapshot's author: `--actor`, the batch's `actor`, the changes' common actor, or the default. */
const snapshotActor = (option: Option.Option<string>, batch: StdinBatch) =>
  Effect.gen(function*() {
    if (Option.isSome(option)) return option.value
    if (batch.actor !== undefined) return batch.actor
    const actors = [...new Set(batch.changes.map((c) => c.actor as string))]
    if (actors.length === 1) return actors[0]!
    return yield* defaultActor
  })

export const record = Command.make(
  "record",
  {
    project: projectOption,
    actor,
    note: Options.text("note").pipe(Options.withDescription("the snapshot's commit message"), Options.optional),
    idempotencyKey: Options.text("idempotency-key").pipe(
      Options.withDescription("a retry with the same key and batch returns the first snapshot"),
      Options.optional
    ),
    json
  },
  (o) =>
    Effect.gen(function*() {
      yield* progress("reading changes from stdin…")
      const batch = yield* parseBatch(yield* readStdin)
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
        const out = {
          recorded: true,
          snapshotId: result.snapshotId,
          parquetFile: `${project.ducklakePath}/${result.parquetFile}`,
          projectId: result.projectId,
          changeCount: result.changeCount,
          unmatchedDeletes: result.unmatchedDeletes,
          replayed: result.replayed
        }
        yield* Effect.logInfo("snapshot recorded", { projectId: out.projectId, snapshotId: out.snapshotId, changes: out.changeCount })
        yield* emit(o.json, out, (r) =>
          formatRecord([
            [r.replayed ? "replayed snapshot" : "recorded snapshot", r.snapshotId],
            ["project", `${r.projectId} (${project.irodsPath})`],
            ["changes", r.changeCount],
            ...(r.unmatchedDeletes > 0 ? [["deletes matching nothing", r.unmatchedDeletes] as const] : []),
            ["parquet file", r.parquetFile]
          ]))
      }).pipe(Effect.provide(ClientLive))
    })
).pipe(Command.withDescription(
  "record changes read from stdin (a JSON object, an array, {\"changes\":[…]} or NDJSON; snake_case or camelCase) as one snapshot"
))
