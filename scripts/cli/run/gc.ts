/** Handler of `gc` (`../commands/gc.ts`): the client's `deleteScheduledFiles` over one project. */
import type { Command } from "@effect/cli"
import { Effect } from "effect"
import { DuckLakeClient } from "../../../src/client/DuckLakeClient.js"
import type { gcConfig } from "../commands/gc.js"
import { ClientLive, resolveProject } from "../environment.js"
import { emit, formatRecord } from "../output.js"

type Parsed<C extends Command.Command.Config> = Command.Command.ParseConfig<C>

export const gc = (o: Parsed<typeof gcConfig>) =>
  Effect.gen(function*() {
    const client = yield* DuckLakeClient
    const project = yield* resolveProject(o.project)
    const deleted = yield* client.deleteScheduledFiles(project.projectId, { graceMs: o.graceDays * 24 * 3600_000 })
    const report = { projectId: project.projectId, deleted, graceDays: o.graceDays }
    yield* emit(o.json, report, (r) => formatRecord(Object.entries(r)))
  }).pipe(Effect.provide(ClientLive))
