/**
 * The domain model: iRODS paths, AVU changes, projects, snapshots and query results.
 *
 * Inputs are decoded with `Schema` at the edge of every public method, so bad input becomes an `InvalidChange`
 * that names the field, before anything touches the catalog or storage.
 */
import { Effect, Either, ParseResult, Schema } from "effect"
import { InvalidChange } from "./errors.js"

/** iRODS' MAX_NAME_LEN is 1088 bytes including the terminating NUL. */
export const MAX_PATH_BYTES = 1087
/** iRODS limits attribute, value and unit to 2700 bytes each (the r_meta_main columns). */
export const MAX_AVU_BYTES = 2700
/** Provenance strings (actor, source, note, ...) are free text but bounded. */
export const MAX_TEXT_BYTES = 2700
/** Changes in one batch: one batch is one snapshot and one Parquet file. */
export const MAX_BATCH = 10_000

const utf8Bytes = (s: string) => Buffer.byteLength(s, "utf8")
// Lone surrogates cannot be encoded as UTF-8; iRODS and Parquet would both mangle them.
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/
const isWellFormed = (s: string): boolean =>
  typeof (s as { isWellFormed?: () => boolean }).isWellFormed === "function"
    ? (s as unknown as { isWellFormed: () => boolean }).isWellFormed()
    : !LONE_SURROGATE.test(s)
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f]/

/** Why a string is not an acceptable iRODS path, or undefined when it is (after normalisation). */
/** A `.` or `..` segment anywhere in a path. */
const DOT_SEGMENT = /(?:^|\/)\.{1,2}(?:\/|$)/

export const irodsPathProblem = (s: string): string | undefined => {
  if (s.length === 0) return "is empty"
  if (s.charCodeAt(0) !== 47) return "must be absolute (start with /)"
  if (CONTROL.test(s)) return "contains NUL or control characters"
  if (!isWellFormed(s)) return "is not valid UTF-8 (lone surrogate)"
  if (DOT_SEGMENT.test(s)) return "must not contain . or .. segments"
  // A UTF-16 unit is at most 3 UTF-8 bytes: count the bytes only when that bound is over the limit.
  if (s.length * 3 > MAX_PATH_BYTES && utf8Bytes(s) > MAX_PATH_BYTES) return `is longer than ${MAX_PATH_BYTES} bytes`
  return undefined
}

/** Collapse repeated slashes and drop a trailing slash (the upstream library broke on `root/`). */
export const normalisePath = (s: string): string => {
  const collapsed = s.includes("//") ? s.replace(/\/{2,}/g, "/") : s
  return collapsed.length > 1 && collapsed.endsWith("/") ? collapsed.slice(0, -1) : collapsed
}

/** An absolute, normalised iRODS logical path. */
export const IrodsPath = Schema.String.pipe(
  Schema.filter((s) => irodsPathProblem(s) === undefined && normalisePath(s) === s, {
    message: () => "not a normalised absolute iRODS path"
  }),
  Schema.brand("IrodsPath")
)
export type IrodsPath = typeof IrodsPath.Type

/** Decodes any string into an `IrodsPath`, normalising slashes, or fails with `InvalidChange`. */
export const parseIrodsPath = (raw: unknown, field = "irodsPath", index?: number) =>
  Effect.suspend(() => {
    if (typeof raw !== "string") return Effect.fail(invalid(field, "must be a string", index))
    const problem = irodsPathProblem(raw)
    if (problem !== undefined) return Effect.fail(invalid(field, `path ${JSON.stringify(raw)} ${problem}`, index))
    return Effect.succeed(normalisePath(raw) as IrodsPath)
  })

const invalid = (field: string, reason: string, index?: number) =>
  new InvalidChange(index === undefined ? { field, reason } : { field, reason, index })

/** True when `path` is `root` or lies below it. */
export const isWithin = (path: string, root: string): boolean =>
  root === "/" ? path.startsWith("/") : path === root || path.startsWith(root + "/")

/** The parent collection of a path (`/` for top-level names). */
export const parentOf = (path: string): string => {
  const i = path.lastIndexOf("/")
  return i <= 0 ? "/" : path.slice(0, i)
}

export const TargetType = Schema.Literal("data_object", "collection", "resource", "user")
export type TargetType = typeof TargetType.Type

/** `set` replaces every value of an attribute on a path (iRODS `imeta set`); it is stored as deletes plus one add. */
export const ChangeOp = Schema.Literal("add", "delete", "set")
export type ChangeOp = typeof ChangeOp.Type
export const StoredOp = Schema.Literal("add", "delete")
export type StoredOp = typeof StoredOp.Type

/** Earliest and latest valid times we accept (PostgreSQL and DuckDB both hold these exactly). */
export const MIN_TIME = Date.UTC(1900, 0, 1)
export const MAX_TIME = Date.UTC(9999, 11, 31, 23, 59, 59, 999)

/**
 * `YYYY-MM-DD`, optionally followed by `T`/space, `HH:MM`, optionally `:SS` and 1–9 fraction digits, optionally a
 * zone (`Z`, `±HH`, `±HHMM` or `±HH:MM`; only after a time). Each field is captured and checked by `calendarMs`:
 * the regex alone would let `2024-02-30` or `24:00` through, which `Date.parse` silently rolls over.
 */
const ISO_TIMESTAMP =
  /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?(Z|([+-])(\d{2})(?::?(\d{2}))?)?)?$/i

const MONTHS = [
  "January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December"
]
const isLeapYear = (y: number) => y % 4 === 0 && (y % 100 !== 0 || y % 400 === 0)
const daysInMonth = (y: number, m: number) => (m === 2 ? (isLeapYear(y) ? 29 : 28) : [4, 6, 9, 11].includes(m) ? 30 : 31)

/**
 * The epoch milliseconds of an ISO-8601 string whose every calendar field is in range, or why not. Nothing rolls
 * over: month 01–12, day 01 to the month's last (leap years: divisible by 4, centuries only by 400), hour 00–23,
 * minute 00–59, second 00–59, offset hours 00–23 and minutes 00–59 (RFC 3339's grammar). A leap second (`:60`) is
 * refused: JavaScript, PostgreSQL and DuckDB times have no leap seconds, so it could only be stored as the next
 * second (PostgreSQL rolls `23:59:60` into the next day), the silent shift this parser exists to prevent; iRODS
 * keeps POSIX seconds, which never show one. Fraction digits beyond milliseconds are dropped (truncated).
 */
const calendarMs = (s: string, raw: string): number | { readonly problem: string } => {
  const m = ISO_TIMESTAMP.exec(s)
  if (m === null) return { problem: `${JSON.stringify(raw)} is not an ISO-8601 timestamp` }
  const [, yy, mo, dd, hh = "00", mi = "00", ss = "00", fraction = "", zone, sign, oh = "00", om = "00"] = m
  const year = Number(yy)
  const month = Number(mo)
  const day = Number(dd)
  const bad = (what: string) => ({ problem: `${JSON.stringify(raw)} is not a real time: ${what}` })
  if (month < 1 || month > 12) return bad(`month ${mo} is not 01–12`)
  const last = daysInMonth(year, month)
  if (day < 1 || day > last) return bad(`day ${dd} is not 01–${last} (${MONTHS[month - 1]} ${yy} has ${last} days)`)
  if (Number(hh) > 23) return bad(`hour ${hh} is not 00–23`)
  if (Number(mi) > 59) return bad(`minute ${mi} is not 00–59`)
  if (Number(ss) > 59) {
    return bad(`second ${ss} is not 00–59${ss === "60" ? " (a leap second cannot be stored: stored times have none)" : ""}`)
  }
  if (zone !== undefined && sign !== undefined && (Number(oh) > 23 || Number(om) > 59)) {
    return bad(`offset ${zone} is not within ±23:59`)
  }
  const d = new Date(0)
  // setUTCFullYear, not Date.UTC: Date.UTC reads years 0–99 as 1900–1999.
  d.setUTCFullYear(year, month - 1, day)
  d.setUTCHours(Number(hh), Number(mi), Number(ss), Number(fraction.padEnd(3, "0").slice(0, 3)))
  const offsetMinutes = sign === undefined ? 0 : (sign === "-" ? -1 : 1) * (Number(oh) * 60 + Number(om))
  return d.getTime() - offsetMinutes * 60_000
}

/**
 * Parses a timestamp the way the original library did: a string with `Z` or an offset is converted to UTC, a
 * naive ISO date-time is taken as UTC, a `Date` or epoch milliseconds are taken as they are; anything else fails.
 * Impossible calendar fields (`2024-02-30`, `24:00`, `23:59:60`, offset `+24:00`) and invalid `Date`s are refused,
 * never rolled over.
 */
export const parseTimestamp = (raw: unknown, field = "timestamp", index?: number): Effect.Effect<Date, InvalidChange> =>
  Effect.suspend(() => {
    const t = timestampMs(raw)
    return typeof t === "number" ? Effect.succeed(new Date(t)) : Effect.fail(invalid(field, t.problem, index))
  })

/** The epoch milliseconds of a timestamp, or why it is not one (shared by the Schema and the fast decoder). */
const timestampMs = (raw: unknown): number | { readonly problem: string } => {
  let ms: number
  if (raw instanceof Date) ms = raw.getTime()
  else if (typeof raw === "number") ms = raw
  else if (typeof raw === "string") {
    const t = calendarMs(raw.trim(), raw)
    if (typeof t !== "number") return t
    ms = t
  } else return { problem: "must be an ISO-8601 string, a Date or epoch milliseconds" }
  if (!Number.isFinite(ms)) return { problem: `${raw instanceof Date ? "the Date" : String(raw)} is not a valid time` }
  if (ms < MIN_TIME || ms > MAX_TIME) return { problem: `${new Date(ms).toISOString()} is outside 1900-01-01..9999-12-31` }
  return ms
}

const boundedText = (field: string, max: number, opts: { readonly allowEmpty: boolean }) =>
  Schema.String.pipe(
    Schema.filter((s) => {
      if (!opts.allowEmpty && s.trim().length === 0) return `${field} must not be empty`
      if (s.includes("\u0000")) return `${field} must not contain NUL`
      if (!isWellFormed(s)) return `${field} is not valid UTF-8 (lone surrogate)`
      if (utf8Bytes(s) > max) return `${field} is ${utf8Bytes(s)} bytes, more than ${max}`
      return true
    })
  )

/**
 * One AVU change as callers send it (mesa-mcp, rules, the CLI). `ts` is the valid time: when the change happened
 * in iRODS; it defaults to the snapshot's clock.
 */
export const AvuChangeInput = Schema.Struct({
  irodsPath: Schema.String,
  targetType: TargetType,
  attribute: boundedText("attribute", MAX_AVU_BYTES, { allowEmpty: false }),
  value: boundedText("value", MAX_AVU_BYTES, { allowEmpty: false }),
  unit: Schema.optionalWith(boundedText("unit", MAX_AVU_BYTES, { allowEmpty: true }), { default: () => "" }),
  op: ChangeOp,
  actor: boundedText("actor", MAX_TEXT_BYTES, { allowEmpty: false }),
  source: Schema.optionalWith(boundedText("source", MAX_TEXT_BYTES, { allowEmpty: false }), {
    default: () => "mesa-mcp"
  }),
  viaTicket: Schema.optional(boundedText("viaTicket", MAX_TEXT_BYTES, { allowEmpty: false })),
  ruleInvocation: Schema.optional(boundedText("ruleInvocation", MAX_TEXT_BYTES, { allowEmpty: false })),
  onBehalfOf: Schema.optional(boundedText("onBehalfOf", MAX_TEXT_BYTES, { allowEmpty: false })),
  /** iRODS object id (data object or collection id), when the caller or the storage adapter knows it. */
  objectId: Schema.optional(Schema.Int.pipe(Schema.positive())),
  ts: Schema.optional(Schema.Unknown)
})
export type AvuChangeInput = typeof AvuChangeInput.Encoded

/** A validated change with its path normalised and its time resolved. `op` may still be `set`. */
export interface AvuChange {
  readonly irodsPath: IrodsPath
  readonly targetType: TargetType
  readonly attribute: string
  readonly value: string
  readonly unit: string
  readonly op: ChangeOp
  readonly actor: string
  readonly source: string
  readonly viaTicket: string | null
  readonly ruleInvocation: string | null
  readonly onBehalfOf: string | null
  readonly objectId: number | null
  readonly ts: Date | null
}

/** One row of the AVU-change table, exactly as stored in Parquet (and read back). */
export interface ChangeRow {
  readonly snapshotId: number
  readonly changeSeq: number
  readonly ts: Date
  readonly irodsPath: string
  readonly targetType: TargetType
  readonly objectId: number | null
  readonly attribute: string
  readonly value: string
  readonly unit: string
  readonly op: StoredOp
  readonly actor: string
  readonly source: string
  readonly viaTicket: string | null
  readonly ruleInvocation: string | null
  readonly onBehalfOf: string | null
}

/** An AVU in effect on a path, with the provenance of the change that put it there. */
export interface Avu {
  readonly attribute: string
  readonly value: string
  readonly unit: string
  readonly actor: string
  readonly ts: Date
  readonly snapshotId: number
  readonly source: string
  readonly viaTicket: string | null
  readonly ruleInvocation: string | null
}

export const ProjectStatus = Schema.Literal("active", "archived")
export type ProjectStatus = typeof ProjectStatus.Type

export interface Project {
  readonly projectId: string
  readonly irodsPath: IrodsPath
  readonly irodsZone: string
  /** `<irodsPath>/.mesa/ducklake`: where this project's Parquet files live. */
  readonly ducklakePath: IrodsPath
  /** The PostgreSQL schema holding this project's DuckLake catalog (DuckLake's METADATA_SCHEMA). */
  readonly metadataSchema: string
  readonly createdAt: Date
  readonly createdBy: string
  readonly status: ProjectStatus
}

export interface Snapshot {
  readonly snapshotId: number
  readonly projectId: string
  /** Transaction time: when the snapshot was committed (strictly increasing per project). */
  readonly ts: Date
  readonly actor: string
  readonly note: string | null
  readonly changeCount: number
  /** Path of its Parquet file relative to the project's ducklake collection. */
  readonly dataFile: string
  readonly parentSnapshot: number | null
  readonly state: "committed"
}

export interface RecordResult {
  readonly recorded: true
  readonly projectId: string
  readonly snapshotId: number
  readonly parquetFile: string
  readonly changeCount: number
  /** Deletes that matched no AVU in effect: recorded as asked, but they changed nothing. */
  readonly unmatchedDeletes: number
  /** True when an idempotency key matched an earlier, identical batch and nothing new was written. */
  readonly replayed: boolean
}

/** What `recordChanges` answers in modes B and C, where no catalog is configured: the caller carries on. */
export interface NotRecorded {
  readonly recorded: false
  /** `no-catalog`: modes B/C; `nothing-to-record`: e.g. a rename of an object that carries no AVUs. */
  readonly reason: "no-catalog" | "nothing-to-record"
}

export interface RenameInput {
  readonly projectId: string
  readonly actor: string
  readonly from: string
  readonly to: string
  /** A collection's move carries its members (every path below it). Default `data_object`. */
  readonly targetType?: "data_object" | "collection"
  /** When the move happened (valid time); default the snapshot's clock. */
  readonly ts?: unknown
  readonly objectId?: number
  readonly source?: string
  readonly note?: string
  readonly idempotencyKey?: string
}

export interface HistoryFilter {
  readonly irodsPath?: string
  readonly attribute?: string
  readonly from?: unknown
  readonly to?: unknown
  readonly limit?: number
}

export interface AsOfOptions {
  /**
   * Transaction-time bound: answer with only what had been committed by then. A snapshot id, or a timestamp
   * (the last snapshot committed at or before it).
   */
  readonly knownAt?: number | Date | string
}

export interface PathDiff {
  readonly irodsPath: string
  readonly added: ReadonlyArray<{ readonly attribute: string; readonly value: string; readonly unit: string }>
  readonly removed: ReadonlyArray<{ readonly attribute: string; readonly value: string; readonly unit: string }>
}

export interface CompactionReport {
  readonly filesBefore: number
  readonly filesAfter: number
  /** Compacted files written (one snapshot each). */
  readonly filesWritten: number
  readonly bytesBefore: number
  readonly bytesAfter: number
  readonly snapshots: ReadonlyArray<number>
}

export interface RecoveryReport {
  readonly pushed: number
  readonly committed: number
  readonly failed: number
  readonly orphaned: number
  readonly missingLocal: number
  /** Commit markers written for committed snapshots that lacked one (their writer died after the commit). */
  readonly markers: number
}

/** Decode an unknown change into `AvuChange`, naming the offending field on failure. */
/** Compiled once: building a decoder per call cost more than the decoding itself (tens of µs per change). */
const decodeAvuChangeInput = Schema.decodeUnknownEither(AvuChangeInput, { errors: "first", onExcessProperty: "error" })

const CHANGE_KEYS = new Set([
  "irodsPath", "targetType", "attribute", "value", "unit", "op", "actor", "source", "viaTicket", "ruleInvocation",
  "onBehalfOf", "objectId", "ts"
])
const TARGET_TYPES = new Set(TargetType.literals)
const OPS = new Set(ChangeOp.literals)

/** The same test as `boundedText`, as a plain predicate. */
const okText = (v: unknown, max: number, allowEmpty: boolean): v is string =>
  typeof v === "string" && (allowEmpty || v.trim().length > 0) && !v.includes("\u0000") && isWellFormed(v) &&
  (v.length * 3 <= max || utf8Bytes(v) <= max)

const keep = (s: string) => s

/**
 * The common case of `decodeChange` without Schema: a plain object whose every field is valid. It answers only
 * when it is sure; anything else (a bad field, an unusual shape) goes to the Schema decoder, which alone words the
 * errors. About 15× faster, which bulk ingest needs; `test/decode.test.ts` checks it agrees with the Schema path.
 * `intern` may replace a text by an equal one (bulk ingest keeps one copy of the texts that repeat).
 */
export const decodeChangeFast = (raw: unknown, intern: (s: string) => string = keep): AvuChange | undefined => {
  if (raw === null || typeof raw !== "object" || Object.getPrototypeOf(raw) !== Object.prototype) return undefined
  const c = raw as Record<string, unknown>
  for (const k in c) if (!CHANGE_KEYS.has(k)) return undefined
  const { actor, attribute, irodsPath, objectId, onBehalfOf, op, ruleInvocation, source, targetType, ts, unit, value, viaTicket } = c
  if (typeof irodsPath !== "string" || irodsPathProblem(irodsPath) !== undefined) return undefined
  if (!TARGET_TYPES.has(targetType as TargetType) || !OPS.has(op as ChangeOp)) return undefined
  if (!okText(attribute, MAX_AVU_BYTES, false) || !okText(value, MAX_AVU_BYTES, false)) return undefined
  if (unit !== undefined && !okText(unit, MAX_AVU_BYTES, true)) return undefined
  if (!okText(actor, MAX_TEXT_BYTES, false)) return undefined
  if (source !== undefined && !okText(source, MAX_TEXT_BYTES, false)) return undefined
  if (viaTicket !== undefined && !okText(viaTicket, MAX_TEXT_BYTES, false)) return undefined
  if (ruleInvocation !== undefined && !okText(ruleInvocation, MAX_TEXT_BYTES, false)) return undefined
  if (onBehalfOf !== undefined && !okText(onBehalfOf, MAX_TEXT_BYTES, false)) return undefined
  if (objectId !== undefined && !(Number.isSafeInteger(objectId) && (objectId as number) > 0)) return undefined
  let time: Date | null = null
  if (ts !== undefined && ts !== null) {
    const ms = timestampMs(ts)
    if (typeof ms !== "number") return undefined
    time = new Date(ms)
  }
  return {
    irodsPath: normalisePath(irodsPath) as IrodsPath,
    targetType: targetType as TargetType,
    attribute: intern(attribute),
    value: intern(value),
    unit: unit === undefined ? "" : intern(unit as string),
    op: op as ChangeOp,
    actor: intern(actor),
    source: source === undefined ? "mesa-mcp" : intern(source as string),
    viaTicket: (viaTicket as string | undefined) ?? null,
    ruleInvocation: (ruleInvocation as string | undefined) ?? null,
    onBehalfOf: (onBehalfOf as string | undefined) ?? null,
    objectId: (objectId as number | undefined) ?? null,
    ts: time
  }
}

export const decodeChange = (raw: unknown, index: number): Effect.Effect<AvuChange, InvalidChange> => {
  const fast = decodeChangeFast(raw)
  return fast === undefined ? decodeChangeSchema(raw, index) : Effect.succeed(fast)
}

/** The reference decoder (Schema): every input it accepts, and the wording of every refusal. */
export const decodeChangeSchema = (raw: unknown, index: number): Effect.Effect<AvuChange, InvalidChange> =>
  Effect.gen(function*() {
    const decoded = decodeAvuChangeInput(raw)
    if (Either.isLeft(decoded)) {
      const issue = ParseResult.ArrayFormatter.formatErrorSync(decoded.left)[0]
      const field = issue?.path.map(String).join(".") || "change"
      return yield* invalid(field, issue?.message ?? "malformed change", index)
    }
    const c = decoded.right
    const irodsPath = yield* parseIrodsPath(c.irodsPath, "irodsPath", index)
    const ts = c.ts === undefined || c.ts === null ? null : yield* parseTimestamp(c.ts, "ts", index)
    return {
      irodsPath,
      targetType: c.targetType,
      attribute: c.attribute,
      value: c.value,
      unit: c.unit,
      op: c.op,
      actor: c.actor,
      source: c.source,
      viaTicket: c.viaTicket ?? null,
      ruleInvocation: c.ruleInvocation ?? null,
      onBehalfOf: c.onBehalfOf ?? null,
      objectId: c.objectId ?? null,
      ts
    }
  })
