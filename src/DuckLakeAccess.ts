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
 */
import { Config, Context, Effect, Either, Layer } from "effect"
import type {
  AsOfOptions,
  Avu,
  ChangeRow,
  HistoryFilter,
  NotRecorded,
  PathDiff,
  Project,
  RecordResult,
  Snapshot
} from "./domain.js"
import { decodeChange, decodeChangeFast, parseIrodsPath } from "./domain.js"
import {
  DuckLakeClient,
  type DuckLakeClientService,
  type IngestReport,
  type RecordError
} from "./DuckLakeClient.js"
import { AccessCheckFailed, InvalidChange, PermissionDenied, ProjectNotFound, SnapshotNotFound } from "./errors.js"
import type { AccessLevel } from "./irods/IrodsClient.js"
import { atLeast, type Caller, callerName, parseCaller, Permissions, type PermissionsService } from "./Permissions.js"

type Err<F> = F extends (...args: any) => Effect.Effect<any, infer E, any> ? E : F extends Effect.Effect<any, infer E, any> ? E
  : never
type Denied = PermissionDenied | AccessCheckFailed

/** A service acting for the caller (mesa-mcp's service account, a rule engine). */
export interface Agent {
  /** The service's own iRODS identity, `user#zone`: recorded as the actor. */
  readonly identity: string
  /** The tool or agent name, recorded as each change's `source`. */
  readonly tool?: string
}

export interface CallerRecordInput {
  readonly projectId: string
  readonly changes: ReadonlyArray<unknown>
  readonly note?: string
  readonly idempotencyKey?: string
}

export interface CallerRenameInput {
  readonly projectId: string
  readonly from: string
  readonly to: string
  readonly targetType?: "data_object" | "collection"
  readonly ts?: unknown
  readonly objectId?: number
  readonly note?: string
  readonly idempotencyKey?: string
}

/** The client as one caller sees it. */
export interface CallerView {
  readonly caller: Caller
  readonly registerProject: (input: { readonly irodsPath: string; readonly zone?: string }) => Effect.Effect<
    Project,
    Err<DuckLakeClientService["registerProject"]> | Denied
  >
  readonly getProject: (projectId: string) => Effect.Effect<Project, Err<DuckLakeClientService["getProject"]> | Denied>
  readonly findProjectByPath: (
    irodsPath: string
  ) => Effect.Effect<Project, Err<DuckLakeClientService["findProjectByPath"]> | Denied>
  readonly listProjects: Effect.Effect<ReadonlyArray<Project>, Err<DuckLakeClientService["listProjects"]> | Denied>
  readonly recordChanges: (input: CallerRecordInput) => Effect.Effect<RecordResult | NotRecorded, RecordError | Denied>
  readonly ingestChanges: (
    input: Omit<CallerRecordInput, "changes"> & {
      readonly changes: Iterable<unknown> | AsyncIterable<unknown>
      readonly snapshotSize?: number
    }
  ) => Effect.Effect<IngestReport | NotRecorded, RecordError | Denied>
  readonly recordRename: (input: CallerRenameInput) => Effect.Effect<RecordResult | NotRecorded, RecordError | Denied>
  readonly getAvus: (
    projectId: string,
    irodsPath: string
  ) => Effect.Effect<ReadonlyArray<Avu>, Err<DuckLakeClientService["getAvus"]> | Denied>
  readonly getAvusAsOf: (
    projectId: string,
    irodsPath: string,
    at: unknown,
    options?: AsOfOptions
  ) => Effect.Effect<ReadonlyArray<Avu>, Err<DuckLakeClientService["getAvusAsOf"]> | Denied>
  readonly getHistory: (
    projectId: string,
    filter?: HistoryFilter
  ) => Effect.Effect<ReadonlyArray<ChangeRow>, Err<DuckLakeClientService["getHistory"]> | Denied>
  readonly listSnapshots: (
    projectId: string,
    options?: { readonly limit?: number }
  ) => Effect.Effect<ReadonlyArray<Snapshot>, Err<DuckLakeClientService["listSnapshots"]> | Denied>
  readonly diff: (
    projectId: string,
    fromSnapshot: number,
    toSnapshot: number
  ) => Effect.Effect<ReadonlyArray<PathDiff>, Err<DuckLakeClientService["diff"]> | Denied>
  readonly getSnapshotChanges: (
    projectId: string,
    snapshotId: number
  ) => Effect.Effect<ReadonlyArray<ChangeRow>, Err<DuckLakeClientService["getSnapshotChanges"]> | Denied>
}

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

/** Upper bound on rows read to filter an unfiltered history or snapshot list (the limit callers may ask for). */
const SCAN_ROWS = 1_000_000

/** A snapshot id the client accepts (it refuses any other with its own `InvalidChange`). */
const isSnapshotId = (x: unknown): x is number => typeof x === "number" && Number.isSafeInteger(x) && x >= 0

export const view = (
  root: DuckLakeClientService,
  perms: PermissionsService,
  caller: Caller,
  agent?: Agent
): CallerView => {
  const me = callerName(caller)
  const level = (path: string) => perms.levelOf(caller, path)

  /**
   * Does the caller have `needed` on `path` of project `p`? The one rule for reads and writes: a path gone from iRODS
   * has no ACL left, so it takes own on the project root. Also says which level that was.
   */
  const allows = (p: Project, path: string, needed: AccessLevel) =>
    Effect.flatMap(level(path), (lvl) => {
      const [at, want] = lvl === undefined ? [level(p.irodsPath), "own" as const] : [Effect.succeed(lvl), needed]
      return Effect.map(at, (have) => ({ ok: have !== undefined && have !== "none" && atLeast(have, want), want }))
    })
  const canRead = (p: Project, path: string) => Effect.map(allows(p, path, "read"), (a) => a.ok)
  /** A memo of canRead over one call, for answers that mention many paths. */
  const reader = (p: Project) => {
    const memo = new Map<string, boolean>()
    return (path: string) =>
      Effect.suspend(() => {
        const hit = memo.get(path)
        return hit !== undefined ? Effect.succeed(hit) : Effect.tap(canRead(p, path), (ok) => Effect.sync(() => memo.set(path, ok)))
      })
  }
  const require = (p: Project, path: string, needed: Exclude<AccessLevel, "read">) =>
    Effect.flatMap(allows(p, path, needed), (a) =>
      a.ok ? Effect.void : Effect.fail(new PermissionDenied({ caller: me, irodsPath: path, needed: a.want })))

  const visibleProject = (p: Project) => Effect.map(level(p.irodsPath), (lvl) => lvl !== undefined && lvl !== "none")
  const project = (projectId: string) =>
    Effect.flatMap(root.getProject(projectId), (p) =>
      Effect.flatMap(visibleProject(p), (ok) => (ok ? Effect.succeed(p) : Effect.fail(new ProjectNotFound({ projectId })))))

  const actor = agent?.identity ?? me
  /** The changes as recorded: the caller (or the agent) as actor, the user on whose behalf, the agent's tool. */
  const stamp = (raw: unknown): unknown =>
    raw !== null && typeof raw === "object" && !Array.isArray(raw)
      ? {
        ...(raw as object),
        actor,
        ...(agent === undefined ? {} : { onBehalfOf: me }),
        ...(agent?.tool === undefined ? {} : { source: agent.tool })
      }
      : raw

  /** Checks modify on every path of a batch (decoded as the client decodes it), then forgets their cached ACLs. */
  const checkBatch = (p: Project, raw: ReadonlyArray<unknown>, offset: number) =>
    Effect.gen(function*() {
      const paths = new Set<string>()
      for (const [i, c] of raw.entries()) paths.add((yield* decodeChange(c, offset + i)).irodsPath)
      for (const path of paths) yield* require(p, path, "modify")
      return [...paths]
    })

  const recordChanges: CallerView["recordChanges"] = (input) =>
    Effect.gen(function*() {
      const p = yield* project(input?.projectId)
      const raw = Array.isArray(input?.changes) ? input.changes : undefined
      if (raw === undefined) return yield* new InvalidChange({ field: "changes", reason: "must be an array" })
      const paths = yield* checkBatch(p, raw, 0)
      const r = yield* root.recordChanges({ ...input, actor, changes: raw.map(stamp) })
      yield* perms.invalidate(paths, [caller])
      return r
    }).pipe(Effect.withSpan("DuckLakeAccess.recordChanges", { attributes: { caller: me } }))

  const ingestChanges: CallerView["ingestChanges"] = (input) =>
    Effect.gen(function*() {
      const p = yield* project(input?.projectId)
      const source = input?.changes as unknown
      if (source === null || typeof source !== "object" || !(Symbol.iterator in source || Symbol.asyncIterator in source)) {
        return yield* new InvalidChange({ field: "changes", reason: "must be an iterable or async iterable of changes" })
      }
      // Checked as they stream past: a path the caller may not modify stops the ingest before its snapshot.
      const seen = new Set<string>()
      let index = 0
      let denial: PermissionDenied | AccessCheckFailed | undefined
      const checked = async function*(): AsyncGenerator<unknown> {
        for await (const c of source as AsyncIterable<unknown>) {
          // The plain-JS decoder answers for well-formed changes; a bad one is left for the client to refuse.
          const path = (decodeChangeFast(c) ?? Either.getOrUndefined(Effect.runSync(Effect.either(decodeChange(c, index)))))?.irodsPath
          if (path !== undefined && !seen.has(path)) {
            const checkedPath = await Effect.runPromise(Effect.either(require(p, path, "modify")))
            if (checkedPath._tag === "Left") {
              denial = checkedPath.left
              throw denial
            }
            seen.add(path)
          }
          index++
          yield stamp(c)
        }
      }
      const r = yield* root.ingestChanges({ ...input, actor, changes: checked() }).pipe(
        // A denial thrown by the checking source arrives as "reading the source failed": give it back as itself.
        Effect.catchIf(
          (e): e is InvalidChange => e._tag === "InvalidChange" && e.field === "changes" && denial !== undefined,
          () => Effect.fail(denial!)
        )
      )
      yield* perms.invalidate([...seen], [caller])
      return r
    })

  const recordRename: CallerView["recordRename"] = (input) =>
    Effect.gen(function*() {
      const p = yield* project(input?.projectId)
      const from = yield* parseIrodsPath(input?.from, "from")
      const to = yield* parseIrodsPath(input?.to, "to")
      yield* require(p, to, "modify")
      // The old path is gone from iRODS: its history moves with the object only for an owner of the root.
      yield* require(p, from, "modify")
      const r = yield* root.recordRename({
        ...input,
        actor,
        ...(agent?.tool === undefined ? {} : { source: agent.tool })
      })
      yield* perms.invalidate([from, to], [caller])
      return r
    })

  const filterRows = (p: Project, rows: ReadonlyArray<ChangeRow>, ok = reader(p)) =>
    Effect.gen(function*() {
      const out: Array<ChangeRow> = []
      for (const r of rows) if (yield* ok(r.irodsPath)) out.push(r)
      return out
    })

  /**
   * What the caller may see of a project's snapshots, for one call: a snapshot is visible when it has a row on a
   * path the caller may read. Snapshot ids are bounds (`bound`); the full history is read at most once per call,
   * and only when the id asked about is not itself a visible snapshot.
   */
  const sight = (p: Project) =>
    Effect.gen(function*() {
      const ok = reader(p)
      /** Rows the caller may see, per visible snapshot. */
      const counts = yield* Effect.cached(Effect.gen(function*() {
        const rows = yield* filterRows(p, yield* root.getHistory(p.projectId, { limit: SCAN_ROWS }), ok)
        const n = new Map<number, number>()
        for (const r of rows) n.set(r.snapshotId, (n.get(r.snapshotId) ?? 0) + 1)
        return n
      }))
      /**
       * The snapshot id `x` stands for: the newest visible snapshot at or below it, or 0 (the catalog's first
       * snapshot, before any history) when there is none. A hidden id and an id never used answer alike.
       */
      const bound = (x: number) =>
        Effect.gen(function*() {
          if (x === 0) return 0
          const own = yield* root.getSnapshotChanges(p.projectId, x).pipe(
            Effect.catchTag("SnapshotNotFound", () => Effect.succeed([] as ReadonlyArray<ChangeRow>))
          )
          if (yield* Effect.exists(own, (r) => ok(r.irodsPath))) return x
          let best = 0
          for (const id of (yield* counts).keys()) if (id <= x && id > best) best = id
          return best
        })
      return { ok, counts, bound }
    })

  return {
    caller,
    registerProject: (input) =>
      Effect.gen(function*() {
        const rootPath = yield* parseIrodsPath(input?.irodsPath)
        const lvl = yield* level(rootPath)
        if (lvl === undefined || lvl === "none" || !atLeast(lvl, "own")) {
          return yield* new PermissionDenied({ caller: me, irodsPath: rootPath, needed: "own" })
        }
        return yield* root.registerProject({ ...input, actor })
      }),
    getProject: project,
    findProjectByPath: (path) =>
      Effect.flatMap(root.findProjectByPath(path), (p) =>
        Effect.flatMap(visibleProject(p), (ok) => (ok ? Effect.succeed(p) : Effect.fail(new ProjectNotFound({ irodsPath: path }))))),
    listProjects: Effect.flatMap(root.listProjects, (ps) => Effect.filter(ps, visibleProject)),
    recordChanges,
    ingestChanges,
    recordRename,
    getAvus: (projectId, path) =>
      Effect.gen(function*() {
        const p = yield* project(projectId)
        const avus = yield* root.getAvus(projectId, path)
        return (yield* canRead(p, (yield* parseIrodsPath(path)))) ? avus : []
      }),
    getAvusAsOf: (projectId, path, at, options) =>
      Effect.gen(function*() {
        const p = yield* project(projectId)
        const parsed = Either.getOrUndefined(yield* Effect.either(parseIrodsPath(path)))
        const readable = parsed !== undefined && (yield* canRead(p, parsed))
        // A snapshot id is a bound: the newest snapshot at or below it that the caller may see. For a path it
        // cannot read the answer is empty whatever the id, so any existing one (0) lets the client check the rest.
        // A transaction time needs nothing: the snapshots it may fall on hold no row on a path the caller reads.
        const knownAt = options?.knownAt
        const asked = isSnapshotId(knownAt) ? { knownAt: readable ? yield* (yield* sight(p)).bound(knownAt) : 0 } : options
        const avus = yield* root.getAvusAsOf(projectId, path, at, asked)
        return readable ? avus : []
      }),
    getHistory: (projectId, filter) =>
      Effect.gen(function*() {
        const p = yield* project(projectId)
        if (filter?.irodsPath !== undefined) {
          const rows = yield* root.getHistory(projectId, filter)
          return (yield* canRead(p, yield* parseIrodsPath(filter.irodsPath))) ? rows : []
        }
        // Unfiltered: read pages of growing size until `limit` visible rows are found or the history ends.
        const limit = filter?.limit ?? 100
        let ask = limit
        while (true) {
          const rows = yield* root.getHistory(projectId, { ...filter, limit: ask })
          const visible = yield* filterRows(p, rows)
          if (visible.length >= limit || rows.length < ask || ask >= SCAN_ROWS) return visible.slice(0, limit)
          ask = Math.min(SCAN_ROWS, ask * 8)
        }
      }),
    listSnapshots: (projectId, options) =>
      Effect.gen(function*() {
        const p = yield* project(projectId)
        const limit = options?.limit ?? 100
        // Validates the limit the way the client does, then counts each snapshot's rows the caller may see.
        yield* root.listSnapshots(projectId, options)
        const all = yield* root.listSnapshots(projectId, { limit: SCAN_ROWS })
        const counts = yield* (yield* sight(p)).counts
        // Newest first. A parent is the nearest visible snapshot before (null for the first, as the client does);
        // a note is shown only when every row of its snapshot is visible (the client's count is of all its rows).
        const visible = all.filter((s) => counts.has(s.snapshotId))
        return visible.slice(0, limit).map((s, i): Snapshot => {
          const seen = counts.get(s.snapshotId)!
          return {
            ...s,
            changeCount: seen,
            note: seen === s.changeCount ? s.note : null,
            parentSnapshot: visible[i + 1]?.snapshotId ?? null
          }
        })
      }),
    diff: (projectId, a, b) =>
      Effect.gen(function*() {
        const p = yield* project(projectId)
        const { bound, ok } = yield* sight(p)
        // Ids are bounds. Arguments the client refuses go to it as they are, for its own error.
        if (!isSnapshotId(a) || !isSnapshotId(b) || a > b) {
          return yield* Effect.filter(yield* root.diff(projectId, a, b), (d) => ok(d.irodsPath))
        }
        const from = yield* bound(a)
        const to = a === b ? from : yield* bound(b)
        if (from === to) return []
        return yield* Effect.filter(yield* root.diff(projectId, from, to), (d) => ok(d.irodsPath))
      }),
    getSnapshotChanges: (projectId, snapshotId) =>
      Effect.gen(function*() {
        const p = yield* project(projectId)
        const rows = yield* filterRows(p, yield* root.getSnapshotChanges(projectId, snapshotId))
        // Nothing visible: exactly the client's answer for an id never used.
        if (rows.length === 0) return yield* new SnapshotNotFound({ projectId: p.projectId, snapshotId })
        return rows
      })
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
