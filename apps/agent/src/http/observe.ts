import type { FailoverEvent, FailoverState, StepResult, Transition } from "@efm/failover-core";
import { Counter, Histogram, type Registry } from "prom-client";
import type { Executors } from "../loop.ts";

type Step = (state: FailoverState, event: FailoverEvent) => StepResult;

/** One decision of the engine, as the status page lists it. */
export interface Decision {
  /** Wall-clock time (ms since 1970) when the engine took it. */
  at: number;
  rule: string;
  from: string | null;
  to: string | null;
  reason: string;
}

const KEEP_DECISIONS = 50;
// Routine rows (periodic checks, lease renewals, status gossip) would push every real decision
// off the list; a row that changes a role is always kept.
const ROUTINE =
  /^(local\.(tick|tick\.skip|ok)|lease\.(valid|timer)|peer\.status|checkDb\.\w+|lsn\.\w+|notice\.update|review\.(size|standbys)\.ok|precheck\.(request|answer))$|\.stale$/;
const isNotable = (t: Transition) => t.from !== t.to || !ROUTINE.test(t.rule);

/**
 * Watches the agent from the outside, without changing what it does: the engine's steps (role
 * changes, promotions, decisions with their reasons) and the executors' timings (checks,
 * scripts, promote). Everything counted here is read by /metrics and the status page; the
 * engine and the executors stay exactly as they are.
 */
export class AgentObserver {
  readonly decisions: Decision[] = [];
  private readonly listeners = new Set<() => void>();
  private failoverStartedAt: number | null = null;
  private candidacyStartedAt: number | null = null;

  readonly failovers: Counter<"result">;
  readonly failoverSeconds: Histogram;
  readonly promotions: Counter<"result">;
  readonly promotionSeconds: Histogram;
  readonly checkSeconds: Histogram<"check" | "result">;
  readonly scriptRuns: Counter<"script" | "result">;
  readonly scriptSeconds: Histogram<"script">;
  readonly transitions: Counter<"rule">;

  constructor(
    registry: Registry,
    private readonly wallClock: () => number = Date.now,
  ) {
    const registers = [registry];
    const seconds = [0.01, 0.05, 0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300];
    this.failovers = new Counter({
      name: "efm_failovers_total",
      help: "Promotions this agent coordinated, by the rule that ended them (promo.result.ok: a master took over)",
      labelNames: ["result"],
      registers,
    });
    this.failoverSeconds = new Histogram({
      name: "efm_failover_duration_seconds",
      help: "Time from the coordinator starting a promotion to its end",
      buckets: seconds,
      registers,
    });
    this.promotions = new Counter({
      name: "efm_promotions_total",
      help: "Times this node's database was chosen for promotion, by outcome",
      labelNames: ["result"],
      registers,
    });
    this.promotionSeconds = new Histogram({
      name: "efm_promotion_duration_seconds",
      help: "Time from this node being chosen for promotion to it serving as master",
      buckets: seconds,
      registers,
    });
    this.checkSeconds = new Histogram({
      name: "efm_check_duration_seconds",
      help: "Latency of database checks: local (this node's database) and remote (another node's)",
      labelNames: ["check", "result"],
      buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 60],
      registers,
    });
    this.scriptRuns = new Counter({
      name: "efm_script_runs_total",
      help: "User scripts run (fence, post.promotion, db.failure, master.isolated), by exit result",
      labelNames: ["script", "result"],
      registers,
    });
    this.scriptSeconds = new Histogram({
      name: "efm_script_duration_seconds",
      help: "Run time of user scripts",
      labelNames: ["script"],
      buckets: seconds,
      registers,
    });
    this.transitions = new Counter({
      name: "efm_decisions_total",
      help: "Decisions of the failover engine, by the rule of its table that took them",
      labelNames: ["rule"],
      registers,
    });
  }

  /** Call `f` after each step that changed something worth showing; returns the unsubscribe. */
  onChange(f: () => void): () => void {
    this.listeners.add(f);
    return () => this.listeners.delete(f);
  }

  /** The engine's step, unchanged in what it returns, with its transitions recorded. */
  observeStep(step: Step): Step {
    return (state, event) => {
      const result = step(state, event);
      this.record(state, result, event.now);
      return result;
    };
  }

  /** The same executors, with checks, scripts and promotions timed. */
  instrument(exec: Executors): Executors {
    const timed = async <T>(
      h: Histogram<string>,
      labels: (v: T | null) => Record<string, string>,
      p: () => Promise<T>,
    ) => {
      const start = performance.now();
      try {
        const v = await p();
        h.observe(labels(v), (performance.now() - start) / 1000);
        return v;
      } catch (err) {
        h.observe(labels(null), (performance.now() - start) / 1000);
        throw err;
      }
    };
    return {
      ...exec,
      checkLocalDb: (timeoutMs) =>
        timed(
          this.checkSeconds,
          (r) => ({ check: "local", result: r?.ok ? "ok" : "failed" }),
          () => exec.checkLocalDb(timeoutMs),
        ),
      checkRemoteDb: (target, timeoutMs, asMaster) =>
        timed(
          this.checkSeconds,
          (r) => ({ check: "remote", result: r ?? "error" }),
          () => exec.checkRemoteDb(target, timeoutMs, asMaster),
        ),
      runScript: async (kind, path) => {
        const start = performance.now();
        try {
          const r = await exec.runScript(kind, path);
          this.scriptRuns.inc({ script: kind, result: r.exitCode === 0 ? "success" : "failure" });
          return r;
        } catch (err) {
          this.scriptRuns.inc({ script: kind, result: "error" });
          throw err;
        } finally {
          this.scriptSeconds.observe({ script: kind }, (performance.now() - start) / 1000);
        }
      },
    };
  }

  private record(before: FailoverState, result: StepResult, now: number): void {
    const after = result.state;
    let changed = before.role !== after.role || before.db !== after.db || before.view !== after.view;
    for (const t of result.transitions) {
      this.transitions.inc({ rule: t.rule });
      if (!isNotable(t)) continue;
      changed = true;
      this.decisions.unshift({
        at: this.wallClock(),
        rule: t.rule,
        from: t.from,
        to: t.to,
        reason: t.reason,
      });
    }
    this.decisions.length = Math.min(this.decisions.length, KEEP_DECISIONS);
    // The coordinator's promotion: from the moment it starts to the moment it is over.
    if (!before.promotion && after.promotion) this.failoverStartedAt = now;
    if (before.promotion && !after.promotion && this.failoverStartedAt !== null) {
      // The table row that ended it says how: promo.result.ok, promo.exhausted, promo.timeout...
      const ended = result.transitions.at(-1)?.rule ?? "unknown";
      this.failovers.inc({ result: ended });
      this.failoverSeconds.observe((now - this.failoverStartedAt) / 1000);
      this.failoverStartedAt = null;
    }
    // This node as the candidate: chosen, then either master or given up.
    if (!before.candidacy && after.candidacy) this.candidacyStartedAt = now;
    if (before.candidacy && !after.candidacy && this.candidacyStartedAt !== null) {
      const ok = after.role === "Master";
      this.promotions.inc({ result: ok ? "success" : "failure" });
      if (ok) this.promotionSeconds.observe((now - this.candidacyStartedAt) / 1000);
      this.candidacyStartedAt = null;
    }
    if (changed) for (const f of this.listeners) f();
  }
}
