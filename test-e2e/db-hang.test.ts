/**
 * Issue 13, "master database hung": the master's postmaster and every backend are SIGSTOP'd for
 * about 20 s, then SIGCONT'd. The agents must fail over (guide 8.1: nobody reaches the master
 * database), and the fence must stop the hung server for real (SIGKILL works on a stopped
 * process), so that after SIGCONT the old master never takes a write again. A writer tries an
 * INSERT on the old master every 50 ms, each time over a new connection, from before the hang to
 * well after it.
 */
import { readdirSync, readFileSync } from "node:fs";
import { createConnection } from "node:net";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type EfmCluster, Suite, sleep, threeHosts } from "./harness.ts";

const suite = new Suite();
let efm: EfmCluster;
const PORT = 15421;
const A = "127.0.21.11";

beforeAll(async () => {
  await suite.init();
  const lab = await suite.lab({
    name: "e2e-db-hang",
    mode: "loopback",
    hosts: threeHosts(),
    port: PORT,
    addressBase: "127.0.21",
    runDir: "/tmp/efm-e2e-db-hang",
  });
  efm = suite.efmCluster(lab, "acctg", { agentPort: 17750, adminPort: 17760 });
  await efm.startAll(["a", "b", "c"], { a: "Master", b: "Standby", c: "Standby" });
});

afterAll(async () => {
  await suite.cleanup();
});

let lastError = "";

/** One write attempt on `host` over a new connection; true only when the INSERT was acknowledged. */
async function tryWrite(host: string, n: number): Promise<boolean> {
  const client = new pg.Client({
    ...efm.lab.efmConnection(host),
    password: efm.lab.efmPassword,
    connectionTimeoutMillis: 1_000,
    query_timeout: 1_000,
  });
  client.on("error", () => {});
  const bounded = new Promise<boolean>((r) => setTimeout(() => r(false), 3_000).unref());
  const attempt = (async () => {
    try {
      await client.connect();
      await client.query("INSERT INTO hang_probe VALUES ($1)", [n]);
      return true;
    } catch (e) {
      lastError = (e as Error).message;
      return false;
    }
  })();
  try {
    return await Promise.race([attempt, bounded]);
  } finally {
    client.end().catch(() => {});
  }
}

interface Attempt {
  /** performance.now() when the attempt's new connection was opened. */
  readonly startedAt: number;
  readonly ok: boolean;
}

/** Writes to `host` every 50 ms (one attempt at a time, each on a new connection) until stopped. */
function writer(host: string): { attempts: Attempt[]; stop: () => Promise<void> } {
  const attempts: Attempt[] = [];
  let running = true;
  const done = (async () => {
    for (let n = 0; running; n++) {
      const startedAt = performance.now();
      const ok = await tryWrite(host, n);
      attempts.push({ startedAt, ok });
      const wait = 50 - (performance.now() - startedAt);
      if (wait > 0) await sleep(wait);
    }
  })();
  return {
    attempts,
    stop: async () => {
      running = false;
      await done;
    },
  };
}

/** The postmaster and every process it forked, from /proc. */
function serverTree(pm: number): number[] {
  const children = readdirSync("/proc")
    .filter((n) => /^\d+$/.test(n))
    .filter((n) => {
      try {
        const stat = readFileSync(`/proc/${n}/stat`, "utf8");
        return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]) === pm;
      } catch {
        return false;
      }
    })
    .map(Number);
  return [pm, ...children];
}

function refused(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createConnection({ host, port });
    s.setTimeout(2_000, () => {
      s.destroy();
      resolve(false);
    });
    s.once("connect", () => {
      s.destroy();
      resolve(false);
    });
    s.once("error", (e: NodeJS.ErrnoException) => resolve(e.code === "ECONNREFUSED"));
  });
}

describe("master database hung for 20 s, then resumed (issue 13)", () => {
  it("promotes a standby, and the old master never accepts a write after the hang", async () => {
    await efm.lab.psql("a", "CREATE TABLE hang_probe (n int)");
    await efm.lab.psql("a", `GRANT INSERT ON hang_probe TO ${efm.lab.efmUser}`);
    const lsn = await efm.lab.write("a", 10);
    await efm.lab.waitReplayed("b", lsn);
    await efm.lab.waitReplayed("c", lsn);

    const w = writer("a");
    // The writer does reach the master while it is healthy, so zero later is not for want of trying.
    const healthy = await (async () => {
      for (let i = 0; i < 100 && !w.attempts.some((x) => x.ok); i++) await sleep(100);
      return w.attempts.some((x) => x.ok);
    })();
    expect(healthy, lastError).toBe(true);

    const pm = efm.lab.postmasterPid("a");
    expect(pm).not.toBeNull();
    const mark = suite.smtp.mark();
    const stoppedAt = performance.now();
    efm.lab.hangDb("a");
    const tree = serverTree(pm!);

    await suite.smtp.waitFor("Failover has completed on cluster acctg", 120_000, mark);
    const s = await efm.waitStatus("b", "a new master", (st) =>
      ["127.0.21.12", "127.0.21.13"].some((h) => st.nodes[h]?.type === "Master"),
    );
    const winner = s.nodes["127.0.21.12"]?.type === "Master" ? "b" : "c";
    expect(await efm.lab.inRecovery(winner)).toBe(false);

    // Hold the hang to about 20 s, then wake every process that was stopped.
    const held = performance.now() - stoppedAt;
    if (held < 20_000) await sleep(20_000 - held);
    const resumedAt = performance.now();
    for (const pid of tree) {
      try {
        process.kill(pid, "SIGCONT");
      } catch {
        // Already gone: the fence killed it.
      }
    }
    // Keep writing to the old master for a while after the wake-up.
    await sleep(5_000);
    await w.stop();

    const afterHang = w.attempts.filter((x) => x.startedAt > stoppedAt);
    const afterResume = w.attempts.filter((x) => x.startedAt > resumedAt);
    // Attempts were made all along, and none opened after the hang began was acknowledged: the
    // old master took no write after the promotion (nor during the hang).
    expect(afterResume.length).toBeGreaterThan(20);
    expect(afterHang.filter((x) => x.ok)).toEqual([]);

    // The old master is down, not just read-only: no postmaster, its port refused, Idle.
    expect(efm.lab.postmasterPid("a")).toBeNull();
    expect(await refused(A, PORT)).toBe(true);
    await efm.waitTypes(winner, { a: "Idle", [winner]: "Master" });
    const log = readFileSync(`${efm.agentDir("a")}/acctg.log`, "utf8");
    expect(log).toContain("database fenced: stopped and confirmed down");
    // The new master takes the writes.
    const rows = await efm.lab.count(winner);
    await efm.lab.write(winner, 3);
    expect(await efm.lab.count(winner)).toBe(rows + 3);
  });
});
