/**
 * The current-state index, `mesa_current_avus`: the latest change of every AVU triple, so current reads and the
 * expansion of a batch need not read Parquet. Owns its rows, its upsert, the reads of it, and the mark that says how
 * far it reaches while a bulk ingest has left it behind (`applyIndex` catches it up).
 */
import type { SqlClient } from "@effect/sql"
import { Effect } from "effect"
import type { Avu, ChangeRow, Project } from "../core/domain.js"
import type { Conn } from "./connection.js"
import type { CurrentRow, Failure, IndexView } from "./types.js"

/**
 * `ducklake_metadata` key (scope NULL) present only while the current-state index lags: the last snapshot whose
 * rows it holds. Every snapshot after it is a deferred bulk-ingest snapshot (other writers catch up first).
 */
export const INDEX_THROUGH_KEY = "mesa_index_through"

/** The mark as a scalar subquery: the last indexed snapshot while the index lags, else NULL. */
export const indexMark = (sql: SqlClient.SqlClient, schema: string) =>
  sql`(SELECT value FROM ${sql(schema)}.ducklake_metadata WHERE key = ${INDEX_THROUGH_KEY} AND scope IS NULL)`

/** A `mesa_current_avus` row as a `CurrentRow`. */
const currentRowOf = (r: any): CurrentRow => ({
  tsMs: new Date(r.ts).getTime(),
  snapshotId: Number(r.snapshot_id),
  changeSeq: r.change_seq,
  irodsPath: r.irods_path,
  attribute: r.attribute,
  value: r.value,
  unit: r.unit,
  op: r.op,
  targetType: r.target_type,
  objectId: r.oid === null || r.oid === undefined ? null : Number(r.oid)
})

/** A `mesa_current_avus` row for a change (the latest of its triple). */
export const currentAvuRow = (r: ChangeRow) => ({
  irods_path: r.irodsPath,
  attribute: r.attribute,
  value: r.value,
  unit: r.unit,
  op: r.op,
  ts: r.ts,
  snapshot_id: r.snapshotId,
  change_seq: r.changeSeq,
  actor: r.actor,
  source: r.source,
  via_ticket: r.viaTicket,
  rule_invocation: r.ruleInvocation,
  target_type: r.targetType,
  object_id: r.objectId
})

/**
 * A Map key for an AVU triple. A path never holds NUL, so parts joined by NUL are unambiguous unless the attribute,
 * value or unit holds one (then the key is JSON, which cannot collide with a joined key: it starts with `[`).
 */
export const tripleKey = (path: string, attribute: string, value: string, unit: string) =>
  attribute.includes("\u0000") || value.includes("\u0000") || unit.includes("\u0000")
    ? JSON.stringify([path, attribute, value, unit])
    : path + "\u0000" + attribute + "\u0000" + value + "\u0000" + unit

/** A change's place in its triple's order: valid time (a Date, or ms), snapshot, position. */
export interface ChangeOrder {
  readonly ts: Date | number
  readonly snapshotId: number
  readonly changeSeq: number
}

/**
 * Whether change `a` comes after `b` in a triple's order: valid time, then snapshot, then position. The index keeps
 * each triple's latest change by it (the upserts' DISTINCT ON and WHERE use the same order in SQL).
 */
export const laterChange = (a: ChangeOrder, b: ChangeOrder): boolean => {
  const at = +a.ts
  const bt = +b.ts
  return at !== bt ? at > bt : a.snapshotId !== b.snapshotId ? a.snapshotId > b.snapshotId : a.changeSeq > b.changeSeq
}

/**
 * One row per AVU triple (the latest by valid time, snapshot, position): one upsert may touch a key only once. In the
 * order of each triple's first row. Only rows whose path repeats can repeat a triple: a key is built for those alone
 * (a bulk ingest's snapshot repeats few paths, and a key per row was 10,000 strings of garbage per snapshot).
 */
export const latestPerTriple = (rows: ReadonlyArray<ChangeRow>): Array<ChangeRow> => {
  const once = new Map<string, boolean>()
  let repeats = false
  for (const r of rows) {
    if (once.has(r.irodsPath)) {
      once.set(r.irodsPath, false)
      repeats = true
    } else once.set(r.irodsPath, true)
  }
  if (!repeats) return rows as Array<ChangeRow>
  // Triple key → its first row; first row → the latest row of its triple.
  const first = new Map<string, ChangeRow>()
  const latest = new Map<ChangeRow, ChangeRow>()
  let dropped = 0
  for (const r of rows) {
    if (once.get(r.irodsPath)) continue
    const key = tripleKey(r.irodsPath, r.attribute, r.value, r.unit)
    const f = first.get(key)
    if (f === undefined) {
      first.set(key, r)
      latest.set(r, r)
    } else {
      dropped++
      if (laterChange(r, latest.get(f)!)) latest.set(f, r)
    }
  }
  // No triple repeated: the rows as they are.
  if (dropped === 0) return rows as Array<ChangeRow>
  const out: Array<ChangeRow> = []
  for (const r of rows) {
    if (once.get(r.irodsPath)) out.push(r)
    else {
      const l = latest.get(r)
      if (l !== undefined) out.push(l)
    }
  }
  return out
}

/**
 * Upsert of current-state rows (at most one per triple): keeps the latest by valid time, snapshot, position.
 * The rows travel as one array per column (`unnest`), so a batch of any size is one statement with 14
 * parameters: a multi-row VALUES list costs a parameter per field and tops out at 65,535 of them.
 */
export const upsertCurrentSql = (sql: SqlClient.SqlClient, schema: string, rows: ReadonlyArray<ChangeRow>) =>
  sql`
    INSERT INTO ${sql(schema)}.mesa_current_avus AS c (irods_path, attribute, value, unit, op, ts, snapshot_id,
      change_seq, actor, source, via_ticket, rule_invocation, target_type, object_id)
    SELECT * FROM unnest(${rows.map((r) => r.irodsPath)}::text[], ${rows.map((r) => r.attribute)}::text[],
      ${rows.map((r) => r.value)}::text[], ${rows.map((r) => r.unit)}::text[], ${rows.map((r) => r.op)}::text[],
      ${rows.map((r) => r.ts.toISOString())}::timestamptz[], ${rows.map((r) => r.snapshotId)}::int8[],
      ${rows.map((r) => r.changeSeq)}::int4[], ${rows.map((r) => r.actor)}::text[], ${rows.map((r) => r.source)}::text[],
      ${rows.map((r) => r.viaTicket)}::text[], ${rows.map((r) => r.ruleInvocation)}::text[],
      ${rows.map((r) => r.targetType)}::text[], ${rows.map((r) => r.objectId)}::int8[])
    ON CONFLICT (irods_path, attribute, value, unit) DO UPDATE SET
      op = EXCLUDED.op, ts = EXCLUDED.ts, snapshot_id = EXCLUDED.snapshot_id, change_seq = EXCLUDED.change_seq,
      actor = EXCLUDED.actor, source = EXCLUDED.source, via_ticket = EXCLUDED.via_ticket,
      rule_invocation = EXCLUDED.rule_invocation, target_type = EXCLUDED.target_type, object_id = EXCLUDED.object_id
    WHERE (EXCLUDED.ts, EXCLUDED.snapshot_id, EXCLUDED.change_seq) > (c.ts, c.snapshot_id, c.change_seq)`

/** Current-state rows (latest change per triple, adds and deletes) of the given paths. */
export const currentRows = (
  conn: Conn,
  project: Project,
  paths: ReadonlyArray<string>
): Effect.Effect<ReadonlyArray<CurrentRow>, Failure> =>
  paths.length === 0 ? Effect.succeed([]) : conn.withSql((sql) =>
    Effect.map(
      sql<any>`SELECT irods_path, attribute, value, unit, op, target_type, object_id::text AS oid,
                      ts, snapshot_id::text AS snapshot_id, change_seq
               FROM ${sql(project.metadataSchema)}.mesa_current_avus WHERE irods_path = ANY(${paths as Array<string>})`,
      (rows) => rows.map(currentRowOf)
    ), "currentRows")

/**
 * Current-state rows of the given (path, attribute) pairs, all a batch of changes needs to be expanded, and the view
 * they were read in (the latest snapshot and the index's mark, in the same statement: see `IndexView`).
 */
export const currentRowsOf = (
  conn: Conn,
  project: Project,
  keys: ReadonlyArray<readonly [path: string, attribute: string]>
): Effect.Effect<{ readonly view: IndexView | undefined; readonly rows: ReadonlyArray<CurrentRow> }, Failure> =>
  keys.length === 0 ? Effect.succeed({ view: undefined, rows: [] }) : conn.withSql((sql) =>
    Effect.map(
      sql<any>`SELECT m.latest, m.through, c.*
               FROM (SELECT (SELECT max(snapshot_id)::text FROM ${sql(project.metadataSchema)}.ducklake_snapshot) AS latest,
                            ${indexMark(sql, project.metadataSchema)} AS through) m
               LEFT JOIN (
                 SELECT c.irods_path, c.attribute, c.value, c.unit, c.op, c.target_type, c.object_id::text AS oid,
                        c.ts, c.snapshot_id::text AS snapshot_id, c.change_seq
                 FROM unnest(${keys.map((k) => k[0])}::text[], ${keys.map((k) => k[1])}::text[]) AS k(p, a)
                 JOIN ${sql(project.metadataSchema)}.mesa_current_avus c
                   ON c.irods_path = k.p COLLATE "C" AND c.attribute = k.a COLLATE "C"
               ) c ON true`,
      (rows) => ({
        view: {
          latest: Number(rows[0]?.latest ?? -1),
          through: rows[0]?.through === null || rows[0]?.through === undefined ? null : Number(rows[0].through)
        },
        rows: rows.filter((r) => r.irods_path !== null).map(currentRowOf)
      })
    ), "currentRowsOf")

/**
 * Current-state rows of the given (path, attribute) pairs and the index's mark, read in one statement (so one view
 * of the table): `through` is the last snapshot whose rows the index is known to hold, null when it holds every
 * committed snapshot. A bulk ingest expands its next snapshot against these rows plus its own rows after `through`.
 */
export const indexedRowsOf = (
  conn: Conn,
  project: Project,
  keys: ReadonlyArray<readonly [path: string, attribute: string]>
): Effect.Effect<{ readonly through: number | null; readonly rows: ReadonlyArray<CurrentRow> }, Failure> =>
  conn.withSql((sql) =>
    Effect.map(
      sql<any>`SELECT m.through, c.irods_path, c.attribute, c.value, c.unit, c.op, c.target_type, c.oid, c.ts,
                      c.snapshot_id, c.change_seq
               FROM (SELECT ${indexMark(sql, project.metadataSchema)} AS through) m
               LEFT JOIN (
                 SELECT c.*
                 FROM unnest(${keys.map((k) => k[0])}::text[], ${keys.map((k) => k[1])}::text[]) AS k(p, a)
                 -- One index lookup per pair (OFFSET 0 keeps the planner from turning this into a join): past about a
                 -- thousand pairs it otherwise hashes them and scans the whole index table (a bulk ingest's snapshots
                 -- of 20,000 changes: 250 ms a read at 1M rows in the index, 8 ms with the lookups).
                 CROSS JOIN LATERAL (
                   SELECT c.irods_path, c.attribute, c.value, c.unit, c.op, c.target_type, c.object_id::text AS oid,
                          c.ts, c.snapshot_id::text AS snapshot_id, c.change_seq
                   FROM ${sql(project.metadataSchema)}.mesa_current_avus c
                   WHERE c.irods_path = k.p COLLATE "C" AND c.attribute = k.a COLLATE "C"
                   OFFSET 0
                 ) c
               ) c ON true`,
      (rows) => ({
        through: rows[0]?.through === null || rows[0]?.through === undefined ? null : Number(rows[0].through),
        rows: rows.filter((r) => r.irods_path !== null).map(currentRowOf)
      })
    ), "indexedRowsOf")

/** Current-state rows of a path and everything below it (for collection moves). */
export const currentRowsUnder = (conn: Conn, project: Project, path: string) =>
  conn.withSql((sql) =>
    Effect.map(
      sql<any>`SELECT irods_path, attribute, value, unit, op, target_type, object_id::text AS oid,
                      ts, snapshot_id::text AS snapshot_id, change_seq
               FROM ${sql(project.metadataSchema)}.mesa_current_avus
               WHERE irods_path = ${path} OR starts_with(irods_path, ${path + "/"})
               ORDER BY irods_path, attribute, value, unit`,
      (rows) => rows.map(currentRowOf)
    ), "currentRowsUnder")

/** A path's current AVUs from the index; `behind` when the index lags the commits (then `avus` is not the answer). */
export const currentAvus = (
  conn: Conn,
  project: Project,
  path: string
): Effect.Effect<CurrentAvus, Failure> =>
  conn.withSql((sql) =>
    Effect.map(
      // One round trip: the index's mark, and the path's rows: its AVUs, or while the index lags every row it holds
      // of the path (deletes too, each with its order), to be combined with the changes after the mark.
      sql<any>`SELECT l.through, c.attribute, c.value, c.unit, c.op, c.actor, c.ts, c.snapshot_id::text AS snapshot_id,
                      c.change_seq, c.source, c.via_ticket, c.rule_invocation
               FROM (SELECT ${indexMark(sql, project.metadataSchema)} AS through) l
               LEFT JOIN ${sql(project.metadataSchema)}.mesa_current_avus c
                 ON c.irods_path = ${path} AND (l.through IS NOT NULL OR c.op = 'add')
               ORDER BY c.attribute, c.value, c.unit`,
      (rows) => {
        const through = rows[0]?.through === null || rows[0]?.through === undefined ? null : Number(rows[0].through)
        const held = rows.filter((r) => r.attribute !== null).map((r) => ({
          attribute: r.attribute as string,
          value: r.value as string,
          unit: r.unit as string,
          actor: r.actor as string,
          ts: new Date(r.ts),
          snapshotId: Number(r.snapshot_id),
          source: r.source as string,
          viaTicket: r.via_ticket as string | null,
          ruleInvocation: r.rule_invocation as string | null,
          op: r.op as "add" | "delete",
          changeSeq: r.change_seq as number
        }))
        return through === null
          ? { behind: false as const, avus: held.map(({ changeSeq: _s, op: _o, ...avu }) => avu) }
          : { behind: true as const, through, indexed: held }
      }
    ), "currentAvus")

/** A path's AVUs from the index, or, while it lags, what it holds of the path through its mark. */
export type CurrentAvus =
  | { readonly behind: false; readonly avus: ReadonlyArray<Avu> }
  | {
    readonly behind: true
    /** The last snapshot the index holds. */
    readonly through: number
    /** The latest change of each triple of the path through `through` (deletes too), with its order. */
    readonly indexed: ReadonlyArray<Avu & { readonly op: "add" | "delete"; readonly changeSeq: number }>
  }

/** The last snapshot the index covers when it is behind the committed snapshots, else null. */
export const indexThrough = (conn: Conn, project: Project) =>
  conn.withSql((sql) =>
    Effect.map(
      sql<any>`SELECT ${indexMark(sql, project.metadataSchema)} AS value`,
      (rows) => (rows[0].value === null ? null : Number(rows[0].value))
    ), "indexThrough")

/** True when the index holds no rows (a project that has recorded nothing, or only deferred). */
export const indexEmpty = (conn: Conn, project: Project) =>
  conn.withSql((sql) =>
    Effect.map(
      sql<any>`SELECT NOT EXISTS (SELECT 1 FROM ${sql(project.metadataSchema)}.mesa_current_avus) AS empty`,
      (rows) => rows[0].empty === true
    ), "indexEmpty")
