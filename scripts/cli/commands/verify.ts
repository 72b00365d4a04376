/**
 * `verify <project>` / `verify --all`: tamper evidence (`DuckLakeClient.verifyProject`). Walks a project's hash
 * chain and checks it against the catalog's rows, every live Parquet file's bytes in storage, the commit markers
 * and, on iRODS, the head anchor on the project root. Reads only. Exit 0 when clean, 2 (`VerifyFailed`) naming
 * the first broken link. Handler: `../run/verify.ts`, loaded when run.
 */
import * as Args from "@effect/cli/Args"
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import { json, lazy, projectArg } from "../options.js"

export const verifyConfig = {
  all: Options.boolean("all").pipe(Options.withDescription("verify every registered project (exit 2 if any fails)")),
  json,
  project: projectArg.pipe(Args.optional)
}

export const verify = Command.make("verify", verifyConfig, lazy(() => import("../run/verify.js"), (m) => m.verify)).pipe(
  Command.withDescription(
    "check a project's history for tampering: the hash chain against the catalog rows, every stored Parquet file, " +
      "the commit markers and (iRODS) the head anchor; exit 2 naming the first broken link when anything differs"
  )
)
