/**
 * Recovery of writes whose writer died (README "Write protocol"): each write-ahead row is re-read under the
 * project's writer lock and then dropped (already committed), abandoned (a later snapshot was committed meanwhile),
 * pushed and committed, or failed; then commit markers and the chain anchor that never landed are written.
 *
 * Owns: `recoverPendingPushes`, `recoverOne`, `commitFile` (committing a pushed file from the file itself).
 * May call: context.ts, files.ts (`push`), markers.ts (`writeMarker`, `anchorHead`).
 */
import { Effect, Option } from "effect"
import * as os from "node:os"
import type { PendingWrite } from "../catalog/Catalog.js"
import type { Project, RecoveryReport } from "../core/domain.js"
import type { CatalogUnavailable } from "../core/errors.js"
import { checksumFile, formatIrodsChecksum, parseIrodsChecksum } from "../storage/LakeStorage.js"
import type { ClientCore } from "./context.js"
import { push } from "./files.js"
import { anchorHead, writeMarker } from "./markers.js"

export const recoverPendingPushes = Effect.fn("DuckLakeClient.recoverPendingPushes")(function*(
  ctx: ClientCore,
  options?: { readonly maxAttempts?: number; readonly limit?: number }
) {
  const { catalog } = ctx
  const maxAttempts = options?.maxAttempts ?? 5
  const pending = yield* catalog.pendingWrites({ limit: options?.limit ?? 100 })
  const report = { pushed: 0, committed: 0, failed: 0, orphaned: 0, missingLocal: 0, markers: 0 }
  for (const w of pending) {
    const p = yield* catalog.getProject(w.projectId).pipe(Effect.catchTag("ProjectNotFound", () => Effect.succeed(null)))
    if (p === null) continue
    // Re-read the row under the lock: the write may have finished, or failed (and told its caller so), while this
    // recovery waited for the lock; acting on the row as first listed could commit a failed write.
    yield* catalog.withWriteLock(
      p.projectId,
      Effect.flatMap(catalog.pendingWrite(p.projectId, w.snapshotId), (current) =>
        Option.isNone(current) || current.value.state === "failed"
          ? Effect.void
          : recoverOne(ctx, p, current.value, maxAttempts, report))
    )
  }
  // Committed snapshots whose writer died before their marker landed. One broken project does not stop the rest.
  for (const p of yield* catalog.listProjects) {
    yield* Effect.gen(function*() {
      for (const id of yield* catalog.missingMarkers(p, options?.limit ?? 100)) {
        yield* writeMarker(ctx, p, id)
        report.markers++
      }
      yield* anchorHead(ctx, p)
    }).pipe(
      Effect.catchAll((e) =>
        e._tag === "CatalogUnavailable"
          ? Effect.fail(e)
          : Effect.logWarning(`commit markers of project ${p.projectId} still missing`, e)
      )
    )
  }
  yield* Effect.annotateCurrentSpan(report)
  if (pending.length > 0) yield* Effect.logInfo("recovery finished", report)
  return report
})

/** Settles one write-ahead row. Call under the project's writer lock. */
const recoverOne = (
  ctx: ClientCore,
  p: Project,
  w: PendingWrite,
  maxAttempts: number,
  report: Record<keyof RecoveryReport, number>
) =>
  Effect.gen(function*() {
    const { cache, catalog, storage } = ctx
    if (w.state === "committed" || (yield* catalog.isCommitted(p, w.snapshotId))) {
      yield* catalog.dropPending(p.projectId, w.snapshotId)
      return
    }
    // Committing it now would put it after a later snapshot: it is abandoned, and its file reported.
    if (w.snapshotId <= (yield* catalog.latestSnapshot(p))) {
      yield* catalog.failPending(p.projectId, w.snapshotId, "superseded by a later snapshot", true)
      report.orphaned++
      return
    }
    const fail = (e: { readonly message: string; readonly terminal?: boolean }) =>
      Effect.gen(function*() {
        const terminal = e.terminal === true || w.attempts + 1 >= maxAttempts
        yield* catalog.failPending(p.projectId, w.snapshotId, e.message, terminal)
        if (terminal) report.failed++
      })
    const attempt = Effect.gen(function*() {
      // Is a verified copy already in storage? Verified against the checksum the row notes (a recovery that pushed
      // it), or else against the local file (the writer died between its push and its commit, when the row notes
      // no checksum): a stored copy with the local file's checksum is the same file, and needs no second push.
      const remote = yield* storage.stat(w.remotePath)
      const haveLocal = yield* cache.has(w.localFile)
      let checksum = w.checksum
      let stored = false
      const sum = Option.isSome(remote) && (w.checksum !== null || haveLocal)
        ? yield* storage.checksum(w.remotePath).pipe(Effect.option)
        : Option.none()
      if (Option.isSome(sum) && w.checksum !== null) {
        const expected = parseIrodsChecksum(w.checksum) ?? { algorithm: "sha256", hex: w.checksum.replace(/^sha2:/, "") }
        stored = formatIrodsChecksum(sum.value) === formatIrodsChecksum(expected)
      }
      if (Option.isSome(sum) && !stored && haveLocal) {
        const local = yield* Effect.tryPromise(() => checksumFile(w.localFile, sum.value.algorithm)).pipe(Effect.option)
        if (Option.isSome(local) && formatIrodsChecksum(local.value) === formatIrodsChecksum(sum.value)) {
          stored = true
          checksum = formatIrodsChecksum(sum.value)
        }
      }
      if (!stored) {
        if (!haveLocal) {
          report.missingLocal++
          // We hold the project's lock, which its writer held from reservation to commit: that writer is done with
          // this row. On its own host its file would be in this cache; with neither a local file nor a verified
          // stored copy nothing can finish it, so it fails at once. A row of another host may still be finished
          // by a recovery there (its cache is there): it is retried.
          return yield* Effect.fail({
            message: `local file ${w.localFile} is missing and nothing verified is stored`,
            terminal: w.host === os.hostname()
          })
        }
        const put = yield* push(ctx, w)
        checksum = formatIrodsChecksum(put.checksum)
        yield* catalog.markPushed(p.projectId, w.snapshotId, checksum)
        report.pushed++
      }
      const file = haveLocal ? w.localFile : yield* Effect.gen(function*() {
        const direct = storage.localPath(w.remotePath)
        if (Option.isSome(direct)) return direct.value
        yield* storage.get(w.remotePath, w.localFile)
        return w.localFile
      })
      yield* commitFile(ctx, p, w, file, checksum!)
      yield* catalog.dropPending(p.projectId, w.snapshotId)
      report.committed++
      yield* writeMarker(ctx, p, w.snapshotId).pipe(
        Effect.tap(() => Effect.sync(() => report.markers++)),
        Effect.catchAll((e) => Effect.logWarning("commit marker deferred", e))
      )
    })
    yield* attempt.pipe(
      Effect.catchAll((e: any) =>
        e?._tag === "CatalogUnavailable"
          ? Effect.fail(e as CatalogUnavailable)
          : fail({ message: String(e?.message ?? e), terminal: e?.terminal === true })
      )
    )
  })

/** Commit a pushed file: read what the catalog needs from the file itself, then one transaction. */
const commitFile = (ctx: ClientCore, p: Project, w: PendingWrite, file: string, checksum: string) =>
  Effect.gen(function*() {
    const described = yield* ctx.duck.describeFile(file)
    const rows = yield* ctx.duck.changes([file], {}, { order: "oldest" })
    // Rows fixed by the file need no state: behind an unfinished bulk ingest's index, this one joins the catch-up.
    const deferIndex = (yield* ctx.catalog.indexThrough(p)) !== null
    return yield* ctx.catalog.commitSnapshot(p, w, { ...described, fileName: w.fileName, checksum }, rows, [], { deferIndex })
  })
