/**
 * What bounds DuckDB's memory in a client (README "Memory"): the instance is created on first use (a client that
 * only writes small batches never loads it), its caches that only grow in our use are off, its settings follow the
 * options and `MESA_DUCKLAKE_DUCKDB_*`, and a query beyond the memory limit spills into a directory of the
 * instance's own that goes when the instance closes.
 */
import { describe, expect, it } from "@effect/vitest"
import { ConfigProvider, Context, Effect, Exit, Layer, Scope } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as nodePath from "node:path"
import { duckDbConfig } from "../layers/components.js"
import type { ChangeRow } from "../src/core/domain.js"
import { DuckDb, DuckDbError, type DuckDbOptions, type DuckDbService, layer as duckLayer } from "../src/duckdb/DuckDb.js"

const rows = (n: number): Array<ChangeRow> =>
  Array.from({ length: n }, (_, i) => ({
    snapshotId: 7,
    changeSeq: i,
    ts: new Date(Date.UTC(2026, 0, 1, 0, 0, i)),
    irodsPath: `/zone/p/obj-${i}`,
    targetType: "data_object",
    objectId: null,
    attribute: "a",
    value: `v${i}`,
    unit: "",
    op: "add",
    actor: "alice",
    source: "test",
    viaTicket: null,
    ruleInvocation: null,
    onBehalfOf: null
  }))

const settingsOf = (duck: DuckDbService) =>
  Effect.gen(function*() {
  const [row] = yield* duck.query(
    `SELECT current_setting('enable_external_file_cache') AS file_cache,
            current_setting('parquet_metadata_cache') AS metadata_cache,
            current_setting('memory_limit') AS memory_limit,
            current_setting('threads') AS threads,
            current_setting('temp_directory') AS temp_directory`
  )
  return row as { file_cache: boolean; metadata_cache: boolean; memory_limit: string; threads: bigint; temp_directory: string }
  })

/** Builds the DuckDb layer in a scope of its own, so a test can look at what closing it leaves. */
const withDuck = <A, E>(options: DuckDbOptions, f: (duck: DuckDbService) => Effect.Effect<A, E>) =>
  Effect.gen(function*() {
    const scope = yield* Scope.make()
    const ctx = yield* Layer.buildWithScope(duckLayer(options), scope)
    const exit = yield* Effect.exit(f(Context.get(ctx, DuckDb)))
    yield* Scope.close(scope, Exit.void)
    return yield* exit
  })

describe("DuckDB's memory", () => {
  const dir = fs.mkdtempSync(nodePath.join(os.tmpdir(), "mesa-memory-"))

  it.live("the instance is created on first use: small batches are written without it", () =>
    withDuck({}, (duck) =>
      Effect.gen(function*() {
        expect(yield* duck.started).toBe(false)
        const file = nodePath.join(dir, "small.parquet")
        const written = yield* duck.writeSnapshotFile(file, rows(3), "project-x", { snapshot_id: "7" })
        expect(written.recordCount).toBe(3)
        expect(fs.statSync(file).size).toBe(written.fileSizeBytes)
        // Nothing to read: no instance needed either.
        expect(yield* duck.changes([], {}, { order: "oldest" })).toEqual([])
        expect(yield* duck.started).toBe(false)
        // A read needs it.
        const back = yield* duck.changes([file], {}, { order: "oldest" })
        expect(back.map((r) => r.value)).toEqual(["v0", "v1", "v2"])
        expect(yield* duck.started).toBe(true)
      })))

  it.live("its caches are off, its bounds as configured, its spill directory its own", () =>
    Effect.gen(function*() {
      const defaults = yield* withDuck({}, settingsOf)
      expect(defaults.file_cache).toBe(false)
      expect(defaults.metadata_cache).toBe(false)
      expect(defaults.memory_limit).toBe("244.1 MiB") // 256MB
      expect(Number(defaults.threads)).toBe(2)
      expect(nodePath.dirname(defaults.temp_directory)).toBe(os.tmpdir())
      expect(nodePath.basename(defaults.temp_directory)).toMatch(/^mesa-ducklake-duckdb-\d+-[0-9a-f]{8}$/)

      const tempDirectory = nodePath.join(dir, "spill")
      const chosen = yield* withDuck({ memoryLimit: "100MB", threads: 1, metadataCache: true, tempDirectory }, settingsOf)
      expect(chosen).toEqual({
        file_cache: false,
        metadata_cache: true,
        memory_limit: "95.3 MiB",
        threads: 1n,
        temp_directory: tempDirectory
      })
    }))

  it.live("a query beyond the memory limit spills into the instance's directory, removed at close", () =>
    Effect.gen(function*() {
      let spill = ""
      const sorted = yield* withDuck({ memoryLimit: "32MB", threads: 1 }, (duck) =>
        Effect.gen(function*() {
          spill = (yield* settingsOf(duck)).temp_directory
          // DuckDB makes the directory when it first spills.
          expect(fs.existsSync(spill)).toBe(false)
          // ~100 MB of sort payload under a 32 MB limit.
          const [r] = yield* duck.query(
            `SELECT count(*) AS n FROM (
               SELECT k FROM (SELECT md5(i::VARCHAR) || md5((i * 7)::VARCHAR) AS k FROM range(1500000) t(i)) ORDER BY k
             )`
          )
          expect(fs.existsSync(spill)).toBe(true)
          return Number(r!.n)
        }))
      expect(sorted).toBe(1_500_000)
      expect(fs.existsSync(spill)).toBe(false)
    }), 120_000)

  it.live("a start that fails is a DuckDbError on use, not at layer build", () =>
    withDuck({ memoryLimit: "lots" }, (duck) =>
      Effect.gen(function*() {
        const failed = yield* Effect.flip(duck.query("SELECT 1"))
        expect(failed).toBeInstanceOf(DuckDbError)
        expect(failed.message).toMatch(/cannot start DuckDB/)
        expect(yield* duck.started).toBe(false)
      })))

  it.effect("MESA_DUCKLAKE_DUCKDB_* configure it", () =>
    Effect.gen(function*() {
      const read = (env: Record<string, string>) =>
        Effect.withConfigProvider(duckDbConfig, ConfigProvider.fromMap(new Map(Object.entries(env))))
      expect(yield* read({})).toEqual({ memoryLimit: "256MB", threads: 2, metadataCache: false })
      expect(
        yield* read({
          MESA_DUCKLAKE_DUCKDB_MEMORY_LIMIT: "1GB",
          MESA_DUCKLAKE_DUCKDB_THREADS: "4",
          MESA_DUCKLAKE_DUCKDB_METADATA_CACHE: "true",
          MESA_DUCKLAKE_DUCKDB_TEMP_DIR: "/scratch/duck"
        })
      ).toEqual({ memoryLimit: "1GB", threads: 4, metadataCache: true, tempDirectory: "/scratch/duck" })
      expect((yield* Effect.either(read({ MESA_DUCKLAKE_DUCKDB_METADATA_CACHE: "maybe" })))._tag).toBe("Left")
    }))
})
