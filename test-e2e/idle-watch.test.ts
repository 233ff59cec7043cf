/**
 * Issue 13: an Idle agent keeps watching its database. After a failover the old master's agent is
 * Idle with its database fenced (down). Started by hand as a primary while the new master runs,
 * that database is fenced again by its own agent (never left writable beside the master); started
 * in recovery it is only reported, and `efm resume` brings the agent back as a standby.
 */
import { existsSync, rmSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type EfmCluster, Suite, waitUntil } from "./harness.ts";

const suite = new Suite();
let efm: EfmCluster;
const A = "127.0.33.11";
const B = "127.0.33.12";
const FENCED_MAIL = `Database on ${A} fenced: another master runs in cluster acctg`;

beforeAll(async () => {
  await suite.init();
  const lab = await suite.lab({
    name: "e2e-idle-watch",
    mode: "loopback",
    hosts: [
      { name: "a", role: "master" },
      { name: "b", role: "standby" },
      { name: "c", role: "standby" },
    ],
    port: 31432,
    addressBase: "127.0.33",
    runDir: "/tmp/efm-s2-idle-watch",
  });
  efm = suite.efmCluster(lab, "acctg", { agentPort: 31500, adminPort: 31600 });
  await efm.startAll(["a", "b", "c"], { a: "Master", b: "Standby", c: "Standby" });
  // b is promoted: c out of the priority list, so the failover has one outcome
  await efm.waitStatus("a", "both standbys listed", (s) => s.failoverpriority.length === 2);
  const prio = await efm.efm("a", ["set-priority", "acctg", B, "1"]);
  expect(prio.code, prio.stdout + prio.stderr).toBe(0);
}, 240_000);

afterAll(async () => {
  await suite.cleanup();
});

describe("an Idle agent watches its database", () => {
  it("the old master goes Idle after a failover, its database fenced", async () => {
    const lsn = await efm.lab.write("a", 5);
    await efm.lab.waitReplayed("b", lsn);
    await efm.lab.waitReplayed("c", lsn);
    const mark = suite.smtp.mark();
    await efm.lab.killDb("a");
    await suite.smtp.waitFor("Failover has completed on cluster acctg", 120_000, mark);
    await efm.waitTypes("a", { a: "Idle", b: "Master", c: "Standby" });
    expect(await efm.lab.inRecovery("b")).toBe(false);
    expect(efm.lab.isRunning("a")).toBe(false);
  });

  it("fences the database when it is started by hand as a primary beside the running master", async () => {
    const data = efm.lab.host("a").dataDir!;
    // What an operator might do: drop the fence's standby settings and start the server.
    for (const f of ["standby.signal", "recovery.signal"]) rmSync(join(data, f), { force: true });
    const mark = suite.smtp.mark();
    // (whether it answers as a primary is not asked here: the agent may fence it any moment now)
    await efm.lab.startDb("a");
    await suite.smtp.waitFor(FENCED_MAIL, 60_000, mark);
    // The agent stops it (confirmed down) and writes standby settings naming the master again.
    const down = await waitUntil(async () => !efm.lab.isRunning("a"), 60_000);
    expect(down, efm.logTails()).toBe(true);
    expect(existsSync(join(data, "standby.signal"))).toBe(true);
    // b stayed the one master, and every agent still sees a Idle
    expect(await efm.lab.inRecovery("b")).toBe(false);
    await efm.waitTypes("c", { a: "Idle", b: "Master", c: "Standby" });
  });

  it("only reports a database started in recovery; efm resume brings the agent back as a standby", async () => {
    // The fenced database is down: the agent says so in its status.
    await efm.waitStatus("a", "a's database reported down", (s) => s.nodes[A]?.db === "DOWN");
    const mark = suite.smtp.mark();
    const how = await efm.lab.makeStandbyOf("a", "b");
    expect(["follow", "rewind", "rebuild"]).toContain(how);
    // Seen running by the watch (reported UP), which therefore also saw it in recovery: no fence.
    await efm.waitStatus(
      "b",
      "a's database reported up",
      (s) => s.nodes[A]?.db === "UP" && s.nodes[A]?.type === "Idle",
    );
    expect(suite.smtp.since(mark, FENCED_MAIL)).toEqual([]);
    expect(efm.lab.isRunning("a")).toBe(true);
    expect(await efm.lab.inRecovery("a")).toBe(true);
    const r = await efm.efm("a", ["resume", "acctg"]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    await efm.waitTypes("c", { a: "Standby", b: "Master", c: "Standby" });
    const lsn = await efm.lab.write("b", 2);
    await efm.lab.waitReplayed("a", lsn);
  });
});
