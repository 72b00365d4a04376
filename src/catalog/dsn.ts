/**
 * The catalog DSN: parsing both forms PostgreSQL accepts (a `postgresql://` / `postgres://` URL, or libpq
 * `key=value` pairs) into the URL node-postgres takes, the target named in messages (`host:port/database`) and the
 * password to scrub; a DSN that is neither is `InvalidDsn`, raised before anything is attempted. Also the
 * classification of a failed connection by PostgreSQL's own SQLSTATE and the socket's error code.
 *
 * Nothing here ever puts any part of the DSN's text into an error besides a known key's name.
 */
import { Either } from "effect"
import { InvalidDsn } from "../core/errors.js"

export interface ParsedDsn {
  /** The DSN as a URL for node-postgres (libpq pairs converted; a URL kept as written). */
  readonly url: string
  /** host:port/database, for messages: no user, no password. */
  readonly target: string
  readonly user: string | undefined
  /** The password, to scrub from anything that might echo it. */
  readonly password: string | undefined
}

/** libpq's connection keywords (PostgreSQL 16). Any other key is refused, as libpq refuses it. */
const LIBPQ_KEYS = new Set([
  "host", "hostaddr", "port", "dbname", "user", "password", "passfile", "channel_binding", "connect_timeout",
  "client_encoding", "options", "application_name", "fallback_application_name", "keepalives", "keepalives_idle",
  "keepalives_interval", "keepalives_count", "tcp_user_timeout", "replication", "gssencmode", "sslmode",
  "requiressl", "sslcompression", "sslcert", "sslkey", "sslpassword", "sslrootcert", "sslcrl", "sslcrldir", "sslsni",
  "requirepeer", "ssl_min_protocol_version", "ssl_max_protocol_version", "krbsrvname", "gsslib", "service",
  "target_session_attrs", "load_balance_hosts", "sslcertmode", "require_auth", "gssdelegation"
])

/** Keys that become the URL's parts rather than query parameters. */
const URL_PARTS = new Set(["host", "hostaddr", "port", "dbname", "user", "password"])

const invalid = (reason: string) => Either.left(new InvalidDsn({ reason }))

/** A key's name is shown only when it looks like one (it is never the password's value). */
const keyName = (key: string) => (/^[A-Za-z_][A-Za-z0-9_]{0,39}$/.test(key) ? `"${key}"` : "a key")

/** libpq `key = value` pairs: values bare or single-quoted, backslash escapes in both. */
const parsePairs = (text: string): Either.Either<Map<string, string>, InvalidDsn> => {
  const pairs = new Map<string, string>()
  let i = 0
  const n = text.length
  const space = () => {
    while (i < n && /\s/.test(text[i]!)) i++
  }
  for (space(); i < n; space()) {
    const keyStart = i
    while (i < n && text[i] !== "=" && !/\s/.test(text[i]!)) i++
    const key = text.slice(keyStart, i)
    space()
    if (text[i] !== "=") {
      return invalid(
        pairs.size === 0
          ? "neither a postgresql:// URL nor libpq key=value pairs"
          : `missing "=" after ${keyName(key)} (libpq key=value pairs)`
      )
    }
    if (key === "") return invalid(`a "=" without a key at position ${i + 1}`)
    i++
    space()
    let value = ""
    if (text[i] === "'") {
      i++
      let closed = false
      for (; i < n; i++) {
        const c = text[i]!
        if (c === "\\" && i + 1 < n) value += text[++i]
        else if (c === "'") {
          closed = true
          i++
          break
        } else value += c
      }
      if (!closed) return invalid(`unterminated quoted value for ${keyName(key)}`)
    } else {
      for (; i < n && !/\s/.test(text[i]!); i++) {
        const c = text[i]!
        value += c === "\\" && i + 1 < n ? text[++i] : c
      }
    }
    if (!LIBPQ_KEYS.has(key)) return invalid(`unknown key ${keyName(key)} (not a libpq connection keyword)`)
    pairs.set(key, value)
  }
  if (pairs.size === 0) return invalid("empty")
  return Either.right(pairs)
}

const validPort = (port: string) => /^\d{1,5}$/.test(port) && Number(port) > 0 && Number(port) < 65536

/**
 * A database name as a URL path that node-postgres reads back exactly: it decodes the path with `decodeURI`, which
 * leaves `;,:@&=+$` encoded, so those stay literal (a path may hold them) and everything else is percent-encoded.
 * `/`, `?` and `#` can be neither: such a name is refused.
 */
const databasePath = (db: string) => [...db].map((c) => (";,:@&=+$".includes(c) ? c : encodeURIComponent(c))).join("")

const fromPairs = (pairs: Map<string, string>): Either.Either<ParsedDsn, InvalidDsn> => {
  const host = pairs.get("host") || pairs.get("hostaddr") || "localhost"
  const port = pairs.get("port") || "5432"
  if (!validPort(port)) return invalid("the port is not a number between 1 and 65535")
  const db = pairs.get("dbname") ?? ""
  if (/[/?#]/.test(db)) return invalid(`the database name contains "/", "?" or "#", which node-postgres cannot take`)
  const user = pairs.get("user")
  const password = pairs.get("password")
  // A password without a user is kept too (node-postgres then logs in as the OS user, as libpq does).
  const auth = () =>
    user === undefined && password === undefined
      ? ""
      : `${encodeURIComponent(user ?? "")}${password === undefined ? "" : ":" + encodeURIComponent(password)}@`
  const query = new URLSearchParams()
  for (const [k, v] of pairs) if (!URL_PARTS.has(k)) query.set(k, v)
  // A socket directory cannot be a URL's host: node-postgres takes it as the `host` parameter.
  const socket = host.startsWith("/")
  if (socket) query.set("host", host)
  const hostPart = socket ? "" : host.includes(":") && !host.startsWith("[") ? `[${host}]` : host
  const q = query.toString()
  let url: string
  try {
    url = `postgresql://${auth()}${hostPart}${socket ? "" : `:${port}`}/${databasePath(db)}${q === "" ? "" : `?${q}`}`
  } catch {
    return invalid("the user, password or database is not valid Unicode text")
  }
  return Either.right({
    url,
    target: `${host}:${port}/${db}`,
    user: user || undefined,
    password: password || undefined
  })
}

const fromUrl = (dsn: string): Either.Either<ParsedDsn, InvalidDsn> => {
  let u: URL
  try {
    u = new URL(dsn)
  } catch {
    // The URL error carries the input (and so the password): never kept.
    return invalid("not a valid postgresql:// URL")
  }
  if (u.port !== "" && !validPort(u.port)) return invalid("the port is not a number between 1 and 65535")
  let user: string
  let password: string
  let db: string
  try {
    user = decodeURIComponent(u.username)
    password = decodeURIComponent(u.password)
    db = decodeURIComponent(u.pathname.replace(/^\//, ""))
  } catch {
    return invalid("malformed %-encoding in the user, password or database")
  }
  if (db.includes("/")) return invalid("the database name contains a \"/\"")
  const host = u.hostname || u.searchParams.get("host") || "localhost"
  return Either.right({
    url: dsn,
    target: `${host}:${u.port || "5432"}/${db}`,
    user: user || undefined,
    password: password || undefined
  })
}

/** Parses a DSN of either form; `InvalidDsn` (naming no part of it) when it is neither. */
export const parseDsn = (dsn: string): Either.Either<ParsedDsn, InvalidDsn> => {
  const text = dsn.trim()
  if (text === "") return invalid("empty")
  if (/^postgres(ql)?:\/\//i.test(text)) return fromUrl(text)
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(text)) return invalid("a URL DSN must start with postgresql:// or postgres://")
  return Either.flatMap(parsePairs(text), fromPairs)
}

/** host:port/database of a DSN, without user or password; `<invalid DSN>` when it cannot be parsed. */
export const describeDsn = (dsn: string): string =>
  Either.match(parseDsn(dsn), { onLeft: () => "<invalid DSN>", onRight: (p) => p.target })

/** libpq key=value → URL, so one code path serves both DSN forms (an invalid DSN is returned as given). */
export const dsnToUrl = (dsn: string): string =>
  Either.match(parseDsn(dsn), { onLeft: () => dsn, onRight: (p) => p.url })

/** Why a connection attempt or a statement failed, when it is about the catalog rather than the statement. */
export interface ConnectFailure {
  readonly reason: "authentication-failed" | "database-missing" | "timeout" | "unreachable"
  /** What the socket said (`connection refused`, `host not found`, …): fixed words, never server or DSN text. */
  readonly detail?: string
}

const SOCKET_DETAIL: Record<string, string> = {
  ECONNREFUSED: "connection refused",
  ECONNRESET: "connection reset",
  EPIPE: "connection closed",
  ENOTFOUND: "host not found",
  EAI_AGAIN: "host name lookup failed",
  EHOSTUNREACH: "host unreachable",
  ENETUNREACH: "network unreachable"
}

/**
 * The catalog-level cause of a failure, by SQLSTATE (28P01/28000 authentication, 3D000 no such database, class 08
 * and 57P01/57P03 connection lost or server shutting down) or socket error code; `undefined` for anything else (a
 * statement that failed on its own).
 */
export const classifyConnectFailure = (e: unknown): ConnectFailure | undefined => {
  for (let c: any = e, depth = 0; c !== undefined && c !== null && depth < 6; c = c.cause, depth++) {
    const code = typeof c.code === "string" ? c.code : ""
    if (code === "28P01" || code === "28000") return { reason: "authentication-failed" }
    if (code === "3D000") return { reason: "database-missing" }
    if (code === "ETIMEDOUT") return { reason: "timeout", detail: "connect timed out" }
    const detail = SOCKET_DETAIL[code]
    if (detail !== undefined) return { reason: "unreachable", detail }
    if (code === "57P01" || code === "57P02" || code === "57P03") return { reason: "unreachable", detail: "server shutting down" }
    // 08P01 (protocol violation) comes from a statement we sent, not from the network.
    if (code.startsWith("08") && code !== "08P01") return { reason: "unreachable" }
    const msg = typeof c.message === "string" ? c.message : ""
    if (/Connection terminated|connection timeout|timeout expired|Client has encountered a connection error/i.test(msg)) {
      return { reason: "unreachable", detail: "connection lost" }
    }
  }
  return undefined
}
