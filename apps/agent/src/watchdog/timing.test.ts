import fc from "fast-check";
import { describe, expect, test } from "vitest";
import { mayFeed, planWatchdog } from "./timing.ts";

// The guide's defaults as membership derives them: jgroups.timeout 5000, max.tries 8.
const DEFAULTS = { leaseMs: 35_000, takeoverMarginMs: 5_400, heartbeatMs: 2_500, safetyMarginMs: 2_000 };

describe("planWatchdog", () => {
  test("a device timeout that fits: keepalives only while the lease outlasts the device by the margin", () => {
    const plan = planWatchdog({ ...DEFAULTS, deviceTimeoutMs: 15_000 });
    expect(plan).toEqual({
      ok: true,
      // 15 s + 2 s safety - 5.4 s takeover margin
      minLeaseLeftMs: 11_600,
      feedEveryMs: 1000,
      // 35 - 1.5 x 2.5 - 1 + 5.4 - 2 s
      maxTimeoutMs: 33_650,
      // 5.4 - 2 - 1 s
      fenceWindowMs: 2_400,
      warnings: [],
    });
  });

  test("softdog's default of 60 s is too long for the default lease, and the reason says by how much", () => {
    const plan = planWatchdog({ ...DEFAULTS, deviceTimeoutMs: 60_000 });
    expect(plan.ok).toBe(false);
    if (plan.ok) return;
    expect(plan.maxTimeoutMs).toBe(33_650);
    expect(plan.problem).toContain("(60000 ms) is longer than 33650 ms");
  });

  test("fast settings leave no room for a whole-second device after a 2 s safety margin", () => {
    // jgroups.timeout 500, max.tries 4: L = 1.5 s, margin 0.52 s, heartbeat 0.25 s.
    const plan = planWatchdog({
      leaseMs: 1500,
      takeoverMarginMs: 520,
      heartbeatMs: 250,
      safetyMarginMs: 2000,
      deviceTimeoutMs: 1000,
    });
    expect(plan).toMatchObject({ ok: false, maxTimeoutMs: null });
    if (!plan.ok) expect(plan.problem).toContain("no device timeout fits");
  });

  test("an unreadable timeout is never guessed", () => {
    expect(planWatchdog({ ...DEFAULTS, deviceTimeoutMs: null })).toMatchObject({ ok: false });
    expect(planWatchdog({ ...DEFAULTS, deviceTimeoutMs: 0 })).toMatchObject({ ok: false });
  });

  test("a short device timeout is used with a warning; bad numbers are refused by name", () => {
    const plan = planWatchdog({
      leaseMs: 3000,
      takeoverMarginMs: 1030,
      heartbeatMs: 500,
      safetyMarginMs: 500,
      deviceTimeoutMs: 1000,
    });
    expect(plan).toMatchObject({ ok: true, feedEveryMs: 250, minLeaseLeftMs: 470 });
    if (plan.ok) expect(plan.warnings[0]).toContain("short");
    expect(() => planWatchdog({ ...DEFAULTS, leaseMs: Number.NaN, deviceTimeoutMs: 1000 })).toThrow(
      /leaseMs/,
    );
  });

  // The safety argument, checked over every setting: with keepalives written only when mayFeed
  // says so, (1) the device's deadline never passes the earliest takeover minus the safety
  // margin, and (2) a healthy master, whose remaining lease never dips below L - 1.5 heartbeats
  // between renewals, is fed at every tick, so it is never reset.
  test("property: every keepalive's deadline precedes the earliest takeover; a healthy master is always fed", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 20, max: 60_000 }), // jgroups.timeout
        fc.integer({ min: 2, max: 20 }), // jgroups.max.tries
        fc.integer({ min: 0, max: 10_000 }), // safety margin
        fc.integer({ min: 1, max: 120 }), // device timeout, whole seconds
        fc.double({ min: 0, max: 1, noNaN: true }), // where in the lease "now" falls
        (t, n, safety, seconds, at) => {
          const leaseMs = n * t - t;
          const takeoverMarginMs = t + Math.ceil((n * t) / 100);
          const heartbeatMs = Math.ceil(t / 2);
          const deviceTimeoutMs = seconds * 1000;
          const plan = planWatchdog({
            leaseMs,
            takeoverMarginMs,
            heartbeatMs,
            safetyMarginMs: safety,
            deviceTimeoutMs,
          });
          if (!plan.ok) return;
          const leaseUntil = 1_000_000;
          const now = leaseUntil - at * leaseMs;
          if (mayFeed(plan, now, leaseUntil)) {
            expect(now + deviceTimeoutMs).toBeLessThanOrEqual(leaseUntil + takeoverMarginMs - safety);
          }
          const healthyNow = leaseUntil - (leaseMs - Math.ceil(1.5 * heartbeatMs) - plan.feedEveryMs);
          expect(mayFeed(plan, healthyNow, leaseUntil)).toBe(true);
        },
      ),
      { numRuns: 2000 },
    );
  });
});

describe("mayFeed", () => {
  test("never after the lease ended, never on a lease that is not a finite time", () => {
    const plan = { minLeaseLeftMs: 0 };
    expect(mayFeed(plan, 100, 101)).toBe(true);
    expect(mayFeed(plan, 100, 100)).toBe(false);
    expect(mayFeed(plan, 100, Number.NEGATIVE_INFINITY)).toBe(false);
    expect(mayFeed(plan, 100, Number.POSITIVE_INFINITY)).toBe(false);
    expect(mayFeed(plan, Number.NaN, 200)).toBe(false);
  });
});
