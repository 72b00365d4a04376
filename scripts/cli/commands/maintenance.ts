/**
 * Operations: `recover`, `migrate [--to N]`, `doctor` (their handlers: `../run/maintenance.ts`, loaded when run).
 */
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import { json, lazy } from "../options.js"

const run = () => import("../run/maintenance.js")

export const recoverConfig = {
  maxAttempts: Options.integer("max-attempts").pipe(
    Options.withDescription("a write that failed this often is given up (default 5)"),
    Options.withDefault(5)
  ),
  limit: Options.integer("limit").pipe(Options.withDescription("pending writes per run (default 100)"), Options.withDefault(100)),
  json
}

const recover = Command.make("recover", recoverConfig, lazy(run, (m) => m.recover)).pipe(
  Command.withDescription("finish or fail writes whose writer died (re-push, commit, report orphans)")
)

export const migrateConfig = {
  to: Options.integer("to").pipe(
    Options.withDescription("migrate the shared schema to this version (only the latest this build knows is accepted)"),
    Options.optional
  ),
  json
}

const migrate = Command.make("migrate", migrateConfig, lazy(run, (m) => m.migrate)).pipe(
  Command.withDescription("migrate the catalog's shared schema and report its version")
)

export const doctorConfig = { json }

const doctor = Command.make("doctor", doctorConfig, lazy(run, (m) => m.doctor)).pipe(Command.withDescription(
  "check configuration, catalog reachability and migration, storage reachability, pg_dump version and the cache directory"
))

export const maintenance = [recover, migrate, doctor] as const
