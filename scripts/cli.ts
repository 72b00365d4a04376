#!/usr/bin/env node
/**
 * `mesa-ducklake`, the command line (`cli/main.ts`). This entry notes SIGINT/SIGTERM from its first line (so Ctrl-C
 * while the CLI's modules load, or while a command cleans up, still exits 130: see `cli/early.ts`), then loads the CLI.
 *
 *   mesa-ducklake --help              every command, with its options; `<command> --help` for one
 */
import { readFileSync } from "node:fs"
import { catchSignals } from "./cli/early.js"

/**
 * `mesa-ducklake [command…] --help` from the texts the build saved (`cli/help.json`, written by `cli/bundle.mjs`
 * from this same build's `--help`), without loading @effect/cli: help in about the time node takes to start. Any
 * other form (options before `--help`, no saved text, a source checkout) goes on to the CLI itself.
 */
const savedHelp = (argv: ReadonlyArray<string>): string | undefined => {
  if (argv.length === 0 || (argv[argv.length - 1] !== "--help" && argv[argv.length - 1] !== "-h")) return undefined
  try {
    const texts = JSON.parse(readFileSync(new URL("./cli/help.json", import.meta.url), "utf8")) as Record<string, unknown>
    const text = texts[argv.slice(0, -1).join(" ")]
    return typeof text === "string" ? text : undefined
  } catch {
    return undefined
  }
}

const help = savedHelp(process.argv.slice(2))
if (help !== undefined) {
  process.stdout.write(help)
} else {
  catchSignals()
  await import("./cli/main.js")
}
