/**
 * A worked example of mesa-mcp's integration: an MCP tool handler that changes an AVU in iRODS with the native
 * client and mirrors the change into the history with `DuckLakeClient`.
 *
 * - iRODS is the source of truth and is written first. If that fails, the tool fails.
 * - The mirror never fails the tool. Its outcome is reported alongside the result:
 *   - `recorded`: mode A (a catalog is configured); the snapshot id is returned;
 *   - `not-recorded`: modes B/C (no `MESA_DUCKLAKE_DSN`): the client answers `{ recorded: false }`;
 *   - `not-a-mesa-project`: no `mesa.enabled` marker on the path or a parent collection;
 *   - `ducklake_mirror_failed`: a partial failure (catalog down, storage fault…); the iRODS change stays, and the
 *     error's tag tells "retry later" (`CatalogUnavailable`) from a failed write.
 *
 * The handler is plain Effect over three services; `MesaMcpLive` provides them from the environment
 * (`layers/local.ts` for the client: it never fails to build when no catalog is configured).
 * Tested against the fake iRODS server and an embedded PostgreSQL in `test/cli/mesa-mcp-example.test.ts`.
 */
import { Effect, Layer } from "effect"
import * as Local from "../layers/local.js"
import * as Discovery from "../src/operations/discovery.js"
import type { NotRecorded, TargetType } from "../src/core/domain.js"
import { DuckLakeClient } from "../src/client/DuckLakeClient.js"
import { irodsConfig } from "../src/irods/Config.js"
import { IrodsClient } from "../src/irods/IrodsClient.js"

/** The tool's arguments, as the MCP client sends them. */
export interface ModifyMetadataArgs {
  readonly path: string
  readonly targetType: Extract<TargetType, "data_object" | "collection">
  readonly op: "add" | "delete" | "set"
  readonly attribute: string
  readonly value: string
  readonly unit?: string
  /** The ticket the user acts through, if any (recorded as `viaTicket`). */
  readonly ticket?: string
}

/** Who calls, and as which tool (mesa-mcp's session context). */
export interface ToolContext {
  readonly user: string
  readonly toolName: string
}

export type MirrorOutcome =
  | { readonly status: "recorded"; readonly projectId: string; readonly snapshotId: number }
  | { readonly status: "not-recorded"; readonly reason: NotRecorded["reason"] }
  | { readonly status: "not-a-mesa-project" }
  | { readonly status: "ducklake_mirror_failed"; readonly error: string; readonly message: string }

/** An MCP `CallToolResult`: text content plus structured content. */
export interface ToolResult {
  readonly content: ReadonlyArray<{ readonly type: "text"; readonly text: string }>
  readonly structuredContent: {
    readonly ok: boolean
    readonly irods: "written" | "failed"
    readonly mirror?: MirrorOutcome
  }
  readonly isError: boolean
}

/** Mirrors one change into the history; never fails (the outcome says what happened). */
const mirror = (args: ModifyMetadataArgs, ctx: ToolContext) =>
  Effect.gen(function*() {
    const lake = yield* DuckLakeClient
    if (!lake.recording) return { status: "not-recorded", reason: "no-catalog" } as const
    const discovery = yield* Discovery.ProjectDiscovery
    const project = yield* discovery.discoverProject(args.path, { actor: ctx.user })
    const result = yield* lake.recordChanges({
      projectId: project.projectId,
      actor: ctx.user,
      note: `${args.op} AVU via ${ctx.toolName}`,
      changes: [{
        irodsPath: args.path,
        targetType: args.targetType,
        attribute: args.attribute,
        value: args.value,
        unit: args.unit ?? "",
        op: args.op,
        actor: ctx.user,
        source: `mesa-mcp:${ctx.toolName}`,
        ...(args.ticket === undefined ? {} : { viaTicket: args.ticket })
      }]
    })
    return result.recorded
      ? { status: "recorded", projectId: result.projectId, snapshotId: result.snapshotId } as const
      : { status: "not-recorded", reason: result.reason } as const
  }).pipe(
    Effect.catchTag("NotMesaEnabled", () => Effect.succeed({ status: "not-a-mesa-project" } as const)),
    Effect.catchAll((e) =>
      Effect.as(
        Effect.logWarning("ducklake mirror failed; the iRODS change stands", { error: e._tag, path: args.path }),
        { status: "ducklake_mirror_failed", error: e._tag, message: e.message } as const
      )
    ),
    Effect.withSpan("mesa-mcp.mirror", { attributes: { path: args.path, tool: ctx.toolName } })
  )

/** The tool handler: change the AVU in iRODS, then mirror it. */
export const modifyMetadata = (args: ModifyMetadataArgs, ctx: ToolContext) =>
  Effect.gen(function*() {
    const irods = yield* IrodsClient
    const target = { type: args.targetType, path: args.path } as const
    const avu = { name: args.attribute, value: args.value, units: args.unit ?? "" }
    const write = args.op === "add" ? irods.addAvu : args.op === "delete" ? irods.removeAvu : irods.setAvu
    const written = yield* Effect.either(write(target, avu))
    if (written._tag === "Left") {
      return {
        content: [{ type: "text", text: `iRODS refused the change: ${written.left.message}` }],
        structuredContent: { ok: false, irods: "failed" },
        isError: true
      } satisfies ToolResult
    }
    const outcome: MirrorOutcome = yield* mirror(args, ctx)
    const note = outcome.status === "recorded"
      ? `recorded in the history as snapshot ${outcome.snapshotId}`
      : outcome.status === "not-recorded"
      ? "history not recorded (no catalog configured)"
      : outcome.status === "not-a-mesa-project"
      ? "history not recorded (not in a MESA project)"
      : `history mirror failed (${outcome.error}); the iRODS change stands`
    return {
      content: [{ type: "text", text: `${args.op} ${args.attribute}=${args.value} on ${args.path}: done; ${note}` }],
      structuredContent: { ok: true, irods: "written", mirror: outcome },
      isError: false
    } satisfies ToolResult
  }).pipe(Effect.withSpan("mesa-mcp.modify_metadata", { attributes: { path: args.path, op: args.op } }))

/**
 * What mesa-mcp provides once at start-up: the iRODS client (`MESA_DUCKLAKE_IRODS_*` over `~/.irods`), the
 * history client for modes A/B/C (`layers/local.ts`) and discovery (markers cached 300 s).
 */
export const MesaMcpLive = Discovery.layer().pipe(
  Layer.provideMerge(Layer.merge(Local.layer, IrodsClient.layerConfig(irodsConfig)))
)
