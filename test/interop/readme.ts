/**
 * The README's "Query the history with DuckDB" section, as code: the ATTACH an analyst types and three example
 * queries, each with the answer our API gives for the same question. The interop suite runs them through the
 * official extension and compares.
 */
import { Effect } from "effect"
import type { DuckLakeClientService } from "../../src/client/DuckLakeClient.js"

const lit = (s: string) => `'${s.replace(/'/g, "''")}'`

/**
 * The ATTACH for a project, as in the README. `{conninfo}` is the libpq conninfo without the password (libpq takes
 * it from PGPASSWORD or ~/.pgpass); `dataPath` is the project's `.mesa/ducklake/` collection on the mount.
 */
export const attachSql = (o: { readonly metadataSchema: string; readonly dataPath: string }) =>
  `ATTACH 'ducklake:postgres:{conninfo}' AS lake
  (METADATA_SCHEMA ${lit(o.metadataSchema)}, DATA_PATH ${lit(o.dataPath)}, OVERRIDE_DATA_PATH true, READ_ONLY)`

type Client = DuckLakeClientService
type Cell = string | number | null

export interface ReadmeQuery {
  readonly name: string
  readonly sql: string
  /** Our API's answer to the same question, as rows of cells. */
  readonly expected: (client: Client, projectId: string, now: number) => Effect.Effect<Array<Array<Cell>>, unknown>
  /** The extension's rows as cells comparable with `expected`. */
  readonly normalise: (columns: ReadonlyArray<string>, rows: ReadonlyArray<ReadonlyArray<any>>) => Array<Array<Cell>>
}

const iso = (v: unknown) => new Date(Date.parse(String(v))).toISOString()
const cmp = (a: ReadonlyArray<Cell>, b: ReadonlyArray<Cell>) => {
  const x = JSON.stringify(a)
  const y = JSON.stringify(b)
  return x < y ? -1 : x > y ? 1 : 0
}
/** Rows as cells, with the `ts` column as ISO-8601 UTC. */
const cells = (columns: ReadonlyArray<string>, rows: ReadonlyArray<ReadonlyArray<any>>) =>
  rows.map((r) => r.map((v, i) => (columns[i] === "ts" ? iso(v) : v) as Cell))

export const readmeQueries = (
  o: { readonly path: string; readonly attribute: string; readonly date: string }
): Array<ReadmeQuery> => {
  const nextDay = new Date(Date.parse(`${o.date}T00:00:00Z`) + 86_400_000).toISOString().slice(0, 10)
  return [
    {
      name: "who changed this attribute",
      sql: `SELECT ts, op, value, unit, actor, source, snapshot_id
FROM lake.avu_changes
WHERE irods_path = ${lit(o.path)}
  AND attribute = ${lit(o.attribute)}
ORDER BY ts DESC, snapshot_id DESC, change_seq DESC`,
      expected: (client, projectId) =>
        Effect.map(
          client.getHistory(projectId, { irodsPath: o.path, attribute: o.attribute, limit: 1_000_000 }),
          (rows) => rows.map((r) => [r.ts.toISOString(), r.op, r.value, r.unit, r.actor, r.source, r.snapshotId])
        ),
      normalise: cells
    },
    {
      name: "everything changed in the last 7 days",
      sql: `SELECT ts, irods_path, attribute, value, unit, op, actor
FROM lake.avu_changes
WHERE ts >= now() - INTERVAL 7 DAY
ORDER BY ts DESC, snapshot_id DESC, change_seq DESC`,
      expected: (client, projectId, now) =>
        Effect.map(
          client.getHistory(projectId, { from: new Date(now - 7 * 86_400_000), limit: 1_000_000 }),
          (rows) => rows.map((r) => [r.ts.toISOString(), r.irodsPath, r.attribute, r.value, r.unit, r.op, r.actor])
        ),
      normalise: cells
    },
    {
      name: "metadata of a path on a date",
      sql: `SELECT attribute, value, unit, actor, ts
FROM lake.avu_changes
WHERE irods_path = ${lit(o.path)}
  AND ts < TIMESTAMPTZ ${lit(`${nextDay} 00:00:00+00`)}
QUALIFY row_number() OVER (PARTITION BY attribute, value, unit
                           ORDER BY ts DESC, snapshot_id DESC, change_seq DESC) = 1
    AND op = 'add'
ORDER BY attribute, value, unit`,
      expected: (client, projectId) =>
        Effect.map(
          client.getAvusAsOf(projectId, o.path, new Date(Date.parse(`${nextDay}T00:00:00Z`) - 1)),
          (avus) => avus.map((a) => [a.attribute, a.value, a.unit, a.actor, a.ts.toISOString()] as Array<Cell>).sort(cmp)
        ),
      normalise: (columns, rows) => cells(columns, rows).sort(cmp)
    }
  ]
}
