/**
 * Fixtures shared by the backup, restore and rebuild tests: the embedded layer with a Backup service, a recorded
 * history with every kind of change and the grid of as-of questions to ask it, the answers to that grid, and losing
 * a project's catalog (schema and registry row) while its storage stays.
 */
import { NodeContext } from "@effect/platform-node"
import { Effect, Layer } from "effect"
import * as BackupModule from "../src/backup/Backup.js"
import { Backup, type BackupProbe } from "../src/backup/Backup.js"
import { Catalog } from "../src/catalog/Catalog.js"
import type { Project } from "../src/core/domain.js"
import { DuckLakeClient } from "../src/client/DuckLakeClient.js"
import { change, embedded, EmbeddedPostgres, record } from "./support.js"

export const sleep = (ms: number) => Effect.promise(() => new Promise((r) => setTimeout(r, ms)))

/**
 * The embedded layer for one test file (mounted storage) with a Backup service over its catalog (`config` as for
 * `Backup.layer`, the DSN the embedded server's) and, when given, a `BackupProbe`; plus its directories.
 */
export const embeddedBackup = (
  label: string,
  options: { readonly config?: Partial<BackupModule.BackupConfig>; readonly probe?: Layer.Layer<BackupProbe> } = {}
) => {
  const { dirs, layer: Base } = embedded(label)
  const BackupLive = Layer.unwrapEffect(
    Effect.map(EmbeddedPostgres, (pg) => BackupModule.layer({ dsn: pg.dsn, ...options.config }))
  )
  const parts = options.probe === undefined
    ? Layer.mergeAll(Base, NodeContext.layer)
    : Layer.mergeAll(Base, NodeContext.layer, options.probe)
  return { dirs, layer: BackupLive.pipe(Layer.provideMerge(parts)) }
}

/** Runs `use` with a Backup service of its own (`config` over the embedded server's DSN, an optional probe). */
export const withBackup = <A, E, R>(
  config: Partial<BackupModule.BackupConfig>,
  use: (b: BackupModule.BackupService) => Effect.Effect<A, E, R>,
  probe?: Layer.Layer<BackupProbe>
) =>
  Effect.flatMap(EmbeddedPostgres, (pgs) => {
    const backup = BackupModule.layer({ dsn: pgs.dsn, ...config })
    return Effect.flatMap(Backup, use).pipe(Effect.provide(probe === undefined ? backup : backup.pipe(Layer.provide(probe))))
  })

/**
 * A history with sets, deletes, back-dated valid times and provenance over several paths; returns the paths, the
 * valid times and the knownAt values (snapshot ids and transaction times) to ask about.
 */
export const recordHistory = (p: Project) =>
  Effect.gen(function*() {
    const [a, b, c, d] = ["a.csv", "b.csv", "sub/c.tif", "sub"].map((x) => `${p.irodsPath}/${x}`) as [string, string, string, string]
    const cuts: Array<Date> = [new Date()]
    const ids: Array<number> = []
    const step = (changes: Parameters<typeof record>[1], note?: string) =>
      Effect.gen(function*() {
        yield* sleep(15)
        ids.push((yield* record(p.projectId, changes, "alice", note)).snapshotId)
        yield* sleep(15)
        cuts.push(new Date())
      })
    yield* step([change(a, "status", "raw"), change(a, "depth", "10", "add", { unit: "cm" }), change(b, "crop", "wheat")], "first")
    yield* step([
      change(a, "status", "qc", "set", { actor: "bob", viaTicket: "t-1" }),
      change(a, "depth", "10", "delete", { unit: "cm" }),
      change(c, "band", "red", "add", { ts: "2020-01-01T00:00:00Z", ruleInvocation: "rule-7" })
    ])
    yield* step([
      change(b, "origin", "field-3", "add", { ts: "2019-06-01T12:00:00Z", onBehalfOf: "carol" }),
      change(b, "crop", "wheat", "delete", { ts: "2021-01-01T00:00:00Z" }),
      change(d, "kind", "collection", "add", { targetType: "collection", objectId: 4242 })
    ], "back-dated")
    yield* step([change(a, "depth", "12", "add", { unit: "cm" }), change(b, "crop", "barley")])
    yield* step([change(c, "band", "green", "set", { ts: "2020-06-01T00:00:00Z" }), change(d, "kind", "collection", "delete")])
    const paths = [a, b, c, d, `${p.irodsPath}/never.txt`]
    const times: Array<unknown> = [
      "2019-01-01T00:00:00Z",
      "2019-06-01T12:00:00Z",
      "2020-03-01T00:00:00Z",
      "2020-07-01T00:00:00Z",
      "2021-06-01T00:00:00Z",
      ...cuts,
      "2999-01-01T00:00:00Z"
    ]
    const knownAts: Array<number | Date | undefined> = [undefined, 0, 1, ...ids, ...cuts]
    return { paths, times, knownAts, ids }
  })

/** The questions to ask a history: paths × valid times × knownAt, and the snapshot ids recorded. */
export type Grid = Effect.Effect.Success<ReturnType<typeof recordHistory>>

/** Every as-of answer over paths × valid times × knownAt, plus the current state, history and snapshot list. */
export const answers = (projectId: string, grid: Grid) =>
  Effect.gen(function*() {
    const c = yield* DuckLakeClient
    const out: Array<unknown> = []
    for (const path of grid.paths) {
      out.push({ path, now: yield* c.getAvus(projectId, path) })
      for (const t of grid.times) {
        for (const k of grid.knownAts) {
          out.push({ path, t, k, avus: yield* c.getAvusAsOf(projectId, path, t, k === undefined ? undefined : { knownAt: k }) })
        }
      }
    }
    out.push(yield* c.getHistory(projectId, { limit: 1000 }))
    out.push(yield* c.listSnapshots(projectId))
    return out
  })

/**
 * Loses a project's catalog: its lake schema and its registry row. Commit markers are written in the background:
 * they are let land first, as they would have before a real loss.
 */
export const dropCatalog = (p: Project) =>
  Effect.zipRight(
    Effect.flatMap(DuckLakeClient, (c) => c.flush),
    Effect.flatMap(Catalog, (catalog) =>
      catalog.withSql((sql) =>
        Effect.all([
          sql`DROP SCHEMA ${sql(p.metadataSchema)} CASCADE`,
          sql`DELETE FROM mesa_ducklake.projects WHERE project_id = ${p.projectId}`
        ], { discard: true })
      ))
  )
