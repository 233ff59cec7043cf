import { execFileSync } from "node:child_process";
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { isReachable } from "./ping.ts";
import { assign, isHeldLocally, listAddresses, release } from "./vip.ts";

// Three namespaces on one bridge, all private to this file: evpA and evpB are database hosts,
// the bridge's own namespace evpH plays a third host (a client or standby that caches ARP).
const HUB = "evpH";
const HOSTS = { evpA: "10.201.2.1", evpB: "10.201.2.2" } as const;
const BRIDGE = "evpbr201";
const HUB_IP = "10.201.2.254";
const VIP = "10.201.2.100";
const PING = "/bin/ping -q -c1 -w2";
const pkg = fileURLToPath(new URL("..", import.meta.url));

const sh = (...argv: string[]) => execFileSync(argv[0]!, argv.slice(1), { encoding: "utf8" });
const inNs = (ns: string, ...argv: string[]) => sh("ip", "netns", "exec", ns, ...argv);

function cleanup() {
  for (const ns of [HUB, ...Object.keys(HOSTS)]) {
    try {
      execFileSync("ip", ["netns", "del", ns], { stdio: "ignore" });
    } catch {
      // not there
    }
  }
}

function macOf(ns: string): string {
  return JSON.parse(inNs(ns, "ip", "-j", "link", "show", "eth0"))[0].address;
}

beforeAll(() => {
  cleanup();
  sh("ip", "netns", "add", HUB);
  sh("ip", "-n", HUB, "link", "add", BRIDGE, "type", "bridge");
  sh("ip", "-n", HUB, "addr", "add", `${HUB_IP}/24`, "dev", BRIDGE);
  sh("ip", "-n", HUB, "link", "set", BRIDGE, "up");
  for (const [ns, ip] of Object.entries(HOSTS)) {
    sh("ip", "netns", "add", ns);
    sh("ip", "-n", HUB, "link", "add", `${ns}h`, "type", "veth", "peer", "name", "eth0", "netns", ns);
    sh("ip", "-n", HUB, "link", "set", `${ns}h`, "master", BRIDGE, "up");
    sh("ip", "-n", ns, "addr", "add", `${ip}/24`, "dev", "eth0");
    sh("ip", "-n", ns, "link", "set", "eth0", "up");
    sh("ip", "-n", ns, "link", "set", "lo", "up");
  }
  // The CLI is tested as the program sudo would run, so build it.
  sh("npx", "tsc", "-p", `${pkg}/../properties-parser/tsconfig.build.json`);
  sh("npx", "tsc", "-p", `${pkg}/tsconfig.build.json`);
}, 120_000);

afterAll(cleanup);

describe("virtual IP in network namespaces", () => {
  it("moves between hosts: assign on A, reachable from B; released, not; then B can take it", async () => {
    expect(await isReachable(VIP, PING, { netns: "evpB" })).toBe(false);
    const assigned = await assign("eth0:0", VIP, "255.255.255.0", { netns: "evpA", arpCount: 1 });
    expect(assigned).toMatchObject({ changed: true, device: "eth0", label: "eth0:0", prefix: 24 });
    expect(assigned.gratuitousArp).toBe("sent");
    expect(await isHeldLocally(VIP, { netns: "evpA" })).toBe(true);
    expect(await isHeldLocally(VIP, { netns: "evpB" })).toBe(false);
    const onA = (await listAddresses({ netns: "evpA" })).find((a) => a.address === VIP);
    expect(onA).toEqual({ device: "eth0", address: VIP, prefix: 24, family: "inet", label: "eth0:0" });

    expect(await isReachable(VIP, PING, { netns: "evpB" })).toBe(true);
    // The third host now caches A's MAC for the VIP.
    expect(await isReachable(VIP, PING, { netns: HUB })).toBe(true);

    // Assigning again is harmless and changes nothing.
    expect((await assign("eth0:0", VIP, "24", { netns: "evpA", arpCount: 0 })).changed).toBe(false);
    // Under another label too: the address is on the device already, under the label it has.
    expect(await assign("eth0:1", VIP, "24", { netns: "evpA", arpCount: 0 })).toMatchObject({
      changed: false,
      label: "eth0:0",
    });
    // A device that does not exist is an error, not "already assigned".
    await expect(assign("nosuch0:1", VIP, "24", { netns: "evpA", arpCount: 0 })).rejects.toMatchObject({
      code: "COMMAND_FAILED",
    });

    expect(await release("eth0:0", VIP, { netns: "evpA" })).toBe(true);
    expect(await release("eth0:0", VIP, { netns: "evpA" })).toBe(false);
    expect(await isHeldLocally(VIP, { netns: "evpA" })).toBe(false);
    expect(await isReachable(VIP, PING, { netns: "evpB" })).toBe(false);

    // Through the efm-address program, as the unprivileged agent runs it (via sudo -n unless
    // root): it reads the VIP from the properties file; plain interface name, so the first
    // free alias label is chosen.
    const configDir = mkdtempSync(join(tmpdir(), "efm-evp-"));
    chmodSync(configDir, 0o755);
    writeFileSync(
      join(configDir, "evp.properties"),
      [
        "db.user=efm",
        "db.password.encrypted=0123456789abcdef",
        "db.port=5432",
        "db.database=postgres",
        "bind.address=10.201.2.2:7800",
        "admin.port=7809",
        "is.witness=false",
        "user.email=dba@example.com",
        "db.service.owner=postgres",
        "db.recovery.conf.dir=/var/lib/postgresql/15/main",
        "db.bin=/usr/lib/postgresql/15/bin",
        `virtualIp=${VIP}`,
        "virtualIp.interface=eth0",
        "virtualIp.netmask=255.255.255.0",
        "",
      ].join("\n"),
      { mode: 0o640 },
    );
    const command = [process.execPath, `${pkg}/dist/address-cli.js`];
    const viaProgram = { netns: "evpB", helper: { cluster: "evp", configDir, command } };
    const onBResult = await assign("eth0", VIP, "255.255.255.0", viaProgram);
    expect(onBResult).toMatchObject({
      changed: true,
      device: "eth0",
      label: "eth0:0",
      gratuitousArp: "sent",
    });
    const onB = (await listAddresses({ netns: "evpB" })).find((a) => a.address === VIP);
    expect(onB).toMatchObject({ device: "eth0", label: "eth0:0", prefix: 24 });
    expect(await isReachable(VIP, PING, { netns: "evpA" })).toBe(true);
    // The gratuitous ARP moved the third host's cache entry to B without it asking.
    const neigh = JSON.parse(inNs(HUB, "ip", "-j", "neigh", "show", VIP)) as { lladdr?: string }[];
    expect(neigh[0]?.lladdr).toBe(macOf("evpB"));
    expect(await isReachable(VIP, PING, { netns: HUB })).toBe(true);

    expect(await release("eth0", VIP, viaProgram)).toBe(true);
    expect(await isHeldLocally(VIP, { netns: "evpB" })).toBe(false);
    rmSync(configDir, { recursive: true, force: true });
  });

  it("with onAnnounced, returns once the address is assigned and reports the gratuitous ARP after", async () => {
    let report: (o: unknown) => void = () => {};
    const announced = new Promise((resolve) => {
      report = resolve;
    });
    const r = await assign("eth0:0", VIP, "24", { netns: "evpA", arpCount: 2, onAnnounced: report });
    expect(r).toMatchObject({ changed: true, label: "eth0:0", gratuitousArp: "started" });
    expect(await isHeldLocally(VIP, { netns: "evpA" })).toBe(true);
    expect(await announced).toBe("sent");
    expect(await release("eth0:0", VIP, { netns: "evpA" })).toBe(true);
  });

  it("accepts IPv6", async () => {
    const v6 = "fd00:201:2::100";
    const result = await assign("eth0", v6, "64", { netns: "evpA" });
    expect(result).toMatchObject({ changed: true, prefix: 64, gratuitousArp: "skipped" });
    expect(await isHeldLocally("fd00:201:2:0::100", { netns: "evpA" })).toBe(true);
    expect(await release("eth0", v6, { netns: "evpA" })).toBe(true);
    expect(await isHeldLocally(v6, { netns: "evpA" })).toBe(false);
  });

  it("reports a device that does not exist as a failed command", async () => {
    await expect(assign("nosuch0:1", VIP, "24", { netns: "evpA" })).rejects.toMatchObject({
      code: "COMMAND_FAILED",
    });
  });
});
