/**
 * One 3-host cluster with auto.failover=false: the status report of a healthy cluster (guide
 * 4.2.1 / 5.3), a stopped standby database and `efm resume`, the guards of a running agent (the
 * lock file, the admin token), and finally a master database failure that must not promote.
 */
import { createConnection } from "node:net";
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EFM_BIN, type EfmCluster, run, Suite, sleep, threeHosts } from "./harness.ts";

const suite = new Suite();
let efm: EfmCluster;
const A = "127.0.5.11";
const B = "127.0.5.12";
const C = "127.0.5.13";

beforeAll(async () => {
  await suite.init();
  const lab = await suite.lab({
    name: "e2e-status",
    mode: "loopback",
    hosts: threeHosts(),
    port: 15405,
    addressBase: "127.0.5",
    runDir: "/tmp/efm-e2e-status",
  });
  efm = suite.efmCluster(lab, "acctg", {
    agentPort: 17500,
    adminPort: 17600,
    properties: { "auto.failover": "false" },
  });
  await efm.startAll(["a", "b", "c"], { a: "Master", b: "Standby", c: "Standby" });
});

afterAll(async () => {
  await suite.cleanup();
});

/** Send one raw line to an admin port and return the parsed reply. */
function adminRaw(
  port: number,
  line: string,
): Promise<{ ok: boolean; error?: { code: string; message: string } }> {
  return new Promise((resolve, reject) => {
    const s = createConnection({ host: "127.0.0.1", port });
    let buf = "";
    s.on("connect", () => s.write(`${line}\n`));
    s.on("data", (c) => {
      buf += c.toString();
    });
    s.on("end", () => {
      try {
        resolve(JSON.parse(buf));
      } catch (err) {
        reject(err);
      }
    });
    s.on("error", reject);
  });
}

describe("cluster status (guide 4.2.1, 5.3)", () => {
  it("reports a healthy cluster in the guide's layout and keys, exit 0", async () => {
    // Every database in sync: wait for replay so the verdict is the healthy one.
    const lsn = await efm.lab.write("a", 5);
    await efm.lab.waitReplayed("b", lsn);
    await efm.lab.waitReplayed("c", lsn);
    // The coordinator lists every standby once it runs (guide 5.3: all standbys are candidates).
    await efm.waitStatus("b", "both standbys in the priority list", (s) => s.failoverpriority.length === 2);
    const r = await efm.efm("b", ["cluster-status", "acctg"]);
    expect(r.stdout).toContain("Cluster Status: acctg\n");
    expect(r.code).toBe(0);
    const lines = r.stdout.split("\n");
    expect(lines).toContain(" Agent Type  Address              Agent  DB       Info");
    expect(lines).toContain(` ${"-".repeat(55)}`);
    expect(lines).toContainEqual(
      expect.stringMatching(new RegExp(`^ Master {6}${A.replace(/\./g, "\\.")} +UP +UP`)),
    );
    for (const s of [B, C]) {
      expect(lines).toContainEqual(
        expect.stringMatching(new RegExp(`^ Standby {5}${s.replace(/\./g, "\\.")} +UP +UP`)),
      );
    }
    const allowedAt = lines.indexOf("Allowed node host list:");
    expect(allowedAt).toBeGreaterThan(0);
    expect(lines[allowedAt + 1]?.trim().split(" ").sort()).toEqual([A, B, C]);
    const prioAt = lines.indexOf("Standby priority host list:");
    expect(prioAt).toBeGreaterThan(allowedAt);
    expect(lines[prioAt + 1]?.trim().split(" ").sort()).toEqual([B, C]);
    expect(lines).toContain("Promote Status:");
    expect(lines).toContain(" DB Type     Address              XLog Loc         Info");
    // Promote Status lists the master first with its WAL position, then the standbys.
    const promoteAt = lines.indexOf(" DB Type     Address              XLog Loc         Info");
    expect(lines[promoteAt + 2]).toMatch(
      new RegExp(`^ Master {6}${A.replace(/\./g, "\\.")} +[0-9A-F]+/[0-9A-F]+$`),
    );
    expect(lines).toContain(" Standby database(s) in sync with master. It is safe to promote.");
    expect(r.stdout).not.toContain("Idle Node Status");
    // No cluster secret here: the report repeats the agent's warning after the guide's layout.
    expect(r.stdout).toMatch(/\nWARNING: .*acctg\.secret/);

    // The agent queried the databases, not the CLI: with a password nobody can decrypt in its
    // copy of the properties, the CLI still prints every database's position.
    const cliOnly = "/tmp/efm-e2e-status/cli-only";
    mkdirSync(cliOnly, { recursive: true });
    writeFileSync(
      join(cliOnly, "acctg.properties"),
      readFileSync(efm.files.b!.propertiesFile, "utf8").replace(
        /^db\.password\.encrypted=.*$/m,
        "db.password.encrypted=0123456789abcdef",
      ),
    );
    const blind = await run(
      [process.execPath, EFM_BIN, "--config-dir", cliOnly, "cluster-status", "acctg"],
      {},
      120_000,
    );
    expect(blind.code, blind.stdout + blind.stderr).toBe(0);
    expect(blind.stdout).toContain(" Standby database(s) in sync with master. It is safe to promote.");
    expect(blind.stdout).not.toContain("decrypt");

    const j = await efm.status("c");
    expect(j.code).toBe(0);
    expect(j.json).not.toBeNull();
    const json = j.json!;
    expect(Object.keys(json).sort()).toEqual(["allowednodes", "failoverpriority", "messages", "nodes"]);
    expect(Object.keys(json.nodes).sort()).toEqual([A, B, C]);
    for (const n of Object.values(json.nodes)) {
      expect(Object.keys(n).sort()).toEqual(["agent", "db", "info", "type", "xlog", "xloginfo"]);
      expect(n.agent).toBe("UP");
      expect(n.db).toBe("UP");
      expect(n.xlog).toMatch(/^[0-9A-F]+\/[0-9A-F]+$/);
    }
    expect(json.nodes[A]?.type).toBe("Master");
    expect(json.nodes[B]?.type).toBe("Standby");
    expect([...json.allowednodes].sort()).toEqual([A, B, C]);
    expect([...json.failoverpriority].sort()).toEqual([B, C]);
    expect(json.messages).toEqual([]);
  });

  it("exits non-zero and shows a stopped standby under Idle Node Status; resume brings it back", async () => {
    await efm.lab.stopDb("c", "fast");
    await efm.waitStatus(
      "a",
      "c idle with its database down",
      (s, code) => code !== 0 && s.nodes[C]?.type === "Idle",
    );
    const r = await efm.efm("a", ["cluster-status", "acctg"]);
    expect(r.code).not.toBe(0);
    const lines = r.stdout.split("\n");
    const idleAt = lines.indexOf("Idle Node Status (idle nodes ignored in XLog location comparisons):");
    expect(idleAt).toBeGreaterThan(0);
    const idleRows = lines.slice(idleAt);
    expect(idleRows).toContainEqual(
      expect.stringMatching(new RegExp(`^ ${C.replace(/\./g, "\\.")} +UNKNOWN +\\S`)),
    );
    await suite.smtp.waitFor("Standby database failed for cluster acctg");

    await efm.lab.startDb("c");
    await efm.lab.waitStreaming("a", ["c"]);
    const resumed = await efm.efm("c", ["resume", "acctg"]);
    expect(resumed.code, resumed.stdout + resumed.stderr).toBe(0);
    await efm.waitTypes("a", { a: "Master", b: "Standby", c: "Standby" });
    const lsn = await efm.lab.write("a", 1);
    await efm.lab.waitReplayed("c", lsn);
    await efm.waitStatus("b", "a healthy cluster again", (s, code) => code === 0 && s.nodes[C]?.db === "UP");
  });
});

describe("guards of a running agent", () => {
  it("refuses a second agent for the same cluster on the same host", async () => {
    const second = efm.spawnAgent("a");
    const { code } = await second.exited;
    expect(code).not.toBe(0);
    const out = readFileSync(second.outFile, "utf8");
    expect(out).toMatch(/another agent \(pid \d+\) already runs this cluster on this host/);
    // The first agent is unharmed: it still holds the lock and its token still works.
    expect(efm.agents.get("a")?.running).toBe(true);
    expect(readFileSync(`${efm.agentDir("a")}/acctg.lock`, "utf8").trim()).toBe(
      String(efm.agents.get("a")?.pid),
    );
    const node = await efm.efm("a", ["node-status-json", "acctg"]);
    expect(node.code, node.stdout).toBe(0);
    expect(JSON.parse(node.stdout)).toMatchObject({ type: "Master", healthy: true });
    await efm.waitTypes("b", { a: "Master" });
  });

  it("refuses admin commands without the token", async () => {
    const empty = `${efm.lab.runDir}/no-token`;
    mkdirSync(empty, { recursive: true });
    const r = await efm.efm("a", ["add-node", "acctg", "127.0.5.99"], { EFM_RUN_DIR: empty });
    expect(r.code).not.toBe(0);
    // No token where efm looked (issue 14): it says so and names the path, not a permission problem.
    expect(r.stdout + r.stderr).toContain(`There is no admin token at ${empty}/acctg.token`);

    const port = efm.files.a!.adminPort;
    const none = await adminRaw(port, JSON.stringify({ command: "add-node", address: "127.0.5.99" }));
    expect(none.ok).toBe(false);
    const wrong = await adminRaw(port, JSON.stringify({ command: "stop-cluster", token: "0".repeat(64) }));
    expect(wrong).toMatchObject({ ok: false, error: { code: "UNAUTHORIZED" } });
    const garbage = await adminRaw(port, "{not json");
    expect(garbage).toMatchObject({ ok: false, error: { code: "BAD_REQUEST" } });

    // Nothing changed and every agent still runs.
    const s = await efm.status("b");
    expect(s.json?.allowednodes).not.toContain("127.0.5.99");
    for (const h of ["a", "b", "c"]) expect(efm.agents.get(h)?.running).toBe(true);
  });
});

describe("the lock file (guide 7)", () => {
  it("warns when the lock file of a running agent is removed", async () => {
    const mark = suite.smtp.mark();
    rmSync(`${efm.agentDir("b")}/acctg.lock`);
    await suite.smtp.waitFor("Lock file for cluster acctg has been removed", 30_000, mark);
    expect(efm.agents.get("b")?.running).toBe(true);
  });
});

describe("auto.failover=false (guide 8.1)", () => {
  it("does not promote when the master database dies; asks for a manual failover", async () => {
    await efm.lab.killDb("a");
    await suite.smtp.waitFor("Potential manual failover required on cluster acctg.", 90_000);
    // Give a wrongly-triggered promotion every chance to show (several detection rounds).
    await sleep(8000);
    expect(await efm.lab.inRecovery("b")).toBe(true);
    expect(await efm.lab.inRecovery("c")).toBe(true);
    const s = await efm.status("b");
    const types = Object.values(s.json?.nodes ?? {}).map((n) => n.type);
    expect(types).not.toContain("Promoting");
    expect(s.json?.nodes[B]?.type).toBe("Standby");
    expect(s.json?.nodes[C]?.type).toBe("Standby");
    expect(suite.smtp.subjects().some((x) => x.startsWith("Failover has completed"))).toBe(false);
  });
});
