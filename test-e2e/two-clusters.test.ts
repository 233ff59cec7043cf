/**
 * Guide 4.3: two clusters, `acctg` and `sales`, with agents on the same three hosts (different
 * agent and admin ports, their own databases, shared lock/log/run/state folders). A failover in
 * acctg leaves sales exactly as it was.
 */
import { existsSync, rmSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type EfmCluster, Suite, threeHosts, waitUntil } from "./harness.ts";

const suite = new Suite();
const AGENTS = "/tmp/efm-e2e-two-agents";
let acctg: EfmCluster;
let sales: EfmCluster;
const A = "127.0.8.11";

beforeAll(async () => {
  rmSync(AGENTS, { recursive: true, force: true });
  await suite.init();
  const base = { mode: "loopback" as const, hosts: threeHosts(), addressBase: "127.0.8" };
  const acctgLab = await suite.lab({
    ...base,
    name: "e2e-acctg",
    port: 15408,
    runDir: "/tmp/efm-e2e-two-acctg",
  });
  const salesLab = await suite.lab({
    ...base,
    name: "e2e-sales",
    port: 15407,
    runDir: "/tmp/efm-e2e-two-sales",
  });
  acctg = suite.efmCluster(acctgLab, "acctg", { agentPort: 17530, adminPort: 17630, agentRoot: AGENTS });
  sales = suite.efmCluster(salesLab, "sales", { agentPort: 17540, adminPort: 17640, agentRoot: AGENTS });
  const want = { a: "Master", b: "Standby", c: "Standby" };
  await Promise.all([acctg.startAll(["a", "b", "c"], want), sales.startAll(["a", "b", "c"], want)]);
});

afterAll(async () => {
  await suite.cleanup();
  rmSync(AGENTS, { recursive: true, force: true });
});

async function senderHost(c: EfmCluster, host: string): Promise<string | null> {
  const rows = await c.lab.psql(
    host,
    "select sender_host from pg_stat_wal_receiver where status = 'streaming'",
  );
  return (rows[0]?.sender_host as string | undefined) ?? null;
}

describe("two clusters on the same hosts (guide 4.3)", () => {
  it("run side by side, each healthy, with one lock file per cluster on each host", async () => {
    for (const c of [acctg, sales]) {
      await c.waitStatus(
        "b",
        `${c.name} healthy`,
        (s, code) => code === 0 && s.failoverpriority.length === 2,
      );
      const r = await c.efm("c", ["cluster-status", c.name]);
      expect(r.code).toBe(0);
      expect(r.stdout).toContain(`Cluster Status: ${c.name}\n`);
    }
    // Each agent answers on its own admin port; the hosts' shared lock folder holds both locks.
    expect(acctg.files.a?.adminPort).not.toBe(sales.files.a?.adminPort);
    for (const h of ["a", "b", "c"]) {
      expect(existsSync(`${AGENTS}/${h}/acctg.lock`)).toBe(true);
      expect(existsSync(`${AGENTS}/${h}/sales.lock`)).toBe(true);
    }
  });

  it("a failover in acctg leaves sales untouched", async () => {
    const salesLsn = await sales.lab.write("a", 10);
    await sales.lab.waitReplayed("b", salesLsn);
    await sales.lab.waitReplayed("c", salesLsn);
    const lsn = await acctg.lab.write("a", 10);
    await acctg.lab.waitReplayed("b", lsn);
    await acctg.lab.waitReplayed("c", lsn);

    const mark = suite.smtp.mark();
    await acctg.lab.killDb("a");
    await suite.smtp.waitFor("Failover has completed on cluster acctg", 120_000, mark);
    const after = await acctg.waitStatus(
      "b",
      "acctg failed over",
      (s) => s.nodes[A]?.type === "Idle" && Object.values(s.nodes).some((n) => n.type === "Master"),
    );
    const newMaster = Object.entries(after.nodes).find(([, n]) => n.type === "Master")?.[0];
    expect([acctg.address("b"), acctg.address("c")]).toContain(newMaster);

    // sales: same master, same standbys streaming from it, healthy, no failure mail.
    await sales.waitTypes("a", { a: "Master", b: "Standby", c: "Standby" });
    expect(await sales.lab.inRecovery("a")).toBe(false);
    for (const h of ["b", "c"]) {
      expect(await sales.lab.inRecovery(h)).toBe(true);
      expect(await waitUntil(async () => (await senderHost(sales, h)) === A, 10_000)).toBe(true);
    }
    const s = await sales.status("c");
    expect(s.code).toBe(0);
    expect(s.json?.messages).toEqual([]);
    const salesMail = suite.smtp.mails.slice(mark).filter((m) => m.subject.includes("sales"));
    expect(salesMail.map((m) => m.subject)).toEqual([]);
    const lsn2 = await sales.lab.write("a", 1);
    await sales.lab.waitReplayed("b", lsn2);
  });
});
