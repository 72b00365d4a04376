/**
 * What a bulk ingest remembers of its own rows, in typed arrays rather than JS objects (a million AVU triples take
 * about 50 MB here, against 250 MB or more as Maps of strings, and none of it is garbage-collected heap).
 *
 * Per AVU triple (path, attribute, value, unit): the latest change the ingest wrote, by the order the current-state
 * index uses (valid time, snapshot, position), and whether it was an add. Per (path, attribute) pair: that the
 * ingest touched it. Keys are 63-bit hashes: with a million triples stored, a lookup mistakes one triple for
 * another with odds of about 1 in 10^13. The ingest uses a triple's answer only to count deletes that matched
 * nothing, never to decide which rows to write; a pair's answer only decides whether to read the pair's rows from
 * the ingest's files (a false "touched" costs a read, nothing else).
 */

/** Two running 32-bit hashes, fed one string at a time (followed by its length, so ("ab", "c") ≠ ("a", "bc")). */
let h1 = 0
let h2 = 0
const feed = (s: string) => {
  let a = h1
  let b = h2
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i)
    a = Math.imul(a ^ c, 0x01000193)
    b = Math.imul(b ^ c, 0x5bd1e995)
    b ^= b >>> 15
  }
  h1 = Math.imul(a ^ (s.length + 0x10000), 0x01000193)
  b = Math.imul(b ^ (s.length + 0x10000), 0x5bd1e995)
  h2 = b ^ (b >>> 13)
}

/** The 64-bit hash of two or four strings, into `out` (no allocation: this runs for every row of a bulk ingest). */
const hash64 = (out: Uint32Array, a: string, b: string, c?: string, d?: string) => {
  h1 = 0x811c9dc5
  h2 = 0x9747b28c
  feed(a)
  feed(b)
  if (c !== undefined) feed(c)
  if (d !== undefined) feed(d)
  // Final avalanche (murmur3 fmix32) of each half.
  h1 ^= h1 >>> 16
  h1 = Math.imul(h1, 0x85ebca6b)
  h1 ^= h1 >>> 13
  h1 = Math.imul(h1, 0xc2b2ae35)
  h1 ^= h1 >>> 16
  h2 ^= h2 >>> 16
  h2 = Math.imul(h2, 0x85ebca6b)
  h2 ^= h2 >>> 13
  h2 = Math.imul(h2, 0xc2b2ae35)
  h2 ^= h2 >>> 16
  out[0] = h1 >>> 0
  out[1] = (h2 >>> 0) | 1 // never 0 in the second half: 0/0 marks an empty slot
}

/** Open addressing with linear probing over typed arrays; grows at 60% load. */
class HashSlots {
  capacity: number
  size = 0
  hi: Uint32Array
  lo: Uint32Array
  constructor(capacity = 1 << 12) {
    this.capacity = capacity
    this.hi = new Uint32Array(capacity)
    this.lo = new Uint32Array(capacity)
  }
  /** The slot of a key: found (>= 0) or where it would go (-(slot + 1)). */
  find(h: Uint32Array): number {
    const mask = this.capacity - 1
    let i = (h[0]! ^ Math.imul(h[1]!, 0x9e3779b1)) & mask
    while (true) {
      const lo = this.lo[i]!
      if (lo === 0) return -(i + 1)
      if (lo === h[1] && this.hi[i] === h[0]) return i
      i = (i + 1) & mask
    }
  }
  needsGrowth(): boolean {
    return (this.size + 1) * 10 > this.capacity * 6
  }
}

export class PairSet {
  private slots = new HashSlots()
  private readonly h = new Uint32Array(2)
  get size() {
    return this.slots.size
  }
  has(path: string, attribute: string): boolean {
    hash64(this.h, path, attribute)
    return this.slots.find(this.h) >= 0
  }
  add(path: string, attribute: string): void {
    hash64(this.h, path, attribute)
    this.insert(this.h)
  }
  private insert(h: Uint32Array) {
    if (this.slots.needsGrowth()) this.grow()
    const at = this.slots.find(h)
    if (at >= 0) return
    const i = -at - 1
    this.slots.hi[i] = h[0]!
    this.slots.lo[i] = h[1]!
    this.slots.size++
  }
  private grow() {
    const old = this.slots
    this.slots = new HashSlots(old.capacity * 2)
    const h = new Uint32Array(2)
    for (let i = 0; i < old.capacity; i++) {
      if (old.lo[i] === 0) continue
      h[0] = old.hi[i]!
      h[1] = old.lo[i]!
      this.insert(h)
    }
  }
}

/** The latest change per triple: (valid time ms, snapshot, position) and whether it was an add. */
export interface TripleState {
  readonly ts: number
  readonly snapshotId: number
  readonly changeSeq: number
  readonly add: boolean
}

export const laterThan = (a: TripleState, b: TripleState) =>
  a.ts !== b.ts ? a.ts > b.ts : a.snapshotId !== b.snapshotId ? a.snapshotId > b.snapshotId : a.changeSeq > b.changeSeq

export class TripleTable {
  private slots = new HashSlots()
  private ts = new Float64Array(this.slots.capacity)
  private snap = new Float64Array(this.slots.capacity)
  private seq = new Int32Array(this.slots.capacity)
  private add = new Uint8Array(this.slots.capacity)
  private readonly h = new Uint32Array(2)
  get size() {
    return this.slots.size
  }
  get(path: string, attribute: string, value: string, unit: string): TripleState | undefined {
    hash64(this.h, path, attribute, value, unit)
    const i = this.slots.find(this.h)
    return i < 0 ? undefined : { ts: this.ts[i]!, snapshotId: this.snap[i]!, changeSeq: this.seq[i]!, add: this.add[i] === 1 }
  }
  /** Records a change unless the triple already holds a later one. */
  record(path: string, attribute: string, value: string, unit: string, ts: number, snapshotId: number, changeSeq: number, add: boolean): void {
    hash64(this.h, path, attribute, value, unit)
    this.put(this.h, ts, snapshotId, changeSeq, add ? 1 : 0)
  }
  private put(h: Uint32Array, ts: number, snap: number, seq: number, add: number) {
    if (this.slots.needsGrowth()) this.grow()
    const at = this.slots.find(h)
    if (at >= 0) {
      const t = this.ts[at]!
      const s = this.snap[at]!
      if (ts !== t ? ts < t : snap !== s ? snap < s : seq <= this.seq[at]!) return
      this.ts[at] = ts
      this.snap[at] = snap
      this.seq[at] = seq
      this.add[at] = add
      return
    }
    const i = -at - 1
    this.slots.hi[i] = h[0]!
    this.slots.lo[i] = h[1]!
    this.ts[i] = ts
    this.snap[i] = snap
    this.seq[i] = seq
    this.add[i] = add
    this.slots.size++
  }
  private grow() {
    const old = { slots: this.slots, ts: this.ts, snap: this.snap, seq: this.seq, add: this.add }
    const capacity = old.slots.capacity * 2
    this.slots = new HashSlots(capacity)
    this.ts = new Float64Array(capacity)
    this.snap = new Float64Array(capacity)
    this.seq = new Int32Array(capacity)
    this.add = new Uint8Array(capacity)
    const h = new Uint32Array(2)
    for (let i = 0; i < old.slots.capacity; i++) {
      if (old.slots.lo[i] === 0) continue
      h[0] = old.slots.hi[i]!
      h[1] = old.slots.lo[i]!
      this.put(h, old.ts[i]!, old.snap[i]!, old.seq[i]!, old.add[i]!)
    }
  }
}
