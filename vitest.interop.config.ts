import { defineConfig } from "vitest/config"

/** The DuckDB interop suite (`npm run test:interop`): one embedded PostgreSQL, Python + the ducklake extension. */
export default defineConfig({
  test: {
    include: ["test/interop/**/*.test.ts"],
    pool: "forks",
    poolOptions: { forks: { maxForks: 1, minForks: 1 } },
    // First run installs DuckDB and the extension wheels from PyPI into .venv (beforeAll).
    hookTimeout: 15 * 60_000,
    reporters: process.env.CI ? ["default", ["json", { outputFile: ".ci/results/interop.json" }]] : ["default"],
    testTimeout: 10 * 60_000
  }
})
