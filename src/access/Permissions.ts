/**
 * `Permissions`: what a caller may do with an iRODS path now, as iRODS decides it. The native-protocol check asks
 * iRODS, as the service account, for the path's ACL and the caller's groups (a proxy check), and keeps the answers
 * for a short time (`ttlMs`): an ACL change in iRODS shows after at most that long, and at once for paths we
 * write (`invalidate`).
 *
 * Effective access follows iRODS 4.2.8: the highest level among the caller's own entry and those of every group
 * it is in (`public` included; `anonymous` is not in `public`). A rodsadmin may do anything. A path that does not
 * exist in iRODS has no level (`undefined`): callers decide what that means.
 */
import { Context, Effect, Layer, Option } from "effect"
import { AccessCheckFailed, InvalidChange } from "../core/errors.js"
import { type AccessLevel, IrodsClient } from "../irods/IrodsClient.js"

/** An authenticated iRODS identity, `user#zone`. */
export interface Caller {
  readonly user: string
  readonly zone: string
}

export const callerName = (c: Caller) => `${c.user}#${c.zone}`

/** `user#zone` (or `{ user, zone }`) → a Caller, or a typed error. */
export const parseCaller = (raw: unknown, field = "caller"): Effect.Effect<Caller, InvalidChange> =>
  Effect.suspend(() => {
    const text = typeof raw === "string" ? raw : raw !== null && typeof raw === "object"
      ? `${String((raw as any).user)}#${String((raw as any).zone)}`
      : undefined
    const m = text === undefined ? null : /^([^#\s/]{1,64})#([^#\s/]{1,64})$/.exec(text)
    return m === null
      ? Effect.fail(new InvalidChange({ field, reason: "must be an iRODS identity user#zone" }))
      : Effect.succeed({ user: m[1]!, zone: m[2]! })
  })

const RANK: Record<AccessLevel, number> = { read: 1, modify: 2, own: 3 }
export const atLeast = (have: AccessLevel | undefined, need: AccessLevel) =>
  have !== undefined && RANK[have] >= RANK[need]

export interface PermissionsService {
  /**
   * The caller's access to `path` now: a level, `"none"` when it has none, `undefined` when the path does not
   * exist in iRODS.
   */
  readonly levelOf: (caller: Caller, path: string) => Effect.Effect<AccessLevel | "none" | undefined, AccessCheckFailed>
  /** Forget cached answers about these paths (after our own writes) and about these callers. */
  readonly invalidate: (paths: ReadonlyArray<string>, callers?: ReadonlyArray<Caller>) => Effect.Effect<void>
}

export class Permissions extends Context.Tag("mesa-ducklake/Permissions")<Permissions, PermissionsService>() {}

interface Cached<A> {
  readonly value: A
  readonly until: number
}

/** The proxy check through our native client. `ttlMs` bounds how stale an answer may be (default 10 s). */
export const makeIrods = (options: { readonly ttlMs?: number } = {}) =>
  Effect.gen(function*() {
    const irods = yield* IrodsClient
    const ttl = options.ttlMs ?? 10_000
    const acls = new Map<string, Cached<Option.Option<ReadonlyArray<{ name: string; zone: string; group: boolean; access: AccessLevel }>>>>()
    const users = new Map<string, Cached<Option.Option<{ admin: boolean; groups: ReadonlySet<string> }>>>()
    const cached = <A, E>(map: Map<string, Cached<A>>, key: string, load: Effect.Effect<A, E>) =>
      Effect.suspend(() => {
        const hit = map.get(key)
        if (hit !== undefined && hit.until > Date.now()) return Effect.succeed(hit.value)
        return Effect.tap(load, (value) => Effect.sync(() => map.set(key, { value, until: Date.now() + ttl })))
      })
    const failed = (path: string) => (cause: unknown) => new AccessCheckFailed({ irodsPath: path, cause })

    const userOf = (c: Caller) =>
      cached(users, callerName(c), irods.userInfo(c.user, c.zone).pipe(
        Effect.map(Option.map((u) => ({ admin: u.type === "rodsadmin", groups: new Set(u.groups) }))),
        Effect.mapError(failed(`user ${callerName(c)}`))
      ))
    const aclOf = (path: string) =>
      cached(acls, path, irods.getAccess(path).pipe(
        Effect.map(Option.map((a) => a.entries.map((e) => ({ name: e.name, zone: e.zone, group: e.type === "rodsgroup", access: e.access })))),
        Effect.mapError(failed(path))
      ))

    return Permissions.of({
      levelOf: (caller, path) =>
        Effect.gen(function*() {
          const user = yield* userOf(caller)
          const acl = yield* aclOf(path)
          if (Option.isNone(acl)) return undefined
          if (Option.isNone(user)) return "none" as const
          if (user.value.admin) return "own" as const
          let best: AccessLevel | undefined
          for (const e of acl.value) {
            const mine = e.group ? user.value.groups.has(e.name) : e.name === caller.user && e.zone === caller.zone
            if (mine && !atLeast(best, e.access)) best = e.access
          }
          return best ?? "none"
        }).pipe(Effect.withSpan("Permissions.levelOf", { attributes: { path } })),
      invalidate: (paths, callers = []) =>
        Effect.sync(() => {
          for (const p of paths) acls.delete(p)
          for (const c of callers) users.delete(callerName(c))
        })
    })
  })

export const layerIrods = (options: { readonly ttlMs?: number } = {}) => Layer.effect(Permissions, makeIrods(options))
