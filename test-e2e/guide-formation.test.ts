/**
 * Issue 14: the guide's workflow followed literally by an operator, and the errors an operator
 * must be able to act on. Guide 3.2.2: the first node starts with an empty members file; 4.1.2:
 * each further node is allowed with `efm add-node <cluster> <ip> [priority]` on a running member,
 * given the current members in its members file, and started. Every add-node here runs right
 * after a start, the moment the agent's admin port exists, without waiting for it to settle.
 * Then each error an operator meets: what the terminal says, never a stack trace.
 */
import { appendFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { encrypt } from "@efm/password-crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AGENT_BIN, type EfmCluster, type RunResult, run, Suite, waitUntil } from "./harness.ts";

const suite = new Suite();
let efm: EfmCluster;
const RUN_DIR = "/tmp/efm-e2e-guide";
const A = "127.0.20.11";
const B = "127.0.20.12";
const C = "127.0.20.13";
const W = "127.0.20.14";
const PORT = 17730;
/** Agents started with `--wait` run detached (not the harness's children): killed by pid. */
const detached: number[] = [];

/** `bin/efm-agent start --wait acctg` on a host, as a script would run it. */
async function startWait(host: string, env: NodeJS.ProcessEnv = efm.env(host)): Promise<RunResult> {
  const r = await run(
    [process.execPath, AGENT_BIN, "start", "acctg", "--config-dir", efm.files[host]!.dir, "--wait"],
    { ...env, EFM_LOG_STDOUT: undefined },
    180_000,
  );
  const pid = /\(pid (\d+)\)/.exec(r.stdout)?.[1];
  if (pid) {
    detached.push(Number(pid));
    // The next run of this suite kills it if this one is itself killed (see killLeftoverAgents).
    appendFileSync(`${RUN_DIR}.agent-pids`, `${pid}\n`);
  }
  return r;
}

function stopDetached(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch {
    // Already gone.
  }
}

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

/** A stack trace line as Node prints one. */
const STACK = /^\s+at /m;

function setProperty(host: string, key: string, value: string): void {
  const file = efm.files[host]!.propertiesFile;
  const text = readFileSync(file, "utf8");
  const line = new RegExp(`^${key.replace(/\./g, "\\.")}=.*$`, "m");
  writeFileSync(file, line.test(text) ? text.replace(line, `${key}=${value}`) : `${text}${key}=${value}\n`);
}

beforeAll(async () => {
  await suite.init();
  const lab = await suite.lab({
    name: "e2e-guide",
    mode: "loopback",
    hosts: [
      { name: "a", role: "master" },
      { name: "b", role: "standby" },
      { name: "c", role: "standby" },
      { name: "w", role: "witness" },
    ],
    port: 15420,
    addressBase: "127.0.20",
    runDir: RUN_DIR,
  });
  efm = suite.efmCluster(lab, "acctg", { agentPort: PORT, adminPort: 17740 });
});

afterAll(async () => {
  for (const pid of detached) stopDetached(pid, "SIGKILL");
  await suite.cleanup();
});

describe("forming a cluster as guide 3.2.2 and 4.1.2 say", () => {
  it("the first node, with an empty members file, takes add-node with a priority right after its start", async () => {
    writeFileSync(efm.files.a!.nodesFile, "");
    efm.start("a");
    // The token file is written once the admin port is the agent's: from then on efm can talk to
    // it. The agent is usually still starting then; the command must wait for it, not fail.
    const token = join(efm.agentDir("a"), "acctg.token");
    expect(await waitUntil(() => existsSync(token) || !efm.agents.get("a")?.running, 60_000, 20)).toBe(true);
    const r = await efm.efm("a", ["add-node", "acctg", B, "1"]);
    expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: "" });
    expect(r.stdout).toContain("add-node signal sent to local agent.");
    expect(r.stdout).toContain(`Added to the allowed node host list: ${B}`);
    const s = await efm.waitTypes("a", { a: "Master" });
    expect(s.allowednodes).toEqual([A, B]);
  });

  it("the second node lists the first, starts with --wait, and add-node runs on it at once", async () => {
    writeFileSync(efm.files.b!.nodesFile, `${A}:${PORT}\n`);
    const started = await startWait("b");
    expect(started).toMatchObject({ code: 0, stderr: "" });
    expect(started.stdout).toMatch(/^efm-agent: cluster acctg is running \(pid \d+\)\n$/);
    const r = await efm.efm("b", ["add-node", "acctg", C, "2"]);
    expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: "" });
    expect(r.stdout).toContain(`Added to the allowed node host list: ${C}`);
    // The witness is allowed too, without a priority: it has no database to promote.
    const w = await efm.efm("b", ["add-node", "acctg", W]);
    expect(w.code).toBe(0);
  });

  it("the third node and the witness join; set-priority right after a start prints the new list", async () => {
    writeFileSync(efm.files.c!.nodesFile, `${A}:${PORT} ${B}:${PORT}\n`);
    expect(await startWait("c")).toMatchObject({ code: 0, stderr: "" });
    const r = await efm.efm("c", ["set-priority", "acctg", C, "1"]);
    expect(r).toMatchObject({ code: 0, stderr: "" });
    expect(r.stdout).toBe(
      `set-priority signal sent: ${C} has priority 1.\nStandby priority host list: ${C} ${B}\n`,
    );
    writeFileSync(efm.files.w!.nodesFile, `${A}:${PORT} ${B}:${PORT} ${C}:${PORT}\n`);
    expect(await startWait("w")).toMatchObject({ code: 0, stderr: "" });
  });

  it("every member, late joiners included, shows the same lists, and the status exits 0", async () => {
    for (const host of ["a", "b", "c", "w"]) {
      const s = await efm.waitStatus(
        host,
        "a healthy cluster with the priority set on c",
        (json, code) =>
          code === 0 &&
          json.nodes[A]?.type === "Master" &&
          json.nodes[B]?.type === "Standby" &&
          json.nodes[C]?.type === "Standby" &&
          json.nodes[W]?.type === "Witness",
      );
      expect({ host, priority: s.failoverpriority, allowed: [...s.allowednodes].sort() }).toEqual({
        host,
        priority: [C, B],
        allowed: [A, B, C, W],
      });
      // Nobody is starting any more: no Info, no "starting" key.
      for (const n of Object.values(s.nodes)) expect(n).not.toHaveProperty("starting");
    }
  });
});

describe("errors an operator can act on", () => {
  it("set-priority and add-node refuse the witness, a bad address and a non-member, changing nothing", async () => {
    const before = (await efm.status("a")).json!;
    const cases: Array<[string[], string]> = [
      [
        ["set-priority", "acctg", W, "1"],
        `${W} is a witness: it has no database to promote and cannot be in the standby priority list\n`,
      ],
      [
        ["add-node", "acctg", W, "1"],
        `${W} is a witness: it has no database to promote and cannot be in the standby priority list\n`,
      ],
      [["add-node", "acctg", "127.0.4.300"], '"127.0.4.300" is not a valid IPv4 or IPv6 address\n'],
      [
        ["set-priority", "acctg", "127.0.20.99", "1"],
        "127.0.20.99 is not a running member of cluster acctg\n",
      ],
    ];
    for (const [args, message] of cases) {
      const r = await efm.efm("a", args);
      expect({ args, code: r.code, stdout: r.stdout }).toEqual({ args, code: 1, stdout: message });
    }
    const after = (await efm.status("a")).json!;
    expect({ allowed: after.allowednodes, priority: after.failoverpriority }).toEqual({
      allowed: before.allowednodes,
      priority: before.failoverpriority,
    });
  });

  it("a second agent for the cluster with another lock dir: one clear line, the first agent untouched", async () => {
    const other = join(RUN_DIR, "other-lock");
    mkdirSync(other, { recursive: true });
    const r = await run(
      [process.execPath, AGENT_BIN, "start", "acctg", "--config-dir", efm.files.a!.dir],
      efm.env("a", { EFM_LOCK_DIR: other, EFM_LOG_STDOUT: undefined }),
    );
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(
      "efm-agent: cannot start cluster acctg:\nIN_USE: admin.port 17740 is already in use on 127.0.0.1: another agent for this cluster (with a different lock.dir) or another program listens there\n",
    );
    expect(r.stderr).not.toMatch(STACK);
    // The running agent kept its token: a privileged command still works.
    const p = await efm.efm("a", ["set-priority", "acctg", B, "1"]);
    expect(p).toMatchObject({ code: 0, stderr: "" });
    expect(p.stdout).toContain(`Standby priority host list: ${B} ${C}`);
  });

  it("a stopped standby agent makes cluster-status exit non-zero (4.2.1)", async () => {
    const pid = detached[1]!; // c, started second with --wait
    stopDetached(pid, "SIGTERM");
    expect(await waitUntil(() => !alive(pid), 30_000, 50)).toBe(true);
    await efm.waitStatus("a", "c gone", (s) => s.nodes[C] === undefined || s.nodes[C]?.agent === "DOWN");
    const text = await efm.efm("a", ["cluster-status", "acctg"]);
    expect(text.code).not.toBe(0);
    expect(text.stdout).toContain("Allowed node host list:");
    const json = await efm.status("a");
    expect(json.code).not.toBe(0);
  });

  it("a wrong database password: the server's reason on the terminal and in startup-acctg.log", async () => {
    const good = readFileSync(efm.files.c!.propertiesFile, "utf8");
    setProperty("c", "db.password.encrypted", encrypt("not-the-password", "acctg"));
    const r = await startWait("c").finally(() => writeFileSync(efm.files.c!.propertiesFile, good));
    expect(r.code).toBe(1);
    const reason = `cannot connect to the local database at ${C}:15420 as db.user=`;
    expect(r.stderr).toContain(reason);
    expect(r.stderr).toContain('password authentication failed for user "');
    expect(r.stderr).not.toMatch(STACK);
    const log = readFileSync(join(efm.agentDir("c"), "startup-acctg.log"), "utf8");
    expect(log).toContain(reason);
    expect(log).toContain("password authentication failed for user");
    writeFileSync(efm.files.c!.propertiesFile, good);
  });

  it("a wrong db.port: the reason names the database's address and port, on the terminal", async () => {
    const good = readFileSync(efm.files.c!.propertiesFile, "utf8");
    setProperty("c", "db.port", "15499");
    const r = await startWait("c").finally(() => writeFileSync(efm.files.c!.propertiesFile, good));
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`${C}:15499`);
    expect(r.stderr).not.toContain(`${C}:${PORT}`);
    expect(r.stderr).not.toMatch(STACK);
    writeFileSync(efm.files.c!.propertiesFile, good);
  });

  it("prop-check reports what the agent would refuse, and the agent refuses it at start", async () => {
    const good = readFileSync(efm.files.c!.propertiesFile, "utf8");
    try {
      setProperty("c", "db.password.encrypted", encrypt("x", "sales"));
      const pw = await efm.efm("c", ["prop-check", "acctg"]);
      expect(pw.code).toBe(1);
      expect(pw.stdout).toContain(
        "db.password.encrypted: cannot be decrypted for cluster acctg: the encrypted password was not made for cluster 'acctg'",
      );
      writeFileSync(efm.files.c!.propertiesFile, good);
      setProperty("c", "jgroups.max.tries", "1");
      const tries = await efm.efm("c", ["prop-check", "acctg"]);
      expect(tries.code).toBe(1);
      expect(tries.stdout).toContain("jgroups.max.tries=1: expected a whole number from 2 to 1000");
      writeFileSync(efm.files.c!.propertiesFile, good);
      setProperty("c", "bind.address", `192.0.2.7:${PORT}`);
      const warn = await efm.efm("c", ["prop-check", "acctg"]);
      expect(warn.code).toBe(0);
      expect(warn.stdout).toContain(`WARNING: ${efm.files.c!.propertiesFile}:`);
      expect(warn.stdout).toContain("192.0.2.7 is not an address of this host");
      const r = await startWait("c");
      expect(r.code).toBe(1);
      expect(r.stderr).toContain("CONFIG_INVALID");
      expect(r.stderr).toContain("192.0.2.7 is not an address of this host");
      expect(r.stderr).not.toMatch(STACK);
    } finally {
      writeFileSync(efm.files.c!.propertiesFile, good);
    }
  });

  it("efm as root with another run directory names the token path it looked at", async () => {
    const r = await efm.efm("a", ["add-node", "acctg", C], { EFM_RUN_DIR: join(RUN_DIR, "no-run-dir") });
    expect(r.code).toBe(1);
    expect(r.stdout).toBe(
      `There is no admin token at ${join(RUN_DIR, "no-run-dir")}/acctg.token: is the agent running? The agent writes it in its run directory (run.dir in the properties, or EFM_RUN_DIR in the agent's environment); run efm with the same EFM_RUN_DIR.\n`,
    );
  });

  it("c comes back with --wait once its files are right", async () => {
    expect(await startWait("c")).toMatchObject({ code: 0, stderr: "" });
    await efm.waitTypes("a", { a: "Master", b: "Standby", c: "Standby", w: "Witness" });
  });

  it("a dead witness stays a Witness with its agent DOWN, and the status exits non-zero", async () => {
    const pid = detached[2]!; // w, started third with --wait
    stopDetached(pid, "SIGKILL");
    const s = await efm.waitStatus("a", "the witness agent DOWN", (json) => json.nodes[W]?.agent === "DOWN");
    expect(s.nodes[W]).toMatchObject({ type: "Witness", agent: "DOWN", db: "N/A" });
    expect((await efm.status("a")).code).not.toBe(0);
  });
});
