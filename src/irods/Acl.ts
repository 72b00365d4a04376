/**
 * Access control for `IrodsClient`: reading an object's ACL (and a collection's inheritance flag) as the catalog
 * has it, a user's type and groups, and MOD_ACCESS_CONTROL to grant, revoke or set inheritance (4.2.8 words).
 */
import { Effect, Option } from "effect"
import { posix } from "node:path"
import { ACCESS_TYPE, API, COL, modAccessControlInp, OBJ_TYPE } from "./Api.js"
import type {
  AccessControl,
  AccessEntry,
  AccessLevel,
  IrodsClientService,
  SetAccessOptions,
  UserInfo
} from "./ClientTypes.js"
import { eq, inList, runGenQuery } from "./GenQuery.js"
import { objStatOn } from "./Namespace.js"
import type { IrodsSession } from "./Session.js"

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

const byNameThenZone = (a: { name: string; zone: string }, b: { name: string; zone: string }) =>
  a.name < b.name ? -1 : a.name > b.name ? 1 : a.zone < b.zone ? -1 : a.zone > b.zone ? 1 : 0

/** The access-control operations over a session. */
export const makeAcl = (
  { withConnection, zone: ownZone }: IrodsSession
): Pick<IrodsClientService, "getAccess" | "userInfo" | "setAccess" | "setInheritance"> => {
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
    const userZone = zone !== undefined && zone !== "" ? zone : zoneInName !== "" ? zoneInName : ownZone
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

  return { getAccess, userInfo, setAccess, setInheritance }
}
