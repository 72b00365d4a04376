/**
 * Hand-written XML packing and parsing for iRODS `*_PI` structs.
 *
 * iRODS packs structs as a flat XML dialect (`packStruct.cpp`): no attributes, no declarations, leaf text escaped
 * with a handful of named entities. The 4.2.8 server's escaping is off by one character (it writes a backtick as
 * `&apos;` and sends `'` raw) and stops decoding at any entity it does not know; see IRODS.md §1. Strict XML parsers
 * choke on the control bytes iRODS lets through, so this is a small tolerant tokenizer instead.
 */

/** Which escaping dialect a peer speaks: `legacy` = iRODS ≤ 4.2.8 (backtick ↔ `&apos;`), `standard` = ≥ 4.2.9. */
export type XmlMode = "legacy" | "standard"

/** Escapes leaf text for the given peer. Never emits numeric character references. */
export const escapeText = (s: string, mode: XmlMode): string => {
  let out = ""
  for (const ch of s) {
    switch (ch) {
      case "&":
        out += "&amp;"
        break
      case "<":
        out += "&lt;"
        break
      case ">":
        out += "&gt;"
        break
      case "\"":
        out += "&quot;"
        break
      case "'":
        out += mode === "standard" ? "&apos;" : "'"
        break
      default:
        out += ch
    }
  }
  return out
}

/**
 * Escapes leaf text the way a 4.2.8 *server* writes it: `& < > "` named, backtick as `&apos;`, `'` raw.
 * Used by the fake server; clients use `escapeText`.
 */
export const escapeTextAsServer = (s: string, mode: XmlMode): string =>
  mode === "standard" ? escapeText(s, "standard") : escapeText(s, "legacy").replaceAll("`", "&apos;")

const ENTITIES: Record<string, string> = { "&amp;": "&", "&lt;": "<", "&gt;": ">", "&quot;": "\"" }

/**
 * Decodes leaf text. In `legacy` mode `&apos;` is a backtick (what 4.2.8 means by it) and the first unknown entity
 * stops decoding, the rest of the string kept raw, as the 4.2.8 server does (`xmlStrToStr`). In `standard` mode
 * `&apos;` is `'`, numeric references are decoded too.
 */
export const unescapeText = (s: string, mode: XmlMode): string => {
  let out = ""
  let i = 0
  while (i < s.length) {
    const amp = s.indexOf("&", i)
    if (amp < 0) {
      out += s.slice(i)
      break
    }
    out += s.slice(i, amp)
    const semi = s.indexOf(";", amp)
    const entity = semi < 0 ? "" : s.slice(amp, semi + 1)
    const named = ENTITIES[entity]
    if (named !== undefined) {
      out += named
    } else if (entity === "&apos;") {
      out += mode === "legacy" ? "`" : "'"
    } else if (mode === "standard" && /^&#x[0-9a-fA-F]+;$/.test(entity)) {
      out += String.fromCodePoint(parseInt(entity.slice(3, -1), 16))
    } else if (mode === "standard" && /^&#[0-9]+;$/.test(entity)) {
      out += String.fromCodePoint(parseInt(entity.slice(2, -1), 10))
    } else {
      // Unknown entity: 4.2.8 gives up here and keeps the rest verbatim; so do we in both modes.
      out += s.slice(amp)
      break
    }
    i = amp + entity.length
  }
  return out
}

/** A parsed element: either a leaf with `text` or a struct with `children`. */
export interface XmlNode {
  readonly name: string
  readonly children: ReadonlyArray<XmlNode>
  /** Raw (still escaped) text of a leaf; `""` for structs. */
  readonly raw: string
}

export class XmlParseError extends Error {
  override readonly name = "XmlParseError"
}

/**
 * Parses one iRODS XML document into a tree. Whitespace between elements is skipped; leaf text is kept exactly
 * (not trimmed); trailing NULs are tolerated.
 */
export const parseXml = (input: string): XmlNode => {
  const src = input.replace(/\0+$/, "")
  let pos = 0
  const skipWs = () => {
    while (pos < src.length && /[\s\0]/.test(src[pos]!)) pos++
  }
  const parseElement = (): XmlNode => {
    skipWs()
    if (src[pos] !== "<") throw new XmlParseError(`expected '<' at ${pos}`)
    const close = src.indexOf(">", pos)
    if (close < 0) throw new XmlParseError("unterminated tag")
    const name = src.slice(pos + 1, close).trim()
    pos = close + 1
    if (name.endsWith("/")) return { name: name.slice(0, -1).trim(), children: [], raw: "" }
    const children: Array<XmlNode> = []
    const textStart = pos
    // Leaf: text up to the matching close tag (an empty struct reads as an empty leaf). Struct: child elements.
    const next = src.indexOf("<", pos)
    if (next < 0) throw new XmlParseError(`unterminated element <${name}>`)
    if (src.startsWith(`</${name}>`, next)) {
      pos = next + name.length + 3
      return { name, children, raw: src.slice(textStart, next) }
    }
    for (;;) {
      skipWs()
      if (src.startsWith(`</${name}>`, pos)) {
        pos += name.length + 3
        return { name, children, raw: "" }
      }
      if (src.startsWith("</", pos)) throw new XmlParseError(`mismatched close tag at ${pos}, expected </${name}>`)
      if (pos >= src.length) throw new XmlParseError(`unterminated element <${name}>`)
      children.push(parseElement())
    }
  }
  return parseElement()
}

/** Builds XML. Values: strings (escaped), numbers/bigints (decimal), nested nodes, or arrays of those. */
export type XmlValue = string | number | bigint | XmlElement | ReadonlyArray<XmlValue> | undefined

export interface XmlElement {
  readonly _tag: "XmlElement"
  readonly name: string
  readonly fields: ReadonlyArray<readonly [string, XmlValue]>
}

/** A struct: `el("DataObjInp_PI", [["objPath", p], ["createMode", 0], ...])`. `undefined` fields are omitted. */
export const el = (name: string, fields: ReadonlyArray<readonly [string, XmlValue]>): XmlElement => ({
  _tag: "XmlElement",
  name,
  fields
})

/** Serialises an element; `escape` decides the dialect (client or server side). */
export const serialize = (node: XmlElement, escape: (s: string) => string): string => {
  let out = `<${node.name}>`
  const field = (name: string, v: XmlValue): void => {
    if (v === undefined) return
    if (typeof v === "string") out += `<${name}>${escape(v)}</${name}>`
    else if (typeof v === "number" || typeof v === "bigint") out += `<${name}>${v.toString()}</${name}>`
    else if (Array.isArray(v)) for (const item of v as ReadonlyArray<XmlValue>) field(name, item)
    else out += serialize(v as XmlElement, escape)
  }
  for (const [name, v] of node.fields) field(name, v)
  return `${out}</${node.name}>`
}

/** Accessors over a parsed struct. */
export class Struct {
  constructor(readonly node: XmlNode, readonly mode: XmlMode) {}
  get name(): string {
    return this.node.name
  }
  private find(name: string): XmlNode | undefined {
    return this.node.children.find((c) => c.name === name)
  }
  has(name: string): boolean {
    return this.find(name) !== undefined
  }
  str(name: string): string {
    const n = this.find(name)
    return n === undefined ? "" : unescapeText(n.raw, this.mode)
  }
  strs(name: string): Array<string> {
    return this.node.children.filter((c) => c.name === name).map((c) => unescapeText(c.raw, this.mode))
  }
  int(name: string): number {
    const n = this.find(name)
    if (n === undefined) return 0
    const v = Number(n.raw.trim())
    if (!Number.isFinite(v)) throw new XmlParseError(`<${name}> is not a number: ${n.raw}`)
    return v
  }
  ints(name: string): Array<number> {
    return this.node.children.filter((c) => c.name === name).map((c) => Number(c.raw.trim()))
  }
  bin(name: string): Buffer {
    return Buffer.from(this.find(name)?.raw.trim() ?? "", "base64")
  }
  struct(name: string): Struct | undefined {
    const n = this.find(name)
    return n === undefined ? undefined : new Struct(n, this.mode)
  }
  structs(name: string): Array<Struct> {
    return this.node.children.filter((c) => c.name === name).map((c) => new Struct(c, this.mode))
  }
}

export const parseStruct = (xml: string | Buffer, mode: XmlMode): Struct =>
  new Struct(parseXml(typeof xml === "string" ? xml : xml.toString("utf8")), mode)

// ---- common structs ----

/** `KeyValPair_PI{ssLen, keyWord*, svalue*}`. */
export const keyValPair = (kv: Readonly<Record<string, string>> = {}): XmlElement => {
  const keys = Object.keys(kv)
  return el("KeyValPair_PI", [
    ["ssLen", keys.length],
    ["keyWord", keys],
    ["svalue", keys.map((k) => kv[k]!)]
  ])
}

/** Reads a `KeyValPair_PI` into an object (later duplicates win). */
export const readKeyValPair = (s: Struct | undefined): Record<string, string> => {
  if (s === undefined) return {}
  const keys = s.strs("keyWord")
  const values = s.strs("svalue")
  const out: Record<string, string> = {}
  keys.forEach((k, i) => {
    out[k] = values[i] ?? ""
  })
  return out
}
