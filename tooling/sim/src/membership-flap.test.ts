import { deriveTiming, hostOf, type MembershipEvent } from "@efm/membership";
import { describe, expect, it } from "vitest";
import { MembershipSim } from "./membership-sim.ts";

/**
 * The chaos suite's `flaps` failure, on the membership core alone (virtual time, 100 ms x 3).
 * The coordinator (a) is cut off from everyone for just under the suspicion window (270 of
 * 300 ms). Both sides suspect each other as the cut heals and verify; a hears c again in time,
 * but b's and w's packets to a arrive after a's verify timeout (on real hosts, probably TCP's
 * retransmission back-off on a connection that lost segments during the cut: a b->a message
 * took 1.4 s after a heal in one run). a used to remove b and w and send c the view {a, c}, not
 * quorate; c installed it and left the majority it still heard, and b and w ended in a minority
 * view of their own, so for a while no view was quorate. On real hosts (test-e2e flaps, a 3 s
 * cut of the fenced old master, still the membership coordinator, after c was promoted) the
 * new master c then fenced itself (quorum.lost.master: a safety rule, right for the view it
 * was given) and the cluster ended without a primary.
 *
 * Invariant: a member that hears a majority of the voters is never moved into a view that is
 * not quorate by a coordinator that has just been cut off from that majority. A coordinator
 * that cannot keep a majority goes on alone; the members it still hears stay in the quorate
 * view, hear its silence and re-form with the majority.
 */
const addrs = ["10.0.0.1:7800", "10.0.0.2:7800", "10.0.0.3:7800", "10.0.0.4:7800"];
const [a, b, c, w] = addrs as [string, string, string, string];

function formed(): MembershipSim {
  const sim = new MembershipSim({ seed: 1, timing: deriveTiming(100, 3), allowedAddrs: addrs });
  for (const x of addrs)
    sim.add({
      addr: x,
      seeds: addrs.filter((y) => y !== x),
      initialAllowed: addrs.map(hostOf),
      mayFoundAlone: x === a,
    });
  for (const x of addrs) sim.clock.at(0, () => sim.start(x));
  const at = sim.runUntilTrue(
    5_000,
    () =>
      sim.converged(addrs) &&
      addrs.every((x) => sim.nodes.get(x)!.core.clusterConfig().voters.length === addrs.length),
  );
  expect(at).not.toBeNull();
  // Past the view reinstalled when R reached four voters (its acknowledgements are awaited).
  sim.runUntil(sim.clock.now() + 1_000);
  expect(sim.nodes.get(c)!.core.rawView()!.members[0]!.addr).toBe(a);
  expect(sim.nodes.get(c)!.core.leaseValidAt(sim.clock.now())).toBe(true);
  return sim;
}

const viewsOf = (events: readonly MembershipEvent[]) =>
  events.flatMap((e) =>
    e.type === "viewInstalled" ? [{ members: [...e.view.members].sort(), quorate: e.view.quorate }] : [],
  );

describe("membership: a cut-off coordinator's minority view", () => {
  it("does not pull a member that hears the majority out of it, and everyone is back in one view", () => {
    const sim = formed();
    const t = sim.timing;
    const seen = new Map(addrs.map((x) => [x, sim.nodes.get(x)!.events.length]));

    // Cut a off for the suspicion window; at the heal, b's and w's packets to a run late.
    const t0 = sim.clock.now();
    for (const x of [b, c, w]) sim.net.cut(a, x);
    // a hears c again in time: c's link heals two heartbeats before the window ends.
    sim.runUntil(t0 + t.suspectAfter - 2 * t.heartbeatInterval - 1);
    sim.net.heal();
    for (const x of [b, w]) sim.net.cut(a, x);
    // b's and w's heal just before the window ends: their suspicion of a is under verification.
    sim.runUntil(t0 + t.suspectAfter - 30);
    sim.net.heal();
    const late = { minDelay: t.verifyTimeout + 50, maxDelay: t.verifyTimeout + 60, loss: 0 };
    for (const x of [b, w]) sim.net.setLink(x, a, late);
    sim.runUntil(sim.clock.now() + 2 * t.verifyTimeout);
    for (const x of [b, w]) sim.net.setLink(x, a, { minDelay: 1, maxDelay: 5, loss: 0 });
    // a's view of itself alone comes up to a verify timeout after the heal, and the majority's
    // view without a a detection window later: only then is everyone expected back in one view.
    sim.runUntil(sim.clock.now() + sim.detectionBound());
    const back = sim.runUntilTrue(sim.clock.now() + sim.healBound(), () => sim.converged(addrs));

    const since = (x: string) => sim.nodes.get(x)!.events.slice(seen.get(x));
    // a could confirm only c: it went on alone (deciding nothing) instead of taking c along.
    expect(viewsOf(since(a)).filter((v) => !v.quorate)).toEqual([{ members: [a], quorate: false }]);
    expect(
      since(a)
        .filter((e) => e.type === "memberSuspected")
        .map((e) => e.type === "memberSuspected" && e.member),
    ).toEqual([b, w]);
    // c, b and w heard each other the whole time: none of their views may leave them, and the
    // master's lease (c's here) never lapsed.
    for (const x of [b, c, w]) {
      expect({ x, minority: viewsOf(since(x)).filter((v) => !v.quorate) }).toEqual({ x, minority: [] });
      expect({ x, lost: since(x).filter((e) => e.type === "leaseLost" || e.type === "quorumLost") }).toEqual({
        x,
        lost: [],
      });
    }
    // Liveness: the majority re-formed without a, then merged it back.
    expect(viewsOf(since(c)).map((v) => v.members)).toContainEqual([b, c, w]);
    expect(back).not.toBeNull();
    expect(sim.violations).toEqual([]);
  });

  it("a coordinator cut off from a majority for good is replaced by the majority, which keeps its lease", () => {
    // The same without a heal: a hears only c, which hears everyone. Neither of the simple fixes
    // may leave the cluster stuck on a (a coordinator without a majority can remove nobody, and
    // b and w alone are no majority to remove it): c must end up suspecting a too.
    const sim = formed();
    const seen = new Map(addrs.map((x) => [x, sim.nodes.get(x)!.events.length]));
    const t0 = sim.clock.now();
    for (const x of [b, w]) sim.net.cut(a, x);
    // a verifies b and w and goes alone; the others hear its silence, verify it and remove it.
    const bound = 2 * sim.detectionBound() + sim.timing.ackTimeout;
    const rest = sim.runUntilTrue(
      t0 + bound,
      () => sim.converged([b, c, w]) && [b, c, w].every((x) => sim.nodes.get(x)!.core.isQuorate()),
    );
    expect(rest).not.toBeNull();
    sim.runUntil(t0 + bound);
    const since = (x: string) => sim.nodes.get(x)!.events.slice(seen.get(x));
    for (const x of [b, c, w]) {
      expect({ x, minority: viewsOf(since(x)).filter((v) => !v.quorate) }).toEqual({ x, minority: [] });
      expect(sim.nodes.get(x)!.core.leaseValidAt(sim.clock.now())).toBe(true);
    }
    // The minority side holds no valid lease.
    expect(sim.nodes.get(a)!.core.leaseValidAt(sim.clock.now())).toBe(false);
    expect(sim.violations).toEqual([]);
  });
});
