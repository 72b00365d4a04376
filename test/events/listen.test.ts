/**
 * The AMQP listener (issue 20) against a real RabbitMQ (scripts/rabbitmq.sh), the fake iRODS server publishing the
 * Data Store's exact messages, an embedded PostgreSQL and real Parquet files. Each test has its own exchange, queue
 * and project; the oracle is the fake's own AVUs.
 */
import { expect, layer } from "@effect/vitest"
import amqp from "amqplib"
import { Context, Effect, Exit, Fiber, Layer, Scope } from "effect"
import { DuckLakeClient } from "../../src/client/DuckLakeClient.js"
import type { AvuChangeInput } from "../../src/core/domain.js"
import { connectPublisher, DataStore, UUID } from "../fake-irods/DataStoreFeed.js"
import { embedded } from "../support.js"
import {
  type Broker,
  brokerScoped,
  dataStoreScoped,
  historyState,
  listenerScoped,
  seen,
  settingsFor,
  waitFor
} from "./support.js"

class BrokerTag extends Context.Tag("test/Broker")<BrokerTag, Broker>() {}
const { layer: Base } = embedded("events")
const Live = Layer.mergeAll(Base, Layer.scoped(BrokerTag, brokerScoped))

/** A project root in the fake (with the given data objects) registered in the catalog. */
const project = (store: DataStore, name: string, objects: ReadonlyArray<string>) =>
  Effect.gen(function*() {
    const root = `/testZone/home/rods/${name}-${process.pid}-${Math.floor(Math.random() * 1e9)}`
    store.server.makeCollection(root)
    for (const o of objects) store.server.putObject(`${root}/${o}`, "x")
    const client = yield* DuckLakeClient
    const p = yield* client.registerProject({ irodsPath: root, actor: "rods" })
    return { root, p }
  })

const rowsOf = (projectId: string) =>
  Effect.flatMap(DuckLakeClient, (c) => c.getHistory(projectId, { limit: 100_000 }))

/** Runs ops on the store, counting the changes each makes to its entity (the rows an exact history holds). */
const counted = (store: DataStore) => {
  let rows = 0
  const snap = (path: string) => {
    try {
      return new Set(store.entity(path).e.avus.filter((a) => a.name !== UUID).map((a) => `${a.name}\u0000${a.value}\u0000${a.units}`))
    } catch {
      return new Set<string>()
    }
  }
  return {
    op: (path: string, f: () => void) => {
      const before = snap(path)
      try {
        f()
      } catch {
        // iRODS refused it (e.g. a mod onto an AVU the object has): no change, no message
      }
      const after = snap(path)
      for (const x of before) if (!after.has(x)) rows++
      for (const x of after) if (!before.has(x)) rows++
    },
    rows: () => rows
  }
}

layer(Live, { timeout: "300 seconds", excludeTestServices: true })("the AMQP listener", (it) => {
  it.scoped("records every routing key exactly, with the author as actor and the routing key as source", () =>
    Effect.gen(function*() {
      const broker = yield* BrokerTag
      const settings = settingsFor(broker)
      const { store, server, publisher } = yield* dataStoreScoped(broker, settings.exchange)
      const { root, p } = yield* project(store, "keys", ["a.csv", "b.csv", "c.csv", "sub/d.txt", "sub/e.txt", "sub/f.csv", "moved/g.csv"])
      const { counters, irods } = yield* listenerScoped(server, settings)
      const [a, b, c, d] = [`${root}/a.csv`, `${root}/b.csv`, `${root}/c.csv`, `${root}/sub/d.txt`]
      // Through the fake's protocol (the post-PEP publishes): add, adda, rm, set.
      yield* irods.addAvu({ type: "data_object", path: a }, { name: "stage", value: "raw", units: "" })
      yield* irods.addAvu({ type: "data_object", path: a }, { name: "depth", value: "10", units: "cm" })
      yield* irods.addAvu({ type: "data_object", path: a }, { name: "depth", value: "12", units: "cm" })
      yield* irods.setAvu({ type: "data_object", path: a }, { name: "depth", value: "15", units: "m" })
      yield* irods.removeAvu({ type: "data_object", path: a }, { name: "stage", value: "raw", units: "" })
      // The rest through the Data Store's test API.
      store.add(b, { attribute: "owner", value: "lab" }, { admin: true })
      store.add(b, { attribute: "qc", value: "pending", unit: "flag" })
      store.add(b, { attribute: "qa1", value: "x" })
      store.add(b, { attribute: "qa2", value: "y", unit: "u" })
      store.mod(b, { attribute: "qc", value: "pending", unit: "flag" }, { value: "passed" })
      store.rmw(b, { attribute: "qa%" })
      store.addw(`${root}/sub/%.txt`, { attribute: "kind", value: "text" })
      store.add(c, { attribute: "site", value: "42" })
      store.set(c, { attribute: "species", value: "oak" })
      store.cp(c, d)
      store.add(root, { attribute: "project", value: "survey" })
      store.set(root, { attribute: "project", value: "survey-2" })
      store.add(`${root}/sub`, { attribute: "batch", value: "7" })
      store.rm(`${root}/sub`, { attribute: "batch", value: "7" })
      store.add(`${root}/moved`, { attribute: "box", value: "1" })
      store.add(`${root}/moved/g.csv`, { attribute: "member", value: "yes" })
      store.mv(a, `${root}/a-renamed.csv`)
      store.mv(`${root}/moved`, `${root}/moved2`)
      yield* Effect.promise(() => publisher.settled())
      const total = store.log.length
      yield* waitFor(counters, (k) => seen(k) === total)
      const oracle = store.oracle(root)
      const history = yield* historyState(p.projectId, [...oracle.keys(), a, b, c, d, `${root}/moved/g.csv`, `${root}/moved`])
      expect(history).toEqual(oracle)
      const rows = yield* rowsOf(p.projectId)
      const sources = new Set(rows.map((r) => r.source))
      for (const key of ["add", "adda", "rm", "set", "mod", "rmw", "cp"]) {
        expect(sources.has(`irods-amqp:data-object.metadata.${key}`) || key === "cp").toBe(true)
      }
      expect(sources.has("irods-amqp:data-object.metadata.addw")).toBe(true)
      expect(sources.has("irods-amqp:collection.metadata.set")).toBe(true)
      expect(sources.has("irods-amqp:collection.metadata.rm")).toBe(true)
      expect(rows.filter((r) => r.source === "irods-amqp:data-object.metadata.rmw").map((r) => [r.attribute, r.op]).sort())
        .toEqual([["qa1", "delete"], ["qa2", "delete"]])
      expect(new Set(rows.filter((r) => r.source.startsWith("irods-amqp:data-object.metadata")).map((r) => r.actor)))
        .toEqual(new Set(["rods#testZone"]))
      // The renamed object's history follows it (the move is a rename, not a delete and an unrelated add).
      const moved = yield* Effect.flatMap(DuckLakeClient, (cl) => cl.getHistory(p.projectId, { irodsPath: `${root}/a-renamed.csv` }))
      expect(moved.some((r) => r.source === "irods-amqp:data-object.metadata.set")).toBe(true)
      expect(counters.deadLettered + counters.unresolved).toBe(0)
    }))

  it.scoped("dead-letters malformed bodies and unknown keys with a reason, and goes on", () =>
    Effect.gen(function*() {
      const broker = yield* BrokerTag
      const settings = settingsFor(broker)
      const { store, server, publisher } = yield* dataStoreScoped(broker, settings.exchange)
      const { root, p } = yield* project(store, "bad", ["a.csv"])
      const { counters } = yield* listenerScoped(server, settings)
      const entity = store.uuidOf(`${root}/a.csv`)
      const bad: Array<[string, Buffer]> = [
        ["data-object.metadata.add", Buffer.from("{not json")],
        ["data-object.metadata.add", Buffer.from(JSON.stringify({ author: { name: "x" }, entity }))],
        ["data-object.metadata.add", Buffer.from([0x7b, 0xff, 0xfe, 0x7d])],
        ["data-object.metadata.rmi", Buffer.from("{}")],
        ["collection.metadata.addw", Buffer.from(JSON.stringify({ author: { name: "a", zone: "z" }, pattern: "/a/%", metadatum: { attribute: "a", value: "b", unit: "" } }))],
        ["data-object.metadata.mod", Buffer.from(JSON.stringify({ author: { name: "a", zone: "z" }, entity, "old-metadatum": { attribute: "a", value: "" } }))]
      ]
      for (const [key, body] of bad) publisher.publishRaw(key, body)
      store.add(`${root}/a.csv`, { attribute: "fine", value: "yes" })
      yield* Effect.promise(() => publisher.settled())
      yield* waitFor(counters, (k) => seen(k) === bad.length + 1)
      expect(counters.deadLettered).toBe(bad.length)
      expect(yield* historyState(p.projectId, [`${root}/a.csv`])).toEqual(new Map([[`${root}/a.csv`, ["fine=yes[]"]]]))
      // The dead-letter queue holds each body with its reason, routing key and offset.
      const letters = yield* Effect.promise(async () => {
        const conn = await amqp.connect(broker.uri)
        const ch = await conn.createChannel()
        const out: Array<{ reason: string; key: string; offset: number; body: Buffer }> = []
        for (;;) {
          const m = await ch.get(`${settings.queue}.dead-letter`, { noAck: true })
          if (m === false) break
          const h = m.properties.headers ?? {}
          out.push({ reason: String(h["x-mesa-reason"]), key: String(h["x-mesa-routing-key"]), offset: Number(h["x-mesa-offset"]), body: m.content })
        }
        await conn.close()
        return out
      })
      expect(letters.map((l) => l.key)).toEqual(bad.map(([k]) => k))
      expect(letters.map((l) => l.body.toString("hex"))).toEqual(bad.map(([, b]) => b.toString("hex")))
      expect(letters[0]!.reason).toMatch(/not JSON/)
      expect(letters[1]!.reason).toMatch(/schema/)
      expect(letters[2]!.reason).toMatch(/UTF-8/)
      expect(letters[3]!.reason).toMatch(/unknown routing key/)
      expect(letters[4]!.reason).toMatch(/addw/)
      expect(letters[5]!.reason).toMatch(/schema/)
      expect(letters.map((l) => l.offset)).toEqual([0, 1, 2, 3, 4, 5])
    }))

  it.scoped("a consumer killed between commit and acknowledgement: nothing lost, nothing doubled", () =>
    Effect.gen(function*() {
      const broker = yield* BrokerTag
      const settings = settingsFor(broker, { batchMax: 40, batchWindowMs: 30 })
      const { store, server, publisher } = yield* dataStoreScoped(broker, settings.exchange)
      const { root, p } = yield* project(store, "redeliver", ["a.csv", "b.csv", "c.csv"])
      const count = counted(store)
      // First listener: interrupted as soon as its first snapshots are committed (before the batch is acknowledged).
      const first = yield* Scope.make()
      const one = yield* listenerScoped(server, settings).pipe(Scope.extend(first))
      for (let i = 0; i < 300; i++) {
        const path = `${root}/${["a", "b", "c"][i % 3]}.csv`
        count.op(path, () => (i % 7 === 6 ? store.set(path, { attribute: `k${i % 5}`, value: `s${i}` }) : store.add(path, { attribute: `k${i % 5}`, value: `v${i}` })))
      }
      yield* Effect.promise(() => publisher.settled())
      yield* waitFor(one.counters, (k) => k.snapshots >= 1)
      yield* Scope.close(first, Exit.void)
      yield* Fiber.await(one.fiber)
      expect(seen(one.counters)).toBeLessThan(300)
      // Second listener: resumes from the committed checkpoints.
      const two = yield* listenerScoped(server, settings)
      yield* waitFor(two.counters, (k) => seen(k) === 300)
      const oracle = store.oracle(root)
      expect(yield* historyState(p.projectId, oracle.keys())).toEqual(oracle)
      const rows = (yield* rowsOf(p.projectId)).filter((r) => r.source.startsWith("irods-amqp:"))
      expect(rows.length).toBe(count.rows())
      expect(two.counters.replayed).toBeGreaterThan(0)
    }))

  it.scoped("set and rmw expand against the history's state exactly as iRODS applied them (oracle)", () =>
    Effect.gen(function*() {
      const broker = yield* BrokerTag
      const settings = settingsFor(broker, { batchMax: 25, batchWindowMs: 20 })
      const { store, server, publisher } = yield* dataStoreScoped(broker, settings.exchange)
      const { root, p } = yield* project(store, "oracle", ["a", "b", "c"])
      const count = counted(store)
      let seed = 7
      const rnd = (n: number) => (seed = (seed * 1103515245 + 12345) % 2 ** 31) % n
      const paths = ["a", "b", "c"].map((x) => `${root}/${x}`)
      const { counters } = yield* listenerScoped(server, settings)
      for (let i = 0; i < 400; i++) {
        const path = paths[rnd(3)]!
        const attr = `at${rnd(3)}`
        const value = `v${rnd(6)}`
        const unit = rnd(2) === 0 ? "" : "u"
        const has = store.entity(path).e.avus.some((x) => x.name === attr && x.value === value && x.units === unit)
        const choice = rnd(10)
        count.op(path, () => {
          if (choice < 4) {
            if (!has) store.add(path, { attribute: attr, value, unit })
          } else if (choice < 6) store.set(path, { attribute: attr, value, unit })
          else if (choice < 7) store.rmw(path, { attribute: `at${rnd(3)}`, value: `v${rnd(2)}%`, unit: "%" })
          else if (choice < 8) store.rmw(path, { attribute: "at_", value: "%", unit: "u" })
          else if (choice < 9 && has) store.mod(path, { attribute: attr, value, unit }, { value: `m${rnd(4)}` })
          else store.rm(path, { attribute: attr, value, unit })
        })
      }
      yield* Effect.promise(() => publisher.settled())
      yield* waitFor(counters, (k) => seen(k) === store.log.length)
      const oracle = store.oracle(root)
      expect(yield* historyState(p.projectId, paths)).toEqual(oracle)
      const rows = (yield* rowsOf(p.projectId)).filter((r) => r.source.startsWith("irods-amqp:"))
      expect(rows.length).toBe(count.rows())
    }))

  it.scoped("moves and metadata events out of order end where iRODS is", () =>
    Effect.gen(function*() {
      const broker = yield* BrokerTag
      const settings = settingsFor(broker, { batchMax: 1, batchWindowMs: 10 })
      const { store, server } = yield* dataStoreScoped(broker, settings.exchange)
      const { root, p } = yield* project(store, "order", ["a.csv", "x.csv"])
      // Capture messages instead of publishing, to send them in another order.
      const captured: Array<{ key: string; body: unknown }> = []
      const quiet = new DataStore(server, { ...connectPublisher(broker.uri, "unused"), publish: (key, body) => captured.push({ key, body }) })
      const real = connectPublisher(broker.uri, settings.exchange)
      const { counters } = yield* listenerScoped(server, settings)
      const a = `${root}/a.csv`
      const b = `${root}/b.csv`
      // 1. W on a, delivered and resolved (the listener caches a's path).
      quiet.add(a, { attribute: "w", value: "1" })
      real.publish(captured[0]!.key, captured[0]!.body)
      yield* waitFor(counters, (k) => seen(k) === 1)
      // 2. imv a → b, then X and Y on it; the feed delivers X, then the move, then Y.
      quiet.mv(a, b)
      quiet.add(b, { attribute: "x", value: "2" })
      quiet.add(b, { attribute: "y", value: "3" })
      for (const i of [2, 1, 3]) real.publish(captured[i]!.key, captured[i]!.body)
      // 3. A collection move delivered before the metadata change made after it.
      quiet.mv(`${root}/x.csv`, `${root}/z.csv`)
      quiet.set(`${root}/z.csv`, { attribute: "s", value: "4" })
      for (const i of [5, 4]) real.publish(captured[i]!.key, captured[i]!.body)
      yield* Effect.promise(() => real.settled())
      yield* waitFor(counters, (k) => seen(k) === 6)
      const oracle = quiet.oracle(root)
      expect(yield* historyState(p.projectId, [a, b, `${root}/x.csv`, `${root}/z.csv`])).toEqual(oracle)
      yield* Effect.promise(() => real.close())
    }))

  it.scoped("a change mirrored by mesa-mcp and published by the feed is recorded once", () =>
    Effect.gen(function*() {
      const broker = yield* BrokerTag
      // The mirror must land within the batch window (default 1 s; 2 s here for a loaded CI machine): a mirror
      // committed after the listener recorded the event is recorded again (README, "not promised").
      const settings = settingsFor(broker, { batchWindowMs: 2000 })
      const { store, server, publisher } = yield* dataStoreScoped(broker, settings.exchange)
      const { root, p } = yield* project(store, "mirror", ["a.csv"])
      const { counters, irods } = yield* listenerScoped(server, settings)
      const client = yield* DuckLakeClient
      const a = `${root}/a.csv`
      const mirror = (op: "add" | "delete" | "set", value: string): AvuChangeInput => ({
        irodsPath: a,
        targetType: "data_object",
        attribute: "status",
        value,
        unit: "",
        op,
        actor: "rods#testZone",
        source: "mesa-mcp:modify_metadata"
      })
      // As mesa-mcp does it: the iRODS write (which publishes), then the mirror.
      for (const [op, value] of [["add", "draft"], ["set", "final"], ["delete", "final"]] as const) {
        yield* (op === "add" ? irods.addAvu : op === "set" ? irods.setAvu : irods.removeAvu)(
          { type: "data_object", path: a },
          { name: "status", value, units: "" }
        )
        yield* client.recordChanges({ projectId: p.projectId, actor: "rods", changes: [mirror(op, value)] })
      }
      yield* Effect.promise(() => publisher.settled())
      yield* waitFor(counters, (k) => seen(k) === 3)
      const rows = yield* rowsOf(p.projectId)
      expect(rows.filter((r) => r.source.startsWith("irods-amqp:"))).toEqual([])
      expect(rows.map((r) => `${r.op} ${r.value}`).sort()).toEqual(["add draft", "add final", "delete draft", "delete final"])
      expect(counters.unchanged).toBe(3)
      expect(yield* historyState(p.projectId, [a])).toEqual(store.oracle(root))
    }))

  it.scoped("events under a mesa.enabled collection register its project (discovery); others are counted, not recorded", () =>
    Effect.gen(function*() {
      const broker = yield* BrokerTag
      const settings = settingsFor(broker)
      const { store, server, publisher } = yield* dataStoreScoped(broker, settings.exchange)
      const root = `/testZone/home/rods/marked-${process.pid}`
      server.makeCollection(root)
      const a = server.putObject(`${root}/a.csv`, "x").path
      const elsewhere = server.putObject(`/testZone/home/rods/unmarked-${process.pid}/b.csv`, "x").path
      store.zone.collections.get(root)!.avus.push({ id: store.zone.id(), name: "mesa.enabled", value: "true", units: "", createTime: new Date(), modifyTime: new Date() })
      const { counters } = yield* listenerScoped(server, settings, { discovery: true })
      store.add(a, { attribute: "found", value: "yes" })
      store.add(elsewhere, { attribute: "ignored", value: "yes" })
      yield* Effect.promise(() => publisher.settled())
      yield* waitFor(counters, (k) => seen(k) === 2)
      const client = yield* DuckLakeClient
      const p = yield* client.findProjectByPath(a)
      expect(p.irodsPath).toBe(root)
      expect(yield* historyState(p.projectId, [a])).toEqual(new Map([[a, ["found=yes[]"]]]))
      expect(counters.outside).toBe(1)
      expect((yield* client.listProjects).some((x) => elsewhere.startsWith(x.irodsPath + "/"))).toBe(false)
    }))

  it.scoped("a broker restart mid-stream: reconnects, resumes, and the backstop drift recovers what was lost", () =>
    Effect.gen(function*() {
      const broker = yield* BrokerTag
      const settings = settingsFor(broker, { backstop: true, batchWindowMs: 50 })
      const { store, server, publisher } = yield* dataStoreScoped(broker, settings.exchange)
      const { root, p } = yield* project(store, "restart", ["a.csv", "b.csv"])
      const { counters } = yield* listenerScoped(server, settings)
      const paths = [`${root}/a.csv`, `${root}/b.csv`]
      for (let i = 0; i < 100; i++) store.add(paths[i % 2]!, { attribute: "n", value: String(i) })
      yield* Effect.promise(() => publisher.settled())
      yield* waitFor(counters, (k) => seen(k) >= 50)
      yield* Effect.promise(() => broker.stop())
      // While the broker is down the Data Store's publishes are lost (no retry, no outbox).
      for (let i = 100; i < 130; i++) store.add(paths[i % 2]!, { attribute: "n", value: String(i) })
      yield* Effect.promise(() => publisher.settled())
      expect(publisher.lost()).toBeGreaterThan(0)
      yield* Effect.promise(() => broker.start())
      for (let i = 130; i < 160; i++) store.add(paths[i % 2]!, { attribute: "n", value: String(i) })
      yield* Effect.promise(() => publisher.settled())
      const oracle = store.oracle(root)
      yield* waitFor(counters, () => counters.reconnects >= 1 && counters.drifts >= 1, 120_000)
      const deadline = Date.now() + 60_000
      let history = yield* historyState(p.projectId, paths)
      while (JSON.stringify([...history]) !== JSON.stringify([...oracle]) && Date.now() < deadline) {
        yield* Effect.sleep("200 millis")
        history = yield* historyState(p.projectId, paths)
      }
      expect(history).toEqual(oracle)
      const rows = (yield* rowsOf(p.projectId)).filter((r) => r.attribute === "n")
      // Every AVU exactly once: from the feed, or (the lost ones, and any the drift reached first) from the drift.
      expect(rows.length).toBe(160)
      expect(rows.filter((r) => r.source === "mesa-ducklake:drift-reconciliation").length).toBeGreaterThanOrEqual(publisher.lost())
      expect(new Set(rows.map((r) => r.value)).size).toBe(160)
    }))
})
