/**
 * `DuckLakeClient`: the one entry point. Register projects, record batches of AVU changes as snapshots, and ask
 * what the metadata looked like at any time.
 *
 * Write protocol (per batch, under the project's writer lock):
 *   reserve snapshot id + write-ahead row → write the Parquet file locally → push it into the project's
 *   `.mesa/ducklake/` collection (checksum verified) → commit the DuckLake rows, the current-state index and the
 *   WAL state in one transaction → drop the WAL row.
 * A failure before the commit leaves nothing visible; `recoverPendingPushes` finishes writes whose process died.
 */
import { Context, Effect, Fiber, Layer, Option, Redacted } from "effect"
import { createHash, randomBytes } from "node:crypto"
import * as os from "node:os"
import { Catalog, type FileFilter, type LakeFile, type PendingWrite, type Rename, type Reservation } from "./Catalog.js"
import { COLUMNS, TABLE_ID, TABLE_NAME } from "./catalog/ducklakeSchema.js"
import { laterThan, PairSet, TripleTable, type TripleState } from "./catalog/tripleTable.js"
import {
  type AsOfOptions,
  type Avu,
  type CompactionReport,
  type AvuChange,
  type ChangeRow,
  decodeChange,
  decodeChangeFast,
  type HistoryFilter,
  isWithin,
  MAX_BATCH,
  type NotRecorded,
  parseIrodsPath,
  parseTimestamp,
  type PathDiff,
  type Project,
  type RecordResult,
  type RenameInput,
  type RecoveryReport,
  type Snapshot
} from "./domain.js"
import type { DuckDbError } from "./DuckDb.js"
import {
  CatalogUnavailable,
  ChecksumMismatch,
  IdempotencyConflict,
  InvalidChange,
  type ReaderRoleConflict,
  LakeReadError,
  LakeWriteError,
  ProjectArchived,
  ProjectConflict,
  ProjectNotFound,
  SnapshotNotFound,
  StorageError
} from "./errors.js"
import { formatIrodsChecksum, LakeStorage, parseIrodsChecksum } from "./LakeStorage.js"
import * as Verify from "./verify.js"
import type { VerifyReport } from "./verify.js"

/** Collection (under a project's ducklake path) holding one commit marker per committed snapshot. */
export { MARKER_DIR } from "./layout.js"
export { type ClientSettings, WriteProbe, type WriteStep } from "./client/context.js"
import {
  type CatalogFailure,
  type ClientSettings,
  END_OF_TIME,
  FUTURE_SKEW_MS,
  invalid,
  limitArg,
  makeCore,
  type ReadError,
  snapshotArg,
  textArg
} from "./client/context.js"
import { makeBackground } from "./client/background.js"
import * as Compaction from "./client/compaction.js"
import type { ClientContext } from "./client/context.js"
import * as Files from "./client/files.js"
import * as Markers from "./client/markers.js"

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

/** Default and largest number of changes per snapshot in a bulk ingest. */
export const DEFAULT_INGEST_SNAPSHOT = 10_000
export const MAX_INGEST_SNAPSHOT = 200_000

export interface IngestInput {
  readonly projectId: string
  readonly actor: string
  readonly changes: Iterable<unknown> | AsyncIterable<unknown>
  readonly note?: string
  /** Changes per snapshot (default 10,000, at most 200,000). */
  readonly snapshotSize?: number
  readonly idempotencyKey?: string
}

export interface IngestReport {
  readonly recorded: true
  readonly projectId: string
  readonly changeCount: number
  /** The snapshot ids written (or replayed), in order. */
  readonly snapshots: ReadonlyArray<number>
  /** Snapshots an earlier run with the same idempotency key had already recorded. */
  readonly replayed: number
  readonly unmatchedDeletes: number
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

export interface DuckLakeClientService {
  /** `true` when a catalog is configured (mode A, or an embedded/local catalog). */
  readonly recording: boolean
  readonly registerProject: (input: {
    readonly irodsPath: string
    readonly actor: string
    readonly zone?: string
  }) => Effect.Effect<Project, InvalidChange | ProjectConflict | CatalogFailure | StorageError>
  readonly getProject: (projectId: string) => Effect.Effect<Project, ProjectNotFound | CatalogFailure>
  /** The registered project whose root contains `irodsPath`. */
  readonly findProjectByPath: (
    irodsPath: string
  ) => Effect.Effect<Project, InvalidChange | ProjectNotFound | CatalogFailure>
  readonly listProjects: Effect.Effect<ReadonlyArray<Project>, CatalogFailure>
  /** Record a batch of 1 to 10,000 changes as one snapshot. Modes B/C answer `{ recorded: false }`. */
  readonly recordChanges: (input: RecordInput) => Effect.Effect<RecordResult | NotRecorded, RecordError>
  /**
   * Records a rename or move (iRODS `imv`) as one snapshot: the object's AVUs leave the old path and arrive at the
   * new one, and its history follows it (queries by the new path include the time before the move; the old path
   * still answers for that time). A collection's move carries every path below it.
   */
  /**
   * Bulk ingest (an import, a backfill): a long sequence of changes, read from an iterable or async iterable, is
   * recorded as consecutive snapshots of at most `snapshotSize` changes, each through the same write protocol as
   * `recordChanges`. Each snapshot is atomic; on an error the snapshots before it stay recorded (the error's index
   * is the position in the whole sequence). With an `idempotencyKey` the n-th snapshot uses `<key>#<n>`, so
   * running the same ingest again after a failure resumes where it stopped and records nothing twice.
   */
  readonly ingestChanges: (input: IngestInput) => Effect.Effect<IngestReport | NotRecorded, RecordError>
  readonly recordRename: (input: RenameInput) => Effect.Effect<RecordResult | NotRecorded, RecordError>
  /** AVUs in effect on a path now (the latest recorded state). */
  readonly getAvus: (projectId: string, irodsPath: string) => Effect.Effect<ReadonlyArray<Avu>, ReadError>
  /** AVUs in effect on a path at valid time `at` (inclusive), optionally as known at an earlier snapshot. */
  readonly getAvusAsOf: (
    projectId: string,
    irodsPath: string,
    at: unknown,
    options?: AsOfOptions
  ) => Effect.Effect<ReadonlyArray<Avu>, ReadError | SnapshotNotFound>
  /** Change rows, newest first. */
  readonly getHistory: (
    projectId: string,
    filter?: HistoryFilter
  ) => Effect.Effect<ReadonlyArray<ChangeRow>, ReadError>
  readonly listSnapshots: (
    projectId: string,
    options?: { readonly limit?: number }
  ) => Effect.Effect<ReadonlyArray<Snapshot>, ReadError>
  /** AVUs added and removed per path between two snapshots (`from` exclusive, `to` inclusive). */
  readonly diff: (
    projectId: string,
    fromSnapshot: number,
    toSnapshot: number
  ) => Effect.Effect<ReadonlyArray<PathDiff>, ReadError | SnapshotNotFound>
  /**
   * Merges a project's small snapshot files into files of about `targetFileSize` bytes (DuckLake's
   * merge-adjacent representation): answers, time travel and the extension's reads are unchanged. Old files are
   * scheduled for deletion; `deleteScheduledFiles` removes them after a grace period.
   */
  readonly compact: (
    projectId: string,
    options?: { readonly targetFileSize?: number; readonly minFiles?: number; readonly actor?: string }
  ) => Effect.Effect<CompactionReport, ReadError | LakeWriteError>
  /** Removes files that compaction replaced more than `graceMs` ago (default 7 days). Returns how many. */
  readonly deleteScheduledFiles: (
    projectId: string,
    options?: { readonly graceMs?: number }
  ) => Effect.Effect<number, ReadError>
  /** Archive (no more writes; reads go on) or reactivate a project. */
  readonly setProjectStatus: (
    projectId: string,
    status: "active" | "archived"
  ) => Effect.Effect<Project, InvalidChange | ProjectNotFound | CatalogFailure>
  /** The change rows of one snapshot, in the order they were recorded. */
  readonly getSnapshotChanges: (
    projectId: string,
    snapshotId: number
  ) => Effect.Effect<ReadonlyArray<ChangeRow>, ReadError | SnapshotNotFound>
  /**
   * Waits until this client's background work is done: the commit markers of the snapshots committed so far are
   * stored (or deferred to recovery after a failure), automatic compactions have finished, and the current-state
   * index has caught up with this client's bulk ingests. Closing the client also waits for it (bounded).
   */
  readonly flush: Effect.Effect<void>
  /**
   * Brings the project's current-state index up to date with its committed snapshots (a bulk ingest leaves it
   * behind and catches it up in the background; reads stay exact meanwhile). Returns how many snapshots it applied.
   */
  readonly catchUpIndex: (projectId: string) => Effect.Effect<number, ReadError>
  /**
   * Creates (or updates) a PostgreSQL login role that can read this project's lake schema and nothing else, so an
   * analyst can ATTACH one project's history with DuckDB. `role`: a lower-case identifier; `password`: 12+ chars.
   */
  readonly grantProjectReader: (
    projectId: string,
    role: string,
    password: Redacted.Redacted<string>,
    options?: { readonly rotate?: boolean }
  ) => Effect.Effect<
    { readonly role: string; readonly schema: string },
    InvalidChange | ProjectNotFound | ReaderRoleConflict | CatalogFailure
  >
  /**
   * Tamper evidence: waits for this client's background work, then walks the project's hash chain and checks it
   * against the catalog's rows, the stored files, the commit markers and the anchor on the project root (iRODS).
   * `ok` is false on any problem; the first problem is the first broken link. Reads only.
   */
  readonly verifyProject: (projectId: string) => Effect.Effect<VerifyReport, ReadError>
  /** Finish or fail writes whose writer died. */
  readonly recoverPendingPushes: (options?: {
    readonly maxAttempts?: number
    readonly limit?: number
  }) => Effect.Effect<RecoveryReport, CatalogFailure>
}


export class DuckLakeClient extends Context.Tag("mesa-ducklake/DuckLakeClient")<
  DuckLakeClient,
  DuckLakeClientService
>() {}

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
const pairKey = (path: string, attribute: string) => path + "\u0000" + attribute
const vuKey = (value: string, unit: string) =>
  value.includes("\u0000") || unit.includes("\u0000") ? JSON.stringify([value, unit]) : value + "\u0000" + unit

/**
 * A bulk ingest in progress. Its snapshots leave the current-state index behind, so it keeps what it needs of its
 * own rows: the latest change of every triple it wrote and which pairs it touched (typed arrays, see
 * `TripleTable`), valid while no one else commits between its snapshots.
 */
interface IngestState {
  /** The ingest's last committed snapshot. */
  last: number | null
  /** The latest snapshot before the tables started: the ingest's own rows are in the snapshots after it. */
  since: number
  indexEmpty: boolean
  triples: TripleTable
  pairs: PairSet
}

/** Changes pulled from an ingest's source between turns of the event loop. */
const PULL_SLICE = 1_000

/**
 * Beyond about this many triples the ingest catches the index up and starts its tables again: the triple table
 * stays near 2^21 slots (about 60 MB; 80 MB with the pair set). An ingest past it pays a catch-up of what it wrote.
 */
const INGEST_MAX_TRIPLES = 1_200_000

/** How a write builds its rows once its snapshot id and clock are known. */
type Builder = (snapshotId: number, clock: Date) => {
  readonly rows: ReadonlyArray<ChangeRow>
  readonly unmatchedDeletes: number
  readonly renames: ReadonlyArray<Rename>
}

/** The AVUs present on (path, attribute) pairs: pair key → value+unit key → [value, unit]. */
type PresentState = Map<string, Map<string, readonly [string, string]>>

/**
 * Expands `set` into explicit deletes plus one add, following iRODS (`imeta set` replaces every value of the
 * attribute on that path), against the state before the batch and the batch's own earlier changes.
 */
const expandChanges = (
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
const contentHash = (actor: string, note: string | null, changes: ReadonlyArray<AvuChange>) =>
  createHash("sha256").update(JSON.stringify({
    actor,
    note,
    changes: changes.map((c) => ({ ...c, ts: c.ts?.toISOString() ?? null }))
  })).digest("hex")

export const make = (settings: ClientSettings = {}) => Effect.gen(function*() {
  const core = yield* makeCore(settings)
  const { cache, catalog, duck, probe, project, storage } = core

  const readableAll = (p: Project, files: ReadonlyArray<LakeFile>) => Files.readableAll(core, p, files)
  const duckFailure = Files.duckFailure
  const readFiles = <A>(p: Project, filter: FileFilter, read: (local: ReadonlyArray<string>) => Effect.Effect<A, DuckDbError>) =>
    Files.readFiles(core, p, filter, read)


  const registerProject: DuckLakeClientService["registerProject"] = Effect.fn("DuckLakeClient.registerProject")(
    function*(input) {
      const irodsPath = yield* parseIrodsPath(input?.irodsPath, "irodsPath")
      if (irodsPath === "/") return yield* invalid("irodsPath", "the zone root cannot be a project")
      const actor = yield* textArg("actor", input?.actor, { optional: false })
      const zone = (yield* textArg("zone", input?.zone, { optional: true })) ?? irodsPath.split("/")[1]!
      if (!isWithin(irodsPath, `/${zone}`)) {
        return yield* invalid("zone", `path ${irodsPath} is not in zone ${zone}`)
      }
      const ducklakePath = `${irodsPath}/.mesa/ducklake` as typeof irodsPath
      yield* Effect.annotateCurrentSpan({ irodsPath })
      // The collection is made inside the registration (after its checks, before its commit): a project never
      // exists in the catalog without its collection, and a refused registration leaves storage alone.
      return yield* catalog.registerProject({
        irodsPath,
        irodsZone: zone,
        actor: actor!,
        ducklakePath,
        prepare: storage.makeCollection(`${ducklakePath}/main/${TABLE_NAME}`)
      })
    }
  )

  const findProjectByPath: DuckLakeClientService["findProjectByPath"] = Effect.fn("DuckLakeClient.findProjectByPath")(
    function*(path) {
      const p = yield* parseIrodsPath(path, "irodsPath")
      return yield* catalog.findProjectByPath(p)
    }
  )

  const push = (_p: Project, w: PendingWrite) => Files.push(core, w)
  const writeMarker = (p: Project, snapshotId: number) => Markers.writeMarker(core, p, snapshotId)
  const anchorHead = (p: Project) => Markers.anchorHead(core, p)

  const background = yield* makeBackground(core)
  const ctx: ClientContext = { ...core, background }
  const enqueueMarker = background.enqueueMarker
  const maybeAutoCompact = (p: Project, from: number, to: number = from) =>
    Compaction.maybeAutoCompact(ctx, p, from, to)


  const grantProjectReader: DuckLakeClientService["grantProjectReader"] = Effect.fn("DuckLakeClient.grantProjectReader")(
    function*(projectId, role, password, options) {
      if (typeof role !== "string" || !/^[a-z_][a-z0-9_]{0,62}$/.test(role) || role.startsWith("pg_")) {
        return yield* invalid("role", "must be a lower-case identifier (a-z, 0-9, _), not starting with pg_")
      }
      if (!Redacted.isRedacted(password) || typeof Redacted.value(password) !== "string" || Redacted.value(password).length < 12) {
        return yield* invalid("password", "must be a Redacted string of at least 12 characters")
      }
      const p = yield* project(projectId)
      yield* catalog.grantReader(p, role, password, { rotate: options?.rotate === true })
      return { role, schema: p.metadataSchema }
    }
  )

  const flush: DuckLakeClientService["flush"] = background.flush

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
    columns: JSON.stringify(COLUMNS.map(({ id, name, type, nullable }) => ({ id, name, type, nullable })))
  })

  /** Commit a pushed file: read what the catalog needs from the file itself, then one transaction. */
  const commitFile = (p: Project, w: PendingWrite, file: string, checksum: string) =>
    Effect.gen(function*() {
      const described = yield* duck.describeFile(file)
      const rows = yield* duck.changes([file], {}, { order: "oldest" })
      // Rows fixed by the file need no state: behind an unfinished bulk ingest's index, this one joins the catch-up.
      const deferIndex = (yield* catalog.indexThrough(p)) !== null
      return yield* catalog.commitSnapshot(p, w, { ...described, fileName: w.fileName, checksum }, rows, [], { deferIndex })
    })

  /**
   * Fills in iRODS object ids the caller did not give, when the storage can resolve them (the native client), so a
   * later move of the object can be recognised by its id. A path that no longer resolves keeps none. The ids are
   * looked up before the writer lock is taken, and are not part of the batch's idempotency digest.
   */
  const resolveObjectIds = (changes: ReadonlyArray<AvuChange>) =>
    Effect.gen(function*() {
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

  /** Snapshots' worth of change rows a catch-up applies per transaction. */
  const CATCH_UP_ROWS = 20_000

  /**
   * Catches the current-state index up with the committed snapshots a bulk ingest left out of it: their rows are
   * read from their Parquet files (through the cache) and applied in transactions of about CATCH_UP_ROWS rows, each
   * moving the catalog's mark forward. Call under the writer lock. Returns how many snapshots it applied.
   */
  const catchUp = (p: Project) =>
    Effect.gen(function*() {
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
        const changes = end === 0 ? [] : yield* readFiles(p, range, (local) => duck.changes(local, range, { order: "oldest" }))
        yield* catalog.applyIndex(p, changes, last)
        applied += end
        through = end >= after.length ? null : last
      }
      return applied
    }).pipe(Effect.withSpan("index.catchUp", { attributes: { projectId: p.projectId } }))

  const catchUpIndex: DuckLakeClientService["catchUpIndex"] = Effect.fn("DuckLakeClient.catchUpIndex")(
    function*(projectId) {
      const p = yield* project(projectId)
      if ((yield* catalog.indexThrough(p)) === null) return 0
      return yield* catalog.withWriteLock(p.projectId, catchUp(p))
    }
  )

  const catchUpInBackground = (p: Project, first: number, last: number) =>
    background.fork(
      catalog.withWriteLock(p.projectId, catchUp(p)).pipe(
        Effect.catchAll((e) => Effect.logWarning("index catch-up failed; the next writer or reader of the project retries", e)),
        Effect.zipRight(maybeAutoCompact(p, first, last))
      ),
      "DuckLakeClient.backgroundCatchUp"
    )

  /**
   * The write protocol for one snapshot, under the project's writer lock: idempotency check, reserve, build the rows
   * (with the state the lock guarantees), write, push, verify, commit, marker. Used by recordChanges and recordRename.
   */
  const writeSnapshot = <E extends { readonly _tag: string; readonly message: string }>(
    p: Project,
    input: {
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
    }
  ) => {
    const { actor, build, hash, key, note } = input
    const deferIndex = input.deferIndex === true
    return catalog.withWriteLock(p.projectId, Effect.gen(function*() {
      if (key !== null) {
        const hit = yield* catalog.findIdempotent(p, key).pipe(Effect.withSpan("write.idempotency"))
        if (Option.isSome(hit)) {
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
        }
      }
      const [w, prepared] = yield* Effect.all([catalog.reserveSnapshot(p, {
        fileSuffix: randomBytes(4).toString("hex"),
        localDir: `${cache.directory}/${p.projectId}`,
        actor,
        note,
        idempotencyKey: key,
        contentHash: hash
      }).pipe(Effect.withSpan("write.reserve")), Effect.either(Effect.isEffect(build) ? build : Effect.succeed(undefined))], {
        concurrency: 2
      })
      yield* Effect.annotateCurrentSpan({ snapshotId: w.snapshotId })
      yield* probe("reserved", w.snapshotId)
      // From here a failure must leave the snapshot failed (never committed later) and its file removed.
      const attempt = Effect.gen(function*() {
        const builder: Builder = !Effect.isEffect(build)
          // Builds that depend on the reservation (bulk ingest) run after it.
          ? yield* build(w)
          : w.indexThrough !== null
          // A bulk ingest left the index behind: catch it up (we hold the lock), then read the state again.
          ? yield* Effect.zipRight(catchUp(p), build)
          : (yield* prepared)!
        const { renames, rows, unmatchedDeletes } = builder(w.snapshotId, w.clock)
        // A batch that changes nothing (a `set` to the only value there already) records no snapshot.
        if (rows.length === 0) return undefined
        yield* cache.pathFor(p.projectId, w.fileName)
        const metadata = {
          ...fileMetadata(p, w, rows.length),
          ...(renames.length === 0 ? {} : { renames: JSON.stringify(renames) })
        }
        const written = yield* duck.writeSnapshotFile(w.localFile, rows, p.projectId, metadata)
          .pipe(Effect.mapError((e) =>
            new LakeWriteError({ projectId: p.projectId, snapshotId: w.snapshotId, step: "write-parquet", cause: e })
          ), Effect.withSpan("write.parquet"))
        yield* cache.secure(w.localFile)
        yield* probe("parquet-written", w.snapshotId)
        yield* cache.added(written.fileSizeBytes)
        const put = yield* push(p, w).pipe(Effect.withSpan("write.push"))
        yield* probe("pushed", w.snapshotId)
        const checksum = formatIrodsChecksum(put.checksum)
        yield* catalog.markPushed(p.projectId, w.snapshotId, checksum).pipe(Effect.withSpan("write.markPushed"))
        yield* probe("marked-pushed", w.snapshotId)
        yield* catalog.commitSnapshot(p, w, { ...written, fileName: w.fileName, checksum }, rows, renames, { deferIndex })
          .pipe(Effect.withSpan("write.commit"))
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
      // The snapshot is committed: its marker is written in the background (by recovery if it never lands).
      yield* enqueueMarker(p, w.snapshotId)
      // A bulk ingest compacts (if due) once it has finished, after its index catch-up.
      if (!deferIndex) yield* maybeAutoCompact(p, w.snapshotId)
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

  /**
   * The state a bulk-ingest batch is expanded against, under the writer lock: the AVUs present on the pairs where it
   * matters (a `delete` checks its triple, a `set` replaces every value of its pair; an `add` needs nothing). The
   * index holds everything before the ingest; the ingest's own snapshots are not in it yet, so a triple's latest
   * change among them comes from the ingest's tables, and a `set` on a pair the ingest touched reads the pair's rows
   * from the ingest's files. If anyone else committed since the ingest's last snapshot, the index is caught up and
   * the tables start again.
   */
  const ingestState = (p: Project, state: IngestState, w: Reservation, changes: ReadonlyArray<AvuChange>) =>
    Effect.gen(function*() {
      const full = state.triples.size + changes.length > (settings.ingestMemoryTriples ?? INGEST_MAX_TRIPLES)
      if (state.last === null || w.previousSnapshot !== state.last || full) {
        if (w.indexThrough !== null) yield* catchUp(p)
        state.triples = new TripleTable()
        state.pairs = new PairSet()
        state.since = w.previousSnapshot
        state.indexEmpty = yield* catalog.indexEmpty(p)
      }
      const setPairs = new Map<string, readonly [string, string]>()
      const lookup = new Map<string, readonly [string, string]>()
      for (const c of changes) {
        if (c.op === "add") continue
        const k = pairKey(c.irodsPath, c.attribute)
        if (c.op === "set") setPairs.set(k, [c.irodsPath, c.attribute])
        lookup.set(k, [c.irodsPath, c.attribute])
      }
      if (lookup.size === 0) return []
      // The latest change per triple from the index, then from the ingest's own snapshots.
      const latest = new Map<string, { row: { irodsPath: string; attribute: string; value: string; unit: string }; order: TripleState }>()
      const offer = (row: { irodsPath: string; attribute: string; value: string; unit: string }, order: TripleState) => {
        const k = pairKey(row.irodsPath, row.attribute) + "\u0000" + vuKey(row.value, row.unit)
        const cur = latest.get(k)
        if (cur === undefined || laterThan(order, cur.order)) latest.set(k, { row, order })
      }
      if (!state.indexEmpty) {
        const rows = yield* catalog.currentRowsOf(p, [...lookup.values()]).pipe(Effect.withSpan("write.currentRows"))
        for (const r of rows) offer(r, { ts: r.tsMs, snapshotId: r.snapshotId, changeSeq: r.changeSeq, add: r.op === "add" })
      }
      const touched = [...setPairs.values()].filter(([path, attribute]) => state.pairs.has(path, attribute))
      if (touched.length > 0) {
        const own = yield* readFiles(p, { afterSnapshot: state.since }, (local) => duck.latestOfPairs(local, touched, state.since))
          .pipe(Effect.withSpan("write.ownRows"))
        for (const r of own) offer(r, { ts: r.ts.getTime(), snapshotId: r.snapshotId, changeSeq: r.changeSeq, add: r.op === "add" })
      }
      const current: Array<{ irodsPath: string; attribute: string; value: string; unit: string }> = []
      for (const { order, row } of latest.values()) {
        // A deleted triple's own latest change may be in the ingest's tables (set pairs have it from the files).
        const mine = setPairs.has(pairKey(row.irodsPath, row.attribute))
          ? undefined
          : state.triples.get(row.irodsPath, row.attribute, row.value, row.unit)
        if (mine !== undefined ? (laterThan(mine, order) ? mine.add : order.add) : order.add) current.push(row)
      }
      // Triples the ingest wrote that the index does not have at all.
      for (const c of changes) {
        if (c.op !== "delete" || setPairs.has(pairKey(c.irodsPath, c.attribute))) continue
        const k = pairKey(c.irodsPath, c.attribute) + "\u0000" + vuKey(c.value, c.unit)
        if (latest.has(k)) continue
        const mine = state.triples.get(c.irodsPath, c.attribute, c.value, c.unit)
        if (mine?.add === true) {
          current.push({ irodsPath: c.irodsPath, attribute: c.attribute, value: c.value, unit: c.unit })
          latest.set(k, { row: c, order: mine })
        }
      }
      return current
    })

  /**
   * Checks decoded changes against the project (inside its root, not the lake's own files, not in the future) and
   * writes them as one snapshot. `offset` is added to the index an error names (a bulk ingest's position).
   */
  const recordBatch = (
    p: Project,
    batch: {
      readonly actor: string
      readonly note: string | null
      readonly key: string | null
      readonly changes: ReadonlyArray<AvuChange>
      readonly offset: number
    },
    /** A bulk ingest's state: its snapshots leave the index behind and it tracks the pairs it wrote itself. */
    ingest?: IngestState
  ) =>
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
      const withIds = yield* resolveObjectIds(changes)
      if (ingest !== undefined) {
        let written: ReadonlyArray<ChangeRow> = []
        const r = yield* writeSnapshot(p, {
          actor,
          note,
          key,
          hash,
          deferIndex: true,
          build: (w) =>
            Effect.map(ingestState(p, ingest, w, withIds), (current) => (snapshotId: number, clock: Date) => {
              const out = expandChanges(withIds, current, snapshotId, clock)
              written = out.rows
              return { rows: out.rows, unmatchedDeletes: out.unmatchedDeletes, renames: [] }
            })
        })
        if (r.recorded && !r.replayed) {
          // Committed: the tables take this snapshot's rows.
          for (const row of written) {
            ingest.triples.record(row.irodsPath, row.attribute, row.value, row.unit, row.ts.getTime(), row.snapshotId,
              row.changeSeq, row.op === "add")
            ingest.pairs.add(row.irodsPath, row.attribute)
          }
          ingest.last = r.snapshotId
        }
        return r
      }
      return yield* writeSnapshot(p, {
        actor,
        note,
        key,
        hash,
        build: Effect.map(
          // Only deletes and sets depend on the state (see expandChanges): a batch of adds reads nothing.
          catalog.currentRowsOf(p, pathAttributePairs(changes.filter((c) => c.op !== "add"))).pipe(
            Effect.withSpan("write.currentRows")
          ),
          (current) => {
            const adds = current.filter((r) => r.op === "add")
            return (snapshotId: number, clock: Date) => ({ ...expandChanges(withIds, adds, snapshotId, clock), renames: [] })
          }
        )
      })
    })

  const recordChanges: DuckLakeClientService["recordChanges"] = Effect.fn("DuckLakeClient.recordChanges")(
    function*(input) {
      const actor = yield* textArg("actor", input?.actor, { optional: false })
      const note = yield* textArg("note", input?.note, { optional: true })
      const key = yield* textArg("idempotencyKey", input?.idempotencyKey, { optional: true })
      const raw = input?.changes
      if (!Array.isArray(raw)) return yield* invalid("changes", "must be an array")
      if (raw.length === 0) return yield* invalid("changes", "a batch needs at least one change")
      if (raw.length > MAX_BATCH) return yield* invalid("changes", `a batch holds at most ${MAX_BATCH} changes`)
      const changes = yield* Effect.forEach(raw, (c, i) => decodeChange(c, i))
      const p = yield* project(input.projectId)
      if (p.status === "archived") return yield* new ProjectArchived({ projectId: p.projectId })
      return yield* recordBatch(p, { actor: actor!, note, key, changes, offset: 0 })
    }
  )

  const ingestChanges: DuckLakeClientService["ingestChanges"] = Effect.fn("DuckLakeClient.ingestChanges")(
    function*(input) {
      const actor = yield* textArg("actor", input?.actor, { optional: false })
      const note = yield* textArg("note", input?.note, { optional: true })
      const key = yield* textArg("idempotencyKey", input?.idempotencyKey, { optional: true })
      const size = input?.snapshotSize ?? DEFAULT_INGEST_SNAPSHOT
      if (!Number.isSafeInteger(size) || size < 1 || size > MAX_INGEST_SNAPSHOT) {
        return yield* invalid("snapshotSize", `must be an integer from 1 to ${MAX_INGEST_SNAPSHOT}`)
      }
      const source = input?.changes as unknown
      const iterable = source !== null && typeof source === "object" &&
        (Symbol.iterator in source || Symbol.asyncIterator in source)
      if (!iterable || typeof source === "string") return yield* invalid("changes", "must be an iterable or async iterable of changes")
      const p = yield* project(input.projectId)
      if (p.status === "archived") return yield* new ProjectArchived({ projectId: p.projectId })
      const report = {
        recorded: true as const,
        projectId: p.projectId,
        changeCount: 0,
        snapshots: [] as Array<number>,
        replayed: 0,
        unmatchedDeletes: 0
      }
      const state: IngestState = { last: null, since: 0, indexEmpty: false, triples: new TripleTable(), pairs: new PairSet() }
      const write = (changes: Array<AvuChange>, offset: number, part: number) =>
        Effect.map(
          recordBatch(p, { actor: actor!, note, key: key === null ? null : `${key}#${part}`, changes, offset }, state),
          (r) => {
            report.changeCount += changes.length
            // A part that changes nothing (only `set`s to the values already there) makes no snapshot.
            if (!r.recorded) return
            report.snapshots.push(r.snapshotId)
            if (r.replayed) report.replayed++
            report.unmatchedDeletes += r.unmatchedDeletes
          }
        )
      const sourceFailed = (cause: unknown, at: number) =>
        new InvalidChange({ field: "changes", reason: `reading the source failed: ${String(cause)}`, index: at })
      // Changes are pulled a snapshot's worth at a time in plain JS (no Effect, and for a synchronous source no
      // promise, per change). The plain-JS decoder answers for well-formed changes; a change it does not accept
      // stops the pull, and the Schema decoder then decodes it or words the refusal.
      const isAsync = Symbol.asyncIterator in (source as object)
      const syncIt = isAsync ? undefined : (source as Iterable<unknown>)[Symbol.iterator]()
      const asyncIt = isAsync ? (source as AsyncIterable<unknown>)[Symbol.asyncIterator]() : undefined
      let index = 0
      let done = false
      // A source left unfinished (an error, an interruption) is closed, so it can release what it holds. An async
      // one is not awaited: it may be blocked in the very pull this ingest gave up on.
      yield* Effect.addFinalizer(() =>
        Effect.sync(() => {
          if (done) return
          try {
            if (syncIt !== undefined) syncIt.return?.()
            else void asyncIt?.return?.()?.catch(() => undefined)
          } catch {
            // The source's own cleanup failed; the ingest's outcome stands.
          }
        })
      )
      /** Takes one pulled item into the chunk; answers what stops the pull (the end, or a change to decode slowly). */
      const take = (chunk: Array<AvuChange>, next: IteratorResult<unknown>): { stopped: unknown } | "end" | undefined => {
        if (next.done === true) {
          done = true
          return "end"
        }
        const c = decodeChangeFast(next.value)
        if (c === undefined) return { stopped: next.value }
        chunk.push(c)
        index++
        return undefined
      }
      const pull = (chunk: Array<AvuChange>, limit: number): { stopped: unknown } | undefined => {
        while (chunk.length < limit) {
          const stop = take(chunk, syncIt!.next())
          if (stop !== undefined) return stop === "end" ? undefined : stop
        }
        return undefined
      }
      const pullAsync = async (chunk: Array<AvuChange>, limit: number): Promise<{ stopped: unknown } | undefined> => {
        while (chunk.length < limit) {
          const stop = take(chunk, await asyncIt!.next())
          if (stop !== undefined) return stop === "end" ? undefined : stop
        }
        return undefined
      }
      // Pipelined: the next snapshot's changes are pulled while the previous one is written (its DuckDB and
      // PostgreSQL work runs outside this thread). Snapshots are still written one after another, in order.
      let inflight: Fiber.RuntimeFiber<void, RecordError> | undefined
      /** Waits for the snapshot being written; its failure ends the ingest before anything that follows it. */
      const settle = Effect.suspend(() => {
        const f = inflight
        inflight = undefined
        return f === undefined ? Effect.void : Fiber.join(f)
      })
      /** One turn of the event loop, so the write in flight gets its replies between slices of pulling. */
      const breathe = Effect.async<void>((resume) => {
        setImmediate(() => resume(Effect.void))
      })
      let part = 0
      // Whatever ends the ingest, snapshots it committed get the index catch-up (and compaction if due).
      const after = Effect.suspend(() => {
        const fresh = report.snapshots.length - report.replayed
        if (fresh <= 0) return Effect.void
        const [first, last] = [report.snapshots[0]!, report.snapshots[report.snapshots.length - 1]!]
        return settings.catchUpAfterIngest === false ? maybeAutoCompact(p, first, last) : catchUpInBackground(p, first, last)
      })
      yield* Effect.addFinalizer(() => after)
      while (!done) {
        const chunk: Array<AvuChange> = []
        while (!done && chunk.length < size) {
          const limit = Math.min(size, chunk.length + PULL_SLICE)
          const stop = yield* (isAsync
            ? Effect.tryPromise({ try: () => pullAsync(chunk, limit), catch: (cause) => sourceFailed(cause, index) })
            : Effect.try({ try: () => pull(chunk, limit), catch: (cause) => sourceFailed(cause, index) })).pipe(
              Effect.tapError(() => settle)
            )
          if (stop !== undefined) {
            chunk.push(yield* decodeChange(stop.stopped, index).pipe(Effect.tapError(() => settle)))
            index++
          }
          if (inflight !== undefined) {
            yield* breathe
            // A write that has finished is settled now: its failure stops the ingest without pulling further.
            if (Option.isSome(yield* Fiber.poll(inflight))) yield* settle
          }
        }
        yield* settle
        if (chunk.length > 0) inflight = yield* Effect.fork(write(chunk, index - chunk.length, part++))
      }
      yield* settle
      if (index === 0) return yield* invalid("changes", "an ingest needs at least one change")
      return report
    },
    Effect.scoped
  )


  const renamedUnder = (path: string, r: Rename) =>
    r.targetType === "collection" ? isWithin(path, r.toPath) : path === r.toPath
  const renamedBack = (path: string, r: Rename) => r.fromPath + path.slice(r.toPath.length)

  /** Where the object now at `path` was at valid time `at` (following recorded renames backwards). */
  const pathAt = (p: Project, path: string, at: Date, maxSnapshot?: number) =>
    Effect.map(catalog.renames(p, maxSnapshot), (renames) => {
      let cur = path
      for (const r of renames) if (r.ts > at && renamedUnder(cur, r)) cur = renamedBack(cur, r)
      return cur
    })

  /** The paths an object had, newest first: `[path, until]` pairs (the earlier paths hold rows before `until`). */
  const lineageOf = (p: Project, path: string) =>
    Effect.map(catalog.renames(p), (renames) => {
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

  const recordRename: DuckLakeClientService["recordRename"] = Effect.fn("DuckLakeClient.recordRename")(function*(input) {
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
    const p = yield* project(input.projectId)
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
    return yield* writeSnapshot(p, {
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

  const getAvus: DuckLakeClientService["getAvus"] = Effect.fn("DuckLakeClient.getAvus")(function*(projectId, path) {
    const irodsPath = yield* parseIrodsPath(path, "irodsPath")
    const p = yield* project(projectId)
    const { avus, behind } = yield* catalog.currentAvus(p, irodsPath)
    if (!behind) return avus
    // A bulk ingest has not been indexed yet: the same answer from the Parquet files (the latest change per triple).
    return yield* readFiles(p, { irodsPath }, (local) => duck.avusAsOf(local, irodsPath, END_OF_TIME, Number.MAX_SAFE_INTEGER))
  })

  /** Resolve `knownAt` (snapshot id or transaction time) to the highest snapshot id to consider. */
  const knownAtSnapshot = (p: Project, knownAt: AsOfOptions["knownAt"]) =>
    Effect.gen(function*() {
      if (knownAt === undefined) return yield* catalog.latestSnapshot(p)
      if (typeof knownAt === "number") {
        const id = yield* snapshotArg("knownAt", knownAt)
        yield* catalog.requireSnapshot(p, id)
        return id
      }
      const at = yield* parseTimestamp(knownAt, "knownAt")
      return (yield* catalog.snapshotAt(p, at)) ?? 0
    })

  const getAvusAsOf: DuckLakeClientService["getAvusAsOf"] = Effect.fn("DuckLakeClient.getAvusAsOf")(
    function*(projectId, path, at, options) {
      const irodsPath = yield* parseIrodsPath(path, "irodsPath")
      const validAt = yield* parseTimestamp(at, "timestamp")
      const p = yield* project(projectId)
      const maxSnapshot = yield* knownAtSnapshot(p, options?.knownAt)
      // The object now at this path may have been elsewhere then.
      const then = yield* pathAt(p, irodsPath, validAt, maxSnapshot)
      const files = yield* catalog.files(p, { irodsPath: then, validAtOrBefore: validAt, maxSnapshot })
      yield* Effect.annotateCurrentSpan({ projectId: p.projectId, files: files.length, maxSnapshot })
      const local = yield* readableAll(p, files)
      return yield* duck.avusAsOf(local, then, validAt, maxSnapshot).pipe(Effect.mapError(duckFailure(p, files, local)))
    }
  )

  const getHistory: DuckLakeClientService["getHistory"] = Effect.fn("DuckLakeClient.getHistory")(
    function*(projectId, filter) {
      const irodsPath = filter?.irodsPath === undefined ? undefined : yield* parseIrodsPath(filter.irodsPath)
      const attribute = yield* textArg("attribute", filter?.attribute, { optional: true })
      const from = filter?.from === undefined ? undefined : yield* parseTimestamp(filter.from, "from")
      const to = filter?.to === undefined ? undefined : yield* parseTimestamp(filter.to, "to")
      if (from !== undefined && to !== undefined && from > to) return yield* invalid("from", "is after to")
      const limit = yield* limitArg(filter?.limit, 100)
      const p = yield* project(projectId)
      const range = {
        ...(irodsPath === undefined ? {} : { irodsPath }),
        ...(attribute === null ? {} : { attribute }),
        ...(from === undefined ? {} : { validFrom: from }),
        ...(to === undefined ? {} : { validTo: to })
      }
      // A path's history includes the object's earlier paths, up to the moment it moved.
      const segments = irodsPath === undefined ? [{ path: undefined, before: undefined }] : yield* lineageOf(p, irodsPath)
      const parts = yield* Effect.forEach(segments, (seg) =>
        Effect.gen(function*() {
          const validTo = seg.before === undefined ? to : new Date(Math.min(seg.before.getTime() - 1, to?.getTime() ?? Infinity))
          if (validTo !== undefined && from !== undefined && validTo < from) return []
          const segRange = {
            ...range,
            ...(seg.path === undefined ? {} : { irodsPath: seg.path }),
            ...(validTo === undefined ? {} : { validTo })
          }
          const files = yield* catalog.files(p, {
            ...segRange,
            ...(validTo === undefined ? {} : { validAtOrBefore: validTo })
          })
          const local = yield* readableAll(p, files)
          return yield* duck.changes(local, segRange, { limit, order: "newest" }).pipe(Effect.mapError(duckFailure(p, files, local)))
        }))
      if (parts.length === 1) return parts[0]!
      const newestFirst = (a: ChangeRow, b: ChangeRow) =>
        b.ts.getTime() - a.ts.getTime() || b.snapshotId - a.snapshotId || b.changeSeq - a.changeSeq
      return parts.flat().sort(newestFirst).slice(0, limit)
    }
  )

  const listSnapshots: DuckLakeClientService["listSnapshots"] = Effect.fn("DuckLakeClient.listSnapshots")(
    function*(projectId, options) {
      const limit = yield* limitArg(options?.limit, 100)
      const p = yield* project(projectId)
      return yield* catalog.listSnapshots(p, { limit })
    }
  )

  const diff: DuckLakeClientService["diff"] = Effect.fn("DuckLakeClient.diff")(function*(projectId, from, to) {
    const a = yield* snapshotArg("fromSnapshot", from)
    const b = yield* snapshotArg("toSnapshot", to)
    if (a > b) return yield* invalid("fromSnapshot", `is after toSnapshot (${a} > ${b})`)
    const p = yield* project(projectId)
    yield* catalog.requireSnapshot(p, a)
    yield* catalog.requireSnapshot(p, b)
    const files = yield* catalog.files(p, { maxSnapshot: b })
    const local = yield* readableAll(p, files)
    const inRange = yield* duck.changes(local, { afterSnapshot: a, maxSnapshot: b }, { order: "oldest" }).pipe(
      Effect.mapError(duckFailure(p, files, local))
    )
    const paths = [...new Set(inRange.map((r) => r.irodsPath))].sort()
    const far = new Date(8_000_000_000_000)
    return yield* Effect.forEach(paths, (path) =>
      Effect.gen(function*() {
        const [before, after] = yield* Effect.all([
          duck.avusAsOf(local, path, far, a),
          duck.avusAsOf(local, path, far, b)
        ]).pipe(Effect.mapError(duckFailure(p, files, local)))
        const k = (x: Avu) => JSON.stringify([x.attribute, x.value, x.unit])
        const beforeKeys = new Set(before.map(k))
        const afterKeys = new Set(after.map(k))
        const triple = (x: Avu) => ({ attribute: x.attribute, value: x.value, unit: x.unit })
        return {
          irodsPath: path,
          added: after.filter((x) => !beforeKeys.has(k(x))).map(triple),
          removed: before.filter((x) => !afterKeys.has(k(x))).map(triple)
        }
      })).pipe(Effect.map((ds) => ds.filter((d) => d.added.length > 0 || d.removed.length > 0)))
  })


  const compact: DuckLakeClientService["compact"] = (projectId, options) => Compaction.compact(core, projectId, options)

  const deleteScheduledFiles: DuckLakeClientService["deleteScheduledFiles"] = (projectId, options) =>
    Compaction.deleteScheduledFiles(core, projectId, options)


  const setProjectStatus: DuckLakeClientService["setProjectStatus"] = Effect.fn("DuckLakeClient.setProjectStatus")(
    function*(projectId, status) {
      if (status !== "active" && status !== "archived") return yield* invalid("status", "must be active or archived")
      const p = yield* project(projectId)
      yield* catalog.setProjectStatus(p.projectId, status)
      return { ...p, status }
    }
  )

  const getSnapshotChanges: DuckLakeClientService["getSnapshotChanges"] = Effect.fn(
    "DuckLakeClient.getSnapshotChanges"
  )(function*(projectId, snapshotId) {
    const id = yield* snapshotArg("snapshotId", snapshotId)
    const p = yield* project(projectId)
    if (!(yield* catalog.isCommitted(p, id))) return yield* new SnapshotNotFound({ projectId: p.projectId, snapshotId: id })
    const range = { afterSnapshot: id - 1, maxSnapshot: id }
    const rows = yield* readFiles(p, range, (local) => duck.changes(local, range, { order: "oldest" }))
    return [...rows].sort((a, b) => a.changeSeq - b.changeSeq)
  })

  const recoverPendingPushes: DuckLakeClientService["recoverPendingPushes"] = Effect.fn(
    "DuckLakeClient.recoverPendingPushes"
  )(function*(options) {
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
            : recoverOne(p, current.value, maxAttempts, report))
      )
    }
    // Committed snapshots whose writer died before their marker landed. One broken project does not stop the rest.
    for (const p of yield* catalog.listProjects) {
      yield* Effect.gen(function*() {
        for (const id of yield* catalog.missingMarkers(p, options?.limit ?? 100)) {
          yield* writeMarker(p, id)
          report.markers++
        }
        yield* anchorHead(p)
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

  const recoverOne = (p: Project, w: PendingWrite, maxAttempts: number, report: Record<keyof RecoveryReport, number>) =>
    Effect.gen(function*() {
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
        // Is a verified copy already in storage?
        const remote = yield* storage.stat(w.remotePath)
        let stored = false
        if (Option.isSome(remote) && w.checksum !== null) {
          const sum = yield* storage.checksum(w.remotePath).pipe(Effect.option)
          const expected = parseIrodsChecksum(w.checksum) ?? { algorithm: "sha256", hex: w.checksum.replace(/^sha2:/, "") }
          stored = Option.isSome(sum) && formatIrodsChecksum(sum.value) === formatIrodsChecksum(expected)
        }
        const haveLocal = yield* cache.has(w.localFile)
        let checksum = w.checksum
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
          const put = yield* push(p, w)
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
        yield* commitFile(p, w, file, checksum!)
        yield* catalog.dropPending(p.projectId, w.snapshotId)
        report.committed++
        yield* writeMarker(p, w.snapshotId).pipe(
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

  const verifyProject: DuckLakeClientService["verifyProject"] = Effect.fn("DuckLakeClient.verifyProject")(
    function*(projectId) {
      const p = yield* project(projectId)
      yield* flush
      return yield* Verify.verifyProject(p).pipe(
        Effect.provideService(Catalog, catalog),
        Effect.provideService(LakeStorage, storage)
      )
    }
  )

  return DuckLakeClient.of({
    recording: true,
    verifyProject,
    registerProject,
    getProject: (id) => project(id),
    findProjectByPath,
    listProjects: catalog.listProjects,
    recordChanges,
    ingestChanges,
    recordRename,
    getAvus,
    getAvusAsOf,
    getHistory,
    listSnapshots,
    diff,
    compact,
    deleteScheduledFiles,
    setProjectStatus,
    getSnapshotChanges,
    flush,
    catchUpIndex,
    grantProjectReader,
    recoverPendingPushes
  })
})

/**
 * Modes B and C: no catalog is configured. Writes answer "not recorded" (the caller's iRODS write stands), reads
 * fail with `CatalogUnavailable { reason: "not-configured" }`. Nothing is opened and nothing can crash.
 */
export const notConfigured: DuckLakeClientService = (() => {
  const unavailable = Effect.fail(new CatalogUnavailable({ reason: "not-configured" }))
  return DuckLakeClient.of({
    recording: false,
    registerProject: () => unavailable,
    getProject: () => unavailable,
    findProjectByPath: () => unavailable,
    listProjects: unavailable,
    flush: Effect.void,
    catchUpIndex: () => unavailable,
    grantProjectReader: () => unavailable,
    verifyProject: () => unavailable,
    recordChanges: () => Effect.succeed({ recorded: false as const, reason: "no-catalog" as const }),
    ingestChanges: () => Effect.succeed({ recorded: false as const, reason: "no-catalog" as const }),
    recordRename: () => Effect.succeed({ recorded: false as const, reason: "no-catalog" as const }),
    getAvus: () => unavailable,
    getAvusAsOf: () => unavailable,
    getHistory: () => unavailable,
    listSnapshots: () => unavailable,
    diff: () => unavailable,
    compact: () => unavailable,
    deleteScheduledFiles: () => unavailable,
    setProjectStatus: () => unavailable,
    getSnapshotChanges: () => unavailable,
    recoverPendingPushes: () => unavailable
  })
})()

/** The client over a Catalog, LakeStorage, DuckDb and LocalCache provided by a composition root. */
export const layerWith = (settings: ClientSettings) => Layer.scoped(DuckLakeClient, make(settings))
export const layer = layerWith({})
/** Modes B/C. */
export const layerNotConfigured = Layer.succeed(DuckLakeClient, notConfigured)
