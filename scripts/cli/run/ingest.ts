/**
 * Handler of `ingest` (`../commands/record.ts`): NDJSON changes streamed from stdin into `client.ingestChanges`,
 * which records them as consecutive snapshots. Memory stays constant whatever the input's length: stdin is read
 * as the client pulls (stream backpressure), line by line, and nothing is kept but counters.
 *
 * Progress on stderr: changes read, the rate, and — when stdin is a regular file, whose size is known — the share
 * done and an ETA; redrawn in place on a terminal, a `progress:` line now and then otherwise.
 *
 * Bad input (not UTF-8, a line that is not a JSON object, an invalid change) stops the ingest with exit 1 naming
 * the stdin line; the snapshots committed before it stay (each is whole), and a rerun with the same
 * `--idempotency-key` after fixing the input replays them and carries on from there.
 */
import type { Command } from "@effect/cli"
import { Effect, Fiber, Option, Schedule } from "effect"
import * as fs from "node:fs"
import { DuckLakeClient } from "../../../src/client/DuckLakeClient.js"
import { CatalogUnavailable, InvalidChange } from "../../../src/core/errors.js"
import type { ingestConfig } from "../commands/record.js"
import { actorOf, ClientLive, dsnOption, resolveProject } from "../environment.js"
import { type Fill, fillChange, firstInvalidUtf8, normaliseKeys } from "../input.js"
import { count, doneProgress, duration, emit, formatRecord, InvalidInput, makeProgressLine, withProgress } from "../output.js"
import { fillFrom } from "./record.js"

type Parsed<C extends Command.Command.Config> = Command.Command.ParseConfig<C>

/** What the reader has done so far (read by the progress line). */
interface Counters {
  bytes: number
  changes: number
  lines: number
  /** The size of stdin when it is a regular file. */
  readonly totalBytes: number | undefined
}

/** Stdin's size when it is a regular file (`< changes.ndjson`); unknown for a pipe. */
const stdinSize = (): number | undefined => {
  try {
    const st = fs.fstatSync(0)
    return st.isFile() ? st.size : undefined
  } catch {
    return undefined
  }
}

/**
 * NDJSON changes from a byte stream, one per non-blank line, keys normalised to camelCase and `fill` applied. Bad
 * input is kept in `failure` (the client reports a source that throws as its own InvalidChange; the handler
 * answers ours instead) and thrown. `lineOf` maps the index of a change the client refuses to its stdin line.
 */
export const ndjsonChanges = (input: AsyncIterable<Buffer>, fill: Fill, counters: Counters) => {
  const state = { failure: undefined as InvalidInput | InvalidChange | undefined, blanksBefore: [] as Array<number> }
  const fail = (e: InvalidInput | InvalidChange) => {
    state.failure = e
    return e
  }
  const parseLine = (line: string, lineNo: number): Record<string, unknown> => {
    let value: unknown
    try {
      value = JSON.parse(line)
    } catch (e) {
      throw fail(new InvalidInput({ reason: `stdin line ${lineNo} is not JSON: ${e instanceof Error ? e.message : String(e)}` }))
    }
    if (typeof value !== "object" || value === null || Array.isArray(value)) {
      throw fail(new InvalidInput({ reason: `stdin line ${lineNo}: a change must be one JSON object per line (NDJSON)` }))
    }
    const normalised = Effect.runSync(Effect.either(normaliseKeys(value as Record<string, unknown>, counters.changes)))
    if (normalised._tag === "Left") throw fail(normalised.left)
    const { projectId: _ignored, ...change } = normalised.right
    return fillChange(change, fill)
  }
  async function* changes(): AsyncGenerator<Record<string, unknown>> {
    const decoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: false })
    let rest = ""
    try {
      for await (const chunk of input) {
        let text: string
        try {
          text = decoder.decode(chunk, { stream: true })
        } catch {
          const at = Math.max(0, firstInvalidUtf8(chunk))
          throw fail(new InvalidInput({ reason: `stdin is not valid UTF-8 near byte ${counters.bytes + at} (after line ${counters.lines})` }))
        }
        counters.bytes += chunk.length
        const parts = (rest + text).split("\n")
        rest = parts.pop()!
        for (const part of parts) {
          counters.lines++
          if (part.trim() === "") {
            state.blanksBefore.push(counters.changes)
            continue
          }
          const change = parseLine(part, counters.lines)
          counters.changes++
          yield change
        }
      }
      try {
        rest += decoder.decode()
      } catch {
        throw fail(new InvalidInput({ reason: `stdin ends inside a UTF-8 sequence (after line ${counters.lines})` }))
      }
      if (rest.trim() !== "") {
        counters.lines++
        const change = parseLine(rest, counters.lines)
        counters.changes++
        yield change
      }
    } finally {
      // Given up on (an error, an interruption): stop reading stdin.
      if (!process.stdin.destroyed) process.stdin.destroy()
    }
  }
  /** The stdin line of the change at `index` (blank lines are not changes). */
  const lineOf = (index: number) => index + 1 + state.blanksBefore.filter((b) => b <= index).length
  return { changes: changes(), state, lineOf }
}

const progressText = (c: Counters, started: number) => {
  const seconds = (Date.now() - started) / 1000
  const rate = seconds > 0 ? c.changes / seconds : 0
  const parts = [`ingest: ${count(c.changes)} changes read`, `${count(Math.round(rate))}/s`]
  if (c.totalBytes !== undefined && c.totalBytes > 0) {
    const share = Math.min(1, c.bytes / c.totalBytes)
    const byteRate = seconds > 0 ? c.bytes / seconds : 0
    parts.push(`${(share * 100).toFixed(1)} %`, `ETA ${byteRate > 0 ? duration((c.totalBytes - c.bytes) / byteRate) : "?"}`)
  }
  parts.push(`${duration(seconds)} elapsed`)
  return parts.join(" · ")
}

export const ingest = (o: Parsed<typeof ingestConfig>) =>
  Effect.gen(function*() {
    if (process.stdin.isTTY) {
      return yield* new InvalidInput({ reason: "ingest reads NDJSON changes on stdin (nothing was piped)" })
    }
    if (Option.isNone(yield* dsnOption)) return yield* new CatalogUnavailable({ reason: "not-configured" })
    const fill = yield* fillFrom(o.actor, o.source)(undefined)
    const counters: Counters = { bytes: 0, changes: 0, lines: 0, totalBytes: stdinSize() }
    const reader = ndjsonChanges(process.stdin, fill, counters)
    // The project: --project, else the one containing the first change's path (read before the ingest starts).
    const head = yield* Effect.tryPromise({
      try: () => reader.changes.next(),
      catch: (e) => reader.state.failure ?? new InvalidInput({ reason: `cannot read stdin: ${String(e)}` })
    })
    if (head.done === true) return yield* new InvalidInput({ reason: "stdin holds no changes" })
    const first = head.value
    const ref = Option.getOrElse(o.project, () => (typeof first.irodsPath === "string" ? first.irodsPath : ""))
    if (ref === "") return yield* new InvalidChange({ field: "irodsPath", reason: "is missing (and no --project was given)", index: 0 })

    const client = yield* DuckLakeClient
    const project = yield* resolveProject(ref)
    const all = (async function*() {
      yield first
      yield* reader.changes
    })()
    const line = makeProgressLine()
    const ticker = yield* Effect.forkDaemon(Effect.repeat(
      Effect.sync(() => line.show(progressText(counters, line.started))),
      Schedule.spaced("200 millis")
    ))
    const report = yield* client.ingestChanges({
      projectId: project.projectId,
      actor: yield* actorOf(o.actor),
      changes: all,
      ...Option.match(o.note, { onNone: () => ({}), onSome: (note) => ({ note }) }),
      ...Option.match(o.idempotencyKey, { onNone: () => ({}), onSome: (idempotencyKey) => ({ idempotencyKey }) }),
      ...Option.match(o.snapshotSize, { onNone: () => ({}), onSome: (snapshotSize) => ({ snapshotSize }) })
    }).pipe(
      Effect.catchTag("InvalidChange", (e) => {
        if (reader.state.failure !== undefined) return Effect.fail(reader.state.failure)
        return Effect.fail(
          e.index === undefined
            ? e
            : new InvalidChange({ field: e.field, reason: `${e.reason} (stdin line ${reader.lineOf(e.index)})`, index: e.index })
        )
      }),
      Effect.ensuring(Effect.zipRight(Fiber.interrupt(ticker), doneProgress))
    )
    if (!report.recorded) return yield* new CatalogUnavailable({ reason: "not-configured" })
    // The current-state index catches up with the ingest's snapshots in the background: wait for it here, so the
    // command ends with the history fully indexed (Ctrl-C leaves it to the next writer, as any interrupted catch-up).
    yield* withProgress(`ingest: ${count(report.changeCount)} changes recorded; catching up the current-state index…`, client.flush)
    const seconds = (Date.now() - line.started) / 1000
    const out = {
      recorded: true,
      projectId: report.projectId,
      changeCount: report.changeCount,
      snapshots: report.snapshots.length,
      firstSnapshot: report.snapshots[0] ?? null,
      lastSnapshot: report.snapshots[report.snapshots.length - 1] ?? null,
      replayed: report.replayed,
      unmatchedDeletes: report.unmatchedDeletes,
      seconds: Math.round(seconds * 10) / 10
    }
    yield* emit(o.json, out, (r) =>
      formatRecord([
        ["ingested", `${count(r.changeCount)} change(s) into ${project.irodsPath}`],
        ["snapshots", r.snapshots === 0 ? "none" : `${r.snapshots} (${r.firstSnapshot}–${r.lastSnapshot})`],
        ...(r.replayed > 0 ? [["replayed", `${r.replayed} snapshot(s) an earlier run had recorded`] as const] : []),
        ...(r.unmatchedDeletes > 0 ? [["deletes matching nothing", r.unmatchedDeletes] as const] : []),
        ["took", `${duration(seconds)} (${count(Math.round(r.changeCount / Math.max(seconds, 0.001)))}/s)`]
      ]))
  }).pipe(Effect.provide(ClientLive))
