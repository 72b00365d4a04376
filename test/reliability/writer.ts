/**
 * A writer in its own process, for the reliability suite: its own `DuckLakeClient` over the parent's catalog (the
 * DSN comes from the environment, never argv), the same zone directory and cache directory.
 *
 * Environment:
 *   MESA_DUCKLAKE_DSN        the catalog (password included: it must never reach argv, stdout or stderr)
 *   RELIABILITY_ZONE_DIR     directory standing in for the iRODS zone (logical prefix `/`)
 *   RELIABILITY_CACHE_DIR    local cache
 *   RELIABILITY_PLAN         JSON `WriterPlan`
 *
 * Protocol on stdout, one JSON object per line (written synchronously: a pipe write on Linux is, so a line printed
 * before a SIGKILL reaches the parent):
 *   {"t":"ready"}                                            the client is built
 *   {"t":"attempt","key","project","start"}                  a batch is about to be recorded
 *   {"t":"committed","key","project","snapshotId","start","end","replayed"}   recordChanges answered success
 *   {"t":"retry","key","project","tag"}                     a failed attempt (retried when CatalogUnavailable)
 *   {"t":"error","key","project","tag","message"}            recordChanges failed (typed error tag)
 *   {"t":"done"}
 *
 * Crash injection: with `kill: { step, at }` the process SIGKILLs itself at that step of its `at`-th write
 * (1-based, counted across projects). Steps are the `WriteProbe` steps plus `mid-push`: the storage wrapper copies
 * the first half of the Parquet file to its destination, then dies.
 */
import { Effect, Layer, Logger, Redacted, Schedule } from "effect"
import * as fs from "node:fs"
import { client, mounted } from "../../layers/components.js"
import { DuckLakeClient, WriteProbe, type WriteStep } from "../../src/client/DuckLakeClient.js"
import { faultyStorage } from "../faults.js"

export type KillStep = WriteStep | "mid-push"

export interface WriterPlan {
  /** Projects to write to, round-robin: `{ id, root }`. */
  readonly projects: ReadonlyArray<{ readonly id: string; readonly root: string }>
  readonly batches: number
  /** Batch keys are `<keyPrefix>-<n>` (n from 0); each batch writes its own object, so no batch hides another. */
  readonly keyPrefix: string
  readonly changesPerBatch: number
  readonly kill?: { readonly step: KillStep; readonly at: number }
  /** Retry a batch that failed with CatalogUnavailable, with the same idempotency key, up to this many times. */
  readonly retryUnavailable?: number
  /** Use the batch key as idempotency key. */
  readonly idempotent?: boolean
}

const say = (line: Record<string, unknown>) => fs.writeSync(1, JSON.stringify(line) + "\n")

const env = (name: string) => {
  const v = process.env[name]
  if (v === undefined || v === "") throw new Error(`writer: ${name} is not set`)
  return v
}

const plan = JSON.parse(env("RELIABILITY_PLAN")) as WriterPlan
const zoneDir = env("RELIABILITY_ZONE_DIR")
let writeIndex = 0

const die = () => {
  process.kill(process.pid, "SIGKILL")
}

const probe = Layer.succeed(WriteProbe, {
  after: (step: WriteStep) =>
    Effect.sync(() => {
      if (plan.kill?.step === step && plan.kill.at === writeIndex) die()
    })
})

/** Mounted storage whose `put` of the chosen write's Parquet file stops half-way and kills the process. */
const storage = faultyStorage(mounted({ mountRoot: zoneDir, logicalPrefix: "/" }), {
  put: (local, path) => {
    if (plan.kill?.step === "mid-push" && plan.kill.at === writeIndex && path.endsWith(".parquet")) {
      const bytes = fs.readFileSync(local)
      const target = zoneDir + path
      const fd = fs.openSync(target, "w")
      fs.writeSync(fd, bytes, 0, Math.floor(bytes.length / 2))
      fs.fsyncSync(fd)
      die()
    }
    return undefined
  }
})

const live = client({ dsn: Redacted.make(env("MESA_DUCKLAKE_DSN")), cacheDir: env("RELIABILITY_CACHE_DIR") }, storage).pipe(
  Layer.provide(probe)
)

const program = Effect.gen(function*() {
  const lake = yield* DuckLakeClient
  say({ t: "ready" })
  for (let n = 0; n < plan.batches; n++) {
    const project = plan.projects[n % plan.projects.length]!
    const key = `${plan.keyPrefix}-${n}`
    const changes = Array.from({ length: plan.changesPerBatch }, (_, i) => ({
      irodsPath: `${project.root}/${plan.keyPrefix}/${key}`,
      targetType: "data_object" as const,
      attribute: `a${i}`,
      value: key,
      unit: "",
      op: "add" as const,
      actor: "writer",
      source: "reliability"
    }))
    writeIndex++
    const start = Date.now()
    say({ t: "attempt", key, project: project.id, start })
    const input = {
      projectId: project.id,
      actor: "writer",
      note: key,
      changes,
      ...(plan.idempotent === true ? { idempotencyKey: key } : {})
    }
    const result = yield* lake.recordChanges(input).pipe(
      Effect.tapError((e) => Effect.sync(() => say({ t: "retry", key, project: project.id, tag: e._tag }))),
      Effect.retry({
        while: (e) => e._tag === "CatalogUnavailable",
        times: plan.retryUnavailable ?? 0,
        schedule: Schedule.spaced("250 millis")
      }),
      Effect.either
    )
    if (result._tag === "Right") {
      const r = result.right
      if (!r.recorded) return yield* Effect.dieMessage("writer: not recorded")
      say({ t: "committed", key, project: project.id, snapshotId: r.snapshotId, start, end: Date.now(), replayed: r.replayed })
    } else {
      say({ t: "error", key, project: project.id, tag: result.left._tag, message: result.left.message })
    }
  }
  say({ t: "done" })
})

program.pipe(
  Effect.provide(live),
  // Logs go to stderr, so stdout carries only the protocol (the parent checks both for the password).
  Effect.provide(Logger.replace(Logger.defaultLogger, Logger.prettyLogger({ stderr: true, colors: false }))),
  Effect.runPromise
).then(
  () => process.exit(0),
  (e) => {
    process.stderr.write(`writer failed: ${e instanceof Error ? e.message : String(e)}\n`)
    process.exit(1)
  }
)
