/**
 * `verifyProject`: tamper evidence for one project's history. Walks the hash chain (src/catalog/chain.ts) and checks
 * every link against the catalog's own rows, the stored files and the commit markers, and the chain's head against
 * its anchor outside the catalog (an AVU on the iRODS project root). Reads only; changes nothing anywhere.
 *
 * What it catches (each is a `VerifyProblem` naming the snapshot, the file and what differs):
 * - a chain record changed (its hash no longer matches its fields) or a link broken (a record removed or inserted);
 * - a `mesa_snapshot`, `ducklake_snapshot` or `ducklake_data_file` row that differs from its chain record, a live
 *   file no record vouches for, a snapshot whose rows no live file (or two) hold;
 * - a stored file whose bytes differ from the recorded checksum, or that is missing;
 * - a commit marker that differs from its record, names a snapshot the chain does not have, or is missing;
 * - an anchor that names a record the chain does not have, or is behind the head.
 */
import { Effect, Option } from "effect"
import * as fs from "node:fs/promises"
import * as os from "node:os"
import * as nodePath from "node:path"
import { Catalog } from "./Catalog.js"
import {
  ANCHOR_ATTRIBUTE,
  type ChainRecord,
  GENESIS_HASH,
  isoMillis,
  markerDigest,
  parseAnchor,
  recordHash
} from "./catalog/chain.js"
import { TABLE_ID, TABLE_NAME } from "./catalog/ducklakeSchema.js"
import type { Project } from "./domain.js"
import { checksumFile, formatIrodsChecksum, LakeStorage, parseIrodsChecksum } from "./LakeStorage.js"
import { MARKER_DIR } from "./layout.js"


export type VerifyProblemKind =
  | "record-altered"
  | "chain-link-broken"
  | "catalog-row-altered"
  | "unchained-snapshot"
  | "unchained-file"
  | "rows-not-covered"
  | "rows-covered-twice"
  | "file-missing"
  | "file-altered"
  | "marker-altered"
  | "marker-missing"
  | "marker-without-record"
  | "anchor-missing"
  | "anchor-mismatch"
  | "anchor-behind"

export interface VerifyProblem {
  readonly kind: VerifyProblemKind
  readonly snapshotId?: number
  /** The file concerned: a data file (`main/avu_changes/…`), a marker (`_mesa_log/…`) or a catalog table. */
  readonly file?: string
  /** What differs, in words: the field, the value expected and the value found. */
  readonly detail: string
}

export interface VerifyReport {
  readonly projectId: string
  readonly ok: boolean
  /** Chain records walked. */
  readonly records: number
  readonly headSnapshot: number | null
  readonly headHash: string | null
  readonly filesChecked: number
  readonly markersChecked: number
  /** `checked` on storage that keeps an anchor (iRODS); `not-supported` on a mount. */
  readonly anchor: "checked" | "not-supported"
  /** Records the catalog could not vouch for when it was upgraded to the chain (no checksum or size then). */
  readonly unverifiable: number
  /** Every problem, in snapshot order; the first is the first broken link. */
  readonly problems: ReadonlyArray<VerifyProblem>
}

const recordOf = (projectId: string, r: any): ChainRecord => ({
  projectId,
  snapshotId: Number(r.snapshot_id),
  kind: r.kind,
  snapshotTime: isoMillis(new Date(r.snapshot_time)),
  fileName: r.file_name,
  checksum: r.checksum,
  fileSizeBytes: Number(r.file_size_bytes),
  recordCount: Number(r.record_count),
  actor: r.actor,
  note: r.note,
  idempotencyKey: r.idempotency_key,
  contentHash: r.content_hash,
  minTs: r.min_ts,
  maxTs: r.max_ts,
  sources: JSON.parse(r.sources) as Array<string>,
  prevHash: r.prev_hash
})

const same = (a: unknown, b: unknown) => (a ?? null) === (b ?? null)

/** Verifies one project (see the module comment). Needs the catalog and the storage; reads only. */
export const verifyProject = (p: Project) =>
  Effect.gen(function*() {
    const catalog = yield* Catalog
    const storage = yield* LakeStorage
    const problems: Array<VerifyProblem> = []
    const problem = (x: VerifyProblem) => problems.push(x)
    const S = p.metadataSchema

    const { chainRows, dataFiles, mesaRows, snapshotTimes } = yield* catalog.withSql((sql) =>
      Effect.all({
        chainRows: sql<any>`SELECT snapshot_id::text AS snapshot_id, kind, snapshot_time, data_file_id::text AS data_file_id,
                              file_name, checksum, file_size_bytes::text AS file_size_bytes,
                              record_count::text AS record_count, actor, note, idempotency_key, content_hash,
                              min_ts, max_ts, sources, prev_hash, record_hash
                            FROM ${sql(S)}.mesa_chain ORDER BY snapshot_id`,
        mesaRows: sql<any>`SELECT snapshot_id::text AS snapshot_id, data_file_id::text AS data_file_id, file_path,
                             checksum, change_count, actor, note, idempotency_key, content_hash, min_ts, max_ts,
                             marker_written
                           FROM ${sql(S)}.mesa_snapshot ORDER BY snapshot_id`,
        dataFiles: sql<any>`SELECT data_file_id::text AS id, table_id::text AS table_id, path, begin_snapshot::text AS b,
                              partial_max::text AS pm, end_snapshot::text AS e, record_count::text AS n,
                              file_size_bytes::text AS size, file_order::text AS file_order, path_is_relative,
                              file_format, footer_size::text AS footer_size, row_id_start::text AS row_id_start,
                              partition_id::text AS partition_id, encryption_key, mapping_id::text AS mapping_id
                            FROM ${sql(S)}.ducklake_data_file ORDER BY data_file_id`,
        snapshotTimes: sql<any>`SELECT snapshot_id::text AS id, snapshot_time FROM ${sql(S)}.ducklake_snapshot`
      }))
    const timeOf = new Map(snapshotTimes.map((r) => [Number(r.id), isoMillis(new Date(r.snapshot_time))] as const))

    // 1. The chain itself: every record's hash, every link.
    const records: Array<ChainRecord & { readonly hash: string; readonly dataFileId: number }> = []
    let prev = GENESIS_HASH
    let unverifiable = 0
    for (const row of chainRows) {
      const record = recordOf(p.projectId, row)
      if (record.prevHash !== prev) {
        problem({
          kind: "chain-link-broken",
          snapshotId: record.snapshotId,
          file: "mesa_chain",
          detail: `links to ${record.prevHash}, but the record before it hashes to ${prev}`
        })
      }
      const hash = recordHash(record)
      if (hash !== row.record_hash) {
        problem({
          kind: "record-altered",
          snapshotId: record.snapshotId,
          file: "mesa_chain",
          detail: `its fields hash to ${hash}, the record says ${row.record_hash}`
        })
      }
      if (record.checksum === "" || record.fileSizeBytes < 0) unverifiable++
      records.push({ ...record, hash: row.record_hash, dataFileId: Number(row.data_file_id) })
      prev = row.record_hash
    }
    const byId = new Map(records.map((r) => [r.snapshotId, r] as const))
    const byFile = new Map(records.map((r) => [r.fileName, r] as const))

    // 2. The catalog's rows against their records.
    for (const r of records) {
      const t = timeOf.get(r.snapshotId)
      if (t !== r.snapshotTime) {
        problem({
          kind: "catalog-row-altered",
          snapshotId: r.snapshotId,
          file: "ducklake_snapshot",
          detail: `snapshot_time is ${t ?? "missing"}, the chain says ${r.snapshotTime}`
        })
      }
    }
    for (const m of mesaRows) {
      const id = Number(m.snapshot_id)
      const r = byId.get(id)
      if (r === undefined || r.kind !== "data") {
        problem({ kind: "unchained-snapshot", snapshotId: id, file: "mesa_snapshot", detail: "no chain record vouches for this snapshot" })
        continue
      }
      const fields: Array<[string, unknown, unknown]> = [
        ["data_file_id", Number(m.data_file_id), r.dataFileId],
        ["min_ts", isoMillis(new Date(m.min_ts)), r.minTs],
        ["max_ts", isoMillis(new Date(m.max_ts)), r.maxTs],
        ["file_path", m.file_path, r.fileName],
        ["checksum", m.checksum, r.checksum],
        ["change_count", Number(m.change_count), r.recordCount],
        ["actor", m.actor, r.actor],
        ["note", m.note, r.note],
        ["idempotency_key", m.idempotency_key, r.idempotencyKey],
        ["content_hash", m.content_hash, r.contentHash]
      ]
      for (const [name, found, expected] of fields) {
        if (!same(found, expected)) {
          problem({
            kind: "catalog-row-altered",
            snapshotId: id,
            file: "mesa_snapshot",
            detail: `${name} is ${JSON.stringify(found)}, the chain says ${JSON.stringify(expected)}`
          })
        }
      }
    }
    const mesaIds = new Set(mesaRows.map((m) => Number(m.snapshot_id)))
    for (const r of records) {
      if (r.kind === "data" && !mesaIds.has(r.snapshotId)) {
        problem({ kind: "catalog-row-altered", snapshotId: r.snapshotId, file: "mesa_snapshot", detail: "the row is missing" })
      }
    }

    // 3. Live data files: each vouched for by a record, and every recorded snapshot's rows held by exactly one.
    const live = dataFiles.filter((f) => f.e === null)
    const dataIds = records.filter((r) => r.kind === "data").map((r) => r.snapshotId) // ascending
    const firstAtOrAfter = (id: number) => {
      let lo = 0
      let hi = dataIds.length
      while (lo < hi) {
        const mid = (lo + hi) >>> 1
        if (dataIds[mid]! < id) lo = mid + 1
        else hi = mid
      }
      return lo
    }
    const coverage = new Map<number, number>()
    const rowsBefore = new Map<number, number>()
    let rowCount = 0
    for (const r of records) {
      if (r.kind !== "data") continue
      rowsBefore.set(r.snapshotId, rowCount)
      rowCount += r.recordCount
    }
    /** The snapshots a compaction's sources hold, through earlier compactions. */
    const spanOf = (r: ChainRecord, depth = 0): readonly [number, number] | undefined => {
      if (r.kind === "data") return [r.snapshotId, r.snapshotId]
      let lo = Infinity
      let hi = -Infinity
      for (const name of r.sources) {
        const s = byFile.get(name)
        const span = s === undefined || depth > 64 ? undefined : spanOf(s, depth + 1)
        if (span === undefined) return undefined
        lo = Math.min(lo, span[0])
        hi = Math.max(hi, span[1])
      }
      return r.sources.length === 0 ? undefined : [lo, hi]
    }
    for (const f of live) {
      const r = byFile.get(f.path)
      const begin = Number(f.b)
      const end = f.pm === null ? begin : Number(f.pm)
      if (r === undefined) {
        problem({
          kind: "unchained-file",
          snapshotId: begin,
          file: `main/${TABLE_NAME}/${f.path}`,
          detail: `ducklake_data_file ${f.id} is live, but no chain record vouches for it`
        })
        continue
      }
      const fields: Array<[string, unknown, unknown]> = [
        ["data_file_id", Number(f.id), r.dataFileId],
        ["table_id", f.table_id, String(TABLE_ID)],
        ["record_count", Number(f.n), r.recordCount],
        ["file_order", f.file_order, null],
        ["path_is_relative", f.path_is_relative, true],
        ["file_format", f.file_format, "parquet"],
        ["partition_id", f.partition_id, null],
        ["encryption_key", f.encryption_key, null],
        ["mapping_id", f.mapping_id, null],
        // Row ids run on over the batches in commit order (a compacted file carries its rows' ids itself).
        ["row_id_start", f.row_id_start === null ? null : Number(f.row_id_start), r.kind === "data" ? rowsBefore.get(r.snapshotId) : null],
        ...(r.fileSizeBytes < 0 ? [] : [["file_size_bytes", Number(f.size), r.fileSizeBytes] as [string, unknown, unknown]])
      ]
      if (r.kind === "data") fields.push(["begin_snapshot", begin, r.snapshotId], ["partial_max", f.pm, null])
      else if (r.sources.length > 0) {
        // A compaction covers exactly the snapshots of the files it replaced.
        const span = spanOf(r)
        if (span !== undefined) fields.push(["begin_snapshot", begin, span[0]], ["partial_max", end, span[1]])
      }
      for (const [name, found, expected] of fields) {
        if (!same(found, expected)) {
          problem({
            kind: "catalog-row-altered",
            snapshotId: r.snapshotId,
            file: "ducklake_data_file",
            detail: `${name} of ${f.path} is ${JSON.stringify(found)}, expected ${JSON.stringify(expected)}`
          })
        }
      }
      for (let i = firstAtOrAfter(begin); i < dataIds.length && dataIds[i]! <= end; i++) {
        coverage.set(dataIds[i]!, (coverage.get(dataIds[i]!) ?? 0) + 1)
      }
    }
    for (const d of records) {
      if (d.kind !== "data") continue
      const n = coverage.get(d.snapshotId) ?? 0
      if (n === 0) {
        const row = dataFiles.find((f) => f.path === d.fileName)
        problem({
          kind: "rows-not-covered",
          snapshotId: d.snapshotId,
          file: "ducklake_data_file",
          detail: row === undefined
            ? `no live row holds this snapshot's file ${d.fileName}: its history would not be read`
            : `end_snapshot of ${d.fileName} is ${row.e}, and no live file holds its rows: its history would not be read`
        })
      } else if (n > 1) {
        problem({
          kind: "rows-covered-twice",
          snapshotId: d.snapshotId,
          file: `main/${TABLE_NAME}/${d.fileName}`,
          detail: `${n} live data files hold this snapshot's rows (they would be read twice)`
        })
      }
    }

    // 4. The stored bytes of every live file, hashed here (a server-side checksum may be stale).
    const tmp = yield* Effect.acquireRelease(
      Effect.promise(() => fs.mkdtemp(nodePath.join(os.tmpdir(), "mesa-verify-"))),
      (dir) => Effect.promise(() => fs.rm(dir, { recursive: true, force: true }).catch(() => undefined))
    )
    let filesChecked = 0
    for (const f of live) {
      const r = byFile.get(f.path)
      if (r === undefined) continue
      const relative = `main/${TABLE_NAME}/${f.path}`
      const remote = `${p.ducklakePath}/${relative}`
      const expected = parseIrodsChecksum(r.checksum)
      const direct = storage.localPath(remote)
      const local = Option.isSome(direct) ? direct.value : nodePath.join(tmp, nodePath.basename(f.path))
      const fetched = Option.isSome(direct) ? Effect.void : storage.get(remote, local)
      const outcome = yield* fetched.pipe(
        Effect.zipRight(Effect.tryPromise(async () => {
          const st = await fs.stat(local)
          const actual = expected === undefined ? undefined : await checksumFile(local, expected.algorithm)
          // A Parquet file ends with its footer's length and "PAR1": ducklake_data_file.footer_size must say so.
          const handle = await fs.open(local, "r")
          const tail = Buffer.alloc(8)
          try {
            await handle.read(tail, 0, 8, Math.max(0, st.size - 8))
          } finally {
            await handle.close()
          }
          return { size: st.size, actual, footer: tail.readUInt32LE(0) }
        })),
        Effect.either
      )
      if (!Option.isSome(direct)) yield* Effect.promise(() => fs.rm(local, { force: true }).catch(() => undefined))
      filesChecked++
      if (outcome._tag === "Left") {
        problem({ kind: "file-missing", snapshotId: r.snapshotId, file: relative, detail: "the stored file cannot be read" })
        continue
      }
      const { actual, footer, size } = outcome.right
      if (r.fileSizeBytes >= 0 && size !== r.fileSizeBytes) {
        problem({ kind: "file-altered", snapshotId: r.snapshotId, file: relative, detail: `is ${size} bytes, the chain says ${r.fileSizeBytes}` })
      } else if (expected !== undefined && actual !== undefined && actual.hex !== expected.hex) {
        problem({
          kind: "file-altered",
          snapshotId: r.snapshotId,
          file: relative,
          detail: `its checksum is ${formatIrodsChecksum(actual)}, the chain says ${r.checksum}`
        })
      } else if (Number(f.footer_size) !== footer) {
        // The bytes are the recorded ones: the row's footer size is what changed.
        problem({
          kind: "catalog-row-altered",
          snapshotId: r.snapshotId,
          file: "ducklake_data_file",
          detail: `footer_size of ${f.path} is ${f.footer_size}, the file's footer is ${footer} bytes`
        })
      }
    }

    // 5. Commit markers: each equal to its record; none without one; none missing where the catalog says it landed.
    const markerDir = `${p.ducklakePath}/${MARKER_DIR}`
    const entries = yield* storage.list(markerDir).pipe(
      Effect.catchIf((e) => e.reason === "NotFound", () => Effect.succeed([]))
    )
    const seen = new Set<number>()
    let markersChecked = 0
    for (const e of entries) {
      const m = /^(snapshot|compaction)_(\d{10})\.json$/.exec(e.name)
      if (m === null || e.type !== "data_object") continue
      const id = Number(m[2])
      const file = `${MARKER_DIR}/${e.name}`
      const local = nodePath.join(tmp, e.name)
      const text = yield* Option.match(storage.localPath(e.path), {
        onSome: (path) => Effect.tryPromise(() => fs.readFile(path, "utf8")),
        onNone: () =>
          Effect.zipRight(storage.get(e.path, local), Effect.tryPromise(() => fs.readFile(local, "utf8")))
      }).pipe(Effect.either)
      markersChecked++
      if (text._tag === "Left") {
        problem({ kind: "marker-altered", snapshotId: id, file, detail: "the marker cannot be read" })
        continue
      }
      let marker: any
      try {
        marker = JSON.parse(text.right)
      } catch {
        problem({ kind: "marker-altered", snapshotId: id, file, detail: "the marker is not JSON" })
        continue
      }
      // Written as pretty JSON with a digest of the rest: any byte changed shows in one or the other.
      if (text.right !== JSON.stringify(marker, null, 2) + "\n") {
        problem({ kind: "marker-altered", snapshotId: id, file, detail: "the marker's text is not as it was written" })
        continue
      }
      if (marker !== null && typeof marker === "object" && "digest" in marker) {
        const { digest, ...body } = marker
        if (digest !== markerDigest(body)) {
          problem({ kind: "marker-altered", snapshotId: id, file, detail: `its digest ${String(digest)} does not match its content` })
          continue
        }
      } else if (marker?.recordHash !== undefined) {
        problem({ kind: "marker-altered", snapshotId: id, file, detail: "the marker's digest is missing" })
        continue
      }
      const r = byId.get(id)
      if (r === undefined) {
        problem({ kind: "marker-without-record", snapshotId: id, file, detail: "the marker names a snapshot the chain does not have" })
        continue
      }
      seen.add(id)
      const fields: Array<[string, unknown, unknown]> = [
        ["projectId", marker.projectId, r.projectId],
        ["snapshotId", marker.snapshotId, r.snapshotId],
        ["snapshotTime", marker.snapshotTime, r.snapshotTime],
        ["fileName", marker.fileName, r.fileName],
        ["checksum", marker.checksum, r.checksum],
        ["recordCount", marker.recordCount, r.recordCount],
        ...(m[1] === "snapshot"
          ? [
            ["actor", marker.actor, r.actor],
            ["note", marker.note, r.note],
            ["idempotencyKey", marker.idempotencyKey, r.idempotencyKey],
            ["contentHash", marker.contentHash, r.contentHash]
          ] as Array<[string, unknown, unknown]>
          : []),
        // Markers written before the chain (layout 1) have no hashes: their other fields still count.
        ...(marker.recordHash === undefined ? [] : [
          ["prevHash", marker.prevHash, r.prevHash],
          ["recordHash", marker.recordHash, r.hash],
          ["fileSizeBytes", marker.fileSizeBytes, r.fileSizeBytes]
        ] as Array<[string, unknown, unknown]>)
      ]
      if ((m[1] === "snapshot") !== (r.kind === "data")) fields.push(["kind", m[1], r.kind])
      for (const [name, found, expected] of fields) {
        if (!same(found, expected)) {
          problem({
            kind: "marker-altered",
            snapshotId: id,
            file,
            detail: `${name} is ${JSON.stringify(found)}, the chain says ${JSON.stringify(expected)}`
          })
        }
      }
    }
    const written = new Set(mesaRows.filter((m) => m.marker_written === true).map((m) => Number(m.snapshot_id)))
    for (const r of records) {
      if (seen.has(r.snapshotId)) continue
      if (r.kind === "data" && !written.has(r.snapshotId)) continue // still to be written (background or recovery)
      problem({
        kind: "marker-missing",
        snapshotId: r.snapshotId,
        file: `${MARKER_DIR}/${r.kind === "data" ? "snapshot" : "compaction"}_${String(r.snapshotId).padStart(10, "0")}.json`,
        detail: "the marker is not in storage"
      })
    }

    // 6. The anchor outside the catalog.
    const head = records.at(-1)
    if (storage.anchor !== undefined) {
      const stored = yield* storage.anchor.read(p.irodsPath, ANCHOR_ATTRIBUTE).pipe(Effect.either)
      const value = stored._tag === "Right" ? Option.getOrUndefined(stored.right) : undefined
      if (head !== undefined && value === undefined) {
        problem({
          kind: "anchor-missing",
          snapshotId: head.snapshotId,
          file: `${p.irodsPath} AVU ${ANCHOR_ATTRIBUTE}`,
          detail: stored._tag === "Left" ? `cannot be read: ${stored.left.message}` : "the project root has no anchor"
        })
      } else if (value !== undefined) {
        const anchor = parseAnchor(value)
        const r = anchor === undefined ? undefined : byId.get(anchor.snapshotId)
        if (anchor === undefined || r === undefined || r.hash !== anchor.hash) {
          problem({
            kind: "anchor-mismatch",
            snapshotId: anchor?.snapshotId ?? head?.snapshotId ?? 0,
            file: `${p.irodsPath} AVU ${ANCHOR_ATTRIBUTE}`,
            detail: `the anchor is ${value}; the chain has ${r === undefined ? "no such record" : `${r.snapshotId}:${r.hash}`}`
          })
        } else if (head !== undefined && anchor.snapshotId !== head.snapshotId) {
          problem({
            kind: "anchor-behind",
            snapshotId: head.snapshotId,
            file: `${p.irodsPath} AVU ${ANCHOR_ATTRIBUTE}`,
            detail: `the anchor names snapshot ${anchor.snapshotId}, the chain's head is ${head.snapshotId} (recovery re-anchors)`
          })
        }
      }
    }

    problems.sort((a, b) => (a.snapshotId ?? 0) - (b.snapshotId ?? 0))
    return {
      projectId: p.projectId,
      ok: problems.length === 0,
      records: records.length,
      headSnapshot: head?.snapshotId ?? null,
      headHash: head?.hash ?? null,
      filesChecked,
      markersChecked,
      anchor: storage.anchor === undefined ? "not-supported" as const : "checked" as const,
      unverifiable,
      problems
    } satisfies VerifyReport
  }).pipe(Effect.scoped, Effect.withSpan("verifyProject", { attributes: { projectId: p.projectId } }))
