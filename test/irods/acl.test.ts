/**
 * iRODS access control against the fake (4.2.8 rules): users, groups and `public`, grants and revokes through
 * MOD_ACCESS_CONTROL 707, inheritance at creation time only, recursive changes, who may change an ACL, the
 * GenQuery joins clients use to read ACLs, and the permission checks on data operations.
 */
import { describe, expect, it } from "@effect/vitest"
import { Duration, Effect, Option, Redacted } from "effect"
import { writeFileSync } from "node:fs"
import { join } from "node:path"
import { API, COL, modAccessControlInp } from "../../src/irods/Api.js"
import { acquireConnection } from "../../src/irods/Connection.js"
import type { IrodsError } from "../../src/irods/Errors.js"
import { type AccessControl, eq, type IrodsClientService } from "../../src/irods/IrodsClient.js"
import type { FakeIrodsOptions } from "../fake-irods/FakeIrods.js"
import { clientAs, fakeAndClient, tempDir } from "./helpers.js"

const errName = (e: unknown) => (e as IrodsError).irodsName

/** A zone with alice and bob (rodsusers), carol (rodsadmin) and the group `lab` = { alice }. */
const zoneWithPeople = (fake: FakeIrodsOptions = {}) =>
  Effect.gen(function*() {
    const setup = yield* fakeAndClient(fake)
    const { server } = setup
    server.addUser("alice", { password: "alice-pw" })
    server.addUser("bob", { password: "bob-pw" })
    server.addUser("carol", { password: "carol-pw", type: "rodsadmin" })
    server.addGroup("lab")
    server.addToGroup("lab", "alice")
    const alice = yield* clientAs(server, "alice", "alice-pw")
    const bob = yield* clientAs(server, "bob", "bob-pw")
    const zone = server.zone
    return { ...setup, alice, bob, zone, shared: `/${zone}/home/rods/shared` }
  })

const entries = (acl: Option.Option<AccessControl>) =>
  Option.getOrThrow(acl).entries.map((e) => `${e.name}#${e.zone}:${e.access}`)

const put = (client: IrodsClientService, path: string, text: string) =>
  Effect.gen(function*() {
    const file = join(tempDir(), "f")
    writeFileSync(file, text)
    yield* client.put(file, path, { overwrite: true })
  })

const read = (client: IrodsClientService, path: string) =>
  Effect.gen(function*() {
    const file = join(tempDir(), "back")
    yield* client.get(path, file)
    return true
  })

describe("fake iRODS: users and groups", () => {
  it.live("a fresh zone: rods (rodsadmin) in rodsadmin and public; anonymous is in no group; groups have homes", () =>
    Effect.scoped(Effect.gen(function*() {
      const { client, server, zone } = yield* zoneWithPeople()
      expect(yield* client.userInfo("rods")).toEqual(Option.some({
        id: server.state.user("rods")!.id,
        name: "rods",
        zone,
        type: "rodsadmin",
        groups: ["public", "rodsadmin"]
      }))
      const alice = Option.getOrThrow(yield* client.userInfo("alice", zone))
      expect([alice.type, alice.groups]).toEqual(["rodsuser", ["lab", "public"]])
      expect(Option.getOrThrow(yield* client.userInfo("carol")).type).toBe("rodsadmin")
      // core.re acCreateUserF1: anonymous is created without collections and not added to public
      expect(Option.getOrThrow(yield* client.userInfo("anonymous"))).toMatchObject({ type: "rodsuser", groups: [] })
      expect(Option.getOrThrow(yield* client.userInfo("lab"))).toMatchObject({ type: "rodsgroup", groups: [] })
      expect(Option.getOrThrow(yield* client.userInfo("public")).type).toBe("rodsgroup")
      expect(yield* client.userInfo("nobody")).toEqual(Option.none())
      expect(yield* client.userInfo("alice", "otherZone")).toEqual(Option.none())
      expect(Option.getOrThrow(yield* client.userInfo(`alice#${zone}`)).groups).toEqual(["lab", "public"])
      expect(server.state.collections.has(`/${zone}/home/lab`)).toBe(true)
      expect(server.state.collections.has(`/${zone}/home/anonymous`)).toBe(false)
      expect(entries(yield* client.getAccess(`/${zone}/home/alice`))).toEqual([`alice#${zone}:own`])
      expect(entries(yield* client.getAccess(`/${zone}/home/public`))).toEqual([`public#${zone}:own`])
      expect(server.groupsOf("bob")).toEqual(["public"])
    })))

  it.live("group membership changes; errors by name (unknown group, duplicate member, absent member)", () =>
    Effect.scoped(Effect.gen(function*() {
      const { client, server } = yield* zoneWithPeople()
      server.addToGroup("lab", "bob")
      expect(Option.getOrThrow(yield* client.userInfo("bob")).groups).toEqual(["lab", "public"])
      server.removeFromGroup("lab", "bob")
      expect(Option.getOrThrow(yield* client.userInfo("bob")).groups).toEqual(["public"])
      expect(() => server.addToGroup("nolab", "bob")).toThrow(expect.objectContaining({ code: -829000 }))
      expect(() => server.addToGroup("lab", "alice")).toThrow(expect.objectContaining({ code: -809000 }))
      expect(() => server.removeFromGroup("lab", "bob")).toThrow(expect.objectContaining({ code: -819000 }))
      expect(() => server.addUser("alice")).toThrow(expect.objectContaining({ code: -809000 }))
    })))

  it.live("each user logs in with its own password; anonymous with any; groups cannot log in", () =>
    Effect.scoped(Effect.gen(function*() {
      const { server, alice, zone } = yield* zoneWithPeople()
      expect(Option.isSome(yield* alice.objStat(`/${zone}/home/alice`))).toBe(true)
      const wrong = yield* clientAs(server, "alice", "bob-pw")
      expect(errName(yield* Effect.flip(wrong.serverVersion))).toBe("CAT_INVALID_AUTHENTICATION")
      const anon = yield* clientAs(server, "anonymous", "whatever")
      expect(yield* anon.serverVersion).toEqual([4, 2, 8])
      const group = yield* clientAs(server, "lab", "")
      expect(errName(yield* Effect.flip(group.serverVersion))).toBe("CAT_INVALID_USER")
    })))
})

describe("ACLs through MOD_ACCESS_CONTROL (707) and our client", () => {
  it.live("the creator owns; grant read, then modify; group grants; public; revoke with null", () =>
    Effect.scoped(Effect.gen(function*() {
      const { client, alice, bob, server, zone, shared } = yield* zoneWithPeople()
      yield* client.collCreate(shared)
      const f = `${shared}/f.txt`
      yield* put(client, f, "hello")
      expect(yield* client.getAccess(f)).toEqual(Option.some({
        kind: "data_object",
        entries: [{ name: "rods", zone, type: "rodsadmin", access: "own", accessName: "own" }],
        inherit: false
      }))
      // STRICT (4.2.8 default core.re): alice needs read on the collection too to reach the object.
      yield* client.setAccess(shared, "alice", zone, "read")
      yield* client.setAccess(f, "alice", zone, "read")
      const acl = Option.getOrThrow(yield* client.getAccess(f))
      expect(acl.entries.find((e) => e.name === "alice")).toEqual({
        name: "alice",
        zone,
        type: "rodsuser",
        access: "read",
        accessName: "read object"
      })
      expect(server.getAccess(f)?.entries.map((e) => e.access)).toEqual(["read object", "own"])
      expect(yield* read(alice, f)).toBe(true)
      expect(errName(yield* Effect.flip(put(alice, f, "mine")))).toBe("CAT_NO_ACCESS_PERMISSION")
      // bob sees nothing (STRICT hides what he cannot read)
      expect(yield* bob.objStat(f)).toEqual(Option.none())
      expect(yield* bob.getAccess(f)).toEqual(Option.none())

      yield* client.setAccess(f, "alice", zone, "modify")
      expect(entries(yield* client.getAccess(f))).toEqual([`alice#${zone}:modify`, `rods#${zone}:own`])
      yield* put(alice, f, "alice was here")
      expect(server.state.dataObjects.get(f)?.data.toString()).toBe("alice was here")
      // modify is not enough to delete (DATA_OBJ_UNLINK needs "delete object", above "modify object")
      expect(errName(yield* Effect.flip(alice.unlink(f)))).toBe("CAT_NO_ACCESS_PERMISSION")

      // a group grant reaches its members
      const g = `${shared}/g.txt`
      yield* put(client, g, "group")
      yield* client.setAccess(g, "lab", zone, "modify")
      expect(Option.getOrThrow(yield* client.getAccess(g)).entries.find((e) => e.name === "lab")).toMatchObject({
        type: "rodsgroup",
        access: "modify",
        accessName: "modify object"
      })
      yield* put(alice, g, "via lab")
      server.removeFromGroup("lab", "alice")
      // g is hidden from her now (STRICT), so the put tries to create it: she may not write into shared
      expect(errName(yield* Effect.flip(put(alice, g, "again")))).toBe("CAT_NO_ACCESS_PERMISSION")
      expect(yield* alice.objStat(g)).toEqual(Option.none())

      // public: every user but anonymous
      const p = `${shared}/p.txt`
      yield* put(client, p, "public")
      yield* client.setAccess(shared, "public", zone, "read")
      yield* client.setAccess(p, "public", zone, "read")
      expect(yield* read(bob, p)).toBe(true)
      const anon = yield* clientAs(server, "anonymous", "")
      expect(yield* anon.objStat(p)).toEqual(Option.none())
      yield* client.setAccess(shared, "anonymous", zone, "read")
      yield* client.setAccess(p, "anonymous", zone, "read")
      expect(yield* read(anon, p)).toBe(true)

      // revoke
      yield* client.setAccess(p, "public", zone, "null")
      yield* client.setAccess(p, "anonymous", zone, "null")
      expect(entries(yield* client.getAccess(p))).toEqual([`rods#${zone}:own`])
      expect(yield* bob.objStat(p)).toEqual(Option.none())
      // revoking an absent entry is fine, as in iRODS
      yield* client.setAccess(p, "bob", zone, "null")
    })))

  it.live("collections: getAccess and inheritance flag; missing path → None", () =>
    Effect.scoped(Effect.gen(function*() {
      const { client, zone, shared } = yield* zoneWithPeople()
      yield* client.collCreate(shared)
      expect(yield* client.getAccess(shared)).toEqual(Option.some({
        kind: "collection",
        entries: [{ name: "rods", zone, type: "rodsadmin", access: "own", accessName: "own" }],
        inherit: false
      }))
      yield* client.setInheritance(shared, true)
      expect(Option.getOrThrow(yield* client.getAccess(shared)).inherit).toBe(true)
      yield* client.setInheritance(shared, false)
      expect(Option.getOrThrow(yield* client.getAccess(shared)).inherit).toBe(false)
      expect(yield* client.getAccess(`${shared}/missing`)).toEqual(Option.none())
    })))

  it.live("inheritance copies the parent's ACL at creation time only (not even the creator's own is added)", () =>
    Effect.scoped(Effect.gen(function*() {
      const { client, alice, zone, shared, server } = yield* zoneWithPeople()
      yield* client.collCreate(shared)
      yield* client.setAccess(shared, "alice", zone, "modify")
      yield* client.setAccess(shared, "lab", zone, "read")
      yield* client.setInheritance(shared, true)
      // a data object made by alice gets exactly the parent's rows (4.2.8 chlRegDataObj)
      yield* put(alice, `${shared}/a.txt`, "a")
      expect(entries(yield* client.getAccess(`${shared}/a.txt`))).toEqual([
        `alice#${zone}:modify`,
        `lab#${zone}:read`,
        `rods#${zone}:own`
      ])
      expect(server.state.dataObjects.get(`${shared}/a.txt`)?.owner).toBe("alice")
      // a sub-collection gets the rows and the inherit flag; its children inherit in turn
      yield* client.collCreate(`${shared}/sub/deeper`)
      const sub = Option.getOrThrow(yield* client.getAccess(`${shared}/sub`))
      expect([sub.inherit, sub.entries.length]).toEqual([true, 3])
      expect(Option.getOrThrow(yield* client.getAccess(`${shared}/sub/deeper`)).inherit).toBe(true)
      // changing the parent later leaves existing children alone; new children see the change
      yield* client.setAccess(shared, "bob", zone, "read")
      expect(entries(yield* client.getAccess(`${shared}/a.txt`))).not.toContain(`bob#${zone}:read`)
      expect(entries(yield* client.getAccess(`${shared}/sub`))).not.toContain(`bob#${zone}:read`)
      yield* put(client, `${shared}/b.txt`, "b")
      expect(entries(yield* client.getAccess(`${shared}/b.txt`))).toContain(`bob#${zone}:read`)
      // turning inheritance off stops copying; the creator owns again
      yield* client.setInheritance(shared, false)
      yield* put(alice, `${shared}/c.txt`, "c")
      expect(entries(yield* client.getAccess(`${shared}/c.txt`))).toEqual([`alice#${zone}:own`])
      // the fake's own API follows the same rules
      server.setInheritance(shared, true)
      server.putObject(`${shared}/d.txt`, "d", { owner: "bob" })
      expect(server.getAccess(`${shared}/d.txt`)?.entries.map((e) => e.name)).toEqual(["alice", "bob", "lab", "rods"])
      expect(server.accessOf("bob", `${shared}/d.txt`)).toBe("read object")
    })))

  it.live("recursive set and revoke reach every collection and object below; recursive inheritance", () =>
    Effect.scoped(Effect.gen(function*() {
      const { client, zone, shared } = yield* zoneWithPeople()
      yield* client.collCreate(`${shared}/x/y`)
      yield* put(client, `${shared}/top.txt`, "1")
      yield* put(client, `${shared}/x/y/deep.txt`, "2")
      yield* client.setAccess(shared, "bob", zone, "read", { recursive: true })
      for (const p of [shared, `${shared}/x`, `${shared}/x/y`, `${shared}/top.txt`, `${shared}/x/y/deep.txt`]) {
        expect(entries(yield* client.getAccess(p))).toContain(`bob#${zone}:read`)
      }
      yield* client.setAccess(`${shared}/x`, "bob", zone, "null", { recursive: true })
      expect(entries(yield* client.getAccess(`${shared}/x/y/deep.txt`))).not.toContain(`bob#${zone}:read`)
      expect(entries(yield* client.getAccess(`${shared}/top.txt`))).toContain(`bob#${zone}:read`)
      const notColl = yield* Effect.flip(client.setAccess(`${shared}/top.txt`, "bob", zone, "read", { recursive: true }))
      expect(errName(notColl)).toBe("CAT_INVALID_ARGUMENT")
      yield* client.setInheritance(shared, true, { recursive: true })
      expect(Option.getOrThrow(yield* client.getAccess(`${shared}/x/y`)).inherit).toBe(true)
    })))

  it.live("who may change an ACL: owners (also through a group); a rodsadmin only with admin mode", () =>
    Effect.scoped(Effect.gen(function*() {
      const { client, alice, bob, server, zone, shared } = yield* zoneWithPeople()
      yield* client.collCreate(shared)
      yield* put(client, `${shared}/r.txt`, "r")
      // alice does not own rods' object
      expect(errName(yield* Effect.flip(alice.setAccess(`${shared}/r.txt`, "alice", zone, "own"))))
        .toBe("CAT_NO_ACCESS_PERMISSION")
      expect(errName(yield* Effect.flip(alice.setAccess(`${shared}/r.txt`, "alice", zone, "own", { admin: true }))))
        .toBe("CAT_NO_ACCESS_PERMISSION")
      // rods (rodsadmin) does not own alice's home: needs admin mode (ichmod -M)
      const home = `/${zone}/home/alice`
      yield* put(alice, `${home}/mine.txt`, "mine")
      expect(errName(yield* Effect.flip(client.setAccess(`${home}/mine.txt`, "bob", zone, "read"))))
        .toBe("CAT_NO_ACCESS_PERMISSION")
      yield* client.setAccess(`${home}/mine.txt`, "bob", zone, "read", { admin: true })
      expect(entries(yield* client.getAccess(`${home}/mine.txt`))).toEqual([`alice#${zone}:own`, `bob#${zone}:read`])
      expect(errName(yield* Effect.flip(client.setInheritance(home, true)))).toBe("CAT_NO_ACCESS_PERMISSION")
      yield* client.setInheritance(home, true, { admin: true })
      // owning through a group is enough
      yield* client.setAccess(`${shared}/r.txt`, "lab", zone, "own")
      yield* alice.setAccess(`${shared}/r.txt`, "bob", zone, "read")
      // bob (read) may not pass it on
      yield* client.setAccess(shared, "bob", zone, "read")
      expect(errName(yield* Effect.flip(bob.setAccess(`${shared}/r.txt`, "bob", zone, "own"))))
        .toBe("CAT_NO_ACCESS_PERMISSION")
      // unknown grantee, unknown path
      expect(errName(yield* Effect.flip(client.setAccess(`${shared}/r.txt`, "nobody", zone, "read"))))
        .toBe("CAT_INVALID_USER")
      expect(errName(yield* Effect.flip(client.setAccess(`${shared}/none`, "bob", zone, "read"))))
        .toBe("CAT_INVALID_ARGUMENT")
      expect(server.accessOf("bob", `${shared}/r.txt`)).toBe("read object")
    })))

  it.live("4.2.8 takes only read/write/own/null/inherit/noinherit: \"read object\" is CAT_INVALID_ARGUMENT", () =>
    Effect.scoped(Effect.gen(function*() {
      const { client, server, zone, shared } = yield* zoneWithPeople()
      yield* client.collCreate(shared)
      const conn = yield* acquireConnection({
        host: server.host,
        port: server.port,
        zone,
        user: "rods",
        password: Redacted.make("rods"),
        applicationName: "acl-test",
        connectTimeout: Duration.seconds(5),
        requestTimeout: Duration.seconds(5),
        forceLegacyAuth: false
      })
      const send = (accessLevel: string) =>
        conn.call(
          "raw",
          shared,
          API.MOD_ACCESS_CONTROL,
          modAccessControlInp({ recursive: false, accessLevel, userName: "bob", zone, path: shared })
        )
      for (const word of ["read object", "modify object", "modify", "read_object"]) {
        expect(errName(yield* Effect.flip(send(word)))).toBe("CAT_INVALID_ARGUMENT")
      }
      yield* send("write")
      expect(server.accessOf("bob", shared)).toBe("modify object")
    })))

  it.live("a removed user's rows stay in the catalog but getAccess leaves them out", () =>
    Effect.scoped(Effect.gen(function*() {
      const { client, server, zone, shared } = yield* zoneWithPeople()
      yield* client.collCreate(shared)
      yield* put(client, `${shared}/f`, "f")
      server.addUser("dave", { password: "d" })
      yield* client.setAccess(`${shared}/f`, "dave", zone, "read")
      server.removeUser("dave")
      expect(server.state.dataObjects.get(`${shared}/f`)?.acl.size).toBe(2)
      expect(entries(yield* client.getAccess(`${shared}/f`))).toEqual([`rods#${zone}:own`])
    })))
})

describe("GenQuery over ACL, user and group columns (joined as iRODS joins them)", () => {
  it.live("data ACL joined to R_USER_MAIN; collection ACL members expand groups; group members; STRICT", () =>
    Effect.scoped(Effect.gen(function*() {
      const { client, alice, server, zone, shared } = yield* zoneWithPeople()
      yield* client.collCreate(shared)
      yield* put(client, `${shared}/f`, "f")
      yield* client.setAccess(`${shared}/f`, "lab", zone, "read")
      yield* client.setAccess(shared, "lab", zone, "modify")
      server.addToGroup("lab", "bob")
      // ils -A style: user name/zone/type with the access name, filtered by collection and data name
      const dataAcl = yield* client.genQuery({
        select: [COL.USER_NAME, COL.USER_TYPE, COL.DATA_ACCESS_NAME, COL.DATA_TOKEN_NAMESPACE],
        where: [[COL.COLL_NAME, eq(shared)], [COL.DATA_NAME, eq("f")]]
      })
      expect(dataAcl).toEqual([
        ["lab", "rodsgroup", "read object", "access_type"],
        ["rods", "rodsadmin", "own", "access_type"]
      ])
      // COL_COLL_USER_NAME goes through R_USER_GROUP: a group grant lists the group and its members
      const collUsers = yield* client.genQuery({
        select: [COL.COLL_USER_NAME, COL.COLL_ACCESS_NAME],
        where: [[COL.COLL_NAME, eq(shared)]]
      })
      expect(collUsers).toEqual([
        ["alice", "modify object"],
        ["bob", "modify object"],
        ["lab", "modify object"],
        ["rods", "own"]
      ])
      const dataUsers = yield* client.genQuery({
        select: [COL.DATA_USER_NAME],
        where: [[COL.COLL_NAME, eq(shared)], [COL.DATA_NAME, eq("f")], [COL.DATA_ACCESS_NAME, eq("read object")]]
      })
      expect(dataUsers).toEqual([["alice"], ["bob"], ["lab"]])
      // python-irodsclient's group members: users (not groups) with USER_GROUP_NAME = the group
      const members = yield* client.genQuery({
        select: [COL.USER_NAME],
        where: [[COL.USER_TYPE, "<> 'rodsgroup'"], [COL.USER_GROUP_NAME, eq("lab")]]
      })
      expect(members).toEqual([["alice"], ["bob"]])
      // Every user and group is in its own group (R_USER_GROUP self rows)
      expect(yield* client.genQuery({ select: [COL.USER_GROUP_NAME], where: [[COL.USER_NAME, eq("lab")]] }))
        .toEqual([["lab"]])
      // STRICT: alice (read via lab on f, modify via lab on shared) sees only those, rods sees all
      const mine = yield* alice.genQuery({ select: [COL.DATA_NAME], where: [[COL.COLL_NAME, like(`/${zone}/home/%`)]] })
      expect(mine).toEqual([["f"]])
      expect(yield* alice.genQuery({ select: [COL.COLL_NAME], where: [[COL.COLL_NAME, like(`/${zone}/home/%`)]] }))
        .toEqual([[`/${zone}/home/alice`], [`/${zone}/home/lab`], [`/${zone}/home/public`], [shared]])
    })))

  it.live("without the STRICT policy non-admins see everything in GenQuery but still need access to open", () =>
    Effect.scoped(Effect.gen(function*() {
      const { client, bob, shared } = yield* zoneWithPeople({ strictAcl: false })
      yield* client.collCreate(shared)
      yield* put(client, `${shared}/f`, "f")
      expect(Option.isSome(yield* bob.objStat(`${shared}/f`))).toBe(true)
      expect(entries(yield* bob.getAccess(`${shared}/f`)).length).toBe(1)
      expect(errName(yield* Effect.flip(read(bob, `${shared}/f`)))).toBe("CAT_NO_ACCESS_PERMISSION")
    })))
})

describe("permission checks on data operations", () => {
  it.live("non-admins: create needs modify on the collection, AVUs need modify, checksum needs read", () =>
    Effect.scoped(Effect.gen(function*() {
      const { client, alice, zone, shared } = yield* zoneWithPeople()
      yield* client.collCreate(shared)
      yield* client.setAccess(shared, "alice", zone, "read")
      expect(errName(yield* Effect.flip(put(alice, `${shared}/new.txt`, "x")))).toBe("CAT_NO_ACCESS_PERMISSION")
      expect(errName(yield* Effect.flip(alice.collCreate(`${shared}/sub`)))).toBe("CAT_NO_ACCESS_PERMISSION")
      yield* put(client, `${shared}/f`, "f")
      yield* client.setAccess(`${shared}/f`, "alice", zone, "read")
      expect((yield* alice.checksum(`${shared}/f`)).algorithm).toBe("md5")
      const target = { type: "data_object", path: `${shared}/f` } as const
      const avu = { name: "k", value: "v", units: "" }
      expect(errName(yield* Effect.flip(alice.addAvu(target, avu)))).toBe("CAT_NO_ACCESS_PERMISSION")
      yield* client.setAccess(`${shared}/f`, "alice", zone, "modify")
      yield* alice.addAvu(target, avu)
      expect(yield* client.listAvus(target)).toEqual([avu])
      // her own home: everything
      yield* put(alice, `/${zone}/home/alice/a.txt`, "a")
      yield* alice.collCreate(`/${zone}/home/alice/x/y`)
      yield* alice.unlink(`/${zone}/home/alice/a.txt`)
    })))

  it.live("enforceAccess \"all\": a rodsadmin needs an ACL too (as in 4.2.8), except in admin mode", () =>
    Effect.scoped(Effect.gen(function*() {
      const { client, alice, zone } = yield* zoneWithPeople({ enforceAccess: "all" })
      const f = `/${zone}/home/alice/mine.txt`
      yield* put(alice, f, "mine")
      // GenQuery is not restricted for rodsadmin (no STRICT), but opening and AVUs are
      expect(Option.isSome(yield* client.objStat(f))).toBe(true)
      expect(errName(yield* Effect.flip(read(client, f)))).toBe("CAT_NO_ACCESS_PERMISSION")
      const target = { type: "data_object", path: f } as const
      expect(errName(yield* Effect.flip(client.addAvu(target, { name: "k", value: "v", units: "" }))))
        .toBe("CAT_NO_ACCESS_PERMISSION")
      yield* client.setAccess(f, "rods", zone, "read", { admin: true })
      expect(yield* read(client, f)).toBe(true)
    })))
})

const like = (p: string) => `like '${p}'`
