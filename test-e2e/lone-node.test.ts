/**
 * Guide 3.2.2's first node: one host with an empty members file founds a cluster of one and runs
 * as its master. Its membership holds a lease with itself as the only voter; that lease must be a
 * finite time renewed by its own heartbeat, never "forever", or the engine arms its lease timer at
 * Infinity and Node prints a TimeoutOverflowWarning every millisecond for the agent's whole life.
 */
import { spawn } from "node:child_process";
import { mkdirSync, openSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AGENT_BIN, AgentProcess, type EfmCluster, Suite, sleep } from "./harness.ts";

const suite = new Suite();
let efm: EfmCluster;
let errFile: string;
const A = "127.0.19.11";

beforeAll(async () => {
  await suite.init();
  const lab = await suite.lab({
    name: "e2e-lone",
    mode: "loopback",
    hosts: [{ name: "a", role: "master" }],
    port: 15419,
    addressBase: "127.0.19",
    runDir: "/tmp/efm-e2e-lone",
  });
  efm = suite.efmCluster(lab, "acctg", { agentPort: 17590, adminPort: 17690 });
  // The first node of a new cluster: an empty members file (guide 3.2.2).
  writeFileSync(efm.files.a!.nodesFile, "");
  // The harness sends stdout and stderr to one file; here stderr gets its own, to prove it stays empty.
  const dir = efm.agentDir("a");
  mkdirSync(dir, { recursive: true });
  const outFile = join(dir, "acctg.out");
  errFile = join(dir, "acctg.err");
  writeFileSync(outFile, "");
  writeFileSync(errFile, "");
  const child = spawn(process.execPath, [AGENT_BIN, "start", "acctg", "--config-dir", efm.files.a!.dir], {
    env: efm.env("a"),
    stdio: ["ignore", openSync(outFile, "a"), openSync(errFile, "a")],
  });
  efm.agents.set("a", new AgentProcess("a", child, outFile));
});

afterAll(async () => {
  await suite.cleanup();
});

describe("a first node with an empty members file (guide 3.2.2)", () => {
  it("runs as master for a minute with nothing on stderr", async () => {
    await suite.smtp.waitFor(`Master agent running on ${A} for cluster acctg`, 60_000);
    await efm.waitTypes("a", { a: "Master" });
    // Long enough for dozens of lease renewals and lease timers at the fast settings
    // (jgroups.timeout 500 ms: a heartbeat every 250 ms, L = 1.5 s).
    await sleep(60_000);
    const agent = efm.agents.get("a")!;
    expect(agent.running).toBe(true);
    // The size and the first lines say enough (the bug wrote megabytes a minute).
    const stderr = readFileSync(errFile, "utf8");
    expect({ bytes: stderr.length, head: stderr.slice(0, 400) }).toEqual({ bytes: 0, head: "" });
    const s = await efm.waitTypes("a", { a: "Master" });
    expect(s.nodes[A]?.db).toBe("UP");
    // Still the master it was: the lease never lapsed, so it never fenced itself.
    expect(suite.smtp.subjects().filter((m) => m.includes("disconnected from master"))).toEqual([]);
  });
});
