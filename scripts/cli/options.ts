/**
 * The options and arguments commands share (options always come before positional arguments), and `lazy`, which
 * loads a command's handler module only when that command runs.
 *
 * This module and `commands/*.ts` are what `mesa-ducklake --help` loads: they import only @effect/cli and `effect`
 * by module path (never the `effect` barrel, never the client, DuckDB, pg or the layers), so help and usage errors
 * start fast. The handlers live in `run/*.ts` and are imported dynamically.
 */
import * as Args from "@effect/cli/Args"
import * as Options from "@effect/cli/Options"
import * as Effect from "effect/Effect"

export const json = Options.boolean("json").pipe(Options.withDescription("print one JSON document (snake_case keys) instead of a table"))

export const actor = Options.text("actor").pipe(
  Options.withDescription("who acts (provenance); default $MESA_DUCKLAKE_ACTOR or the OS user"),
  Options.optional
)

/** The source the CLI records when a change has none (`--source` overrides it). */
export const CLI_SOURCE = "mesa-ducklake-cli"

export const source = Options.text("source").pipe(
  Options.withDescription(`source recorded on changes that name none (default ${CLI_SOURCE})`),
  Options.optional
)

export const note = Options.text("note").pipe(Options.withDescription("the snapshot's commit message"), Options.optional)

export const idempotencyKey = Options.text("idempotency-key").pipe(
  Options.withDescription("a retry with the same key and input returns what the first run recorded"),
  Options.optional
)

export const projectOption = Options.text("project").pipe(
  Options.withAlias("p"),
  Options.withDescription("project id or root path (default: the registered project containing the path)"),
  Options.optional
)

export const projectArg = Args.text({ name: "project" }).pipe(Args.withDescription("project id (UUID) or any iRODS path inside the project"))

export const pathArg = Args.text({ name: "irods-path" }).pipe(Args.withDescription("absolute iRODS logical path"))

export const limit = (fallback: number) =>
  Options.integer("limit").pipe(Options.withDescription(`at most this many rows (default ${fallback})`), Options.withDefault(fallback))

/**
 * A command handler whose module is imported when the command runs: `lazy(() => import("../run/x.js"), (m) => m.y)`.
 * The module's own imports (the client, DuckDB, pg, the layers) load then, not at start-up.
 */
export const lazy = <M, O, E, R>(load: () => Promise<M>, pick: (m: M) => (o: O) => Effect.Effect<void, E, R>) => (o: O) =>
  Effect.flatMap(Effect.promise(load), (m) => pick(m)(o))
