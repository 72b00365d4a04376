/**
 * The mounted-zone adapter on a real directory: the LakeStorage contract, the logical↔mount mapping, and refusal
 * of anything outside the mount's prefix.
 */
import { NodeFileSystem } from "@effect/platform-node"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Option } from "effect"
import { createHash } from "node:crypto"
import * as fs from "node:fs"
import * as os from "node:os"
import * as nodePath from "node:path"
import { LakeStorage, parseIrodsChecksum, formatIrodsChecksum } from "../src/storage/LakeStorage.js"
import * as MountedStorage from "../src/storage/MountedStorage.js"

const setup = () => {
  const base = fs.mkdtempSync(nodePath.join(os.tmpdir(), "mesa-mount-"))
  const mountRoot = nodePath.join(base, "data-store", "iplant", "home")
  fs.mkdirSync(mountRoot, { recursive: true })
  const local = nodePath.join(base, "local.bin")
  fs.writeFileSync(local, Buffer.from("hello parquet ".repeat(1000)))
  const layer = MountedStorage.layer({ logicalPrefix: "/iplant/home", mountRoot })
  return { base, mountRoot, local, layer }
}

describe("MountedStorage", () => {
  it.effect("put/get/stat/list/checksum/remove/makeCollection through the mount", () => {
    const { base, local, layer, mountRoot } = setup()
    return Effect.gen(function*() {
      const s = yield* LakeStorage
      expect(s.kind).toBe("mounted")
      yield* s.makeCollection("/iplant/home/alice/proj/.mesa/ducklake")
      yield* s.makeCollection("/iplant/home/alice/proj/.mesa/ducklake") // idempotent
      const target = "/iplant/home/alice/proj/.mesa/ducklake/a.parquet"
      const put = yield* s.put(local, target)
      const expected = createHash("sha256").update(fs.readFileSync(local)).digest("hex")
      expect(put).toEqual({ path: target, size: 14000, checksum: { algorithm: "sha256", hex: expected } })
      expect(fs.readFileSync(nodePath.join(mountRoot, "alice/proj/.mesa/ducklake/a.parquet")).equals(fs.readFileSync(local))).toBe(true)
      const again = yield* Effect.flip(s.put(local, target))
      expect(again._tag === "StorageError" && again.reason).toBe("AlreadyExists")
      // The refused put's temporary copy (made beside the existence check) is gone.
      expect(fs.readdirSync(nodePath.join(mountRoot, "alice/proj/.mesa/ducklake"))).toEqual(["a.parquet"])
      expect((yield* s.put(local, target, { overwrite: true })).size).toBe(14000)
      // A move renames in place: into a collection made on the way, over a file already there.
      const moved = "/iplant/home/alice/proj/.mesa/ducklake/replaced/t/a.parquet"
      const move = s.move!
      yield* move(target, moved)
      expect(yield* s.stat(target)).toEqual(Option.none())
      expect(fs.readFileSync(nodePath.join(mountRoot, "alice/proj/.mesa/ducklake/replaced/t/a.parquet")).equals(fs.readFileSync(local))).toBe(true)
      yield* s.put(local, target)
      fs.writeFileSync(nodePath.join(mountRoot, "alice/proj/.mesa/ducklake/replaced/t/a.parquet"), "older copy")
      yield* move(target, moved)
      expect((yield* s.checksum(moved)).hex).toBe(expected)
      const gone = yield* Effect.flip(move(target, moved))
      expect(gone.reason).toBe("NotFound")
      yield* move(moved, target)
      fs.rmSync(nodePath.join(mountRoot, "alice/proj/.mesa/ducklake/replaced"), { recursive: true })
      // Read back whole when it fits one read (the usual snapshot file), streamed past that: both answer the same.
      for (const size of [65_536, 65_537, 300_001]) {
        const big = nodePath.join(base, `big-${size}.bin`)
        fs.writeFileSync(big, Buffer.from(Array.from({ length: size }, (_, i) => (i * 31 + size) % 251)))
        const stored = yield* s.put(big, `/iplant/home/alice/proj/.mesa/ducklake/big-${size}.parquet`)
        expect(stored).toEqual({
          path: `/iplant/home/alice/proj/.mesa/ducklake/big-${size}.parquet`,
          size,
          checksum: { algorithm: "sha256", hex: createHash("sha256").update(fs.readFileSync(big)).digest("hex") }
        })
        yield* s.remove(stored.path)
      }
      const st = yield* s.stat(target)
      expect(Option.map(st, (e) => [e.type, e.size, e.name])).toEqual(Option.some(["data_object", 14000, "a.parquet"]))
      expect(yield* s.stat("/iplant/home/alice/proj/missing")).toEqual(Option.none())
      const coll = yield* s.stat("/iplant/home/alice/proj")
      expect(Option.map(coll, (e) => e.type)).toEqual(Option.some("collection"))
      expect((yield* s.list("/iplant/home/alice/proj/.mesa/ducklake")).map((e) => e.name)).toEqual(["a.parquet"])
      expect((yield* s.checksum(target)).hex).toBe(expected)
      const back = nodePath.join(base, "back.bin")
      yield* s.get(target, back)
      expect(fs.readFileSync(back).equals(fs.readFileSync(local))).toBe(true)
      expect(s.localPath(target)).toEqual(Option.some(nodePath.join(mountRoot, "alice/proj/.mesa/ducklake/a.parquet")))
      yield* s.remove(target)
      expect(yield* s.stat(target)).toEqual(Option.none())
      const missing = yield* Effect.flip(s.get(target, back + "2"))
      expect(missing._tag === "StorageError" && missing.reason).toBe("NotFound")
      const noList = yield* Effect.flip(s.list("/iplant/home/nobody"))
      expect(noList.reason).toBe("NotFound")
      // No temporary files left behind.
      expect(fs.readdirSync(nodePath.join(mountRoot, "alice/proj/.mesa/ducklake"))).toEqual([])
    }).pipe(
      Effect.provide(layer),
      Effect.provide(NodeFileSystem.layer),
      Effect.ensuring(Effect.sync(() => fs.rmSync(base, { recursive: true, force: true })))
    )
  })

  it.effect("paths outside the mount's logical prefix are refused (localPath too: `..` never climbs out)", () => {
    const { base, local, layer } = setup()
    return Effect.gen(function*() {
      const s = yield* LakeStorage
      for (const path of ["/otherZone/home/x", "/iplant/homework/x", "/iplant/home/../etc/passwd"]) {
        const e = yield* Effect.flip(s.put(local, path))
        expect(e._tag === "StorageError" && e.reason).toBe("PermissionDenied")
        expect(s.localPath(path)).toEqual(Option.none())
      }
    }).pipe(
      Effect.provide(layer),
      Effect.provide(NodeFileSystem.layer),
      Effect.ensuring(Effect.sync(() => fs.rmSync(base, { recursive: true, force: true })))
    )
  })
})

describe("iRODS checksum strings", () => {
  it("parses MD5 hex and sha2: base64, and refuses empty or unknown forms", () => {
    const hex = createHash("sha256").update("x").digest("hex")
    const sha2 = `sha2:${Buffer.from(hex, "hex").toString("base64")}`
    expect(parseIrodsChecksum(sha2)).toEqual({ algorithm: "sha256", hex })
    expect(formatIrodsChecksum({ algorithm: "sha256", hex })).toBe(sha2)
    const md5 = createHash("md5").update("x").digest("hex")
    expect(parseIrodsChecksum(md5.toUpperCase())).toEqual({ algorithm: "md5", hex: md5 })
    expect(formatIrodsChecksum({ algorithm: "md5", hex: md5 })).toBe(md5)
    for (const bad of ["", "   ", "sha2:", "sha512:abc", hex, "sha2:" + hex, "md5:" + md5, "sha2:AAAA"]) {
      expect(parseIrodsChecksum(bad), bad).toBeUndefined()
    }
  })
})
