/**
 * What a committed snapshot leaves in storage besides its file: the commit marker (`_mesa_log/snapshot_<id>.json`,
 * what a rebuild from storage trusts), a compaction's marker, and the hash chain's head anchored on the project root.
 *
 * Owns: `writeMarker`, `writeCompactionMarker`, `anchorHead`.
 * May call: context.ts, files.ts (`putMarker`) and the services.
 */
import { Effect, Option } from "effect"
import { ANCHOR_ATTRIBUTE, formatAnchor } from "../catalog/chain.js"
import type { Project } from "../core/domain.js"
import { compactionMarkerName, snapshotMarkerName } from "../core/layout.js"
import type { ClientCore } from "./context.js"
import { putMarker } from "./files.js"

/**
 * Writes the commit marker of a committed snapshot and notes it in the catalog. A rebuild from storage trusts only
 * files with a marker; recovery writes the ones a dying writer left out.
 */
export const writeMarker = (ctx: ClientCore, p: Project, snapshotId: number) =>
  Effect.gen(function*() {
    const record = yield* ctx.catalog.commitRecord(p, snapshotId)
    yield* putMarker(ctx, p, snapshotMarkerName(snapshotId), record)
    yield* ctx.catalog.markerWritten(p, snapshotId)
  }).pipe(Effect.withSpan("write.marker"))

/** The marker of a compaction's snapshot: what it merged, for a rebuild once the originals are gone. */
export const writeCompactionMarker = (
  ctx: ClientCore,
  p: Project,
  record: Record<string, unknown> & { readonly snapshotId: number }
) => putMarker(ctx, p, compactionMarkerName(record.snapshotId), record)

/**
 * Stores the hash chain's head (`<snapshot id>:<hash>`) on the project root, where the storage can (an AVU on
 * iRODS), so the chain is anchored outside the catalog. Writes only when the stored value differs from what this
 * client last wrote (so an unchanged head costs nothing).
 */
export const anchorHead = (ctx: ClientCore, p: Project) =>
  Effect.gen(function*() {
    const anchor = ctx.storage.anchor
    if (anchor === undefined) return
    const [head] = yield* ctx.catalog.withSql((sql) =>
      sql<any>`SELECT snapshot_id::text AS id, record_hash FROM ${sql(p.metadataSchema)}.mesa_chain
               ORDER BY snapshot_id DESC LIMIT 1`
    )
    if (head === undefined) return
    const value = formatAnchor(Number(head.id), head.record_hash)
    if (ctx.anchored.get(p.projectId) === value) return
    const stored = yield* anchor.read(p.irodsPath, ANCHOR_ATTRIBUTE)
    if (Option.getOrUndefined(stored) !== value) yield* anchor.write(p.irodsPath, ANCHOR_ATTRIBUTE, value)
    ctx.anchored.set(p.projectId, value)
  }).pipe(Effect.withSpan("write.anchor"))
