/**
 * AVU metadata for `IrodsClient`: MOD_AVU_METADATA add / rm / set on data objects and collections (the `imeta`
 * arguments, units left out when empty) and listing an object's AVUs by GenQuery.
 */
import { Effect } from "effect"
import { posix } from "node:path"
import { API, COL, modAvuInp } from "./Api.js"
import type { Avu, AvuTarget, GenQuery, IrodsClientService } from "./ClientTypes.js"
import { eq, runGenQuery } from "./GenQuery.js"
import type { IrodsSession } from "./Session.js"

const avuArgs = (op: string, target: AvuTarget, avu: Avu) => [
  op,
  target.type === "data_object" ? "-d" : "-C",
  target.path,
  avu.name,
  avu.value,
  ...(avu.units === "" ? [] : [avu.units])
]

/** The AVU operations over a session. */
export const makeMetadata = (
  { withConnection }: IrodsSession
): Pick<IrodsClientService, "addAvu" | "removeAvu" | "setAvu" | "listAvus"> => {
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

  return { addAvu: modAvu("add"), removeAvu: modAvu("rm"), setAvu: modAvu("set"), listAvus }
}
