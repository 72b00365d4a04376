#!/usr/bin/env node
/**
 * `mesa-ducklake`, the command line (`cli/main.ts`). This entry only catches SIGINT/SIGTERM that arrive while the
 * CLI's modules load (so Ctrl-C during start-up still exits 130, see `cli/early.ts`), then loads the CLI.
 *
 *   mesa-ducklake --help              every command, with its options; `<command> --help` for one
 */
import { catchEarlySignals } from "./cli/early.js"

catchEarlySignals()
await import("./cli/main.js")
