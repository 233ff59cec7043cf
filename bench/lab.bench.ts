import { afterAll, describe, it } from "vitest";
import { type ClusterOptions, createCluster, downCluster } from "../tooling/lab/src/index.ts";

// Reserved for this bench: loopback 127.0.1.x on port 15411; netns prefix el1b, 10.201.1.128/25.
// Target (issue 3): a 3-host cluster up in < 15 s and down in < 5 s on a 2-core machine.
const loopDir = "/tmp/efm-lab-bench-loop";
const nsDir = "/tmp/efm-lab-bench-ns";
const hosts: ClusterOptions["hosts"] = [
  { name: "a", role: "master" },
  { name: "b", role: "standby" },
  { name: "c", role: "standby" },
];

afterAll(async () => {
  await downCluster(loopDir);
  await downCluster(nsDir);
});

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? Number.NaN;

async function measure(options: ClusterOptions, runs: number): Promise<void> {
  const up: number[] = [];
  const down: number[] = [];
  for (let i = 0; i < runs; i++) {
    let t = performance.now();
    const c = await createCluster(options);
    up.push(performance.now() - t);
    t = performance.now();
    await c.down();
    down.push(performance.now() - t);
  }
  console.log(
    `lab ${options.mode} 3-host cluster (master + 2 streaming standbys), ${runs} runs: ` +
      `up median ${(median(up) / 1000).toFixed(2)} s (all: ${up.map((x) => (x / 1000).toFixed(2)).join(", ")}), ` +
      `down median ${(median(down) / 1000).toFixed(2)} s (all: ${down.map((x) => (x / 1000).toFixed(2)).join(", ")})`,
  );
}

describe("lab", () => {
  it("loopback cluster up/down", async () => {
    await measure(
      {
        name: "bench-loop",
        mode: "loopback",
        runDir: loopDir,
        port: 15411,
        addressBase: "127.0.1",
        firstOctet: 111,
        hosts,
      },
      3,
    );
  });

  it.skipIf(process.getuid?.() !== 0)("netns cluster up/down", async () => {
    await measure(
      {
        name: "bench-ns",
        mode: "netns",
        runDir: nsDir,
        port: 15411,
        prefix: "el1b",
        subnet: "10.201.1.128/25",
        hosts,
      },
      3,
    );
  });
});
