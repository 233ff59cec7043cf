import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import { type Cluster, createCluster, downCluster } from "@efm/lab";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  type DbConnectionOptions,
  HealthMonitor,
  Lsn,
  type MonitorEvent,
  PgChecker,
  readFacts,
  remoteCheck,
  timingFromSeconds,
} from "./index.ts";

// Reserved for this file: 127.0.2.x, port 15402, /tmp/efm-lab-it-dbprobe, /tmp/efm-it-dbprobe-certs.
const runDir = "/tmp/efm-lab-it-dbprobe";
const certDir = "/tmp/efm-it-dbprobe-certs";
const port = 15402;
let lab: Cluster;

function makeCert(): void {
  fs.rmSync(certDir, { recursive: true, force: true });
  fs.mkdirSync(certDir, { mode: 0o755 });
  execFileSync(
    "openssl",
    [
      "req",
      "-x509",
      "-newkey",
      "rsa:2048",
      "-nodes",
      "-days",
      "2",
      "-subj",
      "/CN=efm-lab",
      "-addext",
      "subjectAltName=IP:127.0.2.11,IP:127.0.2.12",
      "-keyout",
      `${certDir}/server.key`,
      "-out",
      `${certDir}/server.crt`,
    ],
    { stdio: "ignore" },
  );
  fs.chmodSync(`${certDir}/server.key`, 0o600);
  if (process.getuid?.() === 0) {
    // The key must belong to the server's OS user, or PostgreSQL refuses to start.
    const id = (flag: string) => Number(execFileSync("id", [flag, "postgres"], { encoding: "utf8" }).trim());
    for (const f of ["server.key", "server.crt"]) fs.chownSync(`${certDir}/${f}`, id("-u"), id("-g"));
  }
}

const conn = (host: string, extra: Partial<DbConnectionOptions> = {}): DbConnectionOptions => ({
  ...lab.efmConnection(host),
  ...extra,
});

async function efmBackends(host: string): Promise<number> {
  const rows = await lab.psql(host, "SELECT count(*)::int AS n FROM pg_stat_activity WHERE usename = 'efm'");
  return Number(rows[0]?.n);
}

/** Collect monitor events until one matches, or fail after ms. */
function waitEvent(m: HealthMonitor, type: MonitorEvent["type"], ms: number): Promise<MonitorEvent> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      off();
      reject(new Error(`no ${type} event within ${ms} ms`));
    }, ms);
    const off = m.on((e) => {
      if (e.type === type) {
        clearTimeout(timer);
        off();
        resolve(e);
      }
    });
  });
}

beforeAll(async () => {
  makeCert();
  lab = await createCluster({
    name: "it-dbprobe",
    runDir,
    port,
    addressBase: "127.0.2",
    hosts: [
      { name: "a", role: "master" },
      { name: "b", role: "standby" },
    ],
    postgresConf: {
      max_connections: 12,
      ssl: "on",
      ssl_cert_file: `${certDir}/server.crt`,
      ssl_key_file: `${certDir}/server.key`,
    },
    hbaLines: [
      "host all blocked 0.0.0.0/0 reject",
      "hostssl all efmssl 0.0.0.0/0 scram-sha-256",
      "hostnossl all efmssl 0.0.0.0/0 reject",
    ],
  });
  await lab.psql(
    "a",
    "CREATE ROLE blocked LOGIN PASSWORD 'x'; CREATE ROLE efmssl LOGIN PASSWORD 'tls-secret'; GRANT CONNECT ON DATABASE efm TO efmssl",
  );
});

afterAll(async () => {
  await downCluster(runDir);
  fs.rmSync(certDir, { recursive: true, force: true });
});

describe("facts", () => {
  it("reads role, version, WAL positions and the replication views", async () => {
    const lsn = await lab.write("a", 5);
    await lab.waitReplayed("b", lsn);
    // The standby first: it only ever holds WAL the master had already written, so a master
    // position read afterwards is at least as far whatever WAL is written in between.
    const b = await readFacts(conn("b"), 5_000);
    const a = await readFacts(conn("a"), 5_000);
    expect(a.inRecovery).toBe(false);
    expect(b.inRecovery).toBe(true);
    expect(a.serverVersionNum).toBeGreaterThanOrEqual(150000);
    expect(a.serverVersion).toMatch(/^15\./);
    expect(a.currentLsn).not.toBeNull();
    expect(b.currentLsn).toBeNull();
    expect(Lsn.compare(b.replayLsn, Lsn.parse(lsn))).toBeGreaterThanOrEqual(0);
    expect(Lsn.compare(a.position, b.position)).toBeGreaterThanOrEqual(0);
    expect(a.replication).toHaveLength(1);
    expect(a.replication[0]).toMatchObject({
      applicationName: "b",
      clientAddress: expect.any(String),
      state: "streaming",
    });
    expect(a.walReceiver).toBeNull();
    expect(b.walReceiver).toMatchObject({ status: "streaming", senderHost: "127.0.2.11", senderPort: port });
    expect(b.walReceiver?.conninfo).not.toContain("lab-replication");
  });

  it("positions move forward numerically as rows are written", async () => {
    const before = (await readFacts(conn("a"), 5_000)).currentLsn!;
    await lab.write("a", 200);
    const after = (await readFacts(conn("a"), 5_000)).currentLsn!;
    expect(after.isAfter(before)).toBe(true);
  });

  it("throws a classified DbProbeError when the database cannot be read", async () => {
    await expect(readFacts(conn("a", { password: "nope" }), 5_000)).rejects.toMatchObject({
      code: "INVALID_PASSWORD",
      address: "127.0.2.11",
    });
    await expect(readFacts(conn("a", { port: 1 }), 5_000)).rejects.toMatchObject({ code: "REFUSED" });
    await expect(readFacts(conn("a", { port: 0 }), 5_000)).rejects.toMatchObject({ code: "INVALID_OPTIONS" });
  });
});

describe("classification (remote checks)", () => {
  it("reaches a healthy database", async () => {
    const r = await remoteCheck(conn("b"), 5_000);
    expect(r).toMatchObject({ ok: true, inRecovery: true });
  });

  it("classifies refused, invalid password, invalid authorization and a missing database", async () => {
    const code = async (c: DbConnectionOptions) => {
      const r = await remoteCheck(c, 5_000);
      return r.ok ? "ok" : r.failure.code;
    };
    expect(await code(conn("a", { host: "127.0.2.99" }))).toBe("REFUSED");
    expect(await code(conn("a", { password: "wrong" }))).toBe("INVALID_PASSWORD");
    expect(await code(conn("a", { user: "blocked", password: "x" }))).toBe("INVALID_AUTHORIZATION");
    expect(await code(conn("a", { database: "no_such_db" }))).toBe("DATABASE_MISSING");
  });

  it("classifies max connections reached", async () => {
    const held: pg.Client[] = [];
    try {
      let failure: string | null = null;
      for (let i = 0; i < 20 && failure === null; i++) {
        const r = await remoteCheck(conn("a"), 5_000);
        if (!r.ok) failure = r.failure.code;
        else {
          const c = new pg.Client(lab.efmConnection("a"));
          c.on("error", () => {});
          await c.connect().then(
            () => held.push(c),
            () => {},
          );
        }
      }
      expect(failure).toBe("MAX_CONNECTIONS");
    } finally {
      await Promise.all(held.map((c) => c.end()));
    }
  });

  it("classifies a server that is shutting down as not accepting connections", async () => {
    const holder = new pg.Client(lab.superuserConnection("b"));
    await holder.connect();
    const stopping = lab.stopDb("b", "smart"); // waits for our session to end
    try {
      let code: string | null = null;
      for (let i = 0; i < 100 && code !== "NOT_ACCEPTING"; i++) {
        const r = await remoteCheck(conn("b"), 2_000);
        code = r.ok ? "ok" : r.failure.code;
        await new Promise((res) => setTimeout(res, 50));
      }
      expect(code).toBe("NOT_ACCEPTING");
    } finally {
      await holder.end();
      await stopping;
      await lab.startDb("b");
    }
  });

  it("times out against a host that never answers", async () => {
    lab.hangDb("b");
    try {
      const r = await remoteCheck(conn("b"), 800);
      expect(r).toMatchObject({ ok: false, failure: { code: "TIMEOUT", address: "127.0.2.12" } });
    } finally {
      lab.resumeDb("b");
    }
  });
});

describe("jdbc.ssl", () => {
  const ca = () => fs.readFileSync(`${certDir}/server.crt`);
  const tlsUser = { user: "efmssl", password: "tls-secret" };

  it("uses TLS on every connection when ssl is set", async () => {
    expect(await remoteCheck(conn("a", { ...tlsUser, ssl: { ca: ca() } }), 5_000)).toMatchObject({
      ok: true,
    });
    // The same login without TLS hits the hostnossl reject line.
    const plain = await remoteCheck(conn("a", tlsUser), 5_000);
    expect(plain).toMatchObject({ ok: false, failure: { code: "INVALID_AUTHORIZATION" } });
    const checker = new PgChecker(conn("a", { ...tlsUser, ssl: { ca: ca() } }), { reuseCount: 3 });
    for (let i = 0; i < 5; i++) expect((await checker.check(5_000)).ok).toBe(true);
    await checker.close();
  });

  it("refuses a certificate it cannot verify", async () => {
    const r = await remoteCheck(conn("a", { ...tlsUser, ssl: true }), 5_000);
    expect(r).toMatchObject({ ok: false, failure: { code: "SSL_FAILED" } });
  });
});

describe("connection hygiene", () => {
  it("honours db.reuse.connection.count (0 = new connection per check, N = reused N times)", async () => {
    const pids = async (reuseCount: number) => {
      const checker = new PgChecker(conn("a"), { reuseCount });
      const seen: number[] = [];
      for (let i = 0; i < 10; i++) {
        const r = await checker.check(5_000);
        if (!r.ok) throw new Error(r.failure.message);
        seen.push(r.backendPid);
      }
      await checker.close();
      return seen;
    };
    expect(new Set(await pids(0)).size).toBe(10);
    const four = await pids(4); // each connection serves 5 checks
    expect(new Set(four).size).toBe(2);
    expect(new Set(four.slice(0, 5)).size).toBe(1);
  });

  it("1,000 checks leave the server's backend count at its baseline", async () => {
    const baseline = await efmBackends("a");
    for (const reuseCount of [0, 9]) {
      const checker = new PgChecker(conn("a"), { reuseCount });
      for (let i = 0; i < 1000; i++) {
        const r = await checker.check(5_000);
        if (!r.ok) throw new Error(`check ${i} failed: ${r.failure.message}`);
      }
      // With reuse, at most the one kept connection is open while the checker lives.
      expect(await efmBackends("a")).toBeLessThanOrEqual(baseline + 1);
      await checker.close();
    }
    let now = await efmBackends("a");
    for (let i = 0; i < 50 && now !== baseline; i++) {
      await new Promise((r) => setTimeout(r, 100));
      now = await efmBackends("a");
    }
    expect(now).toBe(baseline);
  });
});

describe("local health monitor on a real server", () => {
  // local.period=1, local.timeout=4, local.timeout.final=2
  const timing = timingFromSeconds(1, 4, 2);

  for (const reuseCount of [0, 5]) {
    it(`detects kill -9 within local.period + local.timeout.final (+1 s), reuse=${reuseCount}`, async () => {
      const monitor = new HealthMonitor({ ...timing, checker: new PgChecker(conn("b"), { reuseCount }) });
      try {
        const healthy = waitEvent(monitor, "healthy", 10_000);
        monitor.start();
        await healthy;
        await new Promise((r) => setTimeout(r, 1_500));
        const failed = waitEvent(monitor, "failed", 20_000);
        const killedAt = Date.now();
        await lab.killDb("b");
        const e = (await failed) as Extract<MonitorEvent, { type: "failed" }>;
        expect(e.reason).toBe("definite");
        expect(e.failure.code).toBe("REFUSED");
        expect(Date.now() - killedAt).toBeLessThanOrEqual(timing.periodMs + timing.finalTimeoutMs + 1_000);
        const recovered = waitEvent(monitor, "recovered", 30_000);
        await lab.startDb("b");
        expect(await recovered).toMatchObject({ inRecovery: true });
      } finally {
        await monitor.stop();
        await lab.startDb("b");
      }
    });
  }

  it("declares a SIGSTOPped server failed only once local.timeout has passed", async () => {
    const monitor = new HealthMonitor({ ...timing, checker: new PgChecker(conn("b"), { reuseCount: 5 }) });
    const events: MonitorEvent[] = [];
    monitor.on((e) => events.push(e));
    try {
      const healthy = waitEvent(monitor, "healthy", 10_000);
      monitor.start();
      await healthy;
      const failed = waitEvent(monitor, "failed", 30_000);
      const hungAt = Date.now();
      lab.hangDb("b");
      const e = (await failed) as Extract<MonitorEvent, { type: "failed" }>;
      expect(e.reason).toBe("timeout");
      expect(e.failure.code).toBe("TIMEOUT");
      expect(Date.now() - hungAt).toBeGreaterThanOrEqual(timing.timeoutMs);
      expect(events.some((x) => x.type === "slow")).toBe(false);
      const recovered = waitEvent(monitor, "recovered", 20_000);
      lab.resumeDb("b");
      await recovered;
    } finally {
      lab.resumeDb("b");
      await monitor.stop();
    }
  });

  it("reports slow (Agent is timing out) when the server answers the final check after a hang", async () => {
    // local.period=1, local.timeout=3, local.timeout.final=4: resume mid-way through the final check.
    const monitor = new HealthMonitor({ ...timingFromSeconds(1, 3, 4), checker: new PgChecker(conn("b")) });
    const events: MonitorEvent[] = [];
    monitor.on((e) => events.push(e));
    try {
      const healthy = waitEvent(monitor, "healthy", 10_000);
      monitor.start();
      await healthy;
      const slow = waitEvent(monitor, "slow", 20_000);
      lab.hangDb("b");
      await new Promise((r) => setTimeout(r, 4_000));
      lab.resumeDb("b");
      const e = (await slow) as Extract<MonitorEvent, { type: "slow" }>;
      expect(e.silentForMs).toBeGreaterThanOrEqual(3_000);
      expect(events.some((x) => x.type === "failed")).toBe(false);
    } finally {
      lab.resumeDb("b");
      await monitor.stop();
    }
  });

  it("reports an authentication failure as invalid password", async () => {
    const monitor = new HealthMonitor({
      ...timingFromSeconds(0.2, 1, 0.5),
      checker: new PgChecker(conn("a", { password: "wrong" })),
    });
    try {
      const failed = waitEvent(monitor, "failed", 10_000);
      monitor.start();
      const e = (await failed) as Extract<MonitorEvent, { type: "failed" }>;
      expect(e.failure.code).toBe("INVALID_PASSWORD");
      expect(monitor.status().lastFailure?.code).toBe("INVALID_PASSWORD");
    } finally {
      await monitor.stop();
    }
  });
});
