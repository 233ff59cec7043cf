import {
  runAgentlessPromoteSim,
  runAllInRecoverySim,
  runCascadeSim,
  runClusterSim,
  runCutPairSim,
  runFrozenMasterSim,
  runHungMasterSim,
  runLeaseWaitSim,
  runOneWayCutSim,
  runPartitionRestartPromoteSim,
  runRebootedDivergedSim,
  runRebootedOldPrimarySim,
} from "./cluster-sim.ts";

// A module of its own so the CLI's worker threads can import the seed families without
// importing the CLI (whose entry-point check would see the same process.argv in a worker).

/** Seed families the CLI can run: the random fault mix and the targeted scenarios. */
export const SCENARIOS = {
  random: runClusterSim,
  "lease-wait": runLeaseWaitSim,
  cascade: runCascadeSim,
  "one-way": runOneWayCutSim,
  "agentless-promote": runAgentlessPromoteSim,
  "rebooted-old-primary": runRebootedOldPrimarySim,
  "partition-restart-promote": runPartitionRestartPromoteSim,
  "hung-master": runHungMasterSim,
  "frozen-master": runFrozenMasterSim,
  "rebooted-diverged": runRebootedDivergedSim,
  "cut-pair": runCutPairSim,
  "all-in-recovery": runAllInRecoverySim,
} as const;

export type ScenarioName = keyof typeof SCENARIOS;
