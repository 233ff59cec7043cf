import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, test } from "vitest";
import { AgentError } from "./errors.ts";
import { readAgentState, readMembershipState, rewriteMembersFile } from "./state.ts";

const dir = mkdtempSync(join(tmpdir(), "ee17-state-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("state files: missing is a first start, unreadable or corrupt stops the start", () => {
  test("missing files read as null", () => {
    expect(readAgentState(join(dir, "none.state.json"))).toBeNull();
    expect(readMembershipState(join(dir, "none.membership.json"))).toBeNull();
  });

  test("valid files read back", () => {
    const p = join(dir, "ok.membership.json");
    const state = { config: { version: 3, voters: ["10.0.0.1:7800"], allowed: ["10.0.0.1"] }, lastEpoch: 7 };
    writeFileSync(p, JSON.stringify(state));
    expect(readMembershipState(p)).toEqual(state);
    const s = join(dir, "ok.state.json");
    writeFileSync(s, JSON.stringify({ allowed: ["10.0.0.1:7800"], priority: [] }));
    expect(readAgentState(s)).toEqual({ allowed: ["10.0.0.1:7800"], priority: [] });
  });

  test("a truncated file is refused, naming it", () => {
    const p = join(dir, "cut.membership.json");
    writeFileSync(p, '{"config":{"version":3,"vot');
    expect(() => readMembershipState(p)).toThrow(AgentError);
    expect(() => readMembershipState(p)).toThrow(`the membership state file ${p} is corrupt (not JSON`);
  });

  test("a file of the wrong shape is refused, naming the field", () => {
    const p = join(dir, "shape.state.json");
    writeFileSync(p, JSON.stringify({ allowed: "10.0.0.1", priority: [] }));
    expect(() => readAgentState(p)).toThrow(`the state file ${p} is corrupt (allowed:`);
    const m = join(dir, "shape.membership.json");
    writeFileSync(m, JSON.stringify({ config: { version: -1, voters: [], allowed: [] }, lastEpoch: 0 }));
    expect(() => readMembershipState(m)).toThrow(/config\.version/);
  });

  test("an unreadable path is refused, naming it", () => {
    const p = join(dir, "adir.state.json");
    mkdirSync(p);
    expect(() => readAgentState(p)).toThrow(`cannot read the state file ${p}`);
  });
});

describe("members file", () => {
  test("is replaced atomically when its directory is writable", () => {
    const p = join(dir, "acctg.nodes");
    writeFileSync(p, "10.0.0.9:7800\n");
    rewriteMembersFile(p, [{ host: "10.0.0.2", port: 7800 }]);
    expect(readFileSync(p, "utf8")).toMatch(/^10\.0\.0\.2:7800$/m);
    expect(readFileSync(p, "utf8")).not.toContain("10.0.0.9");
  });

  test.runIf(process.getuid?.() !== 0)("is rewritten in place when only the file is writable", () => {
    const etc = join(dir, "etc");
    mkdirSync(etc);
    const p = join(etc, "acctg.nodes");
    writeFileSync(p, "10.0.0.9:7800\n");
    chmodSync(etc, 0o555);
    try {
      rewriteMembersFile(p, [{ host: "10.0.0.3", port: 7800 }]);
      expect(readFileSync(p, "utf8")).toMatch(/^10\.0\.0\.3:7800$/m);
    } finally {
      chmodSync(etc, 0o755);
    }
  });
});
