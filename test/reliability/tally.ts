/**
 * The suite's tally: each test file adds counters under its own section (a JSON file in the tally directory the
 * global set-up provides); the global teardown sums and prints them.
 */
import * as fs from "node:fs"
import * as nodePath from "node:path"

export type Counters = Record<string, number>

/** Add `counters` to the file's section (read-modify-write: one test file runs in one process). */
export const addTally = (tallyDir: string, section: string, counters: Counters, notes: ReadonlyArray<string> = []) => {
  const file = nodePath.join(tallyDir, `${section.replace(/[^a-z0-9-]/gi, "_")}.json`)
  const previous = fs.existsSync(file)
    ? JSON.parse(fs.readFileSync(file, "utf8")) as { counters: Counters; notes: Array<string> }
    : { counters: {}, notes: [] }
  for (const [k, v] of Object.entries(counters)) previous.counters[k] = (previous.counters[k] ?? 0) + v
  previous.notes.push(...notes)
  fs.writeFileSync(file, JSON.stringify({ section, ...previous }))
}

const ORDER = ["crash", "concurrency", "storage-faults", "catalog-faults", "hostile-input", "security"]

export const printTally = (tallyDir: string, elapsedMs: number) => {
  if (!fs.existsSync(tallyDir)) return
  const sections = fs.readdirSync(tallyDir).filter((f) => f.endsWith(".json")).map((f) =>
    JSON.parse(fs.readFileSync(nodePath.join(tallyDir, f), "utf8")) as { section: string; counters: Counters; notes: Array<string> }
  ).sort((a, b) => (ORDER.indexOf(a.section) + 99 * Number(!ORDER.includes(a.section))) - (ORDER.indexOf(b.section) + 99 * Number(!ORDER.includes(b.section))))
  const total = (k: string) => sections.reduce((n, s) => n + (s.counters[k] ?? 0), 0)
  const lines = ["", "──── reliability tally ────"]
  for (const s of sections) {
    lines.push(`${s.section}:`)
    for (const [k, v] of Object.entries(s.counters)) lines.push(`  ${k.padEnd(36)} ${v}`)
    for (const n of s.notes) lines.push(`  · ${n}`)
  }
  const kills = sections.flatMap((s) => Object.entries(s.counters).filter(([k]) => k.startsWith("kills at "))).reduce((n, [, v]) => n + v, 0)
  lines.push("totals:")
  lines.push(`  ${"kills".padEnd(36)} ${kills}`)
  for (const k of ["batches written (acknowledged)", "batches recovered", "batches lost", "duplicates", "hostile inputs tried"]) {
    lines.push(`  ${k.padEnd(36)} ${total(k)}`)
  }
  lines.push(`  ${"suite wall time".padEnd(36)} ${(elapsedMs / 1000).toFixed(1)} s`)
  lines.push(total("batches lost") === 0 && total("duplicates") === 0 ? "  LOST 0, DUPLICATES 0" : "  !! LOSS OR DUPLICATION !!")
  console.log(lines.join("\n"))
}
