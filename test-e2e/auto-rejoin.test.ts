/**
 * Issue 16, rejoin of a failed master, on real PostgreSQL 15 with real agents:
 * - auto.rejoin=true, wal_log_hints=on: the master's agent and database are killed together (a
 *   crashed host); a standby is promoted; when the old master's agent comes back (its database
 *   still down) it rewinds the database against the new master by itself and joins as a
 *   Standby streaming from it.
 * - wal_log_hints=off, no data checksums, db.rejoin.basebackup=false: the agent says at start-up
 *   that a rejoin will be refused; after a failover the fenced old master is refused with a
 *   notification and cluster-status text naming why, and its database stays down.
 * Addresses 127.0.24.x, ports 24000-24999, folders /tmp/efm-h5-* (reserved for this suite).
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { Cluster } from "@efm/lab";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type EfmCluster, Suite, threeHosts, waitUntil } from "./harness.ts";

const suite = new Suite();

// What docs/operations.md asks of db.user for a rejoin: replication, and what pg_rewind reads.
const GRANTS = `ALTER ROLE efm REPLICATION;
  GRANT EXECUTE ON FUNCTION pg_catalog.pg_ls_dir(text, boolean, boolean) TO efm;
  GRANT EXECUTE ON FUNCTION pg_catalog.pg_stat_file(text, boolean) TO efm;
  GRANT EXECUTE ON FUNCTION pg_catalog.pg_read_binary_file(text) TO efm;
  GRANT EXECUTE ON FUNCTION pg_catalog.pg_read_binary_file(text, bigint, bigint, boolean) TO efm;
  GRANT pg_checkpoint TO efm;`;

async function build(
  name: string,
  firstOctet: number,
  port: number,
  walLogHints: "on" | "off",
): Promise<Cluster> {
  const lab = await suite.lab({
    name,
    mode: "loopback",
    hosts: threeHosts(),
    port,
    addressBase: "127.0.24",
    firstOctet,
    runDir: `/tmp/efm-h5-${name}`,
    hbaLines: ["host replication efm 0.0.0.0/0 scram-sha-256"],
    postgresConf: { wal_log_hints: walLogHints },
  });
  await lab.psql("a", GRANTS);
  const lsn = await lab.lsn("a");
  await lab.waitReplayed("b", lsn);
  await lab.waitReplayed("c", lsn);
  return lab;
}

/** The lab host that is Master according to `from`'s agent, once there is one besides `not`. */
async function newMaster(efm: EfmCluster, from: string, not?: string): Promise<string> {
  const other = (addr: string) => not === undefined || addr !== efm.address(not);
  const s = await efm.waitStatus(
    from,
    `a master other than ${not ?? "none"}`,
    (st) =>
      Object.entries(st.nodes).some(([addr, n]) => n.type === "Master" && n.agent === "UP" && other(addr)),
    120_000,
  );
  const [address] = Object.entries(s.nodes).find(([addr, n]) => n.type === "Master" && other(addr))!;
  return efm.hostOf(address);
}

/** The body of a notification, with quoted-printable soft breaks undone. */
function body(raw: string): string {
  return raw.replace(/=\r?\n/g, "").replace(/=3D/g, "=");
}

beforeAll(async () => {
  await suite.init();
}, 30_000);

afterAll(async () => {
  await suite.cleanup();
});

describe("auto.rejoin with wal_log_hints=on: a crashed master comes back as a standby by itself", () => {
  let lab: Cluster;
  let efm: EfmCluster;

  beforeAll(async () => {
    lab = await build("e2e-rejoin", 31, 24131, "on");
    efm = suite.efmCluster(lab, "rejoin", {
      agentPort: 24531,
      adminPort: 24631,
      properties: { "auto.rejoin": "true" },
    });
    await efm.startAll(["a", "b", "c"], { a: "Master", b: "Standby", c: "Standby" });
  }, 240_000);

  it("says at start-up that a rejoin can rewind the database", () => {
    const log = readFileSync(join(efm.agentDir("a"), "startup-rejoin.log"), "utf8");
    expect(log).toContain("pg_rewind precondition: wal_log_hints=on, data checksums off");
  });

  it("rewinds the old master against the new one when its agent returns, and it streams as a Standby", async () => {
    const before = await lab.write("a", 20);
    await lab.waitReplayed("b", before);
    await lab.waitReplayed("c", before);
    const mark = efm.smtp.mark();
    // The host crashes: agent and database go at once, so nothing fences it or records a fence.
    await efm.kill("a", "SIGKILL");
    await lab.killDb("a");
    await efm.smtp.waitFor("Failover has completed on cluster rejoin", 120_000, mark);
    const winner = await newMaster(efm, "b", "a");
    expect(await lab.inRecovery(winner)).toBe(false);
    const afterFailover = await lab.write(winner, 5);
    expect(lab.isRunning("a")).toBe(false);

    // The host is back: only the agent starts; the database is still down.
    const back = efm.smtp.mark();
    efm.start("a");
    const done = await efm.smtp.waitFor(
      `Node ${efm.address("a")} rejoined cluster rejoin as a standby`,
      180_000,
      back,
    );
    expect(body(done.raw)).toContain(`resynchronised with the master ${efm.address(winner)} (pg_rewind)`);
    expect(efm.smtp.since(back, "could not rejoin")).toEqual([]);
    await efm.waitTypes(winner, { a: "Standby", [winner]: "Master" }, 60_000);

    // Checked on the databases themselves: a is in recovery, replays what the new master wrote
    // after the failover and after the rejoin, and the new master streams to it.
    expect(await lab.inRecovery("a")).toBe(true);
    await lab.waitReplayed("a", afterFailover, 60_000);
    const later = await lab.write(winner, 3);
    await lab.waitReplayed("a", later, 60_000);
    expect(await lab.count("a")).toBe(await lab.count(winner));
    const streams = await waitUntil(async () => {
      const rows = (await lab.psql(
        winner,
        "select application_name from pg_stat_replication where state = 'streaming'",
      )) as { application_name: string }[];
      return rows.some((r) => r.application_name === "a") ? true : undefined;
    }, 30_000);
    expect(streams).toBe(true);
    // The rebuild flag is cleared on disk: a restart of this agent keeps it a standby.
    const record = JSON.parse(readFileSync(join(efm.agentDir("a"), "rejoin.failover.json"), "utf8"));
    expect(record).toMatchObject({ lastMaster: `${efm.address(winner)}:24531`, rebuildNeeded: false });
  });

  it("a crashed master whose database an init system starts again as a primary is fenced by its agent, then rejoined", async () => {
    const old = await newMaster(efm, "a");
    const standbys = ["a", "b", "c"].filter((h) => h !== old);
    const lsn = await lab.write(old, 10);
    for (const h of standbys) await lab.waitReplayed(h, lsn);
    const mark = efm.smtp.mark();
    await efm.kill(old, "SIGKILL");
    await lab.killDb(old);
    await efm.smtp.waitFor("Failover has completed on cluster rejoin", 120_000, mark);
    const winner = await newMaster(efm, standbys[0]!, old);
    const afterFailover = await lab.write(winner, 4);
    // The host is back and its init system starts PostgreSQL: nothing wrote standby.signal, so
    // the old master's database is a primary again, before its agent runs.
    await lab.startDb(old);
    expect(await lab.inRecovery(old)).toBe(false);
    const back = efm.smtp.mark();
    efm.start(old);
    await efm.smtp.waitFor(`Node ${efm.address(old)} rejoined cluster rejoin as a standby`, 180_000, back);
    await efm.waitTypes(winner, { [old]: "Standby", [winner]: "Master" }, 60_000);
    expect(await lab.inRecovery(old)).toBe(true);
    await lab.waitReplayed(old, afterFailover, 60_000);
    const later = await lab.write(winner, 2);
    await lab.waitReplayed(old, later, 60_000);
    expect(await lab.count(old)).toBe(await lab.count(winner));
    // Its agent fenced it first (stopped, confirmed down), as its log says.
    const log = readFileSync(join(efm.agentDir(old), "rejoin.log"), "utf8");
    expect(log).toContain("check.begin.staleMaster");
  });
});

describe("no wal_log_hints, no checksums, no base backup: the rejoin is refused, saying why", () => {
  let lab: Cluster;
  let efm: EfmCluster;

  beforeAll(async () => {
    lab = await build("e2e-norewind", 41, 24141, "off");
    efm = suite.efmCluster(lab, "norewind", {
      agentPort: 24541,
      adminPort: 24641,
      properties: { "auto.rejoin": "true", "db.rejoin.basebackup": "false" },
    });
    await efm.startAll(["a", "b", "c"], { a: "Master", b: "Standby", c: "Standby" });
  }, 240_000);

  it("warns at start-up that a rejoin would be refused", () => {
    const log = readFileSync(join(efm.agentDir("a"), "startup-norewind.log"), "utf8");
    expect(log).toContain("pg_rewind precondition: wal_log_hints=off, data checksums off");
    expect(log).toContain("pg_rewind cannot rewind this database, so auto.rejoin will be refused");
  });

  it("after a failover the fenced old master is refused with a notification and cluster-status text; it stays down", async () => {
    const lsn = await lab.write("a", 10);
    await lab.waitReplayed("b", lsn);
    await lab.waitReplayed("c", lsn);
    const mark = efm.smtp.mark();
    await lab.killDb("a");
    await efm.smtp.waitFor("Failover has completed on cluster norewind", 120_000, mark);
    const winner = await newMaster(efm, "b", "a");
    const refused = await efm.smtp.waitFor(
      `Node ${efm.address("a")} could not rejoin cluster norewind`,
      120_000,
      mark,
    );
    const text = body(refused.raw);
    expect(text).toContain(`standby of the master ${efm.address(winner)}`);
    expect(text).toContain("pg_rewind needs wal_log_hints=on or data checksums");
    expect(text).toContain("db.rejoin.basebackup=false");
    expect(efm.smtp.since(mark, "rejoined cluster")).toEqual([]);

    // cluster-status on the old master says why, and shows it Idle.
    const s = await efm.waitStatus("a", "the refusal in cluster-status", (st) =>
      st.messages.some((m) => m.startsWith(`Could not rejoin as a standby of ${efm.address(winner)}`)),
    );
    expect(s.nodes[efm.address("a")]).toMatchObject({ type: "Idle", info: "rejoin refused" });
    expect(s.messages.join("\n")).toContain("wal_log_hints=on or data checksums");
    // Never writable: its database is down, and an explicit resume is refused the same way.
    expect(lab.isRunning("a")).toBe(false);
    const resumed = await efm.efm("a", ["resume", "norewind"]);
    expect(resumed.code).not.toBe(0);
    expect(resumed.stdout + resumed.stderr).toContain("wal_log_hints=on or data checksums");
    expect(lab.isRunning("a")).toBe(false);
  });
});
