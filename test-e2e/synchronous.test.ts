/**
 * synchronous.mode on real PostgreSQL (issue 13's zero-loss guard): the master agent keeps
 * synchronous_standby_names at ANY 1 over its running standbys, named as their WAL receivers
 * name themselves (the lab's application_name), and cluster-status shows the published set.
 * A master, a standby and a witness: with the standby's agent stopped, the master is still in a
 * majority view (itself and the witness), so mode on relaxes the setting to none while strict
 * keeps it (commits then wait for the standby).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Cluster } from "@efm/lab";
import { type EfmCluster, Suite, waitUntil } from "./harness.ts";

const suite = new Suite();
let lab: Cluster;
const B = "127.0.32.12";

beforeAll(async () => {
  await suite.init();
  lab = await suite.lab({
    name: "e2e-sync",
    mode: "loopback",
    hosts: [
      { name: "a", role: "master" },
      { name: "b", role: "standby" },
      { name: "w", role: "witness" },
    ],
    port: 32413,
    addressBase: "127.0.32",
    runDir: "/tmp/efm-e2e-sync",
  });
});

afterAll(async () => {
  await suite.cleanup();
});

const setting = async (host: string): Promise<string> =>
  String((await lab.psql(host, "SHOW synchronous_standby_names"))[0]?.synchronous_standby_names);

/** Wait until the master's setting is `want` (it is set by the agent asynchronously). */
async function waitSetting(efm: EfmCluster, host: string, want: string): Promise<void> {
  const ok = await waitUntil(async () => (await setting(host)) === want, 30_000, 200);
  if (!ok)
    throw new Error(
      `synchronous_standby_names on ${host} is '${await setting(host)}', not '${want}'\n${efm.logTails()}`,
    );
}

/** Stop b's agent (it leaves the cluster) and wait until the master's view no longer has it. */
async function stopStandbyAgent(efm: EfmCluster): Promise<void> {
  await efm.kill("b", "SIGTERM");
  await efm.waitStatus("a", "b gone", (s) => s.nodes[B]?.agent !== "UP", 60_000);
}

describe("synchronous.mode=on", () => {
  let efm: EfmCluster;
  beforeAll(async () => {
    efm = suite.efmCluster(lab, "acctg", {
      agentPort: 32550,
      adminPort: 32650,
      properties: { "synchronous.mode": "on" },
    });
    await efm.startAll(["a", "b", "w"], { a: "Master", b: "Standby", w: "Witness" });
  });
  afterAll(async () => {
    await efm.killAll();
  });

  it("the master counts its standby as the synchronous copy, and cluster-status names it", async () => {
    await waitSetting(efm, "a", 'ANY 1 ("b")');
    const lsn = await lab.write("a", 5);
    await lab.waitReplayed("b", lsn);
    const rep = await lab.psql("a", "SELECT application_name, sync_state FROM pg_stat_replication");
    expect(rep).toEqual([{ application_name: "b", sync_state: "quorum" }]);
    const r = await efm.efm("w", ["cluster-status", "acctg"]);
    expect(r.stdout).toContain(`Synchronous standbys (the only ones a failover may promote): ${B}.`);
  });

  it("with the standby's agent gone, the master in a majority view relaxes the setting to none", async () => {
    await stopStandbyAgent(efm);
    await waitSetting(efm, "a", "");
    // Commits no longer wait for a standby.
    await lab.write("a", 1);
  });

  it("the standby's agent back: the setting counts it again", async () => {
    efm.start("b");
    await efm.waitTypes("a", { a: "Master", b: "Standby", w: "Witness" });
    await waitSetting(efm, "a", 'ANY 1 ("b")');
  });
});

describe("synchronous.mode=strict", () => {
  let efm: EfmCluster;
  beforeAll(async () => {
    efm = suite.efmCluster(lab, "strict", {
      agentPort: 32560,
      adminPort: 32660,
      properties: { "synchronous.mode": "strict" },
    });
    await efm.startAll(["a", "b", "w"], { a: "Master", b: "Standby", w: "Witness" });
  });
  afterAll(async () => {
    await efm.killAll();
  });

  it("with the standby's agent gone the setting stays: commits wait for the standby", async () => {
    await waitSetting(efm, "a", 'ANY 1 ("b")');
    await stopStandbyAgent(efm);
    // The master decided in the step that saw b leave (a strict master keeps the setting:
    // nothing to do), and cluster-status from it reflects that step.
    expect(await setting("a")).toBe('ANY 1 ("b")');
    const r = await efm.efm("a", ["cluster-status", "strict"]);
    expect(r.stdout).toContain(`Synchronous standbys (the only ones a failover may promote): ${B}.`);
    // The standby's database still streams, so commits still complete.
    await lab.write("a", 1);
  });
});
