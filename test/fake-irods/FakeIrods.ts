/**
 * A fake iRODS 4.2.8 server for tests: the native protocol (framing, XML packing with the 4.2.8 escaping quirks,
 * StartupPack → Version_PI, native challenge-response auth 703/704 and the 4.3 plugin flow 110000) over an
 * in-memory zone with users, collections, data objects (ids, sizes, times, MD5 or `sha2:` checksums) and AVUs.
 *
 * Access control as 4.2.8 applies it (src/irods/NOTES.md): users and groups (`public`, `rodsadmin`, `anonymous`),
 * ACL rows per object, inheritance copied at creation time, MOD_ACCESS_CONTROL 707, GENERAL_ADMIN 701 (users,
 * groups, membership), GenQuery over ACL / user / group columns joined as iRODS joins them (./Tables.ts), the
 * STRICT ACL policy and permission checks on data operations. The test API (`server.addUser`, `setAccess`, ...)
 * changes the catalog directly.
 *
 * Listens on 127.0.0.1 on an ephemeral port. Fault switches (`server.faults`) drop connections, delay replies,
 * corrupt or blank checksums and refuse authentication.
 */
import { Effect } from "effect"
import { createHash, randomBytes } from "node:crypto"
import { createServer, type Server, type Socket } from "node:net"
import { posix } from "node:path"
import {
  ACCESS_TYPE,
  API,
  genQueryOut,
  irodsTime,
  parseRelVersion,
  readGenQueryInp,
  rError,
  versionAtLeast
} from "../../src/irods/Api.js"
import { nativeDigest } from "../../src/irods/Connection.js"
import { IRODS_ERROR_CODES as E } from "../../src/irods/Errors.js"
import { frame, type Frame, FrameReader, writeFrame } from "../../src/irods/Wire.js"
import {
  el,
  escapeTextAsServer,
  parseStruct,
  readKeyValPair,
  type Struct,
  type XmlElement,
  type XmlMode,
  type XmlValue
} from "../../src/irods/Xml.js"
import { evaluate, GenQueryError } from "./GenQuery.js"
import { connectingTables, joinTables, KEY, type Row, tableOf, type TableName } from "./Tables.js"

export interface FakeAvu {
  readonly id: number
  readonly name: string
  readonly value: string
  readonly units: string
  readonly createTime: Date
  readonly modifyTime: Date
}

/** One successful MOD_AVU_METADATA call (`imeta add|adda|rm|set`), as the post-PEP sees it. */
export interface FakeAvuChange {
  readonly op: "add" | "adda" | "rm" | "set"
  readonly type: "data_object" | "collection"
  readonly path: string
  readonly attribute: string
  readonly value: string
  readonly units: string
  /** The session's client user and zone. */
  readonly user: string
  readonly zone: string
}

/** Access names as R_TOKN_MAIN stores them in 4.2.8 (what GenQuery returns in COL_*_ACCESS_NAME). */
export type FakeAccessName = "read object" | "modify object" | "own"

/** What the test API accepts: the stored names, ichmod's words (`write` = modify), and `null` to remove. */
export type FakeAccessInput = FakeAccessName | "read" | "write" | "modify" | "null"

/** R_OBJT_ACCESS rows of one object: grantee user (or group) id → access. */
export type FakeAcl = Map<number, FakeAccessName>

export type FakeUserType = "rodsuser" | "rodsadmin" | "rodsgroup" | "groupadmin"

export interface FakeUser {
  readonly id: number
  readonly name: string
  readonly zone: string
  readonly type: FakeUserType
  /** undefined = no R_USER_PASSWORD row (groups; `anonymous`, who then logs in with any password). */
  password: string | undefined
  readonly createTime: Date
  modifyTime: Date
}

export interface FakeCollection {
  readonly id: number
  readonly path: string
  readonly owner: string
  readonly createTime: Date
  modifyTime: Date
  avus: Array<FakeAvu>
  acl: FakeAcl
  /** R_COLL_MAIN.coll_inheritance: "" (never set), "1" (on) or "0" (turned off). */
  inheritance: string
}

export interface FakeDataObject {
  readonly id: number
  path: string
  readonly owner: string
  data: Buffer
  checksum: string
  readonly createTime: Date
  modifyTime: Date
  avus: Array<FakeAvu>
  acl: FakeAcl
}

/** An ACL as the test API reports it (grantees that no longer exist are left out, as python-irodsclient does). */
export interface FakeAccessReport {
  readonly kind: "data_object" | "collection"
  readonly entries: ReadonlyArray<{
    readonly name: string
    readonly zone: string
    readonly type: FakeUserType
    readonly access: FakeAccessName
  }>
  /** Collections only (false for data objects). */
  readonly inherit: boolean
}

export interface FaultSwitches {
  /** Close the socket, without replying, when this API arrives (after letting `after` such requests through). */
  dropConnection?: { api: number; after?: number; times?: number } | undefined
  /** Hold replies to `api` (any API when omitted) for `ms` milliseconds. */
  delay?: { api?: number; ms: number; times?: number } | undefined
  /** DATA_OBJ_CHKSUM answers a checksum of different content. */
  corruptChecksum?: boolean
  /** DATA_OBJ_CHKSUM answers an empty string. */
  emptyChecksum?: boolean
  /** Every login fails with CAT_INVALID_AUTHENTICATION. */
  refuseAuth?: boolean
}

export interface FakeIrodsOptions {
  readonly zone?: string
  /**
   * user → password. `rods` is the zone's rodsadmin (always present, password "rods" unless given); every other
   * user is a rodsuser. Each gets /zone/home/user and is a member of `public`. Default { rods: "rods" }.
   */
  readonly users?: Readonly<Record<string, string>>
  /** Announced relVersion, default `rods4.2.8`. */
  readonly version?: string
  /** Checksum policy of the "server", default md5. */
  readonly checksumAlgorithm?: "md5" | "sha256"
  /**
   * Permission checks on data operations (open/create/read/write, unlink, checksum, AVUs, mkdir, rmdir):
   * "non-admin" (default) checks rodsusers only; "all" also checks rodsadmins, as 4.2.8 does (a rodsadmin needs
   * an ACL too, except in admin mode: `adda`, `admin:` ACL changes); "off" checks nobody.
   * ACL changes (MOD_ACCESS_CONTROL 707) always follow 4.2.8: the caller must own the object (or use `admin:`).
   */
  readonly enforceAccess?: "non-admin" | "all" | "off"
  /**
   * 4.2.8's default core.re sets `acAclPolicy {msiAclPolicy("STRICT")}`: GenQuery rows of data objects and
   * collections (and so OBJ_STAT and opens) are restricted, for non-admins, to those the caller can read. Default
   * true; `anonymous` is always restricted. Needs `enforceAccess` other than "off".
   */
  readonly strictAcl?: boolean
}

/** What a client did on one connection (for tests and the cross-check report). */
export interface ConnectionLog {
  relVersion: string
  option: string
  auth: "legacy" | "plugin" | "none"
  usernameSent: string
  apis: Array<number>
}

const RESC = "demoResc"

const now = () => new Date(Math.floor(Date.now() / 1000) * 1000)

/** An iRODS error the fake answers with (also thrown by the test API). */
export class FakeIrodsError extends Error {
  constructor(readonly code: number, message = "") {
    super(message === "" ? `iRODS error ${code}` : message)
  }
}
const IrodsFailure = FakeIrodsError

/** Serialises like the 4.2.8 server: newline after struct start tags and after every end tag. */
const serializeAsServer = (node: XmlElement, mode: XmlMode): string => {
  let out = `<${node.name}>\n`
  const field = (name: string, v: XmlValue): void => {
    if (v === undefined) return
    if (typeof v === "string") out += `<${name}>${escapeTextAsServer(v, mode)}</${name}>\n`
    else if (typeof v === "number" || typeof v === "bigint") out += `<${name}>${v.toString()}</${name}>\n`
    else if (Array.isArray(v)) for (const item of v as ReadonlyArray<XmlValue>) field(name, item)
    else out += serializeAsServer(v as XmlElement, mode)
  }
  for (const [name, v] of node.fields) field(name, v)
  return `${out}</${node.name}>\n`
}

interface OpenFd {
  readonly path: string
  readonly write: boolean
  pos: number
  data: Buffer
}

interface Statement {
  readonly columns: ReadonlyArray<number>
  rows: Array<Array<string>>
  readonly total: number
  readonly options: number
}

const READ = ACCESS_TYPE["read object"]
const OWN = ACCESS_TYPE.own

/** ichmod words and stored names → the stored name (undefined for "null"). */
export const accessName = (level: FakeAccessInput): FakeAccessName | undefined => {
  switch (level) {
    case "read":
    case "read object":
      return "read object"
    case "write":
    case "modify":
    case "modify object":
      return "modify object"
    case "own":
      return "own"
    case "null":
      return undefined
  }
}

export class FakeZone {
  readonly collections = new Map<string, FakeCollection>()
  readonly dataObjects = new Map<string, FakeDataObject>()
  /** R_USER_MAIN: users and groups by id. */
  readonly accounts = new Map<number, FakeUser>()
  /** R_USER_GROUP: group_user_id → member user_ids. Every user and group is a member of itself. */
  readonly memberships = new Map<number, Set<number>>()
  /**
   * Told of every AVU change a client made through MOD_AVU_METADATA, after it succeeded (as iRODS runs
   * acPostProcForModifyAVUMetadata): the Data Store's AMQP publisher hangs here (test/fake-irods/DataStoreFeed.ts).
   */
  avuObserver: ((change: FakeAvuChange) => void) | undefined = undefined
  private nextId = 10000

  constructor(
    readonly zone: string,
    users: Readonly<Record<string, string>>,
    readonly checksumAlgorithm: "md5" | "sha256"
  ) {
    // What a fresh 4.2.8 zone holds (scripts/irods/database_connect.py setup_database_values): groups rodsadmin
    // and public, the admin in both, system collections owned by the admin, /zone/home/public owned by public.
    const adminGroup = this.addAccount("rodsadmin", "rodsgroup", undefined)
    const publicGroup = this.addAccount("public", "rodsgroup", undefined)
    const rods = this.addAccount("rods", "rodsadmin", users["rods"] ?? "rods")
    this.memberships.get(adminGroup.id)!.add(rods.id)
    this.memberships.get(publicGroup.id)!.add(rods.id)
    for (const p of ["/", `/${zone}`, `/${zone}/home`, `/${zone}/trash`, `/${zone}/trash/home`]) {
      this.adminCollection(p, rods)
    }
    this.adminCollection(`/${zone}/home/public`, publicGroup)
    this.adminCollection(`/${zone}/trash/home/public`, publicGroup)
    this.adminCollection(`/${zone}/home/rods`, rods)
    this.adminCollection(`/${zone}/trash/home/rods`, rods)
    for (const [name, password] of Object.entries(users)) {
      if (name !== "rods") this.addUser(name, { password })
    }
    this.addUser("anonymous", {})
  }

  id() {
    return this.nextId++
  }

  // ---- users and groups ----

  private addAccount(name: string, type: FakeUserType, password: string | undefined): FakeUser {
    if (this.user(name) !== undefined) {
      throw new IrodsFailure(E.CATALOG_ALREADY_HAS_ITEM_BY_THAT_NAME, `user ${name} exists`)
    }
    const u: FakeUser = { id: this.id(), name, zone: this.zone, type, password, createTime: now(), modifyTime: now() }
    this.accounts.set(u.id, u)
    this.memberships.set(u.id, new Set([u.id]))
    return u
  }

  /** A user or group by `name` or `name#zone` (the fake has one zone). */
  user(nameOrQualified: string, zone?: string): FakeUser | undefined {
    const [name, z] = nameOrQualified.includes("#") ? nameOrQualified.split("#", 2) : [nameOrQualified, zone]
    const wanted = z === undefined || z === "" ? this.zone : z
    for (const u of this.accounts.values()) if (u.name === name && u.zone === wanted) return u
    return undefined
  }

  private requireUser(name: string): FakeUser {
    const u = this.user(name)
    if (u === undefined) throw new IrodsFailure(E.CAT_INVALID_USER, `no user ${name}`)
    return u
  }

  /**
   * `iadmin mkuser` under 4.2.8's core.re (acCreateUser): the account, /zone/home/name and /zone/trash/home/name
   * owned by it, membership of `public`. `anonymous` gets the account only (no collections, not in `public`).
   */
  addUser(name: string, opts: { readonly password?: string | undefined; readonly type?: FakeUserType } = {}): FakeUser {
    const type = opts.type ?? "rodsuser"
    if (type === "rodsgroup") return this.addGroup(name)
    const u = this.addAccount(name, type, opts.password)
    if (name === "anonymous") return u
    this.adminCollection(`/${this.zone}/home/${name}`, u)
    this.adminCollection(`/${this.zone}/trash/home/${name}`, u)
    this.memberships.get(this.requireUser("public").id)!.add(u.id)
    return u
  }

  /** `iadmin mkgroup` in 4.2.8 runs the same acCreateUser rule: the group gets /zone/home/group (not `public`). */
  addGroup(name: string): FakeUser {
    const g = this.addAccount(name, "rodsgroup", undefined)
    this.adminCollection(`/${this.zone}/home/${name}`, g)
    this.adminCollection(`/${this.zone}/trash/home/${name}`, g)
    return g
  }

  /** `iadmin rmuser`: the home collections must be empty; ACL rows naming the user stay (irods/irods#6921). */
  removeUser(name: string): void {
    const u = this.requireUser(name)
    for (const home of [`/${this.zone}/home/${u.name}`, `/${this.zone}/trash/home/${u.name}`]) {
      const inside = (p: string) => p.startsWith(home + "/")
      if ([...this.collections.keys()].some(inside) || [...this.dataObjects.keys()].some(inside)) {
        throw new IrodsFailure(E.CAT_COLLECTION_NOT_EMPTY, `${home} is not empty`)
      }
    }
    this.collections.delete(`/${this.zone}/home/${u.name}`)
    this.collections.delete(`/${this.zone}/trash/home/${u.name}`)
    this.accounts.delete(u.id)
    this.memberships.delete(u.id)
    for (const members of this.memberships.values()) members.delete(u.id)
  }

  /** chlModGroup add: CAT_INVALID_USER / CAT_INVALID_GROUP / CATALOG_ALREADY_HAS_ITEM_BY_THAT_NAME. */
  addToGroup(group: string, user: string): void {
    const u = this.user(user)
    if (u === undefined || u.type === "rodsgroup") throw new IrodsFailure(E.CAT_INVALID_USER, `no user ${user}`)
    const g = this.user(group)
    if (g === undefined || g.type !== "rodsgroup") throw new IrodsFailure(E.CAT_INVALID_GROUP, `no group ${group}`)
    const members = this.memberships.get(g.id)!
    if (members.has(u.id)) throw new IrodsFailure(E.CATALOG_ALREADY_HAS_ITEM_BY_THAT_NAME, `${user} is in ${group}`)
    members.add(u.id)
  }

  /** chlModGroup remove: deleting no row is CAT_SUCCESS_BUT_WITH_NO_INFO, as the catalog reports it. */
  removeFromGroup(group: string, user: string): void {
    const u = this.user(user)
    if (u === undefined || u.type === "rodsgroup") throw new IrodsFailure(E.CAT_INVALID_USER, `no user ${user}`)
    const g = this.user(group)
    if (g === undefined || g.type !== "rodsgroup") throw new IrodsFailure(E.CAT_INVALID_GROUP, `no group ${group}`)
    if (!this.memberships.get(g.id)!.delete(u.id)) {
      throw new IrodsFailure(E.CAT_SUCCESS_BUT_WITH_NO_INFO, `${user} is not in ${group}`)
    }
  }

  /** Ids of the groups the user is in, itself included (R_USER_GROUP rows with user_id = the user). */
  groupIdsOf(userId: number): Set<number> {
    const out = new Set<number>()
    for (const [gid, members] of this.memberships) if (members.has(userId)) out.add(gid)
    return out
  }

  /** Names of the groups (type rodsgroup) a user is in. */
  groupsOf(name: string): Array<string> {
    const u = this.requireUser(name)
    return [...this.groupIdsOf(u.id)]
      .map((id) => this.accounts.get(id))
      .filter((g): g is FakeUser => g !== undefined && g.type === "rodsgroup" && g.id !== u.id)
      .map((g) => g.name)
      .sort()
  }

  /**
   * The user's access token id on an object: the highest over ACL rows of the user or a group it is in; groups
   * themselves never pass a check (`UM.user_type_name != 'rodsgroup'` in 4.2.8's cmlCheck* SQL).
   */
  level(user: FakeUser, acl: FakeAcl): number {
    if (user.type === "rodsgroup" || !this.accounts.has(user.id)) return ACCESS_TYPE.null
    const groups = this.groupIdsOf(user.id)
    let best: number = ACCESS_TYPE.null
    for (const [uid, name] of acl) if (groups.has(uid)) best = Math.max(best, ACCESS_TYPE[name])
    return best
  }

  // ---- collections and data objects ----

  /** chlRegCollByAdmin: the owner gets `own`, no inheritance from the parent. */
  private adminCollection(path: string, owner: FakeUser): FakeCollection {
    const c: FakeCollection = {
      id: this.id(),
      path,
      owner: owner.name,
      createTime: now(),
      modifyTime: now(),
      avus: [],
      acl: new Map([[owner.id, "own"]]),
      inheritance: ""
    }
    this.collections.set(path, c)
    return c
  }

  /** What a new object or collection under `parentPath` gets (chlRegDataObj / chlRegColl, 4.2.8). */
  private initialAcl(parentPath: string, creator: FakeUser): { acl: FakeAcl; inherited: boolean } {
    const parent = this.collections.get(parentPath)
    // With inheritance on, the new entry gets a copy of the parent's ACL rows and nothing else (not even the
    // creator's own); otherwise the creator gets own.
    if (parent !== undefined && parent.inheritance === "1") return { acl: new Map(parent.acl), inherited: true }
    return { acl: new Map([[creator.id, "own"]]), inherited: false }
  }

  /** A collection registered by `creator` (parent must exist; no checks). Sub-collections inherit the inherit flag. */
  createCollection(path: string, creator: FakeUser): FakeCollection {
    const { acl, inherited } = this.initialAcl(parentOf(path), creator)
    const c: FakeCollection = {
      id: this.id(),
      path,
      owner: creator.name,
      createTime: now(),
      modifyTime: now(),
      avus: [],
      acl,
      inheritance: inherited ? "1" : ""
    }
    this.collections.set(path, c)
    return c
  }

  /** A data object registered by `creator` (parent must exist; no checks). */
  createDataObject(path: string, creator: FakeUser, data: Buffer = Buffer.alloc(0)): FakeDataObject {
    const d: FakeDataObject = {
      id: this.id(),
      path,
      owner: creator.name,
      data,
      checksum: "",
      createTime: now(),
      modifyTime: now(),
      avus: [],
      acl: this.initialAcl(parentOf(path), creator).acl
    }
    this.dataObjects.set(path, d)
    return d
  }

  /** Kept for existing callers: a collection registered by `owner` (default rods). */
  mkcoll(path: string, owner = "rods"): FakeCollection {
    return this.createCollection(path, this.requireUser(owner))
  }

  /** `imkdir -p` as `owner` (default rods): missing parents are made too, each inheriting from its parent. */
  makeCollection(path: string, opts: { readonly owner?: string } = {}): FakeCollection {
    const owner = this.requireUser(opts.owner ?? "rods")
    const target = normalize(path)
    const missing: Array<string> = []
    for (let p = target; !this.collections.has(p); p = parentOf(p)) {
      if (this.dataObjects.has(p)) throw new IrodsFailure(E.CAT_NAME_EXISTS_AS_DATAOBJ, p)
      missing.unshift(p)
    }
    for (const p of missing) this.createCollection(p, owner)
    return this.collections.get(target)!
  }

  /** `iput -f` as `owner` (default rods): creates the object (and missing parents) or replaces its content. */
  putObject(path: string, data: string | Buffer = "", opts: { readonly owner?: string } = {}): FakeDataObject {
    const target = normalize(path)
    const bytes = typeof data === "string" ? Buffer.from(data) : data
    if (this.collections.has(target)) throw new IrodsFailure(E.CAT_NAME_EXISTS_AS_COLLECTION, target)
    const existing = this.dataObjects.get(target)
    if (existing !== undefined) {
      existing.data = bytes
      existing.checksum = ""
      existing.modifyTime = now()
      return existing
    }
    this.makeCollection(parentOf(target), opts)
    return this.createDataObject(target, this.requireUser(opts.owner ?? "rods"), bytes)
  }

  /** Everything at or under a collection path (the collection itself first). */
  private subtree(path: string): { collections: Array<FakeCollection>; dataObjects: Array<FakeDataObject> } {
    const prefix = path === "/" ? "/" : path + "/"
    return {
      collections: [...this.collections.values()].filter((c) => c.path === path || c.path.startsWith(prefix)),
      dataObjects: [...this.dataObjects.values()].filter((d) => d.path.startsWith(prefix))
    }
  }

  /**
   * `ichmod -M` (admin mode, no ownership check): sets or (`null`) removes one grantee's row; `recursive` applies
   * it to the collection, every collection under it and their data objects.
   */
  setAccess(path: string, who: string, level: FakeAccessInput, opts: { readonly recursive?: boolean } = {}): void {
    const target = normalize(path)
    const grantee = this.requireUser(who)
    const name = accessName(level)
    const apply = (acl: FakeAcl) => (name === undefined ? acl.delete(grantee.id) : acl.set(grantee.id, name))
    const coll = this.collections.get(target)
    const obj = this.dataObjects.get(target)
    if (coll === undefined && obj === undefined) throw new IrodsFailure(E.CAT_INVALID_ARGUMENT, `no ${target}`)
    if (coll === undefined) {
      if (opts.recursive) throw new IrodsFailure(E.CAT_INVALID_ARGUMENT, `${target} is not a collection`)
      apply(obj!.acl)
      return
    }
    if (!opts.recursive) {
      apply(coll.acl)
      return
    }
    const all = this.subtree(target)
    for (const c of all.collections) apply(c.acl)
    for (const d of all.dataObjects) apply(d.acl)
  }

  /** `ichmod [-r] inherit|noinherit` (admin mode): "1" or "0" on the collection (and every one under it). */
  setInheritance(path: string, on: boolean, opts: { readonly recursive?: boolean } = {}): void {
    const target = normalize(path)
    const coll = this.collections.get(target)
    if (coll === undefined) throw new IrodsFailure(E.CAT_NO_ACCESS_PERMISSION, `no collection ${target}`)
    for (const c of opts.recursive ? this.subtree(target).collections : [coll]) {
      c.inheritance = on ? "1" : "0"
      c.modifyTime = now()
    }
  }

  /** The ACL of a path (undefined when nothing is there). */
  getAccess(path: string): FakeAccessReport | undefined {
    const target = normalize(path)
    const coll = this.collections.get(target)
    const obj = this.dataObjects.get(target)
    const acl = coll?.acl ?? obj?.acl
    if (acl === undefined) return undefined
    const entries = [...acl]
      .flatMap(([uid, access]) => {
        const u = this.accounts.get(uid)
        return u === undefined ? [] : [{ name: u.name, zone: u.zone, type: u.type, access }]
      })
      .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
    return { kind: coll !== undefined ? "collection" : "data_object", entries, inherit: coll?.inheritance === "1" }
  }

  /** The effective access of a user on a path ("null" when none). */
  accessOf(user: string, path: string): FakeAccessName | "null" {
    const target = normalize(path)
    const acl = this.collections.get(target)?.acl ?? this.dataObjects.get(target)?.acl
    if (acl === undefined) throw new IrodsFailure(E.USER_FILE_DOES_NOT_EXIST, target)
    const id = this.level(this.requireUser(user), acl)
    return id >= OWN ? "own" : id >= ACCESS_TYPE["modify object"] ? "modify object" : id >= READ ? "read object" : "null"
  }

  checksumOf(data: Buffer): string {
    return this.checksumAlgorithm === "md5"
      ? createHash("md5").update(data).digest("hex")
      : `sha2:${createHash("sha256").update(data).digest("base64")}`
  }

  // ---- GenQuery ----

  private collRow(c: FakeCollection): Map<number, string> {
    const into = new Map<number, string>()
    into.set(500, String(c.id))
    into.set(501, c.path)
    into.set(502, c.path === "/" ? "/" : posix.dirname(c.path))
    into.set(503, c.owner)
    into.set(504, this.zone)
    into.set(505, "0")
    into.set(506, c.inheritance)
    into.set(507, "")
    into.set(508, irodsTime(c.createTime))
    into.set(509, irodsTime(c.modifyTime))
    return into
  }

  private dataRow(d: FakeDataObject, coll: FakeCollection | undefined): Map<number, string> {
    const r = new Map<number, string>()
    r.set(401, String(d.id))
    r.set(402, String(coll?.id ?? 0))
    r.set(403, posix.basename(d.path))
    r.set(404, "0")
    r.set(405, "")
    r.set(406, "generic")
    r.set(407, String(d.data.length))
    r.set(409, RESC)
    r.set(410, `/var/lib/irods/Vault${d.path.slice(this.zone.length + 1)}`)
    r.set(411, d.owner)
    r.set(412, this.zone)
    r.set(413, "1")
    r.set(414, "")
    r.set(415, d.checksum)
    r.set(416, "00000000000")
    r.set(417, "0")
    r.set(418, "")
    r.set(419, irodsTime(d.createTime))
    r.set(420, irodsTime(d.modifyTime))
    r.set(422, RESC)
    r.set(423, "10001")
    return r
  }

  private static avuRow(key: number, owner: number, a: FakeAvu, first: number): Row {
    return new Map([
      [key, String(owner)],
      [first, a.name],
      [first + 1, a.value],
      [first + 2, a.units],
      [first + 3, String(a.id)],
      [first + 4, irodsTime(a.createTime)],
      [first + 5, irodsTime(a.modifyTime)]
    ])
  }

  private static accessRows(objectId: number, acl: FakeAcl, first: number): Array<Row> {
    return [...acl].map(([uid, name]) =>
      new Map([
        [first, String(ACCESS_TYPE[name])],
        [first + 1, name],
        [first + 2, "access_type"],
        [first + 3, String(uid)],
        [first + 4, String(objectId)]
      ])
    )
  }

  /** R_USER_GROUP rows joined with the member (for COL_*_USER_*) or the group (for COL_USER_GROUP_*). */
  private memberRows(make: (group: FakeUser, member: FakeUser) => Row): Array<Row> {
    const rows: Array<Row> = []
    for (const [gid, members] of this.memberships) {
      const group = this.accounts.get(gid)
      if (group === undefined) continue
      for (const uid of members) {
        const member = this.accounts.get(uid)
        if (member !== undefined) rows.push(make(group, member))
      }
    }
    return rows
  }

  private tableRows(t: TableName): ReadonlyArray<Row> {
    switch (t) {
      case "COLL":
        return [...this.collections.values()].map((c) => this.collRow(c))
      case "DATA":
        return [...this.dataObjects.values()].map((d) => this.dataRow(d, this.collections.get(posix.dirname(d.path))))
      case "DATA_META":
        return [...this.dataObjects.values()].flatMap((d) =>
          d.avus.map((a) => FakeZone.avuRow(KEY.DATA_META_OBJECT, d.id, a, 600))
        )
      case "COLL_META":
        return [...this.collections.values()].flatMap((c) =>
          c.avus.map((a) => FakeZone.avuRow(KEY.COLL_META_OBJECT, c.id, a, 610))
        )
      case "DATA_ACCESS":
        return [...this.dataObjects.values()].flatMap((d) => FakeZone.accessRows(d.id, d.acl, 700))
      case "COLL_ACCESS":
        return [...this.collections.values()].flatMap((c) => FakeZone.accessRows(c.id, c.acl, 710))
      case "USER":
        return [...this.accounts.values()].map((u) =>
          new Map([
            [201, String(u.id)],
            [202, u.name],
            [203, u.type],
            [204, u.zone],
            [206, ""],
            [207, ""],
            [208, irodsTime(u.createTime)],
            [209, irodsTime(u.modifyTime)]
          ])
        )
      case "USER_GROUP":
        return this.memberRows((g, m) =>
          new Map([[KEY.USER_GROUP_MEMBER, String(m.id)], [900, String(g.id)], [901, g.name]])
        )
      case "DATA_USER":
        return this.memberRows((g, m) =>
          new Map([[KEY.DATA_USER_GRANTEE, String(g.id)], [1310, m.name], [1311, m.zone]])
        )
      case "COLL_USER":
        return this.memberRows((g, m) =>
          new Map([[KEY.COLL_USER_GRANTEE, String(g.id)], [1300, m.name], [1301, m.zone]])
        )
    }
  }

  /**
   * Joined rows for a query's columns. With `restrictTo` (STRICT ACL policy, non-admin caller), rows touching
   * R_DATA_MAIN / R_COLL_MAIN keep only objects / collections that user can read (4.2.8 genqAppendAccessCheck).
   */
  rowsFor(columns: ReadonlyArray<number>, restrictTo?: FakeUser): Array<Row> {
    const needed = new Set<TableName>()
    for (const c of columns) {
      const t = tableOf(c)
      if (t === undefined) throw new IrodsFailure(E.CAT_FAILED_TO_LINK_TABLES, `column ${c} not available`)
      needed.add(t)
    }
    const tables = connectingTables(needed)
    let rows: Array<Row> = joinTables(tables, (t) => this.tableRows(t))
    if (restrictTo !== undefined) {
      if (tables.has("DATA")) {
        const byId = new Map([...this.dataObjects.values()].map((d) => [String(d.id), d]))
        rows = rows.filter((r) => {
          const d = byId.get(r.get(401) ?? "")
          return d !== undefined && this.level(restrictTo, d.acl) >= READ
        })
      }
      if (tables.has("COLL")) {
        const byId = new Map([...this.collections.values()].map((c) => [String(c.id), c]))
        rows = rows.filter((r) => {
          const c = byId.get(r.get(500) ?? "")
          return c !== undefined && this.level(restrictTo, c.acl) >= READ
        })
      }
    }
    return rows
  }
}

/** The test API: users, groups, ACLs and content, changed directly in the fake's catalog (no protocol). */
export interface FakeIrodsAdmin {
  /** A user (default rodsuser; `password` for native login) with its home collection, member of `public`. */
  readonly addUser: (name: string, opts?: { readonly password?: string; readonly type?: FakeUserType }) => FakeUser
  /** A group (rodsgroup) with /zone/home/group. */
  readonly addGroup: (name: string) => FakeUser
  readonly removeUser: (name: string) => void
  readonly addToGroup: (group: string, user: string) => void
  readonly removeFromGroup: (group: string, user: string) => void
  /** Group names of a user (rodsgroup only: `public`, ...; not the user itself). */
  readonly groupsOf: (user: string) => Array<string>
  /** Sets (or with "null" removes) a user's or group's access, as `ichmod -M [-r]`. */
  readonly setAccess: (
    path: string,
    userOrGroup: string,
    level: FakeAccessInput,
    opts?: { readonly recursive?: boolean }
  ) => void
  /** `ichmod -M [-r] inherit|noinherit`. */
  readonly setInheritance: (collPath: string, on: boolean, opts?: { readonly recursive?: boolean }) => void
  readonly getAccess: (path: string) => FakeAccessReport | undefined
  /** A user's effective access on a path (through its groups too). */
  readonly accessOf: (user: string, path: string) => FakeAccessName | "null"
  /** `imkdir -p` as `owner` (default rods), with inheritance applied at each new level. */
  readonly makeCollection: (path: string, opts?: { readonly owner?: string }) => FakeCollection
  /** Creates (as `owner`, default rods, with parents) or overwrites a data object. */
  readonly putObject: (path: string, data?: string | Buffer, opts?: { readonly owner?: string }) => FakeDataObject
}

export interface FakeIrodsServer extends FakeIrodsAdmin {
  readonly host: string
  readonly port: number
  readonly zone: string
  readonly state: FakeZone
  readonly faults: FaultSwitches
  /** One entry per accepted connection. */
  readonly connections: Array<ConnectionLog>
  readonly stop: () => Promise<void>
}

/** Starts the fake on 127.0.0.1 (ephemeral port). */
export const startFakeIrods = async (options: FakeIrodsOptions = {}): Promise<FakeIrodsServer> => {
  const zoneName = options.zone ?? "tempZone"
  const relVersion = options.version ?? "rods4.2.8"
  const serverVersion = parseRelVersion(relVersion)
  const zone = new FakeZone(zoneName, options.users ?? { rods: "rods" }, options.checksumAlgorithm ?? "md5")
  const enforceAccess = options.enforceAccess ?? "non-admin"
  const strictAcl = options.strictAcl ?? true
  const faults: FaultSwitches = {}
  const connections: Array<ConnectionLog> = []
  const sockets = new Set<Socket>()
  const apiCounts = new Map<number, number>()

  const server: Server = createServer((socket) => {
    // A reply goes out as several writes (header, body, bs): without this, Nagle's algorithm and the client's
    // delayed ACK hold each reply ~40 ms (python-irodsclient's many small queries felt it).
    socket.setNoDelay(true)
    sockets.add(socket)
    socket.on("close", () => sockets.delete(socket))
    socket.on("error", () => socket.destroy())
    void serve(socket).catch(() => socket.destroy())
  })

  /**
   * MOD_ACCESS_CONTROL 707 as 4.2.8's chlModAccessControl (db_mod_access_control_op) does it. Without `admin:` the
   * caller must own the collection or data object (via ACL rows, its groups included; a data object's or
   * collection's owner of record may still change it); `admin:` needs rodsadmin and skips that check.
   */
  const modAccessControl = (me: FakeUser, b: Struct): void => {
    const recursive = b.int("recursiveFlag") !== 0
    let level = b.str("accessLevel")
    const path = normalize(b.str("path"))
    let adminMode = false
    if (level.startsWith("admin:")) {
      if (me.type !== "rodsadmin") {
        throw new IrodsFailure(E.CAT_NO_ACCESS_PERMISSION, "You must be the admin to use the -M admin mode")
      }
      level = level.slice("admin:".length)
      adminMode = true
    }
    const inherit = level === "inherit" ? "1" : level === "noinherit" ? "0" : undefined
    const access = level === "read"
      ? "read object"
      : level === "write"
      ? "modify object"
      : level === "own"
      ? "own"
      : level === "null"
      ? null
      : undefined
    if (inherit === undefined && access === undefined) {
      // 4.2.8 knows only these words; "read object" / "modify object" are refused (4.3 added more).
      throw new IrodsFailure(E.CAT_INVALID_ARGUMENT, `access level '${level}' is invalid`)
    }
    const owns = (acl: FakeAcl) => zone.level(me, acl) >= OWN
    const coll = zone.collections.get(path)
    const status1 = coll === undefined ? E.CAT_UNKNOWN_COLLECTION : adminMode || owns(coll.acl) ? 0 : E.CAT_NO_ACCESS_PERMISSION
    if (status1 < 0 && inherit !== undefined) {
      throw new IrodsFailure(
        E.CAT_NO_ACCESS_PERMISSION,
        "either the collection does not exist or you do not have sufficient access"
      )
    }
    let target: { readonly acl: FakeAcl; readonly isColl: boolean }
    if (status1 === 0) {
      target = { acl: coll!.acl, isColl: true }
    } else {
      const obj = zone.dataObjects.get(path)
      const status2 = obj === undefined ? E.CAT_UNKNOWN_FILE : adminMode || owns(obj.acl) ? 0 : E.CAT_NO_ACCESS_PERMISSION
      if (status2 === 0) {
        target = { acl: obj!.acl, isColl: false }
      } else if (status1 === E.CAT_UNKNOWN_COLLECTION && status2 === E.CAT_UNKNOWN_FILE) {
        throw new IrodsFailure(E.CAT_INVALID_ARGUMENT, `Input path is not a collection and not a dataObj: ${path}`)
      } else if (status1 !== E.CAT_UNKNOWN_COLLECTION) {
        // cmlCheckDirOwn: the collection's owner of record may change its ACL without an own row.
        if (coll!.owner !== me.name) throw new IrodsFailure(status1)
        target = { acl: coll!.acl, isColl: true }
      } else if (status2 === E.CAT_NO_ACCESS_PERMISSION && obj!.owner === me.name) {
        target = { acl: obj!.acl, isColl: false } // cmlCheckDataObjOwn
      } else {
        throw new IrodsFailure(status2)
      }
    }
    if (inherit !== undefined) {
      zone.setInheritance(path, inherit === "1", { recursive })
      return
    }
    const zoneArg = b.str("zone")
    const grantee = zone.user(b.str("userName"), zoneArg === "" ? undefined : zoneArg)
    if (grantee === undefined) throw new IrodsFailure(E.CAT_INVALID_USER, "invalid user")
    if (!recursive) {
      if (access === null) target.acl.delete(grantee.id)
      else target.acl.set(grantee.id, access!)
      return
    }
    if (!target.isColl) {
      throw new IrodsFailure(E.CAT_INVALID_ARGUMENT, `Input path is not a collection and recursion was requested: ${path}`)
    }
    zone.setAccess(path, `${grantee.name}#${grantee.zone}`, access ?? "null", { recursive: true })
  }

  /**
   * GENERAL_ADMIN 701 (rodsadmin): `add user name type zone` (types rodsuser, rodsadmin, groupadmin, rodsgroup),
   * `rm user name zone`, `modify group group add|remove user zone`. The rest is SYS_NOT_IMPLEMENTED here.
   */
  const generalAdmin = (b: Struct): void => {
    const [a0, a1, a2, a3, , a5] = [0, 1, 2, 3, 4, 5].map((i) => b.str(`arg${i}`))
    const userArg = (name: string | undefined, zoneArg: string | undefined) =>
      zoneArg !== undefined && zoneArg !== "" && !(name ?? "").includes("#") ? `${name}#${zoneArg}` : name ?? ""
    if (a0 === "add" && (a1 === "user" || a1 === "group")) {
      const type = a1 === "group" ? "rodsgroup" : a3
      if (type !== "rodsuser" && type !== "rodsadmin" && type !== "groupadmin" && type !== "rodsgroup") {
        throw new IrodsFailure(E.CAT_INVALID_USER_TYPE, `invalid user type ${type}`)
      }
      const name = (a2 ?? "").split("#")[0] ?? ""
      if (name === "") throw new IrodsFailure(E.CAT_INVALID_ARGUMENT, "no user name")
      zone.addUser(name, { type })
      return
    }
    if (a0 === "rm" && (a1 === "user" || a1 === "group")) {
      zone.removeUser(userArg(a2, b.str("arg3")))
      return
    }
    if (a0 === "modify" && a1 === "group") {
      const who = userArg(b.str("arg4"), a5)
      if (a3 === "add") zone.addToGroup(a2 ?? "", who)
      else if (a3 === "remove") zone.removeFromGroup(a2 ?? "", who)
      else throw new IrodsFailure(E.CAT_INVALID_ARGUMENT, `invalid option ${a3}`)
      return
    }
    throw new IrodsFailure(E.SYS_NOT_IMPLEMENTED, `GENERAL_ADMIN ${a0} ${a1} not implemented by the fake`)
  }

  const serve = async (socket: Socket) => {
    const reader = new FrameReader(socket)
    const log: ConnectionLog = { relVersion: "", option: "", auth: "none", usernameSent: "", apis: [] }
    connections.push(log)
    const startup = await reader.readFrame()
    if (startup.type !== "RODS_CONNECT") {
      socket.destroy()
      return
    }
    const sp = parseStruct(startup.msg, "legacy")
    log.relVersion = sp.str("relVersion")
    log.option = sp.str("option")
    const clientVersion = parseRelVersion(log.relVersion)
    const mode: XmlMode = versionAtLeast(serverVersion, [4, 2, 9]) && versionAtLeast(clientVersion, [4, 2, 9])
      ? "standard"
      : "legacy"
    const proxyUser = sp.str("proxyUser")
    const send = (f: Frame) => writeFrame(socket, f)
    const pack = (x: XmlElement) => serializeAsServer(x, mode)
    await send(frame("RODS_VERSION", 0, {
      msg: pack(el("Version_PI", [
        ["status", 0],
        ["relVersion", relVersion],
        ["apiVersion", "d"],
        ["reconnPort", 0],
        ["reconnAddr", ""],
        ["cookie", 0]
      ]))
    }))

    const session = { user: undefined as string | undefined, challenge: undefined as Buffer | undefined }
    const fds = new Map<number, OpenFd>()
    const statements = new Map<number, Statement>()
    let nextFd = 3
    let nextStatement = 1

    const reply = (intInfo: number, body?: XmlElement, bs?: Buffer) =>
      frame("RODS_API_REPLY", intInfo, {
        ...(body === undefined ? {} : { msg: pack(body) }),
        ...(bs === undefined ? {} : { bs })
      })
    const fail = (code: number, msg = "") =>
      frame("RODS_API_REPLY", code, msg === "" ? {} : { error: pack(rError([{ status: code, msg }])) })

    const checkPassword = (username: string, challenge: Buffer, response: Buffer): number => {
      const account = zone.user(username)
      if (account === undefined || account.type === "rodsgroup") return E.CAT_INVALID_USER
      if (faults.refuseAuth) return E.CAT_INVALID_AUTHENTICATION
      if (account.password === undefined) {
        // No password row: only `anonymous` may log in, with any password (4.2.8 chlCheckAuth).
        if (account.name !== "anonymous") return E.CAT_INVALID_USER
      } else if (!nativeDigest(challenge, account.password).equals(response)) {
        return E.CAT_INVALID_AUTHENTICATION
      }
      session.user = account.name
      return 0
    }

    const newChallenge = () => Buffer.from(randomBytes(32).toString("hex"), "ascii")

    const handle = (api: number, body: Struct | undefined, bs: Buffer): Frame => {
      const need = () => {
        if (body === undefined) throw new IrodsFailure(E.SYS_API_INPUT_ERR, "missing input struct")
        return body
      }
      if (api === API.AUTH_REQUEST) {
        session.challenge = newChallenge()
        log.auth = "legacy"
        return reply(0, el("authRequestOut_PI", [["challenge", session.challenge.toString("base64")]]))
      }
      if (api === API.AUTH_RESPONSE) {
        const b = need()
        log.usernameSent = b.str("username")
        if (session.challenge === undefined) throw new IrodsFailure(E.SYS_API_INPUT_ERR, "no challenge issued")
        const status = checkPassword(b.str("username") || proxyUser, session.challenge, b.bin("response"))
        return status === 0 ? reply(0) : fail(status, "authentication failed")
      }
      if (api === API.AUTHENTICATION) {
        log.auth = "plugin"
        const b = need()
        const raw = b.name === "BinBytesBuf_PI" ? b.bin("buf").toString("utf8") : b.str("buf")
        const req = JSON.parse(raw.replace(/\0+$/, "")) as Record<string, string>
        const answer = (json: unknown) => {
          const text = JSON.stringify(json)
          return reply(0, el("BinBytesBuf_PI", [["buflen", Buffer.byteLength(text)], ["buf", Buffer.from(text).toString("base64")]]))
        }
        if (req["next_operation"] === "auth_agent_auth_request") {
          session.challenge = newChallenge()
          return answer({ ...req, request_result: session.challenge.toString("ascii") })
        }
        if (req["next_operation"] === "auth_agent_auth_response") {
          log.usernameSent = req["user_name"] ?? ""
          if (session.challenge === undefined) throw new IrodsFailure(E.SYS_API_INPUT_ERR, "no challenge issued")
          const status = checkPassword(req["user_name"] ?? "", session.challenge, Buffer.from(req["digest"] ?? "", "base64"))
          return status === 0 ? answer({ ...req }) : fail(status, "authentication failed")
        }
        throw new IrodsFailure(E.SYS_API_INPUT_ERR, "unknown next_operation")
      }
      if (session.user === undefined) throw new IrodsFailure(E.SYS_NO_API_PRIV, "not authenticated")
      const me = zone.user(session.user)
      if (me === undefined) throw new IrodsFailure(E.CAT_INVALID_USER, "the session's user was removed")
      const isAdmin = me.type === "rodsadmin"
      /** Whether data operations check this caller's access. */
      const checked = enforceAccess === "all" || (enforceAccess === "non-admin" && !isAdmin)
      /** STRICT: GenQuery (so stat and open) sees only what the caller can read. */
      const strict = enforceAccess !== "off" && !isAdmin && (strictAcl || me.name === "anonymous")
      const levelOn = (acl: FakeAcl) => zone.level(me, acl)
      const allows = (acl: FakeAcl, min: number) => !checked || levelOn(acl) >= min
      const collVisible = (c: FakeCollection) => !strict || levelOn(c.acl) >= READ
      const dataVisible = (d: FakeDataObject) => {
        if (!strict) return true
        const parent = zone.collections.get(parentOf(d.path))
        return levelOn(d.acl) >= READ && parent !== undefined && levelOn(parent.acl) >= READ
      }
      const visibleData = (path: string) => {
        const d = zone.dataObjects.get(path)
        return d !== undefined && dataVisible(d) ? d : undefined
      }

      switch (api) {
        case API.OBJ_STAT: {
          const path = normalize(need().str("objPath"))
          const d = visibleData(path)
          const found = zone.collections.get(path)
          const c = found !== undefined && collVisible(found) ? found : undefined
          if (d === undefined && c === undefined) throw new IrodsFailure(E.USER_FILE_DOES_NOT_EXIST)
          const type = d !== undefined ? 1 : 2
          return reply(type, el("RodsObjStat_PI", [
            ["objSize", d?.data.length ?? 0],
            ["objType", type],
            ["dataMode", d !== undefined ? 420 : 0],
            ["dataId", String(d?.id ?? c!.id)],
            ["chksum", d?.checksum ?? ""],
            ["ownerName", d?.owner ?? c!.owner],
            ["ownerZone", zoneName],
            ["createTime", irodsTime(d?.createTime ?? c!.createTime)],
            ["modifyTime", irodsTime(d?.modifyTime ?? c!.modifyTime)]
          ]))
        }
        case API.COLL_CREATE: {
          const b = need()
          const path = normalize(b.str("collName"))
          const kv = readKeyValPair(b.struct("KeyValPair_PI"))
          const recursive = "recursiveOpr" in kv
          if (zone.dataObjects.has(path)) throw new IrodsFailure(E.CAT_NAME_EXISTS_AS_DATAOBJ)
          if (zone.collections.has(path)) {
            if (recursive) return reply(0)
            throw new IrodsFailure(E.CATALOG_ALREADY_HAS_ITEM_BY_THAT_NAME)
          }
          const missing: Array<string> = []
          for (let p = path; !zone.collections.has(p); p = posix.dirname(p)) {
            if (zone.dataObjects.has(p)) throw new IrodsFailure(E.CAT_NAME_EXISTS_AS_DATAOBJ)
            missing.unshift(p)
          }
          if (missing.length > 1 && !recursive) throw new IrodsFailure(E.CAT_UNKNOWN_COLLECTION)
          for (const p of missing) {
            // chlRegColl: modify on the parent (cmlCheckDirAndGetInheritFlag)
            if (!allows(zone.collections.get(parentOf(p))!.acl, ACCESS_TYPE["modify object"])) {
              throw new IrodsFailure(E.CAT_NO_ACCESS_PERMISSION, `no permission to update collection '${parentOf(p)}'`)
            }
            zone.createCollection(p, me)
          }
          return reply(0)
        }
        case API.RM_COLL: {
          const b = need()
          const path = normalize(b.str("collName"))
          const kv = readKeyValPair(b.struct("KeyValPair_PI"))
          const coll = zone.collections.get(path)
          if (coll === undefined || !collVisible(coll)) throw new IrodsFailure(E.CAT_UNKNOWN_COLLECTION)
          if (!allows(coll.acl, ACCESS_TYPE["delete object"])) throw new IrodsFailure(E.CAT_NO_ACCESS_PERMISSION)
          const inside = (p: string) => p.startsWith(path + "/")
          const hasChildren = [...zone.collections.keys()].some(inside) || [...zone.dataObjects.keys()].some(inside)
          if (hasChildren && !("recursiveOpr" in kv)) throw new IrodsFailure(E.CAT_COLLECTION_NOT_EMPTY)
          for (const p of [...zone.dataObjects.keys()]) if (inside(p)) zone.dataObjects.delete(p)
          for (const p of [...zone.collections.keys()]) if (inside(p) || p === path) zone.collections.delete(p)
          return reply(0)
        }
        case API.DATA_OBJ_CREATE:
        case API.DATA_OBJ_OPEN: {
          const b = need()
          const path = normalize(b.str("objPath"))
          const flags = b.int("openFlags")
          const kv = readKeyValPair(b.struct("KeyValPair_PI"))
          if (zone.collections.has(path)) throw new IrodsFailure(E.CAT_NAME_EXISTS_AS_COLLECTION)
          const creating = api === API.DATA_OBJ_CREATE || (flags & 64) !== 0
          const writing = api === API.DATA_OBJ_CREATE || (flags & 3) !== 0
          // Under STRICT an object the caller cannot read is not found by the open's catalog query.
          let d = visibleData(path)
          if (d !== undefined && api === API.DATA_OBJ_CREATE && !("forceFlag" in kv)) {
            throw new IrodsFailure(E.OVERWRITE_WITHOUT_FORCE_FLAG)
          }
          if (d !== undefined) {
            const needed = writing ? ACCESS_TYPE["modify object"] : READ
            if (!allows(d.acl, needed)) throw new IrodsFailure(E.CAT_NO_ACCESS_PERMISSION, `no ${writing ? "write" : "read"} access to ${path}`)
          } else {
            if (!creating) throw new IrodsFailure(E.OBJ_PATH_DOES_NOT_EXIST)
            const parent = zone.collections.get(parentOf(path))
            if (parent === undefined) throw new IrodsFailure(E.CAT_UNKNOWN_COLLECTION)
            if (!allows(parent.acl, ACCESS_TYPE["modify object"])) {
              throw new IrodsFailure(E.CAT_NO_ACCESS_PERMISSION, `no permission to update collection '${parent.path}'`)
            }
            // An existing object hidden by STRICT: registering another one under the same name collides.
            if (zone.dataObjects.has(path)) throw new IrodsFailure(E.CATALOG_ALREADY_HAS_ITEM_BY_THAT_NAME)
            d = zone.createDataObject(path, me)
          }
          const truncate = api === API.DATA_OBJ_CREATE || (flags & 512) !== 0
          const fd = nextFd++
          fds.set(fd, { path, write: writing, pos: 0, data: truncate ? Buffer.alloc(0) : Buffer.from(d.data) })
          return reply(fd)
        }
        case API.DATA_OBJ_WRITE: {
          const b = need()
          const fd = fds.get(b.int("l1descInx"))
          if (fd === undefined || !fd.write) throw new IrodsFailure(E.SYS_BAD_FILE_DESCRIPTOR)
          const len = b.int("len")
          if (len !== bs.length) throw new IrodsFailure(E.SYS_COPY_LEN_ERR)
          const end = fd.pos + bs.length
          if (end > fd.data.length) {
            const grown = Buffer.alloc(end)
            fd.data.copy(grown)
            fd.data = grown
          }
          bs.copy(fd.data, fd.pos)
          fd.pos = end
          return reply(bs.length)
        }
        case API.DATA_OBJ_READ: {
          const b = need()
          const fd = fds.get(b.int("l1descInx"))
          if (fd === undefined) throw new IrodsFailure(E.SYS_BAD_FILE_DESCRIPTOR)
          const chunk = fd.data.subarray(fd.pos, fd.pos + b.int("len"))
          fd.pos += chunk.length
          return reply(chunk.length, undefined, Buffer.from(chunk))
        }
        case API.DATA_OBJ_LSEEK: {
          const b = need()
          const fd = fds.get(b.int("l1descInx"))
          if (fd === undefined) throw new IrodsFailure(E.SYS_BAD_FILE_DESCRIPTOR)
          const whence = b.int("whence")
          const base = whence === 0 ? 0 : whence === 1 ? fd.pos : fd.data.length
          fd.pos = Math.max(0, base + b.int("offset"))
          return reply(0, el("fileLseekOut_PI", [["offset", fd.pos]]))
        }
        case API.DATA_OBJ_CLOSE: {
          const b = need()
          const inx = b.int("l1descInx")
          const fd = fds.get(inx)
          if (fd === undefined) throw new IrodsFailure(E.SYS_BAD_FILE_DESCRIPTOR)
          fds.delete(inx)
          const d = zone.dataObjects.get(fd.path)
          if (fd.write && d !== undefined) {
            d.data = fd.data
            d.checksum = ""
            d.modifyTime = now()
          }
          return reply(0)
        }
        case API.DATA_OBJ_UNLINK: {
          const path = normalize(need().str("objPath"))
          const d = visibleData(path)
          if (d === undefined) {
            throw new IrodsFailure(zone.collections.has(path) ? E.CAT_NAME_EXISTS_AS_COLLECTION : E.USER_FILE_DOES_NOT_EXIST)
          }
          if (!allows(d.acl, ACCESS_TYPE["delete object"])) throw new IrodsFailure(E.CAT_NO_ACCESS_PERMISSION)
          zone.dataObjects.delete(path)
          return reply(0)
        }
        case API.DATA_OBJ_CHKSUM: {
          const b = need()
          const path = normalize(b.str("objPath"))
          const d = visibleData(path)
          if (d === undefined) throw new IrodsFailure(E.USER_FILE_DOES_NOT_EXIST)
          if (!allows(d.acl, READ)) throw new IrodsFailure(E.CAT_NO_ACCESS_PERMISSION)
          const kv = readKeyValPair(b.struct("KeyValPair_PI"))
          if (d.checksum === "" || "forceChksum" in kv) d.checksum = zone.checksumOf(d.data)
          let answer = d.checksum
          if (faults.corruptChecksum) answer = zone.checksumOf(Buffer.concat([d.data, Buffer.from("corrupt")]))
          if (faults.emptyChecksum) answer = ""
          return reply(0, el("STR_PI", [["myStr", answer]]))
        }
        case API.MOD_AVU_METADATA: {
          const b = need()
          const [op, type, rawPath, attr, value, units] = [0, 1, 2, 3, 4, 5].map((i) => b.str(`arg${i}`))
          const path = normalize(rawPath!)
          const target = type === "-d"
            ? zone.dataObjects.get(path)
            : type === "-C" || type === "-c"
            ? zone.collections.get(path)
            : undefined
          if (type !== "-d" && type !== "-C" && type !== "-c") throw new IrodsFailure(E.CAT_INVALID_ARGUMENT, `bad type ${type}`)
          if (target === undefined) {
            throw new IrodsFailure(type === "-d" ? E.CAT_UNKNOWN_FILE : E.CAT_UNKNOWN_COLLECTION)
          }
          if (!attr || !value) throw new IrodsFailure(E.CAT_INVALID_ARGUMENT, "empty attribute or value")
          if (op === "adda") {
            // admin mode (4.2.8 chlAddAVUMetadata with adminMode 1): rodsadmin only, no ACL check
            if (!isAdmin) throw new IrodsFailure(E.CAT_INSUFFICIENT_PRIVILEGE_LEVEL, "insufficient privilege")
          } else {
            // add/set need "create metadata" / "modify metadata", rm "delete metadata": all below modify object
            const needed = op === "rm" ? ACCESS_TYPE["delete metadata"] : ACCESS_TYPE["create metadata"]
            if (!allows(target.acl, needed)) throw new IrodsFailure(E.CAT_NO_ACCESS_PERMISSION)
          }
          const same = (a: FakeAvu) => a.name === attr && a.value === value && a.units === (units ?? "")
          const add = () => target.avus.push({
            id: zone.id(),
            name: attr,
            value,
            units: units ?? "",
            createTime: now(),
            modifyTime: now()
          })
          switch (op) {
            case "add":
            case "adda":
              if (target.avus.some(same)) throw new IrodsFailure(E.CATALOG_ALREADY_HAS_ITEM_BY_THAT_NAME)
              add()
              break
            case "rm":
              target.avus = target.avus.filter((a) => !same(a))
              break
            case "set":
              target.avus = target.avus.filter((a) => a.name !== attr)
              add()
              break
            default:
              throw new IrodsFailure(E.CAT_INVALID_ARGUMENT, `unsupported operation ${op}`)
          }
          zone.avuObserver?.({
            op,
            type: type === "-d" ? "data_object" : "collection",
            path,
            attribute: attr,
            value,
            units: units ?? "",
            user: me.name,
            zone: me.zone
          })
          return reply(0)
        }
        case API.GEN_QUERY: {
          const q = readGenQueryInp(need())
          let stmt: Statement
          if (q.continueInx > 0) {
            const found = statements.get(q.continueInx)
            if (found === undefined) throw new IrodsFailure(E.CAT_NO_ROWS_FOUND)
            if (q.maxRows <= 0) {
              statements.delete(q.continueInx)
              return reply(0, genQueryOut({ columns: [], rows: [], continueInx: 0, totalRowCount: 0 }))
            }
            stmt = found
            statements.delete(q.continueInx)
          } else {
            const columns = q.select.map(([c]) => c)
            const rows = zone.rowsFor([...columns, ...q.where.map(([c]) => c)], strict ? me : undefined)
            let result: Array<Array<string>>
            try {
              result = evaluate(rows, q.select, q.where, q.options)
            } catch (e) {
              if (e instanceof GenQueryError) throw new IrodsFailure(e.code, e.message)
              throw e
            }
            if (result.length === 0) throw new IrodsFailure(E.CAT_NO_ROWS_FOUND)
            stmt = { columns, rows: result, total: result.length, options: q.options }
            if (q.maxRows <= 0) return reply(0, genQueryOut({ columns: [], rows: [], continueInx: 0, totalRowCount: 0 }))
          }
          const page = stmt.rows.splice(0, Math.min(q.maxRows, 256))
          let continueInx = 0
          if (stmt.rows.length > 0) {
            continueInx = nextStatement++
            statements.set(continueInx, stmt)
          }
          const total = (stmt.options & 0x20) !== 0 ? stmt.total : 0
          return reply(0, genQueryOut({ columns: stmt.columns, rows: page, continueInx, totalRowCount: total }))
        }
        case API.MOD_ACCESS_CONTROL:
          modAccessControl(me, need())
          return reply(0)
        case API.GENERAL_ADMIN:
          if (!isAdmin) throw new IrodsFailure(E.SYS_NO_API_PRIV, "GENERAL_ADMIN needs rodsadmin")
          generalAdmin(need())
          return reply(0)
        default:
          throw new IrodsFailure(E.SYS_UNMATCHED_API_NUM, `API ${api} not implemented by the fake`)
      }
    }

    for (;;) {
      const req = await reader.readFrame()
      if (req.type === "RODS_DISCONNECT") {
        socket.end()
        return
      }
      if (req.type !== "RODS_API_REQ") {
        socket.destroy()
        return
      }
      const api = req.intInfo
      log.apis.push(api)
      const seen = (apiCounts.get(api) ?? 0) + 1
      apiCounts.set(api, seen)
      const drop = faults.dropConnection
      if (drop !== undefined && drop.api === api && seen > (drop.after ?? 0)) {
        if (drop.times !== undefined) {
          drop.times--
          if (drop.times <= 0) faults.dropConnection = undefined
        }
        socket.destroy()
        return
      }
      const delay = faults.delay
      if (delay !== undefined && (delay.api === undefined || delay.api === api)) {
        if (delay.times !== undefined) {
          delay.times--
          if (delay.times <= 0) faults.delay = undefined
        }
        await new Promise((r) => setTimeout(r, delay.ms))
        if (socket.destroyed) return
      }
      let out: Frame
      try {
        const body = req.msg.length > 0 ? parseStruct(req.msg, mode) : undefined
        out = handle(api, body, req.bs)
      } catch (e) {
        if (e instanceof IrodsFailure) out = fail(e.code, e.message)
        else out = fail(E.SYS_API_INPUT_ERR, e instanceof Error ? e.message : String(e))
      }
      await send(out)
    }
  }

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject)
    server.listen(0, "127.0.0.1", () => resolve())
  })
  const address = server.address()
  if (address === null || typeof address === "string") throw new Error("fake iRODS: no TCP address")

  return {
    host: "127.0.0.1",
    port: address.port,
    zone: zoneName,
    state: zone,
    faults,
    connections,
    addUser: (name, opts) => zone.addUser(name, opts),
    addGroup: (name) => zone.addGroup(name),
    removeUser: (name) => zone.removeUser(name),
    addToGroup: (group, user) => zone.addToGroup(group, user),
    removeFromGroup: (group, user) => zone.removeFromGroup(group, user),
    groupsOf: (user) => zone.groupsOf(user),
    setAccess: (path, who, level, opts) => zone.setAccess(path, who, level, opts),
    setInheritance: (path, on, opts) => zone.setInheritance(path, on, opts),
    getAccess: (path) => zone.getAccess(path),
    accessOf: (user, path) => zone.accessOf(user, path),
    makeCollection: (path, opts) => zone.makeCollection(path, opts),
    putObject: (path, data, opts) => zone.putObject(path, data, opts),
    stop: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy()
        server.close(() => resolve())
      })
  }
}

/** iRODS paths: no trailing slash (except the root), no doubled slashes. */
const normalize = (p: string): string => {
  const n = posix.normalize(p)
  return n.length > 1 && n.endsWith("/") ? n.slice(0, -1) : n
}

const parentOf = (p: string): string => (p === "/" ? "/" : posix.dirname(p))

/** The fake as a scoped Effect resource. */
export const fakeIrodsScoped = (options: FakeIrodsOptions = {}) =>
  Effect.acquireRelease(
    Effect.promise(() => startFakeIrods(options)),
    (server) => Effect.promise(() => server.stop())
  )
