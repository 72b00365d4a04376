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
import { Context, Effect, Layer, Option, Redacted } from "effect"
import * as os from "node:os"
import { Catalog, type PendingWrite } from "./Catalog.js"
import { TABLE_NAME } from "./catalog/ducklakeSchema.js"
import {
  type AsOfOptions,
  type Avu,
  type CompactionReport,
  type ChangeRow,
  type HistoryFilter,
  isWithin,
  type NotRecorded,
  parseIrodsPath,
  type PathDiff,
  type Project,
  type RecordResult,
  type RenameInput,
  type RecoveryReport,
  type Snapshot
} from "./domain.js"
import {
  CatalogUnavailable,
  InvalidChange,
  type ReaderRoleConflict,
  LakeWriteError,
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
export { DEFAULT_INGEST_SNAPSHOT, type IngestInput, type IngestReport, MAX_INGEST_SNAPSHOT } from "./client/ingest.js"
export { type RecordError, type RecordInput } from "./client/write.js"
import {
  type CatalogFailure,
  type ClientSettings,
  invalid,
  makeCore,
  type ReadError,
  textArg
} from "./client/context.js"
import { makeBackground } from "./client/background.js"
import * as Compaction from "./client/compaction.js"
import type { ClientContext } from "./client/context.js"
import * as Files from "./client/files.js"
import * as Markers from "./client/markers.js"
import * as CurrentIndex from "./client/currentIndex.js"
import * as Ingest from "./client/ingest.js"
import type { IngestInput, IngestReport } from "./client/ingest.js"
import * as Write from "./client/write.js"
import type { RecordError, RecordInput } from "./client/write.js"
import * as Read from "./client/read.js"
import * as Renames from "./client/renames.js"

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

export const make = (settings: ClientSettings = {}) => Effect.gen(function*() {
  const core = yield* makeCore(settings)
  const { cache, catalog, duck, project, storage } = core



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


  /** Commit a pushed file: read what the catalog needs from the file itself, then one transaction. */
  const commitFile = (p: Project, w: PendingWrite, file: string, checksum: string) =>
    Effect.gen(function*() {
      const described = yield* duck.describeFile(file)
      const rows = yield* duck.changes([file], {}, { order: "oldest" })
      // Rows fixed by the file need no state: behind an unfinished bulk ingest's index, this one joins the catch-up.
      const deferIndex = (yield* catalog.indexThrough(p)) !== null
      return yield* catalog.commitSnapshot(p, w, { ...described, fileName: w.fileName, checksum }, rows, [], { deferIndex })
    })

  const catchUpIndex: DuckLakeClientService["catchUpIndex"] = (projectId) => CurrentIndex.catchUpIndex(core, projectId)

  const recordChanges: DuckLakeClientService["recordChanges"] = (input) => Write.recordChanges(ctx, input)
  const ingestChanges: DuckLakeClientService["ingestChanges"] = (input) => Ingest.ingestChanges(ctx, input)


  const recordRename: DuckLakeClientService["recordRename"] = (input) => Renames.recordRename(ctx, input)
  const getAvus: DuckLakeClientService["getAvus"] = (projectId, path) => Read.getAvus(core, projectId, path)
  const getAvusAsOf: DuckLakeClientService["getAvusAsOf"] = (projectId, path, at, options) =>
    Read.getAvusAsOf(core, projectId, path, at, options)
  const getHistory: DuckLakeClientService["getHistory"] = (projectId, filter) => Read.getHistory(core, projectId, filter)
  const listSnapshots: DuckLakeClientService["listSnapshots"] = (projectId, options) =>
    Read.listSnapshots(core, projectId, options)
  const diff: DuckLakeClientService["diff"] = (projectId, from, to) => Read.diff(core, projectId, from, to)

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

  const getSnapshotChanges: DuckLakeClientService["getSnapshotChanges"] = (projectId, snapshotId) =>
    Read.getSnapshotChanges(core, projectId, snapshotId)

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
