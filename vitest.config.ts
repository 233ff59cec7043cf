import { defineConfig } from "vitest/config";

// Projects: "unit" runs in parallel and touches no shared resource; "sim" runs the simulator's
// seeds (pure, CPU-bound); "integration"
// builds real clusters (PostgreSQL, TCP ports, network namespaces) and runs one file at a time
// so suites never fight over addresses, ports or folders.
const resolve = { conditions: ["@efm/source"] };
// Vitest runs tests as SSR modules: the condition must apply there too, or packages imported
// from another package's test resolve to a stale dist/.
const ssr = { resolve: { conditions: ["@efm/source"], externalConditions: ["@efm/source"] } };

export default defineConfig({
  resolve,
  ssr,
  test: {
    projects: [
      {
        resolve,
        ssr,
        test: {
          name: "unit",
          include: ["{packages,apps,tooling}/*/src/**/*.test.ts"],
          exclude: ["**/*.int.test.ts", "tooling/sim/**", "**/node_modules/**", "**/dist/**"],
          testTimeout: 20_000,
        },
      },
      {
        resolve,
        ssr,
        // The simulator's thousands of seeds take about a minute of CPU: a project of their own
        // keeps the fast unit tests fast while CI still runs every seed.
        test: {
          name: "sim",
          include: ["tooling/sim/src/**/*.test.ts"],
          exclude: ["**/node_modules/**", "**/dist/**"],
          testTimeout: 180_000,
        },
      },
      {
        resolve,
        ssr,
        test: {
          name: "integration",
          include: ["{packages,apps,tooling}/*/src/**/*.int.test.ts", "test-e2e/**/*.test.ts"],
          exclude: ["**/node_modules/**", "**/dist/**"],
          fileParallelism: false,
          testTimeout: 180_000,
          hookTimeout: 180_000,
        },
      },
      {
        resolve,
        ssr,
        test: {
          name: "bench",
          include: ["bench/**/*.bench.ts"],
          fileParallelism: false,
          testTimeout: 600_000,
          hookTimeout: 600_000,
        },
      },
    ],
  },
});
