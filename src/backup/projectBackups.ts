/**
 * Backing up: per project, `pg_dump --format=custom --schema=<the project's lake schema>` — exactly one project's
 * catalog, nothing of any other — uploaded to `<root>/.mesa/ducklake/backups/mesa-ducklake-<project>-<UTC>.dump`.
 * pg_dump cannot filter rows, so the project's registry row (`mesa_ducklake.projects`, shared by all projects) is not
 * in the dump: it travels in a small manifest next to it, `<same name>.json`, together with the dump's size and
 * digests. A dump is verified before it counts (its table of contents lists only that schema, a full read of the
 * archive succeeds, the stored copy's checksum equals the local one); the manifest is uploaded last, so a backup
 * without a manifest is incomplete and never used. Retention then keeps the newest N verified backups. `backupAll`
 * runs every project, one after another (the daemon's schedule is in scripts/backup.ts).
 */
import * as FileSystem from "@effect/platform/FileSystem"
import { Effect } from "effect"
import * as nodePath from "node:path"
import { Catalog, type CatalogService } from "../catalog/Catalog.js"
import type { Project } from "../core/domain.js"
import { checksumFile, LakeStorage, type LakeStorageService } from "../storage/LakeStorage.js"
import { pgDumpArgs, type PgTools } from "./dump.js"
import { BackupCorrupt } from "./errors.js"
import { PRIVATE_DIR, PRIVATE_FILE, privateTempDir, restrictStored } from "./private.js"
import { type BackupManifest, backupsOf, dumpName, manifestPath, type StoredBackup, type StoredBackups } from "./stored.js"

export interface BackupResult {
  readonly projectId: string
  readonly path: string
  readonly bytes: number
  readonly latestSnapshot: number
  readonly seconds: number
  readonly retention: RetentionReport
}

export interface RetentionReport {
  readonly kept: ReadonlyArray<string>
  readonly removed: ReadonlyArray<string>
  /** Backups newer than the oldest kept one that are incomplete or fail their checksum: left alone, reported. */
  readonly unusable: ReadonlyArray<string>
}

export interface RunSummary {
  readonly projects: number
  readonly succeeded: number
  readonly failed: ReadonlyArray<{ readonly projectId: string; readonly irodsPath: string; readonly error: string }>
  readonly files: number
  readonly bytes: number
  readonly seconds: number
  readonly results: ReadonlyArray<BackupResult>
}

/** The project's registry row, as the manifest carries it, and its latest snapshot. */
const readRegistry = (catalog: CatalogService, project: Project) =>
  catalog.withSql((sql) =>
    Effect.map(
      sql<any>`SELECT p.*, p.last_snapshot_id::text AS last_id,
                      (SELECT max(snapshot_id)::text FROM ${sql(project.metadataSchema)}.ducklake_snapshot) AS latest
               FROM mesa_ducklake.projects p WHERE project_id = ${project.projectId}`,
      ([r]) => ({
        registry: {
          projectId: project.projectId,
          irodsPath: r.irods_path,
          irodsZone: r.irods_zone,
          ducklakePath: r.ducklake_path,
          metadataSchema: r.metadata_schema,
          createdAt: new Date(r.created_at).toISOString(),
          createdBy: r.created_by,
          status: r.status,
          lastSnapshotId: Number(r.last_id)
        },
        latest: Number(r.latest ?? 0)
      })
    )
  )

/** What writing a backup works with. */
interface Parts {
  readonly fs: FileSystem.FileSystem
  readonly storage: LakeStorageService
  readonly tools: PgTools
  readonly stored: StoredBackups
}

/**
 * Dumps the project's schema into a private directory, verifies it, uploads it (owner-only on a mount), checks
 * the stored copy, then uploads the manifest. Returns the dump's size.
 */
const writeBackup = (
  { fs, storage, stored, tools }: Parts,
  project: Project,
  name: string,
  remote: string,
  manifestOf: (dump: BackupManifest["dump"]) => BackupManifest
) =>
  Effect.scoped(Effect.gen(function*() {
    const dir = yield* privateTempDir(fs, "mesa-backup-")
    const local = nodePath.join(dir, name)
    yield* tools.run("pg_dump", pgDumpArgs(tools.conninfo, project.metadataSchema, local))
    // pg_dump creates its file by the umask (usually 0644): owner-only before anything copies it, so the
    // mounted storage's copy (which takes the source's mode) is never readable by others either.
    yield* fs.chmod(local, PRIVATE_FILE).pipe(Effect.orDie)
    yield* tools.afterDump(local)
    yield* tools.verifyArchive(local, project.metadataSchema, local)
    const sha256 = (yield* Effect.promise(() => checksumFile(local, "sha256"))).hex
    const md5 = (yield* Effect.promise(() => checksumFile(local, "md5"))).hex
    const bytes = Number((yield* fs.stat(local).pipe(Effect.orDie)).size)
    yield* storage.makeCollection(backupsOf(project.irodsPath))
    // Also tightens a collection an older version left readable, and with it the backups it holds.
    yield* restrictStored(fs, storage, backupsOf(project.irodsPath), PRIVATE_DIR)
    yield* storage.put(local, remote)
    yield* restrictStored(fs, storage, remote, PRIVATE_FILE)
    const manifest = manifestOf({ name, bytes, sha256, md5 })
    // The stored copy, read back by the storage itself, must be the dump we verified.
    if (!(yield* stored.storedChecksumMatches(remote, manifest))) {
      yield* storage.remove(remote).pipe(Effect.ignore)
      return yield* new BackupCorrupt({ path: remote, reason: "stored copy's checksum differs from the local dump" })
    }
    const localManifest = nodePath.join(dir, `${name}.json`)
    yield* fs.writeFileString(localManifest, JSON.stringify(manifest, null, 2) + "\n", { mode: PRIVATE_FILE }).pipe(
      Effect.zipRight(fs.chmod(localManifest, PRIVATE_FILE)),
      Effect.orDie
    )
    yield* storage.put(localManifest, manifestPath(remote)).pipe(
      Effect.tapError(() => storage.remove(remote).pipe(Effect.ignore))
    )
    yield* restrictStored(fs, storage, manifestPath(remote), PRIVATE_FILE)
    return bytes
  }))

/** Backing up projects and applying retention; `retention` is the number of verified backups kept by default. */
export const makeBackups = (tools: PgTools, stored: StoredBackups, retention: number) =>
  Effect.gen(function*() {
    const catalog = yield* Catalog
    const storage = yield* LakeStorage
    const fs = yield* FileSystem.FileSystem

    /** Keep the newest `keep` verified backups of a project root; older ones are removed. */
    const applyRetention = (root: string, keep = retention) =>
      Effect.gen(function*() {
        const all = yield* stored.listBackups(root)
        const dir = yield* privateTempDir(fs, "mesa-retention-")
        const good: Array<StoredBackup> = []
        const unusable: Array<StoredBackup> = []
        for (const b of all) {
          if (good.length >= keep) break
          const ok = b.status === "complete" && (yield* stored.readManifest(b.path, dir).pipe(
            Effect.flatMap((m) => stored.storedChecksumMatches(b.path, m)),
            Effect.orElseSucceed(() => false)
          ))
          if (ok) good.push(b)
          else unusable.push(b)
        }
        // Fewer good backups than asked for: remove nothing.
        if (good.length < keep) {
          return { kept: good.map((b) => b.name), removed: [], unusable: unusable.map((b) => b.name) }
        }
        const oldestKept = good[good.length - 1]!
        const removed: Array<string> = []
        for (const b of all) {
          if (b.name >= oldestKept.name) continue
          yield* storage.remove(manifestPath(b.path)).pipe(Effect.catchIf((e) => e.reason === "NotFound", () => Effect.void))
          yield* storage.remove(b.path)
          removed.push(b.name)
        }
        return { kept: good.map((b) => b.name), removed, unusable: unusable.map((b) => b.name) } satisfies RetentionReport
      }).pipe(Effect.scoped)

    /** Dump, verify and upload one project's catalog, then apply retention. */
    const backupProject = Effect.fn("Backup.backupProject")(function*(projectId: string) {
      const started = Date.now()
      const project = yield* catalog.getProject(projectId)
      const versions = yield* tools.checkTool("pg_dump")
      yield* tools.checkTool("pg_restore")
      const { latest, registry } = yield* readRegistry(catalog, project)
      const now = new Date()
      const name = dumpName(project.projectId, now)
      const remote = `${backupsOf(project.irodsPath)}/${name}`
      yield* Effect.annotateCurrentSpan({ projectId: project.projectId, backup: name })
      const uploaded = yield* writeBackup({ fs, storage, stored, tools }, project, name, remote, (dump) => ({
        format: "mesa-ducklake-backup/1",
        projectId: project.projectId,
        metadataSchema: project.metadataSchema,
        createdAt: now.toISOString(),
        registry,
        dump,
        latestSnapshot: latest,
        pgDump: versions.tool,
        server: versions.server
      }))
      const kept = yield* applyRetention(project.irodsPath).pipe(
        Effect.catchTag("InvalidChange", (e) => Effect.die(e))
      )
      const seconds = (Date.now() - started) / 1000
      yield* Effect.logInfo("backup written").pipe(
        Effect.annotateLogs({ projectId: project.projectId, backup: name, bytes: uploaded, seconds, removed: kept.removed.length })
      )
      return { projectId: project.projectId, path: remote, bytes: uploaded, latestSnapshot: latest, seconds, retention: kept } satisfies BackupResult
    })

    /** Every registered project, one after another; a failing project does not stop the others. */
    const backupAll = Effect.gen(function*() {
      const started = Date.now()
      const projects = yield* catalog.listProjects
      const results: Array<BackupResult> = []
      const failed: Array<{ projectId: string; irodsPath: string; error: string }> = []
      let bytes = 0
      for (const [i, p] of projects.entries()) {
        const outcome = yield* Effect.either(backupProject(p.projectId))
        if (outcome._tag === "Right") {
          results.push(outcome.right)
          bytes += outcome.right.bytes
        } else {
          if (outcome.left._tag === "CatalogUnavailable") return yield* outcome.left
          failed.push({ projectId: p.projectId, irodsPath: p.irodsPath, error: outcome.left.message })
          yield* Effect.logError(`backup of ${p.irodsPath} failed: ${outcome.left.message}`)
        }
        yield* Effect.logInfo(`backup progress ${i + 1}/${projects.length}`).pipe(
          Effect.annotateLogs({ project: p.irodsPath, bytes, seconds: (Date.now() - started) / 1000 })
        )
      }
      return {
        projects: projects.length,
        succeeded: results.length,
        failed,
        files: results.length * 2,
        bytes,
        seconds: (Date.now() - started) / 1000,
        results
      } satisfies RunSummary
    }).pipe(Effect.withSpan("Backup.backupAll"))

    return { applyRetention, backupProject, backupAll }
  })
