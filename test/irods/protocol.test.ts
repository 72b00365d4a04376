/** Pure protocol pieces: XML dialects, framing, error names, .irodsA obfuscation, configuration. */
import { describe, expect, it } from "@effect/vitest"
import { ConfigProvider, Effect, Redacted } from "effect"
import { writeFileSync } from "node:fs"
import { join } from "node:path"
import { genQueryInp, readGenQueryInp, readGenQueryOut, genQueryOut } from "../../src/irods/Api.js"
import { irodsConfig } from "../../src/irods/Config.js"
import { nativeDigest } from "../../src/irods/Connection.js"
import { errnoName, errorName, foldErrno, IrodsError, storageReason, toStorageError } from "../../src/irods/Errors.js"
import { decodeIrodsA, encodeIrodsA } from "../../src/irods/Obfuscation.js"
import { encodeHeader, frame } from "../../src/irods/Wire.js"
import {
  el,
  escapeText,
  escapeTextAsServer,
  parseStruct,
  serialize,
  unescapeText
} from "../../src/irods/Xml.js"
import { tempDir } from "./helpers.js"

describe("XML escaping (IRODS.md §1)", () => {
  it("to a 4.2.8 server: only & < > \" are named entities; ', backtick, tab and newline go raw", () => {
    expect(escapeText("a&b<c>d\"e'f`g\th\ni", "legacy")).toBe("a&amp;b&lt;c&gt;d&quot;e'f`g\th\ni")
  })
  it("to a >= 4.2.9 peer: ' becomes &apos; and backtick stays raw", () => {
    expect(escapeText("it's `x`", "standard")).toBe("it&apos;s `x`")
  })
  it("a 4.2.8 server writes backtick as &apos; and sends ' raw; we read &apos; back as a backtick", () => {
    const wire = escapeTextAsServer("it's `x` & <y>", "legacy")
    expect(wire).toBe("it's &apos;x&apos; &amp; &lt;y&gt;")
    expect(unescapeText(wire, "legacy")).toBe("it's `x` & <y>")
  })
  it("in standard mode &apos; is an apostrophe and numeric references decode", () => {
    expect(unescapeText("it&apos;s &#39;a&#x41;", "standard")).toBe("it's 'aA")
  })
  it("an unknown entity stops decoding and keeps the rest raw, as 4.2.8 does", () => {
    expect(unescapeText("a&amp;b&#39;c&amp;d", "legacy")).toBe("a&b&#39;c&amp;d")
  })
  it("parses server-style XML with newlines between elements but keeps leaf whitespace", () => {
    const s = parseStruct("<X>\n<a>  two spaces </a>\n<b>\n</b>\n<Y>\n<c>3</c>\n</Y>\n</X>\n\0\0", "legacy")
    expect(s.str("a")).toBe("  two spaces ")
    expect(s.str("b")).toBe("\n")
    expect(s.struct("Y")?.int("c")).toBe(3)
  })
  it("round-trips unicode, quotes and ampersands through pack and parse", () => {
    const name = "/tempZone/home/rods/dés & \"q\" 'a' <x> `t` 漢字"
    const xml = serialize(el("DataObjInp_PI", [["objPath", name], ["n", 1]]), (s) => escapeText(s, "legacy"))
    // As the server reads it (&apos; would be a backtick; we never send it to 4.2.8).
    expect(xml).not.toContain("&apos;")
    expect(parseStruct(xml, "legacy").str("objPath")).toBe(name)
  })
  it("packs GenQuery input and reads column-major output", () => {
    const xml = serialize(
      genQueryInp({ select: [[403, 1], [407, 0x400]], where: [[501, "= '/z/h'"]], continueInx: 3 }),
      (s) => escapeText(s, "legacy")
    )
    const back = readGenQueryInp(parseStruct(xml, "legacy"))
    expect(back.select).toEqual([[403, 1], [407, 0x400]])
    expect(back.where).toEqual([[501, "= '/z/h'"]])
    expect(back.continueInx).toBe(3)
    const out = serialize(
      genQueryOut({ columns: [403, 407], rows: [["a", "1"], ["b", "2"]], continueInx: 0, totalRowCount: 0 }),
      (s) => escapeText(s, "legacy")
    )
    expect(readGenQueryOut(parseStruct(out, "legacy")).rows).toEqual([["a", "1"], ["b", "2"]])
  })
})

describe("framing", () => {
  it("writes a 4-byte big-endian header length and the MsgHeader_PI", () => {
    const h = encodeHeader(frame("RODS_API_REQ", 633, { msg: "<x></x>", bs: Buffer.alloc(5) }))
    const len = h.readUInt32BE(0)
    expect(len).toBe(h.length - 4)
    const header = parseStruct(h.subarray(4), "legacy")
    expect([header.str("type"), header.int("msgLen"), header.int("errorLen"), header.int("bsLen"), header.int("intInfo")])
      .toEqual(["RODS_API_REQ", 7, 0, 5, 633])
  })
})

describe("error codes", () => {
  it("names codes and folds errno (rodsErrorName)", () => {
    expect(errorName(-808000)).toBe("CAT_NO_ROWS_FOUND")
    expect(errorName(-310000)).toBe("USER_FILE_DOES_NOT_EXIST")
    expect(errorName(-826000)).toBe("CAT_INVALID_AUTHENTICATION")
    expect(foldErrno(-510002)).toEqual({ base: -510000, errno: 2 })
    expect(errorName(-510002)).toBe("UNIX_FILE_OPEN_ERR")
    expect(errnoName(-510002)).toBe("ENOENT")
    expect(errorName(-1234000)).toBe("UNKNOWN_IRODS_ERROR_1234000")
  })
  it("maps into StorageError with the iRODS name", () => {
    const e = IrodsError.fromCode(-310000, { operation: "objStat", path: "/z/x" })
    const s = toStorageError(e)
    expect([s._tag, s.reason, s.irodsError, s.path]).toEqual(["StorageError", "NotFound", "USER_FILE_DOES_NOT_EXIST", "/z/x"])
    expect(storageReason(IrodsError.fromCode(-826000, { operation: "a", path: "p" }))).toBe("PermissionDenied")
    expect(storageReason(IrodsError.fromCode(-312000, { operation: "a", path: "p" }))).toBe("AlreadyExists")
    expect(storageReason(IrodsError.fromCode(-115000, { operation: "a", path: "p" }))).toBe("Timeout")
    expect(storageReason(IrodsError.fromCode(-513028, { operation: "a", path: "p" }))).toBe("NoSpace")
    expect(IrodsError.fromCode(-162111, { operation: "a", path: "p" }).transient).toBe(true)
    expect(IrodsError.fromCode(-826000, { operation: "a", path: "p" }).transient).toBe(false)
  })
})

describe(".irodsA obfuscation", () => {
  // Vectors produced by python-irodsclient 3.3.0: irods.password_obfuscation.encode(pw, uid=uid, mtime=mtime).
  const vectors: ReadonlyArray<readonly [string, number, number, string]> = [
    ["rods", 1000, 1700000000, ".jis*fe\"(x)\u0000"],
    ["s3cr3t P@ss-w0rd!", 0, 1234567890, ".q#\"\"ne*T$/T2 o@$*N8N2\"0\u0000"],
    ["heLLo_w\u00f6rld;`'\"~", 501, 0, ".87HJ3eGM40W_T\u00f6aEC;`lj~\u0000"]
  ]
  it("encodes exactly as python-irodsclient", () => {
    for (const [pw, uid, mtime, encoded] of vectors) expect(encodeIrodsA(pw, uid, mtime)).toBe(encoded)
  })
  it("decodes python-irodsclient's output", () => {
    for (const [pw, uid, , encoded] of vectors) expect(decodeIrodsA(encoded, uid)).toBe(pw)
  })
  it("round-trips arbitrary passwords", () => {
    for (const pw of ["", "a", "x".repeat(49), "p@ss w/ spaces & <xml>"]) {
      expect(decodeIrodsA(encodeIrodsA(pw, 4242, 99), 4242)).toBe(pw)
    }
  })
})

describe("native auth digest", () => {
  it("is MD5(challenge ‖ password padded to 50) with zero bytes turned into 1", () => {
    const challenge = Buffer.from("a".repeat(64))
    const d = nativeDigest(challenge, "rods")
    expect(d.length).toBe(16)
    expect([...d].includes(0)).toBe(false)
  })
})

describe("configuration", () => {
  it.effect("reads irods_environment.json and .irodsA; env vars override", () =>
    Effect.gen(function*() {
      const dir = tempDir("irods-env-")
      const envFile = join(dir, "irods_environment.json")
      writeFileSync(envFile, JSON.stringify({ irods_host: "data.example.org", irods_port: 1247, irods_zone_name: "iplant", irods_user_name: "alice" }))
      writeFileSync(join(dir, ".irodsA"), encodeIrodsA("s3cret", process.getuid?.() ?? 0, 12345))
      const fromFile = yield* irodsConfig.pipe(
        Effect.withConfigProvider(ConfigProvider.fromMap(new Map([["MESA_DUCKLAKE_IRODS_ENV_FILE", envFile]])))
      )
      expect([fromFile.host, fromFile.port, fromFile.zone, fromFile.user]).toEqual(["data.example.org", 1247, "iplant", "alice"])
      expect(Redacted.value(fromFile.password)).toBe("s3cret")
      expect(String(fromFile.password)).not.toContain("s3cret")
      const overridden = yield* irodsConfig.pipe(
        Effect.withConfigProvider(ConfigProvider.fromMap(new Map([
          ["MESA_DUCKLAKE_IRODS_ENV_FILE", envFile],
          ["MESA_DUCKLAKE_IRODS_HOST", "127.0.0.1"],
          ["MESA_DUCKLAKE_IRODS_PORT", "2247"],
          ["MESA_DUCKLAKE_IRODS_USER", "bob"],
          ["MESA_DUCKLAKE_IRODS_PASSWORD", "pw"]
        ])))
      )
      expect([overridden.host, overridden.port, overridden.zone, overridden.user]).toEqual(["127.0.0.1", 2247, "iplant", "bob"])
      expect(Redacted.value(overridden.password)).toBe("pw")
      const missing = yield* Effect.flip(irodsConfig.pipe(
        Effect.withConfigProvider(ConfigProvider.fromMap(new Map([["MESA_DUCKLAKE_IRODS_ENV_FILE", join(dir, "none.json")]])))
      ))
      expect(String(missing)).toContain("MESA_DUCKLAKE_IRODS_HOST")
    }))
})
