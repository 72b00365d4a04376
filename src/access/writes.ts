/**
 * The writing methods of a caller's view: each path needs modify (own for a path gone from iRODS), registering a
 * project needs own on its root, every change is stamped with the caller (or agent) as actor, and the ACLs the
 * write may have changed are forgotten afterwards. A streamed ingest is checked as the changes pass.
 */
import { Effect, Either } from "effect"
import { decodeChange, decodeChangeFast, parseIrodsPath } from "../core/domain.js"
import { type AccessCheckFailed, InvalidChange, PermissionDenied } from "../core/errors.js"
import { atLeast } from "./Permissions.js"
import type { CallerContext } from "./context.js"
import type { CallerView } from "./types.js"

/** Registers a project the caller owns the root of. */
export const registerProject = ({ root, me, actor, level }: CallerContext): CallerView["registerProject"] => (input) =>
  Effect.gen(function*() {
    const rootPath = yield* parseIrodsPath(input?.irodsPath)
    const lvl = yield* level(rootPath)
    if (lvl === undefined || lvl === "none" || !atLeast(lvl, "own")) {
      return yield* new PermissionDenied({ caller: me, irodsPath: rootPath, needed: "own" })
    }
    return yield* root.registerProject({ ...input, actor })
  })

/** Records a batch once the caller may modify every path in it. */
export const recordChanges = (
  { root, perms, caller, me, actor, project, checkBatch, stamp }: CallerContext
): CallerView["recordChanges"] => (input) =>
  Effect.gen(function*() {
    const p = yield* project(input?.projectId)
    const raw = Array.isArray(input?.changes) ? input.changes : undefined
    if (raw === undefined) return yield* new InvalidChange({ field: "changes", reason: "must be an array" })
    const paths = yield* checkBatch(p, raw, 0)
    const r = yield* root.recordChanges({ ...input, actor, changes: raw.map(stamp) })
    yield* perms.invalidate(paths, [caller])
    return r
  }).pipe(Effect.withSpan("DuckLakeAccess.recordChanges", { attributes: { caller: me } }))

/** Streams changes into the client, checking each new path as it passes; a denial stops the ingest. */
export const ingestChanges = (
  { root, perms, caller, actor, project, require, stamp }: CallerContext
): CallerView["ingestChanges"] => (input) =>
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

/** Records a rename once the caller may modify both the old and the new path. */
export const recordRename = (
  { root, perms, caller, agent, actor, project, require }: CallerContext
): CallerView["recordRename"] => (input) =>
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
