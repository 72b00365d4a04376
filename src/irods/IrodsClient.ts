/**
 * `IrodsClient`: a small iRODS native-protocol client (4.2.8, and 4.3 auth) as a scoped Effect service.
 *
 * Connections are authenticated once and pooled (`Pool.makeWithTTL`); each operation borrows one. A connection
 * that saw a transport fault is invalidated, and the operation is retried with exponential backoff on a fresh
 * one when the fault is transient (refused, reset, timed out). Logical and auth errors are never retried.
 *
 * Covered: OBJ_STAT 633, COLL_CREATE 681, GEN_QUERY 702 (with continueInx paging), DATA_OBJ_CREATE 601 /
 * OPEN 602 / WRITE 676 / READ 675 / CLOSE 673 (streamed put and get), DATA_OBJ_UNLINK 615, DATA_OBJ_CHKSUM 629,
 * MOD_AVU_METADATA 706, MOD_ACCESS_CONTROL 707 (ACLs and inheritance) and ACL / user / group GenQueries.
 */
import { Context, Duration, Effect, Layer, Option, Pool, Redacted, Schedule, type Scope } from "effect"
import type * as Config from "effect/Config"
import type { ConfigError } from "effect/ConfigError"
import { randomBytes } from "node:crypto"
import { open as fsOpen, rename, rm } from "node:fs/promises"
import { basename as localBasename, dirname as localDirname, join as localJoin, posix } from "node:path"
import { ChecksumMismatch } from "../errors.js"
import { type Checksum, parseIrodsChecksum } from "../LakeStorage.js"
import {
  ACCESS_TYPE,
  API,
  COL,
  collInp,
  dataObjInp,
  GENQUERY,
  type GenQueryInput,
  genQueryInp,
  KW,
  modAccessControlInp,
  modAvuInp,
  OBJ_TYPE,
  type ObjStat,
  OPEN_FLAGS,
  openedDataObjInp,
  parseIrodsTime,
  readGenQueryOut,
  readObjStat
} from "./Api.js"
import type { IrodsConnectionConfig } from "./Config.js"
import { acquireConnection, type ConnectionOptions, type IrodsConnection } from "./Connection.js"
import { IRODS_ERROR_CODES, IrodsError } from "./Errors.js"

export type { ObjStat } from "./Api.js"

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

/** `= 'v'` condition text. */
export const eq = (value: string): string => `= '${value}'`
/** `like 'p'` condition text. */
export const like = (pattern: string): string => `like '${pattern}'`

const DEFAULT_CHUNK = 4 * 1024 * 1024

/**
 * An ACL row's level from its access type id (COL_*_ACCESS_TYPE, token ids shared by 4.2 and 4.3): own from 1200,
 * modify from "modify object" (1120, also "delete object" 1130), read from "read object" (1050); finer levels
 * below read (e.g. 4.3's "read_metadata") grant no read and give undefined.
 */
export const accessLevelOf = (typeId: number): AccessLevel | undefined =>
  typeId >= ACCESS_TYPE.own
    ? "own"
    : typeId >= ACCESS_TYPE["modify object"]
    ? "modify"
    : typeId >= ACCESS_TYPE["read object"]
    ? "read"
    : undefined

/** `in ('a','b')` condition text. */
const inList = (values: ReadonlyArray<string>): string => `in (${values.map((v) => `'${v}'`).join(",")})`

const byNameThenZone = (a: { name: string; zone: string }, b: { name: string; zone: string }) =>
  a.name < b.name ? -1 : a.name > b.name ? 1 : a.zone < b.zone ? -1 : a.zone > b.zone ? 1 : 0

const isNoRows = (e: IrodsError) => e.is("CAT_NO_ROWS_FOUND")

const localIoError = (operation: string, path: string, cause: unknown) => {
  const code = typeof cause === "object" && cause !== null && "code" in cause ? String(cause.code) : ""
  const name = code === "ENOENT" ? "USER_FILE_DOES_NOT_EXIST" : operation === "get" ? "FILE_WRITE_ERR" : "FILE_READ_ERR"
  return new IrodsError({
    code: IRODS_ERROR_CODES[name],
    irodsName: name,
    operation,
    path,
    detail: `local file: ${cause instanceof Error ? cause.message : String(cause)}`,
    transient: false,
    cause
  })
}

/** Runs a paged GenQuery on one connection. */
const runGenQuery = (
  conn: IrodsConnection,
  operation: string,
  path: string,
  query: GenQuery
): Effect.Effect<Array<Array<string>>, IrodsError> =>
  Effect.gen(function*() {
    const input: GenQueryInput = {
      select: query.select.map((s) => (typeof s === "number" ? [s, GENQUERY.SELECT] as const : s)),
      where: query.where ?? [],
      options: query.options ?? 0,
      maxRows: GENQUERY.MAX_SQL_ROWS
    }
    const rows: Array<Array<string>> = []
    let continueInx = 0
    for (;;) {
      const reply = yield* conn.call(operation, path, API.GEN_QUERY, genQueryInp({ ...input, continueInx })).pipe(
        Effect.map(Option.some),
        Effect.catchIf(isNoRows, () => Effect.succeed(Option.none()))
      )
      if (Option.isNone(reply)) return rows
      const out = readGenQueryOut(conn.parse(reply.value.msg))
      for (const r of out.rows) rows.push([...r])
      if (query.limit !== undefined && rows.length >= query.limit) {
        if (out.continueInx > 0) {
          yield* conn.call(operation, path, API.GEN_QUERY, genQueryInp({ ...input, maxRows: 0, continueInx: out.continueInx }))
            .pipe(Effect.catchIf(isNoRows, () => Effect.void))
        }
        return rows.slice(0, query.limit)
      }
      if (out.continueInx <= 0) return rows
      continueInx = out.continueInx
    }
  })

/** Builds the client; the pool lives as long as the surrounding scope. */
export const make = (options: IrodsClientOptions): Effect.Effect<IrodsClientService, never, Scope.Scope> =>
  Effect.gen(function*() {
    const connOptions: ConnectionOptions = {
      host: options.host,
      port: options.port,
      zone: options.zone,
      user: options.user,
      password: options.password,
      applicationName: options.applicationName ?? "mesa-ducklake",
      connectTimeout: Duration.decode(options.connectTimeout ?? "10 seconds"),
      requestTimeout: Duration.decode(options.requestTimeout ?? "60 seconds"),
      forceLegacyAuth: options.forceLegacyAuth ?? false
    }
    const chunkSize = options.chunkSize ?? DEFAULT_CHUNK
    const pool = yield* Pool.makeWithTTL({
      acquire: acquireConnection(connOptions),
      min: 0,
      max: options.poolSize ?? 4,
      timeToLive: options.idleTimeout ?? "60 seconds",
      timeToLiveStrategy: "usage"
    })

    const retrySchedule = Schedule.exponential(options.retryBase ?? "100 millis", 2).pipe(
      Schedule.intersect(Schedule.recurs(options.retries ?? 3))
    )

    /** Borrows a connection; drops it from the pool when it broke; retries transient faults from the start. */
    const withConnection = <A, E>(
      f: (conn: IrodsConnection) => Effect.Effect<A, E | IrodsError>
    ): Effect.Effect<A, E | IrodsError> =>
      Effect.scoped(
        Effect.flatMap(Pool.get(pool), (conn) =>
          f(conn).pipe(
            Effect.ensuring(Effect.suspend(() => (conn.broken ? Pool.invalidate(pool, conn) : Effect.void)))
          ))
      ).pipe(
        Effect.retry({
          schedule: retrySchedule,
          while: (e) => e instanceof IrodsError && e.transient
        })
      )

    const serverVersion = withConnection((conn) => Effect.succeed(conn.serverVersion))

    const objStatOn = (conn: IrodsConnection, path: string) =>
      conn.call("objStat", path, API.OBJ_STAT, dataObjInp({ path })).pipe(
        Effect.map((reply) => Option.some(readObjStat(conn.parse(reply.msg)))),
        Effect.catchIf((e) => e.is("USER_FILE_DOES_NOT_EXIST"), () => Effect.succeed(Option.none<ObjStat>()))
      )

    const objStat = Effect.fn("IrodsClient.objStat")(function*(path: string) {
      return yield* withConnection((conn) => objStatOn(conn, path))
    })

    const collCreate = Effect.fn("IrodsClient.collCreate")(
      function*(path: string, opts?: { readonly parents?: boolean }) {
        const parents = opts?.parents ?? true
        yield* withConnection((conn) =>
          conn.call(
            "collCreate",
            path,
            API.COLL_CREATE,
            collInp(path, parents ? { [KW.RECURSIVE_OPR]: "" } : {})
          ).pipe(
            // With recursiveOpr an existing collection is success (mkdir -p); some servers still say so.
            Effect.catchIf(
              (e) => parents && e.is("CATALOG_ALREADY_HAS_ITEM_BY_THAT_NAME"),
              () =>
                objStatOn(conn, path).pipe(
                  Effect.flatMap((st) =>
                    Option.isSome(st) && st.value.objType === OBJ_TYPE.COLL_OBJ
                      ? Effect.void
                      : Effect.fail(IrodsError.fromCode(IRODS_ERROR_CODES.CAT_NAME_EXISTS_AS_DATAOBJ, {
                        operation: "collCreate",
                        path
                      }))
                  )
                )
            )
          )
        )
      }
    )

    const listCollection = Effect.fn("IrodsClient.listCollection")(function*(path: string) {
      return yield* withConnection((conn) =>
        Effect.gen(function*() {
          const st = yield* objStatOn(conn, path)
          if (Option.isNone(st)) {
            return yield* Effect.fail(IrodsError.fromCode(IRODS_ERROR_CODES.USER_FILE_DOES_NOT_EXIST, {
              operation: "listCollection",
              path
            }))
          }
          if (st.value.objType !== OBJ_TYPE.COLL_OBJ) {
            return yield* Effect.fail(IrodsError.fromCode(IRODS_ERROR_CODES.CAT_NAME_EXISTS_AS_DATAOBJ, {
              operation: "listCollection",
              path,
              detail: "not a collection"
            }))
          }
          const subRows = yield* runGenQuery(conn, "listCollection", path, {
            select: [COL.COLL_ID, COL.COLL_NAME, COL.COLL_MODIFY_TIME],
            where: [[COL.COLL_PARENT_NAME, eq(path)]]
          })
          const dataRows = yield* runGenQuery(conn, "listCollection", path, {
            select: [COL.D_DATA_ID, COL.DATA_NAME, COL.DATA_SIZE, COL.D_MODIFY_TIME, COL.D_DATA_CHECKSUM, COL.DATA_REPL_NUM],
            where: [[COL.COLL_NAME, eq(path)]]
          })
          const collections = subRows
            .filter(([, name]) => name !== path)
            .map(([id, name, mtime]): CollectionEntry => ({
              path: name!,
              name: posix.basename(name!),
              id: Number(id),
              modified: parseIrodsTime(mtime ?? "0")
            }))
          // One row per replica: keep the lowest replica number of each object.
          const byId = new Map<string, DataObjectEntry & { repl: number }>()
          for (const [id, name, size, mtime, checksum, repl] of dataRows) {
            const prev = byId.get(id!)
            const r = Number(repl ?? "0")
            if (prev !== undefined && prev.repl <= r) continue
            byId.set(id!, {
              path: posix.join(path, name!),
              name: name!,
              id: Number(id),
              size: Number(size),
              modified: parseIrodsTime(mtime ?? "0"),
              checksum: checksum ?? "",
              repl: r
            })
          }
          const dataObjects = [...byId.values()].map(({ repl: _repl, ...entry }) => entry)
          return { collections, dataObjects }
        })
      )
    })

    const closeFd = (conn: IrodsConnection, operation: string, path: string, fd: number) =>
      conn.call(operation, path, API.DATA_OBJ_CLOSE, openedDataObjInp({ fd }))

    const put = Effect.fn("IrodsClient.put")(
      function*(localFile: string, path: string, opts?: { readonly overwrite?: boolean }) {
        const overwrite = opts?.overwrite ?? false
        return yield* withConnection((conn) =>
          Effect.scoped(Effect.gen(function*() {
            const file = yield* Effect.acquireRelease(
              Effect.tryPromise({ try: () => fsOpen(localFile, "r"), catch: (e) => localIoError("put", localFile, e) }),
              (fh) => Effect.promise(() => fh.close()).pipe(Effect.ignore)
            )
            const { size } = yield* Effect.tryPromise({
              try: () => file.stat(),
              catch: (e) => localIoError("put", localFile, e)
            })
            const created = yield* conn.call(
              "put",
              path,
              API.DATA_OBJ_CREATE,
              dataObjInp({
                path,
                createMode: 0o644,
                openFlags: OPEN_FLAGS.O_WRONLY | OPEN_FLAGS.O_CREAT | OPEN_FLAGS.O_TRUNC,
                dataSize: size,
                kv: { [KW.DATA_TYPE]: "generic", ...(overwrite ? { [KW.FORCE_FLAG]: "" } : {}) }
              })
            )
            const fd = created.intInfo
            const buffer = Buffer.allocUnsafe(Math.min(chunkSize, Math.max(size, 1)))
            const writeAll = Effect.gen(function*() {
              let offset = 0
              while (offset < size) {
                const { bytesRead } = yield* Effect.tryPromise({
                  try: () => file.read(buffer, 0, Math.min(buffer.length, size - offset), offset),
                  catch: (e) => localIoError("put", localFile, e)
                })
                if (bytesRead === 0) break
                const chunk = Buffer.from(buffer.subarray(0, bytesRead))
                const written = yield* conn.call(
                  "put",
                  path,
                  API.DATA_OBJ_WRITE,
                  openedDataObjInp({ fd, len: bytesRead }),
                  chunk
                )
                if (written.intInfo !== bytesRead) {
                  return yield* Effect.fail(IrodsError.fromCode(IRODS_ERROR_CODES.SYS_COPY_LEN_ERR, {
                    operation: "put",
                    path,
                    detail: `server wrote ${written.intInfo} of ${bytesRead} bytes at offset ${offset}`
                  }))
                }
                offset += bytesRead
              }
              yield* closeFd(conn, "put", path, fd)
              return { size: offset }
            })
            return yield* writeAll.pipe(
              Effect.tapError(() => conn.broken ? Effect.void : Effect.ignore(closeFd(conn, "put", path, fd)))
            )
          }))
        )
      }
    )

    const get = Effect.fn("IrodsClient.get")(function*(path: string, localFile: string) {
      return yield* withConnection((conn) =>
        Effect.scoped(Effect.gen(function*() {
          const temp = localJoin(localDirname(localFile), `.${localBasename(localFile)}.${randomBytes(6).toString("hex")}.part`)
          const file = yield* Effect.acquireRelease(
            Effect.tryPromise({ try: () => fsOpen(temp, "w"), catch: (e) => localIoError("get", localFile, e) }),
            (fh) => Effect.promise(() => fh.close()).pipe(Effect.ignore)
          )
          yield* Effect.addFinalizer((exit) =>
            exit._tag === "Failure" ? Effect.promise(() => rm(temp, { force: true })).pipe(Effect.ignore) : Effect.void
          )
          const opened = yield* conn.call(
            "get",
            path,
            API.DATA_OBJ_OPEN,
            dataObjInp({ path, openFlags: OPEN_FLAGS.O_RDONLY })
          )
          const fd = opened.intInfo
          const readAll = Effect.gen(function*() {
            let total = 0
            for (;;) {
              const reply = yield* conn.call("get", path, API.DATA_OBJ_READ, openedDataObjInp({ fd, len: chunkSize }))
              if (reply.bs.length === 0) break
              const bytes = reply.bs
              yield* Effect.tryPromise({
                try: () => file.write(bytes, 0, bytes.length, total),
                catch: (e) => localIoError("get", localFile, e)
              })
              total += bytes.length
            }
            yield* closeFd(conn, "get", path, fd)
            return total
          })
          const size = yield* readAll.pipe(
            Effect.tapError(() => conn.broken ? Effect.void : Effect.ignore(closeFd(conn, "get", path, fd)))
          )
          yield* Effect.tryPromise({
            try: async () => {
              await file.sync()
              await rename(temp, localFile)
            },
            catch: (e) => localIoError("get", localFile, e)
          })
          return { size }
        }))
      )
    })

    const unlink = Effect.fn("IrodsClient.unlink")(function*(path: string, opts?: { readonly force?: boolean }) {
      yield* withConnection((conn) =>
        conn.call(
          "unlink",
          path,
          API.DATA_OBJ_UNLINK,
          dataObjInp({ path, kv: (opts?.force ?? true) ? { [KW.FORCE_FLAG]: "" } : {} })
        )
      )
    })

    const checksum = Effect.fn("IrodsClient.checksum")(function*(path: string, opts?: { readonly force?: boolean }) {
      const raw = yield* withConnection((conn) =>
        conn.call(
          "checksum",
          path,
          API.DATA_OBJ_CHKSUM,
          dataObjInp({ path, kv: opts?.force ? { [KW.FORCE_CHKSUM]: "" } : {} })
        ).pipe(Effect.map((reply) => (reply.msg.length === 0 ? "" : conn.parse(reply.msg).str("myStr"))))
      )
      const parsed = parseIrodsChecksum(raw)
      if (parsed === undefined) {
        return yield* Effect.fail(new ChecksumMismatch({ path, expected: "an md5 or sha2 checksum (unverified)", actual: raw }))
      }
      return parsed
    })

    const avuArgs = (op: string, target: AvuTarget, avu: Avu) => [
      op,
      target.type === "data_object" ? "-d" : "-C",
      target.path,
      avu.name,
      avu.value,
      ...(avu.units === "" ? [] : [avu.units])
    ]

    const modAvu = (op: "add" | "rm" | "set") => (target: AvuTarget, avu: Avu) =>
      withConnection((conn) =>
        conn.call(`${op}Avu`, target.path, API.MOD_AVU_METADATA, modAvuInp(avuArgs(op, target, avu)))
      ).pipe(Effect.asVoid, Effect.withSpan(`IrodsClient.${op}Avu`))

    const listAvus = Effect.fn("IrodsClient.listAvus")(function*(target: AvuTarget) {
      const query: GenQuery = target.type === "data_object"
        ? {
          select: [COL.META_DATA_ATTR_NAME, COL.META_DATA_ATTR_VALUE, COL.META_DATA_ATTR_UNITS],
          where: [[COL.COLL_NAME, eq(posix.dirname(target.path))], [COL.DATA_NAME, eq(posix.basename(target.path))]]
        }
        : {
          select: [COL.META_COLL_ATTR_NAME, COL.META_COLL_ATTR_VALUE, COL.META_COLL_ATTR_UNITS],
          where: [[COL.COLL_NAME, eq(target.path)]]
        }
      const rows = yield* withConnection((conn) => runGenQuery(conn, "listAvus", target.path, query))
      return rows.map(([name, value, units]): Avu => ({ name: name!, value: value!, units: units ?? "" }))
    })

    const genQuery = Effect.fn("IrodsClient.genQuery")(function*(query: GenQuery) {
      return yield* withConnection((conn) => runGenQuery(conn, "genQuery", "", query))
    })

    const getAccess = Effect.fn("IrodsClient.getAccess")(function*(path: string) {
      return yield* withConnection((conn) =>
        Effect.gen(function*() {
          const st = yield* objStatOn(conn, path)
          if (Option.isNone(st)) return Option.none<AccessControl>()
          const isColl = st.value.objType === OBJ_TYPE.COLL_OBJ
          // One row per R_OBJT_ACCESS row of the object (the grantee by id; users are looked up below).
          const aclRows = yield* runGenQuery(
            conn,
            "getAccess",
            path,
            isColl
              ? {
                select: [COL.COLL_ACCESS_TYPE, COL.COLL_ACCESS_NAME, COL.COLL_ACCESS_USER_ID],
                where: [[COL.COLL_NAME, eq(path)]]
              }
              : {
                select: [COL.DATA_ACCESS_TYPE, COL.DATA_ACCESS_NAME, COL.DATA_ACCESS_USER_ID],
                where: [[COL.COLL_NAME, eq(posix.dirname(path))], [COL.DATA_NAME, eq(posix.basename(path))]]
              }
          )
          const inheritRows = isColl
            ? yield* runGenQuery(conn, "getAccess", path, {
              select: [COL.COLL_INHERITANCE],
              where: [[COL.COLL_NAME, eq(path)]]
            })
            : []
          const ids = [...new Set(aclRows.map(([, , id]) => id!))]
          const userRows = ids.length === 0 ? [] : yield* runGenQuery(conn, "getAccess", path, {
            select: [COL.USER_ID, COL.USER_NAME, COL.USER_ZONE, COL.USER_TYPE],
            where: [[COL.USER_ID, ids.length === 1 ? eq(ids[0]!) : inList(ids)]]
          })
          const users = new Map(userRows.map(([id, name, zone, type]) => [id!, { name: name!, zone: zone!, type: type! }]))
          // A grantee may hold one row per object; keep the highest level if a catalog ever has two.
          const best = new Map<string, AccessEntry & { typeId: number }>()
          for (const [typeId, accessName, id] of aclRows) {
            const user = users.get(id!)
            const access = accessLevelOf(Number(typeId))
            if (user === undefined || access === undefined) continue
            const prev = best.get(id!)
            if (prev !== undefined && prev.typeId >= Number(typeId)) continue
            best.set(id!, { ...user, access, accessName: accessName!, typeId: Number(typeId) })
          }
          const entries = [...best.values()].map(({ typeId: _t, ...e }): AccessEntry => e).sort(byNameThenZone)
          const inherit = (inheritRows[0]?.[0] ?? "") === "1"
          return Option.some<AccessControl>({ kind: isColl ? "collection" : "data_object", entries, inherit })
        })
      )
    })

    const userInfo = Effect.fn("IrodsClient.userInfo")(function*(qualified: string, zone?: string) {
      // "name#zone" is accepted too, as iRODS commands take it.
      const [name, zoneInName] = qualified.includes("#") ? qualified.split("#", 2) as [string, string] : [qualified, ""]
      const userZone = zone !== undefined && zone !== "" ? zone : zoneInName !== "" ? zoneInName : options.zone
      return yield* withConnection((conn) =>
        Effect.gen(function*() {
          const where = [[COL.USER_NAME, eq(name)], [COL.USER_ZONE, eq(userZone)]] as const
          const found = yield* runGenQuery(conn, "userInfo", name, { select: [COL.USER_ID, COL.USER_TYPE], where })
          const row = found[0]
          if (row === undefined) return Option.none<UserInfo>()
          const [id, type] = row
          // R_USER_GROUP holds a row of every user in itself: leave that one out.
          const groupRows = yield* runGenQuery(conn, "userInfo", name, {
            select: [COL.USER_GROUP_ID, COL.USER_GROUP_NAME],
            where
          })
          const groups = [...new Set(groupRows.filter(([gid]) => gid !== id).map(([, g]) => g!))].sort()
          return Option.some<UserInfo>({ id: Number(id), name, zone: userZone, type: type!, groups })
        })
      )
    })

    const modAccess = (operation: string, path: string, accessLevel: string, userName: string, zone: string, opts?: SetAccessOptions) =>
      withConnection((conn) =>
        conn.call(
          operation,
          path,
          API.MOD_ACCESS_CONTROL,
          modAccessControlInp({
            recursive: opts?.recursive ?? false,
            accessLevel: `${opts?.admin ? "admin:" : ""}${accessLevel}`,
            userName,
            zone,
            path
          })
        )
      )

    const setAccess = Effect.fn("IrodsClient.setAccess")(
      function*(path: string, name: string, zone: string, level: AccessLevel | "null", opts?: SetAccessOptions) {
        // 4.2.8 takes ichmod's words: read, write, own, null (not "modify object").
        const word = level === "modify" ? "write" : level
        yield* modAccess("setAccess", path, word, name, zone, opts)
      }
    )

    const setInheritance = Effect.fn("IrodsClient.setInheritance")(
      function*(collPath: string, on: boolean, opts?: SetAccessOptions) {
        yield* modAccess("setInheritance", collPath, on ? "inherit" : "noinherit", "", "", opts)
      }
    )

    return {
      serverVersion,
      objStat,
      collCreate,
      listCollection,
      put,
      get,
      unlink,
      checksum,
      addAvu: modAvu("add"),
      removeAvu: modAvu("rm"),
      setAvu: modAvu("set"),
      listAvus,
      genQuery,
      getAccess,
      userInfo,
      setAccess,
      setInheritance
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
