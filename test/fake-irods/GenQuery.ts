/**
 * GenQuery evaluation for the fake iRODS server: over the joined rows ./Tables.ts builds for the query's columns,
 * filters with iRODS condition text, projects, de-duplicates and sorts.
 */
import { GENQUERY } from "../../src/irods/Api.js"

export type Row = ReadonlyMap<number, string>

export class GenQueryError extends Error {
  constructor(readonly code: number, message: string) {
    super(message)
  }
}

/** Splits `'a','b'` (inside `in (...)`) into values. */
const quotedList = (s: string): Array<string> => {
  const out: Array<string> = []
  const re = /'((?:[^']|'')*)'/g
  let m: RegExpExecArray | null
  while ((m = re.exec(s)) !== null) out.push(m[1]!)
  return out
}

/** The text between the first and the last single quote (so values may contain quotes), or the bare token. */
const unquote = (s: string): string => {
  const t = s.trim()
  const first = t.indexOf("'")
  const last = t.lastIndexOf("'")
  return first >= 0 && last > first ? t.slice(first + 1, last) : t
}

const likeRegex = (pattern: string): RegExp =>
  new RegExp(
    "^" +
      [...pattern].map((c) => (c === "%" ? ".*" : c === "_" ? "." : c.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"))).join("") +
      "$",
    "s"
  )

const compare = (a: string, b: string): number => {
  const na = Number(a)
  const nb = Number(b)
  if (a.trim() !== "" && b.trim() !== "" && Number.isFinite(na) && Number.isFinite(nb)) return na - nb
  return a < b ? -1 : a > b ? 1 : 0
}

/** Compiles one condition (`= 'x'`, `like 'p%'`, `in ('a','b')`, `between '1' '5'`, `<> 'x'`, ...). */
export const compileCondition = (text: string, upper: boolean): ((value: string) => boolean) => {
  const t = text.trim()
  const m = /^(not\s+like|like|not\s+in|in|between|<>|!=|<=|>=|=|<|>)\s*([\s\S]*)$/i.exec(t)
  if (m === null) throw new GenQueryError(-816000, `bad condition: ${text}`) // CAT_INVALID_ARGUMENT
  const op = m[1]!.toLowerCase().replace(/\s+/g, " ")
  const rest = m[2]!
  const norm = (s: string) => (upper ? s.toUpperCase() : s)
  switch (op) {
    case "=": {
      const v = unquote(rest)
      return (x) => norm(x) === v
    }
    case "<>":
    case "!=": {
      const v = unquote(rest)
      return (x) => norm(x) !== v
    }
    case "<":
    case ">":
    case "<=":
    case ">=": {
      const v = unquote(rest)
      return (x) => {
        const c = compare(norm(x), v)
        return op === "<" ? c < 0 : op === ">" ? c > 0 : op === "<=" ? c <= 0 : c >= 0
      }
    }
    case "like":
    case "not like": {
      const re = likeRegex(unquote(rest))
      return op === "like" ? (x) => re.test(norm(x)) : (x) => !re.test(norm(x))
    }
    case "in":
    case "not in": {
      const vs = new Set(quotedList(rest))
      return op === "in" ? (x) => vs.has(norm(x)) : (x) => !vs.has(norm(x))
    }
    case "between": {
      const [lo, hi] = quotedList(rest)
      if (lo === undefined || hi === undefined) throw new GenQueryError(-816000, `bad between: ${text}`)
      return (x) => compare(norm(x), lo) >= 0 && compare(norm(x), hi) <= 0
    }
    default:
      throw new GenQueryError(-816000, `bad condition: ${text}`)
  }
}

const AGGREGATES: Record<number, "min" | "max" | "sum" | "avg" | "count"> = {
  2: "min",
  3: "max",
  4: "sum",
  5: "avg",
  6: "count"
}

/** Evaluates a query over rows; returns the projected result rows in select order. */
export const evaluate = (
  rows: ReadonlyArray<Row>,
  select: ReadonlyArray<readonly [number, number]>,
  where: ReadonlyArray<readonly [number, string]>,
  options: number
): Array<Array<string>> => {
  const upper = (options & GENQUERY.UPPER_CASE_WHERE) !== 0
  const conds = where.map(([col, text]) => [col, compileCondition(text, upper)] as const)
  for (const [col] of select) {
    if (rows.length > 0 && !rows[0]!.has(col)) {
      // Column not provided by this row family: iRODS would fail to link tables.
      throw new GenQueryError(-825000, `column ${col} not available`) // CAT_FAILED_TO_LINK_TABLES
    }
  }
  const matched = rows.filter((r) => conds.every(([col, f]) => f(r.get(col) ?? "")))
  const aggregate = select.some(([, flags]) => AGGREGATES[flags & 0xff] !== undefined)
  if (aggregate) {
    if (matched.length === 0) return []
    return [select.map(([col, flags]) => {
      const values = matched.map((r) => r.get(col) ?? "")
      switch (AGGREGATES[flags & 0xff]) {
        case "count":
          return String(values.length)
        case "min":
          return [...values].sort(compare)[0]!
        case "max":
          return [...values].sort(compare).at(-1)!
        case "sum":
          return String(values.reduce((a, v) => a + Number(v), 0))
        case "avg":
          return String(values.reduce((a, v) => a + Number(v), 0) / values.length)
        default:
          return values[0]!
      }
    })]
  }
  let projected = matched.map((r) => select.map(([col]) => r.get(col) ?? ""))
  if ((options & GENQUERY.NO_DISTINCT) === 0) {
    const seen = new Set<string>()
    projected = projected.filter((r) => {
      const key = JSON.stringify(r)
      if (seen.has(key)) return false
      seen.add(key)
      return true
    })
  }
  const orderCols = select
    .map(([, flags], i) => [i, flags] as const)
    .filter(([, flags]) => (flags & (GENQUERY.ORDER_BY | GENQUERY.ORDER_BY_DESC)) !== 0)
  const keys = orderCols.length > 0 ? orderCols : select.map(([, flags], i) => [i, flags] as const)
  projected.sort((a, b) => {
    for (const [i, flags] of keys) {
      const c = compare(a[i]!, b[i]!)
      if (c !== 0) return (flags & GENQUERY.ORDER_BY_DESC) !== 0 ? -c : c
    }
    return 0
  })
  return projected
}
