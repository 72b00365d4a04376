/**
 * iRODS message framing (IRODS.md §1): a 4-byte big-endian header length, a `MsgHeader_PI` XML header, then
 * `msgLen` bytes of XML body, `errorLen` bytes of `RError_PI` XML and `bsLen` raw bytes.
 *
 * Shared by the client and the test server; plain Node, no Effect, so both sides can wrap it as they need.
 */
import type { Socket } from "node:net"
import { parseStruct } from "./Xml.js"

export type MsgType =
  | "RODS_CONNECT"
  | "RODS_VERSION"
  | "RODS_API_REQ"
  | "RODS_API_REPLY"
  | "RODS_DISCONNECT"
  | "RODS_CS_NEG_T"
  | "RODS_REAUTH"

export interface Frame {
  readonly type: MsgType
  /** XML body (may be empty). */
  readonly msg: Buffer
  /** `RError_PI` XML (may be empty). */
  readonly error: Buffer
  /** Raw bytes: file data of writes/reads. */
  readonly bs: Buffer
  /** API number in requests; status (≥ 0) or error code (< 0) in replies. */
  readonly intInfo: number
}

const EMPTY = Buffer.alloc(0)

export const frame = (
  type: MsgType,
  intInfo: number,
  parts: { readonly msg?: Buffer | string; readonly error?: Buffer | string; readonly bs?: Buffer } = {}
): Frame => ({
  type,
  intInfo,
  msg: typeof parts.msg === "string" ? Buffer.from(parts.msg, "utf8") : parts.msg ?? EMPTY,
  error: typeof parts.error === "string" ? Buffer.from(parts.error, "utf8") : parts.error ?? EMPTY,
  bs: parts.bs ?? EMPTY
})

/** The header and length prefix; the parts follow as separate buffers so a large `bs` is never copied. */
export const encodeHeader = (f: Frame): Buffer => {
  const header = Buffer.from(
    `<MsgHeader_PI><type>${f.type}</type><msgLen>${f.msg.length}</msgLen><errorLen>${f.error.length}</errorLen>` +
      `<bsLen>${f.bs.length}</bsLen><intInfo>${f.intInfo}</intInfo></MsgHeader_PI>\n`,
    "utf8"
  )
  const len = Buffer.alloc(4)
  len.writeUInt32BE(header.length, 0)
  return Buffer.concat([len, header])
}

/** Largest header we accept; iRODS servers cap theirs at MAX_NAME_LEN (1088). */
export const MAX_HEADER_LEN = 1088
/** Largest body/error part we accept (bodies are XML; 64 MiB is far beyond any reply we ask for). */
export const MAX_PART_LEN = 64 * 1024 * 1024

/** The peer closed the socket, or it failed, while we were reading or writing. */
export class WireClosed extends Error {
  override readonly name = "WireClosed"
  constructor(message: string, readonly code: string | undefined = undefined) {
    super(message)
  }
}

/** A malformed frame: the connection is unusable afterwards. */
export class WireProtocolError extends Error {
  override readonly name = "WireProtocolError"
}

/** Writes a frame, waiting for the socket to drain so large uploads do not pile up in memory. */
export const writeFrame = (socket: Socket, f: Frame): Promise<void> =>
  new Promise((resolve, reject) => {
    if (socket.destroyed || !socket.writable) {
      reject(new WireClosed("socket is closed", "EPIPE"))
      return
    }
    const buffers = [encodeHeader(f), f.msg, f.error, f.bs].filter((b) => b.length > 0)
    let ok = true
    buffers.forEach((b, i) => {
      const last = i === buffers.length - 1
      ok = socket.write(b, last ? (err) => (err ? reject(new WireClosed(err.message, errCode(err))) : undefined) : undefined)
    })
    if (ok) resolve()
    else {
      const onDrain = () => {
        socket.off("close", onClose)
        resolve()
      }
      const onClose = () => {
        socket.off("drain", onDrain)
        reject(new WireClosed("socket closed while writing", "EPIPE"))
      }
      socket.once("drain", onDrain)
      socket.once("close", onClose)
    }
  })

const errCode = (err: unknown): string | undefined =>
  typeof err === "object" && err !== null && "code" in err && typeof err.code === "string" ? err.code : undefined

/**
 * Reads frames from a socket. Buffers incoming chunks and hands out exact byte counts; a read pending when the
 * socket closes fails with `WireClosed`.
 */
export class FrameReader {
  private chunks: Array<Buffer> = []
  private buffered = 0
  private waiter: { n: number; resolve: (b: Buffer) => void; reject: (e: Error) => void } | undefined
  private failure: WireClosed | undefined

  constructor(socket: Socket) {
    socket.on("data", (chunk: Buffer) => {
      this.chunks.push(chunk)
      this.buffered += chunk.length
      this.pump()
    })
    socket.on("error", (err) => this.fail(new WireClosed(err.message, errCode(err))))
    socket.on("close", () => this.fail(new WireClosed("connection closed by peer", "ECONNRESET")))
    socket.on("end", () => this.fail(new WireClosed("connection closed by peer", "ECONNRESET")))
  }

  private fail(e: WireClosed) {
    if (this.failure === undefined) this.failure = e
    this.pump()
  }

  private take(n: number): Buffer {
    const all = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks)
    const out = all.subarray(0, n)
    const rest = all.subarray(n)
    this.chunks = rest.length > 0 ? [rest] : []
    this.buffered = rest.length
    return out
  }

  private pump() {
    const w = this.waiter
    if (w === undefined) return
    if (this.buffered >= w.n) {
      this.waiter = undefined
      w.resolve(this.take(w.n))
    } else if (this.failure !== undefined) {
      this.waiter = undefined
      w.reject(this.failure)
    }
  }

  /** Exactly `n` bytes. */
  readExact(n: number): Promise<Buffer> {
    if (n === 0) return Promise.resolve(EMPTY)
    return new Promise((resolve, reject) => {
      if (this.waiter !== undefined) {
        reject(new WireProtocolError("concurrent reads on one connection"))
        return
      }
      this.waiter = { n, resolve, reject }
      this.pump()
    })
  }

  /** True when the peer has gone and nothing is left to read. */
  get closed(): boolean {
    return this.failure !== undefined && this.buffered === 0
  }

  async readFrame(): Promise<Frame> {
    const lenBuf = await this.readExact(4)
    const headerLen = lenBuf.readUInt32BE(0)
    if (headerLen === 0 || headerLen > MAX_HEADER_LEN) {
      throw new WireProtocolError(`bad header length ${headerLen}`)
    }
    const header = parseStruct(await this.readExact(headerLen), "legacy")
    if (header.name !== "MsgHeader_PI") throw new WireProtocolError(`expected MsgHeader_PI, got ${header.name}`)
    const msgLen = header.int("msgLen")
    const errorLen = header.int("errorLen")
    const bsLen = header.int("bsLen")
    for (const n of [msgLen, errorLen]) {
      if (n < 0 || n > MAX_PART_LEN) throw new WireProtocolError(`bad part length ${n}`)
    }
    if (bsLen < 0 || bsLen > 1024 * 1024 * 1024) throw new WireProtocolError(`bad bs length ${bsLen}`)
    const msg = await this.readExact(msgLen)
    const error = await this.readExact(errorLen)
    const bs = await this.readExact(bsLen)
    return { type: header.str("type") as MsgType, msg, error, bs, intInfo: header.int("intInfo") }
  }
}
