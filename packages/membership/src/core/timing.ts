/** Every protocol timer, derived from the two properties of the guide (3.2.1). */
export interface Timing {
  /** jgroups.timeout: heartbeat interval and the unit of every other timer (ms). */
  readonly timeout: number;
  /** jgroups.max.tries: silent heartbeat intervals before a member is suspected. */
  readonly maxTries: number;
  /** Silence after which a member is suspected: maxTries x timeout. */
  readonly suspectAfter: number;
  /** How long a direct are-you-alive may stay unanswered before the suspect is removed. */
  readonly verifyTimeout: number;
  /** How long the coordinator waits for view acknowledgements before suspecting the silent. */
  readonly ackTimeout: number;
  /** How long the coordinator gathers join/leave/remove requests into one view. */
  readonly batchDelay: number;
  /** Interval between discovery rounds of a node that is not yet in a view. */
  readonly discoveryInterval: number;
  /**
   * How long a node with no saved voter set looks for a running cluster before it may found
   * one of its own (only when it may found alone: its database is the primary, or bootstrap).
   */
  readonly joinWindow: number;
  /** Interval between MERGE3-style INFO broadcasts of a coordinator. */
  readonly mergeInterval: number;
  /** A merge that has not installed its view after this long is cancelled. */
  readonly mergeTimeout: number;
  /** A timer that fires later than this (we were paused) resets failure detection. */
  readonly pauseThreshold: number;
  /** The master lease L = suspectAfter - timeout. */
  readonly lease: number;
  /**
   * Heartbeats go out twice per jgroups.timeout: the lease is renewed by acknowledged
   * heartbeats, and with jgroups.max.tries=2 (L = one timeout) a heartbeat only every timeout
   * would let a healthy master's lease lapse for a round trip after each one.
   */
  readonly heartbeatInterval: number;
  /** Extra wait on top of L before another node may take over a removed master's role. */
  readonly driftMargin: number;
  /** How long a graceful leave waits for the coordinator's view before leaving anyway. */
  readonly leaveTimeout: number;
}

/** Defaults of the guide: jgroups.timeout=5000, jgroups.max.tries=8. */
export const DEFAULT_TIMEOUT = 5000;
/** Default jgroups.max.tries. */
export const DEFAULT_MAX_TRIES = 8;

/** Upper bound of the direct verification of a suspect (ms). */
const MAX_VERIFY_TIMEOUT = 2000;

/** Derive every timer from jgroups.timeout and jgroups.max.tries. */
export function deriveTiming(
  timeout: number = DEFAULT_TIMEOUT,
  maxTries: number = DEFAULT_MAX_TRIES,
): Timing {
  if (!Number.isInteger(timeout) || timeout < 20)
    throw new RangeError(`jgroups.timeout must be an integer >= 20 ms, got ${timeout}`);
  if (!Number.isInteger(maxTries) || maxTries < 2)
    throw new RangeError(`jgroups.max.tries must be an integer >= 2, got ${maxTries}`);
  const suspectAfter = timeout * maxTries;
  return {
    timeout,
    maxTries,
    suspectAfter,
    // A direct are-you-alive to a live member is answered within a round trip; waiting a whole
    // jgroups.timeout (5 s at the defaults) after the window only delays a failover. Capped at
    // 2 s, JGroups VERIFY_SUSPECT's default; shorter timeouts keep their own value.
    verifyTimeout: Math.min(timeout, MAX_VERIFY_TIMEOUT),
    ackTimeout: timeout,
    batchDelay: Math.min(100, Math.ceil(timeout / 10)),
    discoveryInterval: Math.ceil(timeout / 5),
    joinWindow: timeout,
    mergeInterval: timeout,
    mergeTimeout: 2 * timeout,
    pauseThreshold: timeout,
    lease: leaseDuration(timeout, maxTries),
    heartbeatInterval: Math.ceil(timeout / 2),
    // Clock rates differ by far less than 1 %; one heartbeat interval also covers message delay.
    driftMargin: timeout + Math.ceil(suspectAfter / 100),
    leaveTimeout: 2 * timeout,
  };
}

/** The master lease L = suspectAfter - jgroups.timeout (ms). */
export function leaseDuration(timeout: number, maxTries: number): number {
  return timeout * maxTries - timeout;
}

/**
 * Earliest time another node may take over the role of a member removed by a view that was
 * committed (acknowledged by a majority of the voters) at `committedAt`: after that instant no
 * majority acknowledges the removed member, so its lease runs out within L; add the drift margin.
 * Pass max(lastHeard, committedAt) if you only know when the member was last heard.
 */
export function takeoverAllowedAt(committedAt: number, timing: Timing): number {
  return committedAt + timing.lease + timing.driftMargin;
}

/**
 * Silence after which the failover layer may start its direct check of a member's database
 * (`memberQuiet`), so that a check lasting `remoteTimeoutMs` has answered when the suspicion
 * window ends: suspectAfter - remoteTimeoutMs, but never sooner than two heartbeat intervals (a
 * single late heartbeat is no silence). Returns null when that is not before the suspicion.
 */
export function quietAfter(timing: Timing, remoteTimeoutMs: number): number | null {
  if (!Number.isFinite(remoteTimeoutMs) || remoteTimeoutMs < 0)
    throw new RangeError(`remote.timeout must be a finite number of ms >= 0, got ${remoteTimeoutMs}`);
  const at = Math.max(timing.suspectAfter - remoteTimeoutMs, 2 * timing.heartbeatInterval);
  return at < timing.suspectAfter ? at : null;
}

/**
 * Worst case from a crash to the removal view being installed everywhere reachable: silence,
 * one heartbeat tick of detection granularity, verification, batching, plus one view round trip.
 */
export function detectionBound(timing: Timing, maxNetworkDelay = 0): number {
  return (
    timing.suspectAfter + timing.timeout + timing.verifyTimeout + timing.batchDelay + 2 * maxNetworkDelay
  );
}
