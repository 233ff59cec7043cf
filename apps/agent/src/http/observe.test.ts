import {
  type FailoverConfig,
  type FailoverEvent,
  type FailoverState,
  initialState,
  type StepResult,
  type Transition,
} from "@efm/failover-core";
import { Registry } from "prom-client";
import { describe, expect, test } from "vitest";
import type { Executors } from "../loop.ts";
import { AgentObserver } from "./observe.ts";

const config: FailoverConfig = {
  self: "10.0.0.1:7800",
  clusterName: "acctg",
  isWitness: false,
  autoFailover: true,
  autoReconfigure: true,
  virtualIp: null,
  pingServer: "10.0.0.254",
  scripts: { fence: null, postPromotion: null, dbFailure: null, masterIsolated: null },
  localPeriodMs: 1000,
  localTimeoutMs: 5000,
  localTimeoutFinalMs: 2000,
  remoteTimeoutMs: 3000,
  leaseMs: 2000,
  takeoverMarginMs: 500,
  messageSlackMs: 2000,
  promotionTimeoutMs: 60_000,
  allowed: ["10.0.0.1:7800"],
  priority: [],
};
const base: FailoverState = { ...initialState(config), phase: "running", role: "Standby" };
const t = (rule: string, from: string | null = "Standby", to: string | null = "Standby"): Transition =>
  ({ rule, reason: `reason of ${rule}`, from, to }) as Transition;

/**
 * Replays a scripted list of steps: each event gets the next (state, transitions) pair, the way
 * the engine's step would answer it. The observer only reads what step returns.
 */
function scripted(steps: { state: FailoverState; transitions: Transition[] }[]) {
  let i = 0;
  return (_s: FailoverState, _e: FailoverEvent): StepResult => {
    const next = steps[i++]!;
    return { state: next.state, actions: [], transitions: next.transitions };
  };
}
const timer = (now: number): FailoverEvent => ({ type: "timer", now, name: "x" }) as FailoverEvent;
const value = async (registry: Registry, name: string, labels: Record<string, string> = {}) => {
  const m = (await registry.getMetricsAsJSON()).find((x) => x.name === name);
  const v = m?.values.find((x) =>
    Object.entries(labels).every(([k, l]) => (x.labels as Record<string, unknown>)[k] === l),
  );
  return v?.value;
};

describe("AgentObserver", () => {
  test("keeps the notable decisions, newest first, and leaves routine rows out", () => {
    const observer = new AgentObserver(new Registry(), () => 1_700_000_000_000);
    let changes = 0;
    observer.onChange(() => changes++);
    const step = observer.observeStep(
      scripted([
        { state: base, transitions: [t("local.ok"), t("lease.valid")] },
        { state: base, transitions: [t("inv.dbFailure.master")] },
        { state: { ...base, role: "Master" }, transitions: [t("cand.promoted", "Promoting", "Master")] },
      ]),
    );
    let s = base;
    for (let now = 1; now <= 3; now++) s = step(s, timer(now)).state;
    expect(observer.decisions.map((d) => d.rule)).toEqual(["cand.promoted", "inv.dbFailure.master"]);
    expect(observer.decisions[0]).toMatchObject({
      from: "Promoting",
      to: "Master",
      reason: "reason of cand.promoted",
    });
    expect(changes).toBe(2);
  });

  test("a routine rule that changes a role is kept", () => {
    const observer = new AgentObserver(new Registry());
    const step = observer.observeStep(
      scripted([{ state: base, transitions: [t("local.ok", "Idle", "Standby")] }]),
    );
    step(base, timer(1));
    expect(observer.decisions.map((d) => d.rule)).toEqual(["local.ok"]);
  });

  test("counts the coordinator's promotions by the rule that ended them, with their duration", async () => {
    const registry = new Registry();
    const observer = new AgentObserver(registry);
    const promotion = { token: "p" } as FailoverState["promotion"];
    const step = observer.observeStep(
      scripted([
        { state: { ...base, promotion }, transitions: [t("promo.start")] },
        { state: base, transitions: [t("promo.result.ok")] },
      ]),
    );
    step(step(base, timer(10_000)).state, timer(14_500));
    expect(await value(registry, "efm_failovers_total", { result: "promo.result.ok" })).toBe(1);
    const h = (await registry.getMetricsAsJSON()).find((m) => m.name === "efm_failover_duration_seconds")!;
    expect(
      h.values.find((v) => (v as { metricName?: string }).metricName === "efm_failover_duration_seconds_sum")
        ?.value,
    ).toBe(4.5);
  });

  test("counts this node's candidacies: success when it ends as Master, failure otherwise", async () => {
    const registry = new Registry();
    const observer = new AgentObserver(registry);
    const candidacy = { token: "c" } as FailoverState["candidacy"];
    const step = observer.observeStep(
      scripted([
        { state: { ...base, candidacy }, transitions: [t("cand.accept")] },
        { state: { ...base, role: "Master" }, transitions: [t("cand.postOk", "Promoting", "Master")] },
        { state: { ...base, candidacy }, transitions: [t("cand.accept")] },
        { state: { ...base, role: "Idle" }, transitions: [t("cand.promoteFailed", "Promoting", "Idle")] },
      ]),
    );
    let s = base;
    for (let now = 1; now <= 4; now++) s = step(s, timer(now * 1000)).state;
    expect(await value(registry, "efm_promotions_total", { result: "success" })).toBe(1);
    expect(await value(registry, "efm_promotions_total", { result: "failure" })).toBe(1);
  });

  test("times checks and counts script runs without changing their results", async () => {
    const registry = new Registry();
    const observer = new AgentObserver(registry);
    const exec = observer.instrument({
      checkLocalDb: async () => ({ ok: false, failure: "refused" }),
      runScript: async (kind: string) => {
        if (kind === "fence") throw new Error("cannot run");
        return { exitCode: kind === "postPromotion" ? 0 : 3, output: "" };
      },
    } as unknown as Executors);
    expect(await exec.checkLocalDb(100)).toEqual({ ok: false, failure: "refused" });
    expect(await exec.runScript("postPromotion", "/x")).toEqual({ exitCode: 0, output: "" });
    expect(await exec.runScript("dbFailure", "/x")).toEqual({ exitCode: 3, output: "" });
    await expect(exec.runScript("fence", "/x")).rejects.toThrow("cannot run");
    const checks = (await registry.getMetricsAsJSON()).find((m) => m.name === "efm_check_duration_seconds")!;
    expect(
      checks.values.find(
        (v) =>
          (v as { metricName?: string }).metricName === "efm_check_duration_seconds_count" &&
          v.labels.result === "failed",
      )?.value,
    ).toBe(1);
    expect(
      await value(registry, "efm_script_runs_total", { script: "postPromotion", result: "success" }),
    ).toBe(1);
    expect(await value(registry, "efm_script_runs_total", { script: "dbFailure", result: "failure" })).toBe(
      1,
    );
    expect(await value(registry, "efm_script_runs_total", { script: "fence", result: "error" })).toBe(1);
  });
});
