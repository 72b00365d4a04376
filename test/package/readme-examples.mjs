/**
 * Writes the README's "With Effect" and "Without Effect" examples, verbatim, as `<out>/with-effect.ts` and
 * `<out>/without-effect.ts`: the first ```ts block under each heading. Used by scripts/pack-check.sh.
 *
 *   node test/package/readme-examples.mjs README.md <out-dir>
 */
import * as fs from "node:fs"
import * as path from "node:path"

const [readme, out] = process.argv.slice(2)
const text = fs.readFileSync(readme, "utf8")
const example = (heading) => {
  const at = text.indexOf(`\n### ${heading}\n`)
  if (at < 0) throw new Error(`README.md has no "### ${heading}" section`)
  const next = text.indexOf("\n#", at + 1)
  const section = text.slice(at, next < 0 ? undefined : next)
  const block = /```ts\n([\s\S]*?)\n```/.exec(section)
  if (block === null) throw new Error(`README.md's "${heading}" section has no ts code block`)
  return block[1] + "\n"
}
fs.mkdirSync(out, { recursive: true })
fs.writeFileSync(path.join(out, "with-effect.ts"), example("With Effect"))
fs.writeFileSync(path.join(out, "without-effect.ts"), example("Without Effect"))
