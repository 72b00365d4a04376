// What the shipped JavaScript imports, checked against the tarball: every relative import (static or lazy) names a
// file the tarball holds (a module left out of package.json#files would otherwise fail only when that command or
// layer first runs), and every package it imports is one of the package's dependencies, optional dependencies or
// peers, or a Node built-in (a dev dependency imported at run time would fail only on a user's machine).
// Used by scripts/pack-check.sh: node shipped-imports.cjs <installed package directory>
const fs = require("fs"), path = require("path"), { builtinModules } = require("module")
const root = process.argv[2], missing = [], undeclared = new Set(), used = new Set()
const pkg = JSON.parse(fs.readFileSync(path.join(root, "package.json"), "utf8"))
const declared = new Set([pkg.name, ...Object.keys({ ...pkg.dependencies, ...pkg.optionalDependencies, ...pkg.peerDependencies })])
const walk = (d) => fs.readdirSync(d, { withFileTypes: true }).flatMap((e) => e.isDirectory() ? walk(path.join(d, e.name)) : [path.join(d, e.name)])
const shipped = walk(root).filter((f) => f.endsWith(".js") && !path.relative(root, f).split(path.sep).includes("node_modules"))
for (const file of shipped) {
  const code = fs.readFileSync(file, "utf8").replace(/\/\*[\s\S]*?\*\//g, "").replace(/^\s*\/\/.*$/gm, "")
  const specs = [
    // import … from "x" / export … from "x" (statements, possibly over several lines), import "x"
    ...code.matchAll(/^\s*(?:import\s+[\w*{]|export\s*[*{])[^;]*?\bfrom\s*["']([^"']+)["']/gm),
    ...code.matchAll(/^\s*import\s*["']([^"']+)["']/gm),
    // import("x"), require("x")
    ...code.matchAll(/\b(?:import|require)\s*\(\s*["']([^"']+)["']\s*\)/g)
  ]
  for (const m of specs) {
    const spec = m[1]
    if (spec.startsWith(".")) {
      if (!fs.existsSync(path.resolve(path.dirname(file), spec))) missing.push(`${path.relative(root, file)} -> ${spec}`)
      continue
    }
    if (spec.startsWith("node:") || builtinModules.includes(spec)) continue
    const name = spec.startsWith("@") ? spec.split("/").slice(0, 2).join("/") : spec.split("/")[0]
    used.add(name)
    if (!declared.has(name)) undeclared.add(`${name} (${path.relative(root, file)})`)
  }
}
if (missing.length > 0) throw new Error(`pack-check: shipped modules import files the tarball lacks: ${missing.join(", ")}`)
if (undeclared.size > 0) throw new Error(`pack-check: shipped modules import undeclared packages: ${[...undeclared].join(", ")}`)
console.log(`pack-check: ${shipped.length} shipped modules; every relative import present; the ${used.size} packages they import are declared: ${[...used].sort().join(" ")}`)
