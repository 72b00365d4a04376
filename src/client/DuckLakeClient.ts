/**
 * `DuckLakeClient`: the one entry point. Register projects, record batches of AVU changes as snapshots, and ask
 * what the metadata looked like at any time.
 *
 * This module is the client's public face: the service interface, its tag, `make` (which composes the
 * capabilities) and the layers. Each capability lives in its own module under src/client/:
 *   context.ts       the services, settings, `WriteProbe`, the project lookup, argument checks (below the others)
 *   files.ts         the checksum-bound read path; uploads and marker files
 *   markers.ts       commit and compaction markers, the hash chain's anchor
 *   background.ts    the marker queue and worker, background work, `flush`
 *   write.ts         the write protocol, top to bottom, and `recordChanges`
 *   ingest.ts        bulk ingest
 *   currentIndex.ts  the current-state index catching up after a bulk ingest
 *   renames.ts       renames and lineage
 *   read.ts          every read: current, as-of, history, snapshots, diff
 *   compaction.ts    compaction (manual and automatic), deleting replaced files
 *   recovery.ts      finishing or failing writes whose writer died
 *   projects.ts      registration, status, reader roles, verification
 * Modules in src/client/ never import this one.
 */
import { Context, Effect, Layer, type Redacted } from "effect"
import { makeBackground } from "./background.js"
import * as Compaction from "./compaction.js"
import { type CatalogFailure, type ClientContext, type ClientSettings, makeCore, type ReadError } from "./context.js"
import * as CurrentIndex from "./currentIndex.js"
import * as Ingest from "./ingest.js"
import type { IngestInput, IngestReport } from "./ingest.js"
import * as Projects from "./projects.js"
import * as Read from "./read.js"
import * as Recovery from "./recovery.js"
import * as Renames from "./renames.js"
import * as Write from "./write.js"
import type { RecordError, RecordInput } from "./write.js"
import type {
  AsOfOptions,
  Avu,
  ChangeRow,
  CompactionReport,
  HistoryFilter,
  NotRecorded,
  PathDiff,
  Project,
  RecordResult,
  RecoveryReport,
  RenameInput,
  Snapshot
} from "../core/domain.js"
import {
  CatalogUnavailable,
  type InvalidChange,
  type LakeWriteError,
  type ProjectConflict,
  type ProjectNotFound,
  type ReaderRoleConflict,
  type SnapshotNotFound,
  type StorageError
} from "../core/errors.js"
import type { VerifyReport } from "../integrity/verify.js"

/** Collection (under a project's ducklake path) holding one commit marker per committed snapshot. */
export { MARKER_DIR } from "../core/layout.js"
export { type ClientSettings, WriteProbe, type WriteStep } from "./context.js"
export { DEFAULT_INGEST_SNAPSHOT, type IngestInput, type IngestReport, MAX_INGEST_SNAPSHOT } from "./ingest.js"
export { AUTO_TIER_RATIO, DEFAULT_AUTO_COMPACT_EVERY } from "./compaction.js"
export { type RecordError, type RecordInput } from "./write.js"

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
   * Bulk ingest (an import, a backfill): a long sequence of changes, read from an iterable or async iterable, is
   * recorded as consecutive snapshots of at most `snapshotSize` changes, each through the same write protocol as
   * `recordChanges`. Each snapshot is atomic; on an error the snapshots before it stay recorded (the error's index
   * is the position in the whole sequence). With an `idempotencyKey` the n-th snapshot uses `<key>#<n>`, so
   * running the same ingest again after a failure resumes where it stopped and records nothing twice.
   */
  readonly ingestChanges: (input: IngestInput) => Effect.Effect<IngestReport | NotRecorded, RecordError>
  /**
   * Records a rename or move (iRODS `imv`) as one snapshot: the object's AVUs leave the old path and arrive at the
   * new one, and its history follows it (queries by the new path include the time before the move; the old path
   * still answers for that time). A collection's move carries every path below it.
   */
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

/** The client over the Catalog, LakeStorage, DuckDb and LocalCache in context (and a `WriteProbe`, if provided). */
export const make = (settings: ClientSettings = {}) =>
  Effect.gen(function*() {
    const core = yield* makeCore(settings)
    const background = yield* makeBackground(core)
    // A project this client has not used yet may have been left with many files: see `compactOnFirstUse`.
    const seen = new Set<string>()
    const ctx: ClientContext = {
      ...core,
      background,
      project: (projectId) =>
        Effect.tap(core.project(projectId), (p) => {
          if (seen.has(p.projectId)) return Effect.void
          seen.add(p.projectId)
          return Compaction.compactOnFirstUse(ctx, p)
        })
    }
    return DuckLakeClient.of({
      recording: true,
      registerProject: (input) => Projects.registerProject(ctx, input),
      getProject: (projectId) => ctx.project(projectId),
      findProjectByPath: (path) => Projects.findProjectByPath(ctx, path),
      listProjects: ctx.catalog.listProjects,
      setProjectStatus: (projectId, status) => Projects.setProjectStatus(ctx, projectId, status),
      grantProjectReader: (projectId, role, password, options) =>
        Projects.grantProjectReader(ctx, projectId, role, password, options),
      verifyProject: (projectId) => Projects.verifyProject(ctx, projectId),
      recordChanges: (input) =>
        Effect.acquireUseRelease(
          Effect.sync(() => void ctx.foreground.active++),
          () => Write.recordChanges(ctx, input),
          () => Effect.sync(() => void ctx.foreground.active--)
        ),
      ingestChanges: (input) => Ingest.ingestChanges(ctx, input),
      recordRename: (input) => Renames.recordRename(ctx, input),
      catchUpIndex: (projectId) => CurrentIndex.catchUpIndex(ctx, projectId),
      getAvus: (projectId, path) => Read.getAvus(ctx, projectId, path),
      getAvusAsOf: (projectId, path, at, options) => Read.getAvusAsOf(ctx, projectId, path, at, options),
      getHistory: (projectId, filter) => Read.getHistory(ctx, projectId, filter),
      listSnapshots: (projectId, options) => Read.listSnapshots(ctx, projectId, options),
      diff: (projectId, from, to) => Read.diff(ctx, projectId, from, to),
      getSnapshotChanges: (projectId, snapshotId) => Read.getSnapshotChanges(ctx, projectId, snapshotId),
      compact: (projectId, options) => Compaction.compactProject(ctx, projectId, options),
      deleteScheduledFiles: (projectId, options) => Compaction.deleteScheduledFiles(ctx, projectId, options),
      recoverPendingPushes: (options) => Recovery.recoverPendingPushes(ctx, options),
      flush: ctx.background.flush
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
