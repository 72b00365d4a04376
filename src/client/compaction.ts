/**
 * Compaction: merging a project's small snapshot files into files of about a target size (DuckLake's
 * merge-adjacent representation), automatically every N snapshots if configured, and removing the replaced files
 * after a grace period.
 *
 * Owns: `compactionGroups` (which files are merged), `compact`, `compactProject`, `maybeAutoCompact`,
 * `compactOnFirstUse`, `deleteScheduledFiles`.
 * May call: context.ts, files.ts (reads and uploads), markers.ts (the compaction marker, the chain anchor).
 */
import { Deferred, Effect, Exit, FiberId } from "effect"
import { randomBytes } from "node:crypto"
import * as fs from "node:fs/promises"
import * as os from "node:os"
import * as nodePath from "node:path"
import type { LiveFile } from "../catalog/Catalog.js"
import { SOURCE_GONE } from "../catalog/compaction.js"
import { COLUMNS_METADATA, TABLE_ID, TABLE_NAME } from "../catalog/ducklakeSchema.js"
import { paddedId, REPLACED_DIR } from "../core/layout.js"
import type { CompactionReport, Project } from "../core/domain.js"
import { LakeWriteError } from "../core/errors.js"
import { formatIrodsChecksum } from "../storage/LakeStorage.js"
import { type ClientContext, type ClientCore, invalid, type RunningCompaction, textArg } from "./context.js"
import { readable, upload } from "./files.js"
import { anchorHead, writeCompactionMarker } from "./markers.js"

export interface CompactOptions {
  readonly targetFileSize?: number
  readonly minFiles?: number
  readonly actor?: string
  /**
   * Tiered (what automatic compaction uses): a run's leading file is left out while it is more than `tierRatio`
   * times the size of the files after it, so a large compacted file is merged again only once the newer files
   * amount to a fair share of it. Files are rewritten O(log n) times instead of at every compaction.
   */
  readonly tierRatio?: number
  /**
   * Rows a merged file may hold (default `COMPACTION_MAX_ROWS`): a larger merge sorts more in DuckDB at once. A file
   * with as many rows ends a run and stays as it is, like one at the target size.
   */
  readonly maxRows?: number
}

/**
 * The rows a compaction merges into one file when nothing is said. DuckDB sorts a group's rows at once: after a
 * 1M-change bulk ingest, automatic compaction merged its 100 files in one sort and the process peaked at 520–590 MB
 * (from ~250 MB); with groups of at most 100,000 rows, 405 MB, and 244–280 MB once each merge also ran on a
 * one-thread DuckDB instance of its own (`DuckDbOptions.compactionThreads`).
 */
export const COMPACTION_MAX_ROWS = 100_000

/** Where a project's live files are, and where the files a compaction replaced wait until deleted. */
const liveDir = (p: Project) => `${p.ducklakePath}/main/${TABLE_NAME}`
const asideDir = (p: Project) => `${p.ducklakePath}/${REPLACED_DIR}/${TABLE_NAME}`

/**
 * File operations a compaction runs at once (reading its sources through the checksum check, moving the replaced
 * files aside). They run on libuv's thread pool (4 threads by default), which the foreground's pushes share: with 8,
 * automatic compaction every 50 snapshots filled the pool and a write's push waited behind it (1- and 10-change
 * writes beside the bench's floor: p95 2.1-2.6x their p50); with 2, 1.55-1.66x.
 */
const COMPACTION_IO_CONCURRENCY = 2

/**
 * A temporary directory for `use`, removed after it whatever ends it. Made uninterruptibly: an interruption while
 * `mkdtemp` ran left the directory behind (the CLI interrupt test found `mesa-compact-*` after a SIGTERM at 375 ms).
 */
const withTempDir = <A, E, R>(prefix: string, use: (dir: string) => Effect.Effect<A, E, R>) =>
  Effect.acquireUseRelease(
    Effect.promise(() => fs.mkdtemp(nodePath.join(os.tmpdir(), prefix))),
    use,
    (dir) => Effect.promise(() => fs.rm(dir, { recursive: true, force: true }))
  )

/** Snapshots between automatic compactions when nothing is configured (`MESA_DUCKLAKE_AUTO_COMPACT_EVERY`). */
export const DEFAULT_AUTO_COMPACT_EVERY = 50
/** The tier ratio automatic compaction uses (see `CompactOptions.tierRatio`). */
export const AUTO_TIER_RATIO = 4

/**
 * The files a compaction merges: runs of adjacent live files smaller than `target`, each run up to `target` bytes
 * and `maxRows` rows, kept only if it has at least `minFiles` files. A file at or over either limit ends a run and
 * stays as it is.
 * With `tierRatio`, each run's leading files are dropped while one outweighs the rest `tierRatio` times over.
 */
export const compactionGroups = (
  live: ReadonlyArray<LiveFile>,
  target: number,
  minFiles: number,
  tierRatio?: number,
  maxRows: number = COMPACTION_MAX_ROWS
): Array<Array<LiveFile>> => {
  const groups: Array<Array<LiveFile>> = []
  let run: Array<LiveFile> = []
  let runBytes = 0
  let runRows = 0
  const close = () => {
    if (tierRatio !== undefined) {
      while (run.length > 0 && run[0]!.fileSizeBytes > tierRatio * (runBytes - run[0]!.fileSizeBytes)) {
        runBytes -= run[0]!.fileSizeBytes
        run = run.slice(1)
      }
    }
    if (run.length >= minFiles) groups.push(run)
    run = []
    runBytes = 0
    runRows = 0
  }
  for (const f of live) {
    if (f.fileSizeBytes >= target || f.recordCount >= maxRows) {
      close()
      continue
    }
    if (runBytes + f.fileSizeBytes > target || runRows + f.recordCount > maxRows) close()
    run.push(f)
    runBytes += f.fileSizeBytes
    runRows += f.recordCount
  }
  close()
  return groups
}

/**
 * Waits while a foreground `recordChanges` of this client is in flight, at most `maxMs`: automatic compaction runs
 * this before each of its steps (the merge, the upload, each file it moves aside), so its work goes between writes
 * instead of beside them on two cores. In alternating pairs of the quick bench (9 pairs) the worse write p95/p50 of a
 * run averaged 1.70x with it and 1.81x without; each step waits 20 ms at most, so a busy writer only slows it down.
 */
export const afterForeground = (foreground: { readonly active: number }, maxMs = 20) =>
  Effect.suspend(() => {
    if (foreground.active === 0) return Effect.void
    const until = Date.now() + maxMs
    const wait: Effect.Effect<void> = Effect.suspend(() =>
      foreground.active === 0 || Date.now() >= until ? Effect.void : Effect.zipRight(Effect.sleep("1 millis"), wait)
    )
    return wait
  })

/**
 * Compacts a project. The merging (reading the sources, writing and pushing the merged file) runs without the
 * writer lock, so writes go on meanwhile; each group's commit takes the lock briefly and fails cleanly (its pushed
 * file removed, nothing committed) if another compaction replaced one of its sources first. New snapshot files only
 * ever come after the live ones, so a group chosen at the start stays adjacent.
 */
export const compact = (
  ctx: ClientCore,
  projectId: string,
  options?: CompactOptions,
  /** Run before each step (automatic compaction: `afterForeground`). */
  pace: Effect.Effect<void> = Effect.void,
  /** Listings at most (see `compactChecked`); automatic compaction makes one, its next trigger tries again. */
  rounds: number = COMPACTION_ROUNDS
) =>
  Effect.gen(function*() {
    const checked = yield* checkOptions(options)
    return yield* compactChecked(ctx, yield* ctx.project(projectId), checked, pace, rounds)
  })

/** `compact` with its options checked (`checkOptions`) and its project found. */
const compactChecked = Effect.fn("DuckLakeClient.compact")(function*(
  ctx: ClientCore,
  p: Project,
  { target, minFiles, tierRatio, maxRows, actor }: CheckedOptions,
  pace: Effect.Effect<void> = Effect.void,
  rounds: number = COMPACTION_ROUNDS
) {
  const { catalog } = ctx
  const snapshots: Array<number> = []
  let before: ReadonlyArray<LiveFile> = []
  let bytesAfter = 0
  let filesAfter = 0
  yield* withTempDir("mesa-compact-", (dir) =>
    Effect.gen(function*() {
      // A group another compaction (another client) got to first is skipped, and the round ends there: the other
      // is likely working through the same files. They are listed and grouped again, so what is left is merged too,
      // at most `rounds` times.
      for (let round = 1;; round++) {
        const live = yield* catalog.liveFiles(p)
        if (round === 1) before = live
        bytesAfter = live.reduce((n, f) => n + f.fileSizeBytes, 0)
        filesAfter = live.length
        let skipped = false
        for (const group of compactionGroups(live, target, minFiles, tierRatio, maxRows)) {
          const merged = yield* compactGroup(ctx, p, group, dir, actor, pace)
          if (merged === undefined) {
            skipped = true
            break
          }
          snapshots.push(merged.snapshotId)
          bytesAfter += merged.fileSizeBytes - group.reduce((n, f) => n + f.fileSizeBytes, 0)
          filesAfter += 1 - group.length
        }
        if (!skipped || round >= rounds) break
      }
    }))
  // The chain's head is anchored under the writer lock, where the storage keeps one (not on a mount).
  if (snapshots.length > 0 && ctx.storage.anchor !== undefined) {
    yield* catalog.withWriteLock(p.projectId, anchorHead(ctx, p)).pipe(
      Effect.catchAll((e) => Effect.logWarning("chain anchor deferred to recovery", e))
    )
  }
  yield* Effect.annotateCurrentSpan({ projectId: p.projectId, filesBefore: before.length, filesAfter })
  const report: CompactionReport = {
    filesBefore: before.length,
    filesAfter,
    filesWritten: snapshots.length,
    bytesBefore: before.reduce((n, f) => n + f.fileSizeBytes, 0),
    bytesAfter,
    snapshots
  }
  return report
})

/** Times a compaction lists and groups the live files when another compaction took some of its groups first. */
const COMPACTION_ROUNDS = 3

type CheckedOptions = Effect.Effect.Success<ReturnType<typeof checkOptions>>

/** A compaction's options with their defaults, or a typed error for a bad one. */
const checkOptions = (options: CompactOptions | undefined) =>
  Effect.gen(function*() {
    const target = options?.targetFileSize ?? 64 * 1024 * 1024
    const minFiles = options?.minFiles ?? 2
    const tierRatio = options?.tierRatio
    const maxRows = options?.maxRows ?? COMPACTION_MAX_ROWS
    if (!Number.isSafeInteger(maxRows) || maxRows < 1) return yield* invalid("maxRows", "must be an integer >= 1")
    if (!Number.isSafeInteger(target) || target < 1024) return yield* invalid("targetFileSize", "must be an integer >= 1024")
    if (!Number.isSafeInteger(minFiles) || minFiles < 2) return yield* invalid("minFiles", "must be an integer >= 2")
    if (tierRatio !== undefined && !(Number.isFinite(tierRatio) && tierRatio > 0)) {
      return yield* invalid("tierRatio", "must be a positive number")
    }
    const actor = (yield* textArg("actor", options?.actor, { optional: true })) ?? "mesa-ducklake:compact"
    return { target, minFiles, tierRatio, maxRows, actor }
  })

/**
 * `DuckLakeClient.compact`: a compaction asked for. It first waits for this client's automatic compaction of the
 * project, which would choose the same files (the one that commits second is skipped: before, a `compact` called
 * while one ran could merge nothing and report as many files after as before, 203 → 203 in a bench run), and holds
 * off the next until it ends; a trigger that came meanwhile starts one after it. Bad options and an unknown project
 * fail at once, before any wait.
 */
export const compactProject = (ctx: ClientContext, projectId: string, options?: CompactOptions) =>
  Effect.gen(function*() {
    const checked = yield* checkOptions(options)
    const p = yield* ctx.project(projectId)
    // The turn is taken and its release attached with no interruption between (a turn left taken would hold off
    // every later compaction of the project in this client); only the wait for it can be interrupted.
    return yield* Effect.uninterruptibleMask((restore) =>
      Effect.flatMap(takeTurn(ctx, p.projectId, restore), (mine) =>
        restore(compactChecked(ctx, p, checked)).pipe(
          Effect.ensuring(Effect.suspend(() => {
            endTurn(ctx, p.projectId, mine)
            // Another `compact` waiting takes the turn next and starts the automatic one after it.
            return !mine.requested && ctx.compactAgain.delete(p.projectId) ? autoCompact(ctx, p) : Effect.void
          }))
        ))
    )
  })

/**
 * Waits (interruptibly, through `restore`) until no compaction of the project runs in this client, asking a
 * running automatic one to stop after its round, then takes the turn.
 */
const takeTurn = (
  ctx: ClientCore,
  projectId: string,
  restore: <A, E, R>(e: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>
): Effect.Effect<RunningCompaction> =>
  Effect.suspend(() => {
    const running = ctx.compacting.get(projectId)
    if (running !== undefined) {
      running.requested = true
      return Effect.zipRight(restore(Deferred.await(running.done)), takeTurn(ctx, projectId, restore))
    }
    return Effect.succeed(claimTurn(ctx, projectId))
  })

/** Takes the project's turn in this client (no compaction of it may be running). */
const claimTurn = (ctx: ClientCore, projectId: string): RunningCompaction => {
  const mine: RunningCompaction = { done: Deferred.unsafeMake<void>(FiberId.none), requested: false }
  ctx.compacting.set(projectId, mine)
  return mine
}

const endTurn = (ctx: ClientCore, projectId: string, mine: RunningCompaction) => {
  if (ctx.compacting.get(projectId) === mine) ctx.compacting.delete(projectId)
  Deferred.unsafeDone(mine.done, Exit.void)
}

/**
 * Merges one group into a new file in `dir`, pushes it, and commits it as a compaction snapshot (the old files are
 * scheduled for deletion), then writes its marker. `undefined` when another compaction replaced a source first.
 */
const compactGroup = (
  ctx: ClientCore,
  p: Project,
  group: ReadonlyArray<LiveFile>,
  dir: string,
  actor: string,
  pace: Effect.Effect<void>
) =>
  Effect.gen(function*() {
    const { catalog, duck, storage } = ctx
    const locals = yield* Effect.forEach(group, (f) =>
      Effect.map(
        readable(ctx, p, {
          dataFileId: f.dataFileId,
          relativePath: `main/${TABLE_NAME}/${f.fileName}`,
          beginSnapshot: f.beginSnapshot,
          fileSizeBytes: f.fileSizeBytes,
          checksum: f.checksum
        }),
        (file) => ({ file, rowIdStart: f.rowIdStart })
      ), { concurrency: COMPACTION_IO_CONCURRENCY })
    const fileName = `compacted_${paddedId(group[0]!.beginSnapshot)}_${paddedId(group[group.length - 1]!.lastSnapshot)}_${
      randomBytes(4).toString("hex")
    }.parquet`
    const local = nodePath.join(dir, fileName)
    // Renames of the covered snapshots travel with the merged file, for a rebuild once the originals are gone.
    const first = group[0]!.beginSnapshot
    const last = group[group.length - 1]!.lastSnapshot
    const coveredRenames = (yield* catalog.renames(p, last)).filter((r) => r.snapshotId >= first)
    yield* pace
    const written = yield* duck.writeCompactedFile(locals, local, {
      ...(coveredRenames.length === 0 ? {} : { renames: JSON.stringify(coveredRenames) }),
      format: "1.0",
      mesa_layout_version: "1",
      project_id: p.projectId,
      project_root: p.irodsPath,
      table_name: TABLE_NAME,
      table_id: String(TABLE_ID),
      kind: "compaction",
      begin_snapshot: String(group[0]!.beginSnapshot),
      partial_max: String(group[group.length - 1]!.lastSnapshot),
      replaces: JSON.stringify(group.map((f) => ({ dataFileId: f.dataFileId, fileName: f.fileName }))),
      columns: COLUMNS_METADATA
    }).pipe(Effect.mapError((e) => new LakeWriteError({ projectId: p.projectId, step: "write-parquet", cause: e })))
    const remote = `${liveDir(p)}/${fileName}`
    yield* pace
    const put = yield* upload(ctx, local, remote)
    const checksum = formatIrodsChecksum(put.checksum)
    // Until this commits, the old files stay authoritative; a crash leaves an orphan file (no marker). The commit
    // takes the writer lock (snapshot ids are handed out under it) for two round trips, and re-checks that every
    // source is still live.
    const outcome = yield* catalog.writeSession(
      p.projectId,
      (session) => catalog.commitCompaction(p, { sources: group, file: { ...written, fileName, checksum }, actor }, session)
    ).pipe(
      Effect.tapError(() => storage.remove(remote).pipe(Effect.ignore)),
      Effect.map((c) => ({ _tag: "committed" as const, c })),
      Effect.catchIf(
        (e) => e._tag === "CatalogError" && e.message.includes(SOURCE_GONE),
        () => Effect.succeed({ _tag: "superseded" as const })
      )
    )
    if (outcome._tag === "superseded") {
      yield* Effect.logInfo("compaction group skipped: another compaction replaced one of its files first")
      yield* Effect.promise(() => fs.rm(local, { force: true }))
      return undefined
    }
    const committed = outcome.c
    yield* writeCompactionMarker(ctx, p, {
      format: "mesa-ducklake-compaction/1",
      projectId: p.projectId,
      snapshotId: committed.snapshotId,
      snapshotTime: committed.snapshotTime.toISOString(),
      dataFileId: committed.dataFileId,
      fileName,
      checksum,
      recordCount: written.recordCount,
      fileSizeBytes: written.fileSizeBytes,
      actor,
      sources: group.map((f) => f.fileName),
      prevHash: committed.prevHash,
      recordHash: committed.recordHash,
      beginSnapshot: group[0]!.beginSnapshot,
      partialMax: group[group.length - 1]!.lastSnapshot,
      replaces: group.map((f) => ({ dataFileId: f.dataFileId, fileName: f.fileName }))
    }).pipe(Effect.catchAll((e) => Effect.logWarning("compaction marker not written", e)))
    yield* Effect.promise(() => fs.rm(local, { force: true }))
    yield* moveAside(ctx, p, group.map((f) => ({ dataFileId: f.dataFileId, fileName: f.fileName })), dir, pace)
    return { snapshotId: committed.snapshotId, fileSizeBytes: written.fileSizeBytes }
  })

/**
 * Compacts in the background when snapshots `from..to` (just committed) include a multiple of the
 * `autoCompactEvery` setting, unless an automatic compaction of the project is running.
 */
const autoCompactEvery = (ctx: ClientCore) => ctx.settings.autoCompactEvery ?? DEFAULT_AUTO_COMPACT_EVERY

export const maybeAutoCompact = (ctx: ClientContext, p: Project, from: number, to: number = from) => {
  const every = autoCompactEvery(ctx)
  if (every <= 0 || Math.floor(to / every) === Math.floor((from - 1) / every)) return Effect.void
  return autoCompact(ctx, p)
}

/**
 * The first time a client uses a project, it compacts it in the background if it has `autoCompactEvery` live files
 * or more: a lake left with many files (a bulk ingest whose process ended before its compaction finished, a writer
 * with automatic compaction off) is made flat for its readers without waiting for the next write. Compaction itself
 * decides what to merge (tiered, as after writes); a role that may not compact only logs a warning.
 */
export const compactOnFirstUse = (ctx: ClientContext, p: Project) => {
  const every = autoCompactEvery(ctx)
  if (every <= 0 || p.status !== "active") return Effect.void
  return ctx.background.fork(
    ctx.catalog.liveFiles(p).pipe(
      Effect.flatMap((files) => (files.length >= every ? autoCompact(ctx, p) : Effect.void)),
      Effect.catchAll((e) => Effect.logWarning("could not count a project's live files on first use", e))
    ),
    "DuckLakeClient.firstUseCompaction"
  )
}

// Uninterruptible, so the turn is taken only with the fork that ends it (`onEnd` runs whatever ends the fiber, even an
// interruption before its first step, which an `ensuring` inside it would miss).
const autoCompact = (ctx: ClientContext, p: Project) =>
  Effect.uninterruptible(Effect.suspend(() => {
    // One automatic compaction per project at a time; a trigger that comes while it runs is not dropped: the
    // running one goes round again when it ends (a fast writer would otherwise skip trigger after trigger).
    if (ctx.compacting.has(p.projectId)) {
      ctx.compactAgain.add(p.projectId)
      return Effect.void
    }
    const mine = claimTurn(ctx, p.projectId)
    const once = compact(
      ctx,
      p.projectId,
      { actor: "mesa-ducklake:auto-compact", tierRatio: AUTO_TIER_RATIO },
      afterForeground(ctx.foreground),
      1
    ).pipe(
      Effect.tap((r) => Effect.logDebug(`auto-compaction: ${r.filesBefore} → ${r.filesAfter} files`)),
      Effect.catchAll((e) => Effect.logWarning("automatic compaction failed; the next trigger retries", e))
    )
    // A `compact` waiting for this one (`requested`) merges what the next round would: the trigger stays noted for
    // after it.
    const rounds: Effect.Effect<void> = Effect.zipRight(
      once,
      Effect.suspend(() => (!mine.requested && ctx.compactAgain.delete(p.projectId) ? rounds : Effect.void))
    )
    return ctx.background.fork(rounds, "DuckLakeClient.autoCompact", () => endTurn(ctx, p.projectId, mine))
  }))

/**
 * Moves replaced files out of `main/` into `replaced/` (copy, then remove: storage has no rename), so `main/` holds
 * the live files only and reads directly as the history. A file that cannot be moved now stays where it is and is
 * moved by the next `deleteScheduledFiles`. A reader that listed a moved file finds it missing and lists again.
 */
const moveAside = (
  ctx: ClientCore,
  p: Project,
  files: ReadonlyArray<{ readonly dataFileId: number; readonly fileName: string }>,
  dir: string,
  pace: Effect.Effect<void> = Effect.void
) =>
  Effect.gen(function*() {
    const moved: Array<number> = []
    // Independent files, two at a time: one at a time, the move of a few hundred small files took most of an
    // automatic compaction's seconds, while back-to-back writes made new ones; more held up the foreground's pushes
    // (see COMPACTION_IO_CONCURRENCY).
    yield* Effect.forEach(files, (f) => {
      const tmp = nodePath.join(dir, `aside-${f.fileName}`)
      const from = `${liveDir(p)}/${f.fileName}`
      const to = `${asideDir(p)}/${f.fileName}`
      const move = ctx.storage.move
      return Effect.gen(function*() {
        yield* pace
        if (move !== undefined) {
          // A rename in place where the storage has one (a mount): three steps through the pool instead of a copy
          // out, a verified copy back and a removal.
          yield* move(from, to)
        } else {
          yield* ctx.storage.get(from, tmp)
          yield* upload(ctx, tmp, to)
          yield* ctx.storage.remove(from)
        }
        moved.push(f.dataFileId)
      }).pipe(
        Effect.catchAll((e) => Effect.logWarning(`replaced file ${f.fileName} left in main/ for now`, e)),
        Effect.ensuring(Effect.promise(() => fs.rm(tmp, { force: true })))
      )
    }, { concurrency: COMPACTION_IO_CONCURRENCY, discard: true })
    yield* ctx.catalog.moveScheduled(p, moved, `${REPLACED_DIR}/${TABLE_NAME}/`).pipe(
      Effect.catchAll((e) => Effect.logWarning("moved files' new place not recorded; deletion looks in both", e))
    )
  })

/**
 * Removes files that compaction replaced more than `graceMs` ago (default 7 days), wherever they are (`replaced/`,
 * or still `main/` if a move was cut short), and moves aside the replaced files not yet due that are still in
 * `main/`. Returns how many were removed.
 */
export const deleteScheduledFiles = Effect.fn("DuckLakeClient.deleteScheduledFiles")(function*(
  ctx: ClientCore,
  projectId: string,
  options?: { readonly graceMs?: number }
) {
  const grace = options?.graceMs ?? 7 * 24 * 3600_000
  if (!Number.isFinite(grace) || grace < 0) return yield* invalid("graceMs", "must be a non-negative number")
  const p = yield* ctx.project(projectId)
  const cutoff = new Date(Date.now() - grace)
  const due = yield* ctx.catalog.scheduledForDeletion(p, cutoff)
  const done: Array<number> = []
  const gone = (path: string) =>
    ctx.storage.remove(path).pipe(Effect.catchIf((e) => e.reason === "NotFound", () => Effect.void))
  for (const f of due) {
    // Where the catalog says, and wherever else a cut-short move may have left it (each place once).
    const name = nodePath.posix.basename(f.relativePath)
    const places = new Set([`${p.ducklakePath}/${f.relativePath}`, `${liveDir(p)}/${name}`, `${asideDir(p)}/${name}`])
    for (const place of places) yield* gone(place)
    done.push(f.dataFileId)
  }
  yield* ctx.catalog.forgetScheduled(p, done)
  // Not due yet, but still in main/ (a compaction cut short before its move): moved aside now.
  const doneIds = new Set(done)
  const stranded = (yield* ctx.catalog.scheduledForDeletion(p, new Date(8.64e15)))
    .filter((f) => !doneIds.has(f.dataFileId) && f.relativePath.startsWith(`main/${TABLE_NAME}/`))
  if (stranded.length > 0) {
    yield* withTempDir("mesa-gc-", (dir) =>
      moveAside(ctx, p, stranded.map((f) => ({
        dataFileId: f.dataFileId,
        fileName: nodePath.posix.basename(f.relativePath)
      })), dir))
  }
  return done.length
})
