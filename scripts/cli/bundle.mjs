#!/usr/bin/env node
/**
 * Bundles the CLI (`npm run build` runs this after tsc): `dist/scripts/cli.js` becomes one ES module holding
 * @effect/cli, `effect` and the command definitions, and each command's handler (`scripts/cli/run/*.ts`, imported
 * dynamically) becomes a chunk under `dist/scripts/cli/chunks/`, loaded when that command runs. Node then reads a
 * few files at start-up instead of some 600 (`--help`: 0.27–0.31 s of CPU instead of 0.63–0.66 s, medians of 10 runs
 * on a loaded 2-core machine).
 *
 * Packages that are not Effect's stay outside the bundle (native code, optional dependencies, OpenTelemetry); every
 * Effect package is inside, so the CLI runs on one copy of `effect`.
 *
 * Then the help texts: `--help` of every command, as the bundle prints it (plain text), into
 * `dist/scripts/cli/help.json`, which the entry answers `mesa-ducklake [command…] --help` from without loading
 * @effect/cli at all (the same text, from the same build).
 *
 *   node scripts/cli/bundle.mjs [outdir]      default: dist/scripts
 */
import { build } from "esbuild"
import { execFileSync } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"
import { fileURLToPath } from "node:url"

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..")
const outdir = path.resolve(root, process.argv[2] ?? "dist/scripts")
const pkg = JSON.parse(fs.readFileSync(path.join(root, "package.json"), "utf8"))
const isEffect = (name) => name === "effect" || name.startsWith("@effect/")
const external = [...Object.keys(pkg.dependencies ?? {}), ...Object.keys(pkg.optionalDependencies ?? {})]
  .filter((name) => !isEffect(name))
  .flatMap((name) => [name, `${name}/*`])

const result = await build({
  entryPoints: { cli: path.join(root, "scripts/cli.ts") },
  outdir,
  bundle: true,
  splitting: true,
  format: "esm",
  platform: "node",
  target: "node20",
  chunkNames: "cli/chunks/[name]-[hash]",
  external,
  minify: true,
  keepNames: true,
  sourcemap: false,
  legalComments: "none",
  logLevel: "warning",
  metafile: true,
  // The bundle is ESM; a bundled CommonJS module that calls require() needs one.
  banner: { js: "import { createRequire as __mesaCreateRequire } from \"node:module\"; const require = __mesaCreateRequire(import.meta.url);" }
})

// Chunks of earlier builds go once they are 10 minutes old: a CLI started before this build (a test run sharing the
// checkout) may still import its own chunks.
const chunks = path.join(outdir, "cli", "chunks")
const current = new Set(Object.keys(result.metafile.outputs).map((f) => path.resolve(root, f)))
for (const name of fs.readdirSync(chunks)) {
  const file = path.join(chunks, name)
  if (!current.has(file) && Date.now() - fs.statSync(file).mtimeMs > 10 * 60_000) fs.rmSync(file, { force: true })
}

// The help texts, from the bundle just written: the root's, then every command path its COMMANDS section lists.
const helpEnv = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("MESA_DUCKLAKE_")))
const helpOf = (words) =>
  execFileSync(process.execPath, [path.join(outdir, "cli.js"), ...words, "--help"], {
    env: { ...helpEnv, NO_COLOR: "1" },
    encoding: "utf8",
    stdio: ["ignore", "pipe", "pipe"]
  })
const helpJson = path.join(outdir, "cli", "help.json")
fs.rmSync(helpJson, { force: true })
const rootHelp = helpOf([])
const texts = { "": rootHelp }
for (const m of rootHelp.matchAll(/^\s+- ([a-z][a-z0-9-]*(?: [a-z][a-z0-9-]*)*)/gm)) texts[m[1]] = helpOf(m[1].split(" "))
fs.writeFileSync(helpJson, JSON.stringify(texts))
