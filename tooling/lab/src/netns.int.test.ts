import * as fs from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Cluster, createCluster, downCluster } from "./index.ts";

// Reserved for this file: prefix el1, subnet 10.201.1.0/25 (the bench takes .128/25), port 15401, /tmp/efm-lab-it-ns.
const runDir = "/tmp/efm-lab-it-ns";
const isRoot = process.getuid?.() === 0;

async function links(): Promise<string> {
  const { execFileSync } = await import("node:child_process");
  return execFileSync("ip", ["-o", "link", "show"], { encoding: "utf8" });
}

function namespaces(): string[] {
  try {
    return fs.readdirSync("/run/netns");
  } catch {
    return [];
  }
}

describe.skipIf(!isRoot)("netns cluster", () => {
  let c: Cluster;
  beforeAll(async () => {
    c = await createCluster({
      name: "it-ns",
      mode: "netns",
      runDir,
      port: 15401,
      prefix: "el1",
      subnet: "10.201.1.0/25",
      hosts: [
        { name: "a", role: "master" },
        { name: "b", role: "standby" },
        { name: "w", role: "witness" },
      ],
    });
  });
  afterAll(async () => {
    await downCluster(runDir);
  });

  const pgReady = async (from: string, to: string): Promise<boolean> => {
    const r = await c.exec(from, [
      `${c.host("a").pgBin}/pg_isready`,
      "-h",
      c.host(to).address,
      "-p",
      "15401",
      "-t",
      "2",
    ]);
    return r.code === 0;
  };

  it("puts every host in its own namespace on the bridge, with replication over it", async () => {
    expect(c.hosts.map((h) => h.address)).toEqual(["10.201.1.11", "10.201.1.12", "10.201.1.13"]);
    expect(namespaces()).toEqual(expect.arrayContaining(["el1-a", "el1-b", "el1-w"]));
    const rows = await c.psql(
      "a",
      "SELECT application_name, host(client_addr) AS addr FROM pg_stat_replication",
    );
    expect(rows).toEqual([{ application_name: "b", addr: "10.201.1.12" }]);
    const lsn = await c.write("a", 2);
    await c.waitReplayed("b", lsn);
    expect(await c.count("b")).toBe(await c.count("a"));
    // Each namespace sees only its own address: the database listens where the host lives.
    const r = await c.exec("b", ["ip", "-o", "-4", "addr", "show", "dev", "eth0"]);
    expect(r.stdout).toContain("10.201.1.12/25");
    expect(await pgReady("w", "a")).toBe(true);
    // Only lo and the veth end inside; the other end hangs on the bridge; no default route.
    const ifs = (await c.exec("a", ["ip", "-o", "link", "show"])).stdout;
    expect(
      ifs
        .split("\n")
        .filter(Boolean)
        .map((l) => l.split(":")[1]?.trim().split("@")[0]),
    ).toEqual(["lo", "eth0"]);
    expect(await links()).toMatch(/el1h0@[^:]*:.*master el1br/);
    expect((await c.exec("a", ["ip", "route"])).stdout).not.toContain("default");
  });

  it("partition blocks both directions and heal restores", async () => {
    expect(await c.reachable("a", "10.201.1.13")).toBe(true);
    await c.partition("a", "w");
    expect(await c.reachable("a", "10.201.1.13")).toBe(false);
    expect(await c.reachable("w", "10.201.1.11")).toBe(false);
    expect(await c.reachable("b", "10.201.1.13")).toBe(true);
    await c.heal();
    expect(await c.reachable("a", "10.201.1.13")).toBe(true);
    expect(await c.reachable("w", "10.201.1.11")).toBe(true);
  });

  // Send one UDP datagram from `from` to `to` and report whether it arrived.
  const udpArrives = async (from: string, to: string, port: number): Promise<boolean> => {
    const recv = c.spawn(
      to,
      [
        process.execPath,
        "-e",
        `const s=require("dgram").createSocket("udp4");s.on("message",m=>{process.stdout.write(String(m));process.exit(0)});s.bind(${port},()=>process.stdout.write("ready\\n"));setTimeout(()=>process.exit(3),3000);`,
      ],
      { stdio: ["ignore", "pipe", "ignore"] },
    );
    let out = "";
    recv.stdout?.on("data", (d: Buffer) => {
      out += d.toString();
    });
    // Listen for exit now: the receiver may finish while the sender is still running.
    const exited = new Promise<number | null>((r) => recv.on("exit", r));
    let gone = false;
    void exited.then(() => {
      gone = true;
    });
    while (!out.includes("ready") && !gone) await new Promise((r) => setTimeout(r, 20));
    await c.exec(from, [
      process.execPath,
      "-e",
      `const s=require("dgram").createSocket("udp4");s.send("hello",${port},"${c.host(to).address}",()=>s.close());`,
    ]);
    const code = await exited;
    return code === 0 && out.includes("hello");
  };

  it("a one-way cut drops only one direction", async () => {
    expect(await udpArrives("a", "w", 17001)).toBe(true);
    await c.cut("a", "w");
    expect(await udpArrives("a", "w", 17002)).toBe(false);
    expect(await udpArrives("w", "a", 17003)).toBe(true);
    await c.heal();
    expect(await udpArrives("a", "w", 17004)).toBe(true);
  });

  it("isolate cuts a host from everyone", async () => {
    await c.isolate("b");
    expect(await c.reachable("b", "10.201.1.11")).toBe(false);
    expect(await c.reachable("w", "10.201.1.12")).toBe(false);
    expect(await c.reachable("a", "10.201.1.13")).toBe(true);
    await c.heal();
    expect(await c.reachable("w", "10.201.1.12")).toBe(true);
  });

  it("hostDown makes the host's database unreachable from the others; hostUp brings it back", async () => {
    expect(await pgReady("w", "a")).toBe(true);
    await c.hostDown("a");
    expect(await pgReady("w", "a")).toBe(false);
    expect(await pgReady("b", "a")).toBe(false);
    // The database itself is still running: only the network vanished.
    expect(c.isRunning("a")).toBe(true);
    await c.hostUp("a");
    expect(await pgReady("w", "a")).toBe(true);
  });

  it("down removes namespaces, bridge, veths, processes and folder", async () => {
    const pid = c.postmasterPid("a");
    await c.down();
    expect(namespaces().filter((n) => n.startsWith("el1-"))).toEqual([]);
    const l = await links();
    expect(l).not.toMatch(/el1br|el1h\d/);
    expect(fs.existsSync(runDir)).toBe(false);
    expect(
      pid !== null &&
        fs.existsSync(`/proc/${pid}/cmdline`) &&
        fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").length > 0,
    ).toBe(false);
    await c.down();
  });
});
