/**
 * `applyIndex`, the bulk path into the current-state index: change rows staged with COPY into a temporary table,
 * then upserted by one INSERT ... SELECT ... ON CONFLICT, and the mark moved to `through` (or removed when `through`
 * is the latest data snapshot), in one transaction. The mark is only ever updated or deleted here, never created
 * (only a deferred commit creates it).
 *
 * A bulk ingest applies its snapshots this way outside the writer lock, so an apply may run beside a commit or
 * another apply. Each takes the lock the commit takes (SHARE ROW EXCLUSIVE on `ducklake_snapshot`) before it touches
 * the index: commits and applies then follow one another, the mark statement sees every commit before it, and two
 * of them never wait on each other's rows. Such an apply keeps the mark (`keepMark`, at `through` even when that is
 * the latest snapshot): a writer reads the index and the mark in separate statements under the writer lock, and
 * trusts the index without catching up once the mark is gone, so only a holder of that lock may remove it.
 *
 * COPY needs a raw `pg` client: one connection of its own, made from the catalog's DSN, opened on first use and
 * dropped after any failure or interruption (the next apply opens another). Its failures are mapped like every
 * catalog statement's (`Conn.withSql`: `CatalogUnavailable` or `CatalogError`).
 *
 * Measured on this machine (2 busy cores, 10,000-row batches into a fresh index): an upsert from unnested parameter
 * arrays 30–40k rows/s, COPY into the staging table and INSERT ... SELECT 67k rows/s; a 200k-change ingest spent
 * 15% less PostgreSQL CPU and 10% less of its own, peak RSS 270 MB against 320. The staging needs no lock; the
 * commit's table lock is taken only for the upsert and the mark.
 */
import { SqlError } from "@effect/sql/SqlError"
import { Config, Duration, Effect, Either, Redacted } from "effect"
import pg from "pg"
import { from as copyFrom } from "pg-copy-streams"
import { Readable } from "node:stream"
import { pipeline } from "node:stream/promises"
import type { ChangeRow, Project } from "../core/domain.js"
import { CatalogError } from "../core/errors.js"
import type { Conn } from "./connection.js"
import { DEFAULT_CONNECT_TIMEOUT_MS, DEFAULT_STATEMENT_TIMEOUT_MS } from "./connection.js"
import { INDEX_THROUGH_KEY, latestPerTriple } from "./currentState.js"
import { parseDsn } from "./dsn.js"
import type { Failure } from "./types.js"

/** The index's columns, in the order the staged rows carry them. */
const COLUMNS = "irods_path, attribute, value, unit, op, ts, snapshot_id, change_seq, actor, source, via_ticket, " +
  "rule_invocation, target_type, object_id"

/** The staging table: one per session, emptied by each commit. */
const STAGE = `CREATE TEMP TABLE IF NOT EXISTS mesa_stage_avus (irods_path text, attribute text, value text, unit text,
  op text, ts timestamptz, snapshot_id int8, change_seq int4, actor text, source text, via_ticket text,
  rule_invocation text, target_type text, object_id int8) ON COMMIT DELETE ROWS`

const ident = (name: string) => `"${name.replace(/"/g, "\"\"")}"`

const special = /[\\\n\r\t]/
const escape = (v: string) =>
  v.replace(/[\\\n\r\t]/g, (c) => (c === "\\" ? "\\\\" : c === "\n" ? "\\n" : c === "\r" ? "\\r" : "\\t"))
/** A text field in COPY's text format. */
const text = (v: string | null): string => (v === null ? "\\N" : special.test(v) ? escape(v) : v)

/**
 * The rows as COPY text, in pieces of 2,000 lines (the stream's chunks). A snapshot's rows mostly share one valid
 * time (the snapshot's clock), so its ISO form is made once per run of equal times.
 */
function* copyText(rows: ReadonlyArray<ChangeRow>) {
  let lastMs = Number.NaN
  let lastIso = ""
  for (let i = 0; i < rows.length; i += 2_000) {
    const end = Math.min(rows.length, i + 2_000)
    const lines = new Array<string>(end - i)
    for (let j = i; j < end; j++) {
      const r = rows[j]!
      const ms = r.ts.getTime()
      if (ms !== lastMs) {
        lastMs = ms
        lastIso = r.ts.toISOString()
      }
      lines[j - i] = text(r.irodsPath) + "\t" + text(r.attribute) + "\t" + text(r.value) + "\t" + text(r.unit) + "\t" +
        r.op + "\t" + lastIso + "\t" + r.snapshotId + "\t" + r.changeSeq + "\t" + text(r.actor) + "\t" +
        text(r.source) + "\t" + text(r.viaTicket) + "\t" + text(r.ruleInvocation) + "\t" + r.targetType + "\t" +
        (r.objectId === null ? "\\N" : r.objectId) + "\n"
    }
    yield lines.join("")
  }
}

export interface IndexCopy {
  /** `applyIndex` through COPY: the rows upserted (latest per triple) and the mark moved, in one transaction. */
  readonly apply: (
    project: Project,
    rows: ReadonlyArray<ChangeRow>,
    through: number,
    keepMark: boolean
  ) => Effect.Effect<void, Failure>
}

/** The COPY connection of a catalog (closed with the current scope). */
export const makeIndexCopy = (
  conn: Conn,
  config: {
    readonly dsn: Redacted.Redacted<string>
    readonly connectTimeout?: Duration.DurationInput
    readonly statementTimeout?: Duration.DurationInput
  }
) =>
  Effect.gen(function*() {
    const ms = (given: Duration.DurationInput | undefined, name: string, fallback: number) =>
      given === undefined
        ? Config.integer(name).pipe(Config.withDefault(fallback))
        : Config.succeed(Math.round(Duration.toMillis(Duration.decode(given))))
    const connectMs = yield* ms(config.connectTimeout, "MESA_DUCKLAKE_CATALOG_CONNECT_TIMEOUT_MS", DEFAULT_CONNECT_TIMEOUT_MS)
    const statementMs = yield* ms(config.statementTimeout, "MESA_DUCKLAKE_CATALOG_STATEMENT_TIMEOUT_MS", DEFAULT_STATEMENT_TIMEOUT_MS)
    const parsed = parseDsn(Redacted.value(config.dsn))
    const url = Either.isRight(parsed) ? parsed.right.url : undefined
    let client: pg.Client | undefined
    /** Drops the connection (a failure or an interruption leaves it in no known state). */
    const drop = () => {
      const c = client
      client = undefined
      if (c !== undefined) void c.end().catch(() => undefined)
    }
    yield* Effect.addFinalizer(() =>
      Effect.promise(() => client?.end().catch(() => undefined) ?? Promise.resolve()).pipe(
        Effect.interruptible,
        Effect.timeoutOption(1000)
      )
    )
    const connect = async () => {
      const c = new pg.Client({
        connectionString: url,
        connectionTimeoutMillis: connectMs,
        statement_timeout: statementMs,
        query_timeout: statementMs,
        application_name: "mesa-ducklake",
        keepAlive: true
      })
      // A lost connection surfaces on the next statement; without a listener it would crash the process.
      c.on("error", () => {
        if (client === c) client = undefined
      })
      await c.connect()
      return c
    }
    const run = async (project: Project, rows: ReadonlyArray<ChangeRow>, through: number, keepMark: boolean) => {
      if (!Number.isSafeInteger(through)) throw new Error(`not a snapshot id: ${through}`)
      const c = client ?? (client = await connect())
      const s = ident(project.metadataSchema)
      // Three round trips: the transaction and its staging table; the COPY; then, as one simple-protocol query (its
      // statements stop at the first error, which leaves the transaction aborted), the lock, the upsert, the mark
      // and the commit, so the lock is held for one round trip only.
      // The index is derived data and its mark moves with it: a crash that loses this transaction loses both.
      await c.query(`BEGIN; SET LOCAL synchronous_commit = off; ${STAGE}`)
      await pipeline(Readable.from(copyText(latestPerTriple(rows))), c.query(copyFrom(`COPY mesa_stage_avus (${COLUMNS}) FROM STDIN`)))
      const mark = `'${INDEX_THROUGH_KEY}'`
      await c.query(`
        LOCK TABLE ${s}.ducklake_snapshot IN SHARE ROW EXCLUSIVE MODE;
        INSERT INTO ${s}.mesa_current_avus AS c (${COLUMNS}) SELECT ${COLUMNS} FROM mesa_stage_avus
        ON CONFLICT (irods_path, attribute, value, unit) DO UPDATE SET
          op = EXCLUDED.op, ts = EXCLUDED.ts, snapshot_id = EXCLUDED.snapshot_id, change_seq = EXCLUDED.change_seq,
          actor = EXCLUDED.actor, source = EXCLUDED.source, via_ticket = EXCLUDED.via_ticket,
          rule_invocation = EXCLUDED.rule_invocation, target_type = EXCLUDED.target_type, object_id = EXCLUDED.object_id
        WHERE (EXCLUDED.ts, EXCLUDED.snapshot_id, EXCLUDED.change_seq) > (c.ts, c.snapshot_id, c.change_seq);
        -- Compaction snapshots carry no rows: the index is complete once it covers the latest data snapshot.
        WITH latest AS (SELECT max(snapshot_id) AS m FROM ${s}.mesa_snapshot),
        done AS (DELETE FROM ${s}.ducklake_metadata
                 WHERE key = ${mark} AND scope IS NULL AND NOT ${keepMark} AND ${through}::int8 >= (SELECT m FROM latest))
        UPDATE ${s}.ducklake_metadata SET value = '${through}'
        WHERE key = ${mark} AND scope IS NULL AND (${keepMark} OR ${through}::int8 < (SELECT m FROM latest));
        COMMIT`)
    }
    // One apply at a time on the connection.
    const one = yield* Effect.makeSemaphore(1)
    const copy: IndexCopy = {
      apply: (project, rows, through, keepMark) =>
        url === undefined
          ? Effect.fail(new CatalogError({ operation: "applyIndex", cause: new Error("invalid DSN") }))
          : one.withPermits(1)(conn.withSql(() =>
            Effect.tryPromise({
              try: () => run(project, rows, through, keepMark),
              catch: (cause) => new SqlError({ cause, message: "Failed to execute statement" })
            }).pipe(
              Effect.tapError(() => Effect.sync(drop)),
              Effect.onInterrupt(() => Effect.sync(drop))
            ), "applyIndex"))
    }
    return copy
  })
