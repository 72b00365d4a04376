/**
 * The shape of `src/` (issue 17), checked: no file over 600 lines, no function over 150 lines, no import cycle, and
 * every folder imports only the folders below it (the map in README "Where things are"). Top-level files of `src/`
 * are the entry points (index, facade, telemetry): no folder imports them.
 */
import * as fs from "node:fs"
import * as nodePath from "node:path"
import ts from "typescript"
import { describe, expect, it } from "vitest"

const SRC = nodePath.resolve(__dirname, "../src")

/** What each folder may import (besides itself): lower folders only. */
export const FOLDER_DEPENDENCIES: Record<string, ReadonlyArray<string>> = {
  core: [],
  postgres: ["core"],
  irods: ["core"],
  storage: ["core", "irods"],
  catalog: ["core"],
  duckdb: ["core", "catalog"],
  integrity: ["core", "catalog", "storage"],
  client: ["core", "catalog", "duckdb", "storage", "integrity"],
  backup: ["core", "catalog", "duckdb", "storage", "postgres"],
  access: ["core", "client", "irods", "storage"],
  operations: ["core", "catalog", "client", "irods", "storage", "access"],
  report: ["core", "client"],
  events: ["core", "catalog", "client", "irods", "operations"]
}

const files = (fs.readdirSync(SRC, { recursive: true }) as Array<string>)
  .map(String)
  .filter((f) => f.endsWith(".ts"))
  .map((f) => nodePath.join(SRC, f))

const folderOf = (file: string) => {
  const parts = nodePath.relative(SRC, file).split(nodePath.sep)
  return parts.length > 1 ? parts[0]! : undefined
}

/** Relative imports of a file, resolved to .ts paths (type-only imports included). */
const importsOf = (file: string): Array<string> => {
  const sf = ts.createSourceFile(file, fs.readFileSync(file, "utf8"), ts.ScriptTarget.Latest, true)
  const out: Array<string> = []
  const add = (spec: string) => {
    if (spec.startsWith(".")) out.push(nodePath.resolve(nodePath.dirname(file), spec).replace(/\.js$/, ".ts"))
  }
  const visit = (n: ts.Node) => {
    if ((ts.isImportDeclaration(n) || ts.isExportDeclaration(n)) && n.moduleSpecifier && ts.isStringLiteral(n.moduleSpecifier)) {
      add(n.moduleSpecifier.text)
    } else if (ts.isCallExpression(n) && n.expression.kind === ts.SyntaxKind.ImportKeyword) {
      const [arg] = n.arguments
      if (arg !== undefined && ts.isStringLiteral(arg)) add(arg.text)
    } else if (ts.isImportTypeNode(n) && ts.isLiteralTypeNode(n.argument) && ts.isStringLiteral(n.argument.literal)) {
      add(n.argument.literal.text)
    }
    ts.forEachChild(n, visit)
  }
  visit(sf)
  return out
}

describe("the shape of src/", () => {
  it("has no file over 600 lines and no function over 150 lines", () => {
    const over: Array<string> = []
    for (const file of files) {
      const text = fs.readFileSync(file, "utf8")
      const rel = nodePath.relative(SRC, file)
      const lines = text.split("\n").length
      if (lines > 600) over.push(`${rel}: ${lines} lines`)
      const sf = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true)
      const visit = (n: ts.Node) => {
        if (
          ts.isFunctionDeclaration(n) || ts.isFunctionExpression(n) || ts.isArrowFunction(n) || ts.isMethodDeclaration(n)
        ) {
          const a = sf.getLineAndCharacterOfPosition(n.getStart()).line
          const b = sf.getLineAndCharacterOfPosition(n.getEnd()).line
          if (b - a + 1 > 150) over.push(`${rel}:${a + 1}: a function of ${b - a + 1} lines`)
        }
        ts.forEachChild(n, visit)
      }
      visit(sf)
    }
    expect(over).toEqual([])
  })

  it("has no import cycle", () => {
    const graph = new Map(files.map((f) => [f, importsOf(f).filter((t) => t.startsWith(SRC + nodePath.sep))] as const))
    const cycles: Array<string> = []
    const state = new Map<string, "open" | "done">()
    const stack: Array<string> = []
    const visit = (f: string) => {
      state.set(f, "open")
      stack.push(f)
      for (const t of graph.get(f) ?? []) {
        if (state.get(t) === "open") {
          cycles.push([...stack.slice(stack.indexOf(t)), t].map((x) => nodePath.relative(SRC, x)).join(" → "))
        } else if (!state.has(t)) visit(t)
      }
      stack.pop()
      state.set(f, "done")
    }
    for (const f of files) if (!state.has(f)) visit(f)
    expect(cycles).toEqual([])
  })

  it("imports run downward: folders import only lower folders, never the top-level entry points", () => {
    const wrong: Array<string> = []
    for (const file of files) {
      const from = folderOf(file)
      if (from === undefined) continue // an entry point may import anything
      const allowed = FOLDER_DEPENDENCIES[from]
      if (allowed === undefined) {
        wrong.push(`${nodePath.relative(SRC, file)}: folder ${from} is not in the map`)
        continue
      }
      for (const target of importsOf(file)) {
        const rel = nodePath.relative(SRC, target)
        if (rel.startsWith("..")) {
          wrong.push(`${nodePath.relative(SRC, file)} imports ${rel}, outside src/`)
          continue
        }
        const to = folderOf(target)
        if (to === from) continue
        if (to === undefined || !allowed.includes(to)) wrong.push(`${nodePath.relative(SRC, file)} imports ${rel}`)
      }
    }
    expect(wrong).toEqual([])
  })

  it("knows every folder, and its map has no cycle", () => {
    const folders = new Set(files.map(folderOf).filter((f): f is string => f !== undefined))
    expect([...folders].sort()).toEqual(Object.keys(FOLDER_DEPENDENCIES).sort())
    const below = (f: string, seen: Set<string> = new Set()): Set<string> => {
      for (const d of FOLDER_DEPENDENCIES[f] ?? []) {
        if (!seen.has(d)) {
          seen.add(d)
          below(d, seen)
        }
      }
      return seen
    }
    for (const f of folders) expect(below(f).has(f), f).toBe(false)
  })
})
