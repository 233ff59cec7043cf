/**
 * A master, a standby and a dedicated witness (guide 2.x, 8.5): the witness gives the two
 * database nodes their majority. Losing the witness agent is reported and changes nothing;
 * losing the master database promotes the standby with the witness's confirmation.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type EfmCluster, Suite } from "./harness.ts";

const suite = new Suite();
let efm: EfmCluster;
const W = "127.0.13.13";

beforeAll(async () => {
  await suite.init();
  const lab = await suite.lab({
    name: "e2e-witness",
    mode: "loopback",
    hosts: [
      { name: "a", role: "master" },
      { name: "b", role: "standby" },
      { name: "w", role: "witness" },
    ],
    port: 15413,
    addressBase: "127.0.13",
    runDir: "/tmp/efm-e2e-witness",
  });
  efm = suite.efmCluster(lab, "acctg", { agentPort: 17550, adminPort: 17650 });
  await efm.startAll(["a", "b", "w"], { a: "Master", b: "Standby", w: "Witness" });
});

afterAll(async () => {
  await suite.cleanup();
});

describe("a cluster with a dedicated witness", () => {
  it("reports a healthy cluster from the witness, which has no database of its own", async () => {
    const r = await efm.efm("w", ["cluster-status", "acctg"]);
    expect(r.code, r.stdout).toBe(0);
    expect(r.stdout).toMatch(new RegExp(`^ Witness\\s+${W.replace(/\./g, "\\.")}\\s+UP\\s+N/A`, "m"));
    expect(r.stdout).toContain("Standby database(s) in sync with master. It is safe to promote.");
  });

  it("reports a lost witness agent and keeps the master (8.5); the witness rejoins", async () => {
    const mark = suite.smtp.mark();
    await efm.kill("w", "SIGKILL");
    await suite.smtp.waitFor("Witness failure for cluster acctg", 60_000, mark);
    const s = await efm.status("a");
    expect(s.json?.nodes["127.0.13.11"]?.type).toBe("Master");
    expect(await efm.lab.inRecovery("a")).toBe(false);
    efm.start("w");
    await efm.waitTypes("a", { a: "Master", b: "Standby", w: "Witness" });
  });

  it("promotes the standby when the master database fails, with the witness's confirmation (8.1)", async () => {
    const lsn = await efm.lab.write("a", 10);
    await efm.lab.waitReplayed("b", lsn);
    const rows = await efm.lab.count("a");
    const mark = suite.smtp.mark();
    await efm.lab.killDb("a");
    await suite.smtp.waitFor("Failover has completed on cluster acctg", 120_000, mark);
    await efm.waitTypes("w", { a: "Idle", b: "Master", w: "Witness" });
    expect(await efm.lab.inRecovery("b")).toBe(false);
    expect(await efm.lab.count("b")).toBe(rows);
  });
});
