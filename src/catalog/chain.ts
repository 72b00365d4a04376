/**
 * The hash chain over a project's history (tamper evidence).
 *
 * Every snapshot that adds a data file — a recorded batch (`data`) or a compaction (`compaction`) — gets a chain
 * record: what the catalog says about that snapshot and its file (the file's checksum, size and row count, the
 * author, note, clock and content digest of the batch) plus the hash of the previous record. The record's own hash
 * is SHA-256 over a canonical text of those fields. The catalog keeps the records (`mesa_chain`), each commit marker
 * in storage carries its record, and on iRODS the head hash is also an AVU on the project root, so the chain is
 * anchored outside the catalog. `verifyProject` recomputes everything from the catalog's rows and the stored files.
 *
 * Catalog-internal ids (data file ids, row ids) are not part of a record: a rebuild from storage numbers files anew
 * and must reproduce the same hashes from the markers alone.
 *
 * This module owns the record's fields and the canonical text; nothing here touches a database or storage.
 */
import { createHash } from "node:crypto"

/** The hash a first record points back to. */
export const GENESIS_HASH = "0".repeat(64)

/** Version tag of the canonical text: a change of fields or encoding is a new tag. */
export const CHAIN_FORMAT = "mesa-ducklake-chain/1"

/** AVU attribute on an iRODS project root holding `<snapshot id>:<head hash>`. */
export const ANCHOR_ATTRIBUTE = "mesa.ducklake.head"

export interface ChainRecord {
  readonly projectId: string
  readonly snapshotId: number
  readonly kind: "data" | "compaction"
  /** The snapshot's commit time, ISO 8601 with milliseconds, UTC. */
  readonly snapshotTime: string
  /** File name relative to the table's path (`main/avu_changes/`). */
  readonly fileName: string
  /** The stored file's checksum in iRODS form (`<md5 hex>` or `sha2:<base64>`). */
  readonly checksum: string
  readonly fileSizeBytes: number
  readonly recordCount: number
  readonly actor: string
  readonly note: string | null
  readonly idempotencyKey: string | null
  /** Digest of the batch as sent (data snapshots; null for compactions). */
  readonly contentHash: string | null
  /** Earliest and latest valid time of the snapshot's changes, ISO (data snapshots; null for compactions). */
  readonly minTs: string | null
  readonly maxTs: string | null
  /** Compactions: the file names they replaced, in snapshot order. Data snapshots: empty. */
  readonly sources: ReadonlyArray<string>
  readonly prevHash: string
}

const field = (v: string | number | null): string => {
  if (v === null) return "-"
  const s = String(v)
  return `${Buffer.byteLength(s, "utf8")}:${s}`
}

/** The canonical text of a record: each field length-prefixed (bytes), in a fixed order, one per line. */
export const canonicalText = (r: ChainRecord): string =>
  [
    CHAIN_FORMAT,
    field(r.projectId),
    field(r.snapshotId),
    field(r.kind),
    field(r.snapshotTime),
    field(r.fileName),
    field(r.checksum),
    field(r.fileSizeBytes),
    field(r.recordCount),
    field(r.actor),
    field(r.note),
    field(r.idempotencyKey),
    field(r.contentHash),
    field(r.minTs),
    field(r.maxTs),
    field(JSON.stringify(r.sources)),
    field(r.prevHash)
  ].join("\n")

export const recordHash = (r: ChainRecord): string => createHash("sha256").update(canonicalText(r), "utf8").digest("hex")

/** `<snapshot id>:<hash>`, the anchor's value. */
export const formatAnchor = (snapshotId: number, hash: string) => `${snapshotId}:${hash}`

export const parseAnchor = (value: string): { readonly snapshotId: number; readonly hash: string } | undefined => {
  const m = /^(\d{1,18}):([0-9a-f]{64})$/.exec(value.trim())
  return m === null ? undefined : { snapshotId: Number(m[1]), hash: m[2]! }
}

/** The digest a marker file carries of its other fields (its JSON text without the digest, as written). */
export const markerDigest = (body: unknown) =>
  `sha256:${createHash("sha256").update(JSON.stringify(body, null, 2), "utf8").digest("hex")}`

/** Milliseconds ISO form used in records (PostgreSQL keeps microseconds; snapshot times are whole milliseconds). */
export const isoMillis = (d: Date) => d.toISOString()
