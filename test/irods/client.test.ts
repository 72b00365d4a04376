/** IrodsClient against the fake iRODS server: every operation, auth paths, and every fault → its typed error. */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Either, Option, Redacted } from "effect"
import { createHash, randomBytes } from "node:crypto"
import { existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { COL, GENQUERY } from "../../src/irods/Api.js"
import { type IrodsError, toStorageError } from "../../src/irods/Errors.js"
import { eq, like, make } from "../../src/irods/IrodsClient.js"
import { fakeIrodsScoped } from "../fake-irods/FakeIrods.js"
import { fakeAndClient, fakeLogin, tempDir } from "./helpers.js"

const errName = (e: unknown) => (e as IrodsError).irodsName

describe("IrodsClient: connection and authentication", () => {
  it.live("4.2.8: legacy native auth (703/704) with user#zone, connection reused from the pool", () =>
    Effect.scoped(Effect.gen(function*() {
      const { client, server, home } = yield* fakeAndClient()
      expect(yield* client.serverVersion).toEqual([4, 2, 8])
      yield* client.objStat(home)
      yield* client.objStat(home)
      expect(server.connections).toHaveLength(1)
      expect(server.connections[0]).toMatchObject({ auth: "legacy", usernameSent: "rods#tempZone", relVersion: "rods4.3.0" })
      expect(server.connections[0]!.apis.slice(0, 2)).toEqual([703, 704])
    })))

  it.live("4.3 server: the JSON plugin flow (110000), or 703/704 when forced", () =>
    Effect.scoped(Effect.gen(function*() {
      const { client, server } = yield* fakeAndClient({ version: "rods4.3.2" })
      expect(yield* client.serverVersion).toEqual([4, 3, 2])
      expect(server.connections[0]).toMatchObject({ auth: "plugin", usernameSent: "rods" })
      const forced = yield* fakeAndClient({ version: "rods4.3.2" }, { forceLegacyAuth: true })
      yield* forced.client.serverVersion
      expect(forced.server.connections[0]?.auth).toBe("legacy")
    })))

  it.live("4.3 server: apostrophes travel as &apos; in the standard XML mode", () =>
    Effect.scoped(Effect.gen(function*() {
      const { client, server, home } = yield* fakeAndClient({ version: "rods4.3.2" })
      const path = `${home}/it's \`here\``
      yield* client.collCreate(path)
      expect(server.state.collections.has(path)).toBe(true)
      expect(Option.isSome(yield* client.objStat(path))).toBe(true)
    })))

  it.live("wrong password → CAT_INVALID_AUTHENTICATION, not retried, StorageError PermissionDenied", () =>
    Effect.scoped(Effect.gen(function*() {
      const { client, server, home } = yield* fakeAndClient({}, { passwordText: "wrong" })
      const e = yield* Effect.flip(client.objStat(home))
      expect(e._tag).toBe("IrodsError")
      expect(e.irodsName).toBe("CAT_INVALID_AUTHENTICATION")
      expect(e.code).toBe(-826000)
      expect(e.transient).toBe(false)
      expect(server.connections).toHaveLength(1)
      const s = toStorageError(e)
      expect([s.reason, s.irodsError]).toEqual(["PermissionDenied", "CAT_INVALID_AUTHENTICATION"])
    })))

  it.live("unknown user → CAT_INVALID_USER; refuseAuth fault → CAT_INVALID_AUTHENTICATION", () =>
    Effect.scoped(Effect.gen(function*() {
      const server = yield* fakeIrodsScoped()
      const stranger = yield* make({
        host: server.host,
        port: server.port,
        zone: server.zone,
        user: "mallory",
        password: Redacted.make("x")
      })
      expect(errName(yield* Effect.flip(stranger.serverVersion))).toBe("CAT_INVALID_USER")
      server.faults.refuseAuth = true
      const rods = yield* make(fakeLogin(server))
      expect(errName(yield* Effect.flip(rods.serverVersion))).toBe("CAT_INVALID_AUTHENTICATION")
    })))

  it.live("connection refused → SYS_SOCK_CONNECT_ERR with ECONNREFUSED, retried with backoff", () =>
    Effect.scoped(Effect.gen(function*() {
      const server = yield* fakeIrodsScoped()
      const port = server.port
      yield* Effect.promise(() => server.stop())
      const client = yield* make({
        host: "127.0.0.1",
        port,
        zone: "tempZone",
        user: "rods",
        password: Redacted.make("rods"),
        retries: 2,
        retryBase: "20 millis"
      })
      const started = Date.now()
      const e = yield* Effect.flip(client.serverVersion)
      expect(e.irodsName).toBe("SYS_SOCK_CONNECT_ERR")
      expect(e.errno).toBe("ECONNREFUSED")
      expect(e.transient).toBe(true)
      expect(Date.now() - started).toBeGreaterThanOrEqual(55) // 20 + 40 ms of backoff
      expect(toStorageError(e).reason).toBe("Unavailable")
    })))
})

describe("IrodsClient: collections and data objects", () => {
  it.live("objStat, collCreate with and without parents", () =>
    Effect.scoped(Effect.gen(function*() {
      const { client, home } = yield* fakeAndClient()
      const st = Option.getOrThrow(yield* client.objStat(home))
      expect([st.objType, st.ownerName]).toEqual([2, "rods"])
      expect(Option.isNone(yield* client.objStat(`${home}/nope`))).toBe(true)
      yield* client.collCreate(`${home}/a/b/c`)
      yield* client.collCreate(`${home}/a/b/c`) // exists: fine with parents
      expect(Option.getOrThrow(yield* client.objStat(`${home}/a/b`)).objType).toBe(2)
      expect(errName(yield* Effect.flip(client.collCreate(`${home}/x/y`, { parents: false })))).toBe("CAT_UNKNOWN_COLLECTION")
      expect(errName(yield* Effect.flip(client.collCreate(`${home}/a`, { parents: false })))).toBe(
        "CATALOG_ALREADY_HAS_ITEM_BY_THAT_NAME"
      )
      const dir = tempDir()
      writeFileSync(join(dir, "f"), "x")
      yield* client.put(join(dir, "f"), `${home}/a/f`)
      expect(errName(yield* Effect.flip(client.collCreate(`${home}/a/f`)))).toBe("CAT_NAME_EXISTS_AS_DATAOBJ")
    })))

  it.live("put/get stream in chunks; overwrite needs the flag; data object stat", () =>
    Effect.scoped(Effect.gen(function*() {
      const { client, home, server } = yield* fakeAndClient({}, { chunkSize: 64 * 1024 })
      const dir = tempDir()
      const payload = randomBytes(1024 * 1024 + 7)
      writeFileSync(join(dir, "in.bin"), payload)
      expect(yield* client.put(join(dir, "in.bin"), `${home}/in.bin`)).toEqual({ size: payload.length })
      // 17 chunks of 64 KiB: one DATA_OBJ_WRITE each, between one create and one close.
      const apis = server.connections[0]!.apis
      expect(apis.filter((a) => a === 676)).toHaveLength(17)
      expect(apis.filter((a) => a === 601)).toHaveLength(1)
      const st = Option.getOrThrow(yield* client.objStat(`${home}/in.bin`))
      expect([st.objType, st.objSize]).toEqual([1, payload.length])
      expect(st.dataId).toBeGreaterThan(0)
      yield* client.get(`${home}/in.bin`, join(dir, "out.bin"))
      expect(readFileSync(join(dir, "out.bin")).equals(payload)).toBe(true)
      expect(readdirSync(dir).sort()).toEqual(["in.bin", "out.bin"]) // no temp files left

      const again = yield* Effect.flip(client.put(join(dir, "in.bin"), `${home}/in.bin`))
      expect(errName(again)).toBe("OVERWRITE_WITHOUT_FORCE_FLAG")
      expect(toStorageError(again as IrodsError).reason).toBe("AlreadyExists")
      writeFileSync(join(dir, "small.bin"), "small")
      yield* client.put(join(dir, "small.bin"), `${home}/in.bin`, { overwrite: true })
      expect(server.state.dataObjects.get(`${home}/in.bin`)?.data.toString()).toBe("small")

      writeFileSync(join(dir, "empty"), "")
      yield* client.put(join(dir, "empty"), `${home}/empty`)
      yield* client.get(`${home}/empty`, join(dir, "empty.back"))
      expect(readFileSync(join(dir, "empty.back")).length).toBe(0)

      const missingLocal = yield* Effect.flip(client.put(join(dir, "nope"), `${home}/nope`))
      expect(errName(missingLocal)).toBe("USER_FILE_DOES_NOT_EXIST")
      expect(errName(yield* Effect.flip(client.put(join(dir, "in.bin"), `${home}/no/such/coll/x`)))).toBe(
        "CAT_UNKNOWN_COLLECTION"
      )
    })))

  it.live("listCollection: sub-collections and data objects with id, size and modify time; paging past 256 rows", () =>
    Effect.scoped(Effect.gen(function*() {
      const { client, home } = yield* fakeAndClient()
      const dir = tempDir()
      writeFileSync(join(dir, "f"), "12345")
      yield* client.collCreate(`${home}/list/sub1`)
      yield* client.collCreate(`${home}/list/sub2`)
      yield* Effect.forEach(
        Array.from({ length: 300 }, (_, i) => i),
        (i) => client.put(join(dir, "f"), `${home}/list/f${String(i).padStart(3, "0")}`),
        { concurrency: 4 }
      )
      const listing = yield* client.listCollection(`${home}/list`)
      expect(listing.collections.map((c) => c.path)).toEqual([`${home}/list/sub1`, `${home}/list/sub2`])
      expect(listing.dataObjects).toHaveLength(300)
      const f0 = listing.dataObjects.find((d) => d.name === "f000")!
      expect(f0).toMatchObject({ path: `${home}/list/f000`, size: 5 })
      expect(f0.id).toBeGreaterThan(0)
      expect(Math.abs(f0.modified.getTime() - Date.now())).toBeLessThan(60_000)
      expect(errName(yield* Effect.flip(client.listCollection(`${home}/missing`)))).toBe("USER_FILE_DOES_NOT_EXIST")
      expect(errName(yield* Effect.flip(client.listCollection(`${home}/list/f000`)))).toBe("CAT_NAME_EXISTS_AS_DATAOBJ")
    })), 30_000)

  it.live("unlink removes; a missing object is USER_FILE_DOES_NOT_EXIST (NotFound)", () =>
    Effect.scoped(Effect.gen(function*() {
      const { client, home } = yield* fakeAndClient()
      const dir = tempDir()
      writeFileSync(join(dir, "f"), "x")
      yield* client.put(join(dir, "f"), `${home}/f`)
      yield* client.unlink(`${home}/f`)
      expect(Option.isNone(yield* client.objStat(`${home}/f`))).toBe(true)
      const e = yield* Effect.flip(client.unlink(`${home}/f`))
      expect(errName(e)).toBe("USER_FILE_DOES_NOT_EXIST")
      expect(toStorageError(e).reason).toBe("NotFound")
    })))

  it.live("paths with unicode, quotes, ampersands, angle brackets and backticks", () =>
    Effect.scoped(Effect.gen(function*() {
      const { client, home, server } = yield* fakeAndClient()
      const dir = tempDir()
      writeFileSync(join(dir, "f"), "content")
      const coll = `${home}/dés & "quotes" 'apos' <x> \`tick\` 漢字`
      const obj = `${coll}/a&b'c"d<e>\`f\`.txt`
      yield* client.collCreate(coll)
      yield* client.put(join(dir, "f"), obj)
      expect(server.state.dataObjects.has(obj)).toBe(true)
      expect(Option.getOrThrow(yield* client.objStat(obj)).objSize).toBe(7)
      const listing = yield* client.listCollection(coll)
      expect(listing.dataObjects.map((d) => d.path)).toEqual([obj])
      yield* client.addAvu({ type: "data_object", path: obj }, { name: "k`'&", value: "<v> \"x\"", units: "ü" })
      expect(yield* client.listAvus({ type: "data_object", path: obj })).toEqual([{ name: "k`'&", value: "<v> \"x\"", units: "ü" }])
      yield* client.get(obj, join(dir, "back"))
      expect(readFileSync(join(dir, "back"), "utf8")).toBe("content")
    })))
})

describe("IrodsClient: checksums", () => {
  it.live("MD5 hex by default, sha2: base64 under a SHA-256 policy", () =>
    Effect.scoped(Effect.gen(function*() {
      const dir = tempDir()
      const payload = randomBytes(100_000)
      writeFileSync(join(dir, "f"), payload)
      const md5 = yield* fakeAndClient()
      yield* md5.client.put(join(dir, "f"), `${md5.home}/f`)
      expect(yield* md5.client.checksum(`${md5.home}/f`)).toEqual({
        algorithm: "md5",
        hex: createHash("md5").update(payload).digest("hex")
      })
      const sha = yield* fakeAndClient({ checksumAlgorithm: "sha256" })
      yield* sha.client.put(join(dir, "f"), `${sha.home}/f`)
      expect(yield* sha.client.checksum(`${sha.home}/f`, { force: true })).toEqual({
        algorithm: "sha256",
        hex: createHash("sha256").update(payload).digest("hex")
      })
      expect(sha.server.state.dataObjects.get(`${sha.home}/f`)?.checksum).toMatch(/^sha2:[A-Za-z0-9+/]{43}=$/)
      expect(errName(yield* Effect.flip(md5.client.checksum(`${md5.home}/missing`)))).toBe("USER_FILE_DOES_NOT_EXIST")
    })))

  it.live("an empty checksum is refused as unverified (ChecksumMismatch)", () =>
    Effect.scoped(Effect.gen(function*() {
      const { client, home, server } = yield* fakeAndClient()
      const dir = tempDir()
      writeFileSync(join(dir, "f"), "x")
      yield* client.put(join(dir, "f"), `${home}/f`)
      server.faults.emptyChecksum = true
      const e = yield* Effect.flip(client.checksum(`${home}/f`))
      expect(e._tag).toBe("ChecksumMismatch")
      expect(e).toMatchObject({ path: `${home}/f`, actual: "" })
    })))
})

describe("IrodsClient: AVUs and GenQuery", () => {
  it.live("add, list, set, remove on data objects and collections; errors by name", () =>
    Effect.scoped(Effect.gen(function*() {
      const { client, home } = yield* fakeAndClient()
      const dir = tempDir()
      writeFileSync(join(dir, "f"), "x")
      yield* client.put(join(dir, "f"), `${home}/f`)
      const d = { type: "data_object", path: `${home}/f` } as const
      const c = { type: "collection", path: home } as const
      expect(yield* client.listAvus(d)).toEqual([])
      yield* client.addAvu(d, { name: "a", value: "1", units: "" })
      yield* client.addAvu(d, { name: "a", value: "2", units: "u" })
      yield* client.addAvu(c, { name: "c", value: "3", units: "" })
      expect(yield* client.listAvus(d)).toEqual([{ name: "a", value: "1", units: "" }, { name: "a", value: "2", units: "u" }])
      expect(yield* client.listAvus(c)).toEqual([{ name: "c", value: "3", units: "" }])
      yield* client.setAvu(d, { name: "a", value: "9", units: "" })
      expect(yield* client.listAvus(d)).toEqual([{ name: "a", value: "9", units: "" }])
      yield* client.removeAvu(d, { name: "a", value: "9", units: "" })
      expect(yield* client.listAvus(d)).toEqual([])
      const dup = yield* Effect.either(Effect.zipRight(
        client.addAvu(c, { name: "c", value: "4", units: "" }),
        client.addAvu(c, { name: "c", value: "4", units: "" })
      ))
      expect(Either.isLeft(dup) && errName(dup.left)).toBe("CATALOG_ALREADY_HAS_ITEM_BY_THAT_NAME")
      expect(errName(yield* Effect.flip(client.addAvu({ type: "data_object", path: `${home}/nope` }, { name: "a", value: "1", units: "" }))))
        .toBe("CAT_UNKNOWN_FILE")
      expect(errName(yield* Effect.flip(client.addAvu({ type: "collection", path: `${home}/nope` }, { name: "a", value: "1", units: "" }))))
        .toBe("CAT_UNKNOWN_COLLECTION")
    })))

  it.live("AVU listing pages through continueInx (600 AVUs)", () =>
    Effect.scoped(Effect.gen(function*() {
      const { client, home, server } = yield* fakeAndClient()
      const c = { type: "collection", path: home } as const
      yield* Effect.forEach(Array.from({ length: 600 }, (_, i) => i), (i) =>
        client.addAvu(c, { name: "n", value: String(i).padStart(4, "0"), units: "" }))
      const avus = yield* client.listAvus(c)
      expect(avus).toHaveLength(600)
      expect(avus[599]?.value).toBe("0599")
      // 600 rows at 256 per page: three GEN_QUERY calls for the listing.
      expect(server.connections[0]!.apis.filter((a) => a === 702)).toHaveLength(3)
    })), 30_000)

  it.live("GenQuery: like, limit (closing the statement), count, no rows → []", () =>
    Effect.scoped(Effect.gen(function*() {
      const { client, home } = yield* fakeAndClient()
      yield* Effect.forEach(["alpha", "beta", "alpine"], (n) => client.collCreate(`${home}/${n}`))
      const al = yield* client.genQuery({ select: [COL.COLL_NAME], where: [[COL.COLL_NAME, like(`${home}/al%`)]] })
      expect(al).toEqual([[`${home}/alpha`], [`${home}/alpine`]])
      const count = yield* client.genQuery({ select: [[COL.COLL_ID, 6]], where: [[COL.COLL_PARENT_NAME, eq(home)]] })
      expect(count).toEqual([["3"]])
      const desc = yield* client.genQuery({
        select: [[COL.COLL_NAME, GENQUERY.ORDER_BY_DESC]],
        where: [[COL.COLL_PARENT_NAME, eq(home)]],
        limit: 1
      })
      expect(desc).toEqual([[`${home}/beta`]])
      expect(yield* client.genQuery({ select: [COL.COLL_NAME], where: [[COL.COLL_NAME, eq("/nowhere")]] })).toEqual([])
    })))
})

describe("IrodsClient: faults", () => {
  it.live("a dropped connection mid-transfer is retried on a fresh connection and the put completes", () =>
    Effect.scoped(Effect.gen(function*() {
      const { client, home, server } = yield* fakeAndClient({}, { chunkSize: 1024 })
      const dir = tempDir()
      const payload = randomBytes(10 * 1024)
      writeFileSync(join(dir, "f"), payload)
      server.faults.dropConnection = { api: 676, after: 3, times: 1 }
      yield* client.put(join(dir, "f"), `${home}/f`, { overwrite: true })
      expect(server.state.dataObjects.get(`${home}/f`)?.data.equals(payload)).toBe(true)
      expect(server.connections.length).toBe(2)
    })))

  it.live("a connection that keeps dropping → SYS_SOCK_READ_ERR after the retries; the object is not complete", () =>
    Effect.scoped(Effect.gen(function*() {
      const { client, home, server } = yield* fakeAndClient({}, { chunkSize: 1024, retries: 2 })
      const dir = tempDir()
      writeFileSync(join(dir, "f"), randomBytes(10 * 1024))
      server.faults.dropConnection = { api: 676, after: 2 }
      const e = yield* Effect.flip(client.put(join(dir, "f"), `${home}/f`, { overwrite: true }))
      expect(errName(e)).toBe("SYS_SOCK_READ_ERR")
      expect((e as IrodsError).transient).toBe(true)
      expect(toStorageError(e as IrodsError).reason).toBe("Unavailable")
      expect(server.connections.length).toBe(3)
      expect(server.state.dataObjects.get(`${home}/f`)?.data.length ?? 0).toBeLessThan(10 * 1024)
    })))

  it.live("a dropped read during get → typed error and no partial local file", () =>
    Effect.scoped(Effect.gen(function*() {
      const { client, home, server } = yield* fakeAndClient({}, { chunkSize: 1024, retries: 0 })
      const dir = tempDir()
      writeFileSync(join(dir, "f"), randomBytes(10 * 1024))
      yield* client.put(join(dir, "f"), `${home}/f`)
      server.faults.dropConnection = { api: 675, after: 2 }
      const e = yield* Effect.flip(client.get(`${home}/f`, join(dir, "back")))
      expect(errName(e)).toBe("SYS_SOCK_READ_ERR")
      expect(existsSync(join(dir, "back"))).toBe(false)
      expect(readdirSync(dir)).toEqual(["f"])
    })))

  it.live("a reply delayed past the request timeout → SYS_SOCK_READ_TIMEDOUT, then recovery", () =>
    Effect.scoped(Effect.gen(function*() {
      const { client, home, server } = yield* fakeAndClient({}, { requestTimeout: "200 millis", retries: 1 })
      yield* client.objStat(home)
      server.faults.delay = { api: 633, ms: 1000 }
      const e = yield* Effect.flip(client.objStat(home))
      expect(errName(e)).toBe("SYS_SOCK_READ_TIMEDOUT")
      expect(toStorageError(e).reason).toBe("Timeout")
      server.faults.delay = undefined
      expect(Option.isSome(yield* client.objStat(home))).toBe(true)
    })))
})
