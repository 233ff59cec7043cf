export type { FailoverCoreErrorCode } from "./errors.ts";
export { FailoverCoreError, failoverCoreErrorCodes } from "./errors.ts";
export { compareLsn, formatLsn, lsnDistance, parseLsn, pastFork } from "./lsn.ts";
export type {
  ClockPort,
  FailoverNode,
  LocalRole,
  MembershipInput,
  NodeObserver,
  NodeOptions,
  NodePorts,
  Step,
  TimerHandle,
} from "./node.ts";
export { holdsMasterDb } from "./context.ts";
export { createNode, settleWhen } from "./node.ts";
export {
  autoRejoinDue,
  NO_REWIND_NO_BASEBACKUP,
  type RejoinDecision,
  rejoinDecision,
  rejoinProblemText,
  rejoinTarget,
  stalePrimaryAtStart,
  supersededMaster,
} from "./rejoin.ts";
export { parsePeerMessage } from "./peer-message.ts";
export type { ClusterSnapshot, MemberSnapshot } from "./snapshot.ts";
export { snapshot } from "./snapshot.ts";
export { eventKey, initialState, step } from "./step.ts";
export type { RowSource, TransitionRow } from "./table.ts";
export { decisionTable, transitions } from "./table.ts";
export { ROW_STATES } from "./table/otherwise.ts";
export type {
  AgentRole,
  Candidacy,
  CandidateCheck,
  Command,
  DbStatus,
  FailoverAction,
  FailoverConfig,
  FailoverEvent,
  FailoverEventType,
  FailoverState,
  Investigation,
  LocalFailure,
  NotifyAction,
  PeerInfo,
  PeerMessage,
  PersistedFailoverState,
  Phase,
  RejoinConfig,
  Promotion,
  Reachability,
  ScriptKind,
  SelfFence,
  StepResult,
  SynchronousMode,
  SyncSet,
  SyncState,
  TimelineFork,
  Transition,
  ViewInfo,
  ViewMember,
  WalPosition,
} from "./types.ts";
export { ANY_STANDBY, outsideSyncSet } from "./sync.ts";
export { Harness, harnessConfig, harnessTimings, QUIET_RULES, runScenario } from "./harness.ts";
