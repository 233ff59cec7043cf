import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { availableParallelism } from "node:os";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { runClusterSim } from "../tooling/sim/src/cluster-sim.ts";

// Prints numbers only: how many seeds of the combined simulator run per minute (and steps per
// second), which bounds how many seeds CI can afford and how long `pnpm sim --seeds 100000` takes.
// Each figure is min / median / max over a few rounds of the same seeds, so the spread shows how
// much the machine's other load moved it. Before issue 12's world (3-7 nodes, instant fences, one
// clock) the 2,000-seed unit test took 53 s of CPU (about 2,260 seeds per CPU minute).

const ROUNDS = 3;

function spread(xs: readonly number[]): string {
  const s = [...xs].sort((a, b) => a - b);
  const f = (x: number) => Math.round(x).toLocaleString("en");
  return `min ${f(s[0]!)}, median ${f(s[Math.floor(s.length / 2)]!)}, max ${f(s[s.length - 1]!)}`;
}

describe("combined simulator", () => {
  it("seeds per minute on one thread (2-9 nodes, the random fault mix, seeds 1..100, 3 rounds)", () => {
    const seeds = 100;
    const perMin: number[] = [];
    const perSec: number[] = [];
    let steps = 0;
    let promotions = 0;
    for (let round = 0; round < ROUNDS; round++) {
      steps = 0;
      promotions = 0;
      const t0 = performance.now();
      for (let seed = 1; seed <= seeds; seed++) {
        const r = runClusterSim(seed);
        steps += r.steps;
        promotions += r.promotions;
      }
      const secs = (performance.now() - t0) / 1000;
      perMin.push((seeds / secs) * 60);
      perSec.push(steps / secs);
    }
    console.log(
      `sim, one thread: seeds/min ${spread(perMin)}; steps/s ${spread(perSec)} ` +
        `(${ROUNDS} rounds of ${seeds} seeds, ${steps} steps and ${promotions} promotions each)`,
    );
  });

  it("seeds per minute per cluster size (one thread, 40 seeds, 3 rounds)", () => {
    for (const nodes of [2, 5, 9]) {
      const seeds = 40;
      const perMin: number[] = [];
      for (let round = 0; round < ROUNDS; round++) {
        const t0 = performance.now();
        for (let seed = 1; seed <= seeds; seed++) runClusterSim(seed, { nodes });
        perMin.push((seeds / ((performance.now() - t0) / 1000)) * 60);
      }
      console.log(`sim ${nodes} nodes: seeds/min ${spread(perMin)}`);
    }
  });

  it("seeds per minute of the built CLI on worker threads (--jobs = CPUs, seeds 1..200, 3 rounds)", () => {
    // The figure `pnpm sim --seeds 100000` runs at, start-up of the threads included.
    const cli = fileURLToPath(new URL("../tooling/sim/dist/cli.js", import.meta.url));
    expect(existsSync(cli), `${cli} is missing: npx turbo run build --filter=@efm/sim`).toBe(true);
    const jobs = availableParallelism();
    const seeds = 200;
    const perMin: number[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      const t0 = performance.now();
      const r = spawnSync(process.execPath, [cli, "--seeds", String(seeds), "--jobs", String(jobs)], {
        encoding: "utf8",
        maxBuffer: 64 * 1024 * 1024,
      });
      // 1 is a seed's verdict (the sim project judges those); anything else is a crash.
      expect([0, 1], r.stderr).toContain(r.status);
      perMin.push((seeds / ((performance.now() - t0) / 1000)) * 60);
    }
    console.log(`sim CLI, --jobs ${jobs}: seeds/min ${spread(perMin)} (${ROUNDS} rounds of ${seeds} seeds)`);
  });
});
