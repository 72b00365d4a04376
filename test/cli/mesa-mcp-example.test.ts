/**
 * The mesa-mcp example (`examples/mesa-mcp-tool.ts`) run for real: the fake iRODS server, the native client for the
 * tool's AVU writes, and the history over an embedded PostgreSQL (mode A) or no catalog (modes B/C).
 */
import { it } from "@effect/vitest"
import { Effect, Layer } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as nodePath from "node:path"
import { describe, expect } from "vitest"
import { modifyMetadata } from "../../examples/mesa-mcp-tool.js"
import * as Discovery from "../../src/operations/discovery.js"
import { DuckLakeClient, layerNotConfigured } from "../../src/client/DuckLakeClient.js"
import { IrodsClient } from "../../src/irods/IrodsClient.js"
import { fakeIrodsScoped } from "../fake-irods/FakeIrods.js"
import { fakeLogin } from "../irods/helpers.js"
import { EmbeddedPostgres, embeddedIrods, FakeIrods } from "../support.js"

/** The native client against the fake server of the layer (a new layer each time: layers are memoized by identity). */
const irodsOf = () =>
  Layer.unwrapEffect(Effect.map(FakeIrods, (server) => IrodsClient.layer(fakeLogin(server, { retryBase: "10 millis" }))))

const ctx = { user: "alice", toolName: "modify_metadata" }

/** A data object in a MESA-enabled collection, made as a user would. */
const prepare = (root: string) =>
  Effect.gen(function*() {
    const irods = yield* IrodsClient
    const local = nodePath.join(fs.mkdtempSync(nodePath.join(os.tmpdir(), "mesa-mcp-")), "x.csv")
    fs.writeFileSync(local, "a,b\n1,2\n")
    yield* irods.collCreate(root)
    yield* irods.put(local, `${root}/x.csv`)
    yield* irods.addAvu({ type: "collection", path: root }, { name: "mesa.enabled", value: "true", units: "" })
    return `${root}/x.csv`
  })

const modeA = Discovery.layer().pipe(Layer.provideMerge(irodsOf()), Layer.provideMerge(embeddedIrods("mcp").layer))

describe("mesa-mcp tool, mode A", () => {
  it.layer(modeA, { timeout: 180_000 })((it) => {
    it.effect("writes the AVU to iRODS and records it; the project is discovered and registered", () =>
      Effect.gen(function*() {
        const path = yield* prepare("/testZone/home/rods/mcp-a")
        const result = yield* modifyMetadata(
          { path, targetType: "data_object", op: "add", attribute: "depth", value: "10", unit: "cm", ticket: "tkt-1" },
          ctx
        )
        expect(result.isError).toBe(false)
        expect(result.structuredContent.mirror).toMatchObject({ status: "recorded" })
        const server = yield* FakeIrods
        expect(server.state.dataObjects.get(path)!.avus.map((a) => [a.name, a.value, a.units])).toEqual([["depth", "10", "cm"]])
        const lake = yield* DuckLakeClient
        const project = yield* lake.findProjectByPath(path)
        expect(project.irodsPath).toBe("/testZone/home/rods/mcp-a")
        const avus = yield* lake.getAvus(project.projectId, path)
        expect(avus.map((a) => [a.attribute, a.value, a.unit, a.actor, a.source, a.viaTicket])).toEqual([
          ["depth", "10", "cm", "alice", "mesa-mcp:modify_metadata", "tkt-1"]
        ])
        const [snapshot] = yield* lake.listSnapshots(project.projectId, { limit: 1 })
        expect(snapshot!.note).toBe("add AVU via modify_metadata")
      }))

    it.effect("a mirror failure is reported as ducklake_mirror_failed; the tool succeeds and iRODS keeps the change", () =>
      Effect.gen(function*() {
        const path = yield* prepare("/testZone/home/rods/mcp-down")
        const pg = yield* EmbeddedPostgres
        yield* pg.stop
        const result = yield* modifyMetadata({ path, targetType: "data_object", op: "add", attribute: "k", value: "v" }, ctx).pipe(
          Effect.ensuring(Effect.orDie(pg.start))
        )
        expect(result.isError).toBe(false)
        expect(result.structuredContent.mirror).toMatchObject({ status: "ducklake_mirror_failed", error: "CatalogUnavailable" })
        const server = yield* FakeIrods
        expect(server.state.dataObjects.get(path)!.avus.map((a) => a.name)).toEqual(["k"])
      }))

    it.effect("a path outside any MESA project: written, not mirrored", () =>
      Effect.gen(function*() {
        const irods = yield* IrodsClient
        yield* irods.collCreate("/testZone/home/rods/plain")
        const result = yield* modifyMetadata(
          { path: "/testZone/home/rods/plain", targetType: "collection", op: "add", attribute: "k", value: "v" },
          ctx
        )
        expect(result.structuredContent).toEqual({ ok: true, irods: "written", mirror: { status: "not-a-mesa-project" } })
      }))
  })
})

const modesBC = Discovery.layer().pipe(
  Layer.provideMerge(irodsOf()),
  Layer.provideMerge(layerNotConfigured),
  Layer.provideMerge(Layer.scoped(FakeIrods, fakeIrodsScoped({ zone: "testZone", users: { rods: "rods" } })))
)

describe("mesa-mcp tool, modes B/C (no catalog)", () => {
  it.layer(modesBC, { timeout: 60_000 })((it) => {
    it.effect("writes the AVU to iRODS; the mirror answers not recorded and the tool still succeeds", () =>
      Effect.gen(function*() {
        const path = yield* prepare("/testZone/home/rods/mcp-b")
        const result = yield* modifyMetadata({ path, targetType: "data_object", op: "set", attribute: "status", value: "raw" }, ctx)
        expect(result).toEqual({
          content: [{ type: "text", text: `set status=raw on ${path}: done; history not recorded (no catalog configured)` }],
          structuredContent: { ok: true, irods: "written", mirror: { status: "not-recorded", reason: "no-catalog" } },
          isError: false
        })
        const server = yield* FakeIrods
        expect(server.state.dataObjects.get(path)!.avus.map((a) => [a.name, a.value])).toEqual([["status", "raw"]])
      }))

    it.effect("an iRODS failure fails the tool (and nothing is mirrored)", () =>
      Effect.gen(function*() {
        const result = yield* modifyMetadata(
          { path: "/testZone/home/rods/missing.csv", targetType: "data_object", op: "add", attribute: "k", value: "v" },
          ctx
        )
        expect(result.isError).toBe(true)
        expect(result.structuredContent).toEqual({ ok: false, irods: "failed" })
      }))
  })
})
