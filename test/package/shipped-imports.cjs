// Every relative import (static or lazy) in the shipped JavaScript names a file the tarball holds: a module left
// out of package.json#files would otherwise fail only when that command or layer first runs. Used by
// scripts/pack-check.sh: node shipped-imports.cjs <installed package directory>
const fs = require("fs"), path = require("path")
const root = process.argv[2], missing = []
const walk = (d) => fs.readdirSync(d, { withFileTypes: true }).flatMap((e) => e.isDirectory() ? walk(path.join(d, e.name)) : [path.join(d, e.name)])
const shipped = walk(root).filter((f) => f.endsWith(".js"))
for (const file of shipped) {
  const code = fs.readFileSync(file, "utf8").replace(/\/\*[\s\S]*?\*\//g, "").replace(/^\s*\/\/.*$/gm, "")
  for (const m of code.matchAll(/(?:\bfrom\s*|\bimport\s*\(\s*|\bimport\s+)["'](\.{1,2}\/[^"']+)["']/g)) {
    if (!fs.existsSync(path.resolve(path.dirname(file), m[1]))) missing.push(`${path.relative(root, file)} -> ${m[1]}`)
  }
}
if (missing.length > 0) throw new Error(`pack-check: shipped modules import files the tarball lacks: ${missing.join(", ")}`)
console.log(`pack-check: ${shipped.length} shipped modules, every relative import present`)
