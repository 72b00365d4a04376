/**
 * The Data Store's AMQP messages (../shared/AMQP.md §1–2), decoded with Schema: routing keys
 * `{data-object,collection}.metadata.{add,adda,addw,rm,rmw,set,mod,cp}` and `{data-object,collection}.mv`, bodies
 * as `cyverse_logic.re` serialises them. Bytes are read as strict UTF-8 JSON whatever the AMQP properties say (the
 * publisher sets none). Anything else is a `DeadLetter` with the reason, never an exception.
 *
 * Owns: `FeedEvent` (the decoded union), `decodeDelivery`, `BINDING_KEYS`.
 */
import { Either, ParseResult, Schema } from "effect"

/** The routing keys the consumer's queue is bound to. */
export const BINDING_KEYS = ["data-object.metadata.*", "collection.metadata.*", "data-object.mv", "collection.mv"] as const

export type EntityType = "data_object" | "collection"

const Author = Schema.Struct({ name: Schema.String, zone: Schema.String })
/** `unit` is optional in the schema; the publisher always sends it, as "" when there is none. */
const Avu = Schema.Struct({
  attribute: Schema.NonEmptyString,
  value: Schema.NonEmptyString,
  unit: Schema.optionalWith(Schema.String, { default: () => "" })
})
export type FeedAvu = typeof Avu.Type

const Simple = Schema.Struct({ author: Author, entity: Schema.NonEmptyString, metadatum: Avu })
const Mod = Schema.Struct({
  author: Author,
  entity: Schema.NonEmptyString,
  "old-metadatum": Avu,
  "new-metadatum": Avu
})
const pattern = Schema.optionalWith(Schema.String, { default: () => "%" })
const Rmw = Schema.Struct({
  author: Author,
  entity: Schema.NonEmptyString,
  "attribute-pattern": pattern,
  "value-pattern": pattern,
  "unit-pattern": pattern
})
const Addw = Schema.Struct({ author: Author, pattern: Schema.NonEmptyString, metadatum: Avu })
const Cp = Schema.Struct({
  author: Author,
  source: Schema.NonEmptyString,
  "source-type": Schema.Literal("collection", "data-object"),
  destination: Schema.NonEmptyString
})
const AbsolutePath = Schema.String.pipe(Schema.pattern(/^\/[^\u0000]*[^/]$/))
const Mv = Schema.Struct({ author: Author, entity: Schema.NonEmptyString, "old-path": AbsolutePath, "new-path": AbsolutePath })

interface Common {
  readonly entityType: EntityType
  /** `name#zone` of the session's client user. */
  readonly author: string
}
export type FeedEvent =
  | Common & { readonly kind: "avu"; readonly op: "add" | "rm" | "set"; readonly entity: string; readonly avu: FeedAvu }
  | Common & { readonly kind: "mod"; readonly entity: string; readonly old: FeedAvu; readonly new: FeedAvu }
  | Common & {
    readonly kind: "rmw"
    readonly entity: string
    readonly attribute: string
    readonly value: string
    readonly unit: string
  }
  | Common & { readonly kind: "addw"; readonly pattern: string; readonly avu: FeedAvu }
  | Common & { readonly kind: "cp"; readonly source: string; readonly sourceType: EntityType; readonly destination: string }
  | Common & { readonly kind: "mv"; readonly entity: string; readonly oldPath: string; readonly newPath: string }

/** Why a delivery was dead-lettered. */
export interface DeadLetter {
  readonly reason: string
}

const utf8 = new TextDecoder("utf-8", { fatal: true })
const KEY = /^(data-object|collection)\.(metadata\.(add|adda|addw|rm|rmw|set|mod|cp)|mv)$/

const author = (a: { readonly name: string; readonly zone: string }) => `${a.name}#${a.zone}`

/** A decoder built once per schema (thousands of messages a second go through these). */
const decoder = <A, I>(schema: Schema.Schema<A, I>) => {
  const run = Schema.decodeUnknownEither(schema, { onExcessProperty: "ignore" })
  return (body: unknown): Either.Either<A, DeadLetter> =>
    Either.mapLeft(run(body), (e) => ({ reason: `body does not match the schema: ${ParseResult.TreeFormatter.formatErrorSync(e)}` }))
}
const decodeSimple = decoder(Simple)
const decodeMod = decoder(Mod)
const decodeRmw = decoder(Rmw)
const decodeAddw = decoder(Addw)
const decodeCp = decoder(Cp)
const decodeMv = decoder(Mv)

/** A routing key and body → the event, or the reason it cannot be one. */
export const decodeDelivery = (routingKey: string, content: Uint8Array): Either.Either<FeedEvent, DeadLetter> => {
  const m = KEY.exec(routingKey)
  if (m === null) return Either.left({ reason: `unknown routing key ${JSON.stringify(routingKey)}` })
  const entityType: EntityType = m[1] === "collection" ? "collection" : "data_object"
  const op = m[3] ?? "mv"
  if (op === "addw" && entityType === "collection") {
    return Either.left({ reason: "collection.metadata.addw does not exist (addw is for data objects only)" })
  }
  let text: string
  try {
    text = utf8.decode(content)
  } catch {
    return Either.left({ reason: "body is not valid UTF-8" })
  }
  let body: unknown
  try {
    body = JSON.parse(text)
  } catch (e) {
    return Either.left({ reason: `body is not JSON: ${e instanceof Error ? e.message : String(e)}` })
  }
  switch (op) {
    case "add":
    case "adda":
    case "rm":
    case "set":
      return Either.map(decodeSimple(body), (b): FeedEvent => ({
        kind: "avu",
        op: op === "adda" ? "add" : op,
        entityType,
        author: author(b.author),
        entity: b.entity,
        avu: b.metadatum
      }))
    case "mod":
      return Either.map(decodeMod(body), (b): FeedEvent => ({
        kind: "mod",
        entityType,
        author: author(b.author),
        entity: b.entity,
        old: b["old-metadatum"],
        new: b["new-metadatum"]
      }))
    case "rmw":
      return Either.map(decodeRmw(body), (b): FeedEvent => ({
        kind: "rmw",
        entityType,
        author: author(b.author),
        entity: b.entity,
        attribute: b["attribute-pattern"],
        value: b["value-pattern"],
        unit: b["unit-pattern"]
      }))
    case "addw":
      return Either.map(decodeAddw(body), (b): FeedEvent => ({
        kind: "addw",
        entityType,
        author: author(b.author),
        pattern: b.pattern,
        avu: b.metadatum
      }))
    case "cp":
      return Either.map(decodeCp(body), (b): FeedEvent => ({
        kind: "cp",
        entityType,
        author: author(b.author),
        source: b.source,
        sourceType: b["source-type"] === "collection" ? "collection" : "data_object",
        destination: b.destination
      }))
    default:
      return Either.map(decodeMv(body), (b): FeedEvent => ({
        kind: "mv",
        entityType,
        author: author(b.author),
        entity: b.entity,
        oldPath: b["old-path"],
        newPath: b["new-path"]
      }))
  }
}

/**
 * SQL `LIKE` (as iRODS' `rmw` applies it, no ESCAPE clause: PostgreSQL's default escape is a backslash) as a test.
 * A unit pattern of exactly `%` also matches no unit (iRODS stores NULL there; we store "").
 */
export const likeMatcher = (pattern: string): ((s: string) => boolean) => {
  let re = "^"
  for (let i = 0; i < pattern.length; i++) {
    const ch = pattern[i]!
    if (ch === "\\" && i + 1 < pattern.length) re += escapeRe(pattern[++i]!)
    else if (ch === "%") re += "[\\s\\S]*"
    else if (ch === "_") re += "[\\s\\S]"
    else re += escapeRe(ch)
  }
  const compiled = new RegExp(re + "$", "u")
  return (s) => compiled.test(s)
}

const escapeRe = (ch: string) => ch.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&")
