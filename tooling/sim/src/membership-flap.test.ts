import { deriveTiming, hostOf } from "@efm/membership";
import { describe, expect, it } from "vitest";
import { MembershipSim } from "./membership-sim.ts";

/**
 * The chaos suite's `flaps` failure, on the membership core alone (virtual time, 100 ms x 3).
 * The coordinator (a) is cut off from everyone for just under the suspicion window (270 of
 * 300 ms). Both sides suspect each other as the cut heals and verify; a hears c again in time,
 * but b's and w's packets to a arrive after a's verify timeout (on real hosts, probably TCP's
 * retransmission back-off on a connection that lost segments during the cut: a b->a message
 * took 1.4 s after a heal in one run). a removes b and w and sends c the view {a, c}, not
 * quorate; c installs it and leaves the majority it still hears, and b and w end in a minority
 * view of their own, so for a while no view is quorate. On real hosts (test-e2e flaps, a 3 s
 * cut of the fenced old master, still the membership coordinator, after c was promoted) the
 * new master c then fenced itself (quorum.lost.master: a safety rule, right for the view it
 * was given) and the cluster ended without a primary.
 *
 * Invariant wanted: a member that hears a majority of the voters is never moved into a view
 * that is not quorate by a coordinator that has just been cut off from that majority.
 */
describe("membership: a cut-off coordinator's minority view", () => {
  it.fails("does not pull a member that hears the majority out of it [known bug: flaps, see the file's comment]", () => {
    const addrs = ["10.0.0.1:7800", "10.0.0.2:7800", "10.0.0.3:7800", "10.0.0.4:7800"];
    const [a, b, c, w] = addrs as [string, string, string, string];
    const sim = new MembershipSim({ seed: 1, timing: deriveTiming(100, 3), allowedAddrs: addrs });
    const t = sim.timing;
    for (const x of addrs)
      sim.add({
        addr: x,
        seeds: addrs.filter((y) => y !== x),
        initialAllowed: addrs.map(hostOf),
        mayFoundAlone: x === a,
      });
    for (const x of addrs) sim.clock.at(0, () => sim.start(x));
    const formed = sim.runUntilTrue(
      5_000,
      () =>
        sim.converged(addrs) &&
        addrs.every((x) => sim.nodes.get(x)!.core.clusterConfig().voters.length === addrs.length),
    );
    expect(formed).not.toBeNull();
    // Past the view reinstalled when R reached four voters (its acknowledgements are awaited).
    sim.runUntil(sim.clock.now() + 1_000);
    expect(sim.nodes.get(c)!.core.rawView()!.members[0]!.addr).toBe(a);
    const views: { members: string[]; quorate: boolean }[] = [];
    const seen = sim.nodes.get(c)!.events.length;

    // Cut a off for the suspicion window; at the heal, b's and w's packets to a run late.
    const t0 = sim.clock.now();
    for (const x of [b, c, w]) sim.net.cut(a, x);
    // Healed just before the window ends: everyone's suspicion is under verification then.
    sim.runUntil(t0 + t.suspectAfter - 30);
    sim.net.heal();
    const late = { minDelay: t.verifyTimeout + 50, maxDelay: t.verifyTimeout + 60, loss: 0 };
    for (const x of [b, w]) sim.net.setLink(x, a, late);
    sim.runUntil(sim.clock.now() + 2 * t.verifyTimeout);
    for (const x of [b, w]) sim.net.setLink(x, a, { minDelay: 1, maxDelay: 5, loss: 0 });
    sim.runUntil(sim.clock.now() + sim.healBound());

    for (const e of sim.nodes.get(c)!.events.slice(seen))
      if (e.type === "viewInstalled") views.push({ members: [...e.view.members], quorate: e.view.quorate });
    // c heard b and w the whole time: none of its views may leave them.
    expect(views.filter((v) => !v.quorate)).toEqual([]);
  });
});
