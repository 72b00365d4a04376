/**
 * Shared pieces of the reliability suite: starting writer processes, and reading back what a project's catalog
 * and storage hold so the tests can check the write protocol's invariants.
 */
import { Effect, Logger, Redacted } from "effect"
import { spawn } from "node:child_process"
import { createHash } from "node:crypto"
import * as fs from "node:fs"
import * as nodePath from "node:path"
import { Catalog } from "../../src/catalog/Catalog.js"
import type { Project } from "../../src/core/domain.js"
import type { WriterPlan } from "./writer.js"

export type WriterLine =
  | { readonly t: "ready" }
  | { readonly t: "attempt"; readonly key: string; readonly project: string; readonly start: number }
  | {
    readonly t: "committed"
    readonly key: string
    readonly project: string
    readonly snapshotId: number
    readonly start: number
    readonly end: number
    readonly replayed: boolean
  }
  | { readonly t: "retry"; readonly key: string; readonly project: string; readonly tag: string }
  | { readonly t: "error"; readonly key: string; readonly project: string; readonly tag: string; readonly message: string }
  | { readonly t: "done" }

export interface WriterRun {
  readonly pid: number
  /** /proc/<pid>/cmdline as read right after the start (NUL-separated arguments joined by spaces). */
  readonly cmdline: string
  readonly lines: ReadonlyArray<WriterLine>
  readonly stdout: string
  readonly stderr: string
  readonly code: number | null
  readonly signal: NodeJS.Signals | null
}

export interface WriterEnv {
  readonly bundle: string
  readonly dsn: Redacted.Redacted<string>
  readonly zoneDir: string
  readonly cacheDir: string
}

/** The password of a `postgresql://user:password@host/db` DSN. */
export const passwordOf = (dsn: Redacted.Redacted<string>) => decodeURIComponent(new URL(Redacted.value(dsn)).password)

/**
 * Starts a writer process (the DSN goes in its environment only) and resolves when it exits. `onLine` sees each
 * protocol line as it arrives (the concurrency test uses it to pace a reader).
 */
export const runWriter = (
  env: WriterEnv,
  plan: WriterPlan,
  onLine?: (line: WriterLine) => void,
  extraEnv: Record<string, string> = {}
) =>
  Effect.async<WriterRun>((resume) => {
    const child = spawn(process.execPath, [env.bundle], {
      env: {
        ...process.env,
        ...extraEnv,
        MESA_DUCKLAKE_DSN: Redacted.value(env.dsn),
        RELIABILITY_ZONE_DIR: env.zoneDir,
        RELIABILITY_CACHE_DIR: env.cacheDir,
        RELIABILITY_PLAN: JSON.stringify(plan)
      },
      stdio: ["ignore", "pipe", "pipe"]
    })
    // spawn() returns after exec: the command line is the writer's own.
    let cmdline = ""
    try {
      cmdline = fs.readFileSync(`/proc/${child.pid}/cmdline`, "utf8").split("\0").join(" ")
    } catch {
      cmdline = "<unreadable>"
    }
    let stdout = ""
    let stderr = ""
    let pending = ""
    const lines: Array<WriterLine> = []
    child.stdout.setEncoding("utf8")
    child.stderr.setEncoding("utf8")
    child.stdout.on("data", (chunk: string) => {
      stdout += chunk
      pending += chunk
      let nl: number
      while ((nl = pending.indexOf("\n")) >= 0) {
        const text = pending.slice(0, nl)
        pending = pending.slice(nl + 1)
        if (text.trim() === "") continue
        const line = JSON.parse(text) as WriterLine
        lines.push(line)
        onLine?.(line)
      }
    })
    child.stderr.on("data", (chunk: string) => {
      stderr += chunk
    })
    child.on("close", (code, signal) =>
      resume(Effect.succeed({ pid: child.pid ?? -1, cmdline, lines, stdout, stderr, code, signal })))
    return Effect.sync(() => {
      child.kill("SIGKILL")
    })
  })

export interface CommittedSnapshot {
  readonly snapshotId: number
  readonly time: Date
  readonly note: string | null
  readonly fileName: string
  readonly checksum: string
  readonly changeCount: number
  readonly markerWritten: boolean
  readonly dataFiles: number
}

export interface WalRow {
  readonly snapshotId: number
  readonly state: string
  readonly note: string | null
  readonly fileName: string
  readonly localFile: string
}

/** What the catalog says about a project: its committed snapshots (ours) and its write-ahead rows. */
export const catalogView = (p: Project) =>
  Effect.flatMap(Catalog, (catalog) =>
    catalog.withSql((sql) =>
      Effect.gen(function*() {
        const s = sql(p.metadataSchema)
        const snaps = yield* sql<any>`
          SELECT m.snapshot_id::text AS id, s.snapshot_time, m.note, m.file_path, m.checksum, m.change_count,
                 m.marker_written,
                 (SELECT count(*)::int FROM ${s}.ducklake_data_file f WHERE f.begin_snapshot = m.snapshot_id) AS files
          FROM ${s}.mesa_snapshot m JOIN ${s}.ducklake_snapshot s ON s.snapshot_id = m.snapshot_id
          ORDER BY m.snapshot_id`
        const wal = yield* sql<any>`
          SELECT snapshot_id::text AS id, state, note, file_name, local_file FROM mesa_ducklake.pending_writes
          WHERE project_id = ${p.projectId} ORDER BY snapshot_id`
        const [lake] = yield* sql<any>`SELECT count(*)::int AS n FROM ${s}.ducklake_snapshot`
        const [last] = yield* sql<any>`SELECT last_snapshot_id::text AS id FROM mesa_ducklake.projects WHERE project_id = ${p.projectId}`
        return {
          snapshots: snaps.map((r): CommittedSnapshot => ({
            snapshotId: Number(r.id),
            time: new Date(r.snapshot_time),
            note: r.note,
            fileName: r.file_path,
            checksum: r.checksum,
            changeCount: r.change_count,
            markerWritten: r.marker_written,
            dataFiles: r.files
          })),
          wal: wal.map((r): WalRow => ({
            snapshotId: Number(r.id),
            state: r.state,
            note: r.note,
            fileName: r.file_name,
            localFile: r.local_file
          })),
          /** ducklake_snapshot rows, ours plus the lake's own (0 = created, 1 = table). */
          lakeSnapshots: lake.n as number,
          lastSnapshotId: Number(last.id)
        }
      })
    ))

/** Every file below a directory, relative to it (empty when it does not exist). */
export const filesBelow = (dir: string): Array<string> =>
  fs.existsSync(dir)
    ? (fs.readdirSync(dir, { recursive: true, withFileTypes: true }) as Array<fs.Dirent>)
      .filter((d) => d.isFile())
      .map((d) => nodePath.relative(dir, nodePath.join(d.parentPath ?? (d as any).path, d.name)))
      .sort()
    : []

/** iRODS' `sha2:` form of a file's SHA-256. */
export const sha2Of = (file: string) => `sha2:${createHash("sha256").update(fs.readFileSync(file)).digest("base64")}`

export interface ProjectCheck {
  readonly committedByNote: Map<string, Array<number>>
  readonly duplicates: number
  readonly problems: Array<string>
  readonly view: Effect.Effect.Success<ReturnType<typeof catalogView>>
}

/**
 * The invariants that must hold for a project once recovery has run:
 * - committed snapshot ids are unique, increasing with commit time, one data file each;
 * - every committed snapshot's file is stored, whole (checksum and size), and has its commit marker;
 * - every file in the lake's storage is a committed snapshot's file or marker, or belongs to a write-ahead row
 *   reported as failed; no temporary (`.part-`) file is left;
 * - no write-ahead row is left pending (recovery finished or failed each one);
 * - a batch (note) is committed at most once.
 */
export const checkProject = (p: Project, zoneDir: string, options: { readonly afterRecovery: boolean }) =>
  Effect.gen(function*() {
    const view = yield* catalogView(p)
    const problems: Array<string> = []
    const lakeDir = nodePath.join(zoneDir, p.ducklakePath)
    const committedByNote = new Map<string, Array<number>>()
    let duplicates = 0
    let previous: CommittedSnapshot | undefined
    for (const s of view.snapshots) {
      if (previous !== undefined && !(s.snapshotId > previous.snapshotId && s.time > previous.time)) {
        problems.push(`snapshot ${s.snapshotId} is not after ${previous.snapshotId} in commit time`)
      }
      previous = s
      if (s.dataFiles !== 1) problems.push(`snapshot ${s.snapshotId} has ${s.dataFiles} data files`)
      const ids = committedByNote.get(s.note ?? "") ?? []
      ids.push(s.snapshotId)
      committedByNote.set(s.note ?? "", ids)
      if (ids.length > 1) duplicates++
      const file = nodePath.join(lakeDir, "main/avu_changes", s.fileName)
      if (!fs.existsSync(file)) problems.push(`snapshot ${s.snapshotId}: file ${s.fileName} is missing`)
      else if (sha2Of(file) !== s.checksum) problems.push(`snapshot ${s.snapshotId}: file ${s.fileName} has the wrong checksum`)
      if (options.afterRecovery) {
        const marker = nodePath.join(lakeDir, "_mesa_log", `snapshot_${String(s.snapshotId).padStart(10, "0")}.json`)
        if (!s.markerWritten || !fs.existsSync(marker)) problems.push(`snapshot ${s.snapshotId} has no commit marker`)
      }
    }
    const committedFiles = new Set(view.snapshots.map((s) => `main/avu_changes/${s.fileName}`))
    const markers = new Set(view.snapshots.map((s) => `_mesa_log/snapshot_${String(s.snapshotId).padStart(10, "0")}.json`))
    const reported = new Set(view.wal.filter((w) => w.state === "failed").map((w) => `main/avu_changes/${w.fileName}`))
    for (const f of filesBelow(lakeDir)) {
      if (committedFiles.has(f) || markers.has(f)) continue
      if (reported.has(f)) continue
      // A writer killed inside the mounted adapter's copy of a (background) commit marker leaves its temporary file;
      // the marker itself is written by recovery. Listed in the README under "Not promised".
      if (/^_mesa_log\/snapshot_\d{10}\.json\.part-[0-9a-f]{8}$/.test(f) && markers.has(f.replace(/\.part-[0-9a-f]{8}$/, ""))) {
        continue
      }
      problems.push(`unreported file in storage: ${f}`)
    }
    for (const w of view.wal) {
      if (view.snapshots.some((s) => s.snapshotId === w.snapshotId)) problems.push(`WAL row ${w.snapshotId} of a committed snapshot`)
      if (options.afterRecovery && w.state !== "failed") problems.push(`WAL row ${w.snapshotId} left ${w.state} after recovery`)
    }
    return { committedByNote, duplicates, problems, view } satisfies ProjectCheck
  })

/** A small seeded PRNG (mulberry32), so a failing run can be replayed with the printed seed. */
export const prng = (seed: number) => {
  let a = seed >>> 0
  return (n: number) => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return (((t ^ (t >>> 14)) >>> 0) / 4294967296 * n) | 0
  }
}

/**
 * A logger that keeps every line it is given (message, annotations, spans and cause, rendered as the default
 * logger would), instead of printing it: the tests check that no secret ever reaches a log line.
 */
export const capturingLogger = () => {
  const lines: Array<string> = []
  const logger = Logger.make((options) => {
    lines.push(Logger.logfmtLogger.log(options))
  })
  return { lines, layer: Logger.replace(Logger.defaultLogger, logger) }
}
