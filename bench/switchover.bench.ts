/**
 * Write-unavailability window of `efm promote <cluster> -switchover` (issue 16): three
 * PostgreSQL 15 hosts on loopback addresses, the real `bin/efm-agent` on each, and a client that
 * inserts one row at a time, each over a new connection to the database it last wrote to (then
 * the others), as an application reconnecting would. The window is the longest gap between two
 * acknowledged writes while a switchover runs: the master's clean shutdown to the first write
 * the new master acknowledged. The switchovers alternate between the original master and a
 * standby. Settings: fast (test-e2e's FAST) and the guide's defaults (pingServerIp 127.0.0.1:
 * the bench host need not reach 8.8.8.8).
 *
 * Printed (min / median / max per setting) and written to a JSON file, never asserted: speed
 * is measured here, correctness is the e2e suite's job (test-e2e/switchover.test.ts). A lost
 * acknowledged write is printed loudly all the same.
 *
 * Knobs (environment): EFM_BENCH_REPS (6) switchovers per setting; EFM_BENCH_SETTINGS
 * ("fast,default"); EFM_BENCH_OUT (/tmp/efm-bench-switchover.json).
 * Needs `pnpm build` (bin/efm-agent loads apps/agent/dist). Run: `pnpm bench switchover`.
 *
 * Reserved for this bench: 127.0.23.11-13, db port 23300, agent port 23400, admin ports
 * 23500-23502, run folders /tmp/efm-h4-bench-*.
 */
import { writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { afterAll, describe, test } from "vitest";
import {
  type EfmCluster,
  type StatusJson,
  Suite,
  sleep,
  threeHosts,
  waitUntil,
} from "../test-e2e/harness.ts";

// `pg` is a dependency of the e2e package, not of the root: load it from there.
const pg = createRequire(new URL("../test-e2e/package.json", import.meta.url))("pg") as typeof import("pg");

const HOSTS = ["a", "b", "c"];
const envInt = (k: string, d: number) => {
  const v = process.env[k];
  const n = v === undefined || v === "" ? d : Number(v);
  if (!Number.isInteger(n) || n < 1)
    throw new Error(`${k}=${JSON.stringify(v)}: expected a whole number >= 1`);
  return n;
};
/** An optional knob by name (the names are listed in the header). */
const envStr = (k: string): string | undefined => process.env[k];
const REPS = envInt("EFM_BENCH_REPS", 6);
const SETTINGS = (envStr("EFM_BENCH_SETTINGS") ?? "fast,default").split(",").map((s) => s.trim());
for (const s of SETTINGS)
  if (s !== "fast" && s !== "default") throw new Error(`EFM_BENCH_SETTINGS: unknown ${JSON.stringify(s)}`);
const OUT = envStr("EFM_BENCH_OUT") ?? "/tmp/efm-bench-switchover.json";

/** The guide's defaults for the timing properties FAST shortens (examples/efm.properties.in). */
const DEFAULTS: Record<string, string> = {
  "local.period": "10",
  "local.timeout": "60",
  "local.timeout.final": "10",
  "remote.timeout": "10",
  "jgroups.timeout": "5000",
  "jgroups.max.tries": "8",
  pingServerIp: "127.0.0.1",
  "user.email": "dba@example.com",
  "from.email": "efm@example.com",
};

interface Run {
  readonly settings: string;
  readonly rep: number;
  readonly from: string;
  readonly to: string;
  /** Longest gap between two acknowledged writes during the switchover, ms. */
  readonly windowMs: number;
  /** How long `efm promote -switchover` took, ms. */
  readonly commandMs: number;
  readonly lost: number[];
  readonly error?: string;
}

/** Inserts one row at a time over a new connection; `acks` holds [n, when] of every acknowledged one. */
function writer(efm: EfmCluster) {
  const acks: [number, number][] = [];
  let running = true;
  let current = "a";
  const once = async (host: string, n: number): Promise<boolean> => {
    const client = new pg.Client({
      ...efm.lab.efmConnection(host),
      password: efm.lab.efmPassword,
      connectionTimeoutMillis: 1_000,
      query_timeout: 2_000,
    });
    client.on("error", () => {});
    try {
      await client.connect();
      // A standby refuses the INSERT (read-only transaction): no acknowledgement.
      await client.query("INSERT INTO probe VALUES ($1)", [n]);
      return true;
    } catch {
      return false;
    } finally {
      await client.end().catch(() => {});
    }
  };
  const done = (async () => {
    for (let n = 0; running; n++) {
      let ok = false;
      for (const h of [current, ...HOSTS.filter((x) => x !== current)]) {
        if (await once(h, n)) {
          acks.push([n, performance.now()]);
          current = h;
          ok = true;
          break;
        }
      }
      if (!ok) await sleep(5);
    }
  })();
  return {
    acks,
    stop: async () => {
      running = false;
      await done;
    },
  };
}

const masterOf = (efm: EfmCluster, s: StatusJson) =>
  efm.hostOf(Object.entries(s.nodes).find(([, n]) => n.type === "Master")![0]);

async function measure(settings: string, suite: Suite): Promise<Run[]> {
  const lab = await suite.lab({
    name: `bench-switchover-${settings}`,
    mode: "loopback",
    hosts: threeHosts(),
    port: 23300,
    addressBase: "127.0.23",
    runDir: `/tmp/efm-h4-bench-${settings}`,
    hbaLines: ["host replication efm 0.0.0.0/0 scram-sha-256"],
  });
  await lab.psql(
    "a",
    `ALTER ROLE efm REPLICATION; GRANT pg_checkpoint TO efm;
     CREATE TABLE probe (n int PRIMARY KEY); GRANT INSERT, SELECT ON probe TO efm;`,
  );
  const lsn = await lab.lsn("a");
  await lab.waitReplayed("b", lsn);
  await lab.waitReplayed("c", lsn);
  const efm = suite.efmCluster(lab, "acctg", {
    agentPort: 23400,
    adminPort: 23500,
    properties: settings === "fast" ? {} : { ...DEFAULTS },
  });
  await efm.startAll(HOSTS, { a: "Master", b: "Standby", c: "Standby" }, 180_000);
  await efm.waitStatus("a", "both standbys listed", (s) => s.failoverpriority.length === 2, 120_000);
  const runs: Run[] = [];
  for (let rep = 1; rep <= REPS; rep++) {
    const from = masterOf(efm, await efm.waitStatus("a", "a master", () => true));
    // Alternate: away from the original master, then back to it.
    const to = from === "a" ? (rep % 4 === 1 ? "b" : "c") : "a";
    await efm.waitTypes(from, { a: from === "a" ? "Master" : "Standby", [to]: "Standby" }, 120_000);
    const w = writer(efm);
    await waitUntil(async () => w.acks.length >= 20, 30_000);
    const t0 = performance.now();
    const r = await efm.efm(from, ["promote", "acctg", "-switchover", "-sourcenode", efm.address(to)]);
    const t1 = performance.now();
    const after = w.acks.length;
    await waitUntil(async () => w.acks.length >= after + 20, 30_000);
    await w.stop();
    let windowMs = 0;
    for (let i = 1; i < w.acks.length; i++) {
      const [, at] = w.acks[i]!;
      const [, prev] = w.acks[i - 1]!;
      if (at >= t0 && prev <= t1) windowMs = Math.max(windowMs, at - prev);
    }
    const rows = (await lab.psql(to, "SELECT n FROM probe")) as { n: number }[];
    const have = new Set(rows.map((x) => x.n));
    const lost = w.acks.map(([n]) => n).filter((n) => !have.has(n));
    const run: Run = {
      settings,
      rep,
      from,
      to,
      windowMs: Math.round(windowMs),
      commandMs: Math.round(t1 - t0),
      lost,
      ...(r.code === 0 ? {} : { error: `${r.stdout}${r.stderr}`.trim() }),
    };
    console.log(
      `${settings} #${rep} ${from} -> ${to}: writes unavailable ${(run.windowMs / 1000).toFixed(2)} s, command ${(run.commandMs / 1000).toFixed(2)} s` +
        `${lost.length > 0 ? `  !!! LOST ${lost.length} ACKNOWLEDGED WRITES` : ""}${run.error ? `  ERROR: ${run.error}` : ""}`,
    );
    runs.push(run);
    // The next switchover needs every agent back in its role (the old master a Standby).
    await efm.waitTypes(to, { [to]: "Master", [from]: "Standby" }, 120_000);
    await lab.psql(to, "TRUNCATE probe");
  }
  await efm.killAll();
  await lab.down();
  return runs;
}

const suite = new Suite();

describe("switchover write-unavailability window", () => {
  afterAll(async () => {
    await suite.cleanup();
  });

  test(
    "efm promote -switchover at fast and default settings",
    async () => {
      await suite.init();
      const all: Run[] = [];
      for (const s of SETTINGS) all.push(...(await measure(s, suite)));
      const lines = ["", "switchover: longest time without an acknowledged write (s)"];
      for (const s of SETTINGS) {
        const w = all
          .filter((r) => r.settings === s && !r.error)
          .map((r) => r.windowMs)
          .sort((a, b) => a - b);
        if (w.length === 0) {
          lines.push(`  ${s}: no successful switchover`);
          continue;
        }
        const med = w.length % 2 ? w[(w.length - 1) / 2]! : (w[w.length / 2 - 1]! + w[w.length / 2]!) / 2;
        const f = (ms: number) => (ms / 1000).toFixed(2);
        lines.push(`  ${s} (${w.length} runs): min ${f(w[0]!)}  median ${f(med)}  max ${f(w.at(-1)!)}`);
      }
      console.log(lines.join("\n"));
      writeFileSync(
        OUT,
        `${JSON.stringify({ when: new Date().toISOString(), reps: REPS, runs: all }, null, 2)}\n`,
      );
      console.log(`result written to ${OUT}`);
    },
    4 * 3600_000,
  );
});
