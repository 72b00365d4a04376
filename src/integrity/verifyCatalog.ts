/**
 * The catalog side of `verifyProject`: reading the rows, walking the hash chain (every record's hash, every link),
 * the catalog's rows against their records, and the live data files (each vouched for by a record, with the fields
 * the record implies, and every recorded snapshot's rows held by exactly one live file).
 */
import { Effect } from "effect"
import type { CatalogService } from "../catalog/Catalog.js"
import { type ChainRecord, GENESIS_HASH, isoMillis, recordHash } from "../catalog/chain.js"
import { TABLE_ID, TABLE_NAME } from "../catalog/ducklakeSchema.js"
import {
  type CatalogRows,
  type ChainedRecord,
  type ChainIndex,
  type ReportProblem,
  same
} from "./verifyModel.js"

/** The chain, the mesa and DuckLake snapshot rows and the data files of a project's metadata schema `S`. */
export const readCatalogRows = (catalog: CatalogService, S: string) =>
  catalog.withSql((sql) =>
    Effect.all({
      // Ordered by the tables' numeric ids: a bare `ORDER BY snapshot_id` would sort by the text column of the
      // same name in the select list ("10" before "2"), and every project past snapshot 9 failed verification.
      chainRows: sql<any>`SELECT snapshot_id::text AS snapshot_id, kind, snapshot_time, data_file_id::text AS data_file_id,
                            file_name, checksum, file_size_bytes::text AS file_size_bytes,
                            record_count::text AS record_count, actor, note, idempotency_key, content_hash,
                            min_ts, max_ts, sources, prev_hash, record_hash
                          FROM ${sql(S)}.mesa_chain ORDER BY mesa_chain.snapshot_id`,
      mesaRows: sql<any>`SELECT snapshot_id::text AS snapshot_id, data_file_id::text AS data_file_id, file_path,
                           checksum, change_count, actor, note, idempotency_key, content_hash, min_ts, max_ts,
                           marker_written
                         FROM ${sql(S)}.mesa_snapshot ORDER BY mesa_snapshot.snapshot_id`,
      dataFiles: sql<any>`SELECT data_file_id::text AS id, table_id::text AS table_id, path, begin_snapshot::text AS b,
                            partial_max::text AS pm, end_snapshot::text AS e, record_count::text AS n,
                            file_size_bytes::text AS size, file_order::text AS file_order, path_is_relative,
                            file_format, footer_size::text AS footer_size, row_id_start::text AS row_id_start,
                            partition_id::text AS partition_id, encryption_key, mapping_id::text AS mapping_id
                          FROM ${sql(S)}.ducklake_data_file ORDER BY data_file_id`,
      snapshotTimes: sql<any>`SELECT snapshot_id::text AS id, snapshot_time FROM ${sql(S)}.ducklake_snapshot`
    })
  )

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

/** 1. The chain itself: every record's hash, every link. Returns the walked records, indexed. */
export const walkChain = (
  projectId: string,
  chainRows: ReadonlyArray<any>,
  problem: ReportProblem
): ChainIndex & { readonly unverifiable: number } => {
  const records: Array<ChainedRecord> = []
  let prev = GENESIS_HASH
  let unverifiable = 0
  for (const row of chainRows) {
    const record = recordOf(projectId, row)
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
  return { records, byId, byFile, unverifiable }
}

/** 2. The catalog's rows (ducklake_snapshot times, mesa_snapshot rows) against their records. */
export const checkCatalogRows = (
  { byId, records }: ChainIndex,
  { mesaRows, snapshotTimes }: CatalogRows,
  problem: ReportProblem
): void => {
  const timeOf = new Map(snapshotTimes.map((r) => [Number(r.id), isoMillis(new Date(r.snapshot_time))] as const))
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
}

/** The rows of live data files (no end snapshot). */
export const liveFiles = (dataFiles: ReadonlyArray<any>): ReadonlyArray<any> => dataFiles.filter((f) => f.e === null)

/** The index of the first of the ascending `ids` at or after `id`. */
const firstAtOrAfter = (ids: ReadonlyArray<number>, id: number) => {
  let lo = 0
  let hi = ids.length
  while (lo < hi) {
    const mid = (lo + hi) >>> 1
    if (ids[mid]! < id) lo = mid + 1
    else hi = mid
  }
  return lo
}

/** Row ids of the rows before each data snapshot's: they run on over the batches in commit order. */
const rowsBeforeOf = (records: ReadonlyArray<ChainRecord>) => {
  const rowsBefore = new Map<number, number>()
  let rowCount = 0
  for (const r of records) {
    if (r.kind !== "data") continue
    rowsBefore.set(r.snapshotId, rowCount)
    rowCount += r.recordCount
  }
  return rowsBefore
}

/** The snapshots a compaction's sources hold, through earlier compactions. */
const spanOf = (
  byFile: ReadonlyMap<string, ChainRecord>,
  r: ChainRecord,
  depth = 0
): readonly [number, number] | undefined => {
  if (r.kind === "data") return [r.snapshotId, r.snapshotId]
  let lo = Infinity
  let hi = -Infinity
  for (const name of r.sources) {
    const s = byFile.get(name)
    const span = s === undefined || depth > 64 ? undefined : spanOf(byFile, s, depth + 1)
    if (span === undefined) return undefined
    lo = Math.min(lo, span[0])
    hi = Math.max(hi, span[1])
  }
  return r.sources.length === 0 ? undefined : [lo, hi]
}

/** What a live file's row must hold, given the record that vouches for it: [field, found, expected]. */
const liveFileFields = (
  f: any,
  r: ChainedRecord,
  rowsBefore: ReadonlyMap<number, number>,
  byFile: ReadonlyMap<string, ChainRecord>
) => {
  const begin = Number(f.b)
  const end = f.pm === null ? begin : Number(f.pm)
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
    const span = spanOf(byFile, r)
    if (span !== undefined) fields.push(["begin_snapshot", begin, span[0]], ["partial_max", end, span[1]])
  }
  return fields
}

/** Every recorded data snapshot's rows held by exactly one live file (`coverage`: live files per snapshot). */
const checkCoverage = (
  records: ReadonlyArray<ChainRecord>,
  coverage: ReadonlyMap<number, number>,
  dataFiles: ReadonlyArray<any>,
  problem: ReportProblem
) => {
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
}

/** 3. Live data files: each vouched for by a record, and every recorded snapshot's rows held by exactly one. */
export const checkDataFiles = (
  { records, byFile }: ChainIndex,
  live: ReadonlyArray<any>,
  dataFiles: ReadonlyArray<any>,
  problem: ReportProblem
): void => {
  const dataIds = records.filter((r) => r.kind === "data").map((r) => r.snapshotId) // ascending
  const coverage = new Map<number, number>()
  const rowsBefore = rowsBeforeOf(records)
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
    for (const [name, found, expected] of liveFileFields(f, r, rowsBefore, byFile)) {
      if (!same(found, expected)) {
        problem({
          kind: "catalog-row-altered",
          snapshotId: r.snapshotId,
          file: "ducklake_data_file",
          detail: `${name} of ${f.path} is ${JSON.stringify(found)}, expected ${JSON.stringify(expected)}`
        })
      }
    }
    for (let i = firstAtOrAfter(dataIds, begin); i < dataIds.length && dataIds[i]! <= end; i++) {
      coverage.set(dataIds[i]!, (coverage.get(dataIds[i]!) ?? 0) + 1)
    }
  }
  checkCoverage(records, coverage, dataFiles, problem)
}
