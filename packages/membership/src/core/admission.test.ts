import { describe, expect, it } from "vitest";
import { MembershipCore } from "./protocol.ts";
import { deriveTiming } from "./timing.ts";
import type { CoreInput, Effect, MembershipEvent } from "./types.ts";

const timing = deriveTiming(100, 3);

/** One core alone: fires its own timers in order; returns what it sent and emitted. */
class Solo {
  now = 0;
  timers = new Map<string, number>();
  sent: { to: string; msg: { t: string; reason?: string } }[] = [];
  events: MembershipEvent[] = [];
  constructor(readonly core: MembershipCore) {}
  handle(input: CoreInput): void {
    for (const e of this.core.handle(this.now, input)) this.apply(e);
  }
  apply(e: Effect): void {
    if (e.type === "setTimer") this.timers.set(e.id, e.at);
    if (e.type === "cancelTimer") this.timers.delete(e.id);
    if (e.type === "send") this.sent.push({ to: e.to, msg: e.msg as { t: string; reason?: string } });
    if (e.type === "emit") this.events.push(e.event);
  }
  runUntil(t: number): void {
    for (;;) {
      const next = [...this.timers.entries()].sort((a, b) => a[1] - b[1])[0];
      if (!next || next[1] > t) break;
      this.timers.delete(next[0]);
      this.now = Math.max(this.now, next[1]);
      this.handle({ type: "timer", id: next[0] });
    }
    this.now = t;
  }
}

describe("admission by exact ip:port", () => {
  it("refuses a second port on a host that already takes part; admits a new host", () => {
    const A = "10.0.0.1:7800";
    const s = new Solo(
      new MembershipCore({
        self: A,
        incarnation: "a",
        timing,
        seeds: [],
        initialAllowed: ["10.0.0.1", "10.0.0.2"],
      }),
    );
    s.handle({ type: "start", mayFoundAlone: true });
    s.runUntil(5_000);
    expect(s.core.currentView()?.members).toEqual([A]);

    // A key holder on the coordinator's own host, another port.
    s.handle({ type: "frame", from: { addr: "10.0.0.1:9999", inc: "x" }, msg: { t: "join", cid: null } });
    s.runUntil(s.now + 20);
    const refusal = s.sent.find((m) => m.to === "10.0.0.1:9999" && m.msg.t === "joinRefused");
    expect(refusal?.msg.reason).toBe(`host 10.0.0.1 already takes part in the cluster as ${A}`);
    expect(s.events.some((e) => e.type === "admissionRefused" && e.address === "10.0.0.1:9999")).toBe(true);

    // A new allowed host joins (within one batch) and becomes a voter.
    s.handle({ type: "frame", from: { addr: "10.0.0.2:7800", inc: "b" }, msg: { t: "join", cid: null } });
    s.runUntil(s.now + 20);
    expect(s.core.currentView()?.members).toEqual([A, "10.0.0.2:7800"]);
    expect(s.core.clusterConfig().voters).toEqual([A, "10.0.0.2:7800"]);

    // ...after which its host cannot add a second voter either.
    s.handle({ type: "frame", from: { addr: "10.0.0.2:7801", inc: "c" }, msg: { t: "join", cid: null } });
    s.runUntil(s.now + 20);
    expect(s.sent.find((m) => m.to === "10.0.0.2:7801" && m.msg.t === "joinRefused")?.msg.reason).toBe(
      "host 10.0.0.2 already takes part in the cluster as 10.0.0.2:7800",
    );
    expect(s.core.currentView()?.members).toEqual([A, "10.0.0.2:7800"]);
    expect(s.core.clusterConfig().voters).toEqual([A, "10.0.0.2:7800"]);
  });
});

describe("the cluster id", () => {
  const A = "10.0.0.1:7800";
  const B = "10.0.0.2:7800";
  const founded = (): Solo => {
    const s = new Solo(
      new MembershipCore({
        self: A,
        incarnation: "a",
        timing,
        seeds: [B],
        initialAllowed: ["10.0.0.1", "10.0.0.2"],
      }),
    );
    s.handle({ type: "start", mayFoundAlone: true });
    s.runUntil(5_000);
    return s;
  };

  it("is created when a cluster is founded, saved with the voters, and carried in every frame", () => {
    const s = founded();
    const id = s.core.clusterId();
    expect(id).toBe(`${A}/a`);
    // Looking for a cluster, it had no id yet; once founded, every frame names it.
    const cid = (f: (typeof s.sent)[number]) => (f.msg as unknown as { cid: unknown }).cid;
    const discovery = s.sent.filter((f) => f.msg.t === "discover");
    const rest = s.sent.filter((f) => f.msg.t !== "discover");
    expect(discovery.length).toBeGreaterThan(0);
    expect(rest.length).toBeGreaterThan(0);
    for (const f of discovery) expect(cid(f)).toBeNull();
    for (const f of rest) expect(cid(f)).toBe(id);
  });

  it("refuses a join from a member of another cluster, saying so on both sides", () => {
    const s = founded();
    s.handle({ type: "frame", from: { addr: B, inc: "b" }, msg: { t: "join", cid: `${B}/old` } });
    s.runUntil(s.now + 20);
    const why = `${B} belongs to another cluster (id ${B}/old; this cluster's id is ${A}/a): joins and merges across clusters are refused`;
    expect(s.sent.find((m) => m.to === B && m.msg.t === "joinRefused")?.msg.reason).toBe(why);
    expect(s.events).toContainEqual({ type: "admissionRefused", address: B, by: A, reason: why });
    expect(s.core.currentView()?.members).toEqual([A]);
  });

  it("never merges with the coordinator of another cluster", () => {
    const s = founded();
    const drops: string[] = [];
    const info = {
      t: "info",
      cid: `${B}/other`,
      viewId: { epoch: 9, creator: B },
      coord: B,
      members: [B],
      quorate: true,
      cfgVersion: 1,
      voterShare: 1,
      canFound: true,
    };
    for (const e of s.core.handle(s.now, { type: "frame", from: { addr: B, inc: "b" }, msg: info }))
      if (e.type === "drop") drops.push(e.reason);
    s.runUntil(s.now + 10 * timing.mergeInterval);
    expect(drops).toEqual([
      `info from ${B} belongs to another cluster (id ${B}/other; this cluster's id is ${A}/a): joins and merges across clusters are refused`,
    ]);
    expect(s.sent.some((m) => m.msg.t === "mergeReq")).toBe(false);
    expect(s.core.currentView()?.members).toEqual([A]);
  });
});
