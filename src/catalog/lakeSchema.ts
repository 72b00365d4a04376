/**
 * Whether a project's schema is a lake we may write: a DuckLake catalog of the version we write, with our layout.
 * A lake of layout 1 is upgraded in place, once (the hash chain added and filled from the history it holds).
 */
import type { SqlClient } from "@effect/sql"
import { Effect } from "effect"
import { CatalogSchemaMismatch } from "../core/errors.js"
import { GENESIS_HASH, isoMillis } from "./chain.js"
import { chainRow } from "./chainTable.js"
import {
  CHAIN_FILE_INDEX,
  chainFileIndexStatement,
  chainTableStatements,
  currentFillfactorStatement,
  DUCKLAKE_VERSION,
  ident,
  MESA_LAYOUT_VERSION
} from "./ducklakeSchema.js"

/** Checks a project schema is a DuckLake catalog of ours, of a version we write. */
export const checkLakeSchema = (sql: SqlClient.SqlClient, schema: string) =>
  Effect.gen(function*() {
    const [t] = yield* sql<any>`SELECT to_regclass(${`"${schema}".ducklake_metadata`})::text AS t`
    if (t?.t === null || t?.t === undefined) {
      return yield* new CatalogSchemaMismatch({ schema, found: "no ducklake_metadata table", expected: "a DuckLake catalog" })
    }
    const rows = yield* sql<any>`SELECT key, value FROM ${sql(schema)}.ducklake_metadata WHERE scope IS NULL`
    const meta = new Map(rows.map((r) => [r.key as string, r.value as string]))
    if (meta.get("version") !== DUCKLAKE_VERSION) {
      return yield* new CatalogSchemaMismatch({
        schema,
        found: `DuckLake ${meta.get("version") ?? "?"}`,
        expected: `DuckLake ${DUCKLAKE_VERSION}`
      })
    }
    if (meta.get("mesa_layout_version") === "1") {
      yield* upgradeToChain(sql, schema, meta.get("mesa_project_id") ?? "")
      return
    }
    if (meta.get("mesa_layout_version") !== MESA_LAYOUT_VERSION) {
      return yield* new CatalogSchemaMismatch({
        schema,
        found: meta.has("mesa_layout_version") ? `layout ${meta.get("mesa_layout_version")}` : "not a mesa-ducklake lake",
        expected: `mesa-ducklake layout ${MESA_LAYOUT_VERSION}`
      })
    }
    yield* ensureTuning(sql, schema)
  })

/**
 * A lake of layout 2 made before the chain had its file index, or before the current-state index had a fill
 * factor (`CURRENT_FILLFACTOR`), gets them here, once: one read finds both already there (a fill factor someone set
 * is kept). Neither changes an answer, so the layout stays 2 and older clients keep working on the lake. Made under
 * the lock every commit takes, so two clients never do it at once. A role that may not (a read-only login), or a
 * lock not had within 2 s, goes on without (the next client tries again): reads on a long chain and bulk ingests are
 * then slower, never wrong.
 */
const ensureTuning = (sql: SqlClient.SqlClient, schema: string) =>
  Effect.gen(function*() {
    const s = ident(schema)
    const [found] = yield* sql<any>`
      SELECT to_regclass(${`${s}.${CHAIN_FILE_INDEX}`})::text AS chain_index,
             (SELECT COALESCE(EXISTS (SELECT 1 FROM unnest(reloptions) o WHERE o LIKE 'fillfactor=%'), false)
              FROM pg_class WHERE oid = to_regclass(${`${s}.mesa_current_avus`})) AS filled`
    const missing = [
      ...(found?.chain_index === null || found?.chain_index === undefined ? [chainFileIndexStatement(s)] : []),
      // null: no such table (nothing to tune); a fill factor someone chose is left as it is.
      ...(found?.filled === false ? [currentFillfactorStatement(s)] : [])
    ]
    if (missing.length === 0) return
    yield* sql.withTransaction(Effect.gen(function*() {
      // The commit lock is held while the ALTER waits for its own lock (which a VACUUM of the table holds): a short
      // bound, so commits to the lake are never held up long; the next client tries again.
      yield* sql`SET LOCAL lock_timeout = '2s'`
      yield* sql`LOCK TABLE ${sql(schema)}.ducklake_snapshot IN SHARE ROW EXCLUSIVE MODE`
      for (const ddl of missing) yield* sql.unsafe(ddl)
    })).pipe(
      Effect.catchIf(
        // insufficient_privilege (no CREATE on the schema, not the table's owner), lock_not_available (the bound
        // above), read_only_sql_transaction (a standby, or a read-only session).
        (e) => ["42501", "55P03", "25006"].includes(String((e.cause as { code?: unknown } | undefined)?.code)),
        (e) => Effect.logWarning(`mesa-ducklake: cannot tune the catalog tables of ${schema} now: ${String(e)}`)
      )
    )
  })

/**
 * Layout 1 → 2: adds the hash chain and fills it from the history as the catalog holds it now (so it vouches for
 * nothing that happened before the upgrade). Data files already replaced by compaction have no size in the catalog
 * any more (recorded as -1), and compacted files of layout 1 have no checksum in it (recorded as ""): `verifyProject`
 * reports those records as unverifiable rather than broken. Runs once, under the lock every commit takes.
 */
const upgradeToChain = (sql: SqlClient.SqlClient, schema: string, projectId: string) =>
  sql.withTransaction(Effect.gen(function*() {
    const s = sql(schema)
    yield* sql`LOCK TABLE ${s}.ducklake_snapshot IN SHARE ROW EXCLUSIVE MODE`
    const [layout] = yield* sql<any>`SELECT value FROM ${s}.ducklake_metadata WHERE key = 'mesa_layout_version' AND scope IS NULL`
    if (layout?.value !== "1") return
    for (const ddl of chainTableStatements(ident(schema))) yield* sql.unsafe(ddl)
    const rows = yield* sql<any>`
      SELECT 'data' AS kind, m.snapshot_id::text AS id, s.snapshot_time, m.data_file_id::text AS file_id, m.file_path,
             m.checksum, COALESCE(d.file_size_bytes, -1)::text AS size, m.change_count::text AS n, m.actor, m.note,
             m.idempotency_key, m.content_hash, m.min_ts, m.max_ts, '' AS sources
      FROM ${s}.mesa_snapshot m JOIN ${s}.ducklake_snapshot s ON s.snapshot_id = m.snapshot_id
      LEFT JOIN ${s}.ducklake_data_file d ON d.data_file_id = m.data_file_id
      UNION ALL
      SELECT 'compaction', s.snapshot_id::text, s.snapshot_time, d.data_file_id::text, d.path, '',
             d.file_size_bytes::text, d.record_count::text, COALESCE(c.author, ''), NULL, NULL, NULL, NULL, NULL, ''
      FROM ${s}.ducklake_data_file d
      -- A compaction's snapshot is the one that handed out the merged file's id.
      JOIN ${s}.ducklake_snapshot s ON s.next_file_id = d.data_file_id + 1
      JOIN ${s}.ducklake_snapshot_changes c ON c.snapshot_id = s.snapshot_id AND c.changes_made LIKE 'merge_adjacent:%'
      WHERE d.partial_max IS NOT NULL AND d.end_snapshot IS NULL
        AND NOT EXISTS (SELECT 1 FROM ${s}.mesa_snapshot m WHERE m.data_file_id = d.data_file_id)
      ORDER BY 2`
    let prev = GENESIS_HASH
    const out: Array<ReturnType<typeof chainRow>> = []
    for (const r of rows) {
      const row = chainRow({
        projectId,
        snapshotId: Number(r.id),
        kind: r.kind,
        snapshotTime: isoMillis(new Date(r.snapshot_time)),
        fileName: r.file_path,
        checksum: r.checksum,
        fileSizeBytes: Number(r.size),
        recordCount: Number(r.n),
        actor: r.actor,
        note: r.note,
        idempotencyKey: r.idempotency_key,
        contentHash: r.content_hash,
        minTs: r.min_ts === null ? null : isoMillis(new Date(r.min_ts)),
        maxTs: r.max_ts === null ? null : isoMillis(new Date(r.max_ts)),
        sources: [],
        prevHash: prev
      }, Number(r.file_id))
      out.push(row)
      prev = row.record_hash
    }
    for (let i = 0; i < out.length; i += 1000) yield* sql`INSERT INTO ${s}.mesa_chain ${sql.insert(out.slice(i, i + 1000))}`
    yield* sql`UPDATE ${s}.ducklake_metadata SET value = ${MESA_LAYOUT_VERSION} WHERE key = 'mesa_layout_version' AND scope IS NULL`
  }))
