/**
 * The main job on the embedded default: a real PostgreSQL from npm plus a local directory standing in for the
 * iRODS zone. Registers a project, records a few batches of AVU changes, and shows what the metadata looks like
 * now, what it looked like earlier, its history and a diff.
 *
 *   npm run demo            (data under ./.mesa-demo, removed first)
 */
import { NodeRuntime } from "@effect/platform-node"
import { Console, Effect } from "effect"
import * as fs from "node:fs/promises"
import * as nodePath from "node:path"
import * as Embedded from "../layers/embedded.js"
import type { Avu } from "../src/core/domain.js"
import { DuckLakeClient } from "../src/client/DuckLakeClient.js"

const base = nodePath.resolve(process.env.MESA_DUCKLAKE_DEMO_DIR ?? ".mesa-demo")
const root = "/demoZone/home/alice/soil-survey"
const sample = `${root}/site-42/sample-001.csv`

const table = (avus: ReadonlyArray<Avu>) =>
  avus.length === 0
    ? "  (none)"
    : avus.map((a) => `  ${a.attribute} = ${a.value}${a.unit ? ` [${a.unit}]` : ""}   (by ${a.actor}, snapshot ${a.snapshotId})`)
      .join("\n")

const program = Effect.gen(function*() {
  const client = yield* DuckLakeClient
  const project = yield* client.registerProject({ irodsPath: root, actor: "alice" })
  yield* Console.log(`registered project ${project.projectId} at ${project.irodsPath}`)
  yield* Console.log(`  catalog schema ${project.metadataSchema}, Parquet files under ${project.ducklakePath}/`)

  const change = (attribute: string, value: string, op: "add" | "delete" | "set", unit = "", actor = "alice") => ({
    irodsPath: sample,
    targetType: "data_object" as const,
    attribute,
    value,
    unit,
    op,
    actor,
    source: "mesa-mcp:add_metadata"
  })
  const s1 = yield* client.recordChanges({
    projectId: project.projectId,
    actor: "alice",
    note: "initial description",
    changes: [change("depth", "10", "add", "cm"), change("crop", "wheat", "add"), change("status", "raw", "add")]
  })
  if (!s1.recorded) return yield* Effect.die("demo needs a catalog")
  yield* Effect.sleep("20 millis")
  const between = new Date()
  yield* Effect.sleep("20 millis")
  const s2 = yield* client.recordChanges({
    projectId: project.projectId,
    actor: "bob",
    note: "QC pass",
    changes: [change("status", "qc-passed", "set", "", "bob"), change("depth", "12", "set", "cm", "bob")]
  })
  const s3 = yield* client.recordChanges({
    projectId: project.projectId,
    actor: "alice",
    note: "crop was mislabelled",
    changes: [change("crop", "wheat", "delete"), change("crop", "barley", "add")]
  })
  if (!s2.recorded || !s3.recorded) return yield* Effect.die("demo needs a catalog")
  yield* Console.log(`recorded snapshots ${s1.snapshotId}, ${s2.snapshotId}, ${s3.snapshotId}`)

  yield* Console.log(`\nCurrent AVUs of ${sample}:\n${table(yield* client.getAvus(project.projectId, sample))}`)
  yield* Console.log(
    `\nAVUs as of ${between.toISOString()} (before bob's QC pass):\n${
      table(yield* client.getAvusAsOf(project.projectId, sample, between))
    }`
  )
  const history = yield* client.getHistory(project.projectId, { irodsPath: sample })
  yield* Console.log(`\nHistory (newest first):`)
  for (const h of history) {
    yield* Console.log(
      `  #${h.snapshotId}.${h.changeSeq} ${h.ts.toISOString()} ${h.op.padEnd(6)} ${h.attribute}=${h.value}${
        h.unit ? ` [${h.unit}]` : ""
      } by ${h.actor} via ${h.source}`
    )
  }
  yield* Console.log(`\nSnapshots:`)
  for (const s of yield* client.listSnapshots(project.projectId)) {
    yield* Console.log(`  ${s.snapshotId} ${s.ts.toISOString()} ${s.actor}: ${s.note ?? ""} (${s.changeCount} rows, ${s.dataFile})`)
  }
  const d = yield* client.diff(project.projectId, s1.snapshotId, s3.snapshotId)
  yield* Console.log(`\nDiff ${s1.snapshotId} → ${s3.snapshotId}:`)
  for (const p of d) {
    for (const a of p.added) yield* Console.log(`  + ${p.irodsPath}: ${a.attribute}=${a.value}${a.unit ? ` [${a.unit}]` : ""}`)
    for (const r of p.removed) yield* Console.log(`  - ${p.irodsPath}: ${r.attribute}=${r.value}${r.unit ? ` [${r.unit}]` : ""}`)
  }
})

const main = Effect.gen(function*() {
  yield* Effect.promise(() => fs.rm(base, { recursive: true, force: true }))
  yield* program.pipe(
    Effect.provide(Embedded.layer({ zoneDir: nodePath.join(base, "zone"), cacheDir: nodePath.join(base, "cache") }))
  )
})

NodeRuntime.runMain(main)
