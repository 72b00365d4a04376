/**
 * The fake iRODS server checked by the real python-irodsclient (PRC, from PyPI, in the project's .venv), and the
 * same scenarios through our TypeScript client.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Either, Option } from "effect"
import { execFileSync, spawn } from "node:child_process"
import { createHash, randomBytes } from "node:crypto"
import { existsSync, readFileSync, writeFileSync } from "node:fs"
import { join, resolve } from "node:path"
import { beforeAll } from "vitest"
import type { IrodsClientService } from "../../src/irods/IrodsClient.js"
import { type FakeIrodsServer, startFakeIrods } from "../fake-irods/FakeIrods.js"
import { clientAs, fakeAndClient, tempDir } from "./helpers.js"

const root = resolve(import.meta.dirname, "../..")
const python = join(root, ".venv", "bin", "python")

const runPython = (args: ReadonlyArray<string>) =>
  new Promise<{ status: number | null; stdout: string; stderr: string }>((done, fail) => {
    const child = spawn(python, args)
    let stdout = ""
    let stderr = ""
    child.stdout.on("data", (d) => (stdout += d))
    child.stderr.on("data", (d) => (stderr += d))
    child.on("error", fail)
    child.on("close", (status) => done({ status, stdout, stderr }))
  })

/** The number of checks scripts/irods-crosscheck.py makes; keep in step with the script. */
const EXPECTED_CHECKS = 28 + 41

/** What the script read with python-irodsclient (WORKDIR/acls.json). */
interface PrcDump {
  readonly acls: Record<string, {
    readonly kind: "collection" | "data_object"
    readonly inherit: boolean
    /** [user, zone, access name, user type], sorted. */
    readonly entries: Array<[string, string, string, string]>
  }>
  readonly members: Record<string, Array<string>>
}

/** Runs an Effect with our client logged in as rods (a scope of its own). */
const withOurClient = <A>(server: FakeIrodsServer, f: (c: IrodsClientService) => Effect.Effect<A, unknown>) =>
  Effect.runPromise(Effect.scoped(Effect.flatMap(clientAs(server, "rods", "rods"), f)))

describe("python-irodsclient cross-check", () => {
  beforeAll(() => {
    // Creates .venv and installs python-irodsclient when missing (idempotent, quiet).
    execFileSync("bash", [join(root, "scripts", "python-venv.sh"), join(root, "scripts", "requirements-python.txt")], { stdio: "inherit" })
    if (!existsSync(python)) throw new Error(".venv/bin/python missing after scripts/python-venv.sh")
  }, 300_000)

  it("PRC drives the fake through connect, put/get, checksum, listing, AVUs, errors and access control", async () => {
    const server = await startFakeIrods()
    try {
      const zone = server.zone
      const home = `/${zone}/home/rods`
      server.addUser("alice", { password: "alice-pw" })
      server.addUser("bob", { password: "bob-pw" })
      // Our client writes ACLs first; the script checks that python-irodsclient reads them back.
      await withOurClient(server, (c) =>
        Effect.gen(function*() {
          const ours = `${home}/ours`
          yield* c.collCreate(ours)
          yield* c.setAccess(ours, "alice", zone, "read")
          yield* c.setAccess(ours, "public", zone, "read")
          yield* c.setInheritance(ours, true)
          const local = join(tempDir(), "ours.txt")
          writeFileSync(local, "ours\n")
          yield* c.put(local, `${ours}/x.txt`)
        }))
      const workdir = tempDir("prc-")
      // An async child: spawnSync would block the event loop the fake server runs on.
      const run = await runPython([
        join(root, "scripts", "irods-crosscheck.py"),
        server.host,
        String(server.port),
        server.zone,
        "rods",
        "rods",
        workdir,
        "alice-pw",
        "bob-pw"
      ])
      const stdout = run.stdout
      expect(run.stderr).toBe("")
      expect(run.status).toBe(0)
      const last = stdout.trim().split("\n").at(-1)
      expect(last).toBe(`irods crosscheck: ${EXPECTED_CHECKS} checks passed`)

      // What PRC 3.3 actually sent to a server announcing rods4.2.8.
      const first = server.connections.find((c) => c.option === "python-irodsclient")!
      expect(first.relVersion).toBe("rods5.0.2")
      expect(first.option).toBe("python-irodsclient")
      expect(server.connections.every((c) => c.auth === "legacy")).toBe(true)
      expect(first.usernameSent).toBe("rods")
      const apis = new Set(server.connections.flatMap((c) => c.apis))
      for (const api of [703, 704, 681, 702, 602, 674, 676, 673, 675, 629, 706, 615, 707, 701]) expect(apis).toContain(api)
      expect(apis).not.toContain(110000)
      expect(server.state.collections.has("/tempZone/home/rods/crosscheck/sub/deeper")).toBe(true)
      expect(server.connections.some((c) => c.usernameSent === "alice")).toBe(true)

      // Our client reads the ACLs python-irodsclient wrote (and read) exactly as python-irodsclient read them.
      const dump = JSON.parse(readFileSync(join(workdir, "acls.json"), "utf8")) as PrcDump
      expect(Object.keys(dump.acls)).toHaveLength(11)
      const ours = await withOurClient(server, (c) =>
        Effect.forEach(Object.keys(dump.acls), (path) =>
          Effect.map(c.getAccess(path), (acl) => {
            const a = Option.getOrThrow(acl)
            return [path, {
              kind: a.kind,
              inherit: a.inherit,
              entries: a.entries.map((e) => [e.name, e.zone, e.accessName, e.type]).sort()
            }] as const
          })))
      for (const [path, acl] of ours) {
        const prc = dump.acls[path]!
        expect({ path, ...acl }).toEqual({ path, ...prc, entries: [...prc.entries].sort() })
      }
      // Group membership: our userInfo and PRC's group members agree both ways.
      const infos = await withOurClient(server, (c) =>
        Effect.forEach(["rods", "alice", "bob", "anonymous"], (u) => Effect.map(c.userInfo(u), Option.getOrThrow)))
      for (const info of infos) {
        for (const [group, members] of Object.entries(dump.members)) {
          expect([info.name, group, info.groups.includes(group)]).toEqual([info.name, group, members.includes(info.name)])
        }
      }
      expect(infos.find((i) => i.name === "alice")?.groups).toEqual(["lab", "public"])
    } finally {
      await server.stop()
    }
  }, 180_000)

  it.live("our client runs the same scenarios against the fake", () =>
    Effect.scoped(Effect.gen(function*() {
      const { client, home, server } = yield* fakeAndClient()
      const base = `${home}/crosscheck`
      const dir = tempDir()
      expect(yield* client.serverVersion).toEqual([4, 2, 8])

      yield* client.collCreate(`${base}/sub/deeper`)
      expect(Option.getOrThrow(yield* client.objStat(`${base}/sub`)).objType).toBe(2)

      const small = join(dir, "small.txt")
      writeFileSync(small, Buffer.from("hello iRODS\n".repeat(10)))
      yield* client.put(small, `${base}/small.txt`)
      expect(Option.getOrThrow(yield* client.objStat(`${base}/small.txt`)).objSize).toBe(120)
      yield* client.get(`${base}/small.txt`, join(dir, "small.back"))
      expect(readFileSync(join(dir, "small.back"), "utf8")).toBe("hello iRODS\n".repeat(10))

      const payload = randomBytes(12 * 1024 * 1024 + 123)
      writeFileSync(join(dir, "big.bin"), payload)
      expect(yield* client.put(join(dir, "big.bin"), `${base}/big.bin`)).toEqual({ size: payload.length })
      yield* client.get(`${base}/big.bin`, join(dir, "big.back"))
      expect(readFileSync(join(dir, "big.back")).equals(payload)).toBe(true)
      const md5 = createHash("md5").update(payload).digest("hex")
      expect(yield* client.checksum(`${base}/big.bin`)).toEqual({ algorithm: "md5", hex: md5 })

      const odd = "it's & <odd> \"name\".txt"
      yield* client.put(small, `${base}/${odd}`)
      const listing = yield* client.listCollection(base)
      expect(listing.collections.map((c) => c.name)).toEqual(["sub"])
      expect(listing.dataObjects.map((d) => d.name).sort()).toEqual(["big.bin", odd, "small.txt"].sort())
      expect(listing.dataObjects.find((d) => d.name === "big.bin")?.checksum).toBe(md5)

      const obj = { type: "data_object", path: `${base}/small.txt` } as const
      yield* client.addAvu(obj, { name: "color", value: "blue", units: "" })
      yield* client.addAvu(obj, { name: "size", value: "10", units: "cm" })
      expect(yield* client.listAvus(obj)).toEqual([
        { name: "color", value: "blue", units: "" },
        { name: "size", value: "10", units: "cm" }
      ])
      yield* client.removeAvu(obj, { name: "color", value: "blue", units: "" })
      const dup = yield* Effect.either(client.addAvu(obj, { name: "size", value: "10", units: "cm" }))
      expect(Either.isLeft(dup) && dup.left._tag === "IrodsError" && dup.left.irodsName).toBe(
        "CATALOG_ALREADY_HAS_ITEM_BY_THAT_NAME"
      )
      yield* client.setAvu(obj, { name: "size", value: "20", units: "m" })
      expect(yield* client.listAvus(obj)).toEqual([{ name: "size", value: "20", units: "m" }])

      const coll = { type: "collection", path: base } as const
      yield* client.addAvu(coll, { name: "project", value: "mesa & co", units: "" })
      expect(yield* client.listAvus(coll)).toEqual([{ name: "project", value: "mesa & co", units: "" }])
      yield* client.removeAvu(coll, { name: "project", value: "mesa & co", units: "" })
      expect(yield* client.listAvus(coll)).toEqual([])

      expect(Option.isNone(yield* client.objStat(`${base}/missing.txt`))).toBe(true)
      const missingGet = yield* Effect.flip(client.get(`${base}/missing.txt`, join(dir, "missing.back")))
      expect(missingGet.irodsName).toBe("OBJ_PATH_DOES_NOT_EXIST")
      expect(existsSync(join(dir, "missing.back"))).toBe(false)
      const missingUnlink = yield* Effect.flip(client.unlink(`${base}/missing.txt`))
      expect(missingUnlink.irodsName).toBe("USER_FILE_DOES_NOT_EXIST")

      yield* client.unlink(`${base}/${odd}`)
      expect(Option.isNone(yield* client.objStat(`${base}/${odd}`))).toBe(true)
      expect(server.state.dataObjects.has(`${base}/big.bin`)).toBe(true)
    })), 60_000)
})
