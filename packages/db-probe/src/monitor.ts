import type { CheckResult, Checker } from "./checker.ts";
import { classify, type Failure, isDefinite } from "./classify.ts";
import { DbProbeError } from "./errors.ts";

/** Time as the monitor sees it; inject a manual one to test timing without waiting. */
export interface Clock {
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

/** Grace the monitor gives a checker beyond its own deadline before deciding without it. */
const GUARD_MS = 1_000;

/** Wall-clock time and Node timers. */
export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (h) => clearTimeout(h as ReturnType<typeof setTimeout>),
};

/** Everything the monitor reports. `at` is clock time in ms. */
export type MonitorEvent =
  /** Every finished check, for logs; `final` marks the local.timeout.final check. */
  | { type: "check"; at: number; final: boolean; result: CheckResult }
  /** First successful check after start(). */
  | { type: "healthy"; at: number; inRecovery: boolean }
  /**
   * No check succeeded within local.timeout, but the final check did: the guide's "Agent is
   * timing out" notification. Monitoring goes on.
   */
  | { type: "slow"; at: number; silentForMs: number }
  /**
   * The database failed: the final check failed after a definite failure or after local.timeout
   * without success. `failure` is the final check's.
   */
  | { type: "failed"; at: number; reason: "definite" | "timeout"; failure: Failure; silentForMs: number }
  /** A check succeeded again after "failed". */
  | { type: "recovered"; at: number; inRecovery: boolean };

/** The guide's local.* properties, in milliseconds. */
export interface MonitorTiming {
  /** local.period: time between checks. */
  periodMs: number;
  /** local.timeout: how long without a successful check before the final check. */
  timeoutMs: number;
  /** local.timeout.final: the final check's deadline. */
  finalTimeoutMs: number;
}

/** Options of HealthMonitor. */
export interface MonitorOptions extends MonitorTiming {
  checker: Checker;
  clock?: Clock;
  /** Keep checking after "failed" so "recovered" can be reported (default true). */
  continueAfterFailure?: boolean;
}

/** Where the monitor is in its cycle. */
export type MonitorState = "idle" | "monitoring" | "final" | "failed" | "stopped";

/** Build MonitorTiming from the properties' seconds (local.period, local.timeout, local.timeout.final). */
export function timingFromSeconds(period: number, timeout: number, timeoutFinal: number): MonitorTiming {
  return { periodMs: period * 1000, timeoutMs: timeout * 1000, finalTimeoutMs: timeoutFinal * 1000 };
}

function checkTiming(t: MonitorTiming): void {
  for (const [k, v] of [
    ["local.period", t.periodMs],
    ["local.timeout", t.timeoutMs],
    ["local.timeout.final", t.finalTimeoutMs],
  ] as const) {
    if (typeof v !== "number" || !Number.isFinite(v) || v <= 0) {
      throw new DbProbeError("INVALID_OPTIONS", `${k}: ${String(v)} ms must be a positive number`);
    }
  }
}

/**
 * The local database health monitor (guide 3.2.1 local.*): a check every local.period; if none
 * succeeded for local.timeout, one final check bounded by local.timeout.final decides between
 * "slow" and "failed". A definite failure (refused, starting up / shutting down) goes to the
 * final check at once; a hang waits out local.timeout. Only one regular check runs at a time.
 */
export class HealthMonitor {
  readonly #checker: Checker;
  readonly #clock: Clock;
  readonly #timing: MonitorTiming;
  readonly #continue: boolean;
  readonly #listeners = new Set<(e: MonitorEvent) => void>();
  #state: MonitorState = "idle";
  #lastSuccess = 0;
  #everHealthy = false;
  #inFlight = false;
  #tickTimer: unknown = null;
  #watchdog: unknown = null;
  #lastFailure: Failure | null = null;
  /** Bumped on start/stop so results of checks from an older run are ignored. */
  #generation = 0;

  constructor(options: MonitorOptions) {
    checkTiming(options);
    this.#checker = options.checker;
    this.#clock = options.clock ?? systemClock;
    this.#timing = {
      periodMs: options.periodMs,
      timeoutMs: options.timeoutMs,
      finalTimeoutMs: options.finalTimeoutMs,
    };
    this.#continue = options.continueAfterFailure ?? true;
  }

  /** Subscribe; returns the unsubscribe function. A throwing listener never breaks the monitor. */
  on(listener: (e: MonitorEvent) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Current state, time of the last successful check and the last failure seen. */
  status(): { state: MonitorState; lastSuccessAt: number | null; lastFailure: Failure | null } {
    return {
      state: this.#state,
      lastSuccessAt: this.#everHealthy ? this.#lastSuccess : null,
      lastFailure: this.#lastFailure,
    };
  }

  /** Begin monitoring (first check at once). Also how `efm resume` restarts a failed monitor. */
  start(): void {
    if (this.#state === "monitoring" || this.#state === "final") return;
    this.#generation++;
    this.#clearTimers();
    this.#state = "monitoring";
    this.#lastSuccess = this.#clock.now();
    this.#everHealthy = false;
    this.#inFlight = false;
    this.#armWatchdog();
    this.#tick();
  }

  /** Stop checking and release the checker's connection. */
  async stop(): Promise<void> {
    this.#generation++;
    this.#state = "stopped";
    this.#clearTimers();
    await this.#checker.close();
  }

  #emit(e: MonitorEvent): void {
    for (const l of this.#listeners) {
      try {
        l(e);
      } catch {
        // a listener's bug must not stop database monitoring
      }
    }
  }

  #clearTimers(): void {
    if (this.#tickTimer !== null) this.#clock.clearTimeout(this.#tickTimer);
    if (this.#watchdog !== null) this.#clock.clearTimeout(this.#watchdog);
    this.#tickTimer = null;
    this.#watchdog = null;
  }

  #armWatchdog(): void {
    if (this.#watchdog !== null) this.#clock.clearTimeout(this.#watchdog);
    const due = this.#lastSuccess + this.#timing.timeoutMs - this.#clock.now();
    const gen = this.#generation;
    this.#watchdog = this.#clock.setTimeout(
      () => {
        this.#watchdog = null;
        if (gen === this.#generation && this.#state === "monitoring") void this.#final("timeout");
      },
      Math.max(0, due),
    );
  }

  #tick(): void {
    const gen = this.#generation;
    this.#tickTimer = this.#clock.setTimeout(() => {
      this.#tickTimer = null;
      if (gen === this.#generation) this.#tick();
    }, this.#timing.periodMs);
    if (this.#inFlight || (this.#state !== "monitoring" && this.#state !== "failed")) return;
    this.#inFlight = true;
    // A regular check may take up to local.timeout; beyond that the final check has taken over.
    void this.#guardedCheck(this.#timing.timeoutMs).then((result) => {
      if (gen !== this.#generation) return;
      this.#inFlight = false;
      this.#onRegular(result);
    });
  }

  /**
   * The checker promises to answer within its deadline; should one ever hang (a driver bug),
   * the monitor must still reach a verdict, so it gives up on its own clock shortly after.
   */
  #guardedCheck(timeoutMs: number): Promise<CheckResult> {
    return new Promise<CheckResult>((resolve) => {
      let settled = false;
      const guard = this.#clock.setTimeout(() => {
        if (settled) return;
        settled = true;
        resolve({
          ok: false,
          latencyMs: timeoutMs + GUARD_MS,
          failure: {
            code: "TIMEOUT",
            address: this.#checker.address ?? "",
            message: `health check gave no verdict within ${timeoutMs + GUARD_MS} ms`,
            detail: null,
          },
        });
      }, timeoutMs + GUARD_MS);
      const settle = (r: CheckResult) => {
        if (settled) return;
        settled = true;
        this.#clock.clearTimeout(guard);
        resolve(r);
      };
      this.#checker
        .check(timeoutMs)
        .then(settle, (err: unknown) =>
          settle({ ok: false, latencyMs: 0, failure: classify(err, this.#checker.address ?? "") }),
        );
    });
  }

  #onRegular(result: CheckResult): void {
    const now = this.#clock.now();
    this.#emit({ type: "check", at: now, final: false, result });
    if (this.#state === "final") return; // the final check decides
    if (result.ok) {
      this.#lastSuccess = now;
      if (this.#state === "failed") {
        this.#state = "monitoring";
        this.#emit({ type: "recovered", at: now, inRecovery: result.inRecovery });
      } else if (!this.#everHealthy) {
        this.#emit({ type: "healthy", at: now, inRecovery: result.inRecovery });
      }
      this.#everHealthy = true;
      this.#armWatchdog();
      return;
    }
    this.#lastFailure = result.failure;
    if (this.#state === "monitoring" && isDefinite(result.failure.code)) void this.#final("definite");
  }

  async #final(reason: "definite" | "timeout"): Promise<void> {
    const gen = this.#generation;
    this.#state = "final";
    if (this.#watchdog !== null) this.#clock.clearTimeout(this.#watchdog);
    this.#watchdog = null;
    const result = await this.#guardedCheck(this.#timing.finalTimeoutMs);
    if (gen !== this.#generation) return;
    const now = this.#clock.now();
    this.#emit({ type: "check", at: now, final: true, result });
    if (result.ok) {
      const silentForMs = now - this.#lastSuccess;
      this.#lastSuccess = now;
      this.#state = "monitoring";
      if (reason === "timeout") this.#emit({ type: "slow", at: now, silentForMs });
      if (!this.#everHealthy) this.#emit({ type: "healthy", at: now, inRecovery: result.inRecovery });
      this.#everHealthy = true;
      this.#armWatchdog();
      return;
    }
    this.#lastFailure = result.failure;
    this.#state = "failed";
    this.#emit({
      type: "failed",
      at: now,
      reason,
      failure: result.failure,
      silentForMs: now - this.#lastSuccess,
    });
    if (!this.#continue) {
      this.#generation++;
      this.#clearTimers();
      this.#state = "failed";
    }
  }
}
