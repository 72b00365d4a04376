/**
 * The `.irodsA` password obfuscation of `iinit` (IRODS.md §3; PRC `password_obfuscation.py` encode/decode,
 * GoIC `config/password_obfuscation.go`). Not encryption: the key is the user's uid and a fixed table.
 */

const WHEEL = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz!\"#$%&'()*+,-./"

const SEQ = [
  0xd768b678, 0xedfdaf56, 0x2420231b, 0x987098d8, 0xc1bdfeee, 0xf572341f, 0x478def3a, 0xa830d343,
  0x774dfa2a, 0x6720731e, 0x346fa320, 0x6ffdf43a, 0x7723a320, 0xdf67d02e, 0x86ad240a, 0xe76d342e
] as const

const mod = (a: number, n: number) => ((a % n) + n) % n

const rotate = (text: string, seq: number, uid: number, startShift: number, direction: 1 | -1): string => {
  let shift = startShift
  let out = ""
  for (const c of text) {
    if (c === "\0") break
    const offset = ((seq >>> shift) & 0x1f) + (uid & 0xf5f)
    shift += 3
    if (shift > 28) shift = 0
    const i = WHEEL.indexOf(c)
    out += i < 0 ? c : WHEEL[mod(i + direction * offset, WHEEL.length)]!
  }
  return out
}

/** Decodes the contents of an `.irodsA` file for the given uid (trailing NUL and newline tolerated). */
export const decodeIrodsA = (scrambled: string, uid: number): string => {
  const s = scrambled.replace(/[\r\n]+$/, "")
  if (s.length < 7) return ""
  const k = s.charCodeAt(6) - "e".charCodeAt(0)
  const seq = SEQ[k]
  if (seq === undefined) throw new Error("not an .irodsA obfuscated password")
  return rotate(s.slice(7), seq, uid, 15, -1)
}

/** Encodes a password as `iinit` writes it (sequence 0, as every client does), NUL included. */
export const encodeIrodsA = (password: string, uid: number, mtime: number): string => {
  const k = 0
  const seq = SEQ[k]!
  const a = "a".charCodeAt(0)
  const plain = String.fromCharCode("S".charCodeAt(0) - (k & 7) * 2) +
    String.fromCharCode(((mtime >> 4) & 0xf) + a) +
    String.fromCharCode((mtime & 0xf) + a) +
    String.fromCharCode(((mtime >> 12) & 0xf) + a) +
    String.fromCharCode(((mtime >> 8) & 0xf) + a) +
    password
  const encoded = "." + rotate(plain, seq, uid, 0, 1)
  return `${encoded.slice(0, 6)}${String.fromCharCode(k + "e".charCodeAt(0))}${encoded.slice(6)}\0`
}
