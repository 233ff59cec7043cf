import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "vitest";
import {
  Harness,
  harnessConfig,
  initialState,
  runScenario,
  step,
} from "../packages/failover-core/src/index.ts";
import type { FailoverEvent, FailoverState } from "../packages/failover-core/src/index.ts";

// Prints numbers only: the engine's cost per event decides how many agents one process could simulate
// and how little the agent's event loop spends deciding.

describe("failover-core step()", () => {
  it("events per second on the hot path (periodic local checks of a running standby)", () => {
    let s: FailoverState = initialState(harnessConfig("b", { clusterName: "bench" }));
    const boot: FailoverEvent[] = [
      { type: "started", now: 0 },
      { type: "localRoleChecked", now: 0, result: "recovery" },
      { type: "leaseValid", now: 0, until: 1e15 },
      {
        type: "viewInstalled",
        now: 1,
        view: {
          epoch: 1,
          members: [{ address: "b", role: "Standby" }],
          coordinator: "b",
          quorate: true,
          voters: ["b"],
        },
      },
      { type: "timer", now: 2, name: "startupChecks" },
    ];
    for (const e of boot) s = step(s, e).state;
    const n = 300_000;
    const t0 = performance.now();
    let now = 10;
    for (let i = 0; i < n / 2; i++) {
      const r = step(s, { type: "timer", now: now++, name: "localCheck" });
      const a = r.actions.find((x) => x.type === "checkLocalDb");
      s = step(r.state, {
        type: "localDbChecked",
        now: now++,
        token: a && "token" in a ? a.token : "",
        ok: true,
      }).state;
    }
    const ms = performance.now() - t0;
    console.log(
      `failover-core: ${Math.round(n / (ms / 1000)).toLocaleString("en")} events/s (${((ms * 1000) / n).toFixed(2)} µs/event, n=${n})`,
    );
  });

  it("scenario transcripts per second (all golden files, whole clusters)", () => {
    const dir = join(import.meta.dirname, "../packages/failover-core/src/scenarios");
    const texts = readdirSync(dir)
      .filter((f) => f.endsWith(".txt"))
      .map((f) => readFileSync(join(dir, f), "utf8"));
    const rounds = 30;
    const t0 = performance.now();
    for (let i = 0; i < rounds; i++) {
      for (const t of texts) {
        runScenario(t, new Harness());
      }
    }
    const ms = performance.now() - t0;
    console.log(
      `failover-core: ${Math.round((rounds * texts.length) / (ms / 1000))} scenario runs/s over ${texts.length} files`,
    );
  });
});
