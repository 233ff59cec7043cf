/**
 * The cluster commands of guide 4.1 / 5.3 on one 3-host cluster, in the order an operator would
 * use them: add-node with a priority reorders the standbys, promote switches the master over
 * (4.1.4), remove-node keeps a restarted agent out (4.1.7), stop-cluster stops every agent and
 * leaves the members files alone (4.1.5).
 */
import { existsSync, readFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type EfmCluster, Suite, sleep, threeHosts, waitUntil } from "./harness.ts";

const suite = new Suite();
let efm: EfmCluster;
const A = "127.0.7.11";
const B = "127.0.7.12";
const C = "127.0.7.13";

beforeAll(async () => {
  await suite.init();
  const lab = await suite.lab({
    name: "e2e-commands",
    mode: "loopback",
    hosts: threeHosts(),
    port: 15407,
    addressBase: "127.0.7",
    runDir: "/tmp/efm-e2e-commands",
  });
  efm = suite.efmCluster(lab, "acctg", { agentPort: 17520, adminPort: 17620 });
  await efm.startAll(["a", "b", "c"], { a: "Master", b: "Standby", c: "Standby" });
  await efm.waitStatus("a", "both standbys listed", (s) => s.failoverpriority.length === 2);
});

afterAll(async () => {
  await suite.cleanup();
});

/** The line under "Standby priority host list:" in `efm cluster-status`. */
async function priorityLine(host: string): Promise<string> {
  const r = await efm.efm(host, ["cluster-status", "acctg"]);
  const lines = r.stdout.split("\n");
  return lines[lines.indexOf("Standby priority host list:") + 1] ?? "";
}

async function senderHost(host: string): Promise<string | null> {
  const rows = await efm.lab.psql(
    host,
    "select sender_host from pg_stat_wal_receiver where status = 'streaming'",
  );
  return (rows[0]?.sender_host as string | undefined) ?? null;
}

describe("cluster commands", () => {
  it("add-node with a priority changes the order of the Standby priority host list", async () => {
    const first = await efm.efm("b", ["add-node", "acctg", C, "1"]);
    expect(first.code, first.stdout + first.stderr).toBe(0);
    await efm.waitStatus("a", "c first", (s) => s.failoverpriority.join(" ") === `${C} ${B}`);
    expect(await priorityLine("a")).toBe(` ${C} ${B}`);

    const second = await efm.efm("c", ["add-node", "acctg", B, "1"]);
    expect(second.code, second.stdout + second.stderr).toBe(0);
    await efm.waitStatus("c", "b first", (s) => s.failoverpriority.join(" ") === `${B} ${C}`);
    expect(await priorityLine("b")).toBe(` ${B} ${C}`);

    // Back to c first: the promotion below must pick it among equally up-to-date standbys.
    const third = await efm.efm("a", ["add-node", "acctg", C, "1"]);
    expect(third.code).toBe(0);
    await efm.waitStatus("b", "c first again", (s) => s.failoverpriority.join(" ") === `${C} ${B}`);
  });

  it("promote refuses without a terminal when no standby is up to date", async () => {
    // Both standbys stop receiving WAL (their receivers point where nothing listens); then the
    // master writes, so neither is in sync.
    const saved: Record<string, string> = {};
    for (const h of ["b", "c"]) {
      const [row] = await efm.lab.psql(h, "show primary_conninfo");
      saved[h] = String(row?.primary_conninfo ?? "");
      const broken = saved[h].replace(`host=${A}`, "host=127.0.7.99").replace(/'/g, "''");
      await efm.lab.psql(h, `alter system set primary_conninfo = '${broken}'`);
      await efm.lab.psql(h, "select pg_reload_conf()");
    }
    expect(
      await waitUntil(
        async () => (await senderHost("b")) === null && (await senderHost("c")) === null,
        30_000,
      ),
    ).toBe(true);
    await efm.lab.write("a", 10);
    const r = await efm.efm("b", ["promote", "acctg"]);
    expect(r.code).not.toBe(0);
    expect(r.stdout).toContain("There is no standby that is up to date with the master");
    expect(r.stdout).toContain("Not promoting.");
    const s = await efm.status("a");
    expect(s.json?.nodes[A]?.type).toBe("Master");
    expect(await efm.lab.inRecovery("b")).toBe(true);
    expect(await efm.lab.inRecovery("c")).toBe(true);
    // Streaming again: the standbys catch up.
    for (const h of ["b", "c"]) {
      await efm.lab.psql(h, `alter system set primary_conninfo = '${saved[h]!.replace(/'/g, "''")}'`);
      await efm.lab.psql(h, "select pg_reload_conf()");
    }
    await efm.lab.waitStreaming("a", ["b", "c"]);
  });

  it("promote switches the master over as guide 4.1.4 describes", async () => {
    const lsn = await efm.lab.write("a", 20);
    await efm.lab.waitReplayed("b", lsn);
    await efm.lab.waitReplayed("c", lsn);
    const rows = await efm.lab.count("a");
    const mark = suite.smtp.mark();
    const r = await efm.efm("b", ["promote", "acctg"]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toContain("Promote command accepted by local agent.");

    await efm.waitTypes("b", { a: "Idle", b: "Standby", c: "Master" });
    expect(await efm.lab.inRecovery("c")).toBe(false);
    expect(await efm.lab.count("c")).toBe(rows);
    // Writes work on the new master and reach the remaining standby, which now follows it.
    const after = await efm.lab.write("c", 5);
    expect(await waitUntil(async () => (await senderHost("b")) === C, 60_000), efm.logTails()).toBe(true);
    await efm.lab.waitReplayed("b", after);
    // The old master is fenced (4.1.4: recovery configuration written): it can only come back
    // as a standby of the new master.
    const dataDir = efm.lab.host("a").dataDir ?? "";
    expect(existsSync(`${dataDir}/standby.signal`)).toBe(true);
    expect(readFileSync(`${dataDir}/postgresql.auto.conf`, "utf8")).toMatch(
      new RegExp(`primary_conninfo = '[^']*host=${C.replace(/\./g, "\\.")}`),
    );
    expect(suite.smtp.since(mark, "Failover has completed on cluster acctg").length).toBeGreaterThan(0);
    const s = await efm.status("b");
    expect(s.json?.failoverpriority).toEqual([B]);
    expect(s.json?.nodes[A]).toMatchObject({ type: "Idle", agent: "UP" });
  });

  it("remove-node keeps the node out once its agent restarts", async () => {
    const r = await efm.efm("c", ["remove-node", "acctg", B]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    await efm.waitStatus("a", "b no longer allowed", (s) => !s.allowednodes.includes(B));
    // remove-node does not stop a running agent (4.1.7): stop and restart it. SIGTERM leaves
    // cleanly: the others say so and drop it from their members files (4.1.5).
    const mark = suite.smtp.mark();
    await efm.kill("b", "SIGTERM");
    await suite.smtp.waitFor(`Standby agent exited on ${B} for cluster acctg`, 30_000, mark);
    for (const h of ["a", "c"]) {
      const dropped = await waitUntil(
        () => !readFileSync(efm.files[h]!.nodesFile, "utf8").includes(`${B}:`),
        30_000,
      );
      expect(dropped, `${h}.nodes still lists ${B}`).toBe(true);
    }
    const again = efm.start("b");
    // The restarted agent is refused: its start fails, saying why, and it never shows up.
    const exited = await Promise.race([again.exited, sleep(60_000).then(() => null)]);
    expect(exited, efm.logTails()).not.toBeNull();
    expect(exited?.code).not.toBe(0);
    expect(readFileSync(again.outFile, "utf8")).toContain("this node is not allowed to join cluster acctg");
    const s = await efm.status("c");
    expect(s.json?.nodes[B]?.agent).not.toBe("UP");
    expect(s.json?.allowednodes).not.toContain(B);
    expect(s.json?.nodes[C]?.type).toBe("Master");
  });

  it("stop-cluster stops every agent and leaves the members files unchanged", async () => {
    await efm.kill("b", "SIGKILL");
    const before = Object.fromEntries(
      ["a", "b", "c"].map((h) => [h, readFileSync(efm.files[h]!.nodesFile, "utf8")]),
    );
    const r = await efm.efm("c", ["stop-cluster", "acctg"]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    for (const h of ["a", "c"]) {
      const agent = efm.agents.get(h)!;
      const exited = await Promise.race([agent.exited, sleep(60_000).then(() => null)]);
      expect(exited, `agent ${h} did not exit\n${efm.logTails()}`).not.toBeNull();
      expect(exited?.code).toBe(0);
    }
    for (const h of ["a", "b", "c"]) expect(readFileSync(efm.files[h]!.nodesFile, "utf8")).toBe(before[h]);
    // With no agent left the CLI says so and fails.
    const none = await efm.efm("c", ["cluster-status", "acctg"]);
    expect(none.code).not.toBe(0);
    expect(none.stdout + none.stderr).toContain("is the local agent running?");
  });
});
