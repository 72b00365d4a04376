/**
 * The data `IrodsClient` speaks in: its options, the listing / AVU / ACL / user shapes it returns, the GenQuery it
 * takes and the `IrodsClientService` interface itself. No behaviour here, so every capability module can import it.
 */
import type { Duration, Effect, Option } from "effect"
import type { ChecksumMismatch } from "../core/errors.js"
import type { Checksum } from "../core/checksum.js"
import type { ObjStat } from "./Api.js"
import type { IrodsConnectionConfig } from "./Config.js"
import type { IrodsError } from "./Errors.js"

export interface IrodsClientOptions extends IrodsConnectionConfig {
  /** Most connections kept open at once (default 4). */
  readonly poolSize?: number
  /** Idle connections are closed after this long (default 60 s). */
  readonly idleTimeout?: Duration.DurationInput
  /** TCP connect deadline (default 10 s). */
  readonly connectTimeout?: Duration.DurationInput
  /** Deadline for each request/reply (default 60 s). */
  readonly requestTimeout?: Duration.DurationInput
  /** Retries of an operation after a transient fault (default 3), with exponential backoff from `retryBase`. */
  readonly retries?: number
  readonly retryBase?: Duration.DurationInput
  /** Bytes per DATA_OBJ_WRITE / DATA_OBJ_READ (default 4 MiB). */
  readonly chunkSize?: number
  /** Use AUTH_REQUEST/AUTH_RESPONSE (703/704) even with 4.3 servers. */
  readonly forceLegacyAuth?: boolean
}

export interface CollectionEntry {
  readonly path: string
  readonly name: string
  readonly id: number
  readonly modified: Date
}

export interface DataObjectEntry {
  readonly path: string
  readonly name: string
  readonly id: number
  readonly size: number
  readonly modified: Date
  /** As the catalog has it: MD5 hex, `sha2:` base64, or "" when never computed. */
  readonly checksum: string
}

export interface CollectionListing {
  readonly collections: ReadonlyArray<CollectionEntry>
  readonly dataObjects: ReadonlyArray<DataObjectEntry>
}

export interface Avu {
  readonly name: string
  readonly value: string
  /** "" when the AVU has no units. */
  readonly units: string
}

export interface AvuTarget {
  readonly type: "data_object" | "collection"
  readonly path: string
}

/** Access levels as `ichmod` names them; iRODS stores them as "own", "modify object", "read object". */
export type AccessLevel = "own" | "modify" | "read"

export interface AccessEntry {
  /** The grantee: a user or a group. */
  readonly name: string
  readonly zone: string
  /** "rodsuser" | "rodsadmin" | "rodsgroup" | "groupadmin" as the catalog has it. */
  readonly type: "rodsuser" | "rodsadmin" | "rodsgroup" | (string & {})
  readonly access: AccessLevel
  /** The access name as stored (e.g. "read object"; 4.3 spells it "read_object"). */
  readonly accessName: string
}

export interface AccessControl {
  readonly kind: "data_object" | "collection"
  /** Grantees with at least read access, sorted by name then zone. */
  readonly entries: ReadonlyArray<AccessEntry>
  /** The collection's inheritance flag (always false for data objects). */
  readonly inherit: boolean
}

export interface UserInfo {
  readonly id: number
  readonly name: string
  readonly zone: string
  readonly type: "rodsuser" | "rodsadmin" | "rodsgroup" | "groupadmin" | (string & {})
  /** Groups the user is in (including `public`), sorted; not the user itself. */
  readonly groups: ReadonlyArray<string>
}

export interface SetAccessOptions {
  /** Apply to the collection, all collections under it and their data objects (`ichmod -r`). */
  readonly recursive?: boolean
  /** `ichmod -M`: a rodsadmin changes ACLs of objects it does not own (sends the `admin:` prefix). */
  readonly admin?: boolean
}

/** A GenQuery: selected columns (plain numbers select, pairs carry flags), conditions as iRODS text. */
export interface GenQuery {
  readonly select: ReadonlyArray<number | readonly [column: number, flags: number]>
  readonly where?: ReadonlyArray<readonly [column: number, condition: string]>
  /** Stop after this many rows (the open statement is closed on the server). */
  readonly limit?: number
  readonly options?: number
}

export interface IrodsClientService {
  /** The server's release, e.g. [4, 2, 8]. */
  readonly serverVersion: Effect.Effect<readonly [number, number, number], IrodsError>
  /** OBJ_STAT; None when nothing is at `path`. */
  readonly objStat: (path: string) => Effect.Effect<Option.Option<ObjStat>, IrodsError>
  /** COLL_CREATE; with `parents` (the default) missing parents are made and an existing collection is fine. */
  readonly collCreate: (path: string, options?: { readonly parents?: boolean }) => Effect.Effect<void, IrodsError>
  /** Sub-collections and data objects of a collection (USER_FILE_DOES_NOT_EXIST when it is missing). */
  readonly listCollection: (path: string) => Effect.Effect<CollectionListing, IrodsError>
  /** Streams a local file into a data object (create, write chunks, close). */
  readonly put: (
    localFile: string,
    path: string,
    options?: { readonly overwrite?: boolean }
  ) => Effect.Effect<{ readonly size: number }, IrodsError>
  /** Streams a data object into a local file (temporary name, then rename). */
  readonly get: (path: string, localFile: string) => Effect.Effect<{ readonly size: number }, IrodsError>
  /** DATA_OBJ_UNLINK; `force` (the default) skips the trash. */
  readonly unlink: (path: string, options?: { readonly force?: boolean }) => Effect.Effect<void, IrodsError>
  /**
   * DATA_OBJ_CHKSUM: the server computes (or with `force` recomputes) and returns the checksum. An empty or
   * unrecognised answer fails with `ChecksumMismatch` (unverified), never passes as a checksum.
   */
  readonly checksum: (
    path: string,
    options?: { readonly force?: boolean }
  ) => Effect.Effect<Checksum, IrodsError | ChecksumMismatch>
  readonly addAvu: (target: AvuTarget, avu: Avu) => Effect.Effect<void, IrodsError>
  readonly removeAvu: (target: AvuTarget, avu: Avu) => Effect.Effect<void, IrodsError>
  /** `imeta set`: replaces every value of the attribute with this one. */
  readonly setAvu: (target: AvuTarget, avu: Avu) => Effect.Effect<void, IrodsError>
  readonly listAvus: (target: AvuTarget) => Effect.Effect<ReadonlyArray<Avu>, IrodsError>
  /** Runs a GenQuery to the end (all pages on one connection); no rows → []. */
  readonly genQuery: (query: GenQuery) => Effect.Effect<ReadonlyArray<ReadonlyArray<string>>, IrodsError>
  /**
   * The ACL of a data object or collection (as the catalog has it: one entry per user or group, groups not
   * expanded) and, for collections, the inheritance flag. None when nothing is at `path` (or, under the STRICT
   * ACL policy, when the caller may not see it). Rows naming deleted users are left out (irods/irods#6921).
   */
  readonly getAccess: (path: string) => Effect.Effect<Option.Option<AccessControl>, IrodsError>
  /** A user's (or group's) type and the groups it is in, `public` included. None when unknown. `name` may be `name#zone`. */
  readonly userInfo: (name: string, zone?: string) => Effect.Effect<Option.Option<UserInfo>, IrodsError>
  /** MOD_ACCESS_CONTROL: grants `level` to a user or group, or removes its entry with "null". */
  readonly setAccess: (
    path: string,
    name: string,
    zone: string,
    level: AccessLevel | "null",
    options?: SetAccessOptions
  ) => Effect.Effect<void, IrodsError>
  /** MOD_ACCESS_CONTROL `inherit` / `noinherit` on a collection (and, `recursive`, every collection under it). */
  readonly setInheritance: (
    collPath: string,
    on: boolean,
    options?: SetAccessOptions
  ) => Effect.Effect<void, IrodsError>
}
