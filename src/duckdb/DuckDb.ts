/**
 * `DuckDb`: one in-process DuckDB instance per client scope. It writes exactly one Parquet file per snapshot
 * (field ids = DuckLake column ids, key-value metadata that makes the file describe itself; zstd, except small
 * batches, which our own writer writes uncompressed) and reads the history back from the files the catalog lists.
 *
 * This module owns the service (tag, interface, instance and connection pool, layer); the SQL behind each method
 * lives in `duckdb/`: `snapshotFile.ts` (staging and the per-snapshot writer), `parquetWriter.ts` (our Parquet
 * writer for small batches), `compaction.ts` (merged files), `describe.ts` (a file's catalog description),
 * `reads.ts` (history queries) and `sql.ts` (literals, row mapping).
 */
import type { DuckDBConnection, DuckDBInstance } from "@duckdb/node-api"
import { Context, Effect, Layer, Pool } from "effect"
import { randomBytes } from "node:crypto"
import * as fs from "node:fs"
import * as os from "node:os"
import * as nodePath from "node:path"
import { columnId } from "../catalog/ducklakeSchema.js"
import type { Avu, ChangeRow } from "../core/domain.js"
import { writeCompactedFile } from "./compaction.js"
import { describe, type WrittenFile } from "./describe.js"
import * as Reads from "./reads.js"
import type { RowFilter } from "./reads.js"
import { writeJsSnapshotFile, writeSnapshotFile } from "./snapshotFile.js"
import { LakeWriteError } from "../core/errors.js"

export { INTERNAL_ROW_ID_FIELD, INTERNAL_SNAPSHOT_ID_FIELD } from "./compaction.js"
export type { WrittenFile } from "./describe.js"
export type { RowFilter } from "./reads.js"

export class DuckDbError extends Error {
  readonly _tag = "DuckDbError"
}

export interface DuckDbService {
  readonly writeSnapshotFile: (
    file: string,
    rows: ReadonlyArray<ChangeRow>,
    projectId: string,
    metadata: Readonly<Record<string, string>>
  ) => Effect.Effect<WrittenFile, DuckDbError>
  /** Effective AVUs of a path at a valid time, bounded by a snapshot id (transaction time). */
  readonly avusAsOf: (
    files: ReadonlyArray<string>,
    irodsPath: string,
    validAt: Date,
    maxSnapshot: number
  ) => Effect.Effect<ReadonlyArray<Avu>, DuckDbError>
  /** Change rows matching a filter, newest first (valid time, snapshot, position), at most `limit`. */
  readonly changes: (
    files: ReadonlyArray<string>,
    filter: RowFilter,
    options: { readonly limit?: number; readonly order: "newest" | "oldest" }
  ) => Effect.Effect<ReadonlyArray<ChangeRow>, DuckDbError>
  /**
   * Merges snapshot files into one, sorted by path (so path statistics prune well), carrying DuckLake's internal
   * `_ducklake_internal_snapshot_id` and `_ducklake_internal_row_id` columns so time travel and row ids stay exact.
   */
  readonly writeCompactedFile: (
    sources: ReadonlyArray<{ readonly file: string; readonly rowIdStart: number | null }>,
    out: string,
    metadata: Readonly<Record<string, string>>
  ) => Effect.Effect<WrittenFile, DuckDbError>
  /** The catalog's description of an existing Parquet file (recovery and rebuild). */
  readonly describeFile: (file: string) => Effect.Effect<WrittenFile, DuckDbError>
  /** Key-value metadata of a Parquet file (what rebuild reads). */
  readonly fileMetadata: (file: string) => Effect.Effect<Readonly<Record<string, string>>, DuckDbError>
  /** Runs a query on a fresh connection (for tests and maintenance). */
  readonly query: (sqlText: string) => Effect.Effect<ReadonlyArray<Record<string, unknown>>, DuckDbError>
  /** Whether the DuckDB instance exists yet: it is created (and its native library loaded) on first use. */
  readonly started: Effect.Effect<boolean>
}

export class DuckDb extends Context.Tag("mesa-ducklake/DuckDb")<DuckDb, DuckDbService>() {}

/**
 * DuckDB's bounds (README "Memory"): its buffer pool may hold at most `memoryLimit` (default 256MB; beyond it
 * DuckDB spills to `tempDirectory` or fails the query rather than grow) and queries run on `threads` threads
 * (default 2).
 *
 * Its caches are off, as they only grow in our use: the external file cache would keep the bytes of every file read
 * (each snapshot file is read by a compaction and then deleted), and the Parquet metadata cache keeps ~23 KB per
 * file, also for the files compacted away, until the buffer pool is full (measured: +23 MB per 1,000 snapshots).
 * Both are evicted only when the buffer pool needs room, so with them a long-running client settled at
 * `memoryLimit` on top of everything else. Our files are local (the mount, or the cache) and their footers small:
 * reads measured no slower without the caches (getAvusAsOf p50 at 2,000 snapshots 7-9 ms against 10-12 ms).
 */
export const DEFAULT_MEMORY_LIMIT = "256MB"
export const DEFAULT_THREADS = 2
/** Idle pooled connections are closed after this long (a connection keeps its staging tables until closed). */
const CONNECTION_IDLE_TTL = "30 seconds"

export interface DuckDbOptions {
  readonly threads?: number
  readonly memoryLimit?: string
  /** Pooled connections (default 4). */
  readonly connections?: number
  /**
   * Keep parsed Parquet footers across queries (DuckDB's metadata cache; default false). Worth it only for a lake
   * read over thousands of files without compaction; its entries stay until the buffer pool needs their room.
   */
  readonly metadataCache?: boolean
  /**
   * Where queries beyond `memoryLimit` spill (a large compaction's sort). Default: a directory of this instance's
   * own in the OS temp directory, removed when the instance closes (DuckDB's own default is `.tmp` in the working
   * directory).
   */
  readonly tempDirectory?: string
  /**
   * Threads of the instance a compaction merges on (default 1). A merge runs on an instance of its own, made for it
   * and closed after it, so what it allocates is given back and it never takes both cores from the foreground.
   */
  readonly compactionThreads?: number
}

/** Creates the instance with our settings (the native library is loaded here, on first use, not at import). */
const openInstance = async (options: DuckDbOptions, tempDirectory: string, threads?: number): Promise<DuckDBInstance> => {
  const { DuckDBInstance } = await import("@duckdb/node-api")
  const db = await DuckDBInstance.create(":memory:", {
    threads: String(threads ?? options.threads ?? DEFAULT_THREADS),
    memory_limit: options.memoryLimit ?? DEFAULT_MEMORY_LIMIT,
    temp_directory: tempDirectory,
    enable_external_file_cache: "false",
    autoinstall_known_extensions: "false",
    autoload_known_extensions: "false"
  })
  // Settings of the parquet extension (built in; loaded explicitly since autoloading is off).
  const con = await db.connect()
  try {
    await con.run("LOAD parquet")
    await con.run(`SET GLOBAL parquet_metadata_cache = ${options.metadataCache === true}`)
  } catch (e) {
    con.closeSync()
    db.closeSync()
    throw e
  }
  con.closeSync()
  return db
}

export const make = (options: DuckDbOptions = {}) =>
  Effect.gen(function*() {
    const tempDirectory = options.tempDirectory ??
      nodePath.join(os.tmpdir(), `mesa-ducklake-duckdb-${process.pid}-${randomBytes(4).toString("hex")}`)
    // The instance is created on first use: a client that only writes small batches never loads DuckDB. A failed
    // start is not remembered (the next use tries again).
    let opening: Promise<DuckDBInstance> | undefined
    const instance = () =>
      (opening ??= openInstance(options, tempDirectory).catch((cause) => {
        opening = undefined
        throw new DuckDbError(`cannot start DuckDB: ${String(cause)}`, { cause })
      }))
    // Registered before the pool, so it runs after the pool has closed every connection.
    yield* Effect.addFinalizer(() =>
      Effect.promise(async () => {
        const db = await opening?.catch(() => undefined)
        db?.closeSync()
        if (options.tempDirectory === undefined) fs.rmSync(tempDirectory, { recursive: true, force: true })
      })
    )

    const connect = Effect.acquireRelease(
      Effect.tryPromise({
        try: async () => {
          const con = await (await instance()).connect()
          // Timestamp statistics are written as text: keep them in UTC (`2026-01-01 00:00:00+00`).
          await con.run("SET TimeZone = 'UTC'")
          return con
        },
        catch: (cause) =>
          cause instanceof DuckDbError ? cause : new DuckDbError(`cannot connect to DuckDB: ${String(cause)}`, { cause })
      }),
      (con) => Effect.sync(() => con.closeSync())
    )
    // Connections are made on demand and closed when idle.
    const pool = yield* Pool.makeWithTTL({
      acquire: connect,
      min: 0,
      max: options.connections ?? 4,
      timeToLive: CONNECTION_IDLE_TTL,
      timeToLiveStrategy: "usage"
    })

    /**
     * A pooled connection for one operation; one that failed or was interrupted is discarded, not reused.
     *
     * Interrupted (Ctrl-C, a timeout): DuckDB's own interrupt stops the running query, repeated until the operation
     * has let go of the connection (an operation runs several statements; an interrupt that lands between two is
     * lost). Only then does the interruption complete, so the connection, and at scope end the instance, are never
     * closed under a running query: closing them there crashed node (exit 139).
     */
    const runOn = <A>(con: DuckDBConnection, f: (con: DuckDBConnection) => Promise<A>) =>
      Effect.async<A, DuckDbError>((resume) => {
        let settled = false
        const running = f(con).then(
          (a) => {
            settled = true
            resume(Effect.succeed(a))
          },
          (cause) => {
            settled = true
            resume(Effect.fail(new DuckDbError(cause instanceof Error ? cause.message : String(cause), { cause })))
          }
        )
        return Effect.promise(async () => {
          while (!settled) {
            con.interrupt()
            await Promise.race([running, new Promise((r) => setTimeout(r, 20))])
          }
        })
      })
    const withConnection = <A>(f: (con: DuckDBConnection) => Promise<A>) =>
      Effect.scoped(
        Effect.flatMap(pool.get, (con) =>
          runOn(con, f).pipe(Effect.onExit((exit) => (exit._tag === "Success" ? Effect.void : pool.invalidate(con)))))
      )
    /**
     * An instance of its own for one compaction merge (see `DuckDbOptions.compactionThreads`), with a spill directory
     * of its own (made now: DuckDB makes only its last level), both closed after the merge. Starting one costs ~8 ms
     * of CPU; keeping one for 30 s instead raised the peak of the compaction after a 1M-change ingest from ~253 to
     * 280-343 MB (DuckDB kept what each merge had allocated for the next).
     */
    const withCompactionInstance = <A>(f: (con: DuckDBConnection) => Promise<A>) =>
      Effect.acquireUseRelease(
        Effect.tryPromise({
          try: async () => {
            const dir = `${tempDirectory}-compaction-${randomBytes(4).toString("hex")}`
            fs.mkdirSync(dir, { recursive: true, mode: 0o700 })
            let db: DuckDBInstance | undefined
            let con: DuckDBConnection | undefined
            try {
              db = await openInstance(options, dir, options.compactionThreads ?? 1)
              con = await db.connect()
              await con.run("SET TimeZone = 'UTC'")
              return { db, con, dir }
            } catch (e) {
              con?.closeSync()
              db?.closeSync()
              fs.rmSync(dir, { recursive: true, force: true })
              throw e
            }
          },
          catch: (cause) => new DuckDbError(`cannot start DuckDB for a compaction: ${String(cause)}`, { cause })
        }),
        ({ con }) => runOn(con, f),
        ({ con, db, dir }) =>
          Effect.sync(() => {
            con.closeSync()
            db.closeSync()
            fs.rmSync(dir, { recursive: true, force: true })
          })
      )

    return DuckDb.of({
      // A batch is written in JS without a connection (DuckDB only for what our writer cannot write), so it never
      // waits behind reads, and writing never loads DuckDB.
      writeSnapshotFile: (file, rows, projectId, metadata) =>
        Effect.tryPromise({
          try: () => writeJsSnapshotFile(file, rows, projectId, metadata),
          catch: (cause) => new DuckDbError(cause instanceof Error ? cause.message : String(cause), { cause })
        }).pipe(Effect.flatMap((small) =>
          small !== undefined
            ? Effect.succeed(small)
            : withConnection((con) => writeSnapshotFile(con, file, rows, projectId, metadata))
        )),
      writeCompactedFile: (sources, out, metadata) =>
        withCompactionInstance((con) => writeCompactedFile(con, sources, out, metadata)),
      describeFile: (file) => withConnection((con) => describe(con, file)),
      avusAsOf: (files, irodsPath, validAt, maxSnapshot) =>
        files.length === 0
          ? Effect.succeed([])
          : withConnection((con) => Reads.avusAsOf(con, files, irodsPath, validAt, maxSnapshot)),
      changes: (files, filter, opts) =>
        files.length === 0 ? Effect.succeed([]) : withConnection((con) => Reads.changes(con, files, filter, opts)),
      fileMetadata: (file) => withConnection((con) => Reads.fileMetadata(con, file)),
      query: (sqlText) => withConnection(async (con) => (await con.runAndReadAll(sqlText)).getRowObjectsJS() as any),
      started: Effect.sync(() => opening !== undefined)
    })
  })

export const layer = (options?: DuckDbOptions) =>
  Layer.scoped(DuckDb, make(options))

/** Field id of a column (exported for tests that inspect files). */
export { columnId }
export const toLakeWriteError = (projectId: string, snapshotId: number) => (e: DuckDbError) =>
  new LakeWriteError({ projectId, snapshotId, step: "write-parquet", cause: e })
