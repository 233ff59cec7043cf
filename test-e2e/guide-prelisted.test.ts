/**
 * Issue 14, the guide's other form of 3.2.2: "If you know the IP addresses and ports of the nodes
 * that will be joining the cluster, you can include the addresses in the cluster members file at
 * any time. At startup, any addresses that do not identify cluster members are ignored." Every
 * members file here lists all four addresses before any agent runs. The primary's agent starts
 * first and must form the cluster alone (the others are not running); each later start is
 * followed at once by `efm add-node` with a priority. Then the master fails while a standby and
 * the witness are still starting: they must not exit, and the cluster fails over.
 *
 * Addresses 127.0.25.21-24, database port 25420, agent port 25800, admin ports 25810-25813,
 * folders /tmp/efm-h6-prelisted*.
 */
import { appendFileSync, readFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AGENT_BIN, type EfmCluster, type RunResult, run, Suite } from "./harness.ts";

const suite = new Suite();
let efm: EfmCluster;
const RUN_DIR = "/tmp/efm-h6-prelisted";
const A = "127.0.25.21";
const B = "127.0.25.22";
const C = "127.0.25.23";
const W = "127.0.25.24";
const PORT = 25800;
/** Agents started with `--wait` run detached (not the harness's children): killed by pid. */
const detached = new Map<string, number>();

/** `bin/efm-agent start acctg --wait` on a host, as a script would run it. */
async function startWait(host: string): Promise<RunResult> {
  const r = await run(
    [process.execPath, AGENT_BIN, "start", "acctg", "--config-dir", efm.files[host]!.dir, "--wait"],
    efm.env(host, { EFM_LOG_STDOUT: undefined }),
    180_000,
  );
  const pid = /\(pid (\d+)\)/.exec(r.stdout)?.[1];
  if (pid) {
    detached.set(host, Number(pid));
    // The next run of this suite kills it if this one is itself killed (see killLeftoverAgents).
    appendFileSync(`${RUN_DIR}.agent-pids`, `${pid}\n`);
  }
  return r;
}

function kill(pid: number): void {
  try {
    process.kill(pid, "SIGKILL");
  } catch {
    // Already gone.
  }
}

beforeAll(async () => {
  await suite.init();
  const lab = await suite.lab({
    name: "e2e-h6-prelisted",
    mode: "loopback",
    hosts: [
      { name: "a", role: "master" },
      { name: "b", role: "standby" },
      { name: "c", role: "standby" },
      { name: "w", role: "witness" },
    ],
    port: 25420,
    addressBase: "127.0.25",
    firstOctet: 21,
    runDir: RUN_DIR,
  });
  efm = suite.efmCluster(lab, "acctg", { agentPort: PORT, adminPort: 25810 });
});

afterAll(async () => {
  for (const pid of detached.values()) kill(pid);
  await suite.cleanup();
});

describe("every address pre-listed in every members file (guide 3.2.2)", () => {
  it("lists all four addresses on every host before any agent runs", () => {
    for (const host of ["a", "b", "c", "w"]) {
      const listed = readFileSync(efm.files[host]!.nodesFile, "utf8");
      for (const addr of [A, B, C, W].filter((x) => x !== efm.address(host)))
        expect({ host, has: listed.includes(`${addr}:${PORT}`) }).toEqual({ host, has: true });
    }
  });

  it("the primary's agent starts alone: the listed hosts that do not run are ignored and it forms the cluster", async () => {
    const started = await startWait("a");
    expect(started).toMatchObject({ code: 0, stderr: "" });
    const r = await efm.efm("a", ["add-node", "acctg", B, "1"]);
    expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: "" });
    expect(r.stdout).toContain("add-node signal sent to local agent.");
    const s = await efm.waitTypes("a", { a: "Master" });
    expect(Object.keys(s.nodes)).toEqual([A]);
    expect(s.failoverpriority).toEqual([B]);
  });

  it("b starts, and add-node with a priority runs on it at once", async () => {
    expect(await startWait("b")).toMatchObject({ code: 0, stderr: "" });
    const r = await efm.efm("b", ["add-node", "acctg", C, "2"]);
    expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: "" });
    const s = await efm.waitStatus(
      "a",
      "b a Standby with c next in the priority list",
      (json) => json.nodes[B]?.type === "Standby" && json.failoverpriority.join(" ") === `${B} ${C}`,
    );
    expect(s.nodes[A]?.type).toBe("Master");
  });

  it("the master fails while c and the witness are still starting: they stay, and b is promoted", async () => {
    efm.start("c");
    efm.start("w");
    // The moment c is in the cluster, its start-up still running, the master's host fails.
    const joined = await efm.waitStatus(
      "b",
      "c in the cluster",
      (json) => json.nodes[C] !== undefined,
      60_000,
    );
    expect(joined.nodes[A]?.type).toBe("Master");
    kill(detached.get("a")!);
    await efm.lab.stopDb("a", "immediate");
    const s = await efm.waitStatus(
      "b",
      "b promoted, c a Standby, the witness a Witness",
      (json) =>
        json.nodes[B]?.type === "Master" &&
        json.nodes[C]?.type === "Standby" &&
        json.nodes[W]?.type === "Witness",
      120_000,
    );
    for (const host of ["c", "w"]) {
      expect({ host, running: efm.agents.get(host)?.running }).toEqual({ host, running: true });
    }
    // The old master stays a voter, shown with its agent DOWN.
    expect(s.nodes[A]).toMatchObject({ agent: "DOWN" });
  });
});
