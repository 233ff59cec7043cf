import { describe, it } from "vitest";
import { runClusterSim } from "../tooling/sim/src/cluster-sim.ts";

// Prints numbers only: how many seeds of the combined simulator run per minute (and steps per
// second), which bounds how many seeds CI can afford. Before issue 12's world (3-7 nodes, instant
// fences, one clock) the 2,000-seed unit test took 53 s of CPU (about 2,260 seeds per CPU minute).

describe("combined simulator", () => {
  it("simulated steps per second and seeds per minute (2-9 nodes, the random fault mix, seeds 1..300)", () => {
    const seeds = 300;
    let steps = 0;
    let promotions = 0;
    const t0 = performance.now();
    for (let seed = 1; seed <= seeds; seed++) {
      const r = runClusterSim(seed);
      steps += r.steps;
      promotions += r.promotions;
    }
    const secs = (performance.now() - t0) / 1000;
    console.log(
      `sim: ${Math.round(steps / secs).toLocaleString("en")} steps/s, ${Math.round((seeds / secs) * 60).toLocaleString("en")} seeds/min ` +
        `(${seeds} seeds, ${steps} steps, ${promotions} promotions, ${secs.toFixed(1)} s)`,
    );
  });

  it("per cluster size", () => {
    for (const nodes of [2, 5, 9]) {
      const seeds = 60;
      let steps = 0;
      const t0 = performance.now();
      for (let seed = 1; seed <= seeds; seed++) steps += runClusterSim(seed, { nodes }).steps;
      const secs = (performance.now() - t0) / 1000;
      console.log(
        `sim ${nodes} nodes: ${Math.round(steps / secs).toLocaleString("en")} steps/s, ${Math.round((seeds / secs) * 60)} seeds/min`,
      );
    }
  });
});
