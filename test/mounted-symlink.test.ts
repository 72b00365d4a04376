/**
 * Symbolic links under a mounted zone (issue 16, defect 2). iRODS has no links, so one below the mount root is
 * foreign: the mounted adapter never reads or writes through it (`StorageError` "PermissionDenied", nothing written),
 * whether it leads out of the zone or into another project's lake, and a rebuild refuses a linked lake directory.
 * The client-level tests run on a real embedded PostgreSQL; the adapter's own tests on a bare directory.
 */
import { FileSystem } from "@effect/platform"
import { NodeContext, NodeFileSystem } from "@effect/platform-node"
import { describe, expect, it, layer } from "@effect/vitest"
import { Effect, Layer, Option } from "effect"
import { createHash } from "node:crypto"
import * as fs from "node:fs"
import * as os from "node:os"
import * as nodePath from "node:path"
import * as BackupModule from "../src/backup/Backup.js"
import { Backup } from "../src/backup/Backup.js"
import { Catalog } from "../src/catalog/Catalog.js"
import type { Project } from "../src/core/domain.js"
import { DuckLakeClient, MARKER_DIR } from "../src/client/DuckLakeClient.js"
import { LakeStorage } from "../src/storage/LakeStorage.js"
import * as MountedStorage from "../src/storage/MountedStorage.js"
import { faultyFileSystem } from "./faults.js"
import { catalogState, change, embedded, EmbeddedPostgres, freshRoot, record, registerFresh } from "./support.js"

const { dirs, layer: Base } = embedded("mounted-symlink")
const BackupLive = Layer.unwrapEffect(Effect.map(EmbeddedPostgres, (pg) => BackupModule.layer({ dsn: pg.dsn })))
const Live = BackupLive.pipe(Layer.provideMerge(Layer.mergeAll(Base, NodeContext.layer)))

/** The StorageError reason of an error, or of the StorageError a typed error wraps (e.g. `LakeWriteError`). */
const storageReason = (e: unknown): string | undefined => {
  for (let x: any = e, depth = 0; x !== undefined && x !== null && depth < 5; x = x.cause, depth++) {
    if (x._tag === "StorageError") return x.reason
  }
  return undefined
}

/** Every entry below a directory, not following links: files by digest, links by target. Unchanged bytes = equal. */
const treeBytes = (dir: string): Record<string, string> => {
  const out: Record<string, string> = {}
  const walk = (d: string, rel: string) => {
    for (const name of fs.readdirSync(d).sort()) {
      const p = nodePath.join(d, name)
      const r = rel === "" ? name : `${rel}/${name}`
      const st = fs.lstatSync(p)
      if (st.isSymbolicLink()) out[r] = `link:${fs.readlinkSync(p)}`
      else if (st.isDirectory()) {
        out[r] = "dir"
        walk(p, r)
      } else out[r] = createHash("sha256").update(fs.readFileSync(p)).digest("hex")
    }
  }
  if (fs.existsSync(dir)) walk(dir, "")
  return out
}

let outsideCounter = 0
/** A directory outside the zone (beside it, in the test's base directory). */
const outsideDir = () => {
  const d = nodePath.join(dirs.base, `outside-${++outsideCounter}`)
  fs.mkdirSync(d, { recursive: true })
  return d
}

const zoneLocal = (logical: string) => nodePath.join(dirs.zoneDir, logical)
const lakeDir = (p: Project) => zoneLocal(p.ducklakePath)
const tableDir = (p: Project) => nodePath.join(lakeDir(p), "main/avu_changes")

const dropCatalog = (p: Project) =>
  Effect.zipRight(Effect.flatMap(DuckLakeClient, (c) => c.flush), Effect.flatMap(Catalog, (catalog) =>
    catalog.withSql((sql) =>
      Effect.all([
        sql`DROP SCHEMA ${sql(p.metadataSchema)} CASCADE`,
        sql`DELETE FROM mesa_ducklake.projects WHERE project_id = ${p.projectId}`
      ])
    )))

const answers = (p: Project) =>
  Effect.gen(function*() {
    const c = yield* DuckLakeClient
    return {
      history: yield* c.getHistory(p.projectId, { limit: 1000 }),
      snapshots: yield* c.listSnapshots(p.projectId),
      now: yield* c.getAvus(p.projectId, `${p.irodsPath}/x`)
    }
  })

/** Cached copies of a lake file (the client keeps what it wrote): removed so a read must go to storage. */
const cachedCopies = (fileName: string) =>
  (fs.readdirSync(dirs.cacheDir, { recursive: true }) as Array<string>)
    .map(String)
    .filter((f) => nodePath.basename(f) === fileName)
    .map((f) => nodePath.join(dirs.cacheDir, f))

layer(Live, { timeout: "180 seconds", excludeTestServices: true })("symbolic links in a mounted zone", (it) => {
  it.effect("a project whose .mesa links outside the zone cannot be registered; nothing lands outside", () =>
    Effect.gen(function*() {
      const client = yield* DuckLakeClient
      const root = freshRoot("sym-register")
      fs.mkdirSync(zoneLocal(root), { recursive: true })
      const outside = outsideDir()
      fs.symlinkSync(outside, nodePath.join(zoneLocal(root), ".mesa"))
      const e = yield* Effect.flip(client.registerProject({ irodsPath: root, actor: "alice" }))
      expect(storageReason(e)).toBe("PermissionDenied")
      expect(treeBytes(outside)).toEqual({})
      expect((yield* Effect.flip(client.findProjectByPath(root)))._tag).toBe("ProjectNotFound")
    }))

  it.effect("a lake moved outside the zone behind a link: writes fail typed, the outside copy is untouched", () =>
    Effect.gen(function*() {
      const client = yield* DuckLakeClient
      const p = yield* registerFresh("sym-moved")
      yield* record(p.projectId, [change(`${p.irodsPath}/x`, "a", "1")])
      yield* client.flush
      const mesa = nodePath.join(zoneLocal(p.irodsPath), ".mesa")
      const outside = nodePath.join(outsideDir(), "moved")
      fs.renameSync(mesa, outside)
      fs.symlinkSync(outside, mesa)
      const before = treeBytes(outside)
      const e = yield* Effect.flip(
        client.recordChanges({ projectId: p.projectId, actor: "alice", changes: [change(`${p.irodsPath}/x`, "a", "2")] })
      )
      expect(storageReason(e)).toBe("PermissionDenied")
      yield* client.flush
      yield* client.recoverPendingPushes()
      expect(treeBytes(outside)).toEqual(before)
    }))

  it.effect("a lake linked into another project's lake: its writes fail, the victim keeps every file and its whole history", () =>
    Effect.gen(function*() {
      const client = yield* DuckLakeClient
      const backup = yield* Backup
      const a = yield* registerFresh("sym-attacker")
      const b = yield* registerFresh("sym-victim")
      for (const v of ["1", "2", "3"]) yield* record(b.projectId, [change(`${b.irodsPath}/x`, "n", v, "set")])
      yield* client.flush
      const bAnswers = yield* answers(b)
      // A's lake becomes a link to B's: A's first snapshot (id 2) would write B's marker snapshot_0000000002.json.
      fs.rmSync(lakeDir(a), { recursive: true })
      fs.symlinkSync(lakeDir(b), lakeDir(a))
      const bBefore = treeBytes(lakeDir(b))
      expect(Object.keys(bBefore)).toContain(`${MARKER_DIR}/snapshot_0000000002.json`)

      const e = yield* Effect.flip(
        client.recordChanges({ projectId: a.projectId, actor: "mallory", changes: [change(`${a.irodsPath}/x`, "n", "evil")] })
      )
      expect(storageReason(e)).toBe("PermissionDenied")
      yield* client.flush
      yield* client.recoverPendingPushes()
      expect(treeBytes(lakeDir(b))).toEqual(bBefore)

      // B rebuilt from storage alone: every snapshot, no foreign file, the same answers.
      yield* dropCatalog(b)
      const report = yield* backup.rebuild({ root: b.irodsPath })
      expect(report.problems).toEqual([])
      expect(report.snapshots).toBe(3)
      expect(yield* answers(b)).toEqual(bAnswers)

      // A's rebuild refuses its linked lake directory, dry run or not, and writes nothing to the catalog.
      const aState = yield* catalogState(a.metadataSchema)
      const bState = yield* catalogState(b.metadataSchema)
      for (const dryRun of [true, false]) {
        const refused = yield* Effect.flip(backup.rebuild({ root: a.irodsPath, force: true, dryRun }))
        expect(refused._tag).toBe("RebuildError")
        expect(refused.message).toMatch(/symbolic link/)
        expect(refused.message).toContain(a.ducklakePath)
      }
      expect(yield* catalogState(a.metadataSchema)).toEqual(aState)
      expect(yield* catalogState(b.metadataSchema)).toEqual(bState)
      expect(treeBytes(lakeDir(b))).toEqual(bBefore)
    }))

  it.effect("rebuild refuses a lake directory under a linked .mesa or with a linked table directory; nothing is written", () =>
    Effect.gen(function*() {
      const backup = yield* Backup
      const client = yield* DuckLakeClient
      const p = yield* registerFresh("sym-rebuild")
      yield* record(p.projectId, [change(`${p.irodsPath}/x`, "a", "1")])
      yield* record(p.projectId, [change(`${p.irodsPath}/x`, "a", "2")])
      yield* dropCatalog(p)
      const projectsBefore = (yield* Effect.flatMap(Catalog, (c) =>
        c.withSql((sql) => sql<any>`SELECT count(*)::int AS n FROM mesa_ducklake.projects`)))[0].n

      const mesa = nodePath.join(zoneLocal(p.irodsPath), ".mesa")
      const outside = nodePath.join(outsideDir(), "mesa")
      fs.renameSync(mesa, outside)
      fs.symlinkSync(outside, mesa)
      for (const dryRun of [true, false]) {
        const e = yield* Effect.flip(backup.rebuild({ root: p.irodsPath, dryRun }))
        expect(e._tag).toBe("RebuildError")
        expect(e.message).toMatch(/symbolic link/)
      }
      // The .mesa back in place, but the table directory a link (to the same files, outside the zone).
      fs.rmSync(mesa)
      fs.renameSync(outside, mesa)
      const table = nodePath.join(lakeDir(p), "main/avu_changes")
      const movedTable = nodePath.join(outsideDir(), "avu_changes")
      fs.renameSync(table, movedTable)
      fs.symlinkSync(movedTable, table)
      const e = yield* Effect.flip(backup.rebuild({ root: p.irodsPath }))
      expect(e._tag).toBe("RebuildError")
      expect(e.message).toMatch(/symbolic link/)
      expect(e.message).toContain("main/avu_changes")

      expect((yield* Effect.flip(client.getProject(p.projectId)))._tag).toBe("ProjectNotFound")
      expect((yield* Effect.flatMap(Catalog, (c) =>
        c.withSql((sql) => sql<any>`SELECT count(*)::int AS n FROM mesa_ducklake.projects`)))[0].n).toBe(projectsBefore)
      const schemas = yield* Effect.flatMap(Catalog, (c) =>
        c.withSql((sql) => sql<any>`SELECT count(*)::int AS n FROM pg_namespace WHERE nspname = ${p.metadataSchema}`))
      expect(schemas[0].n).toBe(0)
    }))

  it.effect("a data file replaced by a link is never followed: reads fail typed, rebuild reports it and merges nothing", () =>
    Effect.gen(function*() {
      const client = yield* DuckLakeClient
      const backup = yield* Backup
      const p = yield* registerFresh("sym-file")
      const s1 = (yield* record(p.projectId, [change(`${p.irodsPath}/x`, "a", "one")])).snapshotId
      const s2 = (yield* record(p.projectId, [change(`${p.irodsPath}/x`, "b", "two")])).snapshotId
      yield* client.flush
      const files = fs.readdirSync(tableDir(p)).filter((f) => f.endsWith(".parquet")).sort()
      const [f1, f2] = files as [string, string]
      expect(f1).toContain(`snapshot_${String(s1).padStart(10, "0")}_`)
      // s1's file becomes a link to a copy of s2's file outside the zone: following it would answer wrongly.
      const decoy = nodePath.join(outsideDir(), "decoy.parquet")
      fs.copyFileSync(nodePath.join(tableDir(p), f2), decoy)
      const decoyBytes = fs.readFileSync(decoy)
      fs.rmSync(nodePath.join(tableDir(p), f1))
      fs.symlinkSync(decoy, nodePath.join(tableDir(p), f1))
      for (const copy of cachedCopies(f1)) fs.rmSync(copy)

      const e1 = yield* Effect.flip(client.getSnapshotChanges(p.projectId, s1))
      expect(storageReason(e1)).toBe("PermissionDenied")
      const e2 = yield* Effect.flip(client.getHistory(p.projectId, { limit: 100 }))
      expect(storageReason(e2)).toBe("PermissionDenied")
      expect(cachedCopies(f1)).toEqual([])
      // s2's own file still reads.
      expect((yield* client.getSnapshotChanges(p.projectId, s2)).map((r) => r.value)).toEqual(["two"])

      yield* dropCatalog(p)
      const report = yield* backup.rebuild({ root: p.irodsPath })
      const kinds = report.problems.map((x) => `${x.kind}:${"snapshotId" in x ? x.snapshotId : ""}`).sort()
      // s2's marker links to s1's chain record, which the rebuild could not keep: the chain reports the gap.
      expect(kinds).toEqual(["chain-mismatch:" + s2, "marker-without-file:" + s1, "unreadable:"].sort())
      const unreadable = report.problems.find((x) => x.kind === "unreadable")
      expect(unreadable).toMatchObject({ file: f1 })
      expect(unreadable !== undefined && "reason" in unreadable ? unreadable.reason : "").toMatch(/PermissionDenied.*symbolic link/)
      expect((yield* client.listSnapshots(p.projectId)).map((s) => s.snapshotId)).toEqual([s2])
      expect((yield* client.getHistory(p.projectId, { limit: 100 })).map((r) => r.value)).toEqual(["two"])
      expect(fs.readFileSync(decoy).equals(decoyBytes)).toBe(true)
      expect(fs.lstatSync(nodePath.join(tableDir(p), f1)).isSymbolicLink()).toBe(true)
    }))
})

// ---- The adapter itself ------------------------------------------------------------------------------------------

const PREFIX = "/iplant/home"

/**
 * A zone whose mount root is itself a link (allowed: resolved once), a local file to upload, a directory outside
 * the zone holding a secret file, and two projects' lake directories.
 */
const setup = () => {
  const base = fs.realpathSync(fs.mkdtempSync(nodePath.join(os.tmpdir(), "mesa-symlink-")))
  const realRoot = nodePath.join(base, "real-mount")
  fs.mkdirSync(realRoot, { recursive: true })
  const mountRoot = nodePath.join(base, "mount")
  fs.symlinkSync(realRoot, mountRoot)
  const local = nodePath.join(base, "local.bin")
  fs.writeFileSync(local, Buffer.from("parquet bytes ".repeat(100)))
  const outside = nodePath.join(base, "outside")
  fs.mkdirSync(outside)
  fs.writeFileSync(nodePath.join(outside, "secret.parquet"), "not yours")
  for (const p of ["alice/a/.mesa/ducklake/_mesa_log", "bob/b/.mesa/ducklake/_mesa_log"]) {
    fs.mkdirSync(nodePath.join(realRoot, p), { recursive: true })
  }
  fs.writeFileSync(nodePath.join(realRoot, "bob/b/.mesa/ducklake/_mesa_log/snapshot_0000000002.json"), "bob's marker")
  const layer = MountedStorage.layer({ logicalPrefix: PREFIX, mountRoot })
  return { base, realRoot, mountRoot, local, outside, layer }
}

type Setup = ReturnType<typeof setup>

const withStorage = <A, E>(
  body: (s: Effect.Effect.Success<typeof LakeStorage>, env: Setup) => Effect.Effect<A, E>,
  fileSystem: Layer.Layer<FileSystem.FileSystem> = NodeFileSystem.layer
) => {
  const env = setup()
  return Effect.flatMap(LakeStorage, (s) => body(s, env)).pipe(
    Effect.provide(env.layer),
    Effect.provide(fileSystem),
    Effect.ensuring(Effect.sync(() => fs.rmSync(env.base, { recursive: true, force: true })))
  )
}

const denied = <A, E>(effect: Effect.Effect<A, E>) =>
  Effect.map(Effect.flip(effect), (e) => storageReason(e))

describe("MountedStorage and symbolic links", () => {
  it.effect("a mount root that is itself a link is resolved once and works", () =>
    withStorage((s, env) =>
      Effect.gen(function*() {
        const target = `${PREFIX}/alice/a/.mesa/ducklake/x.parquet`
        yield* s.put(env.local, target)
        expect(fs.readFileSync(nodePath.join(env.realRoot, "alice/a/.mesa/ducklake/x.parquet")).equals(fs.readFileSync(env.local))).toBe(true)
        expect(s.localPath(target)).toEqual(Option.some(nodePath.join(env.realRoot, "alice/a/.mesa/ducklake/x.parquet")))
        expect((yield* s.list(`${PREFIX}/alice/a/.mesa/ducklake`)).map((e) => e.name)).toEqual(["_mesa_log", "x.parquet"])
        yield* s.makeCollection(`${PREFIX}/alice/a/.mesa/ducklake/main/avu_changes`)
        yield* s.remove(target)
      })))

  it.effect("a link in a directory component (out of the zone): every operation refuses, nothing is written", () =>
    withStorage((s, env) =>
      Effect.gen(function*() {
        // alice/a/.mesa → outside
        fs.rmSync(nodePath.join(env.realRoot, "alice/a/.mesa"), { recursive: true })
        fs.symlinkSync(env.outside, nodePath.join(env.realRoot, "alice/a/.mesa"))
        const before = treeBytes(env.outside)
        const via = `${PREFIX}/alice/a/.mesa/secret.parquet`
        const back = nodePath.join(env.base, "back.bin")
        expect(yield* denied(s.put(env.local, `${PREFIX}/alice/a/.mesa/ducklake/x.parquet`))).toBe("PermissionDenied")
        expect(yield* denied(s.put(env.local, via, { overwrite: true }))).toBe("PermissionDenied")
        expect(yield* denied(s.makeCollection(`${PREFIX}/alice/a/.mesa/ducklake/main/avu_changes`))).toBe("PermissionDenied")
        expect(yield* denied(s.get(via, back))).toBe("PermissionDenied")
        expect(fs.existsSync(back)).toBe(false)
        expect(yield* denied(s.stat(via))).toBe("PermissionDenied")
        expect(yield* denied(s.stat(`${PREFIX}/alice/a/.mesa`))).toBe("PermissionDenied")
        expect(yield* denied(s.checksum(via))).toBe("PermissionDenied")
        expect(yield* denied(s.list(`${PREFIX}/alice/a/.mesa`))).toBe("PermissionDenied")
        expect(yield* denied(s.remove(via))).toBe("PermissionDenied")
        expect(s.localPath(via)).toEqual(Option.none())
        expect(s.localPath(`${PREFIX}/alice/a/.mesa/ducklake/missing.parquet`)).toEqual(Option.none())
        expect(treeBytes(env.outside)).toEqual(before)
        // The rest of the zone is unaffected.
        expect(s.localPath(`${PREFIX}/bob/b/.mesa/ducklake/_mesa_log/snapshot_0000000002.json`)).not.toEqual(Option.none())
      })))

  it.effect("a link into another project's lake: refused, the other project's marker unchanged", () =>
    withStorage((s, env) =>
      Effect.gen(function*() {
        fs.rmSync(nodePath.join(env.realRoot, "alice/a/.mesa/ducklake"), { recursive: true })
        fs.symlinkSync(nodePath.join(env.realRoot, "bob/b/.mesa/ducklake"), nodePath.join(env.realRoot, "alice/a/.mesa/ducklake"))
        const marker = `${PREFIX}/alice/a/.mesa/ducklake/_mesa_log/snapshot_0000000002.json`
        expect(yield* denied(s.put(env.local, marker, { overwrite: true }))).toBe("PermissionDenied")
        expect(yield* denied(s.list(`${PREFIX}/alice/a/.mesa/ducklake/_mesa_log`))).toBe("PermissionDenied")
        expect(yield* denied(s.stat(`${PREFIX}/alice/a/.mesa/ducklake`))).toBe("PermissionDenied")
        expect(yield* denied(s.remove(marker))).toBe("PermissionDenied")
        expect(s.localPath(marker)).toEqual(Option.none())
        expect(fs.readFileSync(nodePath.join(env.realRoot, "bob/b/.mesa/ducklake/_mesa_log/snapshot_0000000002.json"), "utf8"))
          .toBe("bob's marker")
        // Bob's own path is fine.
        expect(Option.isSome(yield* s.stat(`${PREFIX}/bob/b/.mesa/ducklake/_mesa_log/snapshot_0000000002.json`))).toBe(true)
      })))

  it.effect("the target itself a link: read, checksum, stat, overwrite and remove refuse; a listing shows it, unfollowed", () =>
    withStorage((s, env) =>
      Effect.gen(function*() {
        const linkFile = nodePath.join(env.realRoot, "alice/a/.mesa/ducklake/_mesa_log/snapshot_0000000003.json")
        fs.symlinkSync(nodePath.join(env.outside, "secret.parquet"), linkFile)
        const path = `${PREFIX}/alice/a/.mesa/ducklake/_mesa_log/snapshot_0000000003.json`
        const back = nodePath.join(env.base, "back.bin")
        expect(yield* denied(s.get(path, back))).toBe("PermissionDenied")
        expect(fs.existsSync(back)).toBe(false)
        expect(yield* denied(s.checksum(path))).toBe("PermissionDenied")
        expect(yield* denied(s.stat(path))).toBe("PermissionDenied")
        expect(yield* denied(s.put(env.local, path, { overwrite: true }))).toBe("PermissionDenied")
        expect(yield* denied(s.remove(path))).toBe("PermissionDenied")
        expect(s.localPath(path)).toEqual(Option.none())
        const listed = yield* s.list(`${PREFIX}/alice/a/.mesa/ducklake/_mesa_log`)
        expect(listed.map((e) => [e.name, e.type])).toEqual([["snapshot_0000000003.json", "data_object"]])
        expect(listed[0]!.size).not.toBe("not yours".length)
        expect(fs.readFileSync(nodePath.join(env.outside, "secret.parquet"), "utf8")).toBe("not yours")
        expect(fs.lstatSync(linkFile).isSymbolicLink()).toBe(true)
      })))

  it.effect("move refuses a link at the source, in the target's collection or at the target; nothing moves", () =>
    withStorage((s, env) =>
      Effect.gen(function*() {
        const lake = `${PREFIX}/alice/a/.mesa/ducklake`
        yield* s.put(env.local, `${lake}/main/x.parquet`).pipe(
          Effect.catchIf((e) => e._tag === "StorageError" && e.reason === "NotFound", () =>
            Effect.zipRight(s.makeCollection(`${lake}/main`), s.put(env.local, `${lake}/main/x.parquet`)))
        )
        const real = (rel: string) => nodePath.join(env.realRoot, "alice/a/.mesa/ducklake", rel)
        const move = s.move!
        // The source a link (to the secret outside): not followed, not moved.
        fs.symlinkSync(nodePath.join(env.outside, "secret.parquet"), real("main/link.parquet"))
        expect(yield* denied(move(`${lake}/main/link.parquet`, `${lake}/replaced/link.parquet`))).toBe("PermissionDenied")
        expect(fs.lstatSync(real("main/link.parquet")).isSymbolicLink()).toBe(true)
        // The target's collection a link out of the zone.
        fs.symlinkSync(env.outside, real("replaced"))
        expect(yield* denied(move(`${lake}/main/x.parquet`, `${lake}/replaced/x.parquet`))).toBe("PermissionDenied")
        fs.rmSync(real("replaced"))
        // The target itself a link.
        fs.mkdirSync(real("replaced"))
        fs.symlinkSync(nodePath.join(env.outside, "secret.parquet"), real("replaced/x.parquet"))
        expect(yield* denied(move(`${lake}/main/x.parquet`, `${lake}/replaced/x.parquet`))).toBe("PermissionDenied")
        expect(fs.readFileSync(real("main/x.parquet")).equals(fs.readFileSync(env.local))).toBe(true)
        expect(fs.readFileSync(nodePath.join(env.outside, "secret.parquet"), "utf8")).toBe("not yours")
        expect(fs.readdirSync(env.outside).sort()).toEqual(["secret.parquet"])
        // Outside the prefix, or climbing out: refused before anything is looked at.
        expect(yield* denied(move(`${lake}/main/x.parquet`, "/elsewhere/x.parquet"))).toBe("PermissionDenied")
        expect(yield* denied(move(`${lake}/main/../../x.parquet`, `${lake}/y.parquet`))).toBe("PermissionDenied")
      })))

  it.effect("a dangling link: makeCollection and put refuse and create nothing where it points", () =>
    withStorage((s, env) =>
      Effect.gen(function*() {
        const nowhere = nodePath.join(env.base, "nowhere")
        fs.mkdirSync(nodePath.join(env.realRoot, "carol/c"), { recursive: true })
        fs.symlinkSync(nowhere, nodePath.join(env.realRoot, "carol/c/.mesa"))
        expect(yield* denied(s.makeCollection(`${PREFIX}/carol/c/.mesa/ducklake/main/avu_changes`))).toBe("PermissionDenied")
        expect(yield* denied(s.put(env.local, `${PREFIX}/carol/c/.mesa`))).toBe("PermissionDenied")
        expect(yield* denied(s.stat(`${PREFIX}/carol/c/.mesa/ducklake`))).toBe("PermissionDenied")
        expect(s.localPath(`${PREFIX}/carol/c/.mesa/ducklake/x.parquet`)).toEqual(Option.none())
        expect(fs.existsSync(nowhere)).toBe(false)
      })))

  /**
   * A FileSystem that, right after the copy of a put (or the mkdir of a makeCollection), swaps alice's `.mesa` for a
   * link to a directory outside the zone holding its contents: the race the checks before the rename catch.
   */
  const swapping = (outsideOf: () => string) =>
    faultyFileSystem((real) => {
      const swap = (path: string) =>
        Effect.sync(() => {
          const i = path.indexOf("/alice/a/.mesa/")
          if (i < 0) return
          const mesa = path.slice(0, i) + "/alice/a/.mesa"
          if (fs.lstatSync(mesa).isSymbolicLink()) return
          const moved = nodePath.join(outsideOf(), "moved")
          fs.renameSync(mesa, moved)
          fs.symlinkSync(moved, mesa)
        })
      return {
        copyFile: (from: string, to: string) => Effect.zipRight(real.copyFile(from, to), swap(to)),
        makeDirectory: (path: string, options?: FileSystem.MakeDirectoryOptions) =>
          Effect.zipRight(real.makeDirectory(path, options), swap(`${path}/`))
      }
    })

  it.effect("put checks again right before its rename: a link swapped in during the copy is refused", () => {
    let outside = ""
    return withStorage((s, env) =>
      Effect.gen(function*() {
        outside = env.outside
        const e = yield* Effect.flip(s.put(env.local, `${PREFIX}/alice/a/.mesa/ducklake/x.parquet`))
        expect(storageReason(e)).toBe("PermissionDenied")
        // Neither the file nor its temporary copy is left in the moved directory.
        expect(fs.readdirSync(nodePath.join(env.outside, "moved/ducklake"))).toEqual(["_mesa_log"])
      }), swapping(() => outside))
  })

  it.effect("makeCollection checks again after creating: a link swapped in meanwhile is reported", () => {
    let outside = ""
    return withStorage((s, env) =>
      Effect.gen(function*() {
        outside = env.outside
        const e = yield* Effect.flip(s.makeCollection(`${PREFIX}/alice/a/.mesa/ducklake/main/avu_changes`))
        expect(storageReason(e)).toBe("PermissionDenied")
      }), swapping(() => outside))
  })

  it.effect("localPath's check is cheap: 10,000 calls (one realpath each)", () =>
    withStorage((s, env) =>
      Effect.sync(() => {
        const dir = nodePath.join(env.realRoot, "alice/a/.mesa/ducklake/main/avu_changes")
        fs.mkdirSync(dir, { recursive: true })
        const names = Array.from({ length: 100 }, (_, i) => `snapshot_${String(i).padStart(10, "0")}_ab.parquet`)
        for (const n of names) fs.writeFileSync(nodePath.join(dir, n), "x")
        const paths = names.map((n) => `${PREFIX}/alice/a/.mesa/ducklake/main/avu_changes/${n}`)
        for (const p of paths) expect(Option.isSome(s.localPath(p))).toBe(true)
        const t0 = process.hrtime.bigint()
        for (let i = 0; i < 10_000; i++) s.localPath(paths[i % paths.length]!)
        const ms = Number(process.hrtime.bigint() - t0) / 1e6
        console.log(`localPath: 10,000 calls in ${ms.toFixed(1)} ms (${(ms / 10).toFixed(2)} µs per call)`)
        expect(ms).toBeLessThan(2000)
      })))
})
