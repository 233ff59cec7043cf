import { parseArgs } from "node:util";
import {
  EXPECTED_TO_FAIL,
  INVARIANTS,
  type InvariantName,
  runAgentlessPromoteSim,
  runCascadeSim,
  runClusterSim,
  runLeaseWaitSim,
  runOneWayCutSim,
  runRebootedOldPrimarySim,
} from "./cluster-sim.ts";

/** Seed families the CLI can run: the random fault mix and the targeted scenarios. */
const SCENARIOS = {
  random: runClusterSim,
  "lease-wait": runLeaseWaitSim,
  cascade: runCascadeSim,
  "one-way": runOneWayCutSim,
  "agentless-promote": runAgentlessPromoteSim,
  "rebooted-old-primary": runRebootedOldPrimarySim,
} as const;

/**
 * `pnpm sim --seeds N [--seed S] [--nodes K] [--scenario NAME] [--transcript] [--skip-lease-wait]`:
 * run the combined simulator over seeds S..S+N-1; a failing seed is printed with its transcript and
 * replays exactly. NAME: random (default), lease-wait, cascade, one-way, agentless-promote,
 * rebooted-old-primary (these pick their own size). The summary counts the seeds that violate each
 * invariant; one in EXPECTED_TO_FAIL is printed with its seeds but does not fail the run.
 */
export function main(argv: readonly string[]): number {
  let values: {
    seeds?: string;
    seed?: string;
    nodes?: string;
    scenario?: string;
    transcript?: boolean;
    "skip-lease-wait"?: boolean;
  };
  try {
    ({ values } = parseArgs({
      args: [...argv],
      options: {
        seeds: { type: "string" },
        seed: { type: "string" },
        nodes: { type: "string" },
        scenario: { type: "string" },
        transcript: { type: "boolean" },
        "skip-lease-wait": { type: "boolean" },
      },
    }));
  } catch (err) {
    process.stderr.write(`sim: ${(err as Error).message}\n`);
    return 2;
  }
  const int = (name: string, v: string | undefined, dflt: number, lo: number, hi: number): number | null => {
    if (v === undefined) return dflt;
    const n = Number(v);
    if (!Number.isInteger(n) || n < lo || n > hi) {
      process.stderr.write(`sim: --${name} must be an integer from ${lo} to ${hi}, got "${v}"\n`);
      return null;
    }
    return n;
  };
  const seeds = int("seeds", values.seeds, values.seed === undefined ? 100 : 1, 1, 10_000_000);
  const first = int("seed", values.seed, 1, 0, 2 ** 31 - 1);
  const nodes = values.nodes === undefined ? undefined : int("nodes", values.nodes, 5, 2, 15);
  if (seeds === null || first === null || nodes === null) return 2;
  const name = values.scenario ?? "random";
  if (!Object.hasOwn(SCENARIOS, name)) {
    process.stderr.write(
      `sim: --scenario must be one of ${Object.keys(SCENARIOS).join(", ")}, got "${name}"\n`,
    );
    return 2;
  }
  const run = SCENARIOS[name as keyof typeof SCENARIOS];
  const started = Date.now();
  let failed = 0;
  let steps = 0;
  let promotions = 0;
  const violating = Object.fromEntries(Object.keys(INVARIANTS).map((k) => [k, 0])) as Record<
    InvariantName,
    number
  >;
  const expectedSeeds: number[] = [];
  for (let seed = first; seed < first + seeds; seed++) {
    const opts = {
      ...(nodes !== undefined ? { nodes } : {}),
      ...(values["skip-lease-wait"] ? { skipLeaseWait: true } : {}),
    };
    const r = run(seed, { ...opts, transcript: values.transcript === true });
    steps += r.steps;
    promotions += r.promotions;
    for (const k of Object.keys(violating) as InvariantName[]) if (r.counts[k] > 0) violating[k]++;
    if (r.expectedViolations.length > 0) {
      expectedSeeds.push(seed);
      if (!values.transcript)
        for (const v of r.expectedViolations) process.stdout.write(`expected to fail: ${v}\n`);
    }
    if (r.violations.length > 0 || values.transcript) {
      if (r.violations.length > 0) failed++;
      const replay = r.transcript.length > 0 ? r : run(seed, { ...opts, transcript: true });
      process.stdout.write(
        `${r.violations.length > 0 ? "FAIL" : "ok"} seed=${seed} nodes=${r.nodes} auto.failover=${r.autoFailover}\n`,
      );
      for (const v of r.violations) process.stdout.write(`  ${v}\n`);
      for (const line of replay.transcript) process.stdout.write(`    ${line}\n`);
      if (r.violations.length > 0) {
        process.stdout.write(
          `  reproduce with: pnpm sim --seed ${seed}${nodes !== undefined ? ` --nodes ${nodes}` : ""}${
            name !== "random" ? ` --scenario ${name}` : ""
          }${values["skip-lease-wait"] ? " --skip-lease-wait" : ""}\n`,
        );
      }
    }
  }
  const secs = (Date.now() - started) / 1000;
  const counts = (Object.keys(violating) as InvariantName[])
    .map((k) => `${k} ${violating[k]}${EXPECTED_TO_FAIL.has(k) ? " (expected to fail)" : ""}`)
    .join(", ");
  process.stdout.write(`seeds violating each invariant: ${counts}\n`);
  if (expectedSeeds.length > 0)
    process.stdout.write(
      `expected failures (tooling/sim/README.md) in seeds ${expectedSeeds.slice(0, 20).join(" ")}${expectedSeeds.length > 20 ? " ..." : ""}\n`,
    );
  process.stdout.write(
    `${seeds} seed(s), ${failed} failed, ${promotions} promotions, ${steps} steps in ${secs.toFixed(1)} s\n`,
  );
  return failed > 0 ? 1 : 0;
}

if (process.argv[1] && import.meta.url === new URL(`file://${process.argv[1]}`).href) {
  process.exitCode = main(process.argv.slice(2));
}
