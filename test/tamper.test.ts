/**
 * Tamper evidence (issue 16): reads check every file against the catalog's checksum (a swapped, flipped, truncated
 * or deleted file is a typed read error naming it, never a silent wrong answer), and `verifyProject` walks the hash
 * chain: an intact project verifies (also after compaction and after a rebuild from storage, with the same head), and
 * any single byte of any stored file or marker, and any column of a `ducklake_data_file`, `mesa_snapshot`,
 * `mesa_chain` or `ducklake_snapshot` row, changed, makes it fail naming what changed.
 */
import { NodeContext } from "@effect/platform-node"
import { expect, layer } from "@effect/vitest"
import { Effect, Layer, Option } from "effect"
import * as fs from "node:fs"
import * as nodePath from "node:path"
import * as BackupModule from "../src/backup/Backup.js"
import { Backup } from "../src/backup/Backup.js"
import { Catalog } from "../src/catalog/Catalog.js"
import type { Project } from "../src/core/domain.js"
import { DuckLakeClient } from "../src/client/DuckLakeClient.js"
import type { VerifyReport } from "../src/integrity/verify.js"
import { ANCHOR_ATTRIBUTE } from "../src/catalog/chain.js"
import { LakeStorage } from "../src/storage/LakeStorage.js"
import { change, embedded, embeddedIrods, EmbeddedPostgres, record, registerFresh } from "./support.js"

const { dirs, layer: Base } = embedded("tamper")
const BackupLive = Layer.unwrapEffect(Effect.map(EmbeddedPostgres, (pg) => BackupModule.layer({ dsn: pg.dsn })))
const Live = BackupLive.pipe(Layer.provideMerge(Layer.mergeAll(Base, NodeContext.layer)))

const lakeDir = (p: Project) => nodePath.join(dirs.zoneDir, p.ducklakePath)
const tableDir = (p: Project) => nodePath.join(lakeDir(p), "main/avu_changes")
const markerDir = (p: Project) => nodePath.join(lakeDir(p), "_mesa_log")

/** A project with a few batches (notes, a set, a delete, a rename) and its markers stored. */
const history = Effect.gen(function*() {
  const lake = yield* DuckLakeClient
  const p = yield* registerFresh("tamper")
  const o = `${p.irodsPath}/data/o.csv`
  yield* record(p.projectId, [change(o, "species", "Quercus"), change(o, "site", "A")], "alice", "first")
  yield* record(p.projectId, [change(o, "species", "Quercus alba", "set")], "bob", "second")
  yield* record(p.projectId, [change(o, "site", "A", "delete"), change(`${p.irodsPath}/x`, "k", "v")], "alice")
  yield* lake.recordRename({ projectId: p.projectId, actor: "alice", from: o, to: `${p.irodsPath}/data/o2.csv` })
  yield* record(p.projectId, [change(`${p.irodsPath}/data/o2.csv`, "k", "w")], "carol", "fifth")
  yield* lake.flush
  return p
})

const verify = (p: Project) => Effect.flatMap(DuckLakeClient, (c) => c.verifyProject(p.projectId))

/** Problems as "kind@file" strings, for messages. */
const show = (r: VerifyReport) => r.problems.map((x) => `${x.kind}@${x.file ?? ""}: ${x.detail}`)

const sql = (f: (sql: any) => any): Effect.Effect<unknown, unknown, Catalog> =>
  Effect.flatMap(Catalog, (c) => c.withSql(f as (sql: any) => Effect.Effect<unknown, unknown>))

layer(Live, { timeout: "5 minutes" })("tamper evidence", (it) => {
  it.effect("an intact project verifies: as written, after compaction, and rebuilt from storage with the same head", () =>
    Effect.gen(function*() {
      const lake = yield* DuckLakeClient
      const backup = yield* Backup
      const p = yield* history
      const first = yield* verify(p)
      expect(show(first)).toEqual([])
      expect(first.ok).toBe(true)
      expect(first.records).toBe(5)
      expect(first.filesChecked).toBe(5)
      expect(first.markersChecked).toBe(5)
      expect(first.anchor).toBe("not-supported")
      yield* lake.compact(p.projectId)
      // The replaced files go (as after the grace period), so a rebuild must take the rows from the merged file.
      expect(yield* lake.deleteScheduledFiles(p.projectId, { graceMs: 0 })).toBe(5)
      const compacted = yield* verify(p)
      expect(show(compacted)).toEqual([])
      expect(compacted.records).toBe(6)
      expect(compacted.filesChecked).toBe(1)
      // A rebuild from storage alone reproduces the chain, hash for hash.
      yield* sql((s) =>
        Effect.all([
          s`DROP SCHEMA ${s(p.metadataSchema)} CASCADE`,
          s`DELETE FROM mesa_ducklake.projects WHERE project_id = ${p.projectId}`
        ])
      )
      const report = yield* backup.rebuild({ root: p.irodsPath })
      expect(report.problems).toEqual([])
      const rebuilt = yield* verify(p)
      expect(show(rebuilt)).toEqual([])
      expect(rebuilt.headHash).toBe(compacted.headHash)
      expect(rebuilt.headSnapshot).toBe(compacted.headSnapshot)
    }))

  it.effect("a swapped file is a ChecksumMismatch naming it, for every read; never a silent wrong answer", () =>
    Effect.gen(function*() {
      const lake = yield* DuckLakeClient
      const p = yield* history
      const files = fs.readdirSync(tableDir(p)).filter((f) => f.endsWith(".parquet")).sort()
      const [a, b] = [files[0]!, files[4]!]
      const before = yield* lake.getSnapshotChanges(p.projectId, 2)
      expect(before.length).toBe(2)
      // Another valid file of the same project in its place.
      const saved = fs.readFileSync(nodePath.join(tableDir(p), a))
      fs.copyFileSync(nodePath.join(tableDir(p), b), nodePath.join(tableDir(p), a))
      const reads: Array<Effect.Effect<unknown, { readonly _tag: string; readonly message: string }>> = [
        lake.getSnapshotChanges(p.projectId, 2),
        lake.getAvusAsOf(p.projectId, `${p.irodsPath}/data/o.csv`, new Date()),
        lake.getHistory(p.projectId),
        lake.diff(p.projectId, 1, 3)
      ]
      for (const read of reads) {
        const e = yield* Effect.flip(read)
        expect(e._tag).toBe("ChecksumMismatch")
        expect(e.message).toContain(a)
      }
      const v = yield* verify(p)
      expect(v.ok).toBe(false)
      expect(v.problems[0]).toMatchObject({ kind: "file-altered", snapshotId: 2, file: `main/avu_changes/${a}` })
      fs.writeFileSync(nodePath.join(tableDir(p), a), saved)
      expect(yield* lake.getSnapshotChanges(p.projectId, 2)).toEqual(before)
    }))

  it.effect("flipped, truncated and deleted files are read-side errors naming the file, never LakeWriteError", () =>
    Effect.gen(function*() {
      const lake = yield* DuckLakeClient
      const p = yield* history
      const name = fs.readdirSync(tableDir(p)).filter((f) => f.endsWith(".parquet")).sort()[1]!
      const file = nodePath.join(tableDir(p), name)
      const saved = fs.readFileSync(file)
      const read = Effect.flip(lake.getSnapshotChanges(p.projectId, 3))
      const flipped = Buffer.from(saved)
      flipped[Math.floor(saved.length / 2)]! ^= 0x01
      fs.writeFileSync(file, flipped)
      const e1 = yield* read
      expect(e1._tag).toBe("ChecksumMismatch")
      expect(e1.message).toContain(name)
      fs.writeFileSync(file, saved.subarray(0, saved.length - 10))
      const e2 = yield* read
      expect(e2._tag).toBe("ChecksumMismatch")
      expect(e2.message).toContain(name)
      fs.rmSync(file)
      const e3 = yield* read
      expect(e3._tag).toBe("LakeReadError")
      expect(e3).toMatchObject({ reason: "missing", file: `main/avu_changes/${name}` })
      fs.writeFileSync(file, saved)
      expect((yield* lake.getSnapshotChanges(p.projectId, 3)).length).toBe(2)
    }))

  it.effect("any single byte of any stored file or marker changed: verify fails naming it", () =>
    Effect.gen(function*() {
      const p = yield* history
      const targets = [
        ...fs.readdirSync(tableDir(p)).filter((f) => f.endsWith(".parquet")).map((f) => ({
          path: nodePath.join(tableDir(p), f),
          named: `main/avu_changes/${f}`
        })),
        ...fs.readdirSync(markerDir(p)).filter((f) => f.endsWith(".json")).map((f) => ({
          path: nodePath.join(markerDir(p), f),
          named: `_mesa_log/${f}`
        }))
      ]
      expect(targets.length).toBe(10)
      let seed = 7
      const random = (n: number) => (seed = (seed * 1103515245 + 12345) % 2 ** 31) % n
      let tried = 0
      for (const t of targets) {
        const saved = fs.readFileSync(t.path)
        for (const at of [0, saved.length >> 1, saved.length - 1, random(saved.length), random(saved.length)]) {
          for (const mask of [0x01, 0x80]) {
            const bad = Buffer.from(saved)
            bad[at]! ^= mask
            fs.writeFileSync(t.path, bad)
            const v = yield* verify(p)
            fs.writeFileSync(t.path, saved)
            expect(v.ok, `${t.named} byte ${at} ^ ${mask}`).toBe(false)
            expect(v.problems.map((x) => x.file), `${t.named} byte ${at} ^ ${mask}`).toContain(t.named)
            tried++
          }
        }
      }
      expect(tried).toBe(100)
      // Valid JSON that is no marker at all.
      const marker = targets.find((t) => t.named.startsWith("_mesa_log/"))!
      const saved = fs.readFileSync(marker.path)
      for (const text of ["null\n", "[]\n", "{}\n"]) {
        fs.writeFileSync(marker.path, text)
        const v = yield* verify(p)
        expect(v.problems.map((x) => `${x.kind}@${x.file}`), text).toContain(`marker-altered@${marker.named}`)
      }
      fs.writeFileSync(marker.path, saved)
      expect((yield* verify(p)).ok).toBe(true)
    }))

  it.effect("any column of a catalog row changed (data file, snapshot, chain, snapshot time): verify fails naming it", () =>
    Effect.gen(function*() {
      const p = yield* history
      const s = p.metadataSchema
      const cases: Array<{ table: string; column: string; value: string; where: string; named: string }> = [
        ...[
          ["data_file_id", "data_file_id + 100"],
          ["table_id", "table_id + 1"],
          ["begin_snapshot", "begin_snapshot + 1"],
          ["end_snapshot", "5"],
          ["file_order", "1"],
          ["path", "path || 'x'"],
          ["path_is_relative", "false"],
          ["file_format", "'csv'"],
          ["record_count", "record_count + 1"],
          ["file_size_bytes", "file_size_bytes - 1"],
          ["footer_size", "footer_size + 1"],
          ["row_id_start", "row_id_start + 1"],
          ["partition_id", "1"],
          ["encryption_key", "'k'"],
          ["mapping_id", "1"],
          ["partial_max", "begin_snapshot + 1"]
        ].map(([column, value]) => ({
          table: "ducklake_data_file",
          column: column!,
          value: value!,
          where: "data_file_id = (SELECT data_file_id FROM %s.mesa_snapshot WHERE snapshot_id = 3)",
          named: "ducklake_data_file"
        })),
        ...[
          ["data_file_id", "data_file_id + 1"],
          ["file_path", "file_path || 'x'"],
          ["checksum", "'sha2:' || repeat('A', 43) || '='"],
          ["change_count", "change_count + 1"],
          ["actor", "'mallory'"],
          ["note", "'forged'"],
          ["min_ts", "min_ts - interval '1 day'"],
          ["max_ts", "max_ts + interval '1 day'"],
          ["idempotency_key", "'k'"],
          ["content_hash", "'0000'"]
        ].map(([column, value]) => ({
          table: "mesa_snapshot",
          column: column!,
          value: value!,
          where: "snapshot_id = 3",
          named: "mesa_snapshot"
        })),
        ...[
          ["snapshot_time", "snapshot_time + interval '1 second'"],
          ["file_name", "file_name || 'x'"],
          ["checksum", "'x'"],
          ["file_size_bytes", "file_size_bytes + 1"],
          ["record_count", "record_count + 1"],
          ["actor", "'mallory'"],
          ["note", "'forged'"],
          ["prev_hash", "repeat('0', 64)"],
          ["record_hash", "repeat('1', 64)"]
        ].map(([column, value]) => ({
          table: "mesa_chain",
          column: column!,
          value: value!,
          where: "snapshot_id = 3",
          named: "mesa_chain"
        })),
        {
          table: "ducklake_snapshot",
          column: "snapshot_time",
          value: "snapshot_time - interval '1 millisecond'",
          where: "snapshot_id = 3",
          named: "ducklake_snapshot"
        }
      ]
      for (const c of cases) {
        const where = c.where.replace("%s", `"${s}"`)
        const [original] = (yield* sql((q) => q.unsafe(`SELECT ${c.column}::text AS v FROM "${s}".${c.table} WHERE ${where}`))) as Array<any>
        yield* sql((q) => q.unsafe(`UPDATE "${s}".${c.table} SET ${c.column} = ${c.value} WHERE ${where}`))
        const v = yield* verify(p)
        // Put it back (by the row's other identity where the key itself was changed).
        const back = c.column === "data_file_id" && c.table === "ducklake_data_file"
          ? `data_file_id = ${Number((original as any).v) + 100}`
          : c.column === "snapshot_id" ? "false" : where
        yield* sql((q) =>
          q.unsafe(`UPDATE "${s}".${c.table} SET ${c.column} = $1 WHERE ${back}`, [(original as any).v])
        )
        expect(v.ok, `${c.table}.${c.column}`).toBe(false)
        expect(v.problems.some((x) => x.file === c.named || (x.file ?? "").includes(c.named)), `${c.table}.${c.column}: ${show(v)}`)
          .toBe(true)
        expect(show(yield* verify(p)), `${c.table}.${c.column} restored`).toEqual([])
      }
    }))

  it.effect("a truncated history (the last snapshot's rows deleted) is caught by its marker", () =>
    Effect.gen(function*() {
      const p = yield* history
      const s = p.metadataSchema
      yield* sql((q) =>
        q.unsafe(`WITH gone AS (DELETE FROM "${s}".mesa_snapshot WHERE snapshot_id = 6 RETURNING data_file_id),
                      f AS (DELETE FROM "${s}".ducklake_data_file WHERE data_file_id IN (SELECT data_file_id FROM gone)),
                      c AS (DELETE FROM "${s}".mesa_chain WHERE snapshot_id = 6)
                 DELETE FROM "${s}".ducklake_snapshot WHERE snapshot_id = 6`)
      )
      const v = yield* verify(p)
      expect(v.ok).toBe(false)
      expect(v.problems.map((x) => x.kind)).toContain("marker-without-record")
    }))
})

const { dirs: dirs2, layer: IrodsBase } = embeddedIrods("tamper")

layer(IrodsBase, { timeout: "5 minutes" })("tamper evidence on iRODS (native client, anchored)", (it) => {
  it.effect("the chain's head is an AVU on the project root; a changed anchor or a truncated chain fails verify", () =>
    Effect.gen(function*() {
      const storage = yield* LakeStorage
      const p = yield* history
      const v = yield* verify(p)
      expect(show(v)).toEqual([])
      expect(v.anchor).toBe("checked")
      const anchor = yield* storage.anchor!.read(p.irodsPath, ANCHOR_ATTRIBUTE)
      expect(Option.getOrUndefined(anchor)).toBe(`${v.headSnapshot}:${v.headHash}`)
      // A forged anchor.
      yield* storage.anchor!.write(p.irodsPath, ANCHOR_ATTRIBUTE, `${v.headSnapshot}:${"0".repeat(64)}`)
      expect((yield* verify(p)).problems.map((x) => x.kind)).toEqual(["anchor-mismatch"])
      yield* storage.anchor!.write(p.irodsPath, ANCHOR_ATTRIBUTE, `${v.headSnapshot}:${v.headHash}`)
      expect(show(yield* verify(p))).toEqual([])
      // The last snapshot's catalog rows and its marker removed: the anchor still names it.
      const s = p.metadataSchema
      yield* sql((q) =>
        q.unsafe(`WITH gone AS (DELETE FROM "${s}".mesa_snapshot WHERE snapshot_id = 6 RETURNING data_file_id),
                      f AS (DELETE FROM "${s}".ducklake_data_file WHERE data_file_id IN (SELECT data_file_id FROM gone)),
                      c AS (DELETE FROM "${s}".mesa_chain WHERE snapshot_id = 6)
                 DELETE FROM "${s}".ducklake_snapshot WHERE snapshot_id = 6`)
      )
      yield* storage.remove(`${p.ducklakePath}/_mesa_log/snapshot_0000000006.json`)
      const truncated = yield* verify(p)
      expect(truncated.problems.map((x) => x.kind)).toEqual(["anchor-mismatch"])
    }))

  it.effect("the local cache is private whatever the umask: directories 0700, written and fetched files 0600", () =>
    Effect.gen(function*() {
      const lake = yield* DuckLakeClient
      const old = process.umask(0o022)
      try {
        const p = yield* history
        for (let id = 2; id <= 6; id++) yield* lake.getSnapshotChanges(p.projectId, id)
        const walk = (dir: string): Array<string> =>
          fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
            e.isDirectory() ? [nodePath.join(dir, e.name), ...walk(nodePath.join(dir, e.name))] : [nodePath.join(dir, e.name)]
          )
        const entries = walk(nodePath.join(dirs2.cacheDir, p.projectId))
        expect(entries.filter((f) => f.endsWith(".parquet")).length).toBeGreaterThanOrEqual(5)
        const open = [dirs2.cacheDir, nodePath.join(dirs2.cacheDir, p.projectId), ...entries]
          .map((f) => `${f} ${(fs.statSync(f).mode & 0o777).toString(8)}`)
          .filter((line) => !/ (600|700)$/.test(line))
        expect(open).toEqual([])
      } finally {
        process.umask(old)
      }
    }))

  it.effect("a swapped remote file fails every read with ChecksumMismatch; a tampered cached copy is fetched again", () =>
    Effect.gen(function*() {
      const lake = yield* DuckLakeClient
      const storage = yield* LakeStorage
      const p = yield* history
      const files = (yield* storage.list(`${p.ducklakePath}/main/avu_changes`)).map((e) => e.name).sort()
      const [a, b] = [files[0]!, files[4]!]
      const before = yield* lake.getSnapshotChanges(p.projectId, 2)
      // The verified cached copy is bound to its bytes: tampering with it locally makes the next read fetch again.
      const cached = nodePath.join(dirs2.cacheDir, p.projectId, a)
      expect(fs.existsSync(cached)).toBe(true)
      const bytes = fs.readFileSync(cached)
      bytes[bytes.length >> 1]! ^= 1
      fs.writeFileSync(cached, bytes)
      expect(yield* lake.getSnapshotChanges(p.projectId, 2)).toEqual(before)
      // Another valid file of the project in the remote file's place (and no good cached copy).
      const local = nodePath.join(dirs2.base, b)
      yield* storage.get(`${p.ducklakePath}/main/avu_changes/${b}`, local)
      yield* storage.put(local, `${p.ducklakePath}/main/avu_changes/${a}`, { overwrite: true })
      fs.rmSync(cached)
      const e = yield* Effect.flip(lake.getSnapshotChanges(p.projectId, 2))
      expect(e._tag).toBe("ChecksumMismatch")
      expect(e.message).toContain(a)
      expect(fs.existsSync(cached)).toBe(false)
      const v = yield* verify(p)
      expect(v.problems[0]).toMatchObject({ kind: "file-altered", snapshotId: 2, file: `main/avu_changes/${a}` })
    }))
})
