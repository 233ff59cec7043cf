import { describe, expect, it } from "vitest";
import type { QuorumRule } from "@efm/membership";
import { MEMBERSHIP_SCENARIOS, runMembershipScenario } from "./membership-sim.ts";

const SEEDS = Number(process.env.MEMBERSHIP_SEEDS ?? 2000);
const FIRST = Number(process.env.MEMBERSHIP_SEED ?? 1);

describe("membership simulation", () => {
  // A bound for a hung run, not a speed check: on a loaded 2-core machine the seeds take
  // several times their idle minute, and a timeout must never be what fails CI.
  it(`keeps every invariant over ${SEEDS} seeds`, () => {
    const failures: string[] = [];
    const worst = new Map<string, number>();
    for (let seed = FIRST; seed < FIRST + SEEDS; seed++) {
      const r = runMembershipScenario(seed);
      if (r.violations.length > 0) {
        failures.push(`${r.violations[0]} -- replay: MEMBERSHIP_SEED=${seed} MEMBERSHIP_SEEDS=1`);
      }
      if (r.convergedAfter !== null)
        worst.set(r.scenario, Math.max(worst.get(r.scenario) ?? 0, r.convergedAfter));
    }
    console.log(
      `membership sim: worst convergence after the last fault (virtual ms): ${JSON.stringify(Object.fromEntries(worst))}`,
    );
    expect(failures.slice(0, 10)).toEqual([]);
  }, 600_000);

  it("replays a seed exactly", () => {
    const a = runMembershipScenario(4242);
    const b = runMembershipScenario(4242);
    expect(b).toEqual(a);
    expect(a.steps).toBeGreaterThan(100);
  });

  it.each(MEMBERSHIP_SCENARIOS)("scenario %s runs clean on a fixed seed", (scenario) => {
    const r = runMembershipScenario(7, { scenario });
    expect(r.violations).toEqual([]);
  });

  it("catches a quorum counted against the previous view (the cascading split)", () => {
    const previousView: QuorumRule = (members, voters, prev) =>
      prev
        ? 2 * members.length > prev.length
        : 2 * members.filter((m) => voters.includes(m)).length > voters.length;
    const caught = [];
    for (let seed = 1; seed <= 20; seed++) {
      const r = runMembershipScenario(seed, { scenario: "cascade", quorumRule: previousView });
      if (r.violations.some((v) => v.includes("both quorate"))) caught.push(seed);
    }
    expect(caught.length).toBeGreaterThan(0);
  });

  // With removal by majority suspicion a removed member's lease has run out by the time its
  // removal is committed; the old rule (a coordinator removes whom it alone suspects) is where
  // the lease wait is what keeps a takeover safe, so the checker is shown to bite there.
  it("catches a takeover that does not wait for the master lease to run out", () => {
    const caught = [];
    for (let seed = 1; seed <= 20; seed++) {
      const r = runMembershipScenario(seed, {
        scenario: "cascade",
        takeoverRule: (x) => x.committedAt,
        suspicionRule: "own",
      });
      if (r.violations.some((v) => v.includes("still holds its lease"))) caught.push(seed);
    }
    expect(caught.length).toBeGreaterThan(0);
  });
});
