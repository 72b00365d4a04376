/**
 * Renames and lineage (README "Renames keep one history"): recording a move as one snapshot whose AVUs leave the
 * old path and arrive at the new one, and following recorded renames backwards so reads by the new path include the
 * object's time at its earlier paths.
 *
 * Owns: `recordRename` (the write), `pathAt` and `lineageOf` (what reads ask of the renames).
 * May call: context.ts, write.ts (`writeSnapshot`).
 */
import { Effect } from "effect"
import { createHash } from "node:crypto"
import type { Rename } from "../catalog/Catalog.js"
import { type ChangeRow, isWithin, parseIrodsPath, parseTimestamp, type Project, type RenameInput } from "../core/domain.js"
import { ProjectArchived } from "../core/errors.js"
import { type ClientContext, type ClientCore, FUTURE_SKEW_MS, invalid, textArg } from "./context.js"
import { writeSnapshot } from "./write.js"

const renamedUnder = (path: string, r: Rename) =>
  r.targetType === "collection" ? isWithin(path, r.toPath) : path === r.toPath
const renamedBack = (path: string, r: Rename) => r.fromPath + path.slice(r.toPath.length)

/** Where the object now at `path` was at valid time `at` (following recorded renames backwards). */
export const pathAt = (ctx: ClientCore, p: Project, path: string, at: Date, maxSnapshot?: number) =>
  Effect.map(ctx.catalog.renames(p, maxSnapshot), (renames) => {
    let cur = path
    for (const r of renames) if (r.ts > at && renamedUnder(cur, r)) cur = renamedBack(cur, r)
    return cur
  })

/** The paths an object had, newest first: `[path, until]` pairs (the earlier paths hold rows before `until`). */
export const lineageOf = (ctx: ClientCore, p: Project, path: string) =>
  Effect.map(ctx.catalog.renames(p), (renames) => {
    const out: Array<{ readonly path: string; readonly before: Date | undefined }> = [{ path, before: undefined }]
    let cur = path
    let bound = Number.POSITIVE_INFINITY
    for (const r of renames) {
      if (r.ts.getTime() < bound && renamedUnder(cur, r)) {
        cur = renamedBack(cur, r)
        bound = r.ts.getTime()
        out.push({ path: cur, before: r.ts })
      }
    }
    return out
  })

export const recordRename = Effect.fn("DuckLakeClient.recordRename")(function*(ctx: ClientContext, input: RenameInput) {
  const { catalog } = ctx
  const actor = yield* textArg("actor", input?.actor, { optional: false })
  const note = yield* textArg("note", input?.note, { optional: true })
  const key = yield* textArg("idempotencyKey", input?.idempotencyKey, { optional: true })
  const source = (yield* textArg("source", input?.source, { optional: true })) ?? "mesa-ducklake:rename"
  const from = yield* parseIrodsPath(input?.from, "from")
  const to = yield* parseIrodsPath(input?.to, "to")
  const targetType = input?.targetType ?? "data_object"
  if (targetType !== "data_object" && targetType !== "collection") {
    return yield* invalid("targetType", "a rename moves a data_object or a collection")
  }
  if (input.objectId !== undefined && !(Number.isSafeInteger(input.objectId) && input.objectId > 0)) {
    return yield* invalid("objectId", "must be a positive integer")
  }
  const ts = input?.ts === undefined ? null : yield* parseTimestamp(input.ts, "ts")
  if (ts !== null && ts.getTime() > Date.now() + FUTURE_SKEW_MS) return yield* invalid("ts", "is in the future")
  if (from === to) return yield* invalid("to", "is the same path as from")
  if (targetType === "collection" && isWithin(to, from)) return yield* invalid("to", "a collection cannot move into itself")
  const p = yield* ctx.project(input.projectId)
  if (p.status === "archived") return yield* new ProjectArchived({ projectId: p.projectId })
  for (const [field, path] of [["from", from], ["to", to]] as const) {
    if (!isWithin(path, p.irodsPath) || path === p.irodsPath) {
      return yield* invalid(field, `${path} is not inside project root ${p.irodsPath}`)
    }
    if (isWithin(path, p.ducklakePath)) return yield* invalid(field, "the lake's own files are not tracked")
  }
  // The AVUs to carry are read under the writer lock (with the index caught up first if a bulk ingest left it
  // behind); a rename that carries nothing records nothing.
  const carried = Effect.map(
    targetType === "collection" ? catalog.currentRowsUnder(p, from) : catalog.currentRows(p, [from]),
    (rows) => rows.filter((r) => r.op === "add")
  )
  const hash = createHash("sha256").update(JSON.stringify({ rename: { from, to, targetType, actor, note, ts, source } }))
    .digest("hex")
  return yield* writeSnapshot(ctx, p, {
    actor: actor!,
    note,
    key,
    hash,
    build: Effect.map(carried, (adds) => (snapshotId: number, clock: Date) => {
      const when = ts ?? clock
      const rows: Array<ChangeRow> = []
      const row = (r: (typeof adds)[number], path: string, op: "add" | "delete"): ChangeRow => ({
        snapshotId,
        changeSeq: rows.length,
        ts: when,
        irodsPath: path,
        targetType: r.targetType,
        objectId: r.irodsPath === from ? input.objectId ?? r.objectId : r.objectId,
        attribute: r.attribute,
        value: r.value,
        unit: r.unit,
        op,
        actor: actor!,
        source,
        viaTicket: null,
        ruleInvocation: null,
        onBehalfOf: null
      })
      for (const r of adds) rows.push(row(r, r.irodsPath, "delete"))
      for (const r of adds) rows.push(row(r, to + r.irodsPath.slice(from.length), "add"))
      const rename: Rename = {
        snapshotId,
        ts: when,
        fromPath: from,
        toPath: to,
        targetType,
        objectId: input.objectId ?? null,
        actor: actor!
      }
      return { rows, unmatchedDeletes: 0, renames: [rename] }
    })
  })
})
