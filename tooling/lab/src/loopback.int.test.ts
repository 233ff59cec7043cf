import * as fs from "node:fs";
import * as net from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Cluster, createCluster, downCluster, LabError, readState } from "./index.ts";

// Reserved for this file: 127.0.1.x, port 15401, run folder /tmp/efm-lab-it-loop.
const runDir = "/tmp/efm-lab-it-loop";
const port = 15401;

// A killed postmaster may linger as a zombie until init reaps it: that is not a live process.
function liveProcess(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    return !/\) [ZX] /.test(stat);
  } catch {
    return false;
  }
}

function portOpen(host: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host, port });
    s.once("connect", () => {
      s.destroy();
      resolve(true);
    });
    s.once("error", () => resolve(false));
  });
}

describe("loopback cluster", () => {
  let c: Cluster;
  beforeAll(async () => {
    c = await createCluster({
      name: "it-loop",
      runDir,
      port,
      addressBase: "127.0.1",
      hosts: [
        { name: "a", role: "master" },
        { name: "b", role: "standby" },
        { name: "c", role: "standby" },
      ],
    });
  });
  afterAll(async () => {
    await downCluster(runDir);
  });

  it("gives each host its own address, data dir and socket dir on the same port", () => {
    expect(c.hosts.map((h) => h.address)).toEqual(["127.0.1.11", "127.0.1.12", "127.0.1.13"]);
    expect(new Set(c.hosts.map((h) => h.socketDir)).size).toBe(3);
    expect(new Set(c.hosts.map((h) => h.dataDir)).size).toBe(3);
    expect(fs.existsSync(`${c.host("b").socketDir}/.s.PGSQL.${port}`)).toBe(true);
  });

  it("streams to both standbys: a row written on the master is read on both", async () => {
    expect(await c.inRecovery("a")).toBe(false);
    expect(await c.inRecovery("b")).toBe(true);
    expect(await c.inRecovery("c")).toBe(true);
    const rows = await c.psql("a", "SELECT application_name, state FROM pg_stat_replication ORDER BY 1");
    expect(rows).toEqual([
      { application_name: "b", state: "streaming" },
      { application_name: "c", state: "streaming" },
    ]);
    const lsn = await c.write("a", 3);
    await c.waitReplayed("b", lsn);
    await c.waitReplayed("c", lsn);
    const before = await c.count("a");
    expect(before).toBeGreaterThanOrEqual(3);
    expect(await c.count("b")).toBe(before);
    expect(await c.count("c")).toBe(before);
  });

  it("lets the efm user log in over TCP with its password only", async () => {
    const pg = (await import("pg")).default;
    const ok = new pg.Client(c.efmConnection("b"));
    await ok.connect();
    const r = await ok.query("SELECT current_user AS u, pg_is_in_recovery() AS rec");
    await ok.end();
    expect(r.rows[0]).toEqual({ u: "efm", rec: true });
    const bad = new pg.Client({ ...c.efmConnection("a"), password: "wrong" });
    bad.on("error", () => {});
    await expect(bad.connect()).rejects.toThrow(/password authentication failed/);
  });

  it("kills, restarts, hangs and resumes a database", async () => {
    const pid = c.postmasterPid("c");
    expect(pid).not.toBeNull();
    await c.killDb("c");
    expect(c.isRunning("c")).toBe(false);
    expect(await portOpen("127.0.1.13")).toBe(false);
    await c.startDb("c");
    expect(c.postmasterPid("c")).not.toBe(pid);
    await c.waitStreaming("a", ["c"]);
    c.hangDb("c");
    expect(fs.readFileSync(`/proc/${c.postmasterPid("c")}/stat`, "utf8")).toMatch(/\) T /);
    c.resumeDb("c");
    expect(await c.inRecovery("c")).toBe(true);
  });

  it("promotes b and makes a and c follow it", async () => {
    await c.promoteDb("b");
    expect(await c.inRecovery("b")).toBe(false);
    expect(await c.makeStandbyOf("c", "b")).toBe("follow");
    // The old master wrote a shutdown checkpoint at or after b's fork point: rewound or rebuilt.
    expect(["rewind", "rebuild"]).toContain(await c.makeStandbyOf("a", "b"));
    const lsn = await c.write("b", 2);
    await c.waitReplayed("a", lsn);
    await c.waitReplayed("c", lsn);
    expect(await c.count("a")).toBe(await c.count("b"));
    expect(await c.inRecovery("a")).toBe(true);
  });

  it("writes efm.properties and efm.nodes for each host", () => {
    const files = c.writeEfmFiles("acctg", {
      passwordEncrypted: "0123abcd",
      properties: { "local.period": "1" },
      hostProperties: { c: { "auto.failover": "false" } },
    });
    const a = files.a!;
    const text = fs.readFileSync(a.propertiesFile, "utf8");
    expect(a.propertiesFile.endsWith("/a/efm/acctg.properties")).toBe(true);
    expect(text).toContain("db.password.encrypted=0123abcd\n");
    expect(text).toContain(`db.port=${port}\n`);
    expect(text).toContain("bind.address=127.0.1.11:7800\n");
    expect(text).toContain("local.period=1\n");
    expect(text).toContain(`db.data.dir=${c.host("a").dataDir}\n`);
    expect(fs.readFileSync(files.c!.propertiesFile, "utf8")).toContain("auto.failover=false\n");
    expect(fs.readFileSync(a.nodesFile, "utf8")).toBe("127.0.1.12:7800 127.0.1.13:7800\n");
    // Loopback agents share 127.0.0.1, so admin ports must differ.
    expect(new Set(Object.values(files).map((f) => f.adminPort)).size).toBe(3);
  });

  it("refuses bad input with typed errors", async () => {
    expect(() => c.host("zz")).toThrow(LabError);
    await expect(c.partition("a", "b")).rejects.toMatchObject({ code: "NOT_NETNS" });
    expect(() => c.writeEfmFiles("bad name", { passwordEncrypted: "x" })).toThrow(LabError);
    await expect(createCluster({ name: "x", hosts: [] })).rejects.toMatchObject({ code: "INVALID_OPTIONS" });
  });

  it("down removes processes, folder and port, and is safe to run twice", async () => {
    const pids = c.hosts.map((h) => c.postmasterPid(h.name));
    expect(readState(runDir)).not.toBeNull();
    expect(await downCluster(runDir)).toBe(true);
    for (const pid of pids) {
      expect(pid).not.toBeNull();
      expect(liveProcess(pid!)).toBe(false);
    }
    expect(fs.existsSync(runDir)).toBe(false);
    for (const h of c.hosts) expect(await portOpen(h.address)).toBe(false);
    expect(await downCluster(runDir)).toBe(false);
    await c.down();
  });
});

describe("down after a crash", () => {
  const crashDir = "/tmp/efm-lab-it-crash";
  afterAll(async () => {
    await downCluster(crashDir);
  });

  it("cleans up a lab whose creating process was killed half-way", async () => {
    const { execFileSync, spawn } = await import("node:child_process");
    const root = new URL("../../../", import.meta.url).pathname;
    // The CLI runs from dist, as `pnpm lab` does.
    execFileSync("pnpm", ["--filter", "@efm/lab", "build"], { cwd: root, stdio: "ignore" });
    const child = spawn(
      process.execPath,
      [
        `${root}tooling/lab/dist/cli.js`,
        "up",
        "--name",
        "it-crash",
        "--run-dir",
        crashDir,
        "--port",
        "15401",
      ].concat(["--address-base", "127.0.1", "--standbys", "1"]),
      { stdio: "ignore" },
    );
    const exited = new Promise((r) => child.on("exit", r));
    // Kill it as soon as the master serves (its socket exists; initdb's bootstrap backend makes
    // a postmaster.pid too, so that file alone proves nothing): mid-setup, before the standby.
    const pidFile = `${crashDir}/a/data/postmaster.pid`;
    const socket = `${crashDir}/a/sock/.s.PGSQL.15401`;
    for (let i = 0; i < 600 && !fs.existsSync(socket); i++) await new Promise((r) => setTimeout(r, 25));
    expect(fs.existsSync(socket)).toBe(true);
    child.kill("SIGKILL");
    await exited;
    const pid = Number(fs.readFileSync(pidFile, "utf8").split("\n")[0]);
    expect(liveProcess(pid)).toBe(true);
    expect(await downCluster(crashDir)).toBe(true);
    expect(liveProcess(pid)).toBe(false);
    expect(fs.existsSync(crashDir)).toBe(false);
    expect(await portOpen("127.0.1.11")).toBe(false);
  });
});

describe.skipIf(process.getuid?.() !== 0)("as an ordinary user", () => {
  const dir = "/tmp/efm-lab-it-nonroot";
  afterAll(async () => {
    await downCluster(dir);
  });

  it("runs PostgreSQL as that user, and down works for it", async () => {
    const { execFileSync } = await import("node:child_process");
    const root = new URL("../../../", import.meta.url).pathname;
    execFileSync("pnpm", ["--filter", "@efm/lab", "build"], { cwd: root, stdio: "ignore" });
    const cli = (...args: string[]) =>
      execFileSync(
        "runuser",
        ["-u", "nobody", "--", process.execPath, `${root}tooling/lab/dist/cli.js`, ...args],
        {
          cwd: "/tmp",
          encoding: "utf8",
          stdio: ["ignore", "pipe", "pipe"],
        },
      );
    const out = cli(
      "up",
      "--name",
      "it-nonroot",
      "--run-dir",
      dir,
      "--port",
      "15401",
      "--address-base",
      "127.0.1",
      "--standbys",
      "1",
    );
    expect(out).toMatch(/b\s+standby\s+127\.0\.1\.12\s+\d+\s+standby/);
    const pid = Number(fs.readFileSync(`${dir}/a/data/postmaster.pid`, "utf8").split("\n")[0]);
    const uid = /^Uid:\s+(\d+)/m.exec(fs.readFileSync(`/proc/${pid}/status`, "utf8"))?.[1];
    expect(uid).toBe(String(fs.statSync(dir).uid));
    expect(uid).not.toBe("0");
    expect(cli("down", "--name", "it-nonroot", "--run-dir", dir)).toContain("removed");
    expect(liveProcess(pid)).toBe(false);
    expect(fs.existsSync(dir)).toBe(false);
  });
});
