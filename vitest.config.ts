import { defineConfig } from "vitest/config"

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    // The DuckDB-extension interop suite has its own command (npm run test:interop) and Python venv.
    // So does the reliability suite (npm run test:reliability: real writer processes, SIGKILLs, outages).
    exclude: ["test/interop/**", "test/reliability/**", "node_modules/**"],
    // One embedded PostgreSQL per test file is expensive on 2 cores: run files one or two at a time.
    pool: "forks",
    poolOptions: { forks: { maxForks: 2, minForks: 1 } },
    // Under CI, also write machine-readable results for .ci/run's closing "N passed, N failed" line.
    reporters: process.env.CI ? ["default", ["json", { outputFile: ".ci/results/unit.json" }]] : ["default"],
    // Generous: a loaded 2-core machine once took 60 s for the rebuild round trip that takes 15 s quiet.
    testTimeout: 180_000,
    hookTimeout: 120_000
  }
})
