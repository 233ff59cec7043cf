/**
 * The watchdog's timing, decided without I/O so that every bound can be unit-tested.
 *
 * The one invariant: a keepalive is written only at a moment `now` where
 *
 *     now + deviceTimeout <= leaseUntil + takeoverMargin - safetyMargin
 *
 * so the device's deadline (the last keepalive plus its timeout) always falls before the
 * earliest moment another node may promote (the majority waits for the lease L plus the
 * takeover margin after it last heard this master). Whatever stops the agent from there on
 * (SIGSTOP, a hung event loop, a fence that never returns, a crash), the host is reset before a
 * new master can take writes. The safety margin covers the time between the device firing and
 * the host really stopping, and the timers' own jitter.
 */

/** `watchdog.mode`. */
export const WATCHDOG_MODES = ["off", "automatic", "required"] as const;
export type WatchdogMode = (typeof WATCHDOG_MODES)[number];

/** What the plan is computed from; every value in milliseconds. */
export interface WatchdogTimingInput {
  /** The master lease L (membership's `timing.lease`). */
  leaseMs: number;
  /** How long after a master's lease the majority still waits before promoting. */
  takeoverMarginMs: number;
  /** How often membership renews the lease (its heartbeat interval). */
  heartbeatMs: number;
  /** `watchdog.safety.margin`. */
  safetyMarginMs: number;
  /** The device's timeout, or null when it cannot be read. */
  deviceTimeoutMs: number | null;
}

/** How to drive the device, or why it cannot be used safely. */
export type WatchdogPlan =
  | {
      ok: true;
      /** Write a keepalive only while `leaseUntil - now >= minLeaseLeftMs`. */
      minLeaseLeftMs: number;
      /** How often the agent's loop considers a keepalive. */
      feedEveryMs: number;
      /** The longest device timeout a healthy master can keep fed with these settings. */
      maxTimeoutMs: number;
      /**
       * Once the lease ends, an agent that is still running has this long to fence its database
       * and disarm the device before the device resets the host.
       */
      fenceWindowMs: number;
      /** Notes for the operator that do not stop the watchdog from being used. */
      warnings: string[];
    }
  | { ok: false; problem: string; maxTimeoutMs: number | null };

/** A keepalive is considered this often at most, and at least four times per device timeout. */
const FEED_CEILING_MS = 1000;
const FEED_FLOOR_MS = 50;

/** Below this a garbage-collection pause or a slow disk can starve a healthy agent's keepalives. */
const SHORT_TIMEOUT_MS = 2000;

function checkInput(input: WatchdogTimingInput): void {
  for (const [name, v] of Object.entries(input)) {
    if (v === null && name === "deviceTimeoutMs") continue;
    if (typeof v !== "number" || !Number.isFinite(v) || v < 0) {
      throw new RangeError(`watchdog timing: ${name} must be a finite number >= 0, got ${String(v)}`);
    }
  }
}

/**
 * Decide whether a device with `deviceTimeoutMs` can guard this master, and how to feed it.
 *
 * A healthy master's remaining lease dips to `healthyLow = L - 1.5 x heartbeat - feedEvery`
 * at worst (one heartbeat interval between renewals, up to half of one more for the
 * acknowledgement's round trip, and the loop looks once per `feedEvery`); the keepalive
 * condition must hold even then, so
 *
 *     deviceTimeout <= L + takeoverMargin - safetyMargin - 1.5 x heartbeat - feedEvery,
 *
 * and healthyLow itself must be positive (a lease that lapses between renewals feeds nothing).
 *
 * A longer timeout would either stop a healthy master's keepalives (and reset it) or, if fed
 * regardless, outlast the majority's wait: both are refused.
 */
export function planWatchdog(input: WatchdogTimingInput): WatchdogPlan {
  checkInput(input);
  const { leaseMs, takeoverMarginMs, heartbeatMs, safetyMarginMs, deviceTimeoutMs } = input;
  const renewalDip = Math.ceil(1.5 * heartbeatMs);
  if (deviceTimeoutMs === null) {
    return {
      ok: false,
      problem: "the device's timeout cannot be read, so it cannot be checked against the lease",
      maxTimeoutMs: null,
    };
  }
  if (deviceTimeoutMs <= 0) {
    return { ok: false, problem: "the device reports a timeout of 0", maxTimeoutMs: null };
  }
  const feedEveryMs = Math.max(
    FEED_FLOOR_MS,
    Math.min(FEED_CEILING_MS, heartbeatMs, Math.floor(deviceTimeoutMs / 4)),
  );
  const healthyLowMs = leaseMs - renewalDip - feedEveryMs;
  if (healthyLowMs <= 0) {
    return {
      ok: false,
      problem: `the lease (${leaseMs} ms) is too short for keepalives every ${feedEveryMs} ms between renewals every ${heartbeatMs} ms`,
      maxTimeoutMs: null,
    };
  }
  const maxTimeoutMs = healthyLowMs + takeoverMarginMs - safetyMarginMs;
  if (deviceTimeoutMs > maxTimeoutMs) {
    return {
      ok: false,
      problem:
        maxTimeoutMs <= 0
          ? `no device timeout fits: the lease (${leaseMs} ms) plus the takeover margin (${takeoverMarginMs} ms) leaves nothing after watchdog.safety.margin (${safetyMarginMs} ms), lease renewals (${renewalDip} ms) and keepalives (${feedEveryMs} ms)`
          : `the device's timeout (${deviceTimeoutMs} ms) is longer than ${maxTimeoutMs} ms, the most the lease (${leaseMs} ms) plus the takeover margin (${takeoverMarginMs} ms) allows after watchdog.safety.margin (${safetyMarginMs} ms): the host would not be reset before another node may promote`,
      maxTimeoutMs: maxTimeoutMs > 0 ? maxTimeoutMs : null,
    };
  }
  const minLeaseLeftMs = Math.max(0, deviceTimeoutMs + safetyMarginMs - takeoverMarginMs);
  // The last keepalive of a master that loses its lease was written when at least
  // minLeaseLeftMs were left, at most one feed interval earlier than the last moment allowed.
  const fenceWindowMs = Math.max(0, takeoverMarginMs - safetyMarginMs - feedEveryMs);
  const warnings: string[] = [];
  if (deviceTimeoutMs < SHORT_TIMEOUT_MS) {
    warnings.push(
      `the device's timeout (${deviceTimeoutMs} ms) is short: an agent paused that long (garbage collection, a slow disk) resets its host`,
    );
  }
  return { ok: true, minLeaseLeftMs, feedEveryMs, maxTimeoutMs, fenceWindowMs, warnings };
}

/** True when a keepalive may be written now (see the invariant at the top of this file). */
export function mayFeed(plan: { minLeaseLeftMs: number }, now: number, leaseUntil: number): boolean {
  const left = leaseUntil - now;
  // NaN fails both comparisons; an infinite lease is no lease membership ever grants.
  return Number.isFinite(left) && left > 0 && left >= plan.minLeaseLeftMs;
}
