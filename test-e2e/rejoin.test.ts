/**
 * Issue 11, database side, on a cluster where db.user must give its password on the local
 * socket too (pg_hba `local all efm scram-sha-256`): every connection of the product, the
 * privileged helper's included, uses TCP with the configured password, so the agents start
 * and can promote; a fenced old master never names its own address and follows the new master
 * with a password file; the rejoin steps of docs/operations.md bring it back (pg_rewind after a
 * crash, with the standby.signal handling it needs), and `efm resume` makes it a streaming
 * standby. Then a switchover (`efm promote`) fences a promoted master, which follows the new
 * one with nothing but the password file.
 */
import { readFileSync, statSync } from "node:fs";
import { dirname, join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type EfmCluster, Suite, threeHosts, waitUntil } from "./harness.ts";

const suite = new Suite();
let efm: EfmCluster;
const PORT = 15415;
const addr = (h: string) => efm.address(h);
const passfile = (h: string) => join(dirname(efm.lab.host(h).dataDir!), "efm-acctg.pgpass");
const pgBin = "/usr/lib/postgresql/15/bin";

beforeAll(async () => {
  await suite.init();
  const lab = await suite.lab({
    name: "e2e-rejoin",
    mode: "loopback",
    hosts: threeHosts(),
    port: PORT,
    addressBase: "127.0.15",
    runDir: "/tmp/efm-e2e-rejoin",
    hbaLines: ["local all efm scram-sha-256", "host replication efm 0.0.0.0/0 scram-sha-256"],
  });
  // What docs/operations.md asks of db.user: replication (a fenced master follows as db.user)
  // and the four functions pg_rewind needs from a non-superuser.
  await lab.psql(
    "a",
    `ALTER ROLE efm REPLICATION;
     GRANT EXECUTE ON FUNCTION pg_catalog.pg_ls_dir(text, boolean, boolean) TO efm;
     GRANT EXECUTE ON FUNCTION pg_catalog.pg_stat_file(text, boolean) TO efm;
     GRANT EXECUTE ON FUNCTION pg_catalog.pg_read_binary_file(text) TO efm;
     GRANT EXECUTE ON FUNCTION pg_catalog.pg_read_binary_file(text, bigint, bigint, boolean) TO efm;
     GRANT pg_checkpoint TO efm;`,
  );
  const lsn = await lab.lsn("a");
  await lab.waitReplayed("b", lsn);
  await lab.waitReplayed("c", lsn);
  efm = suite.efmCluster(lab, "acctg", { agentPort: 17570, adminPort: 17670 });
  await efm.startAll(["a", "b", "c"], { a: "Master", b: "Standby", c: "Standby" });
}, 240_000);

afterAll(async () => {
  await suite.cleanup();
});

/** primary_conninfo as the server would read it from postgresql.auto.conf (the last one wins). */
function autoConninfo(host: string): string | undefined {
  const text = readFileSync(join(efm.lab.host(host).dataDir!, "postgresql.auto.conf"), "utf8");
  const values = [...text.matchAll(/^\s*primary_conninfo\s*=\s*'((?:[^']|'')*)'/gm)].map((m) =>
    m[1]!.replaceAll("''", "'"),
  );
  return values.at(-1);
}

/**
 * The standbys the master streams to, from pg_stat_replication: application_name (each lab
 * standby's conninfo names its host; on loopback every client address is 127.0.0.1) and role.
 */
async function streamingTo(master: string): Promise<{ application_name: string; usename: string }[]> {
  const rows = await efm.lab.psql(
    master,
    "select application_name, usename from pg_stat_replication where state = 'streaming'",
  );
  return rows as { application_name: string; usename: string }[];
}

/** The lab host that is Master according to `from`'s agent. */
async function masterHost(from: string): Promise<string> {
  const s = await efm.waitStatus(from, "a master", (st) =>
    Object.values(st.nodes).some((n) => n.type === "Master" && n.agent === "UP"),
  );
  const [address] = Object.entries(s.nodes).find(([, n]) => n.type === "Master")!;
  return efm.hostOf(address);
}

/** waitReplayed, failing with the standby's server log (and what led there) to say why. */
async function replayed(host: string, lsn: string, before = ""): Promise<void> {
  try {
    await efm.lab.waitReplayed(host, lsn);
  } catch (err) {
    const log = readFileSync(efm.lab.host(host).logFile, "utf8").split("\n").slice(-30).join("\n");
    throw new Error(`${(err as Error).message}\n${before}\n--- ${host} server log ---\n${log}`);
  }
}

function expectPassfile(host: string): void {
  const st = statSync(passfile(host));
  expect(st.mode & 0o777).toBe(0o600);
  expect(readFileSync(passfile(host), "utf8")).toBe(`*:${PORT}:*:efm:${efm.lab.efmPassword}\n`);
}

describe("db.user needs a password on the local socket (issue 11, 2a)", () => {
  it("every agent's start-up check ran the helper over TCP with the password", () => {
    for (const h of ["a", "b", "c"]) {
      const log = readFileSync(join(efm.agentDir(h), "startup-acctg.log"), "utf8");
      expect(log).toContain("privileged helper check passed");
      expect(log).toContain(`connected to ${addr(h)}:${PORT} as efm`);
      expect(log).not.toContain(efm.lab.efmPassword);
    }
  });
});

describe("kill -9 of the master, then the documented rejoin (guide 8.1, issue 11 item 3)", () => {
  let winner = "";

  it("promotes a standby and fences the dead master without naming its own address", async () => {
    const lsn = await efm.lab.write("a", 20);
    await efm.lab.waitReplayed("b", lsn);
    await efm.lab.waitReplayed("c", lsn);
    const mark = suite.smtp.mark();
    await efm.lab.killDb("a");
    await suite.smtp.waitFor("Failover has completed on cluster acctg", 120_000, mark);
    winner = await masterHost("b");
    expect(["b", "c"]).toContain(winner);
    await efm.waitTypes(winner, { a: "Idle", [winner]: "Master" });
    expect(await efm.lab.inRecovery(winner)).toBe(false);

    // The fence wrote standby.signal and a primary_conninfo that names no host but, if any,
    // the new master: never the dead master's own address, never a password.
    const data = efm.lab.host("a").dataDir!;
    expect(statSync(join(data, "standby.signal")).isFile()).toBe(true);
    const conninfo = autoConninfo("a") ?? "";
    expect(conninfo).not.toContain(addr("a"));
    expect(conninfo).not.toContain("password");
    expectPassfile("a");
  });

  it("rejoins with pg_rewind as docs/operations.md says, then efm resume: a streaming standby", async () => {
    const data = efm.lab.host("a").dataDir!;
    const master = addr(winner);
    // The steps of docs/operations.md "Rejoining the old master", as db.service.owner. The lab
    // keeps its per-host settings in lab-host.conf, which pg_rewind would overwrite with the
    // new master's: the "host-specific configuration" the steps save and put back.
    const script = `set -eu
PGDATA=${data}
PASSFILE=${passfile("a")}
SOURCE="host=${master} port=${PORT} user=efm dbname=efm passfile=$PASSFILE"
${pgBin}/pg_ctl status -D "$PGDATA" >/dev/null && { echo "database still running"; exit 1; }
${pgBin}/psql "$SOURCE" -c CHECKPOINT
cp "$PGDATA/lab-host.conf" "$PGDATA/../lab-host.conf.keep"
rm -f "$PGDATA/standby.signal"
${pgBin}/pg_rewind --target-pgdata="$PGDATA" --source-server="$SOURCE"
cp "$PGDATA/../lab-host.conf.keep" "$PGDATA/lab-host.conf"
touch "$PGDATA/standby.signal"
echo "primary_conninfo = 'host=${master} port=${PORT} user=efm passfile=$PASSFILE application_name=a'" >> "$PGDATA/postgresql.auto.conf"
`;
    const r = await efm.lab.exec("a", ["runuser", "-u", "postgres", "--", "bash", "-c", script], {
      timeoutMs: 120_000,
    });
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stdout + r.stderr).not.toContain(efm.lab.efmPassword);
    await efm.lab.startDb("a");
    expect(await efm.lab.inRecovery("a")).toBe(true);

    const resumed = await efm.efm("a", ["resume", "acctg"]);
    expect(resumed.code, resumed.stdout + resumed.stderr).toBe(0);
    await efm.waitTypes(winner, { a: "Standby", [winner]: "Master" });
    const lsn = await efm.lab.write(winner, 5);
    await replayed("a", lsn, r.stdout + r.stderr);
    const seen = await waitUntil(
      async () => (await streamingTo(winner)).some((s) => s.application_name === "a" && s.usename === "efm"),
      30_000,
    );
    expect(seen, JSON.stringify(await streamingTo(winner))).toBe(true);
  });
});

describe("efm promote fences a promoted master, which follows the new one (4.1.4, issue 11)", () => {
  it("switches over; the old master follows with the password file; efm resume", async () => {
    const oldMaster = await masterHost("a");
    const others = ["a", "b", "c"].filter((h) => h !== oldMaster);
    await efm.waitStatus(oldMaster, "both standbys listed", (s) => s.failoverpriority.length === 2);
    const lsn = await efm.lab.write(oldMaster, 10);
    for (const h of others) await efm.lab.waitReplayed(h, lsn);
    const r = await efm.efm(others[0]!, ["promote", "acctg"]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const s = await efm.waitStatus(
      others[0]!,
      "a new master and the old one Idle",
      (st) =>
        st.nodes[addr(oldMaster)]?.type === "Idle" &&
        others.some((h) => st.nodes[addr(h)]?.type === "Master"),
      120_000,
    );
    const newMaster = others.find((h) => s.nodes[addr(h)]?.type === "Master")!;
    expect(await efm.lab.inRecovery(newMaster)).toBe(false);
    expect(await efm.lab.inRecovery(oldMaster)).toBe(true);

    // The fenced master names the new master, as db.user, with the 0600 password file.
    const conninfo = autoConninfo(oldMaster) ?? "";
    expect(conninfo).toContain(`host=${addr(newMaster)}`);
    expect(conninfo).toContain("user=efm");
    expect(conninfo).toMatch(/(^| )passfile=/);
    expect(conninfo).toContain(passfile(oldMaster));
    expect(conninfo).not.toContain("password=");
    expectPassfile(oldMaster);

    // It streams from the new master on that alone, and efm resume makes it a Standby again.
    const seen = await waitUntil(
      async () =>
        (await streamingTo(newMaster)).some((x) => x.application_name === oldMaster && x.usename === "efm"),
      60_000,
    );
    expect(seen, `${JSON.stringify(await streamingTo(newMaster))}\n${efm.logTails()}`).toBe(true);
    const resumed = await efm.efm(oldMaster, ["resume", "acctg"]);
    expect(resumed.code, resumed.stdout + resumed.stderr).toBe(0);
    await efm.waitTypes(newMaster, { [oldMaster]: "Standby", [newMaster]: "Master" });
    const after = await efm.lab.write(newMaster, 3);
    await replayed(oldMaster, after);
  });
});
