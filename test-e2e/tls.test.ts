/**
 * TLS to the databases as PostgreSQL users run it (issue 19): three 3-host clusters with
 * `ssl = on` and every plain TCP login (replication included) rejected in pg_hba.conf, one
 * per way of trusting the servers: self-signed certificates with `jdbc.sslmode=require`, a
 * private CA with `verify-ca`, and the same CA with `verify-full` (certificates whose IP SANs
 * name each host's address). Each cluster fails over, and the standby that follows the new
 * master replicates over TLS. The last one also shows a failed certificate check in
 * `efm cluster-status`, in words that name the check and the property.
 */
import { mkdirSync, rmSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type EfmCluster, Suite, threeHosts, waitUntil } from "./harness.ts";

const suite = new Suite();
const ADDR = { a: "127.0.16.11", b: "127.0.16.12", c: "127.0.16.13" } as const;
type Host = keyof typeof ADDR;
// libpq's default files live in ~/.postgresql of the agent's user: an empty home keeps a
// stray root.crt on the test machine from changing what "require" means.
const HOME = "/tmp/efm-e2e-tls-home";
let savedHome: string | undefined;

beforeAll(async () => {
  savedHome = process.env.HOME;
  rmSync(HOME, { recursive: true, force: true });
  mkdirSync(HOME, { recursive: true });
  process.env.HOME = HOME;
  await suite.init();
});

afterAll(async () => {
  await suite.cleanup();
  if (savedHome === undefined) delete process.env.HOME;
  else process.env.HOME = savedHome;
  rmSync(HOME, { recursive: true, force: true });
});

/** Build a TLS lab and start its agents with these TLS properties (ca: the lab CA is trusted). */
async function tlsCluster(
  name: string,
  ca: boolean,
  props: (caCert: string | null) => Record<string, string>,
) {
  const lab = await suite.lab({
    name: `e2e-tls-${name}`,
    mode: "loopback",
    hosts: threeHosts(),
    port: 15416,
    addressBase: "127.0.16",
    runDir: `/tmp/efm-e2e-tls-${name}`,
    tls: { ca },
  });
  const efm = suite.efmCluster(lab, "acctg", {
    agentPort: 17580,
    adminPort: 17680,
    // A kept monitoring connection lets the test see the agents' own sessions in pg_stat_ssl.
    properties: { "db.reuse.connection.count": "1000", ...props(lab.tls?.caCert ?? null) },
  });
  await efm.startAll(["a", "b", "c"], { a: "Master", b: "Standby", c: "Standby" });
  return efm;
}

/** Tear one cluster down so the next can take the same addresses and ports. */
async function done(efm: EfmCluster): Promise<void> {
  await efm.killAll();
  efm.keepLogs();
  await efm.lab.down();
}

/** Every agent session on the host's database uses TLS (and there is at least one). */
async function agentSessionsOverTls(efm: EfmCluster, host: Host): Promise<void> {
  const seen = await waitUntil(async () => {
    const rows = await efm.lab.psql(
      host,
      `SELECT count(*)::int AS n, coalesce(bool_and(s.ssl), false) AS tls
       FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid)
       WHERE a.usename = 'efm' AND a.client_addr IS NOT NULL`,
    );
    return Number(rows[0]?.n) > 0 ? rows[0] : undefined;
  }, 30_000);
  expect(seen, `no agent session on ${host}`).toBeDefined();
  expect(seen?.tls).toBe(true);
}

/**
 * Kill the master database; wait for the failover; return the new master and the standby that
 * must now follow it, after checking that standby streams from it over TLS.
 */
async function failOver(
  efm: EfmCluster,
  tls: { sslmode: string; sslrootcert?: string },
): Promise<{ master: Host; follower: Host }> {
  const lsn = await efm.lab.write("a", 20);
  await efm.lab.waitReplayed("b", lsn);
  await efm.lab.waitReplayed("c", lsn);
  const rows = await efm.lab.count("a");
  const mark = suite.smtp.mark();
  await efm.lab.killDb("a");
  await suite.smtp.waitFor("Failover has completed on cluster acctg", 120_000, mark);
  const master: Host = (await efm.lab.inRecovery("b")) ? "c" : "b";
  const follower: Host = master === "b" ? "c" : "b";
  expect(await efm.lab.inRecovery(master)).toBe(false);
  expect(await efm.lab.count(master)).toBe(rows);
  await efm.waitTypes(master, { a: "Idle", [master]: "Master", [follower]: "Standby" });

  // The follower streams from the new master, over TLS: the replication connection itself.
  const repl = await waitUntil(async () => {
    const r = await efm.lab.psql(
      master,
      `SELECT s.ssl, s.version FROM pg_stat_replication r JOIN pg_stat_ssl s ON s.pid = r.pid
       WHERE r.application_name = $1 AND r.state = 'streaming'`,
      [follower],
    );
    return r[0];
  }, 60_000);
  expect(repl, `${follower} does not stream from ${master}\n${efm.logTails()}`).toBeDefined();
  expect(repl?.ssl).toBe(true);
  expect(String(repl?.version)).toMatch(/^TLSv1\.[23]$/);
  // ...because the agents wrote their TLS rules into its primary_conninfo, not by chance.
  const [row] = await efm.lab.psql(follower, "SHOW primary_conninfo");
  const conninfo = String(row?.primary_conninfo ?? "");
  const keyword = (k: string) => new RegExp(`(?:^|\\s)${k}\\s*=\\s*'?([^'\\s]+)'?`).exec(conninfo)?.[1];
  expect(conninfo).toContain(`host=${ADDR[master]}`);
  expect(keyword("sslmode"), conninfo).toBe(tls.sslmode);
  expect(keyword("sslrootcert"), conninfo).toBe(tls.sslrootcert);
  const after = await efm.lab.write(master, 3);
  await efm.lab.waitReplayed(follower, after);
  // The new master's agent monitors it over TLS too.
  await agentSessionsOverTls(efm, master);
  return { master, follower };
}

describe("self-signed server certificates, jdbc.sslmode=require", () => {
  let efm: EfmCluster;
  it("monitors every database over TLS and fails over", async () => {
    efm = await tlsCluster("require", false, () => ({ "jdbc.sslmode": "require" }));
    for (const h of ["a", "b", "c"] as const) await agentSessionsOverTls(efm, h);
    await failOver(efm, { sslmode: "require" });
    await done(efm);
  });
});

describe("a private CA, jdbc.sslmode=verify-ca", () => {
  it("fails over; the follower replicates over TLS", async () => {
    const efm = await tlsCluster("verifyca", true, (ca) => ({
      "jdbc.sslmode": "verify-ca",
      "jdbc.sslrootcert": ca ?? "",
    }));
    await agentSessionsOverTls(efm, "a");
    await failOver(efm, { sslmode: "verify-ca", sslrootcert: efm.lab.tls?.caCert ?? "" });
    await done(efm);
  });
});

describe("a private CA with IP SANs, jdbc.sslmode=verify-full", () => {
  let efm: EfmCluster;
  let master: Host;

  it("fails over; the follower replicates over TLS", async () => {
    efm = await tlsCluster("verifyfull", true, (ca) => ({
      "jdbc.sslmode": "verify-full",
      "jdbc.sslrootcert": ca ?? "",
    }));
    await agentSessionsOverTls(efm, "a");
    ({ master } = await failOver(efm, { sslmode: "verify-full", sslrootcert: efm.lab.tls?.caCert ?? "" }));
  });

  it("a certificate that does not name its host shows as a host name mismatch in cluster-status", async () => {
    await efm.lab.reissueCert(master, { ips: ["127.0.16.99"] });
    const r = await efm.efm(master, ["cluster-status", "acctg"]);
    expect(r.stdout).toContain(
      `TLS to ${ADDR[master]} failed: host name mismatch: the server's certificate does not name ${ADDR[master]}`,
    );
    expect(r.stdout).toContain("or set jdbc.sslmode=verify-ca to check only that a trusted CA signed it");
    await efm.lab.reissueCert(master);
  });
});
