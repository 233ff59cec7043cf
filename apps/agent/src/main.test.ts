import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, test, vi } from "vitest";
import { buildProgram } from "./main.ts";

const root = mkdtempSync(join(tmpdir(), "efm-agent-main-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));

describe("efm-agent start", () => {
  test.each(["../acctg", "a/b", ".hidden", "-x"])(
    "refuses the cluster name %j before reading or writing any file",
    async (cluster) => {
      // A properties file one level up: "../acctg" would otherwise read it and write logs.
      const conf = join(root, "conf");
      const logs = join(root, "logs");
      mkdirSync(conf, { recursive: true });
      mkdirSync(logs, { recursive: true });
      writeFileSync(join(root, "acctg.properties"), "db.user=efm\n");
      vi.stubEnv("EFM_LOG_DIR", logs);
      vi.stubEnv("EFM_LOCK_DIR", logs);
      vi.stubEnv("EFM_RUN_DIR", logs);
      vi.stubEnv("EFM_STATE_DIR", logs);
      const written: string[] = [];
      const spy = vi.spyOn(process.stderr, "write").mockImplementation((chunk) => {
        written.push(String(chunk));
        return true;
      });
      try {
        await buildProgram().parseAsync(["node", "efm-agent", "start", "--config-dir", conf, "--", cluster]);
        expect(process.exitCode).toBe(1);
      } finally {
        spy.mockRestore();
        vi.unstubAllEnvs();
        process.exitCode = 0;
      }
      expect(written.join("")).toBe(
        `efm-agent: ${JSON.stringify(cluster)} is not a valid cluster name: use up to 64 letters, digits, _ . - (starting with a letter, digit or _)\n`,
      );
      expect(readdirSync(logs)).toEqual([]);
    },
  );
});
