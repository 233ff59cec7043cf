// Promote time on PostgreSQL 15: from the start of promotion until the new master accepts a
// write. Two ways: bare `pg_ctl promote -w` (the floor), and the agent's path through the
// privileged helper (runuser/sudo + node start-up + confirming pg_is_in_recovery()).
// Prints numbers only; it asserts nothing about time.
import { execFileSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, expect, it } from "vitest";
import { promote, runProcess } from "../packages/scripts-runner/src/index.ts";
import { type Cluster, createCluster, downCluster } from "../tooling/lab/src/index.ts";

// Same reserved range as the scripts-runner integration test (127.0.3.x, port 15403), other
// addresses and run folder, so the two can never collide.
const runDir = "/tmp/efm-lab-bench-scripts";
const bin = "/usr/lib/postgresql/15/bin";
const ROUNDS = 6;
let lab: Cluster;

beforeAll(async () => {
  execFileSync("npx", [
    "tsc",
    "-p",
    fileURLToPath(new URL("../packages/scripts-runner/tsconfig.build.json", import.meta.url)),
  ]);
  lab = await createCluster({
    name: "bench-scripts",
    runDir,
    port: 15403,
    addressBase: "127.0.3",
    firstOctet: 31,
    hosts: [
      { name: "m", role: "master" },
      { name: "s", role: "standby" },
    ],
  });
});

afterAll(async () => {
  await downCluster(runDir);
});

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

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

it("prints promote time", async () => {
  const bare: number[] = [];
  const helper: number[] = [];
  let master = "m";
  let standby = "s";
  for (let round = 0; round < ROUNDS; round++) {
    const dataDir = lab.host(standby).dataDir!;
    const t0 = performance.now();
    if (round % 2 === 0) {
      const r = await runProcess(
        ["runuser", "-u", "postgres", "--", `${bin}/pg_ctl`, "promote", "-w", "-D", dataDir],
        {
          timeoutMs: 60_000,
        },
      );
      expect(r.exitCode).toBe(0);
      await untilWritable(standby);
      bare.push(performance.now() - t0);
    } else {
      await promote(dataDir, { owner: "postgres", bin, timeoutSeconds: 60 });
      await untilWritable(standby);
      helper.push(performance.now() - t0);
    }
    // Turn the old master into a standby of the new one for the next round.
    await lab.stopDb(master);
    await lab.makeStandbyOf(master, standby);
    [master, standby] = [standby, master];
  }
  const fmt = (xs: number[]) => xs.map((x) => x.toFixed(0)).join(", ");
  console.log(
    `promote until writable, bare pg_ctl promote -w: median ${median(bare).toFixed(0)} ms [${fmt(bare)}]`,
  );
  console.log(
    `promote until writable, via efm-helper (runuser + node + confirm): median ${median(helper).toFixed(0)} ms [${fmt(helper)}]`,
  );
});
