import { type Cluster, createCluster, downCluster } from "@efm/lab";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  ConnectionWatch,
  type DbConnectionOptions,
  HealthMonitor,
  type MonitorEvent,
  PgChecker,
  pgWatchConnector,
  promoteBySql,
  type WatchEvent,
} from "./index.ts";

// Reserved for this file: 127.0.27.x, port 27015, run folder /tmp/efm-h3-watch.
const runDir = "/tmp/efm-h3-watch";
const port = 27015;
let lab: Cluster;

beforeAll(async () => {
  lab = await createCluster({
    name: "h3-watch",
    runDir,
    port,
    addressBase: "127.0.27",
    hosts: [
      { name: "a", role: "master" },
      { name: "b", role: "standby" },
      { name: "c", role: "standby" },
    ],
  });
  // `plain` may connect and was granted nothing else (pg_promote is superuser-only by default);
  // db.user may promote over SQL (a grant is per database: it must be made in db.database).
  await lab.psql(
    "a",
    `CREATE ROLE plain LOGIN PASSWORD 'plain-secret'; GRANT CONNECT ON DATABASE efm TO plain;
     GRANT EXECUTE ON FUNCTION pg_promote(boolean, integer) TO ${lab.efmUser}`,
  );
  const lsn = await lab.write("a", 1);
  await lab.waitReplayed("b", lsn);
  await lab.waitReplayed("c", lsn);
});

afterAll(async () => {
  await downCluster(runDir);
});

const conn = (host: string, extra: Partial<DbConnectionOptions> = {}): DbConnectionOptions => ({
  ...lab.efmConnection(host),
  applicationName: "efm-h3-watch",
  ...extra,
});

/** Every event of a watch, and a way to wait for the next one of a type. */
function record(watch: ConnectionWatch) {
  const events: WatchEvent[] = [];
  const waiters: { type: WatchEvent["type"]; from: number; resolve: (e: WatchEvent) => void }[] = [];
  watch.on((e) => {
    // Whether the postmaster's pid is learned before our backend is terminated is a race;
    // ./postmaster-watch.int.test.ts covers that event.
    if (e.type === "postmaster") return;
    events.push(e);
    for (const w of [...waiters]) {
      const hit = events.slice(w.from).find((x) => x.type === w.type);
      if (hit) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(hit);
      }
    }
  });
  /** The first event of `type` after the `from`-th event (default: any seen so far or later). */
  const next = (type: WatchEvent["type"], from = 0): Promise<WatchEvent> => {
    const hit = events.slice(from).find((x) => x.type === type);
    if (hit) return Promise.resolve(hit);
    return new Promise((resolve) => waiters.push({ type, from, resolve }));
  };
  return { events, next };
}

describe("the monitoring connection", () => {
  it("survives the termination of its own backend: reconnects at once and reports no loss", async () => {
    const watch = new ConnectionWatch({
      connector: pgWatchConnector(conn("a")),
      connectTimeoutMs: 2_000,
      retryMs: 3_600_000,
    });
    const { events, next } = record(watch);
    watch.start();
    await next("connected");
    const killed = await lab.psql(
      "a",
      "SELECT count(*)::int AS n FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'efm-h3-watch') t",
    );
    expect(killed[0]?.n).toBe(1);
    const again = await next("connected", 1);
    watch.stop();
    expect(again).toMatchObject({ type: "connected", again: true });
    expect(events.map((e) => e.type)).toEqual(["connected", "dropped", "connected"]);
    expect(events[1]).toMatchObject({ cause: { code: "NOT_ACCEPTING", detail: "57P01" } });
  });

  it("reports a kill -9 of the postmaster when it happens, while the periodic check is an hour away", async () => {
    // The poll: one check at start, the next one only after local.period = 1 h.
    const monitor = new HealthMonitor({
      checker: new PgChecker(conn("a")),
      periodMs: 3_600_000,
      timeoutMs: 3_600_000,
      finalTimeoutMs: 5_000,
    });
    const checks: MonitorEvent[] = [];
    monitor.on((e) => {
      if (e.type === "check") checks.push(e);
    });
    const healthy = new Promise<void>((r) => monitor.on((e) => e.type === "healthy" && r()));
    monitor.start();
    await healthy;
    const watch = new ConnectionWatch({
      connector: pgWatchConnector(conn("a")),
      connectTimeoutMs: 2_000,
      retryMs: 3_600_000,
    });
    const { events, next } = record(watch);
    watch.start();
    await next("connected");
    await lab.killDb("a");
    const lost = (await next("lost")) as Extract<WatchEvent, { type: "lost" }>;
    // Only the start-up check ran: the loss came from the connection, not from a poll.
    const checksSeen = checks.length;
    watch.stop();
    await monitor.stop();
    expect(checksSeen).toBe(1);
    expect(events.map((e) => e.type)).toEqual(["connected", "dropped", "lost"]);
    // The backend says "unexpected postmaster exit" (57P01), or the socket just ends.
    expect(["NOT_ACCEPTING", "CONNECTION_LOST"]).toContain(lost.cause.code);
    expect(lost.failure).toMatchObject({ code: "REFUSED", detail: "ECONNREFUSED" });
  });

  it("reports a fast shutdown as lost and says when the database is back", async () => {
    await lab.startDb("a");
    const watch = new ConnectionWatch({
      connector: pgWatchConnector(conn("a")),
      connectTimeoutMs: 2_000,
      retryMs: 200,
    });
    const { events, next } = record(watch);
    watch.start();
    await next("connected");
    await lab.stopDb("a", "fast");
    const lost = (await next("lost")) as Extract<WatchEvent, { type: "lost" }>;
    expect(lost.cause).toMatchObject({ code: "NOT_ACCEPTING", detail: "57P01" });
    // The reconnect races the server's exit: refused once its socket is gone, "shutting down"
    // while it still accepts, or a connection that ends unanswered as the postmaster exits.
    expect(["REFUSED", "NOT_ACCEPTING", "CONNECTION_LOST"]).toContain(lost.failure.code);
    await lab.startDb("a");
    await next("restored");
    const back = await next("connected", 1);
    watch.stop();
    expect(back).toMatchObject({ again: true });
    expect(events.slice(0, 3).map((e) => e.type)).toEqual(["connected", "dropped", "lost"]);
    expect(events.filter((e) => e.type === "restored")).toHaveLength(1);
  });
});

describe("promotion over SQL", () => {
  it("changes nothing for a db.user that may not run pg_promote(), and says so", async () => {
    const r = await promoteBySql(conn("b", { user: "plain", password: "plain-secret" }), 10);
    expect(r.outcome).toBe("notPermitted");
    expect(r.outcome === "notPermitted" && r.reason).toMatch(/db\.user=plain may not execute pg_promote\(\)/);
    expect(await lab.inRecovery("b")).toBe(true);
  });

  it("promotes a standby with pg_promote() and finds it out of recovery", async () => {
    const r = await promoteBySql(conn("c"), 30);
    expect(r).toMatchObject({ outcome: "promoted" });
    expect(await lab.inRecovery("c")).toBe(false);
    const again = await promoteBySql(conn("c"), 30);
    expect(again.outcome).toBe("alreadyMaster");
  });

  it("rejects with the classified reason when the database is not there", async () => {
    await lab.stopDb("b", "fast");
    await expect(promoteBySql(conn("b"), 5)).rejects.toMatchObject({ code: "REFUSED" });
  });
});
