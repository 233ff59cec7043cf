import { describe, expect, it } from "vitest";
import type { CheckResult, Checker } from "./checker.ts";
import type { FailureCode } from "./errors.ts";
import { type Clock, HealthMonitor, type MonitorEvent, timingFromSeconds } from "./monitor.ts";

/** Virtual time: timers fire only when the test advances the clock. */
class ManualClock implements Clock {
  t = 0;
  #seq = 0;
  readonly #timers = new Map<number, { at: number; fn: () => void }>();
  now(): number {
    return this.t;
  }
  setTimeout(fn: () => void, ms: number): unknown {
    const id = ++this.#seq;
    this.#timers.set(id, { at: this.t + ms, fn });
    return id;
  }
  clearTimeout(h: unknown): void {
    this.#timers.delete(h as number);
  }
  async advance(ms: number): Promise<void> {
    const target = this.t + ms;
    for (;;) {
      await flush();
      let next: [number, { at: number; fn: () => void }] | undefined;
      for (const e of this.#timers)
        if (e[1].at <= target && (next === undefined || e[1].at < next[1].at)) next = e;
      if (next === undefined) break;
      this.#timers.delete(next[0]);
      this.t = next[1].at;
      next[1].fn();
    }
    this.t = target;
    await flush();
  }
}

const flush = () => new Promise<void>((r) => setImmediate(r));

type Behaviour =
  | { kind: "ok"; delayMs?: number }
  | { kind: "fail"; code: FailureCode; delayMs?: number }
  | { kind: "hang" };

/** A database whose answers the test scripts by time; answers arrive on the manual clock. */
class ScriptedDb implements Checker {
  behaviour: (now: number) => Behaviour = () => ({ kind: "ok" });
  calls: { at: number; timeoutMs: number }[] = [];
  inFlight = 0;
  maxInFlight = 0;
  closed = false;
  constructor(private readonly clock: ManualClock) {}
  check(timeoutMs: number): Promise<CheckResult> {
    const start = this.clock.now();
    this.calls.push({ at: start, timeoutMs });
    this.inFlight++;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    const b = this.behaviour(start);
    return new Promise((resolve) => {
      const done = (r: CheckResult) => {
        this.inFlight--;
        resolve(r);
      };
      const failure = (code: FailureCode) => ({ code, address: "db", message: code, detail: null });
      if (b.kind === "hang") {
        this.clock.setTimeout(
          () => done({ ok: false, latencyMs: timeoutMs, failure: failure("TIMEOUT") }),
          timeoutMs,
        );
      } else {
        const d = Math.min(b.delayMs ?? 5, timeoutMs);
        this.clock.setTimeout(
          () =>
            done(
              b.kind === "ok"
                ? { ok: true, latencyMs: d, inRecovery: false, backendPid: 1 }
                : { ok: false, latencyMs: d, failure: failure(b.code) },
            ),
          d,
        );
      }
    });
  }
  async close(): Promise<void> {
    this.closed = true;
  }
}

// local.period=1, local.timeout=6, local.timeout.final=2 (seconds)
const timing = timingFromSeconds(1, 6, 2);

function setup(extra: { continueAfterFailure?: boolean } = {}) {
  const clock = new ManualClock();
  const db = new ScriptedDb(clock);
  const monitor = new HealthMonitor({ ...timing, ...extra, checker: db, clock });
  const events: MonitorEvent[] = [];
  monitor.on((e) => events.push(e));
  const of = (t: MonitorEvent["type"]) => events.filter((e) => e.type === t);
  return { clock, db, monitor, events, of };
}

describe("HealthMonitor", () => {
  it("checks every local.period and reports healthy once", async () => {
    const { clock, db, monitor, of } = setup();
    monitor.start();
    await clock.advance(30_000);
    expect(of("healthy")).toHaveLength(1);
    expect(of("slow")).toHaveLength(0);
    expect(of("failed")).toHaveLength(0);
    expect(db.calls.map((c) => c.at).slice(0, 4)).toEqual([0, 1000, 2000, 3000]);
    expect(db.calls).toHaveLength(31);
    expect(monitor.status().state).toBe("monitoring");
  });

  it("a definite failure goes to the final check at once and fails without waiting local.timeout", async () => {
    const { clock, db, monitor, of } = setup();
    db.behaviour = (t) => (t >= 10_500 ? { kind: "fail", code: "REFUSED", delayMs: 1 } : { kind: "ok" });
    monitor.start();
    await clock.advance(20_000);
    const failed = of("failed");
    expect(failed).toHaveLength(1);
    const f = failed[0] as Extract<MonitorEvent, { type: "failed" }>;
    expect(f.reason).toBe("definite");
    expect(f.failure.code).toBe("REFUSED");
    // first check after the crash is at 11 s; the final check follows at once
    expect(f.at).toBeLessThanOrEqual(10_500 + timing.periodMs + timing.finalTimeoutMs);
    const finalCall = db.calls.find((c) => c.timeoutMs === timing.finalTimeoutMs);
    expect(finalCall?.at).toBe(11_001);
  });

  it("a hang is only declared failed after local.timeout plus the final check", async () => {
    const { clock, db, monitor, of } = setup();
    db.behaviour = (t) => (t >= 10_500 ? { kind: "hang" } : { kind: "ok" });
    monitor.start();
    await clock.advance(10_500 + timing.timeoutMs - timing.periodMs);
    expect(of("failed")).toHaveLength(0);
    await clock.advance(20_000);
    const f = of("failed")[0] as Extract<MonitorEvent, { type: "failed" }>;
    expect(f.reason).toBe("timeout");
    expect(f.failure.code).toBe("TIMEOUT");
    // last success at 10 s (+5 ms answer): final check starts at 16.005 s and times out 2 s later
    expect(f.at).toBe(10_005 + timing.timeoutMs + timing.finalTimeoutMs);
    expect(f.silentForMs).toBe(timing.timeoutMs + timing.finalTimeoutMs);
    // hung regular checks never pile up: one regular plus at most the final one
    expect(db.maxInFlight).toBeLessThanOrEqual(2);
  });

  it("reports slow (Agent is timing out) when only the final check gets through", async () => {
    const { clock, db, monitor, of } = setup();
    // hung from 10.5 s; answers again from 16 s, exactly when the final check is made
    db.behaviour = (t) => (t >= 10_500 && t < 16_000 ? { kind: "hang" } : { kind: "ok" });
    monitor.start();
    await clock.advance(40_000);
    expect(of("slow")).toHaveLength(1);
    expect(of("failed")).toHaveLength(0);
    expect(monitor.status().state).toBe("monitoring");
  });

  it("non-definite failures (bad password) wait out local.timeout, then fail with their code", async () => {
    const { clock, db, monitor, of } = setup();
    db.behaviour = () => ({ kind: "fail", code: "INVALID_PASSWORD" });
    monitor.start();
    await clock.advance(timing.timeoutMs - 1);
    expect(of("failed")).toHaveLength(0);
    await clock.advance(timing.finalTimeoutMs + 10);
    const f = of("failed")[0] as Extract<MonitorEvent, { type: "failed" }>;
    expect(f.failure.code).toBe("INVALID_PASSWORD");
    expect(f.reason).toBe("timeout");
    expect(of("healthy")).toHaveLength(0);
  });

  it("reports recovered when the database answers again after failing", async () => {
    const { clock, db, monitor, of } = setup();
    db.behaviour = (t) => (t >= 5_000 && t < 20_000 ? { kind: "fail", code: "REFUSED" } : { kind: "ok" });
    monitor.start();
    await clock.advance(25_000);
    expect(of("failed")).toHaveLength(1);
    expect(of("recovered")).toHaveLength(1);
    expect(of("recovered")[0]!.at).toBeGreaterThanOrEqual(20_000);
  });

  it("stops checking after failure when told to, and stop() releases the checker", async () => {
    const { clock, db, monitor, of } = setup({ continueAfterFailure: false });
    db.behaviour = () => ({ kind: "fail", code: "REFUSED" });
    monitor.start();
    await clock.advance(5_000);
    expect(of("failed")).toHaveLength(1);
    const n = db.calls.length;
    await clock.advance(10_000);
    expect(db.calls.length).toBe(n);
    expect(monitor.status().state).toBe("failed");
    monitor.start(); // what `efm resume` does
    await clock.advance(500);
    expect(db.calls.length).toBeGreaterThan(n);
    await monitor.stop();
    const m = db.calls.length;
    await clock.advance(10_000);
    expect(db.calls.length).toBe(m);
    expect(db.closed).toBe(true);
  });

  it("still reaches a verdict when a checker never answers or rejects", async () => {
    const clock = new ManualClock();
    let calls = 0;
    const broken: Checker = {
      check: () => {
        calls++;
        return calls % 2 === 0 ? Promise.reject(new Error("driver bug")) : new Promise<CheckResult>(() => {});
      },
      close: async () => {},
    };
    const monitor = new HealthMonitor({ ...timing, checker: broken, clock });
    const events: MonitorEvent[] = [];
    monitor.on((e) => events.push(e));
    monitor.start();
    await clock.advance(timing.timeoutMs + timing.finalTimeoutMs + 2_000);
    const failed = events.find((e) => e.type === "failed");
    expect(failed).toMatchObject({ reason: "timeout" });
  });

  it("survives a throwing listener and rejects bad timings", async () => {
    const { clock, monitor, of } = setup();
    monitor.on(() => {
      throw new Error("listener bug");
    });
    monitor.start();
    await clock.advance(3_000);
    expect(of("healthy")).toHaveLength(1);
    const db = new ScriptedDb(clock);
    expect(() => new HealthMonitor({ ...timing, periodMs: 0, checker: db })).toThrow(/local.period/);
    expect(() => new HealthMonitor({ ...timing, finalTimeoutMs: Number.NaN, checker: db })).toThrow(
      expect.objectContaining({ code: "INVALID_OPTIONS" }),
    );
  });
});
