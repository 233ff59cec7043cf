import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { PassThrough } from "node:stream";
import { buildProgram as agentProgram } from "@efm/agent/main";
import { CommanderError } from "commander";
import { describe, expect, test } from "vitest";
import { buildProgram } from "./main.ts";
import { packageVersion } from "./version.ts";

const manifest = (path: string) =>
  (JSON.parse(readFileSync(new URL(path, import.meta.url), "utf8")) as { version: string }).version;

/** Run a program's --version and catch the exit commander asks for. */
async function version(program: import("commander").Command): Promise<{ out: string; exitCode: number }> {
  let out = "";
  program.exitOverride().configureOutput({ writeOut: (s) => (out += s) });
  try {
    await program.parseAsync(["node", "x", "--version"]);
  } catch (err) {
    if (err instanceof CommanderError) return { out, exitCode: err.exitCode };
    throw err;
  }
  return { out, exitCode: -1 };
}

describe("--version", () => {
  test("efm prints the CLI package's version and asks for exit status 0", async () => {
    const output = new PassThrough();
    const r = await version(buildProgram({ input: new PassThrough(), output, env: {} }, () => {}));
    expect(r).toEqual({ out: `efm ${manifest("../package.json")}\n`, exitCode: 0 });
    expect(packageVersion()).not.toBe("unknown");
  });

  test("efm-agent prints the agent package's version and asks for exit status 0", async () => {
    const r = await version(agentProgram());
    expect(r).toEqual({ out: `efm-agent ${manifest("../../agent/package.json")}\n`, exitCode: 0 });
  });

  test("the installed commands exit 0 on --version when built", () => {
    // The repository's bin/ wrappers load dist/: this is the path an operator runs.
    for (const [cmd, pkg] of [
      ["efm", "../package.json"],
      ["efm-agent", "../../agent/package.json"],
    ] as const) {
      const bin = new URL(`../../../bin/${cmd}`, import.meta.url).pathname;
      let out: string;
      try {
        out = execFileSync(bin, ["--version"], { encoding: "utf8" });
      } catch (err) {
        // Not built yet (exit 2 with a clear message) is the only acceptable failure here.
        expect((err as { status: number }).status).toBe(2);
        continue;
      }
      expect(out).toBe(`${cmd} ${manifest(pkg)}\n`);
    }
    // Two Node start-ups: seconds each on a loaded 2-core machine, so more than the unit default.
  }, 90_000);
});
