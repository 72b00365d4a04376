/**
 * Several statements in one round trip: each statement is compiled by @effect/sql, its parameters are written into
 * its text as SQL literals, and the texts go to PostgreSQL as one simple-protocol query. PostgreSQL runs the
 * statements of such a query as one implicit transaction: all of them commit together, or an error in any rolls
 * every one back. The commit of a snapshot (commit.ts) takes its table lock and writes everything this way.
 *
 * Owns: `inlineStatement`, `sqlLiteral`, `runAsOne`.
 */
import type { SqlClient, Statement } from "@effect/sql"
import { Effect } from "effect"
import pg from "pg"

/** A value as a SQL literal (the statement's own casts give it its type). */
export const sqlLiteral = (v: unknown): string => {
  if (v === null || v === undefined) return "NULL"
  if (typeof v === "string") {
    // PostgreSQL text cannot hold NUL; a bound parameter would be refused the same way.
    if (v.includes("\u0000")) throw new Error("a text value holds a NUL character")
    return pg.escapeLiteral(v)
  }
  if (typeof v === "number") {
    if (!Number.isFinite(v)) throw new Error(`${v} is not a finite number`)
    return String(v)
  }
  if (typeof v === "bigint") return String(v)
  if (typeof v === "boolean") return v ? "TRUE" : "FALSE"
  if (v instanceof Date) {
    if (Number.isNaN(v.getTime())) throw new Error("an invalid date")
    return `'${v.toISOString()}'`
  }
  if (Array.isArray(v)) return `ARRAY[${v.map(sqlLiteral).join(", ")}]`
  throw new Error(`no SQL literal for a value of type ${typeof v}`)
}

/** A compiled statement's text with its parameters (`$1`, `$2`, …) written in as literals. */
export const inlineStatement = (statement: Statement.Statement<unknown>): string => {
  const [text, params] = statement.compile()
  // One pass: a literal's own text is never scanned again for placeholders.
  return text.replace(/\$(\d+)/g, (whole, n: string) => {
    const i = Number(n) - 1
    if (i < 0 || i >= params.length) throw new Error(`placeholder ${whole} has no parameter`)
    return sqlLiteral(params[i])
  })
}

/**
 * Runs the statements as one query (one round trip, one implicit transaction) and returns the rows of the last.
 * A statement that cannot be written as literals is a defect of the caller, reported as a failed statement.
 */
export const runAsOne = <A extends object>(
  sql: SqlClient.SqlClient,
  statements: ReadonlyArray<Statement.Statement<unknown>>
) =>
  Effect.flatMap(
    Effect.try({ try: () => statements.map(inlineStatement).join(";\n"), catch: (cause) => cause as Error }).pipe(
      Effect.orDie
    ),
    (text) =>
      Effect.map(sql.unsafe<A>(text), (result) => {
        // One statement answers its rows; several answer one array of rows per statement.
        const results = result as unknown as ReadonlyArray<unknown>
        return (statements.length === 1 ? results : results[results.length - 1]) as ReadonlyArray<A>
      })
  )
