/**
 * Restoring a project's catalog from its backups: the newest backup that verifies (or a named one) is loaded with
 * `pg_restore` into the configured catalog and the project's registry row re-created from the manifest. An existing
 * non-empty catalog is replaced only with `force`, and put back if the restore fails. Then every committed
 * snapshot's file is checked in storage (`checkConsistency`), and snapshots committed after the dump are listed.
 */
import * as FileSystem from "@effect/platform/FileSystem"
import { Effect, Option } from "effect"
import { randomBytes } from "node:crypto"
import { Catalog, type CatalogService } from "../catalog/Catalog.js"
import { TABLE_NAME } from "../catalog/ducklakeSchema.js"
import { parseIrodsPath } from "../core/domain.js"
import { checksumFile, LakeStorage, parseIrodsChecksum } from "../storage/LakeStorage.js"
import { lakePathOf, MARKER_DIR } from "../core/layout.js"
import type { PgTools } from "./dump.js"
import { BackupNotFound } from "./errors.js"
import { privateTempDir } from "./private.js"
import { refuseOccupied } from "./rebuild/write.js"
import { type BackupManifest, backupsOf, type StoredBackups } from "./stored.js"

export interface ConsistencyReport {
  readonly checked: number
  readonly ok: number
  readonly missing: ReadonlyArray<string>
  readonly sizeMismatch: ReadonlyArray<string>
  readonly checksumMismatch: ReadonlyArray<string>
  /** Snapshots with a commit marker in storage newer than the catalog's latest: committed after the dump. */
  readonly newerInStorage: ReadonlyArray<number>
}

export interface RestoreReport {
  readonly projectId: string
  readonly metadataSchema: string
  readonly backup: string
  /** Newer backups skipped because they failed verification, with why. */
  readonly rejected: ReadonlyArray<string>
  readonly snapshots: number
  readonly consistency: ConsistencyReport
  readonly seconds: number
}

export interface RestoreInput {
  /** The project root (its `backups/` collection is searched). */
  readonly root: string
  /** A backup's file name; default the newest that verifies. */
  readonly backup?: string
  readonly force?: boolean
}

/**
 * The backup to restore, verified into `dir`: the named one (an error if it fails), or the newest complete one
 * that verifies, the ones before it rejected with why.
 */
const chooseBackup = (stored: StoredBackups, root: string, dir: string, name: string | undefined) =>
  Effect.gen(function*() {
    const all = yield* stored.listBackups(root)
    const candidates = name === undefined ? all.filter((b) => b.status === "complete") : all.filter((b) => b.name === name)
    if (name !== undefined && candidates.length === 0) {
      return yield* new BackupNotFound({ collection: backupsOf(root), name })
    }
    const rejected: Array<string> = []
    for (const b of candidates) {
      const verified = yield* Effect.either(stored.verifyIn(b.path, dir))
      if (verified._tag === "Right") return { ...verified.right, name: b.name, rejected }
      if (verified.left._tag !== "BackupCorrupt") return yield* verified.left
      // A named backup that fails is an error; the default (newest) falls back to the next good one.
      if (name !== undefined) return yield* verified.left
      rejected.push(`${b.name}: ${verified.left.reason}`)
      yield* Effect.logWarning(`backup ${b.name} skipped: ${verified.left.reason}`)
    }
    return yield* new BackupNotFound({ collection: backupsOf(root), rejected })
  })

/**
 * Makes room for the restored schema: refuses a root registered to another project, and an existing non-empty
 * schema unless `force` (then renamed aside). Returns what puts the old catalog back if the restore fails, and
 * what drops it once the restore has committed.
 */
const makeRoom = (catalog: CatalogService, m: BackupManifest, root: string, force: boolean) =>
  Effect.gen(function*() {
    const schema = m.metadataSchema
    const replaced = `${schema}_replaced_${randomBytes(4).toString("hex")}`
    const hasOld = yield* catalog.withSql((sql) =>
      Effect.gen(function*() {
        const inUse = yield* refuseOccupied(sql, { projectId: m.projectId, root, schema, force })
        if (inUse.tables > 0) yield* sql`ALTER SCHEMA ${sql(schema)} RENAME TO ${sql(replaced)}`
        else if (inUse.exists) yield* sql`DROP SCHEMA ${sql(schema)}`
        return inUse.tables > 0
      })
    )
    // The replaced catalog is put back if anything below fails; dropped once the restore has committed.
    const putBack = hasOld
      ? catalog.withSql((sql) =>
        sql.withTransaction(Effect.gen(function*() {
          yield* sql`DROP SCHEMA IF EXISTS ${sql(schema)} CASCADE`
          yield* sql`ALTER SCHEMA ${sql(replaced)} RENAME TO ${sql(schema)}`
        }))
      ).pipe(Effect.ignore)
      : catalog.withSql((sql) => sql`DROP SCHEMA IF EXISTS ${sql(schema)} CASCADE`).pipe(Effect.ignore)
    const dropOld = hasOld ? catalog.withSql((sql) => sql`DROP SCHEMA ${sql(replaced)} CASCADE`) : Effect.void
    return { putBack, dropOld }
  })

/** `pg_restore` of a verified local dump, then the project's registry row; returns the snapshots restored. */
const load = (catalog: CatalogService, tools: PgTools, m: BackupManifest, local: string, root: string) =>
  Effect.gen(function*() {
    const schema = m.metadataSchema
    yield* tools.run("pg_restore", [
      "--no-password",
      "--no-owner",
      "--no-privileges",
      "--single-transaction",
      "--exit-on-error",
      `--dbname=${tools.conninfo}`,
      local
    ])
    return yield* catalog.withSql((sql) =>
      sql.withTransaction(Effect.gen(function*() {
        const [r] = yield* sql<any>`SELECT max(snapshot_id)::text AS latest, count(*)::int AS n
                                    FROM ${sql(schema)}.mesa_snapshot`
        const g = m.registry
        yield* sql`
          INSERT INTO mesa_ducklake.projects (project_id, irods_path, irods_zone, ducklake_path, metadata_schema,
            created_at, created_by, status, last_snapshot_id)
          VALUES (${m.projectId}, ${root}, ${g.irodsZone}, ${lakePathOf(root)}, ${schema},
            ${g.createdAt}, ${g.createdBy}, ${g.status}, GREATEST(${g.lastSnapshotId}::int8, ${r.latest ?? 1}::int8))
          ON CONFLICT (project_id) DO UPDATE SET irods_path = EXCLUDED.irods_path,
            ducklake_path = EXCLUDED.ducklake_path, metadata_schema = EXCLUDED.metadata_schema,
            last_snapshot_id = GREATEST(mesa_ducklake.projects.last_snapshot_id, EXCLUDED.last_snapshot_id)`
        return r.n as number
      }))
    )
  })

/** Restoring, and checking a catalog against storage. */
export const makeRestore = (tools: PgTools, stored: StoredBackups) =>
  Effect.gen(function*() {
    const catalog = yield* Catalog
    const storage = yield* LakeStorage
    const fs = yield* FileSystem.FileSystem

    /** Every committed snapshot's file exists in storage with the recorded size and checksum. */
    const checkConsistency = Effect.fn("Backup.checkConsistency")(function*(projectId: string) {
      const project = yield* catalog.getProject(projectId)
      const rows = yield* catalog.withSql((sql) =>
        sql<any>`SELECT m.snapshot_id::text AS id, d.path, m.checksum, d.file_size_bytes::text AS size
                 FROM ${sql(project.metadataSchema)}.ducklake_data_file d
                 LEFT JOIN ${sql(project.metadataSchema)}.mesa_snapshot m ON m.data_file_id = d.data_file_id
                 WHERE d.end_snapshot IS NULL ORDER BY d.begin_snapshot`
      )
      const latest = yield* catalog.latestSnapshot(project)
      const missing: Array<string> = []
      const sizeMismatch: Array<string> = []
      const checksumMismatch: Array<string> = []
      yield* Effect.scoped(Effect.gen(function*() {
        const dir = yield* privateTempDir(fs, "mesa-check-")
        for (const r of rows) {
          const path = `${project.ducklakePath}/main/${TABLE_NAME}/${r.path}`
          const entry = yield* storage.stat(path)
          if (Option.isNone(entry)) {
            missing.push(r.path)
            continue
          }
          if (entry.value.size !== Number(r.size)) {
            sizeMismatch.push(r.path)
            continue
          }
          // Compacted files carry no per-snapshot checksum row; their size is checked above.
          if (r.checksum === null) continue
          const expected = parseIrodsChecksum(r.checksum)
          const sum = yield* storage.checksum(path).pipe(Effect.option)
          let hex = Option.isSome(sum) && sum.value.algorithm === expected?.algorithm ? sum.value.hex : undefined
          if (hex === undefined && expected !== undefined) {
            const local = yield* stored.localCopy(path, dir)
            hex = (yield* Effect.promise(() => checksumFile(local, expected.algorithm))).hex
          }
          if (expected === undefined || hex !== expected.hex) checksumMismatch.push(r.path)
        }
      }))
      const markers = yield* storage.list(`${project.ducklakePath}/${MARKER_DIR}`).pipe(
        Effect.catchIf((e) => e.reason === "NotFound", () => Effect.succeed([]))
      )
      const newerInStorage = markers
        .map((m) => /^snapshot_(\d{10})\.json$/.exec(m.name))
        .flatMap((m) => (m === null ? [] : [Number(m[1])]))
        .filter((id) => id > latest)
        .sort((a, b) => a - b)
      const checked = rows.length
      return {
        checked,
        ok: checked - missing.length - sizeMismatch.length - checksumMismatch.length,
        missing,
        sizeMismatch,
        checksumMismatch,
        newerInStorage
      } satisfies ConsistencyReport
    })

    const restore = Effect.fn("Backup.restore")(function*(input: RestoreInput) {
      const started = Date.now()
      const root = yield* parseIrodsPath(input.root, "root")
      yield* tools.checkTool("pg_restore")
      return yield* Effect.scoped(Effect.gen(function*() {
        const dir = yield* privateTempDir(fs, "mesa-restore-")
        const chosen = yield* chooseBackup(stored, root, dir, input.backup)
        const m = chosen.manifest
        const { dropOld, putBack } = yield* makeRoom(catalog, m, root, input.force === true)
        const snapshots = yield* load(catalog, tools, m, chosen.local, root).pipe(Effect.tapError(() => putBack))
        yield* dropOld
        const consistency = yield* checkConsistency(m.projectId).pipe(
          Effect.catchTag("ProjectNotFound", (e) => Effect.die(e))
        )
        const report: RestoreReport = {
          projectId: m.projectId,
          metadataSchema: m.metadataSchema,
          backup: chosen.name,
          rejected: chosen.rejected,
          snapshots,
          consistency,
          seconds: (Date.now() - started) / 1000
        }
        yield* Effect.logInfo("catalog restored").pipe(Effect.annotateLogs({ ...report, consistency: JSON.stringify(consistency) }))
        return report
      }))
    })

    return { checkConsistency, restore }
  })
