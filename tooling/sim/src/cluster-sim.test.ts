import { describe, expect, it } from "vitest";
import {
  ClusterSim,
  EXPECTED_TO_FAIL,
  runAgentlessPromoteSim,
  runCascadeSim,
  runClusterSim,
  runLeaseWaitSim,
  runOneWayCutSim,
  runRebootedOldPrimarySim,
} from "./cluster-sim.ts";
import { main } from "./cli.ts";

const SEEDS = Number(process.env.CLUSTER_SEEDS ?? 2000);
const FIRST = Number(process.env.CLUSTER_SEED ?? 1);

/** Failures of a seed range, each with the command that replays it. */
function failures(first: number, count: number, opts: Parameters<typeof runClusterSim>[1] = {}): string[] {
  const out: string[] = [];
  for (let seed = first; seed < first + count; seed++) {
    const r = runClusterSim(seed, opts);
    if (r.violations.length > 0) out.push(`${r.violations[0]} -- replay: pnpm sim --seed ${seed}`);
  }
  return out;
}

describe("combined simulation (membership core + failover-core)", () => {
  it(`keeps every invariant and settles after the faults over ${SEEDS} seeds (3-7 nodes)`, () => {
    expect(failures(FIRST, SEEDS).slice(0, 10)).toEqual([]);
  }, 300_000);

  it("stays safe through the cascading split {A,B,C}|{D,E} then {A,B}|{C,D,E}", () => {
    const bad: string[] = [];
    let promotions = 0;
    for (let seed = 1; seed <= 100; seed++) {
      const r = runCascadeSim(seed);
      promotions += r.promotions;
      if (r.violations.length > 0) bad.push(`${r.violations[0]} (cascade seed ${seed})`);
    }
    expect(bad).toEqual([]);
    // the majority C,D,E really takes over from the isolated master
    expect(promotions).toBeGreaterThan(50);
  }, 120_000);

  it("a one-way cut from the master to the coordinator causes no failover (the others still reach its database)", () => {
    const bad: string[] = [];
    let promotions = 0;
    for (let seed = 1; seed <= 60; seed++) {
      const r = runOneWayCutSim(seed);
      promotions += r.promotions;
      if (r.violations.length > 0) bad.push(`${r.violations[0]} (one-way seed ${seed})`);
    }
    expect(bad).toEqual([]);
    expect(promotions).toBe(0);
  }, 120_000);

  it("replays a seed exactly", () => {
    const a = runClusterSim(4242, { transcript: true });
    const b = runClusterSim(4242, { transcript: true });
    expect(b).toEqual(a);
    expect(a.steps).toBeGreaterThan(500);
    expect(a.transcript.length).toBeGreaterThan(20);
  });

  it("actually fails over: promotions happen across seeds", () => {
    let promotions = 0;
    for (let seed = 1; seed <= 50; seed++) promotions += runClusterSim(seed).promotions;
    expect(promotions).toBeGreaterThan(10);
  });

  it("fails over safely when the coordinator removes a master that the others still acknowledged", () => {
    const bad: string[] = [];
    let promotions = 0;
    for (let seed = 1; seed <= 40; seed++) {
      const r = runLeaseWaitSim(seed);
      promotions += r.promotions;
      if (r.violations.length > 0) bad.push(`${r.violations[0]} (lease-wait seed ${seed})`);
    }
    expect(bad).toEqual([]);
    // every run really fails over, after the wait
    expect(promotions).toBe(40);
  }, 120_000);

  it("catches a takeover that does not wait out the old master's lease, in every run built for it", () => {
    const splitBrain = (v: string) => v.includes("two writable masters") || v.includes("two VIP holders");
    const missed: number[] = [];
    for (let seed = 1; seed <= 40; seed++) {
      if (!runLeaseWaitSim(seed, { skipLeaseWait: true }).violations.some(splitBrain)) missed.push(seed);
    }
    expect(missed).toEqual([]);
  }, 120_000);

  it("the CLI reports a clean range with exit code 0 and rejects bad arguments with 2", () => {
    const write = process.stdout.write.bind(process.stdout);
    const errWrite = process.stderr.write.bind(process.stderr);
    const lines: string[] = [];
    process.stdout.write = ((chunk: string) => lines.push(String(chunk)) > 0) as typeof process.stdout.write;
    process.stderr.write = ((chunk: string) => lines.push(String(chunk)) > 0) as typeof process.stderr.write;
    try {
      expect(main(["--seeds", "3", "--seed", "10"])).toBe(0);
      expect(main(["--seeds", "zero"])).toBe(2);
      expect(main(["--nodes", "1"])).toBe(2);
      expect(main(["--bogus"])).toBe(2);
      expect(main(["--scenario", "nope"])).toBe(2);
      expect(main(["--scenario", "lease-wait", "--seed", "1", "--skip-lease-wait"])).toBe(1);
    } finally {
      process.stdout.write = write;
      process.stderr.write = errWrite;
    }
    expect(lines.join("")).toContain("3 seed(s), 0 failed");
    expect(lines.join("")).toContain(
      "seeds violating each invariant: masters 0, databases 0 (expected to fail)",
    );
    expect(lines.join("")).toContain("--seeds must be an integer");
    expect(lines.join("")).toContain(
      "reproduce with: pnpm sim --seed 1 --scenario lease-wait --skip-lease-wait",
    );
  });
});

describe("a cluster of one (guide 3.2.2's first node, an empty members file)", () => {
  it("runs as master on a finite lease that its own heartbeat renews", () => {
    const a = "10.0.1.1:7800";
    const sim = new ClusterSim(
      { seed: 7 },
      { addrs: [a], witnesses: new Set(), autoFailover: true, maxTries: 3 },
    );
    sim.startHost(a);
    // The virtual clock throws on an event at a time that is not finite, and the node reports a
    // lease without a finite end as a violation: a lone voter's lease must be neither.
    for (let t = 1000; t <= 10_000; t += 1000) {
      sim.runUntil(t);
      const n = sim.node(a);
      expect(n.fs.role).toBe("Master");
      expect(n.fs.leaseUntil).toBeGreaterThan(t);
      expect(n.fs.leaseUntil).toBeLessThanOrEqual(t + sim.timing.lease);
    }
    expect(sim.violations).toEqual([]);
  });
});

describe("the databases as ground truth", () => {
  it("the judge counts every database that accepts writes, whatever its agent believes", () => {
    const addrs = ["10.0.1.1:7800", "10.0.1.2:7800", "10.0.1.3:7800"];
    const sim = new ClusterSim({ seed: 1 }, { addrs, witnesses: new Set(), autoFailover: true, maxTries: 3 });
    for (const a of addrs) sim.startHost(a);
    expect(sim.runUntilTrue(3000, () => sim.converged() && sim.writableMasters().length === 1)).toBe(true);
    const [master, standby] = [sim.writableMasters()[0]!, addrs.find((a) => a !== sim.writableMasters()[0])!];
    // The master's agent is gone and a standby's server was promoted behind every agent's back.
    sim.crashAgent(master);
    sim.node(standby).db!.inRecovery = false;
    sim.check();
    expect(sim.writableMasters().length).toBeLessThanOrEqual(1);
    expect(sim.counts.masters).toBe(0);
    expect(sim.counts.databases).toBe(1);
    expect(sim.writableDatabases().sort()).toEqual([master, standby].sort());
    // A server in recovery, or a stopped host, accepts no writes.
    sim.node(standby).db!.inRecovery = true;
    sim.crashHost(master);
    expect(sim.writableDatabases()).toEqual([]);
  });

  it("agentless-promote: an operator's promotion is refused while the agentless master's database serves", () => {
    const bad: string[] = [];
    let promotions = 0;
    for (let seed = 1; seed <= 20; seed++) {
      const r = runAgentlessPromoteSim(seed);
      promotions += r.promotions;
      if (r.violations.length + r.expectedViolations.length > 0)
        bad.push(`${[...r.violations, ...r.expectedViolations][0]} (agentless-promote seed ${seed})`);
    }
    expect(bad).toEqual([]);
    expect(promotions).toBe(0);
  }, 120_000);

  it("the databases invariant is listed as expected to fail (tooling/sim/README.md), never dropped", () => {
    expect([...EXPECTED_TO_FAIL]).toEqual(["databases"]);
  });

  // Expected to fail (tooling/sim/README.md): remove `.fails` when the split-brain fixes land.
  it.fails("rebooted-old-primary: the old primary's host reboots after a failover and never serves writes beside the new one", () => {
    for (let seed = 1; seed <= 20; seed++) {
      const r = runRebootedOldPrimarySim(seed);
      expect(r.violations).toEqual([]);
      expect(r.expectedViolations).toEqual([]);
    }
  }, 120_000);

  // Expected to fail (tooling/sim/README.md): about 3 % of random seeds end with two writable databases.
  it.fails("random seeds: never two databases accept writes at the same time", () => {
    for (let seed = 1; seed <= 300; seed++) expect(runClusterSim(seed).expectedViolations).toEqual([]);
  }, 120_000);
});
