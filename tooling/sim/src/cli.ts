import { availableParallelism } from "node:os";
import { parseArgs } from "node:util";
import { Worker } from "node:worker_threads";
import { BASELINE_SEEDS, isKnown } from "./baseline.ts";
import {
  type ClusterSimResult,
  EXPECTED_TO_FAIL,
  FAULT_KINDS,
  INVARIANTS,
  type InvariantName,
} from "./cluster-sim.ts";
import { SCENARIOS, type ScenarioName } from "./scenarios.ts";
import type { WorkerReply, WorkerSetup, WorkerTask } from "./worker.ts";

export { SCENARIOS } from "./scenarios.ts";

const HELP = `usage: pnpm sim [--seeds N] [--seed S] [--nodes K] [--scenario NAME] [--jobs J]
                [--transcript] [--skip-lease-wait] [--baseline] [--help]

Runs the deterministic cluster simulator (real membership core + failover-core node driver,
simulated databases, network and clocks) over seeds S..S+N-1 and judges the databases after
every event. A failing seed prints its transcript; --seed S replays it exactly.

  --seeds N          how many seeds (default 100, or 1 with --seed)
  --seed S           first seed (default 1)
  --nodes K          cluster size 2-15 (random family; default: drawn from the seed, 2-9)
  --scenario NAME    ${Object.keys(SCENARIOS).join(", ")}
  --jobs J           worker threads running seeds (default: the number of CPUs); the output is
                     the same for every J: results are printed and counted in seed order
  --transcript       print every seed's transcript
  --skip-lease-wait  the checker's own test: take over without waiting out the old lease
  --baseline         print the violating seeds per invariant as src/baseline.ts's KNOWN_FAILING
  --help             this text

Random fault kinds: ${FAULT_KINDS.join(", ")}.
Invariants: ${Object.keys(INVARIANTS).join(", ")}.
The summary counts the seeds violating each invariant. Exit code 1 when a seed violates an
enforced invariant, or (random family, seeds 1-${BASELINE_SEEDS}) an open one outside the known-failing
baseline (tooling/sim/src/baseline.ts); 2 on bad arguments.
`;

/**
 * `pnpm sim` (see HELP): run the combined simulator over seeds S..S+N-1; a failing seed is printed
 * with its violations (the first few with transcripts) and replays exactly. The summary counts the
 * seeds that violate each invariant. Returns the exit code: 1 when a seed violates an invariant
 * outside the baseline (random seeds 1..BASELINE_SEEDS) or, elsewhere, any invariant but lost writes.
 * With --jobs J > 1 the seeds run on J worker threads (compiled build only, see runInWorkers).
 */
export async function main(argv: readonly string[]): Promise<number> {
  let values: {
    seeds?: string;
    seed?: string;
    nodes?: string;
    scenario?: string;
    jobs?: string;
    transcript?: boolean;
    "skip-lease-wait"?: boolean;
    baseline?: boolean;
    help?: boolean;
  };
  try {
    ({ values } = parseArgs({
      args: [...argv],
      options: {
        seeds: { type: "string" },
        seed: { type: "string" },
        nodes: { type: "string" },
        scenario: { type: "string" },
        jobs: { type: "string" },
        transcript: { type: "boolean" },
        "skip-lease-wait": { type: "boolean" },
        baseline: { type: "boolean" },
        help: { type: "boolean", short: "h" },
      },
    }));
  } catch (err) {
    process.stderr.write(`sim: ${(err as Error).message}\n`);
    return 2;
  }
  if (values.help) {
    process.stdout.write(HELP);
    return 0;
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
  const jobs = int("jobs", values.jobs, availableParallelism(), 1, 256);
  if (seeds === null || first === null || nodes === null || jobs === null) return 2;
  const name = values.scenario ?? "random";
  if (!Object.hasOwn(SCENARIOS, name)) {
    process.stderr.write(
      `sim: --scenario must be one of ${Object.keys(SCENARIOS).join(", ")}, got "${name}"\n`,
    );
    return 2;
  }
  const run = SCENARIOS[name as ScenarioName];
  const started = Date.now();
  let failed = 0;
  let steps = 0;
  let promotions = 0;
  const violating = Object.fromEntries(Object.keys(INVARIANTS).map((k) => [k, 0])) as Record<
    InvariantName,
    number
  >;
  const expectedSeeds: number[] = [];
  // Random seeds 1..BASELINE_SEEDS are judged against the baseline of known-failing seeds;
  // anywhere else every violation (but lost writes, a report) fails the seed.
  const baselined = name === "random" && nodes === undefined && !values["skip-lease-wait"];
  let transcripts = 0;
  const bySeed = Object.fromEntries(Object.keys(INVARIANTS).map((k) => [k, [] as number[]])) as Record<
    InvariantName,
    number[]
  >;
  const opts = {
    ...(nodes !== undefined ? { nodes } : {}),
    ...(values["skip-lease-wait"] ? { skipLeaseWait: true } : {}),
  };
  // Judges and prints one seed's result; called in seed order whatever thread ran the seed.
  // A long run says where it is on stderr every tenth of the way (stdout stays the report).
  const progressEvery = seeds >= 10_000 ? Math.ceil(seeds / 10) : 0;
  let consumed = 0;
  const consume = (r: ClusterSimResult): void => {
    const seed = r.seed;
    consumed++;
    if (progressEvery > 0 && consumed % progressEvery === 0) {
      const so = (Object.keys(violating) as InvariantName[]).map((k) => `${k} ${violating[k]}`).join(", ");
      process.stderr.write(
        `sim: ${consumed}/${seeds} seeds in ${((Date.now() - started) / 60_000).toFixed(1)} min; seeds violating so far: ${so}\n`,
      );
    }
    steps += r.steps;
    promotions += r.promotions;
    const broken: InvariantName[] = [];
    for (const k of Object.keys(violating) as InvariantName[])
      if (r.counts[k] > 0) {
        violating[k]++;
        bySeed[k].push(seed);
        if (baselined && seed <= BASELINE_SEEDS) {
          if (!isKnown(k, seed)) broken.push(k);
        } else if (k !== "lostWrites") broken.push(k);
      }
    if (r.expectedViolations.length > 0) expectedSeeds.push(seed);
    if (broken.length > 0) failed++;
    if (broken.length === 0 && !values.transcript) return;
    process.stdout.write(
      `${broken.length > 0 ? `FAIL (${broken.join(", ")})` : "ok"} seed=${seed} nodes=${r.nodes} auto.failover=${r.autoFailover} lost writes=${r.lostWrites}\n`,
    );
    for (const v of [...r.violations, ...r.expectedViolations]) process.stdout.write(`  ${v}\n`);
    // Full transcripts for the first few failing seeds only (a long run would print thousands).
    if (values.transcript || transcripts < 3) {
      transcripts++;
      const replay = r.transcript.length > 0 ? r : run(seed, { ...opts, transcript: true });
      for (const line of replay.transcript) process.stdout.write(`    ${line}\n`);
    }
    if (broken.length > 0) {
      process.stdout.write(
        `  reproduce with: pnpm sim --seed ${seed}${nodes !== undefined ? ` --nodes ${nodes}` : ""}${
          name !== "random" ? ` --scenario ${name}` : ""
        }${values["skip-lease-wait"] ? " --skip-lease-wait" : ""} --transcript\n`,
      );
    }
  };
  const runOpts = { ...opts, transcript: values.transcript === true };
  if (jobs === 1 || seeds === 1 || !compiled) {
    for (let seed = first; seed < first + seeds; seed++) consume(run(seed, runOpts));
  } else {
    try {
      await runInWorkers({ scenario: name as ScenarioName, options: runOpts }, first, seeds, jobs, consume);
    } catch (err) {
      process.stderr.write(`sim: a worker thread failed: ${(err as Error).message}\n`);
      return 1;
    }
  }
  const secs = (Date.now() - started) / 1000;
  if (values.baseline) {
    // Ready to paste into src/baseline.ts after reviewing every seed that is new there.
    process.stdout.write(
      "export const KNOWN_FAILING: Readonly<Partial<Record<InvariantName, readonly number[]>>> = {\n",
    );
    for (const k of Object.keys(bySeed) as InvariantName[])
      if (bySeed[k].length > 0) process.stdout.write(`  ${k}: [${bySeed[k].join(", ")}],\n`);
    process.stdout.write("};\n");
  }
  const counts = (Object.keys(violating) as InvariantName[])
    .map((k) => `${k} ${violating[k]}${EXPECTED_TO_FAIL.has(k) ? " (expected to fail)" : ""}`)
    .join(", ");
  process.stdout.write(`seeds violating each invariant: ${counts}\n`);
  if (expectedSeeds.length > 0)
    process.stdout.write(
      `expected failures (tooling/sim/README.md) in seeds ${expectedSeeds.slice(0, 20).join(" ")}${expectedSeeds.length > 20 ? " ..." : ""}\n`,
    );
  process.stdout.write(
    `${seeds} seed(s), ${failed} failed, ${promotions} promotions, ${steps} steps in ${secs.toFixed(1)} s (${Math.round((seeds / Math.max(secs, 0.001)) * 60)} seeds/min)\n`,
  );
  return failed > 0 ? 1 : 0;
}

/** Most seeds per task handed to a worker: small enough to balance, large enough to keep messages rare. */
const MAX_BLOCK = 25;

/**
 * Worker threads need the compiled worker.js; run from source (vitest) the CLI runs seeds on its
 * own thread instead, with the same output.
 */
const compiled = import.meta.url.endsWith(".js");

/**
 * Runs seeds first..first+count-1 on `jobs` worker threads, handing out blocks of seeds as
 * workers become free, and feeds every result to `consume` in seed order: a finished block waits
 * until every earlier block was consumed. Rejects on the first worker error (and stops the rest).
 */
export function runInWorkers(
  setup: WorkerSetup,
  first: number,
  count: number,
  jobs: number,
  consume: (r: ClusterSimResult) => void,
): Promise<void> {
  const end = first + count;
  // At least four blocks per worker, so one slow block does not leave the others idle at the end.
  const block = Math.max(1, Math.min(MAX_BLOCK, Math.floor(count / (jobs * 4))));
  let next = first;
  let expected = first;
  const done = new Map<number, readonly ClusterSimResult[]>();
  const workers: Worker[] = [];
  return new Promise<void>((resolve, reject) => {
    let failed = false;
    const stop = (err?: Error): void => {
      if (failed) return;
      if (err) failed = true;
      for (const w of workers) void w.terminate();
      if (err) reject(err);
      else resolve();
    };
    const give = (w: Worker): boolean => {
      if (next >= end) return false;
      const task: WorkerTask = { first: next, count: Math.min(block, end - next) };
      next += task.count;
      w.postMessage(task);
      return true;
    };
    for (let i = 0; i < Math.min(jobs, Math.ceil(count / block)); i++) {
      const w = new Worker(new URL("./worker.js", import.meta.url), { workerData: setup });
      workers.push(w);
      w.on("message", (reply: WorkerReply) => {
        done.set(reply.first, reply.results);
        try {
          for (let ready = done.get(expected); ready; ready = done.get(expected)) {
            done.delete(expected);
            expected += ready.length;
            for (const r of ready) consume(r);
          }
        } catch (err) {
          stop(err as Error);
          return;
        }
        if (expected >= end) stop();
        else give(w);
      });
      w.on("error", (err) => stop(err));
      w.on("exit", (code) => {
        if (code !== 0 && expected < end) stop(new Error(`worker exited with code ${code}`));
      });
      give(w);
    }
  });
}

if (process.argv[1] && import.meta.url === new URL(`file://${process.argv[1]}`).href) {
  // `pnpm sim --seeds 100000 | head`: the reader left; stop quietly instead of a stack trace
  // (and instead of running every remaining seed for nobody).
  process.stdout.on("error", (err: NodeJS.ErrnoException) => {
    if (err.code !== "EPIPE") throw err;
    process.exit(0);
  });
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (err: unknown) => {
      process.stderr.write(`sim: ${(err as Error).stack ?? String(err)}\n`);
      process.exitCode = 1;
    },
  );
}
