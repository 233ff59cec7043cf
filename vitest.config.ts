import { defineConfig } from "vitest/config";

// Two projects: "unit" runs in parallel and touches no shared resource; "integration"
// builds real clusters (PostgreSQL, TCP ports, network namespaces) and runs one file at a time
// so suites never fight over addresses, ports or folders.
const resolve = { conditions: ["@efm/source"] };

export default defineConfig({
  resolve,
  test: {
    projects: [
      {
        resolve,
        test: {
          name: "unit",
          include: ["{packages,apps,tooling}/*/src/**/*.test.ts"],
          exclude: ["**/*.int.test.ts", "**/node_modules/**", "**/dist/**"],
          testTimeout: 20_000,
        },
      },
      {
        resolve,
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
