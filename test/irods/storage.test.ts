/** The LakeStorage contract over IrodsStorage (native client → fake iRODS). */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer, Option } from "effect"
import { createHash, randomBytes } from "node:crypto"
import { readFileSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { IrodsClient } from "../../src/irods/IrodsClient.js"
import { IrodsStorage } from "../../src/storage/IrodsStorage.js"
import { LakeStorage } from "../../src/storage/LakeStorage.js"
import { fakeIrodsScoped, type FakeIrodsOptions } from "../fake-irods/FakeIrods.js"
import { fakeLogin, tempDir } from "./helpers.js"

/** Fake server + LakeStorage over it, as layers (the server is exposed for fault switches). */
const withStorage = <A, E>(
  fake: FakeIrodsOptions,
  body: (server: Effect.Effect.Success<ReturnType<typeof fakeIrodsScoped>>) => Effect.Effect<A, E, LakeStorage>
) =>
  Effect.scoped(Effect.gen(function*() {
    const server = yield* fakeIrodsScoped(fake)
    const storage = IrodsStorage.layer.pipe(Layer.provide(IrodsClient.layer(fakeLogin(server, { retryBase: "10 millis" }))))
    return yield* body(server).pipe(Effect.provide(storage))
  }))

describe("IrodsStorage satisfies LakeStorage", () => {
  it.live("put (verified) / stat / checksum / list / get / remove / makeCollection", () =>
    withStorage({}, () =>
      Effect.gen(function*() {
        const storage = yield* LakeStorage
        expect(storage.kind).toBe("irods-native")
        const root = "/tempZone/home/rods/proj/.mesa/ducklake"
        yield* storage.makeCollection(root)
        yield* storage.makeCollection(root)
        const dir = tempDir()
        const payload = randomBytes(3 * 1024 * 1024)
        writeFileSync(join(dir, "a.parquet"), payload)
        const md5 = createHash("md5").update(payload).digest("hex")
        const put = yield* storage.put(join(dir, "a.parquet"), `${root}/a.parquet`)
        expect(put).toEqual({ path: `${root}/a.parquet`, size: payload.length, checksum: { algorithm: "md5", hex: md5 } })

        const st = Option.getOrThrow(yield* storage.stat(`${root}/a.parquet`))
        expect(st).toMatchObject({ path: `${root}/a.parquet`, name: "a.parquet", type: "data_object", size: payload.length })
        expect(st.objectId).toBeGreaterThan(0)
        expect(Option.getOrThrow(yield* storage.stat(root)).type).toBe("collection")
        expect(Option.isNone(yield* storage.stat(`${root}/none`))).toBe(true)
        expect(yield* storage.checksum(`${root}/a.parquet`)).toEqual({ algorithm: "md5", hex: md5 })

        yield* storage.makeCollection(`${root}/sub`)
        const entries = yield* storage.list(root)
        expect(entries.map((e) => [e.name, e.type, e.size])).toEqual([["sub", "collection", 0], ["a.parquet", "data_object", payload.length]])
        const missing = yield* Effect.flip(storage.list(`${root}/none`))
        expect([missing._tag, missing.reason, missing.irodsError]).toEqual(["StorageError", "NotFound", "USER_FILE_DOES_NOT_EXIST"])

        yield* storage.get(`${root}/a.parquet`, join(dir, "back.parquet"))
        expect(readFileSync(join(dir, "back.parquet")).equals(payload)).toBe(true)
        const exists = yield* Effect.flip(storage.put(join(dir, "a.parquet"), `${root}/a.parquet`))
        expect(exists._tag === "StorageError" && [exists.reason, exists.irodsError]).toEqual(["AlreadyExists", "OVERWRITE_WITHOUT_FORCE_FLAG"])
        yield* storage.put(join(dir, "a.parquet"), `${root}/a.parquet`, { overwrite: true })

        yield* storage.remove(`${root}/a.parquet`)
        expect(Option.isNone(yield* storage.stat(`${root}/a.parquet`))).toBe(true)
        const gone = yield* Effect.flip(storage.remove(`${root}/a.parquet`))
        expect([gone.reason, gone.irodsError]).toEqual(["NotFound", "USER_FILE_DOES_NOT_EXIST"])
        expect(Option.isNone(storage.localPath(`${root}/a.parquet`))).toBe(true)
      })))

  it.live("SHA-256 zones: put verifies against a local SHA-256 digest", () =>
    withStorage({ checksumAlgorithm: "sha256" }, () =>
      Effect.gen(function*() {
        const storage = yield* LakeStorage
        const dir = tempDir()
        writeFileSync(join(dir, "f"), "sha me")
        const put = yield* storage.put(join(dir, "f"), "/tempZone/home/rods/f")
        expect(put.checksum).toEqual({ algorithm: "sha256", hex: createHash("sha256").update("sha me").digest("hex") })
      })))

  it.live("a corrupted remote checksum fails the put with ChecksumMismatch", () =>
    withStorage({}, (server) =>
      Effect.gen(function*() {
        const storage = yield* LakeStorage
        const dir = tempDir()
        writeFileSync(join(dir, "f"), "payload")
        server.faults.corruptChecksum = true
        const e = yield* Effect.flip(storage.put(join(dir, "f"), "/tempZone/home/rods/f"))
        expect(e._tag).toBe("ChecksumMismatch")
        expect(e._tag === "ChecksumMismatch" && e.expected).toBe(createHash("md5").update("payload").digest("hex"))
      })))

  it.live("an empty remote checksum fails the put as unverified", () =>
    withStorage({}, (server) =>
      Effect.gen(function*() {
        const storage = yield* LakeStorage
        const dir = tempDir()
        writeFileSync(join(dir, "f"), "payload")
        server.faults.emptyChecksum = true
        const e = yield* Effect.flip(storage.put(join(dir, "f"), "/tempZone/home/rods/f"))
        expect(e._tag).toBe("ChecksumMismatch")
        expect(e._tag === "ChecksumMismatch" && e.actual).toBe("")
      })))

  it.live("a connection dropped on every write fails the put with a StorageError naming the iRODS error", () =>
    withStorage({}, (server) =>
      Effect.gen(function*() {
        const storage = yield* LakeStorage
        const dir = tempDir()
        writeFileSync(join(dir, "f"), "payload")
        server.faults.dropConnection = { api: 676 }
        const e = yield* Effect.flip(storage.put(join(dir, "f"), "/tempZone/home/rods/f", { overwrite: true }))
        expect(e._tag === "StorageError" && [e.reason, e.irodsError]).toEqual(["Unavailable", "SYS_SOCK_READ_ERR"])
      })))
})
