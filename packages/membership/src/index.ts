export { compareAddr, compareViewId, hostOf, parseMsg } from "./core/messages.ts";
export type { CoreOptions, QuorumRule } from "./core/protocol.ts";
export { MembershipCore, majorityOfVoters } from "./core/protocol.ts";
export type { Timing } from "./core/timing.ts";
export {
  DEFAULT_MAX_TRIES,
  DEFAULT_TIMEOUT,
  deriveTiming,
  detectionBound,
  leaseDuration,
  quietAfter,
  takeoverAllowedAt,
} from "./core/timing.ts";
export type {
  ClusterConfig,
  CoreInput,
  Effect,
  Frame,
  MembershipEvent,
  Msg,
  NodeId,
  PersistedState,
  View,
  ViewId,
  ViewInfo,
} from "./core/types.ts";
export type { MembershipErrorCode } from "./errors.ts";
export { MEMBERSHIP_ERROR_CODES, MembershipError } from "./errors.ts";
export type { FrameFault } from "./runtime/frame.ts";
export {
  DEFAULT_MAX_FRAME_BYTES,
  deriveClusterKey,
  FrameDecoder,
  PRE_AUTH_MAX_BYTES,
  WIRE_VERSION,
} from "./runtime/frame.ts";
export type { Hello, Welcome } from "./runtime/session.ts";
export {
  decodeHello,
  decodeWelcome,
  encodeHello,
  encodeWelcome,
  freshNonce,
  Session,
  sessionKeys,
} from "./runtime/session.ts";
export type { Logger, Member, MemberEvent, MemberOptions, RuntimeEvent } from "./runtime/member.ts";
export { createMember, parseAddress } from "./runtime/member.ts";
export type { TimerHandle } from "./runtime/timer.ts";
export { armTimerAt, MAX_TIMER_DELAY_MS } from "./runtime/timer.ts";
