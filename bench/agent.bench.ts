/**
 * The product's own numbers (issue 8): agent memory and CPU when idle, `efm cluster-status`
 * wall time on three hosts, and failover time from `kill -9` of the master postmaster to the
 * first successful write on the new master, with fast and with default settings.
 * Targets: RSS < 80 MB, CPU < 1 % of a core, cluster-status < 300 ms. Printed, not asserted.
 */
import { readFileSync } from "node:fs";
import { afterAll, beforeAll, test } from "vitest";
import { type EfmCluster, FAST, Suite, sleep, threeHosts } from "../test-e2e/harness.ts";

const suite = new Suite();
const HZ = 100; // USER_HZ on Linux

function procStat(pid: number): { cpuTicks: number; rssKb: number } {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const cpuTicks = Number(fields[11]) + Number(fields[12]); // utime + stime
  const rss = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return { cpuTicks, rssKb: Number(rss?.[1] ?? 0) };
}

async function firstWrite(c: EfmCluster, hosts: string[], deadlineMs: number): Promise<string> {
  const end = Date.now() + deadlineMs;
  for (;;) {
    for (const h of hosts) {
      try {
        await c.lab.psql(
          h,
          "CREATE TABLE IF NOT EXISTS bench_probe (t timestamptz); INSERT INTO bench_probe VALUES (now())",
        );
        return h;
      } catch {
        // Still read-only (or restarting).
      }
    }
    if (Date.now() > end) throw new Error("no standby became writable in time");
    await sleep(100);
  }
}

async function failoverRun(label: string, props: Record<string, string>, offset: number): Promise<void> {
  const lab = await suite.lab({
    name: `benchagent${offset}`,
    mode: "loopback",
    addressBase: "127.0.12",
    firstOctet: 11 + offset * 10,
    port: 15460 + offset,
    runDir: `/tmp/efm-bench-agent-${offset}`,
    hosts: threeHosts(),
  });
  const c = suite.efmCluster(lab, "bench", {
    agentPort: 17960 + offset,
    adminPort: 17970 + offset * 5,
    properties: props,
  });
  await c.startAll(["a", "b", "c"], { a: "Master", b: "Standby", c: "Standby" }, 120_000);

  if (offset === 1) {
    // Idle footprint with the default settings: the three agents over 20 s with nothing happening.
    // Let start-up traffic (status exchange, first checks, notifications) finish first.
    await sleep(15_000);
    const pids = [...c.agents.values()].map((a) => a.pid);
    const before = pids.map(procStat);
    const seconds = 20;
    await sleep(seconds * 1000);
    const after = pids.map(procStat);
    pids.forEach((pid, i) => {
      const cpu = ((after[i]!.cpuTicks - before[i]!.cpuTicks) / HZ / seconds) * 100;
      console.log(
        `agent ${["a", "b", "c"][i]} (pid ${pid}) idle: RSS ${(after[i]!.rssKb / 1024).toFixed(1)} MB, CPU ${cpu.toFixed(2)} % of a core`,
      );
    });
    const times: number[] = [];
    for (let i = 0; i < 10; i++) {
      const t0 = performance.now();
      const r = await c.efm("a", ["cluster-status", "bench"]);
      times.push(performance.now() - t0);
      if (r.code !== 0) console.log(`cluster-status exit ${r.code}`);
    }
    times.sort((x, y) => x - y);
    console.log(
      `efm cluster-status wall time: median ${times[5]!.toFixed(0)} ms, max ${times[9]!.toFixed(0)} ms (3 hosts)`,
    );
  }

  await lab.write("a", 10);
  const t0 = performance.now();
  await lab.killDb("a");
  const promoted = await firstWrite(c, ["b", "c"], 300_000);
  console.log(
    `failover (${label}): kill -9 of the master postmaster to first write on ${promoted}: ${((performance.now() - t0) / 1000).toFixed(2)} s`,
  );
  await c.killAll();
}

beforeAll(() => suite.init());
afterAll(() => suite.cleanup());

test("agent footprint, cluster-status time, failover time", { timeout: 900_000 }, async () => {
  await failoverRun("fast settings: local.period=1, jgroups 500 ms x 4", FAST, 0);
  // The guide's defaults, written out: the harness starts from its fast settings.
  const defaults = {
    "local.period": "10",
    "local.timeout": "60",
    "local.timeout.final": "10",
    "remote.timeout": "10",
    "jgroups.timeout": "5000",
    "jgroups.max.tries": "8",
  };
  await failoverRun("default settings", defaults, 1);
});
