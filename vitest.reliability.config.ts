import { defineConfig } from "vitest/config"

/**
 * The reliability suite (`npm run test:reliability`, issue 7): writers killed at every step of the write protocol,
 * concurrent writer processes, storage and catalog faults, hostile input and secrets. Real processes, real
 * PostgreSQL, real files; it prints a tally at the end.
 */
export default defineConfig({
  test: {
    include: ["test/reliability/**/*.test.ts"],
    globalSetup: ["test/reliability/global-setup.ts"],
    pool: "forks",
    // Each file starts its own embedded PostgreSQL; the crash and concurrency files start writer processes of
    // their own, so on 2 cores two files at a time is the most that helps.
    poolOptions: { forks: { maxForks: 2, minForks: 1 } },
    reporters: process.env.CI ? ["default", ["json", { outputFile: ".ci/results/reliability.json" }]] : ["default"],
    // The suite's invariants (test/reliability/harness.ts: each committed snapshot's own file in main/, every
    // other stored file reported) are the write protocol's, on files as written: its clients and writer processes
    // do not compact automatically. Compaction beside writers and readers: test/compaction.test.ts and
    // test/auto-compaction.test.ts.
    env: { MESA_DUCKLAKE_AUTO_COMPACT_EVERY: "0" },
    testTimeout: 15 * 60_000,
    hookTimeout: 2 * 60_000
  }
})
