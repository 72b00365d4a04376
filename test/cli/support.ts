/**
 * Running the built CLI as a user would: `npm run build` once per test run, then `node dist/scripts/cli.js` as a
 * child process with configuration in its environment (the DSN never on the command line) and stdin piped in.
 */
import { Effect, Exit, Redacted, Scope } from "effect"
import { spawn, spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as nodePath from "node:path"
import { fileURLToPath } from "node:url"
import { afterAll, beforeAll, expect } from "vitest"
import * as EmbeddedPostgres from "../../src/postgres/EmbeddedPostgres.js"

export const REPO = nodePath.resolve(nodePath.dirname(fileURLToPath(import.meta.url)), "../..")
export const CLI = nodePath.join(REPO, "dist/scripts/cli.js")

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

/**
 * `npm run build`, once per vitest run (test files run in parallel forks of one vitest process: a lock directory
 * makes one of them build while the others wait, and a stamp named after the vitest process marks it done).
 */
export const ensureBuilt = async (): Promise<void> => {
  const lock = nodePath.join(REPO, "dist", ".cli-test-build.lock")
  const stamp = nodePath.join(REPO, "dist", `.cli-test-built-${process.ppid}`)
  fs.mkdirSync(nodePath.dirname(lock), { recursive: true })
  for (;;) {
    if (fs.existsSync(stamp)) return
    try {
      fs.mkdirSync(lock)
      break
    } catch {
      // A lock older than 5 minutes belongs to a build that died.
      const age = Date.now() - (fs.statSync(lock, { throwIfNoEntry: false })?.mtimeMs ?? Date.now())
      if (age > 5 * 60_000) fs.rmSync(lock, { recursive: true, force: true })
      await sleep(250)
    }
  }
  try {
    if (fs.existsSync(stamp)) return
    const built = await new Promise<{ code: number | null; out: string }>((resolve) => {
      const child = spawn("npm", ["run", "build"], { cwd: REPO, stdio: ["ignore", "pipe", "pipe"] })
      let out = ""
      child.stdout.on("data", (d) => (out += d))
      child.stderr.on("data", (d) => (out += d))
      child.on("close", (code) => resolve({ code, out }))
    })
    if (built.code !== 0) throw new Error(`npm run build failed (${built.code}):\n${built.out}`)
    for (const old of fs.readdirSync(nodePath.dirname(stamp))) {
      if (old.startsWith(".cli-test-built-")) fs.rmSync(nodePath.join(nodePath.dirname(stamp), old), { force: true })
    }
    fs.writeFileSync(stamp, new Date().toISOString())
  } finally {
    fs.rmSync(lock, { recursive: true, force: true })
  }
}

export interface CliResult {
  readonly code: number | null
  readonly signal: NodeJS.Signals | null
  readonly stdout: string
  readonly stderr: string
}

export interface CliOptions {
  readonly env?: Readonly<Record<string, string | undefined>>
  readonly stdin?: string
  readonly timeoutMs?: number
  /** Called with the child once it runs (to signal it). */
  readonly onSpawn?: (child: ReturnType<typeof spawn>) => void
}

/** The parent's environment without any MESA_DUCKLAKE_* setting, so each test states its configuration. */
const baseEnv = () =>
  Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("MESA_DUCKLAKE_") && k !== "NODE_OPTIONS"))

/** Runs `node dist/scripts/cli.js ...args` (asynchronously: a fake server may live in this process). */
export const runCli = (args: ReadonlyArray<string>, options: CliOptions = {}): Promise<CliResult> =>
  new Promise((resolve, reject) => {
    const env: Record<string, string> = {}
    for (const [k, v] of Object.entries({ ...baseEnv(), ...options.env })) if (v !== undefined) env[k] = v
    const child = spawn(process.execPath, [CLI, ...args], { cwd: os.tmpdir(), env, stdio: ["pipe", "pipe", "pipe"] })
    let stdout = ""
    let stderr = ""
    child.stdout.on("data", (d) => (stdout += d))
    child.stderr.on("data", (d) => (stderr += d))
    const timer = setTimeout(() => child.kill("SIGKILL"), options.timeoutMs ?? 60_000)
    child.on("error", reject)
    child.on("close", (code, signal) => {
      clearTimeout(timer)
      resolve({ code, signal, stdout, stderr })
    })
    options.onSpawn?.(child)
    if (options.stdin !== undefined) child.stdin.end(options.stdin)
    else if (options.onSpawn === undefined) child.stdin.end()
  })

/** The one JSON line a failed command writes on stderr. */
export const stderrJson = (r: CliResult): { code: string; message: string } => {
  const lines = r.stderr.trim().split("\n").filter((l) => l.startsWith("{"))
  if (lines.length !== 1) throw new Error(`expected one JSON line on stderr, got:\n${r.stderr}`)
  return JSON.parse(lines[0]!)
}

/** A real PostgreSQL for a test file, started in this process; `stop` closes it. */
export const startPostgres = async () => {
  const scope = Effect.runSync(Scope.make())
  const pg = await Effect.runPromise(Scope.extend(EmbeddedPostgres.make(), scope))
  return {
    dsn: Redacted.value(pg.dsn),
    pg,
    close: () => Effect.runPromise(Scope.close(scope, Exit.void))
  }
}

/** A temporary directory removed by the returned function. */
export const tempDir = (label: string) => {
  const dir = fs.mkdtempSync(nodePath.join(os.tmpdir(), `mesa-cli-${label}-`))
  return { dir, remove: () => fs.rmSync(dir, { recursive: true, force: true }) }
}

/** A free loopback port nobody listens on (for "catalog unreachable"). */
export const closedPort = () => {
  const r = spawnSync(process.execPath, [
    "-e",
    "const s=require('net').createServer();s.listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})"
  ])
  return Number(String(r.stdout).trim())
}

/** A project as `project register --json` prints it. */
export interface Registered {
  readonly project_id: string
  readonly irods_path: string
  readonly ducklake_path: string
  readonly metadata_schema: string
}

/**
 * The set-up most CLI test files share, as `beforeAll`/`afterAll` hooks: the CLI built, a real PostgreSQL, and a
 * temporary directory (`mesa-cli-<label>-…`) holding the mounted zone (`zone`, made) and the cache (`cache`).
 * `env` configures the CLI for them once the hooks ran; `register` makes a project under
 * `/cliZone/home/alice/<rootPrefix><pid>-<n>` as alice.
 */
export const cliFixture = (label: string, rootPrefix: string) => {
  const env: Record<string, string> = {}
  let postgres: Awaited<ReturnType<typeof startPostgres>> | undefined
  let work: ReturnType<typeof tempDir> | undefined
  let counter = 0
  beforeAll(async () => {
    await ensureBuilt()
    postgres = await startPostgres()
    work = tempDir(label)
    Object.assign(env, {
      MESA_DUCKLAKE_DSN: postgres.dsn,
      MESA_DUCKLAKE_MOUNT_ROOT: nodePath.join(work.dir, "zone"),
      MESA_DUCKLAKE_CACHE_DIR: nodePath.join(work.dir, "cache")
    })
    fs.mkdirSync(env.MESA_DUCKLAKE_MOUNT_ROOT!, { recursive: true })
  }, 300_000)
  afterAll(async () => {
    await postgres?.close()
    work?.remove()
  })
  return {
    env,
    /** The DSN of the file's PostgreSQL (with its password). */
    get dsn() {
      return postgres!.dsn
    },
    /** The temporary directory. */
    get dir() {
      return work!.dir
    },
    register: async (root = `/cliZone/home/alice/${rootPrefix}${process.pid}-${++counter}`) => {
      const r = await runCli(["project", "register", "--actor", "alice", "--json", root], { env })
      expect(r.code, r.stderr).toBe(0)
      return JSON.parse(r.stdout) as Registered
    }
  }
}
