/**
 * Checksums as iRODS writes them (MD5 hex or `sha2:` + base64 SHA-256), parsed, formatted and computed for local
 * files. A value type shared by the storage adapters, the iRODS client and the integrity checks.
 */
import { createHash } from "node:crypto"
import { createReadStream, readFileSync, statSync } from "node:fs"

/** A local file small enough to checksum in one synchronous read (a missing one goes the streaming way, which fails). */
const localSmall = (file: string) => {
  try {
    return statSync(file).size <= 1 << 20
  } catch {
    return false
  }
}

/** A checksum as iRODS reports it: MD5 as 32 lowercase hex, SHA-256 as `sha2:` + base64. */
export interface Checksum {
  readonly algorithm: "md5" | "sha256"
  /** Lowercase hex digest. */
  readonly hex: string
}

/** The iRODS text form of a checksum (`<md5 hex>` or `sha2:<base64>`). */
export const formatIrodsChecksum = (c: Checksum): string =>
  c.algorithm === "md5" ? c.hex : `sha2:${Buffer.from(c.hex, "hex").toString("base64")}`

/**
 * Parses the checksum string iRODS returns. An empty string or an unknown algorithm is *not* a checksum: the
 * caller must treat the file as unverified (the upstream library let those pass).
 */
export const parseIrodsChecksum = (raw: string): Checksum | undefined => {
  const s = raw.trim()
  if (/^[0-9a-f]{32}$/i.test(s)) return { algorithm: "md5", hex: s.toLowerCase() }
  const m = /^sha2:([A-Za-z0-9+/]{43}=)$/.exec(s)
  if (m?.[1] !== undefined) {
    const bytes = Buffer.from(m[1], "base64")
    if (bytes.length === 32) return { algorithm: "sha256", hex: bytes.toString("hex") }
  }
  return undefined
}

/** Digest of a local file, streamed. */
export const checksumFile = (file: string, algorithm: Checksum["algorithm"]): Promise<Checksum> =>
  new Promise((resolve, reject) => {
    // A file of the local cache small enough to read at once (a snapshot of a few changes: a few KB) is read in
    // one synchronous call: a few microseconds on a local disk, against several trips through libuv's thread pool.
    if (localSmall(file)) {
      try {
        return resolve({ algorithm, hex: createHash(algorithm).update(readFileSync(file)).digest("hex") })
      } catch (e) {
        return reject(e)
      }
    }
    const h = createHash(algorithm)
    createReadStream(file)
      .on("error", reject)
      .on("data", (chunk) => h.update(chunk))
      .on("end", () => resolve({ algorithm, hex: h.digest("hex") }))
  })
