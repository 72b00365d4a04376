/**
 * The fake's catalog as tables joined the way iRODS GenQuery joins them (4.2.8 `general_query_setup.cpp`: each
 * column belongs to one table alias; `sFklink` pairs say how aliases join). The tables the query's columns need
 * are connected through the link graph, which for the aliases modelled here is a tree, so the connecting tables
 * are exactly the union of the paths between the needed ones (the same tables iRODS's join search picks).
 *
 * Modelled aliases (iRODS name → here):
 *   R_COLL_MAIN → COLL (500-509)            R_DATA_MAIN → DATA (401-423)
 *   r_coll_meta_main → COLL_META (610-615)  r_data_meta_main → DATA_META (600-605)
 *   r_coll_access + r_coll_tokn_accs → COLL_ACCESS (710-714)
 *   r_data_access + r_data_tokn_accs → DATA_ACCESS (700-704)
 *   R_USER_MAIN → USER (201-209), linked to r_data_access.user_id (not to collection ACLs)
 *   R_USER_GROUP + r_group_main → USER_GROUP (900, 901), linked to R_USER_MAIN.user_id (the member)
 *   r_coll_user_group + r_coll_user_main → COLL_USER (1300, 1301), members of a collection ACL's grantee
 *   r_data_user_group + r_data_user_main → DATA_USER (1310, 1311), members of a data object ACL's grantee
 *
 * Join keys that are not GenQuery columns are carried under negative numbers (never selectable).
 */

export type Row = ReadonlyMap<number, string>

/** Hidden join keys. */
export const KEY = {
  DATA_META_OBJECT: -10,
  COLL_META_OBJECT: -11,
  USER_GROUP_MEMBER: -20,
  DATA_USER_GRANTEE: -30,
  COLL_USER_GRANTEE: -31
} as const

export type TableName =
  | "COLL"
  | "DATA"
  | "COLL_META"
  | "DATA_META"
  | "COLL_ACCESS"
  | "DATA_ACCESS"
  | "USER"
  | "USER_GROUP"
  | "COLL_USER"
  | "DATA_USER"

interface Link {
  readonly a: TableName
  readonly aKey: number
  readonly b: TableName
  readonly bKey: number
}

/** The `sFklink`s between the modelled aliases (a tree). */
const LINKS: ReadonlyArray<Link> = [
  { a: "COLL", aKey: 500, b: "DATA", bKey: 402 },
  { a: "DATA", aKey: 401, b: "DATA_META", bKey: KEY.DATA_META_OBJECT },
  { a: "COLL", aKey: 500, b: "COLL_META", bKey: KEY.COLL_META_OBJECT },
  { a: "DATA", aKey: 401, b: "DATA_ACCESS", bKey: 704 },
  { a: "COLL", aKey: 500, b: "COLL_ACCESS", bKey: 714 },
  { a: "DATA_ACCESS", aKey: 703, b: "USER", bKey: 201 },
  { a: "USER", aKey: 201, b: "USER_GROUP", bKey: KEY.USER_GROUP_MEMBER },
  { a: "DATA_ACCESS", aKey: 703, b: "DATA_USER", bKey: KEY.DATA_USER_GRANTEE },
  { a: "COLL_ACCESS", aKey: 713, b: "COLL_USER", bKey: KEY.COLL_USER_GRANTEE }
]

const inRange = (c: number, lo: number, hi: number) => c >= lo && c <= hi

/** The table a GenQuery column belongs to, or undefined when the fake does not model it. */
export const tableOf = (column: number): TableName | undefined => {
  if (inRange(column, 401, 423)) return "DATA"
  if (inRange(column, 500, 509)) return "COLL"
  if (inRange(column, 600, 605)) return "DATA_META"
  if (inRange(column, 610, 615)) return "COLL_META"
  if (inRange(column, 700, 704)) return "DATA_ACCESS"
  if (inRange(column, 710, 714)) return "COLL_ACCESS"
  if (inRange(column, 201, 209) && column !== 205) return "USER"
  if (column === 900 || column === 901) return "USER_GROUP"
  if (column === 1300 || column === 1301) return "COLL_USER"
  if (column === 1310 || column === 1311) return "DATA_USER"
  return undefined
}

const neighbours = (t: TableName, within: ReadonlySet<TableName>) =>
  LINKS.flatMap((l) =>
    l.a === t && within.has(l.b)
      ? [{ to: l.b, fromKey: l.aKey, toKey: l.bKey }]
      : l.b === t && within.has(l.a)
      ? [{ to: l.a, fromKey: l.bKey, toKey: l.aKey }]
      : []
  )

/** The tables iRODS would join for these tables: the smallest connected part of the link tree holding them all. */
export const connectingTables = (needed: ReadonlySet<TableName>): Set<TableName> => {
  const all = new Set<TableName>(LINKS.flatMap((l) => [l.a, l.b]))
  // Prune leaves that are not needed until every leaf is needed.
  for (let pruned = true; pruned;) {
    pruned = false
    for (const t of [...all]) {
      if (!needed.has(t) && neighbours(t, all).length <= 1) {
        all.delete(t)
        pruned = true
      }
    }
  }
  return needed.size === 0 ? new Set() : all
}

/** Inner-joins the tables' rows along the links (hash join per edge, breadth first from the first table). */
export const joinTables = (
  tables: ReadonlySet<TableName>,
  rowsOf: (t: TableName) => ReadonlyArray<Row>
): Array<Map<number, string>> => {
  const order = [...tables]
  const start = order[0]
  if (start === undefined) return []
  let rows: Array<Map<number, string>> = rowsOf(start).map((r) => new Map(r))
  const seen = new Set<TableName>([start])
  const queue: Array<TableName> = [start]
  while (queue.length > 0) {
    const from = queue.shift()!
    for (const { to, fromKey, toKey } of neighbours(from, tables)) {
      if (seen.has(to)) continue
      seen.add(to)
      queue.push(to)
      const index = new Map<string, Array<Row>>()
      for (const r of rowsOf(to)) {
        const k = r.get(toKey)
        if (k === undefined) continue
        const list = index.get(k)
        if (list === undefined) index.set(k, [r])
        else list.push(r)
      }
      const next: Array<Map<number, string>> = []
      for (const r of rows) {
        for (const match of index.get(r.get(fromKey) ?? "") ?? []) {
          const merged = new Map(r)
          for (const [c, v] of match) merged.set(c, v)
          next.push(merged)
        }
      }
      rows = next
    }
  }
  return rows
}
