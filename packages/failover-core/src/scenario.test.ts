import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { runScenario } from "./harness.ts";

const dir = join(import.meta.dirname, "scenarios");
const update = process.env.UPDATE_GOLDEN === "1";

describe("scenario transcripts (golden files)", () => {
  for (const file of readdirSync(dir).filter((f) => f.endsWith(".txt"))) {
    it(file, () => {
      const path = join(dir, file);
      const text = readFileSync(path, "utf8");
      const actual = runScenario(text);
      if (update) writeFileSync(path, actual);
      else expect(actual).toBe(text);
    });
  }
});
