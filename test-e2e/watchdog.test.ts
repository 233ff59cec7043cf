/**
 * The watchdog with a real agent and a real PostgreSQL master, against a SIMULATED device: a
 * regular file the test reads (its timeout in `<device>.timeout`). No test may load softdog or
 * open /dev/watchdog: a test that died with a real device armed would reset this machine.
 *
 * Addresses 127.0.22.x, database port 15422, agent port 17770, admin port 17780.
 */
import { existsSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type EfmCluster, Suite, sleep, waitUntil } from "./harness.ts";

const suite = new Suite();
let efm: EfmCluster;
let device = "";

beforeAll(async () => {
  await suite.init();
  const lab = await suite.lab({
    name: "e2e-watchdog",
    mode: "loopback",
    hosts: [{ name: "a", role: "master" }],
    port: 15422,
    addressBase: "127.0.22",
    runDir: "/tmp/efm-e2e-watchdog",
  });
  device = join(lab.runDir, "simulated-watchdog");
  rmSync(device, { force: true });
  rmSync(`${device}.timeout`, { force: true });
  efm = suite.efmCluster(lab, "acctg", {
    agentPort: 17770,
    adminPort: 17780,
    properties: {
      // L = 3 s, takeover margin 1.04 s: a 1 s device fits after a 500 ms safety margin.
      "jgroups.timeout": "1000",
      "jgroups.max.tries": "4",
      "watchdog.mode": "required",
      "watchdog.device": device,
      "watchdog.safety.margin": "500",
    },
  });
  // A first node founds a cluster of one and runs as its master (guide 3.2.2).
  writeFileSync(efm.files.a!.nodesFile, "");
}, 180_000);

afterAll(async () => {
  await suite.cleanup();
});

function processState(pid: number): string {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const end = stat.lastIndexOf(")");
  return stat.slice(end + 2, end + 3);
}

describe("watchdog.mode=required on a master (simulated device)", () => {
  it("refuses to start without a device, or with one whose timeout outlasts the takeover, saying why", async () => {
    const startupLog = join(efm.agentDir("a"), "startup-acctg.log");
    expect(existsSync(device)).toBe(false);
    const missing = efm.start("a");
    expect((await missing.exited).code).not.toBe(0);
    expect(readFileSync(startupLog, "utf8")).toContain(
      `watchdog.device=${device}: does not exist, and watchdog.mode=required lets no master run without it`,
    );
    expect(existsSync(device)).toBe(false);

    // softdog's default: 60 s, far longer than a 3 s lease plus its 1.04 s margin.
    writeFileSync(device, "");
    writeFileSync(`${device}.timeout`, "60\n");
    const tooLong = efm.start("a");
    expect((await tooLong.exited).code).not.toBe(0);
    expect(readFileSync(startupLog, "utf8")).toContain(
      `watchdog.mode=required: watchdog.device=${device}: the device's timeout (60000 ms) is longer than`,
    );
    expect(readFileSync(device, "utf8")).toBe("");
  });

  it("feeds it while master, not while SIGSTOPped, and disarms it with 'V' on SIGTERM", async () => {
    writeFileSync(device, "");
    writeFileSync(`${device}.timeout`, "1\n");
    await efm.startAll(["a"], { a: "Master" });
    const size = () => readFileSync(device).length;
    expect(await waitUntil(() => size() >= 3, 30_000, 50)).toBe(true);
    const agent = efm.agents.get("a")!;
    process.kill(agent.pid, "SIGSTOP");
    try {
      expect(await waitUntil(() => processState(agent.pid) === "T", 10_000, 20)).toBe(true);
      const frozen = size();
      await sleep(1500);
      // A stopped process writes nothing: a real device would now reset the host.
      expect(size()).toBe(frozen);
    } finally {
      process.kill(agent.pid, "SIGCONT");
    }
    await efm.kill("a", "SIGTERM");
    expect((await agent.exited).code).toBe(0);
    expect(readFileSync(device, "utf8")).toMatch(/^1{3,}V$/);
  });
});
