/**
 * Issue 16/18 follow-up, on real PostgreSQL 15 with real agents: an old master whose rejoin
 * source role (db.rewind.source.user, not a superuser) lacks a privilege pg_rewind needs on the
 * new master is refused before its database is touched, with a "could not rejoin" mail and
 * cluster-status text naming the missing privilege; once the grant is given, `efm resume`
 * rewinds it as that role and it streams as a Standby.
 * Addresses 127.0.35.61-63, ports 30161 (db), 30561 (agents), 30661-30663 (admin),
 * folders /tmp/efm-s5-* (reserved for S5's boundary work).
 */
import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import type { Cluster } from "@efm/lab";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type EfmCluster, Suite, threeHosts } from "./harness.ts";

const suite = new Suite();

// db.user streams (REPLICATION); `rewinder` is what pg_rewind reads the new master as: every
// function grant pg_rewind needs, but not pg_checkpoint (CHECKPOINT, PostgreSQL 15).
const ROLES = `ALTER ROLE efm REPLICATION;
  CREATE ROLE rewinder LOGIN;
  GRANT EXECUTE ON FUNCTION pg_catalog.pg_ls_dir(text, boolean, boolean) TO rewinder;
  GRANT EXECUTE ON FUNCTION pg_catalog.pg_stat_file(text, boolean) TO rewinder;
  GRANT EXECUTE ON FUNCTION pg_catalog.pg_read_binary_file(text) TO rewinder;
  GRANT EXECUTE ON FUNCTION pg_catalog.pg_read_binary_file(text, bigint, bigint, boolean) TO rewinder;`;

/** The body of a notification, with quoted-printable soft breaks undone. */
function body(raw: string): string {
  return raw.replace(/=\r?\n/g, "").replace(/=3D/g, "=");
}

let lab: Cluster;
let efm: EfmCluster;

beforeAll(async () => {
  await suite.init();
  lab = await suite.lab({
    name: "e2e-rewind-privileges",
    mode: "loopback",
    hosts: threeHosts(),
    port: 30161,
    addressBase: "127.0.35",
    firstOctet: 61,
    runDir: "/tmp/efm-s5-e2e-privileges",
    // rewinder authenticates its own way (as a certificate or ~/.pgpass would): never with
    // db.user's password.
    hbaLines: ["host all rewinder 0.0.0.0/0 trust", "host replication efm 0.0.0.0/0 scram-sha-256"],
    postgresConf: { wal_log_hints: "on" },
  });
  await lab.psql("a", ROLES);
  const lsn = await lab.lsn("a");
  await lab.waitReplayed("b", lsn);
  await lab.waitReplayed("c", lsn);
  efm = suite.efmCluster(lab, "privs", {
    agentPort: 30561,
    adminPort: 30661,
    properties: { "auto.rejoin": "true", "db.rewind.source.user": "rewinder" },
  });
  await efm.startAll(["a", "b", "c"], { a: "Master", b: "Standby", c: "Standby" });
}, 240_000);

afterAll(async () => {
  await suite.cleanup();
});

describe("a rejoin source role without pg_checkpoint", () => {
  it("is refused before the old master's database is touched, naming the privilege; granted, efm resume rejoins it", async () => {
    const lsn = await lab.write("a", 10);
    await lab.waitReplayed("b", lsn);
    await lab.waitReplayed("c", lsn);
    const mark = efm.smtp.mark();
    // The master's host crashes: agent and database together.
    await efm.kill("a", "SIGKILL");
    await lab.killDb("a");
    await efm.smtp.waitFor("Failover has completed on cluster privs", 120_000, mark);
    const s = await efm.waitStatus(
      "b",
      "a master other than a",
      (st) =>
        Object.entries(st.nodes).some(
          ([addr, n]) => n.type === "Master" && n.agent === "UP" && addr !== efm.address("a"),
        ),
      120_000,
    );
    const [winnerAddress] = Object.entries(s.nodes).find(([, n]) => n.type === "Master")!;
    const winner = efm.hostOf(winnerAddress);
    const data = lab.host("a").dataDir!;
    const autoConf = readFileSync(join(data, "postgresql.auto.conf"), "utf8");

    // The host is back: only the agent starts; auto.rejoin tries and is refused.
    const back = efm.smtp.mark();
    efm.start("a");
    const refused = await efm.smtp.waitFor(
      `Node ${efm.address("a")} could not rejoin cluster privs`,
      180_000,
      back,
    );
    const text = body(refused.raw);
    expect(text).toContain(
      "pg_rewind's source role rewinder (db.rewind.source.user) lacks on the new master",
    );
    expect(text).toContain("CHECKPOINT (GRANT pg_checkpoint TO the role)");
    expect(text).not.toContain("pg_read_binary_file");
    expect(text).toContain("nothing was changed (the database was not stopped)");
    const status = await efm.waitStatus("a", "the refusal in cluster-status", (st) =>
      st.messages.some((m) => m.includes("GRANT pg_checkpoint TO the role")),
    );
    expect(status.nodes[efm.address("a")]).toMatchObject({ type: "Idle", info: "rejoin refused" });
    // Nothing of the old master was changed: its settings and data directory are as the crash left them.
    expect(lab.isRunning("a")).toBe(false);
    expect(readFileSync(join(data, "postgresql.auto.conf"), "utf8")).toBe(autoConf);
    // The password file a rejoin writes first (before this check, it used to be written and
    // the database stopped before the CHECKPOINT failed) is not there: nothing was written.
    expect(existsSync(join(dirname(data), "efm-privs.pgpass"))).toBe(false);

    // The DBA grants what was named; efm resume rejoins as the same role, not a superuser.
    await lab.psql(winner, "GRANT pg_checkpoint TO rewinder");
    const resumed = efm.smtp.mark();
    const r = await efm.efm("a", ["resume", "privs"]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const done = await efm.smtp.waitFor(
      `Node ${efm.address("a")} rejoined cluster privs as a standby`,
      180_000,
      resumed,
    );
    expect(body(done.raw)).toContain("(pg_rewind)");
    await efm.waitTypes(winner, { a: "Standby", [winner]: "Master" }, 60_000);
    expect(await lab.inRecovery("a")).toBe(true);
    const later = await lab.write(winner, 3);
    await lab.waitReplayed("a", later, 60_000);
    expect(await lab.count("a")).toBe(await lab.count(winner));
  });
});
