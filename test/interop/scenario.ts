/**
 * The project the interop suite writes through our library: many small snapshots over several paths with adds,
 * deletes and sets, unicode everywhere, empty units, back-dated and out-of-order valid times, ties on valid time
 * across snapshots, an idempotent replay and a failed write (a gap in the snapshot ids).
 */
import type { AvuChangeInput } from "../../src/core/domain.js"

/** A small deterministic generator (mulberry32), so a failure can be replayed. */
export const rng = (seed: number) => {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

export const ATTRIBUTES = [
  "status",
  "crop",
  "depth",
  "Température",
  "note 📝",
  "x&y",
  "quote'd",
  "dq\"attr"
] as const

export const VALUES = [
  "raw",
  "qc-passed",
  "wheat",
  "barley",
  "12",
  "0",
  "NULL",
  "Ærøskøbing",
  "naïve café",
  "\u00e9", // é precomposed (NFC)
  "e\u0301", // é decomposed (NFD): a different value, must not be normalised
  "😀👩‍🔬🏳️‍🌈",
  "a & b < c > d",
  "it's \"quoted\"",
  "back\\slash",
  "line1\nline2\ttab",
  "  padded  ",
  "RTL עברית",
  "日本語の値",
  `long ${"x".repeat(1500)} ÿ`
] as const

export const UNITS = ["", "", "", "cm", "°C", "µg/L", "% w/w"] as const

export const pathsOf = (root: string) => [
  root,
  `${root}/site-42`,
  `${root}/site-42/sample-001.csv`,
  `${root}/site-42/données brutes/échantillon.csv`,
  `${root}/site-42/e\u0301chantillon.csv`,
  `${root}/Zebra/UPPER.txt`,
  `${root}/rocket 🚀/"quoted" & 'single'.txt`,
  `${root}/日本語/ファイル.dat`
]

export type Step =
  | { readonly kind: "batch"; readonly actor: string; readonly note?: string; readonly changes: Array<AvuChangeInput> }
  | { readonly kind: "replay"; readonly of: number }
  | { readonly kind: "fail" }

const ACTORS = ["alice", "bob", "José Müller", "研究者 👩‍🔬", "o'brien & co"] as const
const DAY = 86_400_000

/** Fixed dates for the valid-time README query on `sample-001.csv`. */
export const SAMPLE_HISTORY = [
  { ts: "2024-01-10T09:00:00.000Z", attribute: "status", value: "raw", op: "add" },
  { ts: "2024-01-10T09:00:00.000Z", attribute: "depth", value: "10", op: "add", unit: "cm" },
  { ts: "2024-02-15T14:30:00.000Z", attribute: "status", value: "qc-passed", op: "set" },
  { ts: "2024-02-15T14:30:00.000Z", attribute: "depth", value: "12", op: "set", unit: "cm" },
  { ts: "2024-03-20T08:00:00.000Z", attribute: "crop", value: "wheat", op: "add" },
  { ts: "2024-04-02T16:45:00.000Z", attribute: "crop", value: "wheat", op: "delete" },
  { ts: "2024-04-02T16:45:00.000Z", attribute: "crop", value: "barley", op: "add" }
] as const

/**
 * The steps, given the project root and the wall clock at the start. `now`-relative times are whole days away
 * from the "last 7 days" boundary, so a query run seconds later gives the same answer.
 */
export const buildSteps = (root: string, now: number, seed = 4): Array<Step> => {
  const r = rng(seed)
  const pick = <A>(xs: ReadonlyArray<A>): A => xs[Math.floor(r() * xs.length)]!
  const paths = pathsOf(root)
  const sample = paths[2]!
  const steps: Array<Step> = []
  const added: Array<AvuChangeInput> = []

  // 1. The dated history of sample-001.csv, one snapshot per date (what README query 3 reads).
  const byDate = new Map<string, Array<AvuChangeInput>>()
  for (const h of SAMPLE_HISTORY) {
    const list = byDate.get(h.ts) ?? []
    list.push({
      irodsPath: sample,
      targetType: "data_object",
      attribute: h.attribute,
      value: h.value,
      unit: "unit" in h ? h.unit : "",
      op: h.op,
      actor: "alice",
      source: "mesa-mcp:add_metadata",
      ts: h.ts
    })
    byDate.set(h.ts, list)
  }
  for (const [ts, changes] of byDate) steps.push({ kind: "batch", actor: "alice", note: `dated ${ts.slice(0, 10)}`, changes })

  // 2. Random batches; valid times: the snapshot clock, back-dated, out of order, and equal across snapshots.
  const shared = "2023-11-05T12:00:00.000Z"
  for (let i = 0; i < 40; i++) {
    const actor = pick(ACTORS)
    const mode = i % 5
    const tsFor = (j: number): string | undefined => {
      switch (mode) {
        case 0:
          return undefined // the snapshot clock
        case 1:
          return new Date(now - 3 * DAY + i * 60_000 + j).toISOString() // within the last week
        case 2:
          return new Date(now - (30 + i) * DAY + j * 7).toISOString() // weeks ago
        case 3:
          return shared // the same valid time in many snapshots: ties broken by snapshot id
        default:
          return new Date(Date.UTC(2019, 5, 1) + (40 - i) * DAY + j).toISOString() // years ago, going backwards
      }
    }
    const changes: Array<AvuChangeInput> = []
    const n = 1 + Math.floor(r() * 6)
    for (let j = 0; j < n; j++) {
      const roll = r()
      const ts = tsFor(j)
      const extra = {
        ...(ts === undefined ? {} : { ts }),
        ...(r() < 0.3 ? { objectId: 1000 + Math.floor(r() * 9000) } : {}),
        ...(r() < 0.2 ? { viaTicket: `ticket-${i}-${j} ✓` } : {}),
        ...(r() < 0.2 ? { ruleInvocation: `rule "acPostProcForModifyAVUMetadata" #${i}` } : {}),
        ...(r() < 0.15 ? { onBehalfOf: pick(ACTORS) } : {})
      }
      let c: AvuChangeInput
      if (roll < 0.25 && added.length > 0) {
        const prev = added[Math.floor(r() * added.length)]!
        c = { ...prev, op: "delete", actor, ...extra } // mostly a real AVU, sometimes already gone (unmatched)
        delete (c as any).ts
        if (ts !== undefined) c = { ...c, ts }
      } else {
        const path = pick(paths)
        c = {
          irodsPath: path,
          targetType: path === root || path.endsWith("/site-42") ? "collection" : "data_object",
          attribute: pick(ATTRIBUTES),
          value: pick(VALUES),
          unit: pick(UNITS),
          op: roll < 0.75 ? "add" : "set",
          actor,
          source: pick(["mesa-mcp:add_metadata", "irods-rule", "cli"]),
          ...extra
        }
        added.push(c)
      }
      changes.push(c)
    }
    const note = i % 7 === 3 ? undefined : pick([`batch ${i}`, `fix “curly” & 'straight' quotes #${i}`, `émoji 🧪 ${i}`])
    steps.push({ kind: "batch", actor, changes, ...(note === undefined ? {} : { note }) })
    if (i === 17) steps.push({ kind: "fail" })
    if (i === 25) steps.push({ kind: "replay", of: steps.length - 1 })
  }
  return steps
}
