import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, test } from "vitest";
import { AgentError } from "./errors.ts";
import { failoverStateText, readFailoverState } from "./failover-state.ts";

const dir = mkdtempSync(join(tmpdir(), "efm-failover-state-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("the failover state file", () => {
  test("a first start has none; what was written is read back", () => {
    const path = join(dir, "acctg.failover.json");
    expect(readFailoverState(path)).toBeUndefined();
    writeFileSync(path, failoverStateText({ lastMaster: "10.0.0.1:7800", epoch: 2, rebuildNeeded: true }));
    expect(readFailoverState(path)).toEqual({ lastMaster: "10.0.0.1:7800", epoch: 2, rebuildNeeded: true });
    expect(JSON.parse(readFileSync(path, "utf8")).epoch).toBe(2);
  });

  test("the published synchronous standby set is kept with its version; a malformed one is refused", () => {
    const path = join(dir, "sync.failover.json");
    const state = {
      lastMaster: "10.0.0.1:7800",
      epoch: 2,
      rebuildNeeded: false,
      syncStandbys: { standbys: ["10.0.0.2:7800"], epoch: 2, seq: 5 },
    };
    writeFileSync(path, failoverStateText(state));
    expect(readFailoverState(path)).toEqual(state);
    writeFileSync(path, JSON.stringify({ ...state, syncStandbys: ["10.0.0.2:7800"] }));
    expect(() => readFailoverState(path)).toThrow(/sync\.failover\.json is corrupt \(syncStandbys: /);
  });

  test("the newest promotion's fork is kept (its position may be unknown); a malformed one is refused", () => {
    const path = join(dir, "fork.failover.json");
    for (const newestFork of [
      { parent: 1, lsn: "0/3000335" },
      { parent: 2, lsn: null },
    ]) {
      const state = { lastMaster: "10.0.0.1:7800", epoch: 2, rebuildNeeded: false, newestFork };
      writeFileSync(path, failoverStateText(state));
      expect(readFailoverState(path)).toEqual(state);
    }
    writeFileSync(
      path,
      JSON.stringify({
        lastMaster: null,
        epoch: 1,
        rebuildNeeded: false,
        newestFork: { parent: 1, lsn: "x" },
      }),
    );
    expect(() => readFailoverState(path)).toThrow(/fork\.failover\.json is corrupt \(newestFork\.lsn: /);
  });

  test("a corrupt file stops the start with the file named and the reason", () => {
    const path = join(dir, "bad.failover.json");
    writeFileSync(path, "{not json");
    expect(() => readFailoverState(path)).toThrow(AgentError);
    expect(() => readFailoverState(path)).toThrow(/bad\.failover\.json is corrupt \(not JSON/);
    writeFileSync(path, JSON.stringify({ lastMaster: 5, epoch: -1, rebuildNeeded: "yes" }));
    expect(() => readFailoverState(path)).toThrow(/lastMaster: .*; epoch: .*; rebuildNeeded: /);
  });
});
