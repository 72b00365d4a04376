/**
 * The hash chain's table, `mesa_chain`: a chain record (src/catalog/chain.ts) as the row the catalog keeps, and the
 * chain's head as a subquery for the statements that append to it (a commit, a compaction, the layout upgrade).
 */
import type { SqlClient } from "@effect/sql"
import { type ChainRecord, recordHash } from "./chain.js"

/** The chain's head hash as a scalar subquery (NULL before the first record). */
export const chainHead = (sql: SqlClient.SqlClient, schema: string) =>
  sql`(SELECT record_hash FROM ${sql(schema)}.mesa_chain ORDER BY snapshot_id DESC LIMIT 1)`

/** A chain record as a `mesa_chain` row (with the catalog's id of its file), its hash computed. */
export const chainRow = (r: ChainRecord, dataFileId: number) => ({
  snapshot_id: r.snapshotId,
  kind: r.kind,
  snapshot_time: r.snapshotTime,
  data_file_id: dataFileId,
  file_name: r.fileName,
  checksum: r.checksum,
  file_size_bytes: r.fileSizeBytes,
  record_count: r.recordCount,
  actor: r.actor,
  note: r.note,
  idempotency_key: r.idempotencyKey,
  content_hash: r.contentHash,
  min_ts: r.minTs,
  max_ts: r.maxTs,
  sources: JSON.stringify(r.sources),
  prev_hash: r.prevHash,
  record_hash: recordHash(r)
})
