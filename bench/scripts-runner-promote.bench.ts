// The privileged helper's cost on the failover path, PostgreSQL 15 (issue 15: no process start
// on the failover path). Two ways to reach the helper:
//  - long-lived: started once (as the agent does), each request a line on its stdin;
//  - fresh: one process per request (node start-up, reading the properties, dropping to
//    db.service.owner), the agent's fallback and the only way before.
// Measured: a `check` round trip (nothing changes: the pure cost of reaching the helper), and a
// failover's fence + promote round trip, from the fence request until the new master took a
// write. Prints min / median / max; it asserts nothing about time.
import { execFileSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, expect, it } from "vitest";
import { encrypt } from "../packages/password-crypto/src/index.ts";
import {
  check,
  fence,
  HelperClient,
  type HelperOptions,
  type HelperTarget,
  promote,
} from "../packages/scripts-runner/src/index.ts";
import { type Cluster, createCluster, downCluster, type EfmHostFiles } from "../tooling/lab/src/index.ts";

// H2's reserved range: 127.0.28.x, ports 28000-28999, /tmp/efm-h2-*.
const runDir = "/tmp/efm-h2-bench";
const CLUSTER = "h2bench";
const CHECKS = 10;
const FAILOVERS = 6;
let lab: Cluster;
let files: Record<string, EfmHostFiles>;
const clients = new Map<string, HelperClient>();

beforeAll(async () => {
  execFileSync("npx", [
    "tsc",
    "-p",
    fileURLToPath(new URL("../packages/scripts-runner/tsconfig.build.json", import.meta.url)),
  ]);
  lab = await createCluster({
    name: "h2-bench",
    runDir,
    port: 28402,
    addressBase: "127.0.28",
    firstOctet: 41,
    hosts: [
      { name: "m", role: "master" },
      { name: "s", role: "standby" },
    ],
  });
  files = lab.writeEfmFiles(CLUSTER, {
    passwordEncrypted: encrypt(lab.efmPassword, CLUSTER),
    properties: { "user.email": "dba@example.com" },
  });
  for (const host of ["m", "s"]) {
    const c = new HelperClient(fresh(host));
    expect(await c.start()).toMatchObject({ persistent: true });
    clients.set(host, c);
  }
});

afterAll(async () => {
  for (const c of clients.values()) await c.close();
  await downCluster(runDir);
});

const fresh = (host: string): HelperOptions => ({ cluster: CLUSTER, configDir: files[host]!.dir });
const longLived = (host: string): HelperClient => clients.get(host)!;

async function untilWritable(name: string): Promise<void> {
  for (;;) {
    try {
      await lab.write(name, 1);
      return;
    } catch {
      await new Promise((r) => setTimeout(r, 5));
    }
  }
}

const stats = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const f = (x: number) => x.toFixed(0);
  return `min ${f(s[0]!)} ms, median ${f(s[Math.floor(s.length / 2)]!)} ms, max ${f(s.at(-1)!)} ms (n=${s.length})`;
};

it("prints the helper's round trips, long-lived versus a fresh process", async () => {
  const checks = { longLived: [] as number[], fresh: [] as number[] };
  for (let i = 0; i < CHECKS; i++) {
    for (const [how, target] of [
      ["longLived", longLived("s")],
      ["fresh", fresh("s")],
    ] as const) {
      const t0 = performance.now();
      await check(target as HelperTarget, { role: "standby" });
      checks[how].push(performance.now() - t0);
    }
  }

  const failovers = { longLived: [] as number[], fresh: [] as number[] };
  let master = "m";
  let standby = "s";
  for (let round = 0; round < FAILOVERS; round++) {
    const how = round % 2 === 0 ? "longLived" : "fresh";
    const target = (host: string): HelperTarget => (how === "longLived" ? longLived(host) : fresh(host));
    const t0 = performance.now();
    await fence(target(master), lab.host(standby).address, { timeoutSeconds: 10 });
    await promote(target(standby), { timeoutSeconds: 60 });
    await untilWritable(standby);
    failovers[how].push(performance.now() - t0);
    // The fenced old master follows the new one for the next round.
    await lab.makeStandbyOf(master, standby);
    [master, standby] = [standby, master];
  }
  console.log(`check round trip, long-lived helper: ${stats(checks.longLived)}`);
  console.log(`check round trip, fresh process:     ${stats(checks.fresh)}`);
  console.log(`fence + promote until writable, long-lived helper: ${stats(failovers.longLived)}`);
  console.log(`fence + promote until writable, fresh processes:   ${stats(failovers.fresh)}`);
  // Every long-lived request went to the helper started before the first one.
  for (const c of clients.values()) expect(c.fallbackReason).toBeNull();
});
