/**
 * GenQuery (API 702) on one borrowed connection: condition helpers (`eq`, `like`, `in (...)`) and `runGenQuery`,
 * which pages with continueInx to the end, or stops at a limit and closes the open statement on the server.
 */
import { Effect, Option } from "effect"
import { API, GENQUERY, type GenQueryInput, genQueryInp, readGenQueryOut } from "./Api.js"
import type { GenQuery } from "./ClientTypes.js"
import type { IrodsConnection } from "./Connection.js"
import type { IrodsError } from "./Errors.js"

/** `= 'v'` condition text. */
export const eq = (value: string): string => `= '${value}'`
/** `like 'p'` condition text. */
export const like = (pattern: string): string => `like '${pattern}'`

/** `in ('a','b')` condition text. */
export const inList = (values: ReadonlyArray<string>): string => `in (${values.map((v) => `'${v}'`).join(",")})`

const isNoRows = (e: IrodsError) => e.is("CAT_NO_ROWS_FOUND")

/** Runs a paged GenQuery on one connection. */
export const runGenQuery = (
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
