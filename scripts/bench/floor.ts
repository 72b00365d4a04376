/**
 * The physical floor of one recorded write, measured in the benchmark's own run so the write path can be judged as
 * a ratio of it: one bare INSERT + COMMIT on the catalog's PostgreSQL (same server, same settings, a pool of its
 * own), one 10-row Parquet COPY by an in-process DuckDB to the same disk, and the storage copy into the zone
 * directory with its SHA-256 read back (what the mounted adapter's `put` + checksum does). Nothing else: no lock, no
 * write-ahead row, no statistics, no index.
 */
import { DuckDBInstance } from "@duckdb/node-api"
import { createHash } from "node:crypto"
import * as fs from "node:fs/promises"
import * as nodePath from "node:path"
import pg from "pg"

export interface Floor {
  /** One floor write; returns its duration in ms. */
  readonly once: () => Promise<number>
  readonly close: () => Promise<void>
}

export const makeFloor = async (dsn: string, dir: string): Promise<Floor> => {
  await fs.mkdir(nodePath.join(dir, "local"), { recursive: true })
  await fs.mkdir(nodePath.join(dir, "zone"), { recursive: true })
  const pool = new pg.Pool({ connectionString: dsn, max: 2 })
  await pool.query(`CREATE TABLE IF NOT EXISTS bench_floor (id bigserial PRIMARY KEY, note text, at timestamptz)`)
  const duck = await DuckDBInstance.create(":memory:", { threads: "1" })
  const con = await duck.connect()
  let n = 0
  const once = async () => {
    const t = performance.now()
    const i = n++
    await pool.query(`INSERT INTO bench_floor (note, at) VALUES ($1, now())`, [`floor ${i}`])
    const local = nodePath.join(dir, "local", `f${i}.parquet`)
    await con.run(
      `COPY (SELECT i AS change_seq, '/zone/p/o' || i AS irods_path, 'attr' AS attribute, 'v' || i AS value,
              '' AS unit, 'add' AS op, now() AS ts FROM range(10) t(i))
       TO '${local}' (FORMAT parquet, COMPRESSION zstd)`
    )
    const remote = nodePath.join(dir, "zone", `f${i}.parquet`)
    await fs.copyFile(local, remote)
    createHash("sha256").update(await fs.readFile(remote)).digest("base64")
    return performance.now() - t
  }
  return {
    once,
    close: async () => {
      con.closeSync()
      duck.closeSync()
      await pool.end()
    }
  }
}
