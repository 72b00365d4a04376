/**
 * The namespace side of `IrodsClient`: server version, OBJ_STAT, COLL_CREATE (mkdir -p), listing a collection
 * (two GenQueries, one row per object at its lowest replica) and raw GenQuery.
 */
import { Effect, Option } from "effect"
import { posix } from "node:path"
import { API, COL, collInp, dataObjInp, KW, OBJ_TYPE, type ObjStat, parseIrodsTime, readObjStat } from "./Api.js"
import type { CollectionEntry, DataObjectEntry, GenQuery, IrodsClientService } from "./ClientTypes.js"
import type { IrodsConnection } from "./Connection.js"
import { IRODS_ERROR_CODES, IrodsError } from "./Errors.js"
import { eq, runGenQuery } from "./GenQuery.js"
import type { IrodsSession } from "./Session.js"

/** OBJ_STAT on a borrowed connection; None when nothing is at `path`. */
export const objStatOn = (conn: IrodsConnection, path: string): Effect.Effect<Option.Option<ObjStat>, IrodsError> =>
  conn.call("objStat", path, API.OBJ_STAT, dataObjInp({ path })).pipe(
    Effect.map((reply) => Option.some(readObjStat(conn.parse(reply.msg)))),
    Effect.catchIf((e) => e.is("USER_FILE_DOES_NOT_EXIST"), () => Effect.succeed(Option.none<ObjStat>()))
  )

/** The namespace operations over a session. */
export const makeNamespace = (
  { withConnection }: IrodsSession
): Pick<IrodsClientService, "serverVersion" | "objStat" | "collCreate" | "listCollection" | "genQuery"> => {
  const serverVersion = withConnection((conn) => Effect.succeed(conn.serverVersion))

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

  const genQuery = Effect.fn("IrodsClient.genQuery")(function*(query: GenQuery) {
    return yield* withConnection((conn) => runGenQuery(conn, "genQuery", "", query))
  })

  return { serverVersion, objStat, collCreate, listCollection, genQuery }
}
