import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { MembershipCore, majorityOfVoters } from "./protocol.ts";
import { deriveTiming, detectionBound, leaseDuration, quietAfter, takeoverAllowedAt } from "./timing.ts";
import type { CoreInput, Effect, MembershipEvent, NodeId } from "./types.ts";

const timing = deriveTiming(100, 3);

/** A tiny deterministic cluster: 2 ms links, ordered delivery, optional cuts. */
class Mini {
  now = 0;
  queue: { at: number; seq: number; to: string; input: CoreInput }[] = [];
  seq = 0;
  nodes = new Map<string, MembershipCore>();
  events = new Map<string, MembershipEvent[]>();
  effects = new Map<string, Effect[]>();
  timers = new Map<string, number>();
  down = new Set<string>();
  /** Cut links, both ways: "a|b". */
  cuts = new Set<string>();
  /** The node whose database is the primary: the only one that may found a cluster alone. */
  founder: string | null;
  constructor(
    addrs: string[],
    opts: {
      allowed?: string[];
      seeds?: (a: string) => string[];
      founder?: string | null;
      quietAfter?: number;
    } = {},
  ) {
    this.founder = opts.founder === undefined ? addrs[0]! : opts.founder;
    const hosts = opts.allowed ?? addrs.map((a) => a.split(":")[0]!);
    for (const a of addrs) {
      const core = new MembershipCore({
        self: a,
        incarnation: `inc-${a}`,
        timing,
        seeds: opts.seeds ? opts.seeds(a) : addrs.filter((x) => x !== a),
        initialAllowed: hosts,
        ...(opts.quietAfter !== undefined ? { quietAfter: opts.quietAfter } : {}),
      });
      this.nodes.set(a, core);
      this.events.set(a, []);
      this.effects.set(a, []);
    }
  }
  push(at: number, to: string, input: CoreInput): void {
    this.queue.push({ at, seq: this.seq++, to, input });
    this.queue.sort((x, y) => x.at - y.at || x.seq - y.seq);
  }
  start(a: string): void {
    this.push(this.now, a, { type: "start", mayFoundAlone: a === this.founder });
  }
  run(until: number): void {
    while (this.queue.length > 0 && this.queue[0]!.at <= until) {
      const ev = this.queue.shift()!;
      this.now = ev.at;
      if (this.down.has(ev.to)) continue;
      if (ev.input.type === "timer" && this.timers.get(`${ev.to}/${ev.input.id}`) !== ev.seq) continue;
      const core = this.nodes.get(ev.to)!;
      for (const e of core.handle(this.now, ev.input)) this.apply(ev.to, core.self, e);
    }
    this.now = until;
  }
  apply(a: string, self: NodeId, e: Effect): void {
    this.effects.get(a)!.push(e);
    // Every timer the core asks for is at a finite time: the runtime arms real timers from it.
    if (e.type === "setTimer" && !Number.isFinite(e.at)) throw new Error(`${a}: timer ${e.id} at ${e.at}`);
    if (e.type === "send" && this.nodes.has(e.to) && !this.cuts.has(`${a}|${e.to}`))
      this.push(this.now + 2, e.to, { type: "frame", from: self, msg: e.msg });
    if (e.type === "setTimer") {
      const seq = this.seq;
      this.push(e.at, a, { type: "timer", id: e.id });
      this.timers.set(`${a}/${e.id}`, seq);
    }
    if (e.type === "cancelTimer") this.timers.delete(`${a}/${e.id}`);
    if (e.type === "emit") this.events.get(a)!.push(e.event);
  }
  cut(a: string, b: string): void {
    this.cuts.add(`${a}|${b}`);
    this.cuts.add(`${b}|${a}`);
  }
  heal(): void {
    this.cuts.clear();
  }
  view(a: string): readonly string[] {
    return this.nodes.get(a)!.currentView()?.members ?? [];
  }
}

const A = "10.1.0.1:7800";
const B = "10.1.0.2:7800";
const C = "10.1.0.3:7800";

describe("timing", () => {
  it("derives every timer from jgroups.timeout and jgroups.max.tries (guide defaults 5000 x 8)", () => {
    const t = deriveTiming();
    expect(t.suspectAfter).toBe(40_000);
    expect(t.lease).toBe(35_000);
    // the direct verification after the window is short: 2 s at most, one timeout below that
    expect(t.verifyTimeout).toBe(2000);
    expect(deriveTiming(500, 2).verifyTimeout).toBe(500);
    expect(leaseDuration(500, 2)).toBe(500);
    expect(takeoverAllowedAt(1000, t)).toBe(1000 + 35_000 + t.driftMargin);
    expect(detectionBound(t)).toBeGreaterThan(t.suspectAfter);
    expect(() => deriveTiming(5, 8)).toThrow(/jgroups.timeout/);
    expect(() => deriveTiming(5000, 1)).toThrow(/jgroups.max.tries/);
  });
});

describe("quorum rule", () => {
  it("needs a strict majority of R; an even split has no quorum", () => {
    const R = ["a", "b", "c", "d"];
    expect(majorityOfVoters(["a", "b"], R, null)).toBe(false);
    expect(majorityOfVoters(["c", "d"], R, null)).toBe(false);
    expect(majorityOfVoters(["a", "b", "c"], R, null)).toBe(true);
    expect(majorityOfVoters(["a", "x", "y"], ["a", "b", "c"], null)).toBe(false);
    expect(majorityOfVoters(["a"], [], null)).toBe(false);
  });
});

describe("the master lease", () => {
  const leaseEvents = (m: Mini, a: string) =>
    m.events.get(a)!.filter((e) => e.type === "leaseValid" || e.type === "leaseLost");

  it("a lone voter's lease is finite and renewed by its own heartbeat tick", () => {
    const m = new Mini([A], { seeds: () => [] });
    m.start(A);
    m.run(500);
    const core = m.nodes.get(A)!;
    expect(core.clusterConfig().voters).toEqual([A]);
    for (let t = 500; t <= 5000; t += 97) {
      m.run(t);
      const until = core.leaseUntil();
      expect(Number.isFinite(until)).toBe(true);
      expect(until).toBeGreaterThan(m.now);
      // Never more than one lease length beyond the last heartbeat tick.
      expect(until).toBeLessThanOrEqual(m.now + timing.lease);
    }
    // Held the whole time: renewals only, each announced with a later end, no loss.
    const renewals = leaseEvents(m, A);
    expect(renewals.every((e) => e.type === "leaseValid")).toBe(true);
    const ends = renewals.map((e) => (e.type === "leaseValid" ? e.until : 0));
    expect(ends.length).toBeGreaterThan(10);
    for (let i = 1; i < ends.length; i++) expect(ends[i]).toBeGreaterThan(ends[i - 1]!);
    const leaseTimers = m.effects.get(A)!.filter((e) => e.type === "setTimer" && e.id === "lease");
    expect(leaseTimers.length).toBeGreaterThan(10);
  });

  it("a lone voter that stops running loses its lease by time, and regains it when it runs again", () => {
    const m = new Mini([A], { seeds: () => [] });
    m.start(A);
    m.run(500);
    const core = m.nodes.get(A)!;
    const until = core.leaseUntil();
    // Its heartbeat timer fires far too late (SIGSTOP, swap): the lease ran out meanwhile.
    const late = core.handle(until + 5 * timing.lease, { type: "timer", id: "hb" });
    const types = late.flatMap((e) => (e.type === "emit" ? [e.event.type] : []));
    expect(types.filter((t) => t === "leaseLost" || t === "leaseValid")).toEqual(["leaseLost", "leaseValid"]);
    expect(core.leaseUntil()).toBe(until + 5 * timing.lease + timing.lease);
    // Its own lease timer, fired at the end without a tick in between, ends the lease.
    const expired = core.handle(core.leaseUntil(), { type: "timer", id: "lease" });
    expect(expired).toContainEqual({ type: "emit", event: { type: "leaseLost" } });
    expect(core.leaseValidAt(core.leaseUntil())).toBe(false);
  });

  it("a voter among three loses its lease one lease length after the others stop acknowledging", () => {
    const m = new Mini([A, B, C]);
    for (const a of [A, B, C]) m.start(a);
    m.run(1000);
    expect(new Set(leaseEvents(m, A).map((e) => e.type))).toEqual(new Set(["leaseValid"]));
    const core = m.nodes.get(A)!;
    const before = core.leaseUntil();
    expect(Number.isFinite(before)).toBe(true);
    m.down.add(B);
    m.down.add(C);
    const downAt = m.now;
    m.run(downAt + timing.lease + timing.heartbeatInterval + 10);
    const types = leaseEvents(m, A).map((e) => e.type);
    expect(types.at(-1)).toBe("leaseLost");
    expect(types.filter((t) => t === "leaseLost")).toHaveLength(1);
    // Every renewal announced before the loss ends no later than one L after the last acknowledgement.
    const last = leaseEvents(m, A)
      .filter((e) => e.type === "leaseValid")
      .at(-1);
    expect(last?.type === "leaseValid" && last.until).toBeLessThanOrEqual(downAt + timing.lease);
    // Our own ticks went on; they alone are no majority of three.
    expect(core.leaseUntil()).toBeLessThanOrEqual(downAt + timing.lease);
    expect(core.leaseValidAt(m.now)).toBe(false);
  });
});

describe("membership core", () => {
  it("a first node with an empty members file founds a quorate cluster of one and persists R", () => {
    const m = new Mini([A], { seeds: () => [] });
    m.start(A);
    m.run(500);
    expect(m.view(A)).toEqual([A]);
    expect(m.nodes.get(A)!.isQuorate()).toBe(true);
    expect(m.nodes.get(A)!.clusterConfig().voters).toEqual([A]);
    expect(m.effects.get(A)!.some((e) => e.type === "persist")).toBe(true);
    expect(m.nodes.get(A)!.leaseValidAt(m.now)).toBe(true);
  });

  it("a fresh standby never founds a cluster of its own; it waits for one to join", () => {
    const m = new Mini([A, B, C]);
    m.start(C);
    m.start(B);
    m.run(3000);
    expect(m.view(C)).toEqual([]);
    expect(m.view(B)).toEqual([]);
    // The primary's agent starts: it founds after the join window, and both join it.
    m.start(A);
    m.run(m.now + timing.joinWindow + 1000);
    for (const x of [A, B, C]) expect(m.view(x)).toHaveLength(3);
    expect(m.view(A)[0]).toBe(A);
  });

  it("a first agent whose members file lists hosts not running yet founds alone after the join window", () => {
    const m = new Mini([A, B, C]);
    m.start(A);
    m.run(timing.joinWindow - 1);
    expect(m.view(A)).toEqual([]);
    m.run(timing.joinWindow + 2 * timing.discoveryInterval);
    expect(m.view(A)).toEqual([A]);
    const core = m.nodes.get(A)!;
    // R starts as the founder alone: the listed addresses were only where to look.
    expect(core.clusterConfig().voters).toEqual([A]);
    expect(core.isQuorate()).toBe(true);
    expect(core.clusterId()).toBe(`${A}/inc-${A}`);
    // The others join later, one voter at a time, and learn the cluster id.
    m.start(B);
    m.run(m.now + 1000);
    m.start(C);
    m.run(m.now + 1000);
    for (const x of [A, B, C]) {
      expect(m.view(x)).toEqual([A, B, C]);
      expect(m.nodes.get(x)!.clusterConfig().voters).toEqual([A, B, C]);
      expect(m.nodes.get(x)!.clusterId()).toBe(`${A}/inc-${A}`);
      // R grew after the view that admitted C: the same members were installed again, so the
      // failover layer (which counts voters from views) knows the R in force.
      const last = m.events
        .get(x)!
        .filter((e) => e.type === "viewInstalled")
        .at(-1);
      expect(last?.type === "viewInstalled" && last.view.voters).toEqual([A, B, C]);
    }
    const versions = m.effects
      .get(A)!
      .flatMap((e) =>
        e.type === "emit" && e.event.type === "configCommitted" ? [e.event.config.voters.length] : [],
      );
    for (let i = 1; i < versions.length; i++)
      expect(Math.abs(versions[i]! - versions[i - 1]!)).toBeLessThanOrEqual(1);
  });

  it("a restarted cluster keeps its id and needs a majority of its saved voters", () => {
    const m = new Mini([A, B, C]);
    for (const a of [A, B, C]) m.start(a);
    m.run(2000);
    const id = m.nodes.get(A)!.clusterId();
    const saved = new Map(
      [A, B, C].map((a) => {
        const p = m.effects
          .get(a)!
          .filter((e) => e.type === "persist")
          .at(-1);
        if (p?.type !== "persist") throw new Error(`${a} saved nothing`);
        return [a, p.state] as const;
      }),
    );
    expect(saved.get(B)!.clusterId).toBe(id);
    // Every agent stops; C restarts alone: no majority of R, no cluster, even as a "primary".
    const again = (a: string) =>
      new MembershipCore({
        self: a,
        incarnation: `again-${a}`,
        timing,
        seeds: [A, B, C].filter((x) => x !== a),
        persisted: saved.get(a)!,
      });
    const m2 = new Mini([A, B, C], { founder: C });
    for (const a of [A, B, C]) m2.nodes.set(a, again(a));
    m2.start(C);
    m2.run(5 * timing.joinWindow);
    expect(m2.view(C)).toEqual([]);
    m2.start(B);
    m2.run(m2.now + 1000);
    expect([...m2.view(B)].sort()).toEqual([B, C]);
    for (const a of [B, C]) expect(m2.nodes.get(a)!.clusterId()).toBe(id);
  });

  it("three nodes started at once form one view; the second and third join in order", () => {
    const m = new Mini([A, B, C]);
    for (const a of [C, B, A]) m.start(a);
    m.run(1000);
    for (const a of [A, B, C]) expect([...m.view(a)].sort()).toEqual([A, B, C]);
    expect(m.view(A)[0]).toBe(A);
    expect([...m.nodes.get(B)!.clusterConfig().voters].sort()).toEqual([A, B, C]);
  });

  it("refuses a joiner whose host is not allowed, and the joiner reports it", () => {
    const X = "10.1.0.9:7800";
    const m = new Mini([A, X], { allowed: ["10.1.0.1"], seeds: (a) => (a === X ? [A] : []) });
    m.start(A);
    m.run(200);
    m.start(X);
    m.run(1500);
    expect(m.view(A)).toEqual([A]);
    expect(m.view(X)).toEqual([]);
    expect(m.events.get(X)!.some((e) => e.type === "admissionRefused")).toBe(true);
    expect(m.events.get(A)!.some((e) => e.type === "admissionRefused" && e.address === X)).toBe(true);
  });

  it("removes a silent member after suspicion and verification, and reports when takeover is allowed", () => {
    const m = new Mini([A, B, C]);
    for (const a of [A, B, C]) m.start(a);
    m.run(1000);
    m.down.add(C);
    const downAt = m.now;
    m.run(downAt + detectionBound(timing, 2) + timing.ackTimeout);
    expect(m.view(A)).toEqual([A, B]);
    const ev = m.events.get(A)!;
    expect(ev.some((e) => e.type === "memberSuspected" && e.member === C)).toBe(true);
    const committed = ev.find((e) => e.type === "viewCommitted" && e.removed.length > 0);
    expect(committed?.type === "viewCommitted" && committed.removed[0]!.member).toBe(C);
    if (committed?.type === "viewCommitted") {
      // Counted from when A and B last heard C (a heartbeat interval before it went down at
      // most, plus a link delay), not from the removal a detection time later.
      const at = committed.removed[0]!.takeoverAllowedAt;
      expect(at).toBeLessThanOrEqual(
        downAt + timing.heartbeatInterval + 2 + timing.lease + timing.driftMargin,
      );
      expect(at).toBeGreaterThanOrEqual(downAt + timing.lease + timing.driftMargin);
      expect(committed.committedAt).toBeGreaterThan(downAt + timing.suspectAfter);
    }
    // C stays a voter (DOWN): R only shrinks on a graceful leave or remove-node.
    expect(m.nodes.get(A)!.clusterConfig().voters).toContain(C);
  });

  it("a paused member does not suspect everyone when its timers fire late", () => {
    const m = new Mini([A, B, C]);
    for (const a of [A, B, C]) m.start(a);
    m.run(1000);
    const core = m.nodes.get(B)!;
    // Deliver B's heartbeat timer far too late, as after a SIGSTOP, with nothing heard meanwhile.
    const late = core.handle(m.now + 5 * timing.suspectAfter, { type: "timer", id: "hb" });
    expect(late.some((e) => e.type === "emit" && e.event.type === "memberSuspected")).toBe(false);
  });

  it("a graceful leave removes the member at once, shrinks R and asks for a members-file rewrite", () => {
    const m = new Mini([A, B, C]);
    for (const a of [A, B, C]) m.start(a);
    m.run(1000);
    m.push(m.now, C, { type: "leave" });
    m.run(m.now + 200);
    expect(m.view(A)).toEqual([A, B]);
    expect(m.effects.get(C)!.some((e) => e.type === "halt")).toBe(true);
    const rw = m.effects
      .get(B)!
      .filter((e) => e.type === "rewriteMembersFile")
      .at(-1);
    expect(rw?.type === "rewriteMembersFile" && rw.addresses).toEqual([A]);
    m.run(m.now + 500);
    expect(m.nodes.get(A)!.clusterConfig().voters).toEqual([A, B]);
  });

  it("allow/disallow go through the coordinator and are committed by a majority", () => {
    const m = new Mini([A, B, C]);
    for (const a of [A, B, C]) m.start(a);
    m.run(1000);
    m.push(m.now, C, { type: "allow", host: "10.1.0.7", requestId: "r1" });
    m.run(m.now + 200);
    expect(m.events.get(C)!.some((e) => e.type === "adminResult" && e.requestId === "r1" && e.ok)).toBe(true);
    for (const a of [A, B, C]) expect(m.nodes.get(a)!.clusterConfig().allowed).toContain("10.1.0.7");
    m.push(m.now, B, { type: "disallow", host: "10.1.0.7", requestId: "r2" });
    m.run(m.now + 200);
    for (const a of [A, B, C]) expect(m.nodes.get(a)!.clusterConfig().allowed).not.toContain("10.1.0.7");
  });

  it("request/response carries ids and times out", () => {
    const m = new Mini([A, B]);
    for (const a of [A, B]) m.start(a);
    m.run(1000);
    m.push(m.now, A, { type: "request", to: B, id: "q1", payload: { wal: "?" }, timeoutMs: 300 });
    m.run(m.now + 10);
    const req = m.events.get(B)!.find((e) => e.type === "request");
    expect(req).toMatchObject({ type: "request", from: A, id: "q1", payload: { wal: "?" } });
    m.push(m.now, B, { type: "respond", to: A, id: "q1", payload: { wal: "0/3000060" } });
    m.run(m.now + 10);
    expect(m.events.get(A)!.find((e) => e.type === "response")).toMatchObject({
      id: "q1",
      payload: { wal: "0/3000060" },
    });
    m.push(m.now, A, { type: "request", to: B, id: "q2", payload: 1, timeoutMs: 300 });
    m.down.add(B);
    m.run(m.now + 400);
    expect(m.events.get(A)!.some((e) => e.type === "requestTimeout" && e.id === "q2")).toBe(true);
  });

  it("never throws on arbitrary frames, and drops what is malformed", () => {
    const m = new Mini([A, B]);
    for (const a of [A, B]) m.start(a);
    m.run(1000);
    const core = m.nodes.get(A)!;
    fc.assert(
      fc.property(fc.jsonValue(), fc.constantFrom(B, "10.1.0.66:1", A), fc.string(), (msg, addr, inc) => {
        const effects = core.handle(m.now, { type: "frame", from: { addr, inc }, msg });
        expect(Array.isArray(effects)).toBe(true);
      }),
      { numRuns: 2000 },
    );
    const bad = core.handle(m.now, {
      type: "frame",
      from: { addr: B, inc: `inc-${B}` },
      msg: { t: "view", view: 3 },
    });
    expect(bad.some((e) => e.type === "drop")).toBe(true);
    const stale = core.handle(m.now, {
      type: "frame",
      from: { addr: B, inc: "old" },
      msg: {
        t: "hb",
        viewId: { epoch: 1, creator: A },
        sentAt: 0,
        cfg: null,
        sus: [],
        cid: core.clusterId(),
      },
    });
    expect(stale).toEqual([{ type: "drop", from: B, reason: "stale incarnation old" }]);
  });
});

const D = "10.1.0.4:7800";
const E = "10.1.0.5:7800";

describe("a member leaves a quorate view only when a majority of the voters suspects it", () => {
  const formed = (addrs: string[]): Mini => {
    const m = new Mini(addrs);
    for (const a of addrs) m.start(a);
    m.run(1000);
    for (const a of addrs) expect(m.view(a)).toEqual(addrs);
    return m;
  };
  const removals = (m: Mini, a: string) =>
    m.events
      .get(a)!
      .filter((e) => e.type === "memberRemoved" || (e.type === "viewCommitted" && e.removed.length > 0));

  it("a cut between the coordinator and one member (the others see both) removes neither, and both keep their lease", () => {
    const m = formed([A, B, C, D]);
    const from = m.now;
    m.cut(A, B);
    for (let t = from; t <= from + 10 * timing.suspectAfter; t += timing.heartbeatInterval) {
      m.run(t);
      for (const x of [A, B, C, D]) expect(m.view(x)).toEqual([A, B, C, D]);
    }
    // Both suspected each other; neither could act on it alone.
    expect(m.events.get(A)!.some((e) => e.type === "memberSuspected" && e.member === B)).toBe(true);
    expect(m.events.get(B)!.some((e) => e.type === "memberSuspected" && e.member === A)).toBe(true);
    for (const x of [A, B, C, D]) expect(removals(m, x)).toEqual([]);
    // A (the master, say) still reaches a majority through C and D: no reason to fence.
    expect(m.nodes.get(A)!.leaseValidAt(m.now)).toBe(true);
    expect(m.nodes.get(B)!.leaseValidAt(m.now)).toBe(true);
    expect(m.events.get(A)!.some((e) => e.type === "leaseLost")).toBe(false);
    // Healed: the suspicions clear and nothing changed.
    m.heal();
    m.run(m.now + 2 * timing.suspectAfter);
    for (const x of [A, B, C, D]) expect(m.view(x)).toEqual([A, B, C, D]);
  });

  it("a healthy cluster suspects nobody, even when a view acknowledgement arrives after the view was committed", () => {
    const m = formed([A, B, C, D, E]);
    m.run(m.now + 10 * timing.suspectAfter);
    for (const x of [A, B, C, D, E]) {
      expect({ x, suspected: m.events.get(x)!.filter((e) => e.type === "memberSuspected") }).toEqual({
        x,
        suspected: [],
      });
    }
  });

  it("a member the coordinator still hears is removed once a majority of the voters suspects it", () => {
    const m = formed([A, B, C, D, E]);
    for (const x of [B, C, D]) m.cut(E, x);
    const from = m.now;
    m.run(from + detectionBound(timing, 2) + 2 * timing.heartbeatInterval + timing.ackTimeout);
    for (const x of [A, B, C, D]) expect(m.view(x)).toEqual([A, B, C, D]);
    // E reaches only A: its own lease (A's acknowledgement and its own of five) is gone.
    expect(m.nodes.get(E)!.leaseValidAt(m.now)).toBe(false);
    const committed = m.events.get(A)!.find((e) => e.type === "viewCommitted" && e.removed.length > 0);
    expect(committed?.type === "viewCommitted" && committed.removed.map((r) => r.member)).toEqual([E]);
  });

  it("a member cut off from everyone drops them in a view without quorum, then merges back after the heal", () => {
    const m = formed([A, B, C]);
    for (const x of [B, C]) m.cut(A, x);
    m.run(m.now + detectionBound(timing, 2) + timing.ackTimeout);
    expect(m.view(A)).toEqual([A]);
    expect(m.nodes.get(A)!.isQuorate()).toBe(false);
    expect(m.view(B)).toEqual([B, C]);
    expect(m.nodes.get(B)!.isQuorate()).toBe(true);
    m.heal();
    m.run(m.now + 6 * timing.mergeInterval);
    const v = [...m.view(B)].sort();
    expect(v).toEqual([A, B, C]);
    for (const x of [A, C]) expect([...m.view(x)].sort()).toEqual(v);
  });

  // A member that cannot keep a majority with the members it still hears leaves alone: it never
  // takes a member that hears the majority into its view without quorum (a master there would
  // lose its lease for nothing). The member stays with the majority, which removes the silent one.
  const minorityViews = (m: Mini, a: string, from = 0) =>
    m.events
      .get(a)!
      .slice(from)
      .flatMap((e) => (e.type === "viewInstalled" && !e.view.quorate ? [e.view.members] : []));
  const lost = (m: Mini, a: string, from: number) =>
    m.events
      .get(a)!
      .slice(from)
      .filter((e) => e.type === "quorumLost" || e.type === "leaseLost");

  /** Four formed; `x` cut from `from`: it installs a view of itself alone, the rest keep theirs. */
  function goesAlone(x: string, from: readonly string[]): Mini {
    const m = formed([A, B, C, D]);
    const seen = new Map([A, B, C, D].map((y) => [y, m.events.get(y)!.length]));
    for (const y of from) m.cut(x, y);
    m.run(m.now + 2 * detectionBound(timing, 2) + timing.ackTimeout);
    expect(minorityViews(m, x)).toEqual([[x]]);
    const rest = [A, B, C, D].filter((y) => y !== x);
    for (const y of rest) {
      expect({ y, minority: minorityViews(m, y, seen.get(y)), lost: lost(m, y, seen.get(y)!) }).toEqual({
        y,
        minority: [],
        lost: [],
      });
      expect(m.view(y)).toEqual(rest);
    }
    expect(m.nodes.get(x)!.leaseValidAt(m.now)).toBe(false);
    return m;
  }

  it("a coordinator that hears only one member of four goes alone; that member stays with the majority", () => {
    const m = goesAlone(A, [B, D]);
    for (const y of [B, C, D]) expect(m.nodes.get(y)!.leaseValidAt(m.now)).toBe(true);
  });

  it("a member that takes over without a majority goes alone too, leaving the one it hears with the majority", () => {
    // B, next in line after the coordinator, hears only C.
    goesAlone(B, [A, D]);
  });

  it("a crashed coordinator is replaced once the others' suspicions add up to a majority", () => {
    const m = formed([A, B, C]);
    m.down.add(A);
    m.run(m.now + detectionBound(timing, 2) + 2 * timing.heartbeatInterval + timing.ackTimeout);
    expect(m.view(B)).toEqual([B, C]);
    expect(m.view(C)).toEqual([B, C]);
    expect(m.nodes.get(B)!.isQuorate()).toBe(true);
  });
});

describe("suspicion starts when the silence reaches jgroups.timeout x max.tries", () => {
  /** Records when each frame from `from` to `to` is delivered, and when `to` suspects `from`. */
  class Timed extends Mini {
    lastDelivery = Number.NEGATIVE_INFINITY;
    suspectedAt: number | null = null;
    constructor(
      addrs: string[],
      private readonly from: string,
      private readonly to: string,
    ) {
      super(addrs);
    }
    override apply(a: string, self: NodeId, e: Effect): void {
      if (a === this.from && e.type === "send" && e.to === this.to && !this.down.has(a))
        this.lastDelivery = Math.max(this.lastDelivery, this.now + 2);
      if (
        a === this.to &&
        e.type === "emit" &&
        e.event.type === "memberSuspected" &&
        e.event.member === this.from
      )
        this.suspectedAt ??= this.now;
      super.apply(a, self, e);
    }
  }

  it("not up to one heartbeat interval later, whatever the phase of the two members' ticks", () => {
    for (const offset of [0, 7, 19, 33, 48]) {
      const m = new Timed([A, B, C], C, B);
      for (const a of [A, B, C]) m.start(a);
      m.run(1000 + offset);
      expect(m.view(B)).toEqual([A, B, C]);
      m.down.add(C);
      m.run(m.now + timing.suspectAfter + 2 * timing.heartbeatInterval);
      // B last heard C when C's last frame arrived; its suspicion starts exactly suspectAfter later.
      expect({ offset, at: m.suspectedAt }).toEqual({ offset, at: m.lastDelivery + timing.suspectAfter });
    }
  });

  it("verified when the window ends: the are-you-alive went out verifyTimeout before it", () => {
    for (const offset of [0, 7, 19, 33, 48]) {
      const m = new Timed([A, B, C], C, B);
      let probedAt: number | null = null;
      let verifiedAt: number | null = null;
      const apply = m.apply.bind(m);
      m.apply = (a, self, e) => {
        if (a === B && e.type === "send" && e.to === C && e.msg.t === "aya") probedAt ??= m.now;
        if (a === B && e.type === "send" && e.msg.t === "suspects" && e.msg.sus.includes(C))
          verifiedAt ??= m.now;
        apply(a, self, e);
      };
      for (const a of [A, B, C]) m.start(a);
      m.run(1000 + offset);
      m.down.add(C);
      m.run(m.now + timing.suspectAfter + 2 * timing.heartbeatInterval);
      // The whole window of silence, and an are-you-alive unanswered for verifyTimeout, both end
      // at lastDelivery + suspectAfter: the verification adds no wait of its own.
      const windowEnd = m.lastDelivery + timing.suspectAfter;
      expect({ offset, probedAt, suspected: m.suspectedAt, verifiedAt }).toEqual({
        offset,
        probedAt: windowEnd - timing.verifyTimeout,
        suspected: windowEnd,
        verifiedAt: windowEnd,
      });
    }
  });

  it("a member heard after the early are-you-alive went out is not suspected", () => {
    const m = new Mini([A, B, C]);
    for (const a of [A, B, C]) m.start(a);
    m.run(1000);
    m.cut(B, C);
    const probes = () =>
      m.effects.get(B)!.filter((e) => e.type === "send" && e.to === C && e.msg.t === "aya");
    while (probes().length === 0) m.run(m.now + 1);
    // the probe was lost; C's next heartbeat arrives before the window ends
    m.heal();
    m.run(m.now + 3 * timing.suspectAfter);
    for (const x of [A, B, C])
      expect(m.events.get(x)!.filter((e) => e.type === "memberSuspected")).toEqual([]);
    expect(m.view(B)).toEqual([A, B, C]);
  });

  it("a suspicion timer that fires far too late (we were paused) suspects nobody", () => {
    const m = new Mini([A, B, C]);
    for (const a of [A, B, C]) m.start(a);
    m.run(1000);
    const armed = () =>
      m.effects.get(B)!.filter((e) => e.type === "setTimer" && e.id === "suspect") as { at: number }[];
    // B hears everyone: no suspicion timer is due before its next tick
    expect(armed()).toEqual([]);
    m.down.add(C);
    // run until B arms the timer for C's deadline (before the tick after it)
    while (armed().length === 0) m.run(m.now + 1);
    const at = armed()[0]!.at;
    const core = m.nodes.get(B)!;
    const late = core.handle(at + 2 * timing.pauseThreshold, { type: "timer", id: "suspect" });
    expect(late.filter((e) => e.type === "emit" && e.event.type === "memberSuspected")).toEqual([]);
  });
});

describe("takeover of a removed member's role counts from when it was last heard", () => {
  it("is never earlier than the end of the removed member's own lease plus the drift margin", () => {
    const m = new Mini([A, B, C]);
    for (const a of [A, B, C]) m.start(a);
    m.run(1000);
    // C is cut off but keeps running: its lease ends on its own, by time.
    const cutAt = m.now;
    for (const x of [A, B]) m.cut(C, x);
    let cLease = m.nodes.get(C)!.leaseUntil();
    const end = cutAt + detectionBound(timing, 2) + timing.ackTimeout + timing.lease;
    for (let t = cutAt; t <= end; t += 7) {
      m.run(t);
      cLease = Math.max(cLease, m.nodes.get(C)!.leaseUntil());
    }
    expect(m.view(A)).toEqual([A, B]);
    const committed = m.events.get(A)!.find((e) => e.type === "viewCommitted" && e.removed.length > 0);
    if (committed?.type !== "viewCommitted") throw new Error("no removal of C was committed");
    const at = committed.removed[0]!.takeoverAllowedAt;
    expect(cLease + timing.driftMargin).toBeLessThanOrEqual(at);
    // ...and no later than one heartbeat interval and a link delay after the cut, plus L and the margin.
    expect(at).toBeLessThanOrEqual(cutAt + timing.heartbeatInterval + 2 + timing.lease + timing.driftMargin);
    // Well before "removal plus L": the detection time is no longer waited twice.
    expect(at).toBeLessThan(committed.committedAt + timing.lease + timing.driftMargin);
  });
});

describe("a member is reported quiet once per silence, before it is suspected", () => {
  // 100 ms x 3: suspicion at 300 ms of silence; a 200 ms database check must start at 100 ms.
  const quiet = quietAfter(timing, 200)!;
  const of = (m: Mini, a: string, type: "memberQuiet" | "memberSuspected", member: string) =>
    m.events.get(a)!.filter((e) => e.type === type && e.member === member);

  it("derives the silence from the suspicion window and remote.timeout, never below two heartbeats", () => {
    const defaults = deriveTiming();
    expect(quietAfter(defaults, 10_000)).toBe(30_000);
    expect(quietAfter(deriveTiming(500, 2), 1000)).toBe(500);
    expect(quiet).toBe(100);
    // a check that takes no time needs no early start
    expect(quietAfter(defaults, 0)).toBeNull();
    expect(() => quietAfter(defaults, Number.NaN)).toThrow(RangeError);
    expect(() => new MembershipCore({ self: A, incarnation: "i", timing, quietAfter: -1 })).toThrow(
      /quietAfter must be a positive number of ms, got -1/,
    );
  });

  it("at exactly quietAfter of silence, once, then suspected at suspectAfter", () => {
    for (const offset of [0, 7, 19, 33, 48]) {
      const m = new Mini([A, B, C], { quietAfter: quiet });
      let lastFromC = Number.NEGATIVE_INFINITY;
      const at = new Map<string, number>();
      const apply = m.apply.bind(m);
      m.apply = (a, self, e) => {
        if (a === C && e.type === "send" && e.to === B && !m.down.has(C)) lastFromC = m.now + 2;
        if (a === B && e.type === "emit" && "member" in e.event && e.event.member === C)
          if (!at.has(e.event.type)) at.set(e.event.type, m.now);
        apply(a, self, e);
      };
      for (const a of [A, B, C]) m.start(a);
      m.run(1000 + offset);
      expect(of(m, B, "memberQuiet", C)).toEqual([]);
      m.down.add(C);
      m.run(m.now + timing.suspectAfter + 2 * timing.heartbeatInterval);
      expect({ offset, quiet: at.get("memberQuiet"), suspected: at.get("memberSuspected") }).toEqual({
        offset,
        quiet: lastFromC + quiet,
        suspected: lastFromC + timing.suspectAfter,
      });
      expect(of(m, B, "memberQuiet", C)).toHaveLength(1);
    }
  });

  it("a member heard again is quiet again only after a new silence, and nobody is suspected", () => {
    const m = new Mini([A, B, C], { quietAfter: quiet });
    for (const a of [A, B, C]) m.start(a);
    m.run(1000);
    for (const round of [1, 2]) {
      m.cut(B, C);
      m.run(m.now + quiet + timing.heartbeatInterval);
      m.heal();
      m.run(m.now + 3 * timing.heartbeatInterval);
      expect({ round, quiet: of(m, B, "memberQuiet", C).length }).toEqual({ round, quiet: round });
    }
    expect(m.view(B)).toEqual([A, B, C]);
    for (const x of [A, B, C])
      expect(m.events.get(x)!.filter((e) => e.type === "memberSuspected")).toEqual([]);
  });

  it("a healthy cluster reports nobody quiet; without quietAfter nobody is ever quiet", () => {
    const healthy = new Mini([A, B, C], { quietAfter: quiet });
    for (const a of [A, B, C]) healthy.start(a);
    healthy.run(1000 + 10 * timing.suspectAfter);
    for (const x of [A, B, C])
      expect(healthy.events.get(x)!.filter((e) => e.type === "memberQuiet")).toEqual([]);
    const off = new Mini([A, B, C]);
    for (const a of [A, B, C]) off.start(a);
    off.run(1000);
    off.down.add(C);
    off.run(off.now + 2 * timing.suspectAfter);
    expect(of(off, B, "memberSuspected", C)).toHaveLength(1);
    expect(off.events.get(B)!.filter((e) => e.type === "memberQuiet")).toEqual([]);
  });
});
