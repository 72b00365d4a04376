// Prints one closing line, "tests: N passed, N failed[, N skipped]", over vitest JSON result files.
import { readFileSync, existsSync } from "node:fs"
let passed = 0, failed = 0, skipped = 0
for (const file of process.argv.slice(2)) {
  if (!existsSync(file)) { console.error(`missing results: ${file}`); failed++; continue }
  const r = JSON.parse(readFileSync(file, "utf8"))
  passed += r.numPassedTests
  failed += r.numFailedTests
  skipped += r.numPendingTests + (r.numTodoTests ?? 0)
}
console.log(`tests: ${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ""}`)
process.exit(failed > 0 || passed === 0 ? 1 : 0)
