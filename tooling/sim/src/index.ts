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
export type { ClusterNode, ClusterSimOptions, ClusterSimResult, FakeDb } from "./cluster-sim.ts";
export { ClusterSim, runCascadeSim, runClusterSim, runLeaseWaitSim, runOneWayCutSim } from "./cluster-sim.ts";
