/**
 * What `verifyProject` reports (problem kinds, problems, the report) and what its steps share: the chain records
 * as walked, indexed by snapshot and by file, the catalog rows they are checked against, and the problem sink.
 */
import type { ChainRecord } from "../catalog/chain.js"

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

/** A chain record as walked: its stored hash and the data file id it names. */
export type ChainedRecord = ChainRecord & { readonly hash: string; readonly dataFileId: number }

/** The chain as walked, in snapshot order, and indexed. */
export interface ChainIndex {
  readonly records: ReadonlyArray<ChainedRecord>
  readonly byId: ReadonlyMap<number, ChainedRecord>
  readonly byFile: ReadonlyMap<string, ChainedRecord>
}

/** The catalog rows a project is verified against, as read (numbers as text). */
export interface CatalogRows {
  readonly chainRows: ReadonlyArray<any>
  readonly mesaRows: ReadonlyArray<any>
  readonly dataFiles: ReadonlyArray<any>
  readonly snapshotTimes: ReadonlyArray<any>
}

/** Where each step reports what it found. */
export type ReportProblem = (problem: VerifyProblem) => void

/** Equal, with undefined and null alike. */
export const same = (a: unknown, b: unknown) => (a ?? null) === (b ?? null)
