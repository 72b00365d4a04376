/**
 * `mesa-ducklake listen` as a process (from source, under tsx): configured by the environment alone, it prints JSON
 * progress lines, records what the Data Store publishes, keeps the broker password out of its output, and exits 130
 * on SIGINT with its connections closed.
 */
import { expect, layer } from "@effect/vitest"
import { Effect, Redacted } from "effect"
import { spawn } from "node:child_process"
import * as nodePath from "node:path"
import { DuckLakeClient } from "../../src/client/DuckLakeClient.js"
import { EmbeddedPostgres } from "../../src/postgres/EmbeddedPostgres.js"
import { embedded } from "../support.js"
import { brokerScoped, dataStoreScoped, historyState } from "./support.js"

const REPO = nodePath.resolve(import.meta.dirname, "../..")
const { dirs, layer: Live } = embedded("events-cli")

layer(Live, { timeout: "180 seconds", excludeTestServices: true })("mesa-ducklake listen", (it) => {
  it.scoped("records published changes, prints progress as JSON, and exits 130 on SIGINT", () =>
    Effect.gen(function*() {
      const broker = yield* brokerScoped
      const exchange = `irods-cli-${process.pid}`
      const { store, server, publisher } = yield* dataStoreScoped(broker, exchange)
      const root = `/testZone/home/rods/cli-${process.pid}`
      server.makeCollection(root)
      const a = server.putObject(`${root}/a.csv`, "x").path
      const client = yield* DuckLakeClient
      const p = yield* client.registerProject({ irodsPath: root, actor: "rods" })
      const pg = yield* EmbeddedPostgres
      const child = spawn(process.execPath, ["--import", "tsx", "scripts/cli.ts", "listen", "--json", "--every", "1"], {
        cwd: REPO,
        env: {
          PATH: process.env.PATH ?? "",
          HOME: dirs.base,
          MESA_DUCKLAKE_DSN: Redacted.value(pg.dsn),
          MESA_DUCKLAKE_STORAGE: "mounted",
          MESA_DUCKLAKE_MOUNT_ROOT: dirs.zoneDir,
          MESA_DUCKLAKE_CACHE_DIR: nodePath.join(dirs.base, "cli-cache"),
          MESA_DUCKLAKE_IRODS_HOST: server.host,
          MESA_DUCKLAKE_IRODS_PORT: String(server.port),
          MESA_DUCKLAKE_IRODS_ZONE: server.zone,
          MESA_DUCKLAKE_IRODS_USER: "rods",
          MESA_DUCKLAKE_IRODS_PASSWORD: "rods",
          MESA_DUCKLAKE_AMQP_URI: broker.uri,
          MESA_DUCKLAKE_AMQP_EXCHANGE: exchange,
          MESA_DUCKLAKE_AMQP_QUEUE: `cli-${process.pid}`,
          MESA_DUCKLAKE_AMQP_BATCH_MS: "100"
        },
        stdio: ["ignore", "pipe", "pipe"]
      })
      let stdout = ""
      let stderr = ""
      child.stdout.on("data", (d: Buffer) => void (stdout += d.toString()))
      child.stderr.on("data", (d: Buffer) => void (stderr += d.toString()))
      const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)))
      const lines = () => stdout.split("\n").filter((l) => l.trim() !== "").map((l) => JSON.parse(l) as Record<string, unknown>)
      const until = (ok: () => boolean, ms: number) =>
        Effect.promise(async () => {
          const end = Date.now() + ms
          while (!ok() && Date.now() < end) await new Promise((r) => setTimeout(r, 50))
          return ok()
        })
      expect(yield* until(() => lines().some((l) => l.event === "connected"), 60_000), JSON.stringify({ stdout, stderr })).toBe(true)
      store.add(a, { attribute: "stage", value: "raw" })
      store.set(a, { attribute: "depth", value: "10", unit: "cm" })
      store.mod(a, { attribute: "stage", value: "raw" }, { value: "clean" })
      yield* Effect.promise(() => publisher.settled())
      expect(yield* until(() => lines().some((l) => l.event === "progress" && l.received === 3 && l.changes === 4), 30_000), JSON.stringify({ stdout, stderr }))
        .toBe(true)
      child.kill("SIGINT")
      const code = yield* Effect.promise(() => exited)
      expect(code).toBe(130)
      expect(lines()[0]).toMatchObject({ event: "starting", broker: `127.0.0.1:${broker.port}/`, queue: `cli-${process.pid}` })
      expect(stdout + stderr).not.toContain("guest:guest")
      expect(yield* historyState(p.projectId, [a])).toEqual(store.oracle(root))
    }))
})
