/**
 * Global set-up of the reliability suite (runs once, in vitest's main process):
 * - bundles `writer.ts` with esbuild into one ES module, so a writer process starts in ~0.8 s instead of ~2.2 s
 *   under tsx (measured on 2 cores): the crash test starts over a hundred of them;
 * - makes the tally directory where each test file leaves its counts, and prints the combined tally at the end.
 */
import { build } from "esbuild"
import * as fs from "node:fs"
import * as os from "node:os"
import * as nodePath from "node:path"
import type { TestProject } from "vitest/node"
import { printTally } from "./tally.js"

declare module "vitest" {
  export interface ProvidedContext {
    readonly writerBundle: string
    readonly tallyDir: string
  }
}

export default async function setup(project: TestProject) {
  const started = Date.now()
  // Inside node_modules so the bundle's external imports (DuckDB's native module) resolve from the checkout.
  const outDir = nodePath.resolve("node_modules/.cache/mesa-reliability")
  fs.mkdirSync(outDir, { recursive: true })
  const writerBundle = nodePath.join(outDir, `writer-${process.pid}.mjs`)
  await build({
    entryPoints: [nodePath.resolve("test/reliability/writer.ts")],
    bundle: true,
    platform: "node",
    format: "esm",
    target: "node20",
    outfile: writerBundle,
    external: ["@duckdb/*", "pg-native", "@opentelemetry/*"],
    // CommonJS dependencies inside an ES module bundle still call require().
    banner: { js: "import { createRequire as __mesaRequire } from 'node:module'; const require = __mesaRequire(import.meta.url);" },
    logLevel: "error"
  })
  const tallyDir = fs.mkdtempSync(nodePath.join(os.tmpdir(), "mesa-reliability-tally-"))
  project.provide("writerBundle", writerBundle)
  project.provide("tallyDir", tallyDir)
  return () => {
    printTally(tallyDir, Date.now() - started)
    fs.rmSync(tallyDir, { recursive: true, force: true })
    fs.rmSync(writerBundle, { force: true })
  }
}
