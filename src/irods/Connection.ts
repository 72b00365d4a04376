/**
 * One authenticated iRODS connection: TCP connect, StartupPack → Version_PI, native authentication
 * (703/704 for 4.2.x, the 4.3 JSON plugin flow 110000 from 4.3.0), then one request/reply at a time.
 *
 * Transport faults become `IrodsError`s with the names a C client would print (SYS_SOCK_CONNECT_ERR with the
 * errno folded in, SYS_SOCK_READ_ERR, SYS_SOCK_READ_TIMEDOUT, USER_SOCK_CONNECT_TIMEDOUT) and mark the connection
 * broken, so the pool drops it.
 */
import { Duration, Effect, Redacted } from "effect"
import { createHash } from "node:crypto"
import { connect as netConnect, type Socket } from "node:net"
import { constants as osConstants } from "node:os"
import {
  API,
  parseRelVersion,
  readRError,
  startupPack,
  versionAtLeast
} from "./Api.js"
import { IRODS_ERROR_CODES, IrodsError, type IrodsErrorName } from "./Errors.js"
import { frame, FrameReader, type Frame, WireClosed, WireProtocolError, writeFrame } from "./Wire.js"
import { el, escapeText, parseStruct, serialize, type Struct, type XmlElement, type XmlMode } from "./Xml.js"

/** What we announce in the StartupPack; ≥ 4.2.9 so 4.3 servers use correct XML apostrophes with us. */
export const CLIENT_REL_VERSION = "rods4.3.0"

export interface ConnectionOptions {
  readonly host: string
  readonly port: number
  readonly zone: string
  readonly user: string
  readonly password: Redacted.Redacted<string>
  readonly applicationName: string
  readonly connectTimeout: Duration.Duration
  readonly requestTimeout: Duration.Duration
  /** Use 703/704 even against 4.3 servers (PRC's `force_legacy_auth`). */
  readonly forceLegacyAuth: boolean
}

const errnoOf = (code: string | undefined): number =>
  code === undefined ? 0 : (osConstants.errno as Record<string, number | undefined>)[code] ?? 0

/** Maps a socket-level failure to an IrodsError (transient unless the stream is garbled). */
export const transportError = (operation: string, path: string, cause: unknown, connecting = false): IrodsError => {
  if (cause instanceof IrodsError) return cause
  if (cause instanceof WireProtocolError) {
    return new IrodsError({
      code: IRODS_ERROR_CODES.SYS_HEADER_READ_LEN_ERR,
      irodsName: "SYS_HEADER_READ_LEN_ERR",
      operation,
      path,
      detail: cause.message,
      transient: false,
      cause
    })
  }
  const code = cause instanceof WireClosed
    ? cause.code
    : typeof cause === "object" && cause !== null && "code" in cause && typeof cause.code === "string"
    ? cause.code
    : undefined
  const name: IrodsErrorName = connecting ? "SYS_SOCK_CONNECT_ERR" : "SYS_SOCK_READ_ERR"
  const errno = errnoOf(code)
  const errnoLabel = code ?? (errno === 0 ? undefined : `errno ${errno}`)
  return new IrodsError({
    code: IRODS_ERROR_CODES[name] - errno,
    irodsName: name,
    operation,
    path,
    detail: cause instanceof Error ? cause.message : String(cause),
    transient: true,
    cause,
    ...(errnoLabel === undefined ? {} : { errno: errnoLabel })
  })
}

const timeoutError = (operation: string, path: string, name: IrodsErrorName, after: Duration.Duration) =>
  new IrodsError({
    code: IRODS_ERROR_CODES[name],
    irodsName: name,
    operation,
    path,
    detail: `no answer within ${Duration.format(after)}`,
    transient: true
  })

/** MD5(challenge ‖ password zero-padded to 50), every 0x00 byte of the digest turned into 0x01 (libnative.cpp). */
export const nativeDigest = (challenge: Buffer, password: string): Buffer => {
  const padded = Buffer.alloc(50)
  Buffer.from(password, "utf8").copy(padded, 0, 0, 50)
  const digest = createHash("md5").update(challenge).update(padded).digest()
  for (let i = 0; i < digest.length; i++) if (digest[i] === 0) digest[i] = 1
  return digest
}

export class IrodsConnection {
  /** Set after a transport fault or timeout: the byte stream can no longer be trusted. */
  broken = false
  readonly xmlMode: XmlMode

  constructor(
    private readonly socket: Socket,
    private readonly reader: FrameReader,
    readonly serverVersion: readonly [number, number, number],
    private readonly requestTimeout: Duration.Duration
  ) {
    this.xmlMode = versionAtLeast(serverVersion, [4, 2, 9]) ? "standard" : "legacy"
  }

  /** Packs a request body in the dialect this server reads. */
  pack(body: XmlElement): string {
    return serialize(body, (s) => escapeText(s, this.xmlMode))
  }

  /** Parses a reply body. */
  parse(msg: Buffer): Struct {
    return parseStruct(msg, this.xmlMode)
  }

  /** Sends a frame and reads the reply, without interpreting `intInfo`. */
  exchange(operation: string, path: string, request: Frame, timeout = this.requestTimeout): Effect.Effect<Frame, IrodsError> {
    return Effect.suspend(() => {
      if (this.broken) {
        return Effect.fail(transportError(operation, path, new WireClosed("connection is broken", "EPIPE")))
      }
      return Effect.tryPromise({
        try: async () => {
          await writeFrame(this.socket, request)
          return await this.reader.readFrame()
        },
        catch: (cause) => transportError(operation, path, cause)
      }).pipe(
        Effect.timeoutFail({
          duration: timeout,
          onTimeout: () => timeoutError(operation, path, "SYS_SOCK_READ_TIMEDOUT", timeout)
        }),
        Effect.tapError(() => Effect.sync(() => this.markBroken())),
        Effect.onInterrupt(() => Effect.sync(() => this.markBroken()))
      )
    })
  }

  /** One API call: fails with the server's error when `intInfo < 0`. */
  call(
    operation: string,
    path: string,
    api: number,
    body?: XmlElement,
    bs?: Buffer,
    timeout?: Duration.Duration
  ): Effect.Effect<Frame, IrodsError> {
    const request = frame("RODS_API_REQ", api, {
      ...(body === undefined ? {} : { msg: this.pack(body) }),
      ...(bs === undefined ? {} : { bs })
    })
    return this.exchange(operation, path, request, timeout).pipe(
      Effect.flatMap((reply) => {
        if (reply.intInfo >= 0) return Effect.succeed(reply)
        let detail: string | undefined
        try {
          detail = reply.error.length > 0 ? readRError(this.parse(reply.error)) : undefined
        } catch {
          detail = undefined
        }
        return Effect.fail(IrodsError.fromCode(reply.intInfo, { operation, path, detail }))
      })
    )
  }

  private markBroken() {
    this.broken = true
    this.socket.destroy()
  }

  /** Polite goodbye (RODS_DISCONNECT), then close; never fails. */
  readonly close: Effect.Effect<void> = Effect.suspend(() => {
    if (this.broken || this.socket.destroyed) {
      this.socket.destroy()
      return Effect.void
    }
    return Effect.tryPromise(() => writeFrame(this.socket, frame("RODS_DISCONNECT", 0))).pipe(
      Effect.timeout("1 second"),
      Effect.ignore,
      Effect.ensuring(Effect.sync(() => {
        this.socket.end()
        this.socket.destroy()
      }))
    )
  })
}

const openSocket = (host: string, port: number): Promise<Socket> =>
  new Promise((resolve, reject) => {
    const socket = netConnect({ host, port })
    socket.setNoDelay(true)
    const onError = (err: Error) => {
      socket.destroy()
      reject(err)
    }
    socket.once("error", onError)
    socket.once("connect", () => {
      socket.off("error", onError)
      resolve(socket)
    })
  })

/** Connects, handshakes and authenticates. The caller owns the connection (see `acquireConnection`). */
export const connect = (opts: ConnectionOptions): Effect.Effect<IrodsConnection, IrodsError> =>
  Effect.gen(function*() {
    const target = `${opts.host}:${opts.port}`
    let pending: Socket | undefined
    const socket = yield* Effect.tryPromise({
      try: () => openSocket(opts.host, opts.port).then((s) => (pending = s)),
      catch: (cause) => transportError("connect", target, cause, true)
    }).pipe(
      Effect.timeoutFail({
        duration: opts.connectTimeout,
        onTimeout: () => timeoutError("connect", target, "USER_SOCK_CONNECT_TIMEDOUT", opts.connectTimeout)
      }),
      Effect.tapError(() => Effect.sync(() => pending?.destroy()))
    )
    const reader = new FrameReader(socket)
    const handshake = Effect.gen(function*() {
      const startup = serialize(
        startupPack({
          user: opts.user,
          zone: opts.zone,
          relVersion: CLIENT_REL_VERSION,
          option: opts.applicationName
        }),
        (s) => escapeText(s, "legacy")
      )
      const probe = new IrodsConnection(socket, reader, [0, 0, 0], opts.connectTimeout)
      const versionFrame = yield* probe.exchange("connect", target, frame("RODS_CONNECT", 0, { msg: startup }))
      if (versionFrame.intInfo < 0) {
        return yield* Effect.fail(IrodsError.fromCode(versionFrame.intInfo, { operation: "connect", path: target }))
      }
      const version = parseStruct(versionFrame.msg, "legacy")
      if (version.int("status") < 0) {
        return yield* Effect.fail(IrodsError.fromCode(version.int("status"), { operation: "connect", path: target }))
      }
      const conn = new IrodsConnection(socket, reader, parseRelVersion(version.str("relVersion")), opts.requestTimeout)
      if (versionAtLeast(conn.serverVersion, [4, 3, 0]) && !opts.forceLegacyAuth) {
        yield* authenticatePlugin(conn, opts)
      } else {
        yield* authenticateLegacy(conn, opts)
      }
      return conn
    })
    return yield* handshake.pipe(
      Effect.timeoutFail({
        duration: Duration.sum(opts.connectTimeout, opts.requestTimeout),
        onTimeout: () => timeoutError("connect", target, "SYS_SOCK_READ_TIMEDOUT", opts.requestTimeout)
      }),
      Effect.tapError(() => Effect.sync(() => socket.destroy()))
    )
  })

/** 4.2.x: AUTH_REQUEST (703) → challenge, AUTH_RESPONSE (704) with the digest and `user#zone`. */
const authenticateLegacy = (conn: IrodsConnection, opts: ConnectionOptions) =>
  Effect.gen(function*() {
    const reply = yield* conn.call("authenticate", opts.user, API.AUTH_REQUEST)
    const challenge = conn.parse(reply.msg).bin("challenge")
    const digest = nativeDigest(challenge, Redacted.value(opts.password))
    yield* conn.call(
      "authenticate",
      opts.user,
      API.AUTH_RESPONSE,
      el("authResponseInp_PI", [["response", digest.toString("base64")], ["username", `${opts.user}#${opts.zone}`]])
    )
  })

const binBytesBuf = (json: unknown): XmlElement => {
  const text = JSON.stringify(json)
  return el("BinBytesBuf_PI", [["buflen", Buffer.byteLength(text)], ["buf", Buffer.from(text).toString("base64")]])
}

/** 4.3+: AUTHENTICATION_APN (110000) with JSON in BinBytesBuf_PI, two rounds (auth request, auth response). */
const authenticatePlugin = (conn: IrodsConnection, opts: ConnectionOptions) =>
  Effect.gen(function*() {
    const base = { scheme: "native", user_name: opts.user, zone_name: opts.zone }
    const first = yield* conn.call(
      "authenticate",
      opts.user,
      API.AUTHENTICATION,
      binBytesBuf({ ...base, next_operation: "auth_agent_auth_request" })
    )
    const answer = yield* Effect.try({
      try: () =>
        JSON.parse(conn.parse(first.msg).bin("buf").toString("utf8").replace(/\0+$/, "")) as Record<string, unknown>,
      catch: (cause) =>
        new IrodsError({
          code: IRODS_ERROR_CODES.SYS_API_INPUT_ERR,
          irodsName: "SYS_API_INPUT_ERR",
          operation: "authenticate",
          path: opts.user,
          detail: "unreadable auth plugin reply",
          transient: false,
          cause
        })
    })
    const challenge = Buffer.from(String(answer["request_result"] ?? ""), "utf8")
    const digest = nativeDigest(challenge, Redacted.value(opts.password))
    yield* conn.call(
      "authenticate",
      opts.user,
      API.AUTHENTICATION,
      binBytesBuf({ ...base, next_operation: "auth_agent_auth_response", digest: digest.toString("base64") })
    )
  })

/** A connection as a scoped resource: disconnects politely when the scope closes. */
export const acquireConnection = (opts: ConnectionOptions) =>
  Effect.acquireRelease(connect(opts), (conn) => conn.close)
