import { describe, expect, it, vi } from "vitest";
import { Harness, harnessTimings } from "./harness.ts";
import { initialState, step } from "./step.ts";
import type {
  FailoverAction,
  FailoverConfig,
  FailoverEvent,
  FailoverState,
  PeerMessage,
  StepResult,
  ViewInfo,
} from "./types.ts";

/**
 * The invariant of guide 8.1 / 8.2 for every agent, checked after EVERY step of the harness: a
 * running Master or Standby has a local database check scheduled (a `localCheck` timer it armed
 * and that has not fired yet) or in flight. Timers are tracked from the actions themselves, not
 * from the engine's own bookkeeping, so a row that forgets to re-arm is caught.
 */
const armed = new Map<string, boolean>();
const violations: string[] = [];

function checkStep(before: FailoverState, event: FailoverEvent, r: StepResult): void {
  const self = before.config.self;
  if (event.type === "timer" && event.name === "localCheck") armed.set(self, false);
  for (const a of r.actions) {
    if (a.type === "setTimer" && a.name === "localCheck") armed.set(self, true);
    if (a.type === "cancelTimer" && a.name === "localCheck") armed.set(self, false);
  }
  const s = r.state;
  const monitors =
    !s.config.isWitness && s.phase === "running" && (s.role === "Master" || s.role === "Standby");
  if (monitors && !armed.get(self) && s.local.token === null) {
    violations.push(
      `${self} is ${s.role} with no local check after ${event.type}` +
        `${event.type === "timer" ? `:${event.name}` : ""} (${r.transitions.map((t) => t.rule).join(", ")})`,
    );
  }
}

vi.mock("./step.ts", async (importOriginal) => {
  const real = await importOriginal<typeof import("./step.ts")>();
  return {
    ...real,
    step: (state: FailoverState, event: FailoverEvent): StepResult => {
      const r = real.step(state, event);
      checkStep(state, event, r);
      return r;
    },
  };
});

/** A small deterministic PRNG (mulberry32): the same seed replays the same sequence. */
function rng(seed: number): (n: number) => number {
  let a = seed >>> 0;
  return (n) => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return Math.floor((((t ^ (t >>> 14)) >>> 0) / 4294967296) * n);
  };
}

function cluster(): Harness {
  armed.clear();
  violations.length = 0;
  const h = new Harness();
  for (const line of [
    "node a master 0/3000",
    "node b standby 0/3000",
    "node c standby 0/2000",
    "node d standby 0/1000",
    "node w witness",
    "start",
  ])
    h.run(line);
  return h;
}

function role(h: Harness, a: string): string | null {
  const n = h.nodes.get(a)!;
  return n.state.phase === "running" ? n.state.role : n.state.phase;
}

describe("local monitoring after a role change", () => {
  it("a promoted master watches its database: a second and third master failure each fail over", () => {
    const h = cluster();
    const order: string[] = [];
    for (let round = 0; round < 3; round++) {
      const master = [...h.nodes.keys()].find((a) => role(h, a) === "Master")!;
      order.push(master);
      h.run(`db ${master} down`);
      h.run("tick 20000");
      expect(role(h, master)).toBe("Idle");
    }
    const last = [...h.nodes.keys()].find((a) => role(h, a) === "Master");
    // a, then the most up-to-date standby b, then c (d is the last standby, then the master)
    expect([...order, last]).toEqual(["a", "b", "c", "d"]);
    expect(violations).toEqual([]);
  });

  it("holds after every step over randomized fault sequences", () => {
    const names = ["a", "b", "c", "d"];
    for (let seed = 1; seed <= 60; seed++) {
      const pick = rng(seed);
      const h = cluster();
      const log: string[] = [];
      for (let i = 0; i < 25; i++) {
        const x = names[pick(names.length)]!;
        const choices = [
          `db ${x} down`,
          `db ${x} up`,
          `db ${x} hang`,
          `tick ${1 + pick(8000)}`,
          `tick ${1 + pick(8000)}`,
          `command ${x} promote`,
          `command ${x} promote force`,
          `command ${x} resume`,
          `lsn ${x} 0/${(4000 + pick(4000)).toString(16)}`,
          `partition ${x} | ${names.filter((n) => n !== x).join(" ")} w`,
          "partition heal",
        ];
        const line = choices[pick(choices.length)]!;
        log.push(line);
        h.run(line);
      }
      h.run("partition heal");
      h.run("tick 30000");
      if (violations.length > 0) expect({ seed, log, violations }).toEqual({ seed, log, violations: [] });
    }
  });
});

/**
 * One agent driven alone, with every asynchronous result delivered late and in random order,
 * timers firing in between, and the coordinator's messages (promote, newMaster, verdicts,
 * switchover, views, leases, commands) arriving at random. This is how a real agent lives: a
 * promotion or a reconfiguration takes seconds, and the local check timer fires meanwhile.
 */
function fuzzAgent(seed: number, self: "a" | "b", steps: number): { log: string[] } {
  const pick = rng(seed);
  armed.clear();
  violations.length = 0;
  const cfg: FailoverConfig = {
    self,
    clusterName: "acctg",
    isWitness: false,
    autoFailover: true,
    autoReconfigure: pick(4) !== 0,
    virtualIp: pick(2) === 0 ? "10.0.0.100" : null,
    pingServer: pick(2) === 0 ? "8.8.8.8" : null,
    scripts: {
      fence: pick(2) === 0 ? "/bin/fence" : null,
      postPromotion: null,
      dbFailure: null,
      masterIsolated: null,
    },
    ...harnessTimings,
    allowed: [],
    priority: ["b", "c"],
  };
  let epoch = 1;
  const view = (members: [string, "Master" | "Standby" | "Witness"][], quorate = true): ViewInfo => ({
    epoch,
    members: members.map(([address, role]) => ({ address, role })),
    coordinator: "w",
    quorate,
    voters: ["a", "b", "c", "w"],
  });
  const full: [string, "Master" | "Standby" | "Witness"][] = [
    ["a", "Master"],
    ["b", "Standby"],
    ["c", "Standby"],
    ["w", "Witness"],
  ];
  let now = 0;
  let s: FailoverState = initialState(cfg);
  const timers = new Map<string, number>();
  let pending: FailoverAction[] = [];
  const log: string[] = [];
  const apply = (e: FailoverEvent) => {
    log.push(
      e.type === "messageReceived"
        ? `message:${e.message.type}`
        : e.type === "timer"
          ? `timer:${e.name}`
          : e.type,
    );
    const r = step(s, e);
    s = r.state;
    for (const a of r.actions) {
      if (a.type === "setTimer") timers.set(a.name, a.at);
      else if (a.type === "cancelTimer") timers.delete(a.name);
      else if (!["send", "broadcast", "notify", "writeState", "respond", "exit"].includes(a.type))
        pending.push(a);
    }
  };
  const fromW = (message: PeerMessage): FailoverEvent => ({
    type: "messageReceived",
    now,
    from: "w",
    message,
  });
  apply({ type: "started", now });
  apply({ type: "leaseValid", now, until: 1e12 });
  apply({ type: "viewInstalled", now, view: view(full) });
  const result = (a: FailoverAction): FailoverEvent | null => {
    const ok = pick(5) !== 0;
    switch (a.type) {
      case "checkLocalRole":
        return { type: "localRoleChecked", now, result: self === "a" ? "primary" : "recovery" };
      case "checkLocalDb":
        return {
          type: "localDbChecked",
          now,
          token: a.token,
          ok,
          ...(ok ? {} : { failure: "refused" as const }),
        };
      case "checkRemoteDb":
        return {
          type: "remoteDbChecked",
          now,
          token: a.token,
          target: a.target,
          result: ok ? "reachable" : "unreachable",
        };
      case "queryLsn":
        return { type: "lsnQueried", now, token: a.token, lsn: ok ? "0/3000" : null };
      case "pingVip":
        return { type: "vipPinged", now, token: a.token, reachable: !ok };
      case "pingServer":
        return { type: "pingServerPinged", now, token: a.token, reachable: ok };
      case "runScript":
        return {
          type: "scriptDone",
          now,
          token: a.token,
          script: a.script,
          exitCode: ok ? 0 : 1,
          output: "",
        };
      case "promoteDb":
        return { type: "dbPromoted", now, token: a.token, ok };
      case "fenceDb":
        return { type: "dbFenced", now, token: a.token, ok };
      case "reconfigureDb":
        return { type: "dbReconfigured", now, token: a.token, ok };
      case "assignVip":
      case "releaseVip":
        return {
          type: "vipDone",
          now,
          token: a.token,
          op: a.type === "assignVip" ? "assign" : "release",
          ok,
          output: "",
        };
      default:
        return null;
    }
  };
  for (let i = 0; i < steps && s.phase !== "exited"; i++) {
    now += pick(700);
    const roll = pick(20);
    if (roll < 7 && pending.length > 0) {
      const a = pending[pick(pending.length)]!;
      pending = pending.filter((x) => x !== a);
      const e = result(a);
      if (e) apply(e);
    } else if (roll < 12 && timers.size > 0) {
      // the earliest timer, or sometimes the second earliest (timers of one host race each other)
      const [name, at] = [...timers.entries()].sort((x, y) => x[1] - y[1])[pick(Math.min(2, timers.size))]!;
      timers.delete(name);
      now = Math.max(now, at);
      apply({ type: "timer", now, name });
    } else {
      const token = `w:${i}`;
      const mine: "Master" | "Standby" = self === "a" ? "Master" : "Standby";
      const external: (() => FailoverEvent)[] = [
        () => fromW({ type: "promote", token, epoch, oldMaster: "a", checkMaster: pick(2) === 0 }),
        () => fromW({ type: "newMaster", address: pick(2) === 0 ? "c" : "a" }),
        () => fromW({ type: "dbFailureVerdict", token, confirmed: pick(2) === 0 }),
        () => fromW({ type: "switchover", token, newMaster: "c" }),
        () => fromW({ type: "status", role: "Witness", db: "UP", master: pick(2) === 0 ? self : "a" }),
        () => fromW({ type: "queryLsn", token }),
        () => ({ type: "leaseValid", now, until: now + 4000 }),
        () => ({ type: "command", now, requestId: token, command: { kind: "resume" } }),
        () => ({
          type: "command",
          now,
          requestId: token,
          command: { kind: "promote", force: pick(2) === 0 },
        }),
        () => {
          epoch += 1;
          return { type: "viewInstalled", now, view: view(full) };
        },
        () => {
          epoch += 1;
          const minority: [string, "Master" | "Standby" | "Witness"][] = [
            [self, mine],
            ["w", "Witness"],
          ];
          return { type: "viewInstalled", now, view: view(minority, false) };
        },
      ];
      apply(external[pick(external.length)]!());
    }
  }
  return { log };
}

describe("local monitoring of one agent with late results (invariant after every step)", () => {
  it("a standby promoted while its local check timer fires keeps checking its database as master", () => {
    // The exact sequence of issue 11: promote request, the timer fires while Promoting, promoted.
    armed.clear();
    violations.length = 0;
    const cfg: FailoverConfig = {
      self: "b",
      clusterName: "acctg",
      isWitness: false,
      autoFailover: true,
      autoReconfigure: true,
      virtualIp: null,
      pingServer: null,
      scripts: { fence: null, postPromotion: null, dbFailure: null, masterIsolated: null },
      ...harnessTimings,
      allowed: [],
      priority: [],
    };
    let s = initialState(cfg);
    const v: ViewInfo = {
      epoch: 1,
      members: [
        { address: "a", role: "Master" },
        { address: "b", role: "Standby" },
        { address: "w", role: "Witness" },
      ],
      coordinator: "w",
      quorate: true,
      voters: ["a", "b", "w"],
    };
    const go = (e: FailoverEvent) => {
      const r = step(s, e);
      s = r.state;
      return r;
    };
    go({ type: "started", now: 0 });
    go({ type: "localRoleChecked", now: 0, result: "recovery" });
    go({ type: "leaseValid", now: 0, until: 1e9 });
    go({ type: "viewInstalled", now: 0, view: v });
    go({ type: "timer", now: 1, name: "startupChecks" });
    go({
      type: "remoteDbChecked",
      now: 1,
      token: Object.keys(s.startupChecks ?? {})[0]!,
      target: "a",
      result: "reachable",
    });
    expect(s.role).toBe("Standby");
    const p = go({
      type: "messageReceived",
      now: 2,
      from: "w",
      message: { type: "promote", token: "p1", epoch: 1, oldMaster: "a", checkMaster: false },
    });
    const promote = p.actions.find((a) => a.type === "promoteDb")!;
    expect(s.role).toBe("Promoting");
    go({ type: "timer", now: 1001, name: "localCheck" });
    go({ type: "dbPromoted", now: 1500, token: (promote as { token: string }).token, ok: true });
    expect(s.role).toBe("Master");
    expect(violations).toEqual([]);
    // and the next local check does run, and a failure is reported
    const tick = go({ type: "timer", now: 2500, name: "localCheck" });
    expect(tick.transitions.map((t) => t.rule)).toEqual(["local.tick"]);
  });

  it("holds over randomized event sequences for a standby and for a master", () => {
    for (let seed = 1; seed <= 300; seed++) {
      for (const self of ["a", "b"] as const) {
        const { log } = fuzzAgent(seed, self, 120);
        if (violations.length > 0)
          expect({ seed, self, log, violations }).toEqual({ seed, self, log, violations: [] });
      }
    }
  });
});
