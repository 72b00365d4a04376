/**
 * The CyVerse Data Store's AMQP publisher, for the fake iRODS server (../shared/AMQP.md): every AVU change the
 * fake makes is published to the topic exchange `irods` with the exact routing keys and bodies of
 * `cyverse_logic.re` — compact JSON in the code's field order, persistent, no other properties, no confirms awaited
 * by the "server" (a publish that fails is lost, as pika's are). Entities are named by their `ipc_UUID` AVU, given
 * lazily as `_cyverse_logic_ensureUUID` does (a time-based UUID; the assignment itself is not published).
 *
 * Changes come from two places: clients of the fake (MOD_AVU_METADATA add/adda/rm/set, through the zone's
 * `avuObserver`), and this module's `imeta`-like test API for what the fake's protocol does not have (mod, rmw, addw,
 * cp, imv). Both change the fake's catalog first and publish after, as iRODS does after its commit.
 */
import amqp from "amqplib"
import { randomUUID } from "node:crypto"
import { posix } from "node:path"
import { likeMatcher } from "../../src/events/messages.js"
import type { FakeAvu, FakeCollection, FakeDataObject, FakeIrodsServer, FakeZone } from "./FakeIrods.js"

export const UUID = "ipc_UUID"

export interface Avu {
  readonly attribute: string
  readonly value: string
  readonly unit?: string
}

/** A publisher with a connection it re-opens when it is gone; `lost` counts publishes that never reached it. */
export interface FeedPublisher {
  readonly publish: (routingKey: string, body: unknown) => void
  /** Raw bytes (malformed bodies). */
  readonly publishRaw: (routingKey: string, content: Buffer) => void
  /** Waits for every publish so far to be confirmed or lost. */
  readonly settled: () => Promise<void>
  readonly lost: () => number
  readonly published: () => number
  readonly close: () => Promise<void>
}

export const connectPublisher = (uri: string, exchange = "irods"): FeedPublisher => {
  let channel: Promise<amqp.ConfirmChannel> | undefined
  let conn: amqp.ChannelModel | undefined
  let lost = 0
  let published = 0
  const pending = new Set<Promise<void>>()
  const ready = () => {
    if (channel === undefined) {
      channel = (async () => {
        const c = await amqp.connect(uri)
        conn = c
        const reset = () => {
          channel = undefined
        }
        c.on("error", reset)
        c.on("close", reset)
        const ch = await c.createConfirmChannel()
        ch.on("error", reset)
        ch.on("close", reset)
        await ch.assertExchange(exchange, "topic", { durable: true, autoDelete: false })
        return ch
      })()
      channel.catch(() => {
        channel = undefined
      })
    }
    return channel
  }
  const publishRaw = (routingKey: string, content: Buffer) => {
    const p = ready().then((ch) =>
      new Promise<void>((resolve) => {
        try {
          ch.publish(exchange, routingKey, content, { persistent: true }, (err: unknown) => {
            if (err == null) published++
            else lost++
            resolve()
          })
        } catch {
          lost++
          resolve()
        }
      })
    ).catch(() => {
      lost++
    })
    pending.add(p)
    void p.finally(() => pending.delete(p))
  }
  return {
    publish: (routingKey, body) => publishRaw(routingKey, Buffer.from(JSON.stringify(body))),
    publishRaw,
    settled: async () => {
      while (pending.size > 0) await Promise.all([...pending])
    },
    lost: () => lost,
    published: () => published,
    close: async () => {
      await conn?.close().catch(() => undefined)
    }
  }
}

type Entity = FakeDataObject | FakeCollection
const typeKey = (t: "data_object" | "collection") => (t === "data_object" ? "data-object" : "collection")
const avuObj = (a: { name: string; value: string; units: string }) => ({ attribute: a.name, value: a.value, unit: a.units })

/** The Data Store over a fake server: UUIDs, the publisher hook, and the test API for the other `imeta` ops. */
export class DataStore {
  readonly zone: FakeZone
  /** Offsets are not known here; every message published, in order, for tests that need them. */
  readonly log: Array<{ readonly routingKey: string; readonly body: unknown }> = []

  constructor(readonly server: FakeIrodsServer, readonly publisher: FeedPublisher, readonly admin = "rods") {
    this.zone = server.state
    this.zone.avuObserver = (c) => {
      if (c.attribute === UUID) return // the simple-op publisher skips ipc_UUID
      const entity = this.uuidOf(c.path)
      this.send(`${typeKey(c.type)}.metadata.${c.op}`, {
        author: { name: c.user, zone: c.zone },
        entity,
        metadatum: { attribute: c.attribute, value: c.value, unit: c.units }
      })
    }
  }

  send(routingKey: string, body: unknown) {
    this.log.push({ routingKey, body })
    this.publisher.publish(routingKey, body)
  }

  entity(path: string): { e: Entity; type: "data_object" | "collection" } {
    const d = this.zone.dataObjects.get(path)
    if (d !== undefined) return { e: d, type: "data_object" }
    const c = this.zone.collections.get(path)
    if (c !== undefined) return { e: c, type: "collection" }
    throw new Error(`fake Data Store: no entity ${path}`)
  }

  /** The entity's UUID, assigned (unpublished) when it has none. */
  uuidOf(path: string): string {
    const { e } = this.entity(path)
    const found = e.avus.find((a) => a.name === UUID)
    if (found !== undefined) return found.value
    const value = randomUUID()
    e.avus.push(this.avu({ attribute: UUID, value }))
    return value
  }

  private avu(a: Avu): FakeAvu {
    const t = new Date(Math.floor(Date.now() / 1000) * 1000)
    return { id: this.zone.id(), name: a.attribute, value: a.value, units: a.unit ?? "", createTime: t, modifyTime: t }
  }

  private author(user?: string) {
    return { name: user ?? this.admin, zone: this.zone.zone }
  }

  /** `imeta add` (or `adda`): CATALOG_ALREADY_HAS_ITEM_BY_THAT_NAME when present. */
  add(path: string, a: Avu, opts: { user?: string; admin?: boolean } = {}) {
    const { e, type } = this.entity(path)
    const entity = this.uuidOf(path)
    if (e.avus.some((x) => x.name === a.attribute && x.value === a.value && x.units === (a.unit ?? ""))) {
      throw new Error(`already has ${a.attribute}=${a.value}`)
    }
    e.avus.push(this.avu(a))
    this.send(`${typeKey(type)}.metadata.${opts.admin ? "adda" : "add"}`, {
      author: this.author(opts.user),
      entity,
      metadatum: { attribute: a.attribute, value: a.value, unit: a.unit ?? "" }
    })
  }

  /** `imeta rm`. */
  rm(path: string, a: Avu, opts: { user?: string } = {}) {
    const { e, type } = this.entity(path)
    const entity = this.uuidOf(path)
    e.avus = e.avus.filter((x) => !(x.name === a.attribute && x.value === a.value && x.units === (a.unit ?? "")))
    this.send(`${typeKey(type)}.metadata.rm`, {
      author: this.author(opts.user),
      entity,
      metadatum: { attribute: a.attribute, value: a.value, unit: a.unit ?? "" }
    })
  }

  /** `imeta set`: every value of the attribute is replaced; the message carries the new AVU only. */
  set(path: string, a: Avu, opts: { user?: string } = {}) {
    const { e, type } = this.entity(path)
    const entity = this.uuidOf(path)
    e.avus = e.avus.filter((x) => x.name !== a.attribute)
    e.avus.push(this.avu(a))
    this.send(`${typeKey(type)}.metadata.set`, {
      author: this.author(opts.user),
      entity,
      metadatum: { attribute: a.attribute, value: a.value, unit: a.unit ?? "" }
    })
  }

  /** `imeta mod`: unchanged parts of the new AVU are the old one's. */
  mod(path: string, old: Avu, next: Partial<Avu>, opts: { user?: string } = {}) {
    const { e, type } = this.entity(path)
    const entity = this.uuidOf(path)
    const i = e.avus.findIndex((x) => x.name === old.attribute && x.value === old.value && x.units === (old.unit ?? ""))
    if (i < 0) throw new Error(`no ${old.attribute}=${old.value} to mod`)
    const nu = { attribute: next.attribute ?? old.attribute, value: next.value ?? old.value, unit: next.unit ?? old.unit ?? "" }
    // The catalog holds an AVU once per object: a mod onto one it already has fails (nothing published).
    if (e.avus.some((x, j) => j !== i && x.name === nu.attribute && x.value === nu.value && x.units === nu.unit)) {
      throw new Error(`already has ${nu.attribute}=${nu.value}`)
    }
    e.avus.splice(i, 1, this.avu(nu))
    this.send(`${typeKey(type)}.metadata.mod`, {
      author: this.author(opts.user),
      entity,
      "old-metadatum": { attribute: old.attribute, value: old.value, unit: old.unit ?? "" },
      "new-metadatum": nu
    })
  }

  /** `imeta rmw`: SQL LIKE patterns; the removed AVUs are not in the message. */
  rmw(path: string, patterns: { attribute: string; value?: string; unit?: string }, opts: { user?: string } = {}) {
    const { e, type } = this.entity(path)
    const entity = this.uuidOf(path)
    const [a, v, u] = [likeMatcher(patterns.attribute), likeMatcher(patterns.value ?? "%"), likeMatcher(patterns.unit ?? "%")]
    e.avus = e.avus.filter((x) => x.name === UUID || !(a(x.name) && v(x.value) && u(x.units)))
    this.send(`${typeKey(type)}.metadata.rmw`, {
      author: this.author(opts.user),
      entity,
      "attribute-pattern": patterns.attribute,
      "value-pattern": patterns.value ?? "%",
      "unit-pattern": patterns.unit ?? "%"
    })
  }

  /** `imeta addw -d <coll>/<name pattern>`: the AVU on every matching data object lacking it. */
  addw(pattern: string, a: Avu, opts: { user?: string } = {}) {
    const coll = posix.dirname(pattern)
    const name = likeMatcher(posix.basename(pattern))
    for (const d of this.zone.dataObjects.values()) {
      if (posix.dirname(d.path) !== coll || !name(posix.basename(d.path))) continue
      if (!d.avus.some((x) => x.name === a.attribute && x.value === a.value && x.units === (a.unit ?? ""))) d.avus.push(this.avu(a))
    }
    this.send("data-object.metadata.addw", {
      author: this.author(opts.user),
      pattern,
      metadatum: { attribute: a.attribute, value: a.value, unit: a.unit ?? "" }
    })
  }

  /**
   * `imeta cp` as CyVerse rewrites it: each source AVU (but ipc_UUID) is `set` on the target (one `.metadata.set`
   * message each), then the `cp` message itself (`withCp: false` leaves it out, as if failmsg stopped the post-PEP).
   */
  cp(source: string, target: string, opts: { user?: string; withCp?: boolean } = {}) {
    const { e: src, type: srcType } = this.entity(source)
    const { type: tgtType } = this.entity(target)
    for (const a of src.avus.filter((x) => x.name !== UUID)) this.set(target, avuObj(a), opts)
    if (opts.withCp === false) return
    this.send(`${typeKey(tgtType)}.metadata.cp`, {
      author: this.author(opts.user),
      source: this.uuidOf(source),
      "source-type": typeKey(srcType),
      destination: this.uuidOf(target)
    })
  }

  /** `imv`: the entity (and a collection's members) moves; one `<type>.mv` for the top entity only. */
  mv(from: string, to: string, opts: { user?: string } = {}) {
    const { type } = this.entity(from)
    const entity = this.uuidOf(from)
    const moveTo = (p: string) => to + p.slice(from.length)
    if (type === "data_object") {
      const d = this.zone.dataObjects.get(from)!
      this.zone.dataObjects.delete(from)
      d.path = to
      this.zone.dataObjects.set(to, d)
    } else {
      const inside = (p: string) => p === from || p.startsWith(from + "/")
      for (const [p, c] of [...this.zone.collections].filter(([p]) => inside(p))) {
        this.zone.collections.delete(p)
        this.zone.collections.set(moveTo(p), { ...c, path: moveTo(p) })
      }
      for (const [p, d] of [...this.zone.dataObjects].filter(([p]) => inside(p))) {
        this.zone.dataObjects.delete(p)
        d.path = moveTo(p)
        this.zone.dataObjects.set(d.path, d)
      }
    }
    this.send(`${typeKey(type)}.mv`, { author: this.author(opts.user), entity, "old-path": from, "new-path": to })
  }

  /** The oracle: every AVU under `root` (but ipc_UUID), path → sorted `attribute=value[unit]` strings. */
  oracle(root: string): Map<string, Array<string>> {
    const out = new Map<string, Array<string>>()
    const inside = (p: string) => (p === root || p.startsWith(root + "/")) && !p.startsWith(root + "/.mesa")
    const all: Array<[string, ReadonlyArray<FakeAvu>]> = [
      ...[...this.zone.dataObjects.values()].map((d) => [d.path, d.avus] as [string, ReadonlyArray<FakeAvu>]),
      ...[...this.zone.collections.values()].map((c) => [c.path, c.avus] as [string, ReadonlyArray<FakeAvu>])
    ]
    for (const [path, avus] of all) {
      if (!inside(path)) continue
      const list = avus.filter((a) => a.name !== UUID && a.name !== "mesa.ducklake.head").map((a) => `${a.name}=${a.value}[${a.units}]`).sort()
      if (list.length > 0) out.set(path, list)
    }
    return out
  }
}
