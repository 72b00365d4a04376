/**
 * Writes: `record` (stdin as one snapshot), `ingest` (NDJSON of any length, streamed, as consecutive snapshots),
 * `rename` (an `imv`: the history follows the object) and `archive` (refuse writes, reads go on). Their handlers:
 * `../run/record.ts` and `../run/ingest.ts`, loaded when run.
 */
import * as Args from "@effect/cli/Args"
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import { actor, CLI_SOURCE, idempotencyKey, json, lazy, note, projectArg, projectOption, source } from "../options.js"

const run = () => import("../run/record.js")

export const recordConfig = { project: projectOption, actor, source, note, idempotencyKey, json }

export const record = Command.make("record", recordConfig, lazy(run, (m) => m.record)).pipe(Command.withDescription(
  "record changes read from stdin (a JSON object, an array, {\"changes\":[…]} or NDJSON; snake_case or camelCase) as one " +
    `snapshot; --actor and --source (default ${CLI_SOURCE}) fill changes that name none`
))

export const ingestConfig = {
  project: projectOption,
  actor,
  source,
  note,
  idempotencyKey,
  snapshotSize: Options.integer("snapshot-size").pipe(
    Options.withDescription("changes per snapshot (default 20000, at most 200000)"),
    Options.optional
  ),
  json
}

export const ingest = Command.make("ingest", ingestConfig, lazy(() => import("../run/ingest.js"), (m) => m.ingest)).pipe(
  Command.withDescription(
    "record NDJSON changes from stdin, of any length, as consecutive snapshots (constant memory; progress with counts, " +
      "rate and ETA on stderr); with --idempotency-key a rerun after a failure resumes where it stopped"
  )
)

export const renameConfig = {
  project: projectOption,
  actor,
  source,
  note,
  idempotencyKey,
  collection: Options.boolean("collection").pipe(Options.withDescription("the path is a collection: every path below it moves too")),
  ts: Options.text("ts").pipe(Options.withDescription("when the move happened (valid time, ISO-8601); default now"), Options.optional),
  objectId: Options.integer("object-id").pipe(Options.withDescription("the iRODS object id, when known"), Options.optional),
  json,
  from: Args.text({ name: "from" }).pipe(Args.withDescription("the old iRODS path")),
  to: Args.text({ name: "to" }).pipe(Args.withDescription("the new iRODS path"))
}

export const rename = Command.make("rename", renameConfig, lazy(run, (m) => m.rename)).pipe(Command.withDescription(
  "record a rename or move (imv) as one snapshot: the AVUs follow the object, and a query by the new path sees its history"
))

export const archiveConfig = {
  reactivate: Options.boolean("reactivate").pipe(Options.withDescription("make an archived project active again")),
  json,
  project: projectArg
}

export const archive = Command.make("archive", archiveConfig, lazy(run, (m) => m.archive)).pipe(Command.withDescription(
  "archive a project: writes are refused (ProjectArchived, exit 5), reads go on; --reactivate undoes it"
))
