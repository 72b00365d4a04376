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
import { createHash } from "node:crypto"
import * as os from "node:os"
import { Catalog, type FileFilter, type LakeFile, type PendingWrite, type Rename } from "./Catalog.js"
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
  InvalidChange,
  type ReaderRoleConflict,
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
export { DEFAULT_INGEST_SNAPSHOT, type IngestInput, type IngestReport, MAX_INGEST_SNAPSHOT } from "./client/ingest.js"
export { type RecordError, type RecordInput } from "./client/write.js"
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
import * as CurrentIndex from "./client/currentIndex.js"
import * as Ingest from "./client/ingest.js"
import type { IngestInput, IngestReport } from "./client/ingest.js"
import * as Write from "./client/write.js"
import type { RecordError, RecordInput } from "./client/write.js"

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
  const writeSnapshot = <E extends { readonly _tag: string; readonly message: string }>(p: Project, input: Write.SnapshotWrite<E>) =>
    Write.writeSnapshot(ctx, p, input)

  const recordChanges: DuckLakeClientService["recordChanges"] = (input) => Write.recordChanges(ctx, input)
  const ingestChanges: DuckLakeClientService["ingestChanges"] = (input) => Ingest.ingestChanges(ctx, input)


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
