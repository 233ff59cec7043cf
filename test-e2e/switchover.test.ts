/**
 * Issue 16, `efm promote <cluster> -switchover` on real PostgreSQL: a writer keeps inserting
 * (one attempt at a time, each on a new connection to whichever database is not in recovery)
 * while the master role moves to a standby; no acknowledged write is lost, the old master
 * streams from the new one and is a Standby without `efm resume`, the other standby follows,
 * the notifications go out. Then the role moves back (-sourcenode). A switchover whose target
 * lags (its WAL receiver stopped while the master writes more than switchover.max.lag.bytes),
 * or with an agent down, is refused with the reason and changes nothing. A target that cannot
 * replay the master's last records in time (replay paused) rolls back: the old master is master
 * again and the command says what failed.
 */
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type EfmCluster, type StatusJson, Suite, sleep, threeHosts, waitUntil } from "./harness.ts";

const suite = new Suite();
let efm: EfmCluster;
const PORT = 23000;
const HOSTS = ["a", "b", "c"];
const addr = (h: string) => efm.address(h);

beforeAll(async () => {
  await suite.init();
  const lab = await suite.lab({
    name: "e2e-switchover",
    mode: "loopback",
    hosts: threeHosts(),
    port: PORT,
    addressBase: "127.0.23",
    runDir: "/tmp/efm-h4-switchover",
    hbaLines: ["host replication efm 0.0.0.0/0 scram-sha-256"],
  });
  // db.user streams as the old master's replication user (the fence names it) and may CHECKPOINT.
  await lab.psql(
    "a",
    `ALTER ROLE efm REPLICATION;
     GRANT pg_checkpoint TO efm;
     CREATE TABLE probe (n int PRIMARY KEY);
     GRANT INSERT, SELECT ON probe TO efm;
     CREATE TABLE filler (t text);`,
  );
  const lsn = await lab.lsn("a");
  await lab.waitReplayed("b", lsn);
  await lab.waitReplayed("c", lsn);
  efm = suite.efmCluster(lab, "acctg", {
    agentPort: 23100,
    adminPort: 23200,
    // 1 MiB: the lag test needs only a little WAL; script.timeout bounds promotion.timeout (the
    // rollback test waits for it).
    properties: { "switchover.max.lag.bytes": "1048576", "script.timeout": "5" },
  });
  await efm.startAll(HOSTS, { a: "Master", b: "Standby", c: "Standby" });
  await efm.waitStatus("a", "both standbys in the priority list", (s) => s.failoverpriority.length === 2);
}, 240_000);

afterAll(async () => {
  await suite.cleanup();
});

let lastError = "";

/** The database of `host` answers and is not in recovery: write there. */
async function connect(host: string): Promise<pg.Client | null> {
  const client = new pg.Client({
    ...efm.lab.efmConnection(host),
    password: efm.lab.efmPassword,
    connectionTimeoutMillis: 1_000,
    query_timeout: 2_000,
  });
  client.on("error", () => {});
  try {
    await client.connect();
    const r = await client.query("SELECT pg_is_in_recovery() AS r");
    if (r.rows[0]?.r === false) return client;
  } catch (e) {
    lastError = (e as Error).message;
  }
  await client.end().catch(() => {});
  return null;
}

/**
 * Inserts base, base + 1, ... one at a time, each over a new connection to a database not in recovery
 * (tried in host order), until stopped; `acked` holds every INSERT the server acknowledged.
 */
function writer(base: number): { acked: number[]; stop: () => Promise<void> } {
  const acked: number[] = [];
  let running = true;
  const done = (async () => {
    for (let n = base; running; ) {
      let wrote = false;
      for (const h of HOSTS) {
        const client = await connect(h);
        if (!client) continue;
        try {
          await client.query("INSERT INTO probe VALUES ($1)", [n]);
          acked.push(n);
          wrote = true;
        } catch (e) {
          lastError = (e as Error).message;
        } finally {
          await client.end().catch(() => {});
        }
        break;
      }
      // A number whose INSERT failed may still have committed: never reuse it.
      n++;
      if (!wrote) await sleep(20);
    }
  })();
  return {
    acked,
    stop: async () => {
      running = false;
      await done;
    },
  };
}

/** The lab host that is Master, as `from`'s agent reports it. */
function masterOf(s: StatusJson): string {
  const [address] = Object.entries(s.nodes).find(([, n]) => n.type === "Master")!;
  return efm.hostOf(address);
}

/** Every acknowledged number is in `host`'s table. */
async function missingOn(host: string, acked: number[]): Promise<number[]> {
  const rows = (await efm.lab.psql(host, "SELECT n FROM probe")) as { n: number }[];
  const have = new Set(rows.map((r) => r.n));
  return acked.filter((n) => !have.has(n));
}

/** Who `host`'s WAL receiver streams from, if it streams. */
async function upstream(host: string): Promise<string | null> {
  const rows = (await efm.lab.psql(
    host,
    "SELECT sender_host FROM pg_stat_wal_receiver WHERE status = 'streaming'",
  )) as { sender_host: string }[];
  return rows[0]?.sender_host ?? null;
}

async function streamsFrom(host: string, master: string): Promise<void> {
  const ok = await waitUntil(async () => (await upstream(host)) === addr(master), 30_000);
  expect(ok, `${host} streams from ${await upstream(host)}, not ${addr(master)}\n${efm.logTails()}`).toBe(
    true,
  );
}

/** The cluster as every agent sees it: types by lab host, and which databases are in recovery. */
async function picture(): Promise<{ types: Record<string, string>; recovery: Record<string, boolean> }> {
  const types: Record<string, string> = {};
  const s = await efm.waitStatus("a", "a status", () => true);
  for (const [address, n] of Object.entries(s.nodes)) types[efm.hostOf(address)] = n.type;
  const recovery: Record<string, boolean> = {};
  for (const h of HOSTS) recovery[h] = await efm.lab.inRecovery(h);
  return { types, recovery };
}

describe("efm promote -switchover (issue 16)", () => {
  let first = "";

  it("hands the master role to a standby while a writer runs: no acknowledged write lost, the old master a Standby streaming from the new one", async () => {
    const w = writer(0);
    const started = await waitUntil(async () => w.acked.length >= 20, 30_000);
    expect(started, lastError).toBe(true);
    const mark = suite.smtp.mark();
    const r = await efm.efm("c", ["promote", "acctg", "-switchover"]);
    expect(r.code, r.stdout + r.stderr + efm.logTails()).toBe(0);
    expect(r.stdout).toContain(
      "Switchover command accepted by local agent. Proceeding with switchover and waiting for it to complete",
    );
    const s = await efm.waitStatus(
      "c",
      "another master",
      (st) =>
        st.nodes[addr("a")]?.type !== "Master" && Object.values(st.nodes).some((x) => x.type === "Master"),
    );
    first = masterOf(s);
    expect(r.stdout).toContain(
      `Switchover has completed: ${addr(first)}:23100 is the master; ${addr("a")}:23100 follows it as a standby.`,
    );
    // Writes go on at the new master.
    const before = w.acked.length;
    expect(await waitUntil(async () => w.acked.length >= before + 20, 30_000), lastError).toBe(true);
    await w.stop();

    expect(await missingOn(first, w.acked)).toEqual([]);
    const other = HOSTS.find((h) => h !== "a" && h !== first)!;
    // No efm resume: the old master joins as a standby by itself; the other standby follows.
    await efm.waitTypes(first, { a: "Standby", [first]: "Master", [other]: "Standby" });
    expect(await efm.lab.inRecovery(first)).toBe(false);
    expect(await efm.lab.inRecovery("a")).toBe(true);
    await streamsFrom("a", first);
    await streamsFrom(other, first);
    const lsn = await efm.lab.write(first, 5);
    await efm.lab.waitReplayed("a", lsn);
    await efm.lab.waitReplayed(other, lsn);
    await suite.smtp.waitFor("Failover has completed on cluster acctg", 30_000, mark);
  });

  it("switches back to the original master with -sourcenode", async () => {
    const w = writer(100_000);
    expect(await waitUntil(async () => w.acked.length >= 10, 30_000), lastError).toBe(true);
    const r = await efm.efm(first, ["promote", "acctg", "-switchover", "-sourcenode", addr("a")]);
    expect(r.code, r.stdout + r.stderr + efm.logTails()).toBe(0);
    expect(r.stdout).toContain(`Switchover has completed: ${addr("a")}:23100 is the master`);
    const before = w.acked.length;
    expect(await waitUntil(async () => w.acked.length >= before + 10, 30_000), lastError).toBe(true);
    await w.stop();
    expect(await missingOn("a", w.acked)).toEqual([]);
    await efm.waitTypes("a", { a: "Master", b: "Standby", c: "Standby" });
    await streamsFrom("b", "a");
    await streamsFrom("c", "a");
  });

  it("is refused with the reason, nothing changed, when the target lags more than switchover.max.lag.bytes", async () => {
    const before = await picture();
    // b's WAL receiver stopped: the master writes ~4 MiB that b does not receive.
    const [wr] = (await efm.lab.psql("b", "SELECT pid FROM pg_stat_wal_receiver")) as { pid: number }[];
    expect(wr?.pid).toBeGreaterThan(0);
    process.kill(wr!.pid, "SIGSTOP");
    try {
      await efm.lab.psql("a", "INSERT INTO filler SELECT repeat('x', 1000) FROM generate_series(1, 4000)");
      const r = await efm.efm("a", ["promote", "acctg", "--switchover", "--to", addr("b")]);
      expect(r.code).toBe(1);
      expect(r.stdout).toMatch(
        new RegExp(
          `Switchover refused: ${addr("b").replaceAll(".", "\\.")}:23100 is \\d+ bytes behind the master \\(switchover\\.max\\.lag\\.bytes is 1048576\\)\\. Nothing was changed\\.`,
        ),
      );
    } finally {
      process.kill(wr!.pid, "SIGCONT");
    }
    expect(await picture()).toEqual(before);
    expect(before.types).toEqual({ a: "Master", b: "Standby", c: "Standby" });
    const lsn = await efm.lab.write("a", 1);
    await efm.lab.waitReplayed("b", lsn);
  });

  it("rolls back when the target cannot replay the master's last records in time: the old master is master again", async () => {
    const acked = [1_000_000, 1_000_001];
    for (const n of acked) await efm.lab.psql("a", `INSERT INTO probe VALUES (${n})`);
    await efm.lab.waitReplayed("b", await efm.lab.lsn("a"));
    // b receives WAL (its position keeps up) but replays none of it.
    await efm.lab.psql("b", "SELECT pg_wal_replay_pause()");
    try {
      const r = await efm.efm("c", ["promote", "acctg", "-switchover", "-sourcenode", addr("b")]);
      expect(r.code, r.stdout + efm.logTails()).toBe(1);
      expect(r.stdout).toMatch(
        new RegExp(
          `Switchover failed: ${addr("b").replaceAll(".", "\\.")}:23100 did not replay the master's final position [0-9A-F]+/[0-9A-F]+ within \\d+ s\\. Rolled back: ${addr("a").replaceAll(".", "\\.")}:23100 is the master again\\.`,
        ),
      );
    } finally {
      // Only while in recovery: a failure above must be reported, not hidden by this clean-up.
      await efm.lab.psql(
        "b",
        "DO $$ BEGIN IF pg_is_in_recovery() THEN PERFORM pg_wal_replay_resume(); END IF; END $$",
      );
    }
    await efm.waitTypes("a", { a: "Master", b: "Standby", c: "Standby" });
    expect(await efm.lab.inRecovery("a")).toBe(false);
    expect(await efm.lab.inRecovery("b")).toBe(true);
    expect(await missingOn("a", acked)).toEqual([]);
    const lsn = await efm.lab.write("a", 3);
    await efm.lab.waitReplayed("b", lsn);
    await efm.lab.waitReplayed("c", lsn);
  });

  it("is refused with the reason, nothing changed, when an agent is down", async () => {
    await efm.kill("c", "SIGKILL");
    await efm.waitStatus("a", "c's agent gone", (s) => s.nodes[addr("c")]?.agent !== "UP", 60_000);
    const before = await picture();
    const r = await efm.efm("a", ["promote", "acctg", "-switchover"]);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain(
      `Switchover refused: the agent of ${addr("c")}:23100 is not running: every agent must be up. Nothing was changed.`,
    );
    expect(await picture()).toEqual(before);
    expect(before.types.a).toBe("Master");
    expect(before.recovery).toEqual({ a: false, b: true, c: true });
  });
});
