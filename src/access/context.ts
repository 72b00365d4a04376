/**
 * One caller's standing, shared by every method of its view: the permission rule (what a path needs, a path gone
 * from iRODS taking own on the project root), project visibility, the stamping of recorded changes (actor, on
 * behalf of, source) and row filtering by read access.
 */
import { Effect } from "effect"
import type { ChangeRow, Project } from "../core/domain.js"
import { decodeChange } from "../core/domain.js"
import type { DuckLakeClientService } from "../client/DuckLakeClient.js"
import { PermissionDenied, ProjectNotFound } from "../core/errors.js"
import type { AccessLevel } from "../irods/IrodsClient.js"
import { atLeast, type Caller, callerName, type PermissionsService } from "./Permissions.js"
import type { Agent } from "./types.js"

/** What each method of a caller's view needs: the client, the permissions, the caller and the rules over them. */
export type CallerContext = ReturnType<typeof makeCallerContext>

/** The rules of one caller (optionally through an agent) over the client. */
export const makeCallerContext = (
  root: DuckLakeClientService,
  perms: PermissionsService,
  caller: Caller,
  agent: Agent | undefined
) => {
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

  /** The rows the caller may read. */
  const filterRows = (p: Project, rows: ReadonlyArray<ChangeRow>, ok = reader(p)) =>
    Effect.gen(function*() {
      const out: Array<ChangeRow> = []
      for (const r of rows) if (yield* ok(r.irodsPath)) out.push(r)
      return out
    })

  return {
    root,
    perms,
    caller,
    agent,
    me,
    actor,
    level,
    canRead,
    reader,
    require,
    visibleProject,
    project,
    stamp,
    checkBatch,
    filterRows
  }
}
