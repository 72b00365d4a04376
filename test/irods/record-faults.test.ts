/**
 * recordChanges → native iRODS storage (the fake 4.2.8 server) → getAvusAsOf, end to end, and under the fake's
 * faults: each fault is a typed error, and a snapshot is never reported committed unless its file is safely stored
 * with a verified checksum.
 */
import { expect, layer } from "@effect/vitest"
import { Effect } from "effect"
import { createHash } from "node:crypto"
import * as fs from "node:fs"
import { Catalog } from "../../src/catalog/Catalog.js"
import { DuckLakeClient } from "../../src/client/DuckLakeClient.js"
import { LakeStorage } from "../../src/storage/LakeStorage.js"
import { change, embeddedIrods, FakeIrods, fetchLocal, freshRoot } from "../support.js"

const DATA_OBJ_WRITE = 676
const DATA_OBJ_CHKSUM = 629

// A short request timeout keeps the timeout case quick: the client retries it, and so does the write's push.
const { layer: Live } = embeddedIrods("record-faults", { requestTimeout: "1 second" })

const setup = Effect.gen(function*() {
  const client = yield* DuckLakeClient
  const fake = yield* FakeIrods
  const p = yield* client.registerProject({ irodsPath: freshRoot("faults"), actor: "rods" })
  const obj = `${p.irodsPath}/data.csv`
  const write = (value: string) =>
    client.recordChanges({ projectId: p.projectId, actor: "rods", changes: [change(obj, "k", value)] })
  const nothingVisible = Effect.gen(function*() {
    expect(yield* client.listSnapshots(p.projectId)).toEqual([])
    expect(yield* client.getAvus(p.projectId, obj)).toEqual([])
    const stored = yield* (yield* LakeStorage).list(`${p.ducklakePath}/main/avu_changes`)
    expect(stored).toEqual([])
  })
  return { client, fake, p, obj, write, nothingVisible }
})

layer(Live, { timeout: "120 seconds", excludeTestServices: true })("recordChanges over native iRODS", (it) => {
  it.effect("records into the zone and answers as-of from files fetched back over the protocol", () =>
    Effect.gen(function*() {
      const { client, fake, obj, p, write } = yield* setup
      const r1 = yield* write("first")
      const between = new Date()
      yield* Effect.sleep("5 millis")
      yield* client.recordChanges({ projectId: p.projectId, actor: "rods", changes: [change(obj, "k", "second", "set")] })
      expect((yield* client.getAvusAsOf(p.projectId, obj, between)).map((a) => a.value)).toEqual(["first"])
      expect((yield* client.getAvusAsOf(p.projectId, obj, new Date())).map((a) => a.value)).toEqual(["second"])
      // The object in the fake zone is byte-identical to what we wrote, and its iRODS checksum matches.
      if (!r1.recorded) return yield* Effect.die("not recorded")
      const remote = `${p.ducklakePath}/${r1.parquetFile}`
      const stored = fake.state.dataObjects.get(remote)
      expect(stored).toBeDefined()
      const local = yield* fetchLocal(remote)
      expect(createHash("md5").update(fs.readFileSync(local)).digest("hex")).toBe(stored!.checksum)
      const [row] = yield* (yield* Catalog).withSql((sql) =>
        sql<any>`SELECT checksum FROM ${sql(p.metadataSchema)}.mesa_snapshot WHERE snapshot_id = ${r1.snapshotId}`
      )
      expect(row.checksum).toBe(stored!.checksum)
    }))

  it.effect("a connection dropped mid-transfer is retried; the file is whole and verified", () =>
    Effect.gen(function*() {
      const { client, fake, obj, p, write } = yield* setup
      fake.faults.dropConnection = { api: DATA_OBJ_WRITE, times: 1 }
      const r = yield* write("v")
      fake.faults.dropConnection = undefined
      expect(r.recorded).toBe(true)
      expect((yield* client.getAvus(p.projectId, obj)).map((a) => a.value)).toEqual(["v"])
      expect((yield* client.getAvusAsOf(p.projectId, obj, new Date())).map((a) => a.value)).toEqual(["v"])
    }))

  it.effect("a connection that keeps dropping: StorageError naming the iRODS error, nothing committed", () =>
    Effect.gen(function*() {
      const { fake, nothingVisible, write } = yield* setup
      fake.faults.dropConnection = { api: DATA_OBJ_WRITE, times: 1000 }
      const e = yield* Effect.flip(write("v"))
      fake.faults.dropConnection = undefined
      expect(e._tag).toBe("StorageError")
      if (e._tag === "StorageError") expect(e.irodsError).toMatch(/^SYS_SOCK/)
      yield* nothingVisible
    }))

  for (const [fault, label] of [["corruptChecksum", "a corrupted"], ["emptyChecksum", "an empty"]] as const) {
    it.effect(`${label} checksum from the server: ChecksumMismatch, nothing committed, the object removed`, () =>
      Effect.gen(function*() {
        const { fake, nothingVisible, write } = yield* setup
        fake.faults[fault] = true
        const e = yield* Effect.flip(write("v"))
        fake.faults[fault] = false
        expect(e._tag).toBe("ChecksumMismatch")
        yield* nothingVisible
      }))
  }

  it.effect("a server slower than the request timeout: a typed timeout, nothing committed", () =>
    Effect.gen(function*() {
      const { fake, nothingVisible, write } = yield* setup
      fake.faults.delay = { api: DATA_OBJ_CHKSUM, ms: 1_500, times: 100 }
      const e = yield* Effect.flip(write("v"))
      fake.faults.delay = undefined
      expect(e._tag).toBe("StorageError")
      if (e._tag === "StorageError") {
        expect(e.reason).toBe("Timeout")
        expect(e.irodsError).toBe("SYS_SOCK_READ_TIMEDOUT")
      }
      yield* nothingVisible
    }), { timeout: 120_000 })

})

const { layer: Fresh } = embeddedIrods("record-auth")

layer(Fresh, { timeout: "120 seconds", excludeTestServices: true })("a zone refusing logins", (it) => {
  it.effect("registration fails with CAT_INVALID_AUTHENTICATION and registers nothing; then works once logins do", () =>
    Effect.gen(function*() {
      const client = yield* DuckLakeClient
      const fake = yield* FakeIrods
      fake.faults.refuseAuth = true
      const root = freshRoot("auth")
      const e = yield* Effect.flip(client.registerProject({ irodsPath: root, actor: "rods" }))
      fake.faults.refuseAuth = false
      expect(e._tag).toBe("StorageError")
      if (e._tag === "StorageError") {
        expect(e.irodsError).toBe("CAT_INVALID_AUTHENTICATION")
        expect(e.reason).toBe("PermissionDenied")
      }
      expect(yield* client.listProjects).toEqual([])
      const p = yield* client.registerProject({ irodsPath: root, actor: "rods" })
      expect((yield* client.listProjects).map((x) => x.projectId)).toEqual([p.projectId])
    }))
})
