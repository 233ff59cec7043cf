import { execFileSync, spawnSync } from "node:child_process";
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { isReachable } from "./ping.ts";
import { assign, listAddresses, release } from "./vip.ts";

// efm-address as sudo runs it: nothing but a cluster name and a verb; the address, interface
// and netmask come from the properties file. Two namespaces joined by a veth pair, private to
// this file: ee30a holds the VIP, ee30b checks it answers.
const A = "ee30a";
const B = "ee30b";
const A_IP = "10.201.30.1";
const B_IP = "10.201.30.2";
const VIP = "10.201.30.100";
const PING = "/bin/ping -q -c1 -w2";
const pkg = fileURLToPath(new URL("..", import.meta.url));
const program = [process.execPath, join(pkg, "dist", "address-cli.js")];

const sh = (...argv: string[]) => execFileSync(argv[0]!, argv.slice(1), { encoding: "utf8" });
let configDir: string;

function properties(vip: string, iface: string, netmask: string): string {
  return `${[
    "db.user=efm",
    "db.password.encrypted=0123456789abcdef",
    "db.port=5432",
    "db.database=postgres",
    `bind.address=${A_IP}:7800`,
    "admin.port=7809",
    "is.witness=false",
    "user.email=dba@example.com",
    "db.service.owner=postgres",
    "db.recovery.conf.dir=/var/lib/postgresql/15/main",
    "db.bin=/usr/lib/postgresql/15/bin",
    `virtualIp=${vip}`,
    `virtualIp.interface=${iface}`,
    `virtualIp.netmask=${netmask}`,
  ].join("\n")}\n`;
}

/** Runs efm-address inside namespace A with `argv`, reading `configDir`. */
function efmAddress(...argv: string[]): { code: number | null; stderr: string } {
  const r = spawnSync("ip", ["netns", "exec", A, ...program, ...argv], {
    encoding: "utf8",
    env: { PATH: process.env.PATH, EFM_CONFIG_DIR: configDir },
  });
  return { code: r.status, stderr: r.stderr };
}

/** The IPv4 addresses on A's eth0 (the kernel adds an IPv6 link-local one by itself). */
const held = async () =>
  (await listAddresses({ netns: A }))
    .filter((a) => a.device === "eth0" && a.family === "inet")
    .map((a) => `${a.address}/${a.prefix}`);

function cleanup() {
  for (const ns of [A, B]) {
    try {
      execFileSync("ip", ["netns", "del", ns], { stdio: "ignore" });
    } catch {
      // not there
    }
  }
}

beforeAll(() => {
  cleanup();
  sh("ip", "netns", "add", A);
  sh("ip", "netns", "add", B);
  sh("ip", "-n", A, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0", "netns", B);
  for (const [ns, ip] of [
    [A, A_IP],
    [B, B_IP],
  ] as const) {
    sh("ip", "-n", ns, "addr", "add", `${ip}/24`, "dev", "eth0");
    sh("ip", "-n", ns, "link", "set", "eth0", "up");
    sh("ip", "-n", ns, "link", "set", "lo", "up");
  }
  configDir = mkdtempSync(join(tmpdir(), "efm-ee30-"));
  chmodSync(configDir, 0o755);
  writeFileSync(join(configDir, "acctg.properties"), properties(VIP, "eth0", "255.255.255.0"), {
    mode: 0o640,
  });
  // The program is tested as sudo would run it, so build it and the parser it loads.
  sh("npx", "tsc", "-p", join(pkg, "..", "properties-parser", "tsconfig.build.json"));
  sh("npx", "tsc", "-p", join(pkg, "tsconfig.build.json"));
}, 180_000);

afterAll(() => {
  cleanup();
  rmSync(configDir, { recursive: true, force: true });
});

describe("efm-address takes the virtual IP from the properties file", () => {
  it("assigns and releases the address the file names, and nothing else", async () => {
    expect(await held()).toEqual([`${A_IP}/24`]);
    expect(await isReachable(VIP, PING, { netns: B })).toBe(false);

    expect(efmAddress("acctg", "assign")).toEqual({ code: 0, stderr: expect.any(String) });
    const onA = (await listAddresses({ netns: A })).find((a) => a.address === VIP);
    expect(onA).toEqual({ device: "eth0", address: VIP, prefix: 24, family: "inet", label: "eth0:0" });
    expect(await isReachable(VIP, PING, { netns: B })).toBe(true);

    // Arguments naming the host's own address are refused before anything runs.
    const refused = efmAddress("acctg", "release", "eth0", A_IP);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain("USAGE: release takes no further arguments");
    expect(await held()).toEqual([`${A_IP}/24`, `${VIP}/24`]);

    expect(efmAddress("acctg", "release").code).toBe(0);
    expect(await held()).toEqual([`${A_IP}/24`]);
    expect(await isReachable(VIP, PING, { netns: B })).toBe(false);
    // A release of an address not held is not an error: it must be safe to repeat.
    expect(efmAddress("acctg", "release").code).toBe(0);
  });

  it("goes through the program for the agent, which cannot choose another address", async () => {
    const helper = { cluster: "acctg", configDir, command: program };
    const r = await assign("eth0", VIP, "24", { netns: A, helper, arpCount: 0 });
    expect(r).toMatchObject({ changed: true, device: "eth0", label: "eth0:0", prefix: 24 });
    expect(await isReachable(VIP, PING, { netns: B })).toBe(true);
    expect(await release("eth0", VIP, { netns: A, helper })).toBe(true);
    expect(await held()).toEqual([`${A_IP}/24`]);

    // An agent asking for another address gets the file's, and an error saying so.
    await expect(assign("eth0", "10.201.30.101", "24", { netns: A, helper })).rejects.toMatchObject({
      code: "COMMAND_FAILED",
      message: expect.stringContaining("10.201.30.101 is not on eth0"),
    });
    expect(await held()).toEqual([`${A_IP}/24`, `${VIP}/24`]);
    expect(efmAddress("acctg", "release").code).toBe(0);
  });

  it("refuses a properties file others could write, naming it, and changes nothing", async () => {
    const file = join(configDir, "acctg.properties");
    chmodSync(file, 0o666);
    try {
      const r = efmAddress("acctg", "assign");
      expect(r.code).toBe(2);
      expect(r.stderr).toBe(
        `efm-address: PROPERTIES_UNSAFE: the properties file ${file} is writable by others (mode 0666): refusing to take facts from it\n`,
      );
      expect(await held()).toEqual([`${A_IP}/24`]);
    } finally {
      chmodSync(file, 0o640);
    }
  });
});
