/**
 * Helpers of the interop suite: the Python virtual environment, the libpq conninfo the extension needs, and one
 * run of scripts/interop/ducklake_read.py (DuckDB + the official `ducklake` extension, loaded offline).
 */
import { Effect, Redacted } from "effect"
import { execFile, spawn } from "node:child_process"
import * as nodePath from "node:path"
import { promisify } from "node:util"

export const ROOT = nodePath.resolve(import.meta.dirname, "../..")
export const PYTHON = nodePath.join(ROOT, ".venv/bin/python")
const VENV_SCRIPT = nodePath.join(ROOT, "scripts/python-venv.sh")
const REQUIREMENTS = nodePath.join(ROOT, "scripts/interop/requirements.txt")
const READER = nodePath.join(ROOT, "scripts/interop/ducklake_read.py")

/** Creates `.venv` and installs DuckDB and the extension wheels (idempotent; quick when nothing changed). */
export const setupPython = async (): Promise<void> => {
  await promisify(execFile)("bash", [VENV_SCRIPT, REQUIREMENTS], { cwd: ROOT, timeout: 15 * 60_000, maxBuffer: 16 * 1024 * 1024 })
}

const quoteConninfo = (v: string) => (v === "" || /[\s'\\]/.test(v) ? `'${v.replace(/[\\']/g, (c) => `\\${c}`)}'` : v)

/**
 * A `postgresql://user:pass@host:port/db?k=v` URL as a libpq keyword/value conninfo (`host=… port=… dbname=…`),
 * which is what `ATTACH 'ducklake:postgres:<conninfo>'` takes. A conninfo is returned unchanged.
 */
export const toConninfo = (dsn: string): string => {
  if (!/^postgres(ql)?:\/\//i.test(dsn)) return dsn
  const u = new URL(dsn)
  const pairs: Array<readonly [string, string]> = []
  const host = decodeURIComponent(u.hostname).replace(/^\[(.*)\]$/, "$1")
  if (host !== "") pairs.push(["host", host])
  if (u.port !== "") pairs.push(["port", u.port])
  const db = decodeURIComponent(u.pathname.replace(/^\//, ""))
  if (db !== "") pairs.push(["dbname", db])
  if (u.username !== "") pairs.push(["user", decodeURIComponent(u.username)])
  if (u.password !== "") pairs.push(["password", decodeURIComponent(u.password)])
  for (const [k, v] of u.searchParams) pairs.push([k, v])
  return pairs.map(([k, v]) => `${k}=${quoteConninfo(v)}`).join(" ")
}

const CONNINFO_PAIR = /\s*([A-Za-z_]+)\s*=\s*('(?:[^'\\]|\\.)*'|\S+)/g

/** A conninfo without its password, and the password (unquoted). */
export const splitPassword = (conninfo: string): { readonly password?: string; readonly rest: string } => {
  let password: string | undefined
  const rest: Array<string> = []
  for (const m of conninfo.matchAll(CONNINFO_PAIR)) {
    if (m[1] === "password") {
      password = m[2]!.startsWith("'") ? m[2]!.slice(1, -1).replace(/\\(.)/g, "$1") : m[2]!
    } else rest.push(`${m[1]}=${m[2]}`)
  }
  return password === undefined ? { rest: rest.join(" ") } : { password, rest: rest.join(" ") }
}

export interface AsOfRequest {
  readonly path: string
  readonly version?: number
  /** ISO-8601 with offset: `AT (TIMESTAMP => …)`. */
  readonly timestamp?: string
  /** Optional valid-time bound (`ts <= validAt`), ISO-8601 with offset. */
  readonly validAt?: string
}

export interface ReaderRequest {
  readonly metadataSchema: string
  readonly dataPath: string
  readonly asOf?: ReadonlyArray<AsOfRequest>
  readonly queries?: ReadonlyArray<{ readonly name: string; readonly sql: string }>
  /** An ATTACH statement with `{conninfo}` in place of the conninfo (the README's); default: one built by the script. */
  readonly attach?: string
  /**
   * `read` (default); `create-foreign`: make a DuckLake catalog with the extension itself, in `metadataSchema`;
   * `golden`: the extension rewrites the attached history, one INSERT per snapshot, into its own lake.
   */
  readonly mode?: "read" | "create-foreign" | "golden"
  readonly goldenSchema?: string
  readonly goldenDataPath?: string
  /** Give the password to libpq through PGPASSWORD instead of the conninfo (as an analyst would). */
  readonly passwordViaEnv?: boolean
}

export interface ExtRow {
  readonly snapshot_id: number
  readonly change_seq: number
  readonly ts_us: number
  readonly irods_path: string
  readonly target_type: string
  readonly object_id: number | null
  readonly attribute: string
  readonly value: string
  readonly unit: string
  readonly op: string
  readonly actor: string
  readonly source: string
  readonly via_ticket: string | null
  readonly rule_invocation: string | null
  readonly on_behalf_of: string | null
  readonly project_id: string
}

export interface ExtAvu {
  readonly attribute: string
  readonly value: string
  readonly unit: string
  readonly actor: string
  readonly ts_us: number
  readonly snapshot_id: number
  readonly source: string
  readonly via_ticket: string | null
  readonly rule_invocation: string | null
}

export interface ExtSnapshot {
  readonly snapshot_id: number
  readonly time_us: number
  readonly schema_version: number
  readonly changes: Record<string, ReadonlyArray<string>>
  readonly author: string | null
  readonly commit_message: string | null
  readonly commit_extra_info: string | null
}

export interface ReaderResult {
  readonly duckdb: string
  readonly extensions: ReadonlyArray<{ readonly name: string; readonly version: string; readonly path: string }>
  readonly rows: ReadonlyArray<ExtRow>
  readonly snapshots: ReadonlyArray<ExtSnapshot>
  readonly asOf: ReadonlyArray<ReadonlyArray<ExtAvu>>
  readonly queries: Record<string, { readonly columns: ReadonlyArray<string>; readonly rows: ReadonlyArray<ReadonlyArray<any>> }>
  readonly timings: Record<string, number>
}

export class ReaderFailed extends Error {
  readonly _tag = "ReaderFailed"
}

/**
 * Runs the Python reader. The conninfo (it holds the password) goes through the environment, never argv; the
 * request goes through stdin and the answer comes back as JSON on stdout.
 */
export const runReader = (dsn: Redacted.Redacted<string>, request: ReaderRequest) =>
  Effect.async<ReaderResult, ReaderFailed>((resume) => {
    const full = toConninfo(Redacted.value(dsn))
    const { password, rest } = splitPassword(full)
    const secretEnv = request.passwordViaEnv === true && password !== undefined
      ? { MESA_INTEROP_CONNINFO: rest, PGPASSWORD: password }
      : { MESA_INTEROP_CONNINFO: full }
    const child = spawn(PYTHON, [READER], {
      cwd: ROOT,
      env: { ...process.env, ...secretEnv, PYTHONIOENCODING: "utf-8" },
      stdio: ["pipe", "pipe", "pipe"]
    })
    const out: Array<Buffer> = []
    const err: Array<Buffer> = []
    child.stdout.on("data", (b: Buffer) => out.push(b))
    child.stderr.on("data", (b: Buffer) => err.push(b))
    child.on("error", (e) => resume(Effect.fail(new ReaderFailed(`cannot run ${PYTHON}: ${e.message}`))))
    child.on("close", (code) => {
      const stderr = Buffer.concat(err).toString("utf8")
      if (code !== 0) {
        return resume(Effect.fail(new ReaderFailed(`ducklake_read.py exited ${code}: ${stderr.trim()}`)))
      }
      try {
        resume(Effect.succeed(JSON.parse(Buffer.concat(out).toString("utf8")) as ReaderResult))
      } catch (e) {
        resume(Effect.fail(new ReaderFailed(`ducklake_read.py printed no JSON: ${String(e)}; stderr: ${stderr}`)))
      }
    })
    child.stdin.end(JSON.stringify(request))
    return Effect.sync(() => {
      child.kill("SIGKILL")
    })
  })
