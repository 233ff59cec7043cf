import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { MembershipCore, majorityOfVoters } from "./protocol.ts";
import { deriveTiming, detectionBound, leaseDuration, takeoverAllowedAt } from "./timing.ts";
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
  constructor(addrs: string[], opts: { allowed?: string[]; seeds?: (a: string) => string[] } = {}) {
    const hosts = opts.allowed ?? addrs.map((a) => a.split(":")[0]!);
    for (const a of addrs) {
      const core = new MembershipCore({
        self: a,
        incarnation: `inc-${a}`,
        timing,
        seeds: opts.seeds ? opts.seeds(a) : addrs.filter((x) => x !== a),
        initialAllowed: hosts,
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
    this.push(this.now, a, { type: "start" });
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
    if (e.type === "send" && this.nodes.has(e.to))
      this.push(this.now + 2, e.to, { type: "frame", from: self, msg: e.msg });
    if (e.type === "setTimer") {
      const seq = this.seq;
      this.push(e.at, a, { type: "timer", id: e.id });
      this.timers.set(`${a}/${e.id}`, seq);
    }
    if (e.type === "cancelTimer") this.timers.delete(`${a}/${e.id}`);
    if (e.type === "emit") this.events.get(a)!.push(e.event);
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

  it("a fresh node that cannot reach a majority of its members file never founds a cluster", () => {
    const m = new Mini([A, B, C]);
    m.start(C);
    m.run(3000);
    expect(m.view(C)).toEqual([]);
  });

  it("three nodes started at once form one view; the second and third join in order", () => {
    const m = new Mini([A, B, C]);
    for (const a of [C, B, A]) m.start(a);
    m.run(1000);
    for (const a of [A, B, C]) expect([...m.view(a)].sort()).toEqual([A, B, C]);
    expect(m.view(A)[0]).toBe(A);
    expect(m.nodes.get(B)!.clusterConfig().voters).toEqual([A, B, C]);
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
      expect(committed.removed[0]!.takeoverAllowedAt).toBe(
        committed.committedAt + timing.lease + timing.driftMargin,
      );
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
      msg: { t: "hb", viewId: { epoch: 1, creator: A }, sentAt: 0, cfg: null },
    });
    expect(stale).toEqual([{ type: "drop", from: B, reason: "stale incarnation old" }]);
  });
});
