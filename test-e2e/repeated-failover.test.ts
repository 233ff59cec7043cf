/**
 * Issue 11: a master that became master by promotion must watch its database like any other.
 * One 4-host cluster (a master, three standbys), three stories in sequence:
 *  0. `efm promote` when no standby can be promoted (the helper cannot run on any of them) is
 *     refused before the master is asked to step down: the master keeps serving, unfenced;
 *  1. kill -9 of the master's postmaster three times in a row: each time a standby is promoted,
 *     takes writes, and every agent's status shows the dead database (and the dead node's own
 *     node-status-json says it is not healthy);
 *  2. two of the dead hosts are rebuilt as standbys (the lab's tool, not the product's rejoin),
 *     `efm promote` switches the master over, and kill -9 of that promoted master fails over again.
 */
import { existsSync, renameSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type EfmCluster, Suite } from "./harness.ts";

const suite = new Suite();
let efm: EfmCluster;
const HOSTS = ["a", "b", "c", "d"] as const;

beforeAll(async () => {
  await suite.init();
  const lab = await suite.lab({
    name: "e2e-repeated-failover",
    mode: "loopback",
    hosts: [
      { name: "a", role: "master" },
      { name: "b", role: "standby" },
      { name: "c", role: "standby" },
      { name: "d", role: "standby" },
    ],
    port: 15414,
    addressBase: "127.0.14",
    runDir: "/tmp/efm-e2e-repeated-failover",
  });
  efm = suite.efmCluster(lab, "acctg", { agentPort: 17560, adminPort: 17660 });
  await efm.startAll([...HOSTS], { a: "Master", b: "Standby", c: "Standby", d: "Standby" });
  await efm.waitStatus("a", "every standby listed", (s) => s.failoverpriority.length === 3);
});

afterAll(async () => {
  await suite.cleanup();
});

const addr = (h: string) => efm.address(h);

/**
 * Kill the master's postmaster with every standby caught up; wait for the failover and return
 * the standby that became master, after checking it holds every row, takes writes, and that
 * the dead database is shown as such.
 */
async function killMasterAndFailOver(master: string, standbys: readonly string[]): Promise<string> {
  const lsn = await efm.lab.write(master, 10);
  for (const s of standbys) await efm.lab.waitReplayed(s, lsn);
  const rows = await efm.lab.count(master);

  const mark = suite.smtp.mark();
  await efm.lab.killDb(master);
  await suite.smtp.waitFor("Failover has completed on cluster acctg", 120_000, mark);
  expect(suite.smtp.since(mark, "Master database failure for cluster acctg").length).toBeGreaterThan(0);

  // Seen from a surviving standby's agent: exactly one of the standbys is master, the dead
  // master's node is Idle with its database DOWN.
  const seen = await efm.waitStatus(standbys[0] as string, "a new master; the dead database shown", (s) => {
    const masters = standbys.filter((h) => s.nodes[addr(h)]?.type === "Master");
    const dead = s.nodes[addr(master)];
    return masters.length === 1 && dead?.type === "Idle" && dead.db === "DOWN";
  });
  const promoted = standbys.find((h) => seen.nodes[addr(h)]?.type === "Master") as string;
  expect(await efm.lab.inRecovery(promoted)).toBe(false);
  expect(await efm.lab.count(promoted)).toBe(rows);
  for (const other of standbys.filter((h) => h !== promoted)) {
    expect(await efm.lab.inRecovery(other)).toBe(true);
  }
  await efm.lab.write(promoted, 3);
  expect(await efm.lab.count(promoted)).toBe(rows + 3);

  // The dead node's own agent reports itself unhealthy (exit code 1, "healthy": false).
  const node = await efm.efm(master, ["node-status-json", "acctg"]);
  expect(node.code, node.stdout + node.stderr).toBe(1);
  expect(JSON.parse(node.stdout)).toMatchObject({ healthy: false, db: "DOWN" });
  return promoted;
}

/** The data directory's PG_VERSION: the running server never reads it again, the helper checks it. */
const pgVersion = (h: string) => join(efm.lab.host(h).dataDir ?? "", "PG_VERSION");

describe("efm promote checks the standby before fencing the master (issue 11)", () => {
  it("refuses, with the master untouched, when no standby can be promoted", async () => {
    const lsn = await efm.lab.write("a", 10);
    for (const h of ["b", "c", "d"]) await efm.lab.waitReplayed(h, lsn);
    // db.user may not run pg_promote(), so a promotion would go through the privileged helper,
    // which refuses a directory without PG_VERSION, as it would refuse one it cannot own: the
    // promotion path is broken on every standby, their databases run on.
    const grant = "EXECUTE ON FUNCTION pg_promote(boolean, integer)";
    await efm.lab.psql("a", `REVOKE ${grant} FROM ${efm.lab.efmUser}`);
    const revoked = await efm.lab.write("a", 1);
    for (const h of ["b", "c", "d"]) await efm.lab.waitReplayed(h, revoked);
    for (const h of ["b", "c", "d"]) renameSync(pgVersion(h), `${pgVersion(h)}.hidden`);
    try {
      const mark = suite.smtp.mark();
      const r = await efm.efm("b", ["promote", "acctg", "--force"]);
      expect(r.code, r.stdout + r.stderr).not.toBe(0);
      expect(r.stdout + r.stderr).toContain("no standby can be promoted");
      expect(r.stdout + r.stderr).toContain("The master was not changed.");
      // Nobody was fenced: a is still the writable master with no recovery configuration.
      await efm.waitTypes("c", { a: "Master", b: "Standby", c: "Standby", d: "Standby" });
      expect(await efm.lab.inRecovery("a")).toBe(false);
      expect(existsSync(join(efm.lab.host("a").dataDir ?? "", "standby.signal"))).toBe(false);
      const after = await efm.lab.write("a", 2);
      for (const h of ["b", "c", "d"]) await efm.lab.waitReplayed(h, after);
      expect(suite.smtp.since(mark, "Failover has completed").length).toBe(0);
    } finally {
      for (const h of ["b", "c", "d"]) renameSync(`${pgVersion(h)}.hidden`, pgVersion(h));
      await efm.lab.psql("a", `GRANT ${grant} TO ${efm.lab.efmUser}`);
    }
  });
});

describe("three failovers in a row (issue 11: a promoted master is monitored)", () => {
  const dead: string[] = [];

  it("kill -9 of the master postmaster, then of each promoted master, fails over each time", async () => {
    let master = "a";
    let standbys: string[] = ["b", "c", "d"];
    for (let round = 1; round <= 3; round++) {
      const promoted = await killMasterAndFailOver(master, standbys);
      dead.push(master);
      // The master's agent is healthy: it watches its database (node-status-json exit 0).
      const health = await efm.efm(promoted, ["node-status-json", "acctg"]);
      expect(health.code, `round ${round}: ${health.stdout}${health.stderr}`).toBe(0);
      master = promoted;
      standbys = standbys.filter((h) => h !== promoted);
    }
    expect(dead).toEqual(["a", expect.any(String), expect.any(String)]);
    expect(standbys).toEqual([]);
    // Every agent shows the three dead databases and the one master.
    const s = await efm.status(master);
    for (const h of dead) expect(s.json?.nodes[addr(h)]).toMatchObject({ type: "Idle", db: "DOWN" });
    expect(s.json?.nodes[addr(master)]).toMatchObject({ type: "Master", db: "UP" });
  });

  it("after efm promote, kill -9 of the promoted master fails over again", async () => {
    expect(dead.length).toBe(3);
    const master = HOSTS.find((h) => !dead.includes(h)) as string;
    // Rebuild two dead hosts as standbys of the master with the lab's own tool and resume them.
    const rejoined = dead.slice(0, 2);
    for (const h of rejoined) {
      const how = await efm.lab.makeStandbyOf(h, master);
      expect(["follow", "rewind", "rebuild"]).toContain(how);
      const r = await efm.efm(h, ["resume", "acctg"]);
      expect(r.code, r.stdout + r.stderr).toBe(0);
    }
    await efm.waitTypes(master, {
      [master]: "Master",
      [rejoined[0] as string]: "Standby",
      [rejoined[1] as string]: "Standby",
    });
    const lsn = await efm.lab.write(master, 5);
    for (const h of rejoined) await efm.lab.waitReplayed(h, lsn);

    const mark = suite.smtp.mark();
    const r = await efm.efm(rejoined[0] as string, ["promote", "acctg", "--force"]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    await suite.smtp.waitFor("Failover has completed on cluster acctg", 120_000, mark);
    const seen = await efm.waitStatus(master, "a standby promoted by efm promote", (s) => {
      const m = rejoined.filter((h) => s.nodes[addr(h)]?.type === "Master");
      return m.length === 1 && s.nodes[addr(master)]?.type === "Idle";
    });
    const promoted = rejoined.find((h) => seen.nodes[addr(h)]?.type === "Master") as string;
    const other = rejoined.find((h) => h !== promoted) as string;
    expect(await efm.lab.inRecovery(promoted)).toBe(false);

    // The manually promoted master watches its database: killing it fails over to the other.
    const next = await killMasterAndFailOver(promoted, [other]);
    expect(next).toBe(other);
  });
});
