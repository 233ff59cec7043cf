/**
 * One 3-host cluster, two stories in sequence: the master database is killed (guide 8.1: the most
 * up-to-date standby is promoted, the other follows it, the old master is brought back with
 * `efm resume`), then the new master's agent is killed with its database running (guide 8.3: no
 * failover, the cluster is told the master node left).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type EfmCluster, Suite, sleep, threeHosts, waitUntil } from "./harness.ts";

const suite = new Suite();
let efm: EfmCluster;
const A = "127.0.6.11";
const B = "127.0.6.12";
const C = "127.0.6.13";

beforeAll(async () => {
  await suite.init();
  const lab = await suite.lab({
    name: "e2e-failover",
    mode: "loopback",
    hosts: threeHosts(),
    port: 15406,
    addressBase: "127.0.6",
    runDir: "/tmp/efm-e2e-failover",
  });
  efm = suite.efmCluster(lab, "acctg", { agentPort: 17510, adminPort: 17610 });
  await efm.startAll(["a", "b", "c"], { a: "Master", b: "Standby", c: "Standby" });
});

afterAll(async () => {
  await suite.cleanup();
});

/** The host a standby streams from, or null when its WAL receiver is not streaming. */
async function senderHost(host: string): Promise<string | null> {
  const rows = await efm.lab.psql(
    host,
    "select sender_host from pg_stat_wal_receiver where status = 'streaming'",
  );
  return (rows[0]?.sender_host as string | undefined) ?? null;
}

describe("kill -9 of the master postmaster (guide 8.1)", () => {
  it("promotes the most up-to-date standby, the other follows it, the old master goes Idle", async () => {
    // c first in the priority list, but behind b: the WAL position must win over the priority.
    await efm.waitStatus("a", "both standbys listed", (s) => s.failoverpriority.length === 2);
    const prio = await efm.efm("a", ["set-priority", "acctg", C, "1"]);
    expect(prio.code, prio.stdout).toBe(0);
    await efm.waitStatus("b", "c first in the priority list", (s) => s.failoverpriority[0] === C);

    // Hold c back: point its WAL receiver at an address where nothing listens.
    const [conninfo] = await efm.lab.psql("c", "show primary_conninfo");
    const original = String(conninfo?.primary_conninfo ?? "");
    expect(original).toContain(`host=${A}`);
    const broken = original.replace(`host=${A}`, "host=127.0.6.99");
    await efm.lab.psql("c", `alter system set primary_conninfo = '${broken.replace(/'/g, "''")}'`);
    await efm.lab.psql("c", "select pg_reload_conf()");
    expect(await waitUntil(async () => (await senderHost("c")) === null, 30_000)).toBe(true);
    const lsn = await efm.lab.write("a", 50);
    await efm.lab.waitReplayed("b", lsn);
    const rows = await efm.lab.count("a");

    const mark = suite.smtp.mark();
    await efm.lab.killDb("a");
    await suite.smtp.waitFor("Failover has completed on cluster acctg", 120_000, mark);
    expect(suite.smtp.since(mark, "Master database failure for cluster acctg").length).toBeGreaterThan(0);

    await efm.waitTypes("b", { a: "Idle", b: "Master", c: "Standby" });
    expect(await efm.lab.inRecovery("b")).toBe(false);
    expect(await efm.lab.count("b")).toBe(rows);
    // The other standby was reconfigured to stream from the new master.
    const followed = await waitUntil(async () => (await senderHost("c")) === B, 60_000);
    expect(followed, efm.logTails()).toBe(true);
    const after = await efm.lab.write("b", 3);
    await efm.lab.waitReplayed("c", after);
    const s = await efm.status("c");
    expect(s.json?.nodes[A]?.type).toBe("Idle");
    expect(s.json?.failoverpriority).toEqual([C]);
  });

  it("brings the old master back as a standby of the new master with efm resume", async () => {
    const how = await efm.lab.makeStandbyOf("a", "b");
    expect(["follow", "rewind", "rebuild"]).toContain(how);
    expect(await senderHost("a")).toBe(B);
    const r = await efm.efm("a", ["resume", "acctg"]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    await efm.waitTypes("c", { a: "Standby", b: "Master", c: "Standby" });
    const lsn = await efm.lab.write("b", 2);
    await efm.lab.waitReplayed("a", lsn);
    await efm.waitStatus(
      "a",
      "a healthy cluster",
      (st, code) => code === 0 && st.failoverpriority.length === 2,
    );
  });
});

describe("kill -9 of the master agent with its database running (guide 8.3)", () => {
  it("does not fail over and notifies that the master node left", async () => {
    const mark = suite.smtp.mark();
    await efm.kill("b", "SIGKILL");
    await suite.smtp.waitFor("Cluster acctg notified that master node has left", 60_000, mark);
    const s = await efm.waitStatus(
      "a",
      "master agent down",
      (st) => st.nodes[B] === undefined || st.nodes[B]?.agent !== "UP",
    );
    expect(s.nodes[A]?.type).toBe("Standby");
    expect(s.nodes[C]?.type).toBe("Standby");
    // Several detection rounds later the master database is still the only master.
    await sleep(8000);
    expect(await efm.lab.inRecovery("b")).toBe(false);
    expect(await efm.lab.inRecovery("a")).toBe(true);
    expect(await efm.lab.inRecovery("c")).toBe(true);
    expect(suite.smtp.since(mark, "Failover has completed").length).toBe(0);
    expect(suite.smtp.since(mark, "Promotion has started").length).toBe(0);
    // The coordinator, which ran the check, says why nothing happens.
    const seen = await Promise.all(["a", "c"].map((h) => efm.status(h)));
    expect(seen.flatMap((x) => x.json?.messages ?? [])).toContain(
      "Failover is disabled until the master agent is restarted.",
    );
    // Writes still go to the old master and reach the standbys.
    const lsn = await efm.lab.write("b", 1);
    await efm.lab.waitReplayed("a", lsn);
  });

  it("restarting the master agent re-enables failover", async () => {
    const mark = suite.smtp.mark();
    efm.start("b");
    await suite.smtp.waitFor(`Master agent running on ${B} for cluster acctg`, 60_000, mark);
    await efm.waitTypes("a", { a: "Standby", b: "Master", c: "Standby" });
    for (const h of ["a", "b", "c"]) {
      await efm.waitStatus(h, "failover enabled again", (st, code) => code === 0 && st.messages.length === 0);
    }
  });
});
