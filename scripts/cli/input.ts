/**
 * `record`'s stdin: one JSON change object, a JSON array of them, a batch envelope
 * `{ "project_id"?, "actor"?, "note"?, "idempotency_key"?, "changes": [...] }`, or NDJSON (one change per line).
 * Keys may be snake_case (as the original CLI and its rules send them) or camelCase; `project_id` may sit on each
 * change. Everything is validated here, so bad input fails with exit 1 whether or not a catalog is configured.
 */
import { Effect } from "effect"
import { decodeChange } from "../../src/core/domain.js"
import { InvalidChange } from "../../src/core/errors.js"
import { InvalidInput } from "./output.js"

export interface StdinBatch {
  readonly changes: ReadonlyArray<Record<string, unknown>>
  readonly projectId: string | undefined
  readonly actor: string | undefined
  readonly note: string | undefined
  readonly idempotencyKey: string | undefined
}

/**
 * Where a byte sequence stops being UTF-8: the offset of the first byte of the first ill-formed sequence (the
 * Unicode standard's well-formed table: no overlong forms, no surrogates, nothing above U+10FFFF), or -1.
 */
export const firstInvalidUtf8 = (b: Uint8Array): number => {
  let i = 0
  while (i < b.length) {
    const c = b[i]!
    if (c < 0x80) {
      i++
      continue
    }
    const n = c >= 0xc2 && c <= 0xdf ? 1 : c >= 0xe0 && c <= 0xef ? 2 : c >= 0xf0 && c <= 0xf4 ? 3 : 0
    if (n === 0 || i + n >= b.length) return i
    const lo = c === 0xe0 ? 0xa0 : c === 0xf0 ? 0x90 : 0x80
    const hi = c === 0xed ? 0x9f : c === 0xf4 ? 0x8f : 0xbf
    if (b[i + 1]! < lo || b[i + 1]! > hi) return i
    for (let k = 2; k <= n; k++) if (b[i + k]! < 0x80 || b[i + k]! > 0xbf) return i
    i += n + 1
  }
  return -1
}

/**
 * Bytes → text, refusing anything that is not UTF-8. A lenient decode (`Buffer#toString`) turns each bad byte into
 * U+FFFD, which would then be recorded as if the caller had sent it; refusing keeps the history to what was meant.
 * A leading byte-order mark is dropped.
 */
export const decodeUtf8 = (bytes: Uint8Array, source: string): Effect.Effect<string, InvalidInput> =>
  Effect.suspend(() => {
    try {
      return Effect.succeed(new TextDecoder("utf-8", { fatal: true }).decode(bytes))
    } catch {
      const at = firstInvalidUtf8(bytes)
      const where = at < 0
        ? ""
        : `: byte 0x${bytes[at]!.toString(16).padStart(2, "0")} at offset ${at} (line ${
          bytes.subarray(0, at).reduce((n, x) => (x === 0x0a ? n + 1 : n), 1)
        })`
      return Effect.fail(new InvalidInput({ reason: `${source} is not valid UTF-8${where}; nothing was recorded` }))
    }
  })

/** Reads all of stdin, which must be UTF-8 (see `decodeUtf8`). */
export const readStdin = Effect.async<Uint8Array, InvalidInput>((resume) => {
  if (process.stdin.isTTY) {
    resume(Effect.fail(new InvalidInput({ reason: "record reads the changes as JSON or NDJSON on stdin (nothing was piped)" })))
    return
  }
  const chunks: Array<Buffer> = []
  const onData = (c: Buffer) => chunks.push(c)
  const onEnd = () => resume(Effect.succeed(Buffer.concat(chunks)))
  const onError = (e: Error) => resume(Effect.fail(new InvalidInput({ reason: `cannot read stdin: ${e.message}` })))
  process.stdin.on("data", onData).once("end", onEnd).once("error", onError)
  return Effect.sync(() => {
    process.stdin.off("data", onData).off("end", onEnd).off("error", onError)
    process.stdin.pause()
  })
}).pipe(Effect.flatMap((bytes) => decodeUtf8(bytes, "stdin")))

const camel = (k: string) => k.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase())

/** snake_case and camelCase keys → camelCase; the same field under both spellings must agree. */
export const normaliseKeys = (raw: Record<string, unknown>, index: number): Effect.Effect<Record<string, unknown>, InvalidChange> =>
  Effect.suspend(() => {
    const out: Record<string, unknown> = {}
    for (const [k, v] of Object.entries(raw)) {
      const c = camel(k)
      if (c in out && JSON.stringify(out[c]) !== JSON.stringify(v)) {
        return Effect.fail(new InvalidChange({ field: c, reason: `given twice with different values (${k})`, index }))
      }
      out[c] = v
    }
    return Effect.succeed(out)
  })

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v)

const optionalText = (field: string, v: unknown) =>
  v === undefined || v === null
    ? Effect.succeed(undefined)
    : typeof v === "string" && v.trim() !== ""
    ? Effect.succeed(v)
    : Effect.fail(new InvalidChange({ field, reason: "must be a non-blank string" }))

/** What the CLI fills in on changes that lack it: `--actor` (or the default actor) and `--source` (or the CLI's). */
export interface Fill {
  readonly actor: string
  readonly source: string
}

/** A change (camelCase keys) with `actor` and `source` filled in where it has none. */
export const fillChange = (change: Record<string, unknown>, fill: Fill): Record<string, unknown> => ({
  ...change,
  actor: change.actor === undefined || change.actor === null ? fill.actor : change.actor,
  source: change.source === undefined || change.source === null ? fill.source : change.source
})

/**
 * Parse stdin text into a validated batch (the changes still in their input form, camelCase). `fill` gives the
 * actor and source of changes that name none; its actor is asked for only when some change lacks one.
 */
export const parseBatch = <E, R>(
  text: string,
  fill: (envelopeActor: string | undefined) => Effect.Effect<Fill, E, R>
): Effect.Effect<StdinBatch, InvalidInput | InvalidChange | E, R> =>
  Effect.gen(function*() {
    if (text.trim() === "") return yield* new InvalidInput({ reason: "stdin holds no changes" })
    let items: Array<unknown>
    let envelope: Record<string, unknown> = {}
    let whole: unknown
    let parsed = true
    try {
      whole = JSON.parse(text)
    } catch {
      parsed = false
    }
    if (parsed) {
      if (Array.isArray(whole)) items = whole
      else if (isObject(whole) && Array.isArray(whole.changes)) {
        envelope = yield* normaliseKeys(whole, 0)
        items = whole.changes as Array<unknown>
        delete envelope.changes
      } else items = [whole]
    } else {
      items = []
      const lines = text.split(/\r?\n/)
      for (let i = 0; i < lines.length; i++) {
        const line = lines[i]!.trim()
        if (line === "") continue
        try {
          items.push(JSON.parse(line))
        } catch (e) {
          return yield* new InvalidInput({
            reason: `stdin is neither JSON nor NDJSON: line ${i + 1}: ${e instanceof Error ? e.message : String(e)}`
          })
        }
      }
    }
    if (items.length === 0) return yield* new InvalidInput({ reason: "stdin holds no changes" })
    for (const k of Object.keys(envelope)) {
      if (!["projectId", "actor", "note", "idempotencyKey"].includes(k)) {
        return yield* new InvalidChange({ field: k, reason: "is not a batch field (projectId, actor, note, idempotencyKey, changes)" })
      }
    }

    const envelopeActor = yield* optionalText("actor", envelope.actor)
    const filled = yield* fill(envelopeActor)
    const changes: Array<Record<string, unknown>> = []
    const projectIds = new Set<string>()
    for (let i = 0; i < items.length; i++) {
      const item = items[i]
      if (!isObject(item)) return yield* new InvalidChange({ field: "change", reason: "must be a JSON object", index: i })
      const { projectId, ...given } = yield* normaliseKeys(item, i)
      const change = fillChange(given, filled)
      if (projectId !== undefined && projectId !== null) {
        if (typeof projectId !== "string") return yield* new InvalidChange({ field: "projectId", reason: "must be a string", index: i })
        projectIds.add(projectId)
      }
      yield* decodeChange(change, i)
      changes.push(change)
    }
    const envelopeProject = yield* optionalText("projectId", envelope.projectId)
    if (envelopeProject !== undefined) projectIds.add(envelopeProject)
    if (projectIds.size > 1) {
      return yield* new InvalidChange({ field: "projectId", reason: "changes name more than one project; one invocation records one snapshot" })
    }
    return {
      changes,
      projectId: [...projectIds][0],
      actor: envelopeActor,
      note: yield* optionalText("note", envelope.note),
      idempotencyKey: yield* optionalText("idempotencyKey", envelope.idempotencyKey)
    }
  })
