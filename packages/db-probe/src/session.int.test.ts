import { type Cluster, createCluster, downCluster } from "@efm/lab";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type DbConnectionOptions, DbSession, promoteBySql, readFacts, sqlPromotability } from "./index.ts";

// Reserved for this file: 127.0.37.x, port 28100, run folder /tmp/efm-h1-session.
const runDir = "/tmp/efm-h1-session";
const port = 28100;
const APP = "efm session test";
let lab: Cluster;
const sessions: DbSession[] = [];

beforeAll(async () => {
  lab = await createCluster({
    name: "h1-session",
    runDir,
    port,
    addressBase: "127.0.37",
    hosts: [
      { name: "a", role: "master" },
      { name: "b", role: "standby" },
      { name: "c", role: "standby" },
    ],
  });
  // `plain` may connect and was granted nothing else (pg_promote is superuser-only by default).
  await lab.psql(
    "a",
    "CREATE ROLE plain LOGIN PASSWORD 'plain-secret'; GRANT CONNECT ON DATABASE efm TO plain",
  );
  const lsn = await lab.write("a", 1);
  await lab.waitReplayed("b", lsn);
  await lab.waitReplayed("c", lsn);
});

afterAll(async () => {
  for (const s of sessions) await s.close();
  await downCluster(runDir);
});

const conn = (host: string, extra: Partial<DbConnectionOptions> = {}): DbConnectionOptions => ({
  ...lab.efmConnection(host),
  applicationName: APP,
  ...extra,
});

function session(host: string, extra: Partial<DbConnectionOptions> = {}): DbSession {
  const s = new DbSession(conn(host, extra));
  sessions.push(s);
  return s;
}

const backendPid = (s: DbSession, ms = 5_000) =>
  s.run(ms, async (q) => Number((await q<{ pid: number }>("SELECT pg_backend_pid() AS pid")).rows[0]?.pid));

/** Our sessions' backends on a host, as the server lists them. */
async function sessionBackends(host: string): Promise<number[]> {
  const rows = await lab.psql(
    host,
    `SELECT pid FROM pg_stat_activity WHERE application_name = '${APP}' AND pid <> pg_backend_pid() ORDER BY pid`,
  );
  return rows.map((r) => Number(r.pid));
}

describe("a kept session", () => {
  it("answers every use over one backend", async () => {
    const s = session("a");
    expect(s.connected).toBe(false);
    await s.connect(5_000);
    expect(s.connected).toBe(true);
    const [opened] = await sessionBackends("a");
    const first = await backendPid(s);
    expect(first).toBe(opened);
    const facts = await readFacts(s, 5_000);
    const p = await sqlPromotability(s, 5_000);
    expect(facts).toMatchObject({ address: lab.host("a").address, inRecovery: false });
    expect(p).toMatchObject({ inRecovery: false, notPermitted: null });
    expect(await backendPid(s)).toBe(first);
    expect(await sessionBackends("a")).toEqual([first]);
    await s.close();
    await expect(backendPid(s)).rejects.toMatchObject({ code: "INVALID_OPTIONS" });
  });

  it("runs uses one at a time, in call order, on its one connection", async () => {
    const s = session("b");
    const order: string[] = [];
    const use = (name: string, sql: string) =>
      s.run(5_000, async (q) => {
        order.push(`${name} start`);
        const pid = Number((await q<{ pid: number }>(sql)).rows[0]?.pid);
        order.push(`${name} end`);
        return pid;
      });
    const pids = await Promise.all([
      use("slow", "SELECT pg_backend_pid() AS pid FROM pg_sleep(0.3)"),
      use("quick", "SELECT pg_backend_pid() AS pid"),
    ]);
    expect(order).toEqual(["slow start", "slow end", "quick start", "quick end"]);
    expect(pids[0]).toBe(pids[1]);
    await s.close();
  });

  it("replaces a connection the server ended during a use, once, within the same use", async () => {
    const s = session("b");
    const before = await backendPid(s);
    let tries = 0;
    const after = await s.run(5_000, async (q) => {
      tries++;
      // The first try ends its own backend: the statement fails with 57P01 on a broken connection.
      if (tries === 1) await q("SELECT pg_terminate_backend(pg_backend_pid())");
      return Number((await q<{ pid: number }>("SELECT pg_backend_pid() AS pid")).rows[0]?.pid);
    });
    expect(tries).toBe(2);
    // (The ended backend may still be listed for a moment: compare pids, not the server's list.)
    expect(after).not.toBe(before);
    await s.close();
  });

  it("does not retry a statement the server refused, and keeps the connection", async () => {
    const s = session("b");
    const before = await backendPid(s);
    let tries = 0;
    await expect(
      s.run(5_000, async (q) => {
        tries++;
        await q("CREATE TABLE not_on_a_standby (x int)");
      }),
    ).rejects.toMatchObject({ code: "25006" });
    expect(tries).toBe(1);
    expect(await backendPid(s)).toBe(before);
    await s.close();
  });

  it("reconnects on the next use after the server restarted", async () => {
    const s = session("b");
    const before = await backendPid(s);
    await lab.stopDb("b", "fast");
    await expect(backendPid(s)).rejects.toMatchObject({ code: "ECONNREFUSED" });
    await lab.startDb("b");
    const after = await backendPid(s);
    expect(after).not.toBe(before);
    expect(await sessionBackends("b")).toEqual([after]);
    await s.close();
  });

  it("gives TIMEOUT for a hung server within its bound, and works again once it resumes", async () => {
    const s = session("b");
    const before = await backendPid(s);
    lab.hangDb("b");
    try {
      await expect(backendPid(s, 1_000)).rejects.toMatchObject({ code: "TIMEOUT" });
      // A use that waits behind a hung one is bounded by its own timeout too.
      const hung = s.run(1_000, (q) => q("SELECT 1"));
      const queued = s.run(1_500, (q) => q("SELECT 2"));
      await expect(hung).rejects.toMatchObject({ code: "TIMEOUT" });
      await expect(queued).rejects.toMatchObject({ code: "TIMEOUT" });
    } finally {
      lab.resumeDb("b");
    }
    const after = await backendPid(s);
    expect(after).not.toBe(before);
    await s.close();
  });
});

describe("promotion over a kept session", () => {
  it("says a db.user without EXECUTE on pg_promote cannot promote over SQL, changing nothing", async () => {
    const s = session("c", { user: "plain", password: "plain-secret" });
    expect(await sqlPromotability(s, 5_000)).toMatchObject({
      inRecovery: true,
      notPermitted: expect.stringMatching(/db\.user=plain may not execute pg_promote\(\)/),
    });
    const r = await promoteBySql(s, 10);
    expect(r.outcome).toBe("notPermitted");
    expect(await lab.inRecovery("c")).toBe(true);
    await s.close();
  });

  it("promotes a real standby over the same backend that found it promotable", async () => {
    const s = session("c");
    expect(await sqlPromotability(s, 5_000)).toMatchObject({ inRecovery: true, notPermitted: null });
    const pid = await backendPid(s);
    expect(await promoteBySql(s, 30)).toMatchObject({ outcome: "promoted" });
    expect(await lab.inRecovery("c")).toBe(false);
    expect(await readFacts(s, 5_000)).toMatchObject({ inRecovery: false });
    expect(await promoteBySql(s, 30)).toMatchObject({ outcome: "alreadyMaster" });
    expect(await backendPid(s)).toBe(pid);
    await s.close();
  });
});
