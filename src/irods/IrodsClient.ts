/**
 * `IrodsClient`: a small iRODS native-protocol client (4.2.8, and 4.3 auth) as a scoped Effect service. This module
 * is the public face (the tag, `make`, the layers and every type a caller names); the work lives behind it by
 * capability: `Session.ts` (pool, retries), `Namespace.ts` (stat, mkdir, listing, GenQuery), `Transfer.ts`
 * (put, get, unlink, checksum), `Metadata.ts` (AVUs) and `Acl.ts` (ACLs, users).
 *
 * Connections are authenticated once and pooled (`Pool.makeWithTTL`); each operation borrows one. A connection
 * that saw a transport fault is invalidated, and the operation is retried with exponential backoff on a fresh
 * one when the fault is transient (refused, reset, timed out). Logical and auth errors are never retried.
 *
 * Covered: OBJ_STAT 633, COLL_CREATE 681, GEN_QUERY 702 (with continueInx paging), DATA_OBJ_CREATE 601 /
 * OPEN 602 / WRITE 676 / READ 675 / CLOSE 673 (streamed put and get), DATA_OBJ_UNLINK 615, DATA_OBJ_CHKSUM 629,
 * MOD_AVU_METADATA 706, MOD_ACCESS_CONTROL 707 (ACLs and inheritance) and ACL / user / group GenQueries.
 */
import { Context, Effect, Layer, Redacted, type Scope } from "effect"
import type * as Config from "effect/Config"
import type { ConfigError } from "effect/ConfigError"
import { makeAcl } from "./Acl.js"
import type { IrodsClientOptions, IrodsClientService } from "./ClientTypes.js"
import { makeMetadata } from "./Metadata.js"
import { makeNamespace } from "./Namespace.js"
import { makeSession } from "./Session.js"
import { makeTransfer } from "./Transfer.js"

export type { ObjStat } from "./Api.js"
export { accessLevelOf } from "./Acl.js"
export type {
  AccessControl,
  AccessEntry,
  AccessLevel,
  Avu,
  AvuTarget,
  CollectionEntry,
  CollectionListing,
  DataObjectEntry,
  GenQuery,
  IrodsClientOptions,
  IrodsClientService,
  SetAccessOptions,
  UserInfo
} from "./ClientTypes.js"
export { eq, like } from "./GenQuery.js"

/** Builds the client; the pool lives as long as the surrounding scope. */
export const make = (options: IrodsClientOptions): Effect.Effect<IrodsClientService, never, Scope.Scope> =>
  Effect.map(makeSession(options), (session) => {
    const namespace = makeNamespace(session)
    const transfer = makeTransfer(session)
    const metadata = makeMetadata(session)
    const acl = makeAcl(session)
    return {
      serverVersion: namespace.serverVersion,
      objStat: namespace.objStat,
      collCreate: namespace.collCreate,
      listCollection: namespace.listCollection,
      put: transfer.put,
      get: transfer.get,
      unlink: transfer.unlink,
      checksum: transfer.checksum,
      addAvu: metadata.addAvu,
      removeAvu: metadata.removeAvu,
      setAvu: metadata.setAvu,
      listAvus: metadata.listAvus,
      genQuery: namespace.genQuery,
      getAccess: acl.getAccess,
      userInfo: acl.userInfo,
      setAccess: acl.setAccess,
      setInheritance: acl.setInheritance
    } satisfies IrodsClientService
  })

export class IrodsClient extends Context.Tag("mesa-ducklake/IrodsClient")<IrodsClient, IrodsClientService>() {
  static readonly make = make

  /** A client with explicit options. */
  static readonly layer = (options: IrodsClientOptions): Layer.Layer<IrodsClient> =>
    Layer.scoped(IrodsClient, make(options))

  /** A client configured from `Config` (e.g. `irodsConfig` from ./Config.js). */
  static readonly layerConfig = (
    config: Config.Config<IrodsClientOptions>
  ): Layer.Layer<IrodsClient, ConfigError> =>
    Layer.scoped(IrodsClient, Effect.flatMap(config, make))
}

/** Keeps `Redacted` imported for doc links and consumers building options by hand. */
export const redactedPassword = (password: string): Redacted.Redacted<string> => Redacted.make(password)
