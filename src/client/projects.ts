/**
 * Project administration: registration (the lake collection is made inside it), lookup by path, archiving, reader
 * roles, and tamper-evidence checks of a project's lake.
 *
 * Owns: `registerProject`, `findProjectByPath`, `setProjectStatus`, `grantProjectReader`, `verifyProject`.
 * May call: context.ts, the background's `flush`, and verify.ts.
 */
import { Effect, Redacted } from "effect"
import { Catalog } from "../catalog/Catalog.js"
import { TABLE_NAME } from "../catalog/ducklakeSchema.js"
import { isWithin, parseIrodsPath } from "../core/domain.js"
import { LakeStorage } from "../storage/LakeStorage.js"
import * as Verify from "../integrity/verify.js"
import { type ClientContext, type ClientCore, invalid, textArg } from "./context.js"

export const registerProject = Effect.fn("DuckLakeClient.registerProject")(function*(
  ctx: ClientCore,
  input: { readonly irodsPath: string; readonly actor: string; readonly zone?: string }
) {
  const irodsPath = yield* parseIrodsPath(input?.irodsPath, "irodsPath")
  if (irodsPath === "/") return yield* invalid("irodsPath", "the zone root cannot be a project")
  const actor = yield* textArg("actor", input?.actor, { optional: false })
  const zone = (yield* textArg("zone", input?.zone, { optional: true })) ?? irodsPath.split("/")[1]!
  if (!isWithin(irodsPath, `/${zone}`)) {
    return yield* invalid("zone", `path ${irodsPath} is not in zone ${zone}`)
  }
  const ducklakePath = `${irodsPath}/.mesa/ducklake` as typeof irodsPath
  yield* Effect.annotateCurrentSpan({ irodsPath })
  // The collection is made inside the registration (after its checks, before its commit): a project never
  // exists in the catalog without its collection, and a refused registration leaves storage alone.
  return yield* ctx.catalog.registerProject({
    irodsPath,
    irodsZone: zone,
    actor: actor!,
    ducklakePath,
    prepare: ctx.storage.makeCollection(`${ducklakePath}/main/${TABLE_NAME}`)
  })
})

export const findProjectByPath = Effect.fn("DuckLakeClient.findProjectByPath")(function*(ctx: ClientCore, path: string) {
  const p = yield* parseIrodsPath(path, "irodsPath")
  return yield* ctx.catalog.findProjectByPath(p)
})

export const setProjectStatus = Effect.fn("DuckLakeClient.setProjectStatus")(
  function*(ctx: ClientCore, projectId: string, status: "active" | "archived") {
    if (status !== "active" && status !== "archived") return yield* invalid("status", "must be active or archived")
    const p = yield* ctx.project(projectId)
    yield* ctx.catalog.setProjectStatus(p.projectId, status)
    return { ...p, status }
  }
)

export const grantProjectReader = Effect.fn("DuckLakeClient.grantProjectReader")(function*(
  ctx: ClientCore,
  projectId: string,
  role: string,
  password: Redacted.Redacted<string>,
  options?: { readonly rotate?: boolean }
) {
  if (typeof role !== "string" || !/^[a-z_][a-z0-9_]{0,62}$/.test(role) || role.startsWith("pg_")) {
    return yield* invalid("role", "must be a lower-case identifier (a-z, 0-9, _), not starting with pg_")
  }
  if (!Redacted.isRedacted(password) || typeof Redacted.value(password) !== "string" || Redacted.value(password).length < 12) {
    return yield* invalid("password", "must be a Redacted string of at least 12 characters")
  }
  const p = yield* ctx.project(projectId)
  yield* ctx.catalog.grantReader(p, role, password, { rotate: options?.rotate === true })
  return { role, schema: p.metadataSchema }
})

/** Waits for the client's background work, then checks the project's hash chain (verify.ts). Reads only. */
export const verifyProject = Effect.fn("DuckLakeClient.verifyProject")(function*(ctx: ClientContext, projectId: string) {
  const p = yield* ctx.project(projectId)
  yield* ctx.background.flush
  return yield* Verify.verifyProject(p).pipe(
    Effect.provideService(Catalog, ctx.catalog),
    Effect.provideService(LakeStorage, ctx.storage)
  )
})
