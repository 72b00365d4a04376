/**
 * `Backup`: catalog backups into the project's own collection, restore from them, and rebuild from storage alone.
 * This module is the public face: the service's interface, tag, `make` and layers. The work lives in `backup/`:
 *
 * - **backup** (`backup/backup.ts`): per project, `pg_dump --format=custom --schema=<the project's lake schema>` —
 *   exactly one project's catalog, nothing of any other — uploaded to
 *   `<root>/.mesa/ducklake/backups/mesa-ducklake-<project>-<UTC>.dump`, with the project's registry row, the dump's
 *   size and digests in a manifest next to it (`<same name>.json`, uploaded last). A dump is verified before it
 *   counts; retention then keeps the newest N verified backups. Listing, manifests and verifying stored backups are
 *   in `backup/stored.ts`.
 * - **restore** (`backup/restore.ts`): the newest backup that verifies (or a named one) into the configured catalog;
 *   refuses to replace a non-empty catalog unless `force`; then checks every committed snapshot's file in storage.
 * - **rebuild** (`backup/rebuild.ts`, `backup/rebuild/`): the catalog from the Parquet files and commit markers alone.
 *
 * The catalog password reaches pg_dump/pg_restore only through a private temporary password file (`PGPASSFILE`):
 * never in argv, never in the environment, never in a log or a file name (`backup/dump.ts`). The tools' environment
 * is built from an allow-list (`toolEnv`): the DSN, every other `MESA_DUCKLAKE_*` variable and any inherited
 * `PGPASSWORD` or unknown secret stay out of their `/proc/<pid>/environ`. What Backup writes on this machine is
 * owner-only: dumps, manifests and password files 0600, their temporary directories and a mounted backups collection
 * 0700 (on iRODS itself, the collection's ACLs govern; `backup/private.ts`).
 */
import { Config, Context, Effect, Layer, type Redacted } from "effect"
import type { CatalogService } from "../catalog/Catalog.js"
import { type BackupResult, makeBackups, type RetentionReport, type RunSummary } from "./projectBackups.js"
import { makePgTools, type ToolError } from "./dump.js"
import type { BackupCorrupt, BackupNotFound, CatalogNotEmpty, RebuildError } from "./errors.js"
import { makeRebuild, type RebuildInput, type RebuildReport } from "./rebuild.js"
import { type ConsistencyReport, makeRestore, type RestoreInput, type RestoreReport } from "./restore.js"
import { type BackupManifest, makeStoredBackups, type StoredBackup } from "./stored.js"
import type { CatalogError, CatalogSchemaMismatch, CatalogUnavailable, ChecksumMismatch, InvalidChange, ProjectNotFound, StorageError } from "../core/errors.js"

export * from "./errors.js"
// The child environment's allow-list lives in childEnv.ts (shared with EmbeddedPostgres and the CLI).
export { inheritable, toolEnv } from "../postgres/childEnv.js"
export type { BackupResult, RetentionReport, RunSummary } from "./projectBackups.js"
export { BackupProbe, type Connection, connectionOf, passfileLine, pgDumpArgs, type ToolError } from "./dump.js"
export type { RebuildInput, RebuildReport } from "./rebuild.js"
export type { ConsistencyReport, RestoreInput, RestoreReport } from "./restore.js"
export type { BackupManifest, StoredBackup } from "./stored.js"

export interface BackupConfig {
  /**
   * The catalog DSN (the same the client uses). Its password (or, when it has none, an inherited `PGPASSWORD`, as
   * the client would use) goes to the tools through a private PGPASSFILE.
   */
  readonly dsn: Redacted.Redacted<string>
  /** pg_dump to run (default `pg_dump` from PATH). */
  readonly pgDump?: string
  /** pg_restore to run (default `pg_restore` from PATH). */
  readonly pgRestore?: string
  /** Verified backups kept per project (default 30: a month of daily backups). */
  readonly retention?: number
}

type CatalogFailure = CatalogUnavailable | CatalogError | CatalogSchemaMismatch

export interface BackupService {
  /** Dump, verify and upload one project's catalog, then apply retention. */
  readonly backupProject: (
    projectId: string
  ) => Effect.Effect<BackupResult, ToolError | BackupCorrupt | CatalogFailure | ProjectNotFound | StorageError | ChecksumMismatch>
  /** Every registered project, one after another; a failing project does not stop the others. */
  readonly backupAll: Effect.Effect<RunSummary, CatalogFailure>
  /** Backups of a project root, newest first. */
  readonly listBackups: (root: string) => Effect.Effect<ReadonlyArray<StoredBackup>, StorageError | InvalidChange>
  /** Keep the newest `keep` verified backups of a project root; older ones are removed. */
  readonly applyRetention: (
    root: string,
    keep?: number
  ) => Effect.Effect<RetentionReport, StorageError | ChecksumMismatch | InvalidChange>
  /** Verify a stored backup (manifest, checksum, archive contents) without restoring it. */
  readonly verify: (
    path: string
  ) => Effect.Effect<BackupManifest, BackupCorrupt | ToolError | StorageError>
  readonly restore: (input: RestoreInput) => Effect.Effect<
    RestoreReport,
    BackupNotFound | BackupCorrupt | ToolError | CatalogNotEmpty | CatalogFailure | StorageError | InvalidChange
  >
  /** Every committed snapshot's file exists in storage with the recorded size and checksum. */
  readonly checkConsistency: (
    projectId: string
  ) => Effect.Effect<ConsistencyReport, CatalogFailure | ProjectNotFound | StorageError>
  readonly rebuild: (
    input: RebuildInput
  ) => Effect.Effect<RebuildReport, RebuildError | CatalogNotEmpty | CatalogFailure | StorageError | InvalidChange>
}

export class Backup extends Context.Tag("mesa-ducklake/Backup")<Backup, BackupService>() {}

/** The Backup service, composed of its parts in `backup/`. */
export const make = (config: BackupConfig) =>
  Effect.gen(function*() {
    const tools = yield* makePgTools(config)
    const stored = yield* makeStoredBackups(tools)
    const backups = yield* makeBackups(tools, stored, config.retention ?? 30)
    const restores = yield* makeRestore(tools, stored)
    const { rebuild } = yield* makeRebuild
    return Backup.of({
      backupProject: backups.backupProject,
      backupAll: backups.backupAll,
      listBackups: stored.listBackups,
      applyRetention: backups.applyRetention,
      verify: stored.verify,
      restore: restores.restore,
      checkConsistency: restores.checkConsistency,
      rebuild
    })
  })

/** The Backup service over a Catalog, LakeStorage, DuckDb, FileSystem and CommandExecutor. */
export const layer = (config: BackupConfig) => Layer.effect(Backup, make(config))

/**
 * From the environment: `MESA_DUCKLAKE_DSN`, `MESA_DUCKLAKE_BACKUP_PG_DUMP`, `MESA_DUCKLAKE_BACKUP_PG_RESTORE`,
 * `MESA_DUCKLAKE_BACKUP_RETENTION` (default 30).
 */
export const BackupConfigFromEnv = Config.all({
  dsn: Config.redacted("MESA_DUCKLAKE_DSN"),
  pgDump: Config.string("MESA_DUCKLAKE_BACKUP_PG_DUMP").pipe(Config.withDefault("pg_dump")),
  pgRestore: Config.string("MESA_DUCKLAKE_BACKUP_PG_RESTORE").pipe(Config.withDefault("pg_restore")),
  retention: Config.integer("MESA_DUCKLAKE_BACKUP_RETENTION").pipe(
    Config.validate({ message: "must be at least 1", validation: (n) => n >= 1 }),
    Config.withDefault(30)
  )
})

export const layerConfig = Layer.unwrapEffect(Effect.map(BackupConfigFromEnv, layer))

export type { CatalogService }
