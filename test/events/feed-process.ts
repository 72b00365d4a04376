/**
 * The Data Store in a process of its own, for the listener benchmark (scripts/bench/events.ts): the fake iRODS
 * server (zone `benchZone`) with `BENCH_OBJECTS` data objects under one project root, and the Data Store's publisher
 * on `BENCH_EXCHANGE` of `BENCH_AMQP_URI`. Protocol: it prints `{"t":"ready",host,port,zone,root}`; on a line `warm`
 * it publishes one add per object (so the listener has resolved every UUID once: the fake's GenQuery scans every
 * row, ~80 ms a lookup at this size, where iRODS uses an index) and prints `{"t":"warm"}`; on a line `go` it makes `BENCH_EVENTS` AVU changes (adds, sets, removes, mods) at `BENCH_RATE` per second, publishing
 * each on one channel (so stream offset = event number), then prints `{"t":"published","times":[ms…]}` (each
 * event's publish time) and waits for stdin to close.
 */
import * as readline from "node:readline"
import { connectPublisher, DataStore } from "../fake-irods/DataStoreFeed.js"
import { startFakeIrods } from "../fake-irods/FakeIrods.js"

const n = (name: string, d: number) => Number(process.env[name] ?? d)
const EVENTS = n("BENCH_EVENTS", 30_000)
const RATE = n("BENCH_RATE", 6000)
const OBJECTS = n("BENCH_OBJECTS", 1000)

const server = await startFakeIrods({ zone: "benchZone" })
const publisher = connectPublisher(process.env.BENCH_AMQP_URI!, process.env.BENCH_EXCHANGE!)
const store = new DataStore(server, publisher)
const root = `/benchZone/home/rods/bench-${process.pid}`
server.makeCollection(root)
const paths = Array.from({ length: OBJECTS }, (_, i) => server.putObject(`${root}/c${i % 20}/o${i}.dat`, "x").path)
for (const p of paths) store.uuidOf(p)
let seed = 42
const rand = (k: number) => ((seed = (seed * 1103515245 + 12345) % 2147483648), Math.floor((seed / 2147483648) * k))
process.stdout.write(JSON.stringify({ t: "ready", host: server.host, port: server.port, zone: server.zone, root }) + "\n")

const lines = readline.createInterface({ input: process.stdin })
lines.on("line", async (line) => {
  if (line.trim() === "warm") {
    for (const p of paths) store.add(p, { attribute: "warm", value: "1" })
    await publisher.settled()
    process.stdout.write(JSON.stringify({ t: "warm" }) + "\n")
    return
  }
  if (line.trim() !== "go") return
  const times: Array<number> = []
  const start = Date.now()
  while (times.length < EVENTS) {
    const due = Math.min(EVENTS, Math.floor(((Date.now() - start) / 1000) * RATE) + 1)
    while (times.length < due) {
      const path = paths[rand(paths.length)]!
      const e = store.entity(path).e
      const attr = `a${rand(5)}`
      const k = rand(10)
      const existing = e.avus.find((a) => a.name === attr)
      if (k < 5 || existing === undefined) {
        const value = `v${times.length}`
        store.add(path, { attribute: attr, value })
      } else if (k < 7) store.set(path, { attribute: attr, value: `s${times.length}` })
      else if (k < 8) store.mod(path, { attribute: existing.name, value: existing.value, unit: existing.units }, { value: `m${times.length}` })
      else store.rm(path, { attribute: existing.name, value: existing.value, unit: existing.units })
      times.push(Date.now())
    }
    await new Promise((r) => setTimeout(r, 5))
  }
  await publisher.settled()
  process.stdout.write(JSON.stringify({ t: "published", times, lost: publisher.lost() }) + "\n")
})
lines.on("close", async () => {
  await publisher.close()
  await server.stop()
  process.exit(0)
})
