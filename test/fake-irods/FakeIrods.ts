/**
 * A fake iRODS 4.2.8 server for tests: the native protocol (framing, XML packing with the 4.2.8 escaping quirks,
 * StartupPack → Version_PI, native challenge-response auth 703/704 and the 4.3 plugin flow 110000) over an
 * in-memory zone with users, collections, data objects (ids, sizes, times, MD5 or `sha2:` checksums) and AVUs.
 *
 * Listens on 127.0.0.1 on an ephemeral port. Fault switches (`server.faults`) drop connections, delay replies,
 * corrupt or blank checksums and refuse authentication.
 */
import { Effect } from "effect"
import { createHash, randomBytes } from "node:crypto"
import { createServer, type Server, type Socket } from "node:net"
import { posix } from "node:path"
import {
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
import { evaluate, GenQueryError, type Row } from "./GenQuery.js"

export interface FakeAvu {
  readonly id: number
  readonly name: string
  readonly value: string
  readonly units: string
  readonly createTime: Date
  readonly modifyTime: Date
}

export interface FakeCollection {
  readonly id: number
  readonly path: string
  readonly owner: string
  readonly createTime: Date
  modifyTime: Date
  avus: Array<FakeAvu>
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
  /** user → password; every user gets /zone/home/user. Default { rods: "rods" }. */
  readonly users?: Readonly<Record<string, string>>
  /** Announced relVersion, default `rods4.2.8`. */
  readonly version?: string
  /** Checksum policy of the "server", default md5. */
  readonly checksumAlgorithm?: "md5" | "sha256"
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

class IrodsFailure extends Error {
  constructor(readonly code: number, message = "") {
    super(message)
  }
}

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

export class FakeZone {
  readonly collections = new Map<string, FakeCollection>()
  readonly dataObjects = new Map<string, FakeDataObject>()
  private nextId = 10000

  constructor(readonly zone: string, readonly users: Map<string, string>, readonly checksumAlgorithm: "md5" | "sha256") {
    this.mkcoll("/", "rods")
    this.mkcoll(`/${zone}`, "rods")
    this.mkcoll(`/${zone}/home`, "rods")
    this.mkcoll(`/${zone}/trash`, "rods")
    for (const user of users.keys()) this.mkcoll(`/${zone}/home/${user}`, user)
  }

  id() {
    return this.nextId++
  }

  mkcoll(path: string, owner: string): FakeCollection {
    const c: FakeCollection = { id: this.id(), path, owner, createTime: now(), modifyTime: now(), avus: [] }
    this.collections.set(path, c)
    return c
  }

  checksumOf(data: Buffer): string {
    return this.checksumAlgorithm === "md5"
      ? createHash("md5").update(data).digest("hex")
      : `sha2:${createHash("sha256").update(data).digest("base64")}`
  }

  private collRow(c: FakeCollection, into: Map<number, string>) {
    into.set(500, String(c.id))
    into.set(501, c.path)
    into.set(502, c.path === "/" ? "/" : posix.dirname(c.path))
    into.set(503, c.owner)
    into.set(504, this.zone)
    into.set(505, "0")
    into.set(506, "")
    into.set(507, "")
    into.set(508, irodsTime(c.createTime))
    into.set(509, irodsTime(c.modifyTime))
  }

  private dataRow(d: FakeDataObject, coll: FakeCollection): Map<number, string> {
    const r = new Map<number, string>()
    this.collRow(coll, r)
    r.set(401, String(d.id))
    r.set(402, String(coll.id))
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

  private static avuRow(base: Map<number, string>, a: FakeAvu, first: number): Row {
    const r = new Map(base)
    r.set(first, a.name)
    r.set(first + 1, a.value)
    r.set(first + 2, a.units)
    r.set(first + 3, String(a.id))
    r.set(first + 4, irodsTime(a.createTime))
    r.set(first + 5, irodsTime(a.modifyTime))
    return r
  }

  /** Rows for the table family the query's columns need. */
  rowsFor(columns: ReadonlyArray<number>): Array<Row> {
    const has = (lo: number, hi: number) => columns.some((c) => c >= lo && c <= hi)
    const dataMeta = has(600, 609)
    const collMeta = has(610, 619)
    const data = has(400, 499) || dataMeta
    const rows: Array<Row> = []
    if (data) {
      for (const d of this.dataObjects.values()) {
        const coll = this.collections.get(posix.dirname(d.path))!
        const base = this.dataRow(d, coll)
        if (dataMeta) for (const a of d.avus) rows.push(FakeZone.avuRow(base, a, 600))
        else rows.push(base)
      }
    } else {
      for (const c of this.collections.values()) {
        const base = new Map<number, string>()
        this.collRow(c, base)
        if (collMeta) for (const a of c.avus) rows.push(FakeZone.avuRow(base, a, 610))
        else rows.push(base)
      }
    }
    return rows
  }
}

export interface FakeIrodsServer {
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
  const users = new Map(Object.entries(options.users ?? { rods: "rods" }))
  const zone = new FakeZone(zoneName, users, options.checksumAlgorithm ?? "md5")
  const faults: FaultSwitches = {}
  const connections: Array<ConnectionLog> = []
  const sockets = new Set<Socket>()
  const apiCounts = new Map<number, number>()

  const server: Server = createServer((socket) => {
    sockets.add(socket)
    socket.on("close", () => sockets.delete(socket))
    socket.on("error", () => socket.destroy())
    void serve(socket).catch(() => socket.destroy())
  })

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
      const name = username.split("#")[0] ?? ""
      const password = users.get(name)
      if (password === undefined) return E.CAT_INVALID_USER
      if (faults.refuseAuth) return E.CAT_INVALID_AUTHENTICATION
      if (!nativeDigest(challenge, password).equals(response)) return E.CAT_INVALID_AUTHENTICATION
      session.user = name
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
      const user = session.user

      switch (api) {
        case API.OBJ_STAT: {
          const path = normalize(need().str("objPath"))
          const d = zone.dataObjects.get(path)
          const c = zone.collections.get(path)
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
          for (const p of missing) zone.mkcoll(p, user)
          return reply(0)
        }
        case API.RM_COLL: {
          const b = need()
          const path = normalize(b.str("collName"))
          const kv = readKeyValPair(b.struct("KeyValPair_PI"))
          if (!zone.collections.has(path)) throw new IrodsFailure(E.CAT_UNKNOWN_COLLECTION)
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
          let d = zone.dataObjects.get(path)
          const creating = api === API.DATA_OBJ_CREATE || (flags & 64) !== 0
          const writing = api === API.DATA_OBJ_CREATE || (flags & 3) !== 0
          if (d !== undefined && api === API.DATA_OBJ_CREATE && !("forceFlag" in kv)) {
            throw new IrodsFailure(E.OVERWRITE_WITHOUT_FORCE_FLAG)
          }
          if (d === undefined) {
            if (!creating) throw new IrodsFailure(E.OBJ_PATH_DOES_NOT_EXIST)
            if (!zone.collections.has(posix.dirname(path))) throw new IrodsFailure(E.CAT_UNKNOWN_COLLECTION)
            d = {
              id: zone.id(),
              path,
              owner: user,
              data: Buffer.alloc(0),
              checksum: "",
              createTime: now(),
              modifyTime: now(),
              avus: []
            }
            zone.dataObjects.set(path, d)
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
          if (!zone.dataObjects.delete(path)) {
            throw new IrodsFailure(zone.collections.has(path) ? E.CAT_NAME_EXISTS_AS_COLLECTION : E.USER_FILE_DOES_NOT_EXIST)
          }
          return reply(0)
        }
        case API.DATA_OBJ_CHKSUM: {
          const b = need()
          const path = normalize(b.str("objPath"))
          const d = zone.dataObjects.get(path)
          if (d === undefined) throw new IrodsFailure(E.USER_FILE_DOES_NOT_EXIST)
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
            const rows = zone.rowsFor([...columns, ...q.where.map(([c]) => c)])
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

/** The fake as a scoped Effect resource. */
export const fakeIrodsScoped = (options: FakeIrodsOptions = {}) =>
  Effect.acquireRelease(
    Effect.promise(() => startFakeIrods(options)),
    (server) => Effect.promise(() => server.stop())
  )
