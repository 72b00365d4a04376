/**
 * Shared test fixtures: an embedded PostgreSQL + a real directory standing in for the iRODS zone, per test file.
 * Each test registers its own project (unique root), so tests sharing one layer do not see each other's data.
 */
import { Effect, Layer } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as nodePath from "node:path"
import * as Embedded from "../layers/embedded.js"
import type { AvuChangeInput } from "../src/domain.js"
import { DuckLakeClient } from "../src/DuckLakeClient.js"
import { EmbeddedPostgres } from "../src/EmbeddedPostgres.js"
import { Catalog } from "../src/Catalog.js"

export const ZONE = "/testZone"

export interface Dirs {
  readonly base: string
  readonly zoneDir: string
  readonly cacheDir: string
}

export const tempDirs = (label: string): Dirs => {
  const base = fs.mkdtempSync(nodePath.join(os.tmpdir(), `mesa-${label}-`))
  return { base, zoneDir: nodePath.join(base, "zone"), cacheDir: nodePath.join(base, "cache") }
}

/** The embedded client layer for one test file, plus its directories. */
export const embedded = (label: string) => {
  const dirs = tempDirs(label)
  const cleanup = Layer.scopedDiscard(
    Effect.addFinalizer(() => Effect.sync(() => fs.rmSync(dirs.base, { recursive: true, force: true })))
  )
  const layer = Embedded.layer({ zoneDir: dirs.zoneDir, cacheDir: dirs.cacheDir }).pipe(Layer.provideMerge(cleanup))
  return { dirs, layer }
}

let counter = 0
/** A fresh project root for one test. */
export const freshRoot = (name = "p") => `${ZONE}/home/alice/${name}-${process.pid}-${++counter}`

export const registerFresh = (name?: string) =>
  Effect.flatMap(DuckLakeClient, (c) => c.registerProject({ irodsPath: freshRoot(name), actor: "alice" }))

export const change = (
  irodsPath: string,
  attribute: string,
  value: string,
  op: "add" | "delete" | "set" = "add",
  extra: Partial<AvuChangeInput> = {}
): AvuChangeInput => ({
  irodsPath,
  targetType: "data_object",
  attribute,
  value,
  unit: "",
  op,
  actor: "alice",
  source: "test",
  ...extra
})

/** Record or die: for tests whose subject is not the write. */
export const record = (projectId: string, changes: ReadonlyArray<AvuChangeInput>, actor = "alice", note?: string) =>
  Effect.flatMap(DuckLakeClient, (c) =>
    c.recordChanges({ projectId, actor, changes, ...(note === undefined ? {} : { note }) }).pipe(
      Effect.flatMap((r) => (r.recorded ? Effect.succeed(r) : Effect.dieMessage("not recorded")))
    ))

/** Every file below a directory, relative, sorted: to assert storage is unchanged. */
export const listTree = (dir: string): Array<string> => {
  if (!fs.existsSync(dir)) return []
  return (fs.readdirSync(dir, { recursive: true }) as Array<string>).map(String).sort()
}

/** Counts of the catalog rows any write would change, for one project and overall. */
export const catalogState = (metadataSchema: string) =>
  Effect.flatMap(Catalog, (catalog) =>
    catalog.withSql((sql) =>
      Effect.map(
        sql<any>`SELECT
          (SELECT count(*) FROM ${sql(metadataSchema)}.ducklake_snapshot)::int AS snapshots,
          (SELECT count(*) FROM ${sql(metadataSchema)}.ducklake_data_file)::int AS files,
          (SELECT count(*) FROM ${sql(metadataSchema)}.mesa_current_avus)::int AS current,
          (SELECT count(*) FROM mesa_ducklake.pending_writes)::int AS pending,
          (SELECT count(*) FROM mesa_ducklake.projects)::int AS projects,
          (SELECT last_snapshot_id FROM mesa_ducklake.projects WHERE metadata_schema = ${metadataSchema})::int AS last_id`,
        (rows) => rows[0] as { snapshots: number; files: number; current: number; pending: number; projects: number; last_id: number }
      )
    ))

export { EmbeddedPostgres }
