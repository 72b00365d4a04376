/**
 * The write protocol, top to bottom (README "Write protocol"). Per snapshot, under the project's writer lock:
 *   idempotency check → reserve the snapshot id and clock, with a write-ahead row → build the rows against the state
 *   the lock guarantees → write the Parquet file locally → push it into the project's `.mesa/ducklake/` collection
 *   (checksum verified) → commit the DuckLake rows, the current-state index and the WAL state in one transaction →
 *   queue the commit marker, maybe auto-compact.
 * A failure before the commit leaves nothing visible; `recoverPendingPushes` (recovery.ts) finishes writes whose
 * process died. `recordChanges` writes one batch; bulk ingest (ingest.ts) and renames (renames.ts) use
 * `writeSnapshot` with their own row builders.
 *
 * Owns: `writeSnapshot`, `prepareBatch`, `recordChanges`, `expandChanges`, `contentHash`, `resolveObjectIds`, the
 * snapshot file's metadata, `RecordInput`, `RecordError`.
 * May call: context.ts, files.ts (`push`), currentIndex.ts (`catchUp`), compaction.ts (`maybeAutoCompact`), and the
 * background's marker queue.
 */
import { Effect, Option } from "effect"
import { createHash, randomBytes } from "node:crypto"
import * as fs from "node:fs/promises"
import type { PendingWrite, Rename, Reservation } from "../catalog/Catalog.js"
import type { IndexView, ReserveInput } from "../catalog/types.js"
import { COLUMNS_METADATA, TABLE_ID, TABLE_NAME } from "../catalog/ducklakeSchema.js"
import { type AvuChange, type ChangeRow, decodeChange, MAX_BATCH, type Project } from "../core/domain.js"
import {
  type ChecksumMismatch,
  IdempotencyConflict,
  InvalidChange,
  type LakeReadError,
  LakeWriteError,
  ProjectArchived,
  type ProjectNotFound,
  type StorageError
} from "../core/errors.js"
import { paddedId } from "../core/layout.js"
import { SMALL_BATCH_MAX_ROWS } from "../duckdb/snapshotFile.js"
import { formatIrodsChecksum } from "../storage/LakeStorage.js"
import { maybeAutoCompact } from "./compaction.js"
import { type CatalogFailure, type ClientContext, type ClientCore, FUTURE_SKEW_MS, invalid, textArg } from "./context.js"
import { catchUp } from "./currentIndex.js"
import { push } from "./files.js"

export interface RecordInput {
  readonly projectId: string
  /** Who made this batch (the snapshot's author); each change keeps its own actor too. */
  readonly actor: string
  readonly changes: ReadonlyArray<unknown>
  /** The snapshot's commit message. */
  readonly note?: string
  /** Retries with the same key and the same batch return the first snapshot; a different batch is a conflict. */
  readonly idempotencyKey?: string
}

export type RecordError =
  | InvalidChange
  | ProjectNotFound
  | ProjectArchived
  | IdempotencyConflict
  | CatalogFailure
  | LakeWriteError
  | ChecksumMismatch
  | StorageError
  | LakeReadError

/** How a write builds its rows once its snapshot id and clock are known. */
export type Builder = (snapshotId: number, clock: Date) => {
  readonly rows: ReadonlyArray<ChangeRow>
  readonly unmatchedDeletes: number
  readonly renames: ReadonlyArray<Rename>
}

/** One snapshot to write: who and why, the idempotency key and digest, and how its rows are built. */
export interface SnapshotWrite<E> {
  readonly actor: string
  readonly note: string | null
  readonly key: string | null
  readonly hash: string
  /**
   * Reads what the rows depend on (under the lock, concurrently with the reservation) and returns how to build
   * them once the snapshot id and clock are known.
   */
  readonly build: Effect.Effect<Builder, E> | ((w: Reservation) => Effect.Effect<Builder, E>)
  /** Leave the current-state index behind (bulk ingest; see `Catalog.commitSnapshot`). */
  readonly deferIndex?: boolean
  /**
   * The read `build` makes, made early: before the writer lock, beside the reservation that takes it, with the view
   * of the catalog it read (none when it read nothing). Its builder is used when the reservation finds that view
   * unchanged under the lock (`IndexView`); otherwise `build` runs under the lock. Not used with a plan or a key.
   */
  readonly buildEarly?: Effect.Effect<{ readonly builder: Builder; readonly view: IndexView | undefined }, E>
  /**
   * Plan the reservation so the file is built while the reservation is made (default true). Worth a round trip only
   * when the file takes longer to write than that: not for a small batch, which our own Parquet writer writes in a
   * fraction of a millisecond.
   */
  readonly plan?: boolean
}

/** Whether rows read in `view` are the rows the reservation's lock guarantees (see `IndexView`). */
const stillHolds = (view: IndexView | undefined, w: Reservation) =>
  view === undefined || (view.through === null && w.indexThrough === null && view.latest === w.previousSnapshot)

/**
 * The write protocol for one snapshot, under the project's writer lock: idempotency check, reserve, build the rows
 * (with the state the lock guarantees), write, push, verify, commit, marker. Used by recordChanges, ingestChanges
 * and recordRename.
 */
export const writeSnapshot = <E extends { readonly _tag: string; readonly message: string }>(
  ctx: ClientContext,
  p: Project,
  input: SnapshotWrite<E>
) => {
  const { cache, catalog, probe, storage } = ctx
  const { actor, build, hash, key, note } = input
  const deferIndex = input.deferIndex === true
  // A write session: the writer lock is taken with the reservation (or before, when a key or a plan needs it) and
  // released with the commit, each in the same round trip.
  return catalog.writeSession(p.projectId, (session) => Effect.gen(function*() {
    if (key !== null) {
      yield* catalog.lockSession(session)
      const replay = yield* replayed(ctx, p, key, hash)
      if (replay !== undefined) return replay
    }
    const reserveInput = {
      fileSuffix: randomBytes(4).toString("hex"),
      localDir: `${cache.directory}/${p.projectId}`,
      actor,
      note,
      idempotencyKey: key,
      contentHash: hash
    }
    const reserve = (input: ReserveInput) =>
      catalog.reserveSnapshot(p, input, session).pipe(Effect.withSpan("write.reserve"))
    // The usual case (the rows depend only on state read under the lock): the reservation's id and clock are
    // planned first (a read), so the Parquet file is built while the reservation is made. The file is pushed only
    // once the reservation is committed; a reservation that does not match the plan (something changed meanwhile)
    // discards the early file and builds again. A small batch is not planned (`SnapshotWrite.plan`): its state is
    // read beside the reservation, before the lock if it can be (`SnapshotWrite.buildEarly`).
    const usePlan = Effect.isEffect(build) && input.plan !== false
    if (usePlan) yield* catalog.lockSession(session)
    const early = usePlan ? yield* planned(ctx, p, build as Effect.Effect<Builder, E>, reserveInput, reserve) : undefined
    const beside: Effect.Effect<{ readonly builder: Builder; readonly view: IndexView | undefined } | undefined, E> =
      !session.held() && input.buildEarly !== undefined
        ? input.buildEarly
        : Effect.isEffect(build)
        ? Effect.map(build, (builder) => ({ builder, view: undefined }))
        : Effect.succeed(undefined)
    const [w, prepared] = early !== undefined
      ? [early.w, undefined]
      : yield* Effect.all([reserve(reserveInput), Effect.either(beside)], { concurrency: 2 })
    yield* Effect.annotateCurrentSpan({ snapshotId: w.snapshotId })
    yield* probe("reserved", w.snapshotId)
    // From here a failure must leave the snapshot failed (never committed later) and its file removed.
    const attempt = Effect.gen(function*() {
      const made = early?.made !== undefined ? yield* early.made : yield* Effect.gen(function*() {
        const builder: Builder = !Effect.isEffect(build)
          // Builds that depend on the reservation (bulk ingest) run after it.
          ? yield* build(w)
          : w.indexThrough !== null
          // A bulk ingest left the index behind: catch it up (we hold the lock), then read the state again.
          ? yield* Effect.zipRight(catchUp(ctx, p), build)
          // Read beside the reservation, in the view the lock guarantees: used as read.
          : prepared !== undefined && prepared._tag === "Right" && prepared.right !== undefined &&
              stillHolds(prepared.right.view, w)
          ? prepared.right.builder
          // Planned but not reserved as planned, read before the lock in a view that no longer holds, or a read
          // that failed: the state is read again, under the lock.
          : yield* build
        return yield* makeFile(ctx, p, w, builder)
      })
      if (made === undefined) return undefined
      const { renames, rows, unmatchedDeletes, written } = made
      // The file is private already (0600: our writer creates it so, the DuckDB path sets it): no chmod round trip.
      yield* probe("parquet-written", w.snapshotId)
      yield* cache.added(written.fileSizeBytes)
      const put = yield* push(ctx, w).pipe(Effect.withSpan("write.push"))
      yield* probe("pushed", w.snapshotId)
      const checksum = formatIrodsChecksum(put.checksum)
      // Straight to the commit: the write-ahead row stays 'pending' until then. A process that dies here leaves
      // its file in storage and in the local cache (pinned by the row); recovery commits it (pushing it again
      // unless the stored copy has the local file's checksum). The commit releases the writer lock once committed.
      yield* catalog.commitSnapshot(p, w, { ...written, fileName: w.fileName, checksum }, rows, renames, {
        deferIndex,
        basis: w.basis,
        session
      }).pipe(Effect.withSpan("write.commit"))
      yield* probe("committed", w.snapshotId)
      return { rows, unmatchedDeletes }
    })
    const done = yield* attempt.pipe(
      Effect.tapError((e) =>
        e._tag === "CatalogUnavailable"
          // The outcome of a commit the catalog never acknowledged is settled by recovery.
          ? Effect.void
          : Effect.zipRight(
            catalog.failPending(p.projectId, w.snapshotId, e.message, true).pipe(Effect.ignore),
            storage.remove(w.remotePath).pipe(Effect.ignore)
          )
      )
    )
    if (done === undefined) {
      // Nothing was written: the write-ahead row goes (its id is never reused, like a failed write's).
      yield* catalog.dropPending(p.projectId, w.snapshotId)
      return { recorded: false as const, reason: "nothing-to-record" as const }
    }
    const { rows, unmatchedDeletes } = done
    // The snapshot is committed (and the lock released): its marker is written in the background (by recovery if it
    // never lands).
    yield* ctx.background.enqueueMarker(p, w.snapshotId)
    // A bulk ingest compacts (if due) once it has finished, after its index catch-up.
    if (!deferIndex) yield* maybeAutoCompact(ctx, p, w.snapshotId)
    if (yield* cache.overCap) {
      yield* cache.evict(yield* catalog.pinnedLocalFiles.pipe(Effect.orElseSucceed(() => new Set([w.localFile])))).pipe(
        Effect.withSpan("write.evictCache")
      )
    }
    return {
      recorded: true as const,
      projectId: p.projectId,
      snapshotId: w.snapshotId,
      parquetFile: `main/${TABLE_NAME}/${w.fileName}`,
      changeCount: rows.length,
      unmatchedDeletes,
      replayed: false
    }
  }))
}

/** The rows a builder makes for the reservation, and their Parquet file written locally (none if no rows). */
const makeFile = (ctx: ClientContext, p: Project, w: PendingWrite, builder: Builder) =>
  Effect.gen(function*() {
    const { renames, rows, unmatchedDeletes } = builder(w.snapshotId, w.clock)
    // A batch that changes nothing (a `set` to the only value there already) records no snapshot.
    if (rows.length === 0) return undefined
    yield* ctx.cache.pathFor(p.projectId, w.fileName)
    const metadata = {
      ...fileMetadata(p, w, rows.length),
      ...(renames.length === 0 ? {} : { renames: JSON.stringify(renames) })
    }
    const written = yield* ctx.duck.writeSnapshotFile(w.localFile, rows, p.projectId, metadata)
      .pipe(Effect.mapError((e) =>
        new LakeWriteError({ projectId: p.projectId, snapshotId: w.snapshotId, step: "write-parquet", cause: e })
      ), Effect.withSpan("write.parquet"))
    return { renames, rows, unmatchedDeletes, written }
  })

/**
 * Plans the reservation, then makes the reservation and the Parquet file at once (see `writeSnapshot`). Undefined
 * when the plan cannot be used (the index lags, the state could not be read): the caller reserves as usual. The
 * file's outcome (`made`) is settled inside the write's attempt, so its failure fails the reserved write.
 */
const planned = <E, F>(
  ctx: ClientContext,
  p: Project,
  build: Effect.Effect<Builder, E>,
  input: ReserveInput,
  reserve: (input: ReserveInput) => Effect.Effect<Reservation, F>
) =>
  Effect.gen(function*() {
    const [plan, prepared] = yield* Effect.all([
      ctx.catalog.planReservation(p).pipe(Effect.withSpan("write.plan")),
      Effect.either(build)
    ], { concurrency: 2 })
    if (plan.indexThrough !== null || plan.snapshotId < 1 || prepared._tag === "Left") return undefined
    const fileName = `snapshot_${paddedId(plan.snapshotId)}_${input.fileSuffix}.parquet`
    const guess: PendingWrite = {
      projectId: p.projectId,
      snapshotId: plan.snapshotId,
      state: "pending",
      localFile: `${input.localDir}/${fileName}`,
      remotePath: `${p.ducklakePath}/main/${TABLE_NAME}/${fileName}`,
      fileName,
      clock: plan.clock,
      actor: input.actor,
      note: input.note,
      idempotencyKey: input.idempotencyKey,
      contentHash: input.contentHash,
      checksum: null,
      attempts: 0,
      host: ""
    }
    const [reserved, made] = yield* Effect.all([
      Effect.either(reserve({ ...input, clock: plan.clock })),
      Effect.either(makeFile(ctx, p, guess, prepared.right))
    ], { concurrency: 2 })
    const dropFile = Effect.promise(() => fs.rm(guess.localFile, { force: true }))
    if (reserved._tag === "Left") return yield* Effect.zipRight(dropFile, Effect.fail(reserved.left))
    const w = reserved.right
    if (w.snapshotId !== guess.snapshotId || w.clock.getTime() !== guess.clock.getTime() || w.fileName !== fileName) {
      yield* dropFile
      return { w, made: undefined }
    }
    return { w, made: made._tag === "Right" ? Effect.succeed(made.right) : Effect.fail(made.left) }
  })

/**
 * The first snapshot recorded under an idempotency key, if any (a retry answers it again); `IdempotencyConflict` if
 * that snapshot recorded a different batch.
 */
const replayed = (ctx: ClientCore, p: Project, key: string, hash: string) =>
  Effect.gen(function*() {
    const hit = yield* ctx.catalog.findIdempotent(p, key).pipe(Effect.withSpan("write.idempotency"))
    if (Option.isNone(hit)) return undefined
    if (hit.value.contentHash !== hash) {
      return yield* new IdempotencyConflict({
        projectId: p.projectId,
        idempotencyKey: key,
        snapshotId: hit.value.snapshotId
      })
    }
    return {
      recorded: true as const,
      projectId: p.projectId,
      snapshotId: hit.value.snapshotId,
      parquetFile: `main/${TABLE_NAME}/${hit.value.fileName}`,
      changeCount: hit.value.changeCount,
      unmatchedDeletes: 0,
      replayed: true
    }
  })

export const recordChanges = Effect.fn("DuckLakeClient.recordChanges")(function*(ctx: ClientContext, input: RecordInput) {
  const actor = yield* textArg("actor", input?.actor, { optional: false })
  const note = yield* textArg("note", input?.note, { optional: true })
  const key = yield* textArg("idempotencyKey", input?.idempotencyKey, { optional: true })
  const raw = input?.changes
  if (!Array.isArray(raw)) return yield* invalid("changes", "must be an array")
  if (raw.length === 0) return yield* invalid("changes", "a batch needs at least one change")
  if (raw.length > MAX_BATCH) return yield* invalid("changes", `a batch holds at most ${MAX_BATCH} changes`)
  const changes = yield* Effect.forEach(raw, (c, i) => decodeChange(c, i))
  const p = yield* ctx.projectForWrite(input.projectId)
  if (p.status === "archived") return yield* new ProjectArchived({ projectId: p.projectId })
  const batch = yield* prepareBatch(ctx, p, { actor: actor!, note, key, changes, offset: 0 })
  // Only deletes and sets depend on the state (see expandChanges): a batch of adds reads nothing.
  const read = Effect.map(
    ctx.catalog.currentRowsOf(p, pathAttributePairs(changes.filter((c) => c.op !== "add"))).pipe(
      Effect.withSpan("write.currentRows")
    ),
    ({ rows, view }) => {
      const adds = rows.filter((r) => r.op === "add")
      const builder: Builder = (snapshotId, clock) => ({
        ...expandChanges(batch.changes, adds, snapshotId, clock),
        renames: []
      })
      return { builder, view }
    }
  )
  return yield* writeSnapshot(ctx, p, {
    actor: actor!,
    note,
    key,
    hash: batch.hash,
    // A batch our own writer takes (see `SnapshotWrite.plan`): reserve and read the state side by side instead,
    // the read made before the lock when it can be.
    plan: changes.length > SMALL_BATCH_MAX_ROWS,
    build: Effect.map(read, (r) => r.builder),
    buildEarly: read
  }).pipe(
    // The reservation found the project archived or gone: the write path's copy of it is looked up again next time.
    Effect.tapError((e) =>
      e._tag === "ProjectArchived" || e._tag === "ProjectNotFound" ? Effect.ignore(ctx.project(p.projectId)) : Effect.void
    )
  )
})

/** A batch of decoded changes for one snapshot. `offset` is added to the index an error names (an ingest's position). */
export interface Batch {
  readonly actor: string
  readonly note: string | null
  readonly key: string | null
  readonly changes: ReadonlyArray<AvuChange>
  readonly offset: number
}

/**
 * Checks decoded changes against the project (inside its root, not the lake's own files, not in the future), and
 * returns them with the object ids the storage can resolve, and the digest that recognises a retry.
 */
export const prepareBatch = (ctx: ClientCore, p: Project, batch: Batch) =>
  Effect.gen(function*() {
    const { actor, changes, key, note, offset } = batch
    const now = Date.now()
    const rootPrefix = p.irodsPath + "/"
    const lakePrefix = p.ducklakePath + "/"
    for (let i = 0; i < changes.length; i++) {
      const c = changes[i]!
      // isWithin, with the prefixes built once per batch.
      if (c.irodsPath !== p.irodsPath && !c.irodsPath.startsWith(rootPrefix)) {
        return yield* new InvalidChange({
          field: "irodsPath",
          reason: `${c.irodsPath} is outside project root ${p.irodsPath}`,
          index: offset + i
        })
      }
      if (c.irodsPath === p.ducklakePath || c.irodsPath.startsWith(lakePrefix)) {
        return yield* new InvalidChange({ field: "irodsPath", reason: "the lake's own files are not tracked", index: offset + i })
      }
      if (c.ts !== null && c.ts.getTime() > now + FUTURE_SKEW_MS) {
        return yield* new InvalidChange({ field: "ts", reason: `${c.ts.toISOString()} is in the future`, index: offset + i })
      }
    }
    // The digest only serves to recognise a retry under the same idempotency key.
    const hash = key === null ? "" : contentHash(actor, note, changes)
    yield* Effect.annotateCurrentSpan({ projectId: p.projectId, changes: changes.length })
    return { hash, changes: yield* resolveObjectIds(ctx, changes) }
  })

/** The distinct (path, attribute) pairs of a batch. */
const pathAttributePairs = (changes: ReadonlyArray<AvuChange>): Array<readonly [string, string]> => {
  const seen = new Map<string, readonly [string, string]>()
  for (const c of changes) seen.set(pairKey(c.irodsPath, c.attribute), [c.irodsPath, c.attribute])
  return [...seen.values()]
}

/**
 * Map keys for (path, attribute) and (value, unit). A path never holds NUL, so the first key is unambiguous; values
 * may, so the second is JSON unless neither part has one.
 */
export const pairKey = (path: string, attribute: string) => path + "\u0000" + attribute
export const vuKey = (value: string, unit: string) =>
  value.includes("\u0000") || unit.includes("\u0000") ? JSON.stringify([value, unit]) : value + "\u0000" + unit

/** The AVUs present on (path, attribute) pairs: pair key → value+unit key → [value, unit]. */
type PresentState = Map<string, Map<string, readonly [string, string]>>

/**
 * Expands `set` into explicit deletes plus one add, following iRODS (`imeta set` replaces every value of the
 * attribute on that path), against the state before the batch and the batch's own earlier changes.
 */
export const expandChanges = (
  changes: ReadonlyArray<AvuChange>,
  current: ReadonlyArray<{ readonly irodsPath: string; readonly attribute: string; readonly value: string; readonly unit: string }>,
  snapshotId: number,
  clock: Date
): { readonly rows: Array<ChangeRow>; readonly unmatchedDeletes: number } => {
  const rows: Array<ChangeRow> = []
  let unmatchedDeletes = 0
  // Only pairs with a delete or a set need their state followed; an add to any other pair is written as it is
  // (most of a bulk import: no map per pair, no key per add).
  const followed = new Set<string>()
  for (const c of changes) if (c.op !== "add") followed.add(pairKey(c.irodsPath, c.attribute))
  // The AVUs present on followed pairs, by (path, attribute): value+unit keys → [value, unit].
  const present: PresentState = new Map()
  const slot = (k: string) => {
    let m = present.get(k)
    if (m === undefined) present.set(k, m = new Map())
    return m
  }
  const vu = vuKey
  for (const r of current) {
    const k = pairKey(r.irodsPath, r.attribute)
    if (followed.has(k)) slot(k).set(vu(r.value, r.unit), [r.value, r.unit])
  }
  const emit = (c: AvuChange, m: Map<string, readonly [string, string]> | undefined, op: "add" | "delete", value: string, unit: string) => {
    rows.push({
      snapshotId,
      changeSeq: rows.length,
      ts: c.ts ?? clock,
      irodsPath: c.irodsPath,
      targetType: c.targetType,
      objectId: c.objectId,
      attribute: c.attribute,
      value,
      unit,
      op,
      actor: c.actor,
      source: c.source,
      viaTicket: c.viaTicket,
      ruleInvocation: c.ruleInvocation,
      onBehalfOf: c.onBehalfOf
    })
    if (m === undefined) return
    if (op === "add") m.set(vu(value, unit), [value, unit])
    else m.delete(vu(value, unit))
  }
  for (const c of changes) {
    if (c.op === "add") {
      const k = followed.size === 0 ? undefined : pairKey(c.irodsPath, c.attribute)
      emit(c, k !== undefined && followed.has(k) ? slot(k) : undefined, "add", c.value, c.unit)
      continue
    }
    const m = slot(pairKey(c.irodsPath, c.attribute))
    if (c.op === "delete") {
      if (!m.has(vu(c.value, c.unit))) unmatchedDeletes++
      emit(c, m, "delete", c.value, c.unit)
    } else {
      // Sorted, so the order of the recorded deletes does not depend on how the catalog returned rows.
      const existing = [...m.values()].sort((x, y) =>
        x[0] < y[0] ? -1 : x[0] > y[0] ? 1 : x[1] < y[1] ? -1 : x[1] > y[1] ? 1 : 0
      )
      for (const [value, unit] of existing) {
        if (value !== c.value || unit !== c.unit) emit(c, m, "delete", value, unit)
      }
      if (!m.has(vu(c.value, c.unit))) emit(c, m, "add", c.value, c.unit)
    }
  }
  return { rows, unmatchedDeletes }
}

/** A canonical digest of a batch, to recognise an identical retry under the same idempotency key. */
export const contentHash = (actor: string, note: string | null, changes: ReadonlyArray<AvuChange>) =>
  createHash("sha256").update(JSON.stringify({
    actor,
    note,
    changes: changes.map((c) => ({ ...c, ts: c.ts?.toISOString() ?? null }))
  })).digest("hex")

/**
 * Fills in iRODS object ids the caller did not give, when the storage can resolve them (the native client), so a
 * later move of the object can be recognised by its id. A path that no longer resolves keeps none. The ids are
 * looked up before the writer lock is taken, and are not part of the batch's idempotency digest.
 */
export const resolveObjectIds = (ctx: ClientCore, changes: ReadonlyArray<AvuChange>) =>
  Effect.gen(function*() {
    const storage = ctx.storage
    if (!storage.resolvesObjectIds) return changes
    const wanted = [...new Set(
      changes.filter((c) => c.objectId === null && (c.targetType === "data_object" || c.targetType === "collection"))
        .map((c) => c.irodsPath)
    )]
    if (wanted.length === 0) return changes
    const ids = new Map(yield* Effect.forEach(wanted, (path) =>
      storage.stat(path).pipe(
        Effect.map((entry) => [path, Option.getOrNull(Option.flatMapNullable(entry, (e) => e.objectId))] as const),
        Effect.orElseSucceed(() => [path, null] as const)
      ), { concurrency: 4 }))
    return changes.map((c) => (c.objectId === null ? { ...c, objectId: ids.get(c.irodsPath) ?? null } : c))
  }).pipe(Effect.withSpan("write.resolveObjectIds"))

/** The file metadata that lets a Parquet file describe its own snapshot (used by rebuild). */
const fileMetadata = (p: Project, w: PendingWrite, changeCount: number): Record<string, string> => ({
  format: "1.0",
  mesa_layout_version: "1",
  project_id: p.projectId,
  project_root: p.irodsPath,
  irods_zone: p.irodsZone,
  schema_name: "main",
  table_name: TABLE_NAME,
  table_id: String(TABLE_ID),
  snapshot_id: String(w.snapshotId),
  snapshot_clock: w.clock.toISOString(),
  author: w.actor,
  commit_message: w.note ?? "",
  change_count: String(changeCount),
  idempotency_key: w.idempotencyKey ?? "",
  content_hash: w.contentHash,
  columns: COLUMNS_METADATA
})
