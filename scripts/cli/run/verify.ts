/**
 * Handler of `verify <project>` / `verify --all`: tamper evidence (`DuckLakeClient.verifyProject`). Walks a project's hash
 * chain and checks it against the catalog's rows (`mesa_snapshot`, `ducklake_snapshot`, `ducklake_data_file`), every
 * live Parquet file's bytes in storage, the commit markers and, on iRODS, the head anchor on the project root.
 * Reads only.
 *
 * Output: the report (`--json`: the whole `VerifyReport`; `--all`: `{ ok, projects: [...] }`), then exit 0 when it
 * is clean, 2 (`VerifyFailed`, one JSON line on stderr naming the first broken link) when any problem is listed.
 * Other failures keep the usual codes (project not found 2 with code `ProjectNotFound`, catalog unavailable 4, …).
 */
import type { Command } from "@effect/cli"
import { Effect, Option } from "effect"
import { DuckLakeClient } from "../../../src/client/DuckLakeClient.js"
import type { VerifyProblem, VerifyReport } from "../../../src/integrity/verify.js"
import type { verifyConfig } from "../commands/verify.js"
import { ClientLive, resolveProject } from "../environment.js"
import {
  CommandFailed,
  describeFailure,
  doneProgress,
  emit,
  ExitCode,
  formatTable,
  InvalidInput,
  progress
} from "../output.js"

/** A report with the project's root, or a project that could not be verified at all (`--all` only). */
type Outcome =
  | (VerifyReport & { readonly irodsPath: string })
  | {
    readonly projectId: string
    readonly irodsPath: string
    readonly ok: false
    readonly error: { readonly code: string; readonly message: string }
  }

const named = (p: { readonly projectId: string; readonly irodsPath: string }) => `project ${p.projectId} (${p.irodsPath})`

/** `snapshot 5, main/avu_changes/…parquet: file-altered: its checksum is …` */
export const describeProblem = (x: VerifyProblem): string =>
  [x.snapshotId === undefined ? undefined : `snapshot ${x.snapshotId}`, x.file].filter((s) => s !== undefined).join(", ") +
  `${x.snapshotId === undefined && x.file === undefined ? "" : ": "}${x.kind}: ${x.detail}`

const anchorText = (r: VerifyReport) =>
  r.anchor === "checked" ? "anchor checked" : "anchor not supported by this storage (mounted)"

const head = (r: VerifyReport) => r.headSnapshot === null ? "no snapshots yet" : `head snapshot ${r.headSnapshot} ${r.headHash ?? ""}`.trimEnd()

const unverifiableNote = (r: VerifyReport) =>
  r.unverifiable === 0
    ? ""
    : `\nnote: ${r.unverifiable} record(s) predate the hash chain's checksums (no checksum or size in the catalog): ` +
      "those files are checked only as far as the catalog recorded them"

/** Human form of one project's outcome. */
export const formatOutcome = (o: Outcome): string => {
  if ("error" in o) return `NOT VERIFIED  ${named(o)}: ${o.error.code}: ${o.error.message}`
  if (o.ok) {
    return `verified ${o.records} records of ${named(o)}: ${head(o)}; ` +
      `${o.filesChecked} file(s) and ${o.markersChecked} marker(s) checked; ${anchorText(o)}` + unverifiableNote(o)
  }
  return [
    `VERIFY FAILED  ${named(o)}: ${o.problems.length} problem(s)`,
    `first broken link: ${describeProblem(o.problems[0]!)}`,
    "",
    formatTable(
      ["SNAPSHOT", "FILE", "PROBLEM", "DETAIL"],
      o.problems.map((x) => [x.snapshotId ?? "", x.file ?? "", x.kind, x.detail])
    ),
    "",
    `checked ${o.records} records (${head(o)}), ${o.filesChecked} file(s), ${o.markersChecked} marker(s); ${anchorText(o)}` +
    unverifiableNote(o)
  ].join("\n")
}

const failure = (o: Outcome): string =>
  "error" in o ? `${o.projectId}: not verified (${o.error.code})` : `${o.projectId}: ${o.problems.length} problem(s), first: ${describeProblem(o.problems[0]!)}`

/** One project, by id or a path inside it. */
const verifyOne = (ref: string, json: boolean) =>
  Effect.gen(function*() {
    const client = yield* DuckLakeClient
    const project = yield* resolveProject(ref)
    yield* progress(`verifying ${project.irodsPath}…`)
    const report = yield* client.verifyProject(project.projectId)
    yield* doneProgress
    yield* emit(json, report, (r) => formatOutcome({ ...r, irodsPath: project.irodsPath }))
    if (!report.ok) {
      return yield* new CommandFailed({
        code: "VerifyFailed",
        reason: `${named(project)}: ${report.problems.length} problem(s); first broken link: ${describeProblem(report.problems[0]!)}`,
        exitCode: ExitCode.problemsReported
      })
    }
  })

/**
 * Every registered project, each verified on its own. A project that cannot be verified (its storage unreadable,
 * say) counts as failed and the others still run; a catalog that is unavailable stops the run (its exit code).
 */
const verifyAll = (json: boolean) =>
  Effect.gen(function*() {
    const client = yield* DuckLakeClient
    const projects = yield* client.listProjects
    const outcomes: Array<Outcome> = []
    for (const [i, p] of projects.entries()) {
      yield* progress(`verifying ${i + 1}/${projects.length}: ${p.irodsPath}…`)
      outcomes.push(
        yield* client.verifyProject(p.projectId).pipe(
          Effect.map((r): Outcome => ({ ...r, irodsPath: p.irodsPath })),
          Effect.catchIf(
            (e) => e._tag !== "CatalogUnavailable" && e._tag !== "CatalogSchemaMismatch",
            (e) => {
              const d = describeFailure(e)
              return Effect.succeed<Outcome>({
                projectId: p.projectId,
                irodsPath: p.irodsPath,
                ok: false,
                error: { code: d.code, message: d.message }
              })
            }
          )
        )
      )
    }
    yield* doneProgress
    const failed = outcomes.filter((x) => !x.ok)
    yield* emit(json, { ok: failed.length === 0, projects: outcomes }, (r) =>
      [
        ...r.projects.map(formatOutcome),
        r.projects.length === 0
          ? "no projects registered"
          : `${r.projects.length - failed.length} of ${r.projects.length} project(s) verified` +
            (failed.length === 0 ? "" : `, ${failed.length} FAILED`)
      ].join("\n\n"))
    if (failed.length > 0) {
      return yield* new CommandFailed({
        code: "VerifyFailed",
        reason: `${failed.length} of ${outcomes.length} project(s) failed verification: ${failed.map(failure).join("; ")}`,
        exitCode: ExitCode.problemsReported
      })
    }
  })

export const verify = (o: Command.Command.ParseConfig<typeof verifyConfig>) =>
  Effect.gen(function*() {
    // The arguments are checked before the client is built: bad usage is exit 1 whether or not a catalog is configured.
    if (o.all === Option.isSome(o.project)) {
      return yield* new InvalidInput({
        reason: o.all ? "give either a project or --all, not both" : "give a project (id or a path inside it), or --all"
      })
    }
    const run = Option.match(o.project, { onNone: () => verifyAll(o.json), onSome: (ref) => verifyOne(ref, o.json) })
    return yield* run.pipe(Effect.provide(ClientLive))
  })
