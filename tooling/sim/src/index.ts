export type { EventHandle } from "./clock.ts";
export { VirtualClock } from "./clock.ts";
export type {
  MembershipScenario,
  MembershipSimOptions,
  ScenarioResult,
  SimFrame,
  SimNode,
  SimNodeSpec,
} from "./membership-sim.ts";
export { MEMBERSHIP_SCENARIOS, MembershipSim, runMembershipScenario } from "./membership-sim.ts";
export type { LinkSpec } from "./network.ts";
export { VirtualNetwork } from "./network.ts";
export type { Rng } from "./rng.ts";
export { createRng } from "./rng.ts";
export { BASELINE_SEEDS, isKnown, judgeRange, KNOWN_FAILING } from "./baseline.ts";
export type {
  ClusterNode,
  ClusterSimOptions,
  ClusterSimResult,
  FakeDb,
  FaultKind,
  InvariantName,
  WorldOptions,
} from "./cluster-sim.ts";
export {
  ClusterSim,
  EXPECTED_TO_FAIL,
  FAULT_KINDS,
  INVARIANTS,
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
