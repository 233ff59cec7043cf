import { openWatchdog, readDeviceTimeout, type WatchdogDevice } from "./device.ts";
import {
  mayFeed,
  planWatchdog,
  type WatchdogMode,
  type WatchdogPlan,
  type WatchdogTimingInput,
} from "./timing.ts";

/** The few log calls the controller makes (pino's Logger fits). */
export interface WatchdogLog {
  info(msg: string): void;
  warn(msg: string): void;
  error(msg: string): void;
}

export interface WatchdogOptions {
  mode: WatchdogMode;
  /** `watchdog.device`. */
  device: string;
  /** Lease, takeover margin, heartbeat and safety margin; the device's timeout is read here. */
  timing: Omit<WatchdogTimingInput, "deviceTimeoutMs">;
  /** The clock membership's lease is on (`member.now()`). */
  now(): number;
  /** Membership's lease end on that clock (`member.leaseUntil()`). */
  leaseUntil(): number;
  /** The engine's role for this agent now. */
  role(): string | null;
  /**
   * The agent stepped down but its own fence has not yet succeeded (the VIP is being released
   * before the fence starts, or a fence failed and is retried): the device must stay armed.
   */
  fencePending?(): boolean;
  log: WatchdogLog;
  /**
   * `required` only: this agent is (becoming) master and the device cannot guard it. Called once
   * per master term; the agent answers by giving up the role as on a lost lease.
   */
  onUnavailable(reason: string): void;
  /** Where the device's timeout is read (tests); see readDeviceTimeout. */
  sysfs?: string;
}

/** Roles in which the local database takes, or is about to take, writes. */
const WRITABLE_ROLES = new Set(["Master", "Promoting"]);

/**
 * The watchdog's life cycle, driven by the agent's own event loop: `tick()` on a timer and on
 * every lease renewal. Armed while the role is Master (or Promoting), fed only while the lease
 * leaves enough time (timing.ts), kept armed but unfed while a fence is running or after a
 * fence failed (the reset is then the fence), disarmed with the magic close once the agent
 * stepped down with its database fenced, or stops gracefully. Nothing here runs on another
 * thread or process: a frozen agent feeds nothing.
 */
export class HardwareWatchdog {
  private readonly o: WatchdogOptions;
  private device: WatchdogDevice | null = null;
  private plan: Extract<WatchdogPlan, { ok: true }> | null = null;
  private fencing = 0;
  private fenceFailed = false;
  /** This master term already reported (warned or refused) a device it could not use. */
  private reported = false;
  private starved = false;
  private closed = false;
  private timer: NodeJS.Timeout | undefined;

  constructor(options: WatchdogOptions) {
    this.o = options;
  }

  /** Is the device armed now (for status and tests). */
  get armed(): boolean {
    return this.device !== null;
  }

  /** How often `tick()` should run. */
  get tickMs(): number {
    return this.plan?.feedEveryMs ?? 1000;
  }

  /**
   * Whether the device could guard a master, without opening it (opening a real watchdog starts
   * its countdown). Run at start: `required` refuses to start when this fails.
   */
  check(): { ok: true; plan: Extract<WatchdogPlan, { ok: true }> } | { ok: false; problem: string } {
    const t = readDeviceTimeout(this.o.device, this.o.sysfs);
    if (t.ms === null) return { ok: false, problem: `watchdog.device=${this.o.device}: ${t.why}` };
    const plan = planWatchdog({ ...this.o.timing, deviceTimeoutMs: t.ms });
    if (!plan.ok) return { ok: false, problem: `watchdog.device=${this.o.device}: ${plan.problem}` };
    return { ok: true, plan };
  }

  /** One look at role and lease: arm, feed, leave unfed, or disarm. */
  tick(): void {
    if (this.closed || this.o.mode === "off") return;
    const writable = WRITABLE_ROLES.has(this.o.role() ?? "");
    if (!writable) this.reported = false;
    if (!this.device) {
      if (writable) this.arm();
      if (!this.device) return;
    }
    if (!writable) {
      // Stepped down: disarm only once the database is known fenced. While a fence runs, or
      // after one failed, the device stays armed and unfed, so it resets the host instead.
      if (this.fencing === 0 && !this.fenceFailed && !(this.o.fencePending?.() ?? false))
        this.disarm("this agent is no longer master");
      return;
    }
    if (!mayFeed(this.plan!, this.o.now(), this.o.leaseUntil())) {
      if (!this.starved) {
        this.starved = true;
        this.o.log.warn(
          `watchdog: the lease no longer covers the device's timeout; keepalives stop, and ${this.o.device} resets this host unless the agent steps down first`,
        );
      }
      return;
    }
    try {
      this.device.keepalive();
      this.starved = false;
    } catch (err) {
      this.o.log.error(`watchdog: keepalive to ${this.o.device} failed: ${(err as Error).message}`);
    }
  }

  /** Wrap the agent's fence so that the device stays armed while it runs and after it failed. */
  guardFence<A extends unknown[], R>(fence: (...args: A) => Promise<R>): (...args: A) => Promise<R> {
    return async (...args: A) => {
      this.fencing++;
      try {
        const r = await fence(...args);
        this.fenceFailed = false;
        return r;
      } catch (err) {
        if (this.device) {
          this.o.log.error(
            `watchdog: the fence failed, so ${this.o.device} is left armed without keepalives and resets this host`,
          );
        }
        this.fenceFailed = true;
        throw err;
      } finally {
        this.fencing--;
        this.tick();
      }
    };
  }

  /**
   * Tick on the agent's event loop from now on. The timer is unref'd: it never keeps a stopping
   * process alive, and a process that stops running stops feeding.
   */
  start(): void {
    if (this.closed || this.o.mode === "off" || this.timer) return;
    const run = () => {
      this.tick();
      if (!this.closed) this.timer = setTimeout(run, this.tickMs).unref();
    };
    this.timer = setTimeout(run, 0).unref();
  }

  /** Graceful stop: disarm (magic close) and never arm again. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.timer);
    if (this.device) this.disarm("the agent is stopping");
  }

  private arm(): void {
    const c = this.check();
    if (!c.ok) {
      this.unavailable(c.problem);
      return;
    }
    try {
      this.device = openWatchdog(this.o.device);
    } catch (err) {
      this.unavailable(`watchdog.device=${this.o.device} cannot be opened: ${(err as Error).message}`);
      return;
    }
    this.plan = c.plan;
    this.fenceFailed = false;
    this.starved = false;
    for (const w of c.plan.warnings) this.o.log.warn(`watchdog: ${w}`);
    this.o.log.info(
      `watchdog: ${this.o.device} armed (keepalives while at least ${c.plan.minLeaseLeftMs} ms of the lease remain; after a lost lease the fence has ${c.plan.fenceWindowMs} ms before the host is reset)`,
    );
    // The countdown started at open: the first keepalive follows in this same tick.
  }

  private disarm(why: string): void {
    const d = this.device!;
    this.device = null;
    try {
      d.disarm();
      this.o.log.info(`watchdog: ${this.o.device} disarmed: ${why}`);
    } catch (err) {
      this.o.log.error(
        `watchdog: disarming ${this.o.device} failed (${(err as Error).message}); the host may be reset`,
      );
    }
  }

  private unavailable(problem: string): void {
    if (this.reported) return;
    this.reported = true;
    if (this.o.mode === "required") {
      this.o.log.error(`watchdog.mode=required and ${problem}: this agent will not run as master`);
      this.o.onUnavailable(problem);
    } else {
      this.o.log.warn(`watchdog: ${problem}; running as master without a watchdog (watchdog.mode=automatic)`);
    }
  }
}
