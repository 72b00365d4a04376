/**
 * `Catalog`: the PostgreSQL side. A shared schema (`mesa_ducklake`) holds the project registry and the write-ahead
 * log; each project's history is a DuckLake 1.0 catalog in its own schema.
 *
 * The connection is opened lazily and re-tried on the next call after a failure, so a catalog that is down when the
 * client starts gives `CatalogUnavailable` on each call until it is back, rather than poisoning the client.
 *
 * This module is the service: its interface, tag, `make` and `layer`. The statements live behind it in
 * `src/catalog/`, one module per capability: `connection.ts` (client, writer lock, error mapping), `projects.ts`
 * (registry, reader roles), `snapshots.ts` (reservation, write-ahead log, commit records, markers), `commit.ts`
 * (committing a batch), `currentState.ts` (the current-state index), `files.ts` (data files for reads and
 * compaction), `compaction.ts` (compaction commits, scheduled deletions), `history.ts` (snapshots, renames),
 * `lakeSchema.ts` (the lake's version check and layout upgrade); shapes in `types.ts`.
 */
import type { SqlClient, SqlError } from "@effect/sql"
import { Context, Effect, Layer, type Option, type Redacted, type Scope } from "effect"
import type { ProjectArchived, ProjectConflict, ProjectNotFound, ReaderRoleConflict, SnapshotNotFound } from "../core/errors.js"
import type { ChangeRow, IrodsPath, Project, ProjectStatus, Snapshot } from "../core/domain.js"
import * as Commit from "./commit.js"
import * as Compaction from "./compaction.js"
import { type CatalogConfig, makeConn, type WriteSession } from "./connection.js"
import * as CurrentState from "./currentState.js"
import { makeIndexCopy, type Staged as StagedIndexRows } from "./indexCopy.js"
import * as Files from "./files.js"
import * as History from "./history.js"
import * as Projects from "./projects.js"
import type * as Readers from "./readers.js"
import * as Snapshots from "./snapshots.js"
import type {
  CommitBasis,
  CommitRecord,
  CurrentRow,
  DataFileInfo,
  Failure,
  FileFilter,
  IdempotentHit,
  LakeFile,
  LiveFile,
  PendingWrite,
  IndexView,
  Rename,
  Reservation,
  ReservationPlan,
  ReserveInput
} from "./types.js"

export {
  type CatalogConfig,
  DEFAULT_CONNECT_TIMEOUT_MS,
  DEFAULT_STATEMENT_TIMEOUT_MS,
  describeDsn,
  type WriteSession
} from "./connection.js"
export type {
  ColumnStats,
  CommitBasis,
  CommitRecord,
  CurrentRow,
  DataFileInfo,
  FileFilter,
  IdempotentHit,
  LakeFile,
  LiveFile,
  PendingWrite,
  Rename,
  Reservation,
  ReservationPlan
} from "./types.js"
export type { Staged as StagedIndexRows } from "./indexCopy.js"
export { currentAvuRow, INDEX_THROUGH_KEY, indexMark, latestPerTriple } from "./currentState.js"
export { chainHead, chainRow } from "./chainTable.js"
export { fileStatsRows } from "./files.js"
export { checkLakeSchema } from "./lakeSchema.js"
export { COLUMNS } from "./ducklakeSchema.js"

export interface CatalogService {
  /**
   * Registers a project and creates its lake schema. `prepare` runs after the conflict checks and before the commit
   * (the client creates the lake collection there), so a refused registration touches nothing.
   */
  readonly registerProject: <E>(input: {
    readonly irodsPath: IrodsPath
    readonly irodsZone: string
    readonly actor: string
    readonly ducklakePath: IrodsPath
    readonly prepare: Effect.Effect<void, E>
  }) => Effect.Effect<Project, Failure | ProjectConflict | E>
  readonly getProject: (projectId: string) => Effect.Effect<Project, Failure | ProjectNotFound>
  readonly findProjectByPath: (path: IrodsPath) => Effect.Effect<Project, Failure | ProjectNotFound>
  readonly listProjects: Effect.Effect<ReadonlyArray<Project>, Failure>
  readonly setProjectStatus: (projectId: string, status: ProjectStatus) => Effect.Effect<void, Failure | ProjectNotFound>
  /**
   * A login role that may read one project's lake schema and nothing else (for analysts who ATTACH it with
   * DuckDB): USAGE on the schema, SELECT on its tables now and later. Created if missing; its password is set.
   */
  readonly grantReader: (
    project: Project,
    role: string,
    password: Redacted.Redacted<string>,
    options?: Readers.GrantReaderOptions
  ) => Effect.Effect<void, Failure | ReaderRoleConflict>
  /**
   * Runs `body` in a write session of the project (see `WriteSession`): the writer lock is taken with the session's
   * reservation (`reserveSnapshot` given the session) or by `lockSession`, and released with its commit
   * (`commitSnapshot` given the session) or when the body ends. What needs the lock runs after one of those.
   */
  readonly writeSession: <A, E, R>(
    projectId: string,
    body: (session: WriteSession) => Effect.Effect<A, E, R>
  ) => Effect.Effect<A, E | Failure, R>
  /** Takes the session's writer lock now (one round trip), if it does not hold it. */
  readonly lockSession: (session: WriteSession) => Effect.Effect<void, Failure>
  /** Runs `effect` holding the project's writer lock (one writer per project at a time, across processes). */
  readonly withWriteLock: <A, E, R>(
    projectId: string,
    effect: Effect.Effect<A, E, R>
  ) => Effect.Effect<A, E | Failure, R>
  readonly findIdempotent: (project: Project, key: string) => Effect.Effect<Option.Option<IdempotentHit>, Failure>
  /** Current-state rows (latest change per triple, adds and deletes) of the given paths. */
  readonly currentRows: (
    project: Project,
    paths: ReadonlyArray<string>
  ) => Effect.Effect<ReadonlyArray<CurrentRow>, Failure>
  /**
   * Current-state rows of the given (path, attribute) pairs, all a batch of changes needs to be expanded, with the
   * view they were read in (`IndexView`; none when no pair was given and nothing was read).
   */
  readonly currentRowsOf: (
    project: Project,
    keys: ReadonlyArray<readonly [path: string, attribute: string]>
  ) => Effect.Effect<{ readonly view: IndexView | undefined; readonly rows: ReadonlyArray<CurrentRow> }, Failure>
  /**
   * Current-state rows of the given pairs with the index's mark, in one statement: `through` is the last snapshot
   * the index is known to hold (null: every committed one). What a bulk ingest expands its next snapshot against.
   */
  readonly indexedRowsOf: (
    project: Project,
    keys: ReadonlyArray<readonly [path: string, attribute: string]>
  ) => Effect.Effect<{ readonly through: number | null; readonly rows: ReadonlyArray<CurrentRow> }, Failure>
  /** The id and clock the next reservation would get (reads only). Call under the writer lock. */
  readonly planReservation: (project: Project) => Effect.Effect<ReservationPlan, Failure>
  /**
   * Hands out the next snapshot id and clock, and logs the write as pending. Call under the writer lock, or give
   * the write session: the reservation then takes the lock in the same round trip if the session does not hold it.
   */
  readonly reserveSnapshot: (
    project: Project,
    input: ReserveInput,
    session?: WriteSession
  ) => Effect.Effect<Reservation, Failure | ProjectArchived | ProjectNotFound>
  readonly markPushed: (projectId: string, snapshotId: number, checksum: string) => Effect.Effect<void, Failure>
  /** Makes the snapshot visible: DuckLake rows, current-state index and WAL state in one transaction. */
  readonly commitSnapshot: (
    project: Project,
    write: PendingWrite,
    file: DataFileInfo,
    rows: ReadonlyArray<ChangeRow>,
    renames?: ReadonlyArray<Rename>,
    options?: {
      /**
       * Leave the current-state index behind (bulk ingest): the commit notes the last snapshot the index covers, and
       * `applyIndex` catches it up later. Readers meanwhile answer from the Parquet files.
       */
      readonly deferIndex?: boolean
      /** What the reservation read to build on (`Reservation.basis`); without it the commit reads it first. */
      readonly basis?: CommitBasis
      /** The write session holding the lock: the commit runs on its connection and releases the lock with it. */
      readonly session?: WriteSession
    }
  ) => Effect.Effect<Date, Failure>
  /** True when the current-state index holds no rows (a project that has recorded nothing, or only deferred). */
  readonly indexEmpty: (project: Project) => Effect.Effect<boolean, Failure>
  /** The last snapshot the current-state index covers when it is behind the committed snapshots, else null. */
  readonly indexThrough: (project: Project) => Effect.Effect<number | null, Failure>
  /**
   * Catches the current-state index up through snapshot `through` with that range's change rows, in one
   * transaction that moves the mark to `through` (or removes it at the latest snapshot, unless `keepMark`: then the
   * mark stays, at `through`). Serialised with commits (it takes their table lock), so a bulk ingest may apply its
   * own snapshots outside the writer lock — with `keepMark`, since only a holder of the writer lock may remove it.
   */
  readonly applyIndex: (
    project: Project,
    rows: ReadonlyArray<ChangeRow>,
    through: number,
    options?: { readonly keepMark?: boolean }
  ) => Effect.Effect<void, Failure>
  /**
   * `applyIndex` in two steps, so a bulk ingest stages its next snapshot's rows while the previous one is upserted:
   * `stageIndexRows` copies the rows into a staging table in an open transaction on one of two connections of its
   * own (no lock taken); `commitIndexRows` upserts them, moves the mark and commits; `abandonIndexRows` rolls them
   * back. The staging holds its connection until the scope closes.
   */
  readonly stageIndexRows: (rows: ReadonlyArray<ChangeRow>) => Effect.Effect<StagedIndexRows, Failure, Scope.Scope>
  readonly commitIndexRows: (
    staged: StagedIndexRows,
    project: Project,
    through: number,
    options?: { readonly keepMark?: boolean }
  ) => Effect.Effect<void, Failure>
  readonly abandonIndexRows: (staged: StagedIndexRows) => Effect.Effect<void>
  /** Committed data snapshots after `after` with their change counts, oldest first (what a catch-up reads). */
  readonly snapshotsAfter: (
    project: Project,
    after: number
  ) => Effect.Effect<ReadonlyArray<{ readonly snapshotId: number; readonly changeCount: number }>, Failure>
  /** Renames recorded in the project, newest first (by valid time, then snapshot). */
  readonly renames: (project: Project, maxSnapshot?: number) => Effect.Effect<ReadonlyArray<Rename>, Failure>
  /** Current-state rows of a path and everything below it (for collection moves). */
  readonly currentRowsUnder: (project: Project, path: string) => Effect.Effect<ReadonlyArray<CurrentRow>, Failure>
  readonly dropPending: (projectId: string, snapshotId: number) => Effect.Effect<void, Failure>
  /** The commit record of a committed snapshot, as its marker file carries it. */
  readonly commitRecord: (project: Project, snapshotId: number) => Effect.Effect<CommitRecord, Failure>
  readonly markerWritten: (project: Project, snapshotId: number) => Effect.Effect<void, Failure>
  /** Committed snapshots whose marker is not known to be stored yet, oldest first. */
  readonly missingMarkers: (project: Project, limit: number) => Effect.Effect<ReadonlyArray<number>, Failure>
  readonly failPending: (
    projectId: string,
    snapshotId: number,
    error: string,
    terminal: boolean
  ) => Effect.Effect<void, Failure>
  readonly pendingWrites: (options: { readonly limit: number }) => Effect.Effect<ReadonlyArray<PendingWrite>, Failure>
  /** One write-ahead row as it is now (None once committed). */
  readonly pendingWrite: (projectId: string, snapshotId: number) => Effect.Effect<Option.Option<PendingWrite>, Failure>
  /** True when the snapshot id is committed in the project's lake. */
  readonly isCommitted: (project: Project, snapshotId: number) => Effect.Effect<boolean, Failure>
  /** Every file referenced by a pending or failed write, across projects: never evicted from the local cache. */
  readonly pinnedLocalFiles: Effect.Effect<ReadonlySet<string>, Failure>
  readonly files: (project: Project, filter: FileFilter) => Effect.Effect<ReadonlyArray<LakeFile>, Failure>
  /**
   * A path's current AVUs from the index; while the index lags the commits (`behind`), what it holds of the path
   * through its mark instead, for the caller to combine with the changes after it.
   */
  readonly currentAvus: (project: Project, path: string) => Effect.Effect<CurrentState.CurrentAvus, Failure>
  readonly listSnapshots: (
    project: Project,
    options: { readonly limit: number }
  ) => Effect.Effect<ReadonlyArray<Snapshot>, Failure>
  /** Latest committed snapshot id at or before a transaction time (undefined before the first). */
  readonly snapshotAt: (project: Project, at: Date) => Effect.Effect<number | undefined, Failure>
  readonly requireSnapshot: (
    project: Project,
    snapshotId: number
  ) => Effect.Effect<void, Failure | SnapshotNotFound>
  readonly latestSnapshot: (project: Project) => Effect.Effect<number, Failure>
  /** Live data files of the project's table, in snapshot order (for compaction). */
  readonly liveFiles: (project: Project) => Effect.Effect<ReadonlyArray<LiveFile>, Failure>
  /**
   * Replaces adjacent files by one compacted file, as DuckLake's merge_adjacent_files does: the new file begins at
   * the first source's snapshot and records the last in `partial_max`; the sources leave the catalog and are
   * scheduled for deletion. Its own snapshot carries `merge_adjacent`. Fails if a source is no longer live.
   */
  readonly commitCompaction: (
    project: Project,
    input: {
      readonly sources: ReadonlyArray<LiveFile>
      readonly file: DataFileInfo
      readonly actor: string
    },
    /** The write session: its lock is taken with the commit's first round trip and released with its second. */
    session?: WriteSession
  ) => Effect.Effect<{
    readonly snapshotId: number
    readonly snapshotTime: Date
    readonly dataFileId: number
    readonly prevHash: string
    readonly recordHash: string
  }, Failure>
  /** Files scheduled for deletion before `before` (paths relative to the ducklake collection). */
  readonly scheduledForDeletion: (
    project: Project,
    before: Date
  ) => Effect.Effect<ReadonlyArray<{ readonly dataFileId: number; readonly relativePath: string }>, Failure>
  readonly forgetScheduled: (project: Project, dataFileIds: ReadonlyArray<number>) => Effect.Effect<void, Failure>
  /** Records that scheduled files were moved to `prefix` (relative to the lake) + their file name. */
  readonly moveScheduled: (
    project: Project,
    dataFileIds: ReadonlyArray<number>,
    prefix: string
  ) => Effect.Effect<void, Failure>
  /** Raw SQL access for maintenance jobs and tests. */
  readonly withSql: <A, E>(
    f: (sql: SqlClient.SqlClient) => Effect.Effect<A, E>
  ) => Effect.Effect<A, Exclude<E, SqlError.SqlError> | Failure>
  /** host:port/database, for messages (no password). */
  readonly target: string
}

export class Catalog extends Context.Tag("mesa-ducklake/Catalog")<Catalog, CatalogService>() {}

/** The service over one catalog connection: each method is a statement module's function on that connection. */
export const make = (config: CatalogConfig) =>
  Effect.gen(function*() {
    const conn = yield* makeConn(config)
    const indexCopy = yield* makeIndexCopy(conn, config)
    return Catalog.of({
      // Projects and the registry
      registerProject: (input) => Projects.registerProject(conn, input),
      getProject: (projectId) => Projects.getProject(conn, projectId),
      findProjectByPath: (path) => Projects.findProjectByPath(conn, path),
      listProjects: Projects.listProjects(conn),
      setProjectStatus: (projectId, status) => Projects.setProjectStatus(conn, projectId, status),
      grantReader: (project, role, password, options) => Projects.grantReader(conn, project, role, password, options),
      // Writing: the lock, reservation, the write-ahead log, the commit
      writeSession: conn.writeSession,
      lockSession: (session) => Effect.asVoid(session.run(() => [], "lock")),
      withWriteLock: conn.withWriteLock,
      findIdempotent: (project, key) => Snapshots.findIdempotent(conn, project, key),
      planReservation: (project) => Snapshots.planReservation(conn, project),
      reserveSnapshot: (project, input, session) => Snapshots.reserveSnapshot(conn, project, input, session),
      markPushed: (projectId, snapshotId, checksum) => Snapshots.markPushed(conn, projectId, snapshotId, checksum),
      commitSnapshot: (project, write, file, rows, renames, options) =>
        Commit.commitSnapshot(conn, project, write, file, rows, renames, options),
      dropPending: (projectId, snapshotId) => Snapshots.dropPending(conn, projectId, snapshotId),
      failPending: (projectId, snapshotId, error, terminal) =>
        Snapshots.failPending(conn, projectId, snapshotId, error, terminal),
      pendingWrites: (options) => Snapshots.pendingWrites(conn, options),
      pendingWrite: (projectId, snapshotId) => Snapshots.pendingWrite(conn, projectId, snapshotId),
      isCommitted: (project, snapshotId) => Snapshots.isCommitted(conn, project, snapshotId),
      pinnedLocalFiles: Snapshots.pinnedLocalFiles(conn),
      commitRecord: (project, snapshotId) => Snapshots.commitRecord(conn, project, snapshotId),
      markerWritten: (project, snapshotId) => Snapshots.markerWritten(conn, project, snapshotId),
      missingMarkers: (project, limit) => Snapshots.missingMarkers(conn, project, limit),
      // The current-state index
      currentRows: (project, paths) => CurrentState.currentRows(conn, project, paths),
      currentRowsOf: (project, keys) => CurrentState.currentRowsOf(conn, project, keys),
      indexedRowsOf: (project, keys) => CurrentState.indexedRowsOf(conn, project, keys),
      currentRowsUnder: (project, path) => CurrentState.currentRowsUnder(conn, project, path),
      currentAvus: (project, path) => CurrentState.currentAvus(conn, project, path),
      indexThrough: (project) => CurrentState.indexThrough(conn, project),
      indexEmpty: (project) => CurrentState.indexEmpty(conn, project),
      applyIndex: (project, rows, through, options) => indexCopy.apply(project, rows, through, options?.keepMark === true),
      stageIndexRows: indexCopy.stage,
      commitIndexRows: (staged, project, through, options) =>
        indexCopy.finish(staged, project, through, options?.keepMark === true),
      abandonIndexRows: indexCopy.abandon,
      // History
      listSnapshots: (project, options) => History.listSnapshots(conn, project, options),
      snapshotAt: (project, at) => History.snapshotAt(conn, project, at),
      requireSnapshot: (project, snapshotId) => History.requireSnapshot(conn, project, snapshotId),
      latestSnapshot: (project) => History.latestSnapshot(conn, project),
      snapshotsAfter: (project, after) => History.snapshotsAfter(conn, project, after),
      renames: (project, maxSnapshot) => History.renames(conn, project, maxSnapshot),
      // Files and compaction
      files: (project, filter) => Files.files(conn, project, filter),
      liveFiles: (project) => Files.liveFiles(conn, project),
      commitCompaction: (project, input, session) => Compaction.commitCompaction(conn, project, input, session),
      scheduledForDeletion: (project, before) => Compaction.scheduledForDeletion(conn, project, before),
      forgetScheduled: (project, ids) => Compaction.forgetScheduled(conn, project, ids),
      moveScheduled: (project, ids, prefix) => Compaction.moveScheduled(conn, project, ids, prefix),
      withSql: (f) => conn.withSql(f),
      target: conn.target
    })
  })

/** The live catalog layer. Connects lazily: building it never fails because PostgreSQL is down. */
export const layer = (config: CatalogConfig) => Layer.scoped(Catalog, make(config))
