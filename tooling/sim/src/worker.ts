import { parentPort, workerData } from "node:worker_threads";
import type { ClusterSimOptions, ClusterSimResult } from "./cluster-sim.ts";
import { SCENARIOS, type ScenarioName } from "./scenarios.ts";

/** What the CLI hands each worker once, at start. */
export interface WorkerSetup {
  readonly scenario: ScenarioName;
  readonly options: Omit<ClusterSimOptions, "seed">;
}

/** One block of seeds to run: first..first+count-1. */
export interface WorkerTask {
  readonly first: number;
  readonly count: number;
}

/** A finished block, each seed's result in seed order. */
export interface WorkerReply {
  readonly first: number;
  readonly results: readonly ClusterSimResult[];
}

// The CLI's worker thread (`pnpm sim --jobs N`): runs blocks of seeds the main thread hands out
// and replies with their results. Each seed's run is a pure function of the seed and options, so
// which thread ran it changes nothing; the main thread prints and counts in seed order.
if (parentPort) {
  const port = parentPort;
  const setup = workerData as WorkerSetup;
  const run = SCENARIOS[setup.scenario];
  port.on("message", (task: WorkerTask) => {
    const results: ClusterSimResult[] = [];
    for (let seed = task.first; seed < task.first + task.count; seed++)
      results.push(run(seed, setup.options));
    port.postMessage({ first: task.first, results } satisfies WorkerReply);
  });
}
