/**
 * The current-state index (`mesa_current_avus`) catching up with snapshots a bulk ingest committed without it (see
 * README "Bulk ingest and the current-state index"). Every writer calls `catchUp` under the lock before it reads the
 * state; `catchUpIndex` is the public method.
 *
 * Owns: `catchUp`, `catchUpIndex`.
 * May call: context.ts, files.ts (the snapshots' rows are read back from their Parquet files).
 */
import { Effect } from "effect"
import type { Project } from "../core/domain.js"
import type { ClientCore } from "./context.js"
import { readFiles } from "./files.js"

/** Snapshots' worth of change rows a catch-up applies per transaction. */
const CATCH_UP_ROWS = 20_000

/**
 * Catches the current-state index up with the committed snapshots a bulk ingest left out of it: their rows are
 * read from their Parquet files (through the cache) and applied in transactions of about CATCH_UP_ROWS rows, each
 * moving the catalog's mark forward. Call under the writer lock. Returns how many snapshots it applied.
 */
export const catchUp = (ctx: ClientCore, p: Project) =>
  Effect.gen(function*() {
    const { catalog, duck } = ctx
    let through = yield* catalog.indexThrough(p)
    let applied = 0
    while (through !== null) {
      const after = yield* catalog.snapshotsAfter(p, through)
      let end = 0
      let rows = 0
      while (end < after.length && (end === 0 || rows + after[end]!.changeCount <= CATCH_UP_ROWS)) {
        rows += after[end]!.changeCount
        end++
      }
      const last = end === 0 ? through : after[end - 1]!.snapshotId
      const range = { afterSnapshot: through, maxSnapshot: last }
      const changes = end === 0
        ? []
        : yield* readFiles(ctx, p, range, (local) => duck.changes(local, range, { order: "oldest" }))
      yield* catalog.applyIndex(p, changes, last)
      applied += end
      through = end >= after.length ? null : last
    }
    return applied
  }).pipe(Effect.withSpan("index.catchUp", { attributes: { projectId: p.projectId } }))

export const catchUpIndex = Effect.fn("DuckLakeClient.catchUpIndex")(function*(ctx: ClientCore, projectId: string) {
  const p = yield* ctx.project(projectId)
  if ((yield* ctx.catalog.indexThrough(p)) === null) return 0
  return yield* ctx.catalog.withWriteLock(p.projectId, catchUp(ctx, p))
})
