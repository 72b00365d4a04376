/**
 * `DuckLakeAccess`: the client as one iRODS user sees it. In hosted mode one catalog holds every project's history
 * under one service account; a view made with `forCaller` answers only with what that caller may read in iRODS
 * now, and records only what it may modify, under its own name.
 *
 * - Reads: a project whose root the caller cannot read is `ProjectNotFound`; a path it cannot read looks exactly
 *   like a path with no history (empty answers, left out of history, snapshot lists and diffs). A path that no
 *   longer exists in iRODS (deleted or moved away) has no ACL to go by: only an owner of the project root sees it.
 * - Snapshots: one with no row on a path the caller may read is hidden, and looks exactly like an id never used.
 *   Snapshot ids asked about (`knownAt`, `diff`'s ends) are bounds: any id answers as the newest visible snapshot at
 *   or below it (0, before all history, when there is none). Listed snapshots link to the nearest visible snapshot
 *   before them, count only the rows the caller may see, and show their note only when it may see every row.
 * - Writes: every path needs modify (own for a path that no longer exists); registering a project needs own on its
 *   root. The recorded actor is the caller; a service acting for a user is the actor, the user is `onBehalfOf` and
 *   the tool is the `source`.
 * - Permissions are checked as they are now, not as they were at the historical time asked about.
 * - `trusted` is the explicit way around all of this, for operators and batch jobs.
 *
 * This module owns the service (tag, `view`, layers, config); behind it `access/context.ts` holds one caller's rules
 * (permission checks, project visibility, stamping), `access/writes.ts` and `access/reads.ts` the view's methods,
 * and `access/types.ts` the view's shapes.
 */
import { Config, Context, Effect, Layer } from "effect"
import { makeCallerContext } from "./context.js"
import * as Reads from "./reads.js"
import type { Agent, CallerView } from "./types.js"
import * as Writes from "./writes.js"
import { DuckLakeClient, type DuckLakeClientService } from "../client/DuckLakeClient.js"
import type { InvalidChange } from "../core/errors.js"
import { type Caller, parseCaller, Permissions, type PermissionsService } from "./Permissions.js"

export type { Agent, CallerRecordInput, CallerRenameInput, CallerView } from "./types.js"

export interface DuckLakeAccessService {
  /** `"enforced"` (the default) filters by iRODS permissions; `"trusted"` only stamps the caller as the actor. */
  readonly mode: "enforced" | "trusted"
  /** The client as `caller` (`user#zone`) sees it, optionally through a service acting for it. */
  readonly forCaller: (caller: unknown, agent?: Agent) => Effect.Effect<CallerView, InvalidChange>
  /** The unfiltered client, for operators and batch jobs: the explicit way around access control. */
  readonly trusted: DuckLakeClientService
}

export class DuckLakeAccess extends Context.Tag("mesa-ducklake/DuckLakeAccess")<DuckLakeAccess, DuckLakeAccessService>() {}

/** Permissions for trusted mode: everyone may do everything (and nothing is asked of iRODS). */
const everyone: PermissionsService = { levelOf: () => Effect.succeed("own"), invalidate: () => Effect.void }

/** The client as `caller` sees it (through `agent`, when a service acts for it), under `perms`. */
export const view = (
  root: DuckLakeClientService,
  perms: PermissionsService,
  caller: Caller,
  agent?: Agent
): CallerView => {
  const ctx = makeCallerContext(root, perms, caller, agent)
  return {
    caller,
    registerProject: Writes.registerProject(ctx),
    getProject: ctx.project,
    findProjectByPath: Reads.findProjectByPath(ctx),
    listProjects: Reads.listProjects(ctx),
    recordChanges: Writes.recordChanges(ctx),
    ingestChanges: Writes.ingestChanges(ctx),
    recordRename: Writes.recordRename(ctx),
    getAvus: Reads.getAvus(ctx),
    getAvusAsOf: Reads.getAvusAsOf(ctx),
    getHistory: Reads.getHistory(ctx),
    listSnapshots: Reads.listSnapshots(ctx),
    diff: Reads.diff(ctx),
    getSnapshotChanges: Reads.getSnapshotChanges(ctx)
  }
}

const service = (root: DuckLakeClientService, perms: PermissionsService, mode: "enforced" | "trusted") =>
  DuckLakeAccess.of({
    mode,
    forCaller: (caller, agent) =>
      Effect.gen(function*() {
        const c = yield* parseCaller(caller)
        if (agent !== undefined) yield* parseCaller(agent.identity, "agent.identity")
        return view(root, perms, c, agent)
      }),
    trusted: root
  })

/** Enforced: every view checks the caller's iRODS permissions (needs `Permissions`). */
export const make = Effect.gen(function*() {
  return service(yield* DuckLakeClient, yield* Permissions, "enforced")
})

/** Trusted: views record the caller as the actor but filter nothing and ask iRODS nothing. */
export const makeTrusted = Effect.map(DuckLakeClient, (root) => service(root, everyone, "trusted"))

export const layer = Layer.effect(DuckLakeAccess, make)
export const layerTrusted = Layer.effect(DuckLakeAccess, makeTrusted)

/** `MESA_DUCKLAKE_ACCESS`: `enforced` (default) or `trusted`; `MESA_DUCKLAKE_ACCESS_TTL_MS` (default 10000). */
export const AccessConfig = Config.all({
  mode: Config.literal("enforced", "trusted")("MESA_DUCKLAKE_ACCESS").pipe(Config.withDefault("enforced" as const)),
  ttlMs: Config.integer("MESA_DUCKLAKE_ACCESS_TTL_MS").pipe(Config.withDefault(10_000))
})
