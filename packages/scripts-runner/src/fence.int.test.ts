import { execFileSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { createConnection, createServer, type Server } from "node:net";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { type Cluster, createCluster, downCluster, type EfmHostFiles } from "@efm/lab";
import { encrypt } from "@efm/password-crypto";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { isScriptsRunnerError } from "./errors.ts";
import { configValue } from "./pg-config-file.ts";
import { fence, type HelperOptions, promote } from "./privileged.ts";

// Reserved for issue 13's fencing work: 127.0.21.x, port 15421, run folder /tmp/efm-lab-it-fence.
// (test-e2e/db-hang.test.ts uses the same range; heavy suites never run at the same time.)
const runDir = "/tmp/efm-lab-it-fence";
const port = 15421;
const CLUSTER = "fence";
const pkg = fileURLToPath(new URL("..", import.meta.url));

let lab: Cluster;
let files: Record<string, EfmHostFiles>;
const dataDir = (host: string) => lab.host(host).dataDir!;
const address = (host: string) => lab.host(host).address;
/**
 * What the agent hands the helper: the cluster and the folder of its properties; the helper
 * reads its connection, db.port, db.user and the password file's place from them.
 */
const agentOpts = (host: string): HelperOptions => ({ cluster: CLUSTER, configDir: files[host]!.dir });

/** What a TCP connect to the host's database finds, asked independently of the helper. */
function connect(host: string): Promise<"refused" | "open" | string> {
  return new Promise((resolve) => {
    const s = createConnection({ host: address(host), port });
    s.setTimeout(2_000, () => {
      s.destroy();
      resolve("timeout");
    });
    s.once("connect", () => {
      s.destroy();
      resolve("open");
    });
    s.once("error", (e: NodeJS.ErrnoException) =>
      resolve(e.code === "ECONNREFUSED" ? "refused" : String(e.code)),
    );
  });
}

/** Live (not zombie) processes among `pids`. */
function living(pids: number[]): number[] {
  return pids.filter((pid) => {
    try {
      return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, "utf8"));
    } catch {
      return false;
    }
  });
}

/** The postmaster and every process it forked, read from /proc. */
function serverTree(host: string): number[] {
  const pm = lab.postmasterPid(host);
  if (pm === null) throw new Error(`${host}: no postmaster`);
  const children = readdirSync("/proc")
    .filter((n) => /^\d+$/.test(n))
    .filter((n) => {
      try {
        const stat = readFileSync(`/proc/${n}/stat`, "utf8");
        return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]) === pm;
      } catch {
        return false;
      }
    })
    .map(Number);
  return [pm, ...children];
}

/** A fenced master made a writable master again for the next story (test setup only). */
async function asMasterAgain(host: string): Promise<void> {
  rmSync(join(dataDir(host), "standby.signal"), { force: true });
  await lab.startDb(host);
  expect(await lab.inRecovery(host)).toBe(false);
}

beforeAll(async () => {
  // The helper is a separate program (what sudo runs); test the compiled one.
  execFileSync("npx", ["tsc", "-p", `${pkg}/tsconfig.build.json`], { stdio: "inherit" });
  lab = await createCluster({
    name: "it-fence",
    runDir,
    port,
    addressBase: "127.0.21",
    hosts: [
      { name: "a", role: "master" },
      { name: "b", role: "standby" },
    ],
    hbaLines: ["host replication efm 0.0.0.0/0 scram-sha-256"],
  });
  await lab.psql("a", "ALTER ROLE efm REPLICATION");
  files = lab.writeEfmFiles(CLUSTER, {
    passwordEncrypted: encrypt(lab.efmPassword, CLUSTER),
    properties: { "user.email": "dba@example.com" },
  });
  await lab.waitReplayed("b", await lab.lsn("a"));
}, 180_000);

afterAll(async () => {
  await downCluster(runDir);
});

describe("fencing stops the server and confirms it down (issue 13)", () => {
  it("fences a running master: stopped immediately, port refused, recovery settings with no address", async () => {
    await lab.write("a", 3);
    const r = await fence(agentOpts("a"), null, { timeoutSeconds: 10 });
    expect(r.wasRunning).toBe(true);
    expect(r.actions).toContain("pg_ctl stop -m immediate");
    expect(r.actions).toContain(`connection to ${address("a")}:${port} refused: the database is down`);
    // Down, asked without the helper: no postmaster, the port refused.
    expect(lab.postmasterPid("a")).toBeNull();
    expect(await connect("a")).toBe("refused");
    expect(existsSync(join(dataDir("a"), "standby.signal"))).toBe(true);
    const auto = readFileSync(join(dataDir("a"), "postgresql.auto.conf"), "utf8");
    expect(configValue(auto, "auto", "primary_conninfo")).toBe("");
    await asMasterAgain("a");
  });

  it("fences a hung master (postmaster and backends SIGSTOP'd): killed, and nothing takes a write after SIGCONT", async () => {
    // A session opened before the hang, inside a transaction with a row not yet committed.
    const early = new pg.Client({ ...lab.efmConnection("a"), password: lab.efmPassword });
    early.on("error", () => {});
    await early.connect();
    await early.query("CREATE TABLE IF NOT EXISTS fence_probe (n int)");
    await early.query("BEGIN");
    await early.query("INSERT INTO fence_probe VALUES (1)");
    const tree = serverTree("a");
    expect(tree.length).toBeGreaterThan(3);
    lab.hangDb("a");

    const r = await fence(agentOpts("a"), null, { timeoutSeconds: 5 });
    expect(r.wasRunning).toBe(true);
    expect(r.actions.some((a) => a.startsWith("SIGKILL to "))).toBe(true);
    expect(living(tree)).toEqual([]);
    expect(await connect("a")).toBe("refused");

    // Waking what was stopped changes nothing: every process of that server is gone.
    for (const pid of tree) {
      try {
        process.kill(pid, "SIGCONT");
      } catch {
        // gone, as it should be
      }
    }
    await expect(early.query("COMMIT")).rejects.toThrow();
    await early.end().catch(() => {});
    expect(await connect("a")).toBe("refused");
    // A new connection is refused too, so no write can land there.
    const late = new pg.Client({
      ...lab.efmConnection("a"),
      password: lab.efmPassword,
      connectionTimeoutMillis: 2_000,
    });
    late.on("error", () => {});
    await expect(late.connect()).rejects.toThrow(/ECONNREFUSED/);
  });

  it("rejects, saying why, when the port still answers after the server is gone", async () => {
    // Something else holds the database's address:port: the fence cannot call it closed.
    const squatter: Server = createServer((s) => s.destroy());
    await new Promise<void>((resolve, reject) => {
      squatter.once("error", reject);
      squatter.listen(port, address("a"), resolve);
    });
    try {
      await expect(fence(agentOpts("a"), null, { timeoutSeconds: 1 })).rejects.toSatisfy(
        (e) =>
          isScriptsRunnerError(e, "CONFIRM_FAILED") &&
          (e as Error).message.includes(`${address("a")}:${port} still accepts connections`),
      );
    } finally {
      await new Promise((r) => squatter.close(r));
    }
    // With the port free again the same fence is confirmed.
    const r = await fence(agentOpts("a"), null, { timeoutSeconds: 5 });
    expect(r.wasRunning).toBe(false);
    await asMasterAgain("a");
  });

  it("a switchover stops fast and starts the old master again in recovery, following the new one", async () => {
    const lsn = await lab.write("a", 5);
    await lab.waitReplayed("b", lsn);
    const r = await fence(agentOpts("a"), address("b"), {
      timeoutSeconds: 30,
      stop: "fast",
      after: "standby",
    });
    expect(r.actions).toContain("pg_ctl stop -m fast");
    expect(r.actions).not.toContain("pg_ctl stop -m immediate");
    expect(r.inRecovery).toBe(true);
    expect(await lab.inRecovery("a")).toBe(true);
    // The candidate promotes after the fence, as in 4.1.4; the old master streams its writes.
    await promote(agentOpts("b"), { timeoutSeconds: 60 });
    const after = await lab.write("b", 3);
    await lab.waitReplayed("a", after, 60_000);
    expect(await lab.count("a")).toBe(await lab.count("b"));
  });
});
