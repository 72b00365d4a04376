/**
 * `LakeStorage`: where a project's Parquet files live — inside the iRODS project, under `.mesa/ducklake/`.
 *
 * Paths are iRODS logical paths (`/iplant/home/alice/proj/.mesa/ducklake/x.parquet`). Adapters: a mounted zone
 * (`MountedStorage`, over @effect/platform's FileSystem) and the native protocol client (`src/irods/`).
 */
import { Context, type Effect, type Option } from "effect"
import type { Checksum } from "../core/checksum.js"
import type { ChecksumMismatch, StorageError } from "../core/errors.js"

export { checksumFile, type Checksum, formatIrodsChecksum, parseIrodsChecksum } from "../core/checksum.js"

export interface StoredEntry {
  readonly path: string
  readonly name: string
  readonly type: "data_object" | "collection"
  readonly size: number
  readonly modified: Date
  /** iRODS object id, when the adapter knows it. */
  readonly objectId: number | null
}

export interface PutResult {
  readonly path: string
  readonly size: number
  /** The checksum the storage reported for the stored copy, equal to the local file's. */
  readonly checksum: Checksum
}

export interface LakeStorageService {
  /** `mounted` or `irods-native`: for logs and diagnostics. */
  readonly kind: string
  /**
   * Upload a local file. Resolves only when the stored copy's checksum equals the local file's; otherwise fails
   * with `ChecksumMismatch` (also when storage reports no usable checksum).
   */
  readonly put: (
    localFile: string,
    path: string,
    options?: { readonly overwrite?: boolean }
  ) => Effect.Effect<PutResult, StorageError | ChecksumMismatch>
  /** Download to a local file (written to a temporary name, then renamed). */
  readonly get: (path: string, localFile: string) => Effect.Effect<void, StorageError>
  /** None when nothing is at that path. */
  readonly stat: (path: string) => Effect.Effect<Option.Option<StoredEntry>, StorageError>
  /** The storage's own checksum of a stored file. */
  readonly checksum: (path: string) => Effect.Effect<Checksum, StorageError | ChecksumMismatch>
  /** Entries of a collection (not recursive). Missing collection → `StorageError` NotFound. */
  readonly list: (collection: string) => Effect.Effect<ReadonlyArray<StoredEntry>, StorageError>
  readonly remove: (path: string) => Effect.Effect<void, StorageError>
  /** Create a collection and its missing parents; succeeds when it exists already. */
  readonly makeCollection: (path: string) => Effect.Effect<void, StorageError>
  /**
   * A path on this machine where the stored file can be read directly (a mount), so DuckDB reads it in place;
   * None for remote storage, which is read through the local cache.
   */
  readonly localPath: (path: string) => Option.Option<string>
  /**
   * Moves a stored file to another path (its collection created if missing; a file there is replaced), where the
   * storage can rename in place; absent otherwise (callers copy and remove).
   */
  readonly move?: (from: string, to: string) => Effect.Effect<void, StorageError>
  /** True when `stat` reports real iRODS object ids (the native client); a mount cannot. */
  readonly resolvesObjectIds: boolean
  /**
   * Where the storage can keep a value outside the catalog on a project root (iRODS: an AVU on the root collection),
   * the hash chain's head is anchored there (`mesa.ducklake.head`); absent on a mount, which has no AVUs.
   */
  readonly anchor?: {
    readonly read: (root: string, attribute: string) => Effect.Effect<Option.Option<string>, StorageError>
    readonly write: (root: string, attribute: string, value: string) => Effect.Effect<void, StorageError>
  }
}

export class LakeStorage extends Context.Tag("mesa-ducklake/LakeStorage")<LakeStorage, LakeStorageService>() {}
