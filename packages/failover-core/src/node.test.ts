import { describe, expect, it } from "vitest";
import { harnessConfig } from "./harness.ts";
import {
  type ClockPort,
  createNode,
  type NodeObserver,
  type NodePorts,
  type Step,
  settleWhen,
} from "./node.ts";
import { parsePeerMessage } from "./peer-message.ts";
import { initialState } from "./step.ts";
import type { FailoverAction, FailoverEvent, FailoverState, PeerMessage } from "./types.ts";

const SELF = "10.0.0.1:7800";
const B = "10.0.0.2:7800";

const config = () => harnessConfig(SELF);

/** A clock whose timers fire only when the test says so. */
class TestClock implements ClockPort {
  t = 1000;
  readonly armed = new Map<number, { at: number; fire: () => void }>();
  private seq = 0;
  now(): number {
    return this.t;
  }
  schedule(at: number, fire: () => void) {
    const id = this.seq++;
    this.armed.set(id, { at, fire });
    return { cancel: () => this.armed.delete(id) };
  }
  /** Move to `t` and fire every timer due by then, in time order. */
  advance(t: number): void {
    this.t = t;
    for (;;) {
      const due = [...this.armed.entries()].filter(([, x]) => x.at <= t).sort((a, b) => a[1].at - b[1].at)[0];
      if (!due) return;
      this.armed.delete(due[0]);
      due[1].fire();
    }
  }
}

/** Ports that record every call and answer with fixed values (or fail when told to). */
function recordingPorts(fail: Set<string> = new Set()) {
  const calls: string[] = [];
  const answer = <T>(name: string, v: T): Promise<T> => {
    calls.push(name);
    return fail.has(name) ? Promise.reject(new Error(`${name} broke`)) : Promise.resolve(v);
  };
  const ports: NodePorts = {
    send: (to, m) => void calls.push(`send ${to} ${m.type}`),
    checkLocalRole: () => answer("checkLocalRole", "recovery" as const),
    checkLocalDb: () => answer("checkLocalDb", { ok: true }),
    checkRemoteDb: (target) => answer(`checkRemoteDb ${target}`, "reachable" as const),
    queryLsn: () => answer("queryLsn", "0/3000060"),
    pingVip: () => answer("pingVip", false),
    pingServer: () => answer("pingServer", true),
    runScript: (kind) => answer(`runScript ${kind}`, { exitCode: 0, output: "done" }),
    checkPromotable: () => answer("checkPromotable", { ok: true }),
    promoteDb: () => answer("promoteDb", undefined),
    fenceDb: () => answer("fenceDb", undefined),
    reconfigureDb: () => answer("reconfigureDb", undefined),
    rejoinDb: () => answer("rejoinDb", { method: "rewind" as const }),
    setSyncStandbys: (standbys) => answer(`setSyncStandbys ${standbys.join(",")}`, undefined),
    assignVip: () => answer("assignVip", { ok: true, output: "assigned" }),
    releaseVip: () => answer("releaseVip", { ok: true, output: "released" }),
    notify: (a) => void calls.push(`notify ${a.id}`),
    writeState: () => void calls.push("writeState"),
    persist: (st) => void calls.push(`persist ${st.lastMaster} ${st.epoch} ${st.rebuildNeeded}`),
    respond: (id, ok) => void calls.push(`respond ${id} ${ok}`),
    exit: (code) => void calls.push(`exit ${code}`),
  };
  return { ports, calls };
}

/**
 * One example of every action the engine can ask for. Typed by action type, so an action added
 * to the engine fails to compile here until it is given an example (and so a port and a result).
 */
const EVERY_ACTION: { [K in FailoverAction["type"]]: Extract<FailoverAction, { type: K }> } = {
  send: { type: "send", to: B, message: { type: "stop" } },
  broadcast: { type: "broadcast", message: { type: "fencedMasterBack" } },
  checkLocalRole: { type: "checkLocalRole", token: "t-role" },
  checkLocalDb: { type: "checkLocalDb", token: "t-local", timeoutMs: 100 },
  checkRemoteDb: { type: "checkRemoteDb", token: "t-remote", target: B, timeoutMs: 100 },
  queryLsn: { type: "queryLsn", token: "t-lsn" },
  pingVip: { type: "pingVip", token: "t-vip", vip: "10.0.0.100" },
  pingServer: { type: "pingServer", token: "t-ping", server: "8.8.8.8" },
  runScript: { type: "runScript", token: "t-script", script: "fence", path: "/bin/fence" },
  checkPromotable: { type: "checkPromotable", token: "t-check" },
  promoteDb: { type: "promoteDb", token: "t-promote" },
  fenceDb: { type: "fenceDb", token: "t-fence", newMaster: B },
  reconfigureDb: { type: "reconfigureDb", token: "t-reconf", newMaster: B },
  rejoinDb: { type: "rejoinDb", token: "t-rejoin", newMaster: B },
  setSyncStandbys: { type: "setSyncStandbys", token: "t-sync", standbys: [B] },
  assignVip: { type: "assignVip", token: "t-assign", vip: "10.0.0.100" },
  releaseVip: { type: "releaseVip", token: "t-release", vip: "10.0.0.100" },
  notify: {
    type: "notify",
    id: "lockFileRemoved",
    params: { clusterName: "acctg", pathName: "/x", nodeAddress: "h" },
  },
  writeState: { type: "writeState", allowed: [SELF], priority: [] },
  persist: { type: "persist", state: { lastMaster: B, epoch: 3, rebuildNeeded: true } },
  respond: { type: "respond", requestId: "r1", ok: true, message: "ok" },
  setTimer: { type: "setTimer", name: "probe", at: 5000 },
  cancelTimer: { type: "cancelTimer", name: "probe" },
  exit: { type: "exit", code: 0, reason: "done" },
};

/** A step that answers `started` with the given actions and records every event it sees. */
function scriptedStep(actions: readonly FailoverAction[]): { step: Step; seen: FailoverEvent[] } {
  const seen: FailoverEvent[] = [];
  const step: Step = (state, event) => {
    seen.push(event);
    return { state, actions: event.type === "started" ? actions : [], transitions: [] };
  };
  return { step, seen };
}

const settle = () => new Promise((r) => setTimeout(r, 0));

function withView(members: string[]): FailoverState {
  const s = initialState(config());
  return {
    ...s,
    view: {
      epoch: 1,
      members: members.map((address) => ({ address })),
      coordinator: members[0]!,
      quorate: true,
      voters: members,
    },
  };
}

describe("createNode: actions", () => {
  it("hands every action to its port and brings every result back as the engine's event, with its token", async () => {
    const clock = new TestClock();
    const { ports, calls } = recordingPorts();
    const { step, seen } = scriptedStep(Object.values(EVERY_ACTION));
    const node = createNode({ state: withView([SELF, B]), ports, clock, step });
    node.start();
    await settle();
    expect(calls).toEqual([
      `send ${B} stop`,
      `send ${B} fencedMasterBack`,
      "checkLocalRole",
      "checkLocalDb",
      `checkRemoteDb ${B}`,
      "queryLsn",
      "pingVip",
      "pingServer",
      "runScript fence",
      "checkPromotable",
      "promoteDb",
      "fenceDb",
      "reconfigureDb",
      "rejoinDb",
      `setSyncStandbys ${B}`,
      "assignVip",
      "releaseVip",
      "notify lockFileRemoved",
      "writeState",
      `persist ${B} 3 true`,
      "respond r1 true",
      "exit 0",
    ]);
    const results = seen.slice(1).map((e) => ({ type: e.type, token: "token" in e ? e.token : undefined }));
    expect(results).toEqual([
      { type: "localRoleChecked", token: "t-role" },
      { type: "localDbChecked", token: "t-local" },
      { type: "remoteDbChecked", token: "t-remote" },
      { type: "lsnQueried", token: "t-lsn" },
      { type: "vipPinged", token: "t-vip" },
      { type: "pingServerPinged", token: "t-ping" },
      { type: "scriptDone", token: "t-script" },
      { type: "promotableChecked", token: "t-check" },
      { type: "dbPromoted", token: "t-promote" },
      { type: "dbFenced", token: "t-fence" },
      { type: "dbReconfigured", token: "t-reconf" },
      { type: "dbRejoined", token: "t-rejoin" },
      { type: "syncStandbysSet", token: "t-sync" },
      { type: "vipDone", token: "t-assign" },
      { type: "vipDone", token: "t-release" },
    ]);
    // The timer was set, then cancelled by the next action: nothing is left armed.
    expect(clock.armed.size).toBe(0);
  });

  it("turns a port's failure into the failed result the engine expects, and tells the observer", async () => {
    const clock = new TestClock();
    const { ports } = recordingPorts(new Set(["promoteDb", "pingVip", "checkLocalDb", "runScript fence"]));
    const { step, seen } = scriptedStep([
      EVERY_ACTION.promoteDb,
      EVERY_ACTION.pingVip,
      EVERY_ACTION.checkLocalDb,
      EVERY_ACTION.runScript,
    ]);
    const failed: string[] = [];
    const node = createNode({
      state: withView([SELF]),
      ports,
      clock,
      step,
      observer: { actionFailed: (a, e) => failed.push(`${a.type}: ${e.message}`) },
    });
    node.start();
    await settle();
    expect(seen.slice(1)).toEqual([
      { type: "dbPromoted", now: 1000, token: "t-promote", ok: false, error: "promoteDb broke" },
      // Could not test the VIP: assume it may be in use, which blocks a promotion.
      { type: "vipPinged", now: 1000, token: "t-vip", reachable: true },
      { type: "localDbChecked", now: 1000, token: "t-local", ok: false, failure: "timeout" },
      {
        type: "scriptDone",
        now: 1000,
        token: "t-script",
        script: "fence",
        exitCode: -1,
        output: "runScript fence broke",
      },
    ]);
    expect(failed).toHaveLength(4);
  });

  it("carries the timeline of a position the port can tell, and accepts a plain position", async () => {
    const clock = new TestClock();
    const { ports } = recordingPorts();
    const events: FailoverEvent[] = [];
    for (const answer of [
      { lsn: "0/5000", timeline: 2, streaming: true },
      { lsn: "0/5000", timeline: null },
      "0/5000",
      null,
    ]) {
      const { step, seen } = scriptedStep([EVERY_ACTION.queryLsn]);
      const withPosition: NodePorts = { ...ports, queryLsn: () => Promise.resolve(answer) };
      createNode({ state: withView([SELF]), ports: withPosition, clock, step }).start();
      await settle();
      events.push(seen.at(-1)!);
    }
    const base = { type: "lsnQueried", now: 1000, token: "t-lsn" };
    expect(events).toEqual([
      { ...base, lsn: "0/5000", timeline: 2, streaming: true },
      { ...base, lsn: "0/5000", timeline: null },
      { ...base, lsn: "0/5000" },
      { ...base, lsn: null },
    ]);
  });

  it("treats a port that throws like one that rejects", async () => {
    const clock = new TestClock();
    const { ports } = recordingPorts();
    const throwing: NodePorts = {
      ...ports,
      fenceDb: () => {
        throw new Error("sudo: no tty");
      },
    };
    const { step, seen } = scriptedStep([EVERY_ACTION.fenceDb]);
    createNode({ state: withView([SELF]), ports: throwing, clock, step }).start();
    await settle();
    expect(seen.at(-1)).toEqual({
      type: "dbFenced",
      now: 1000,
      token: "t-fence",
      ok: false,
      error: "sudo: no tty",
    });
  });

  it("handles one event at a time: a result that is ready at once waits for the current step's actions", () => {
    const clock = new TestClock();
    const order: string[] = [];
    const { ports } = recordingPorts();
    const syncPorts: NodePorts = {
      ...ports,
      // A thenable that answers at once (as a deterministic harness may).
      queryLsn: () =>
        settleWhen(
          (run) => run(),
          () => {
            order.push("lsn answered");
            return "0/1";
          },
        ),
      send: () => void order.push("send"),
    };
    const step: Step = (state, event) => {
      order.push(`step ${event.type}`);
      return {
        state,
        actions: event.type === "started" ? [EVERY_ACTION.queryLsn, EVERY_ACTION.send] : [],
        transitions: [],
      };
    };
    createNode({ state: withView([SELF, B]), ports: syncPorts, clock, step }).start();
    expect(order).toEqual(["step started", "lsn answered", "send", "step lsnQueried"]);
  });

  it("never arms a timer at a time that is not finite, and stop() cancels every timer", () => {
    const clock = new TestClock();
    const { ports } = recordingPorts();
    const dropped: string[] = [];
    const { step } = scriptedStep([
      { type: "setTimer", name: "lease", at: Number.POSITIVE_INFINITY },
      { type: "setTimer", name: "nan", at: Number.NaN },
      { type: "setTimer", name: "probe", at: 2000 },
      { type: "setTimer", name: "probe", at: 3000 },
      { type: "setTimer", name: "other", at: 4000 },
    ]);
    const observer: NodeObserver = { dropped: (what, d) => dropped.push(`${what}: ${String(d.name)}`) };
    const node = createNode({ state: withView([SELF]), ports, clock, step, observer });
    node.start();
    expect(dropped).toEqual([
      "timer at a time that is not finite: lease",
      "timer at a time that is not finite: nan",
    ]);
    // Re-arming a name replaces its timer.
    expect([...clock.armed.values()].map((x) => x.at).sort()).toEqual([3000, 4000]);
    node.stop();
    expect(clock.armed.size).toBe(0);
  });

  it("fires a timer as the engine's timer event at the clock's time", () => {
    const clock = new TestClock();
    const { ports } = recordingPorts();
    const { step, seen } = scriptedStep([{ type: "setTimer", name: "localCheck", at: 2500 }]);
    createNode({ state: withView([SELF]), ports, clock, step }).start();
    clock.advance(2600);
    expect(seen.at(-1)).toEqual({ type: "timer", now: 2600, name: "localCheck" });
  });

  it("reports an action it does not know and goes on with the next one", () => {
    const clock = new TestClock();
    const { ports, calls } = recordingPorts();
    const dropped: string[] = [];
    const { step } = scriptedStep([
      { type: "fromANewerEngine" } as unknown as FailoverAction,
      EVERY_ACTION.exit,
    ]);
    createNode({
      state: withView([SELF]),
      ports,
      clock,
      step,
      observer: { dropped: (what) => dropped.push(what) },
    }).start();
    expect(dropped).toEqual(["unknown action"]);
    expect(calls).toEqual(["exit 0"]);
  });

  it("keeps its state when the engine throws, and goes on", () => {
    const clock = new TestClock();
    const { ports } = recordingPorts();
    const rejected: string[] = [];
    let n = 0;
    const step: Step = (state, event) => {
      n++;
      if (event.type === "started") throw new Error("bug");
      return { state: { ...state, seq: state.seq + 1 }, actions: [], transitions: [] };
    };
    const node = createNode({
      state: withView([SELF]),
      ports,
      clock,
      step,
      observer: { rejected: (e) => rejected.push(e.type) },
    });
    node.start();
    node.shutdown();
    expect(rejected).toEqual(["started"]);
    expect(n).toBe(2);
    expect(node.state.seq).toBe(1);
  });
});

describe("createNode: membership", () => {
  function membershipNode() {
    const clock = new TestClock();
    const { ports } = recordingPorts();
    const seen: FailoverEvent[] = [];
    const step: Step = (state, event) => {
      seen.push(event);
      return { state, actions: [], transitions: [] };
    };
    const dropped: string[] = [];
    const node = createNode({
      state: initialState(config()),
      ports,
      clock,
      step,
      observer: { dropped: (what, d) => dropped.push(`${what} ${JSON.stringify(d)}`) },
    });
    return { node, seen, dropped, clock };
  }

  it("translates views, departures, committed removals, suspicions and quorum changes", () => {
    const { node, seen } = membershipNode();
    node.membership({
      type: "viewInstalled",
      view: {
        epoch: 4,
        members: [SELF, B],
        coordinator: SELF,
        quorate: true,
        subgroups: [],
        voters: [SELF, B, "c"],
      },
      left: ["c"],
    });
    node.membership({
      type: "viewCommitted",
      committedAt: 900,
      removed: [{ member: "d", takeoverAllowedAt: 5000 }],
    });
    node.membership({ type: "memberQuiet", member: B });
    node.membership({ type: "memberSuspected", member: B });
    node.membership({ type: "quorumLost" });
    node.membership({ type: "quorumGained" });
    // Membership vocabulary the engine has no use for is ignored.
    node.membership({ type: "memberJoined" });
    node.membership({ type: "configCommitted" });
    expect(seen).toEqual([
      {
        type: "viewInstalled",
        now: 1000,
        view: {
          epoch: 4,
          members: [{ address: SELF }, { address: B }],
          coordinator: SELF,
          quorate: true,
          voters: [SELF, B, "c"],
          subgroups: [],
        },
      },
      { type: "memberGone", now: 1000, address: "c", how: "left", lastHeardAt: 1000 },
      {
        type: "memberGone",
        now: 1000,
        address: "d",
        how: "removed",
        lastHeardAt: 900,
        takeoverAllowedAt: 5000,
      },
      { type: "memberQuiet", now: 1000, address: B },
      { type: "memberSuspected", now: 1000, address: B },
      { type: "quorumLost", now: 1000 },
      { type: "quorumGained", now: 1000 },
    ]);
  });

  it("passes every lease renewal on, and refuses a lease without a finite end (the lease contract)", () => {
    const { node, seen, dropped } = membershipNode();
    node.membership({ type: "leaseValid", until: 4000 });
    node.membership({ type: "leaseValid", until: 4500 });
    node.membership({ type: "leaseValid", until: Number.POSITIVE_INFINITY });
    node.membership({ type: "leaseLost" });
    expect(seen).toEqual([
      { type: "leaseValid", now: 1000, until: 4000 },
      { type: "leaseValid", now: 1000, until: 4500 },
      { type: "leaseLost", now: 1000 },
    ]);
    expect(dropped).toEqual(['lease renewal with an end that is not a finite time {"until":null}']);
  });

  it("validates peer messages: a good one reaches the engine rebuilt, a bad one is dropped with its reason", () => {
    const { node, seen, dropped } = membershipNode();
    node.membership({
      type: "message",
      from: B,
      payload: { type: "status", role: "Standby", db: "UP", extra: 1 },
    });
    node.membership({ type: "message", from: B, payload: { type: "status", role: "King", db: "UP" } });
    node.membership({ type: "message", from: B, payload: "hello" });
    expect(seen).toEqual([
      { type: "messageReceived", now: 1000, from: B, message: { type: "status", role: "Standby", db: "UP" } },
    ]);
    expect(dropped).toEqual([
      `malformed failover message {"from":"${B}","reason":"status.role is not an agent role"}`,
      `malformed failover message {"from":"${B}","reason":"the payload is not an object"}`,
    ]);
  });

  it("stops when the cluster stops, by someone else's command or by our own", () => {
    const { node, seen } = membershipNode();
    node.membership({ type: "clusterStopping", by: B });
    node.membership({ type: "halted", reason: "left" });
    node.membership({ type: "halted", reason: "stopCluster" });
    expect(seen).toEqual([
      { type: "messageReceived", now: 1000, from: B, message: { type: "stop" } },
      { type: "messageReceived", now: 1000, from: SELF, message: { type: "stop" } },
    ]);
  });

  it("ignores everything once stopped", () => {
    const { node, seen } = membershipNode();
    node.stop();
    node.membership({ type: "quorumLost" });
    node.start();
    expect(seen).toEqual([]);
  });
});

describe("parsePeerMessage", () => {
  /** One message of every type, with every optional field set. */
  const EVERY_MESSAGE: { [K in PeerMessage["type"]]: Extract<PeerMessage, { type: K }> } = {
    status: {
      type: "status",
      role: "Master",
      db: "UP",
      master: null,
      ask: true,
      starting: false,
      conflict: false,
    },
    dbFailed: { type: "dbFailed", role: "Standby" },
    checkDb: { type: "checkDb", token: "t", target: B, asMaster: true },
    checkDbReply: { type: "checkDbReply", token: "t", result: "unknown" },
    dbFailureVerdict: { type: "dbFailureVerdict", token: "t", confirmed: true },
    fenced: { type: "fenced", token: "t", unconfirmed: true, finalLsn: "0/3000028" },
    switchover: { type: "switchover", token: "t", newMaster: B, clean: true },
    switchoverDone: { type: "switchoverDone", newMaster: B },
    queryLsn: { type: "queryLsn", token: "t" },
    lsnReply: {
      type: "lsnReply",
      token: "t",
      lsn: "0/10",
      role: "Standby",
      timeline: 2,
      rebuild: true,
      streaming: true,
      replayed: "0/8",
    },
    promote: { type: "promote", token: "t", epoch: 3, oldMaster: null, checkMaster: true, restore: false },
    promotionResult: { type: "promotionResult", token: "t", ok: false, reason: "no", next: true },
    checkPromotable: { type: "checkPromotable", token: "t", restore: true },
    promotableReply: { type: "promotableReply", token: "t", ok: false, error: "password", refused: true },
    notice: { type: "notice", text: null },
    newMaster: { type: "newMaster", address: B, epoch: 4 },
    lists: { type: "lists", allowed: [SELF, B], priority: [B] },
    command: {
      type: "command",
      requestId: "r",
      command: { kind: "addNode", address: "10.0.0.9", priority: 1 },
    },
    commandReply: { type: "commandReply", requestId: "r", ok: true, message: "done" },
    stop: { type: "stop" },
    fencedMasterBack: { type: "fencedMasterBack", unconfirmed: true },
  };

  it("accepts every message the engine sends, unchanged after a trip through JSON", () => {
    for (const m of Object.values(EVERY_MESSAGE)) {
      expect(parsePeerMessage(JSON.parse(JSON.stringify(m)))).toEqual(m);
    }
  });

  it("carries a switchover promote command, its target or null, and names a bad target", () => {
    for (const to of [B, null]) {
      const m: PeerMessage = {
        type: "command",
        requestId: "r",
        command: { kind: "promote", force: false, switchover: { to } },
      };
      expect(parsePeerMessage(JSON.parse(JSON.stringify(m)))).toEqual(m);
    }
    expect(
      parsePeerMessage({
        type: "command",
        requestId: "r",
        command: { kind: "promote", force: false, switchover: { to: 7 } },
      }),
    ).toBe("command.command is switchover.to is not a string or null");
  });

  it("names the field that is wrong", () => {
    expect(
      parsePeerMessage({ type: "promote", token: "t", epoch: "3", oldMaster: null, checkMaster: true }),
    ).toBe("promote.epoch is not a finite number");
    expect(parsePeerMessage({ type: "fenced" })).toBe("fenced.token is missing");
    expect(parsePeerMessage({ type: "lsnReply", token: "t", lsn: null, role: null })).toBe(
      "lsnReply.role is null",
    );
    expect(parsePeerMessage({ type: "nope" })).toBe('unknown message type "nope"');
    expect(
      parsePeerMessage({ type: "command", requestId: "r", command: { kind: "addNode", address: 7 } }),
    ).toBe("command.command is address is not a string");
    expect(parsePeerMessage({ type: "lists", allowed: ["a"], priority: new Array(1001).fill("x") })).toBe(
      "lists.priority is not a list of at most 1000 strings",
    );
    expect(parsePeerMessage([])).toBe("the payload is not an object");
    // issue 13's fields: a timeline is a number or null (older agents leave it out)
    expect(
      parsePeerMessage({ type: "lsnReply", token: "t", lsn: null, role: "Standby", timeline: "2" }),
    ).toBe("lsnReply.timeline is not a finite number");
    expect(
      parsePeerMessage({ type: "lsnReply", token: "t", lsn: null, role: "Standby", timeline: null }),
    ).toEqual({
      type: "lsnReply",
      token: "t",
      lsn: null,
      role: "Standby",
      timeline: null,
    });
    expect(parsePeerMessage({ type: "fencedMasterBack", unconfirmed: "yes" })).toBe(
      "fencedMasterBack.unconfirmed is not a boolean",
    );
  });
});
