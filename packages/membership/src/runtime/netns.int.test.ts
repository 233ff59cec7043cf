import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { deriveTiming } from "../core/timing.ts";

// Namespace lab (root only): namespaces emb1-3 on bridge embbr3, subnet 10.201.3.0/24, port 7800.
// Names and subnet are reserved for this file.
const PKG = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const N = [1, 2, 3];
const addrs = N.map((i) => `10.201.3.${i}:7800`);
const TIMEOUT = 300;
const MAX_TRIES = 3;
const timing = deriveTiming(TIMEOUT, MAX_TRIES);
const isRoot = process.getuid?.() === 0;

const sh = (args: string[], ignore = false): void => {
  try {
    execFileSync(args[0]!, args.slice(1), { stdio: "pipe" });
  } catch (e) {
    if (!ignore) throw e;
  }
};
const inNs = (i: number, args: string[], ignore = false): void =>
  sh(["ip", "netns", "exec", `emb${i}`, ...args], ignore);

function teardown(): void {
  for (const i of N) sh(["ip", "netns", "del", `emb${i}`], true);
  sh(["ip", "link", "del", "embbr3"], true);
}

interface Child {
  proc: ChildProcess;
  events: Record<string, unknown>[];
}
const children: Child[] = [];

function startIn(i: number): Child {
  const addr = addrs[i - 1]!;
  const opts = {
    bindAddress: addr,
    clusterName: "embns",
    dbPassword: "ns-password",
    timeout: TIMEOUT,
    maxTries: MAX_TRIES,
    seeds: addrs.filter((a) => a !== addr),
    initialAllowed: addrs.map((a) => a.split(":")[0]),
    // The first address plays the primary's agent: the one that may found the cluster alone.
    mayFoundAlone: addr === addrs[0],
  };
  const proc = spawn(
    "ip",
    [
      "netns",
      "exec",
      `emb${i}`,
      process.execPath,
      join(PKG, "test", "member-child.mjs"),
      JSON.stringify(opts),
    ],
    { stdio: ["pipe", "pipe", "inherit"] },
  );
  const c: Child = { proc, events: [] };
  let buf = "";
  proc.stdout!.on("data", (d: Buffer) => {
    buf += d.toString();
    for (let k = buf.indexOf("\n"); k >= 0; k = buf.indexOf("\n")) {
      const line = buf.slice(0, k);
      buf = buf.slice(k + 1);
      try {
        c.events.push(JSON.parse(line) as Record<string, unknown>);
      } catch {
        // not an event line
      }
    }
  });
  children.push(c);
  return c;
}

type View = { members: string[]; quorate: boolean; epoch: number; creator: string };
const lastView = (c: Child): View | null =>
  (c.events.filter((e) => e.type === "viewInstalled").at(-1) as { view: View } | undefined)?.view ?? null;

async function until(pred: () => boolean, limitMs: number, what: string): Promise<void> {
  const end = Date.now() + limitMs;
  while (!pred()) {
    if (Date.now() > end) throw new Error(`not reached: ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe.skipIf(!isRoot)("membership across network namespaces", () => {
  beforeAll(() => {
    teardown();
    execFileSync(
      process.execPath,
      [join(PKG, "..", "..", "node_modules", "typescript", "bin", "tsc"), "-p", "tsconfig.build.json"],
      {
        cwd: PKG,
      },
    );
    sh(["ip", "link", "add", "embbr3", "type", "bridge"]);
    sh(["ip", "link", "set", "embbr3", "up"]);
    for (const i of N) {
      sh(["ip", "netns", "add", `emb${i}`]);
      sh(["ip", "link", "add", `embv${i}`, "type", "veth", "peer", "name", `embp${i}`]);
      sh(["ip", "link", "set", `embp${i}`, "netns", `emb${i}`]);
      sh(["ip", "link", "set", `embv${i}`, "master", "embbr3", "up"]);
      inNs(i, ["ip", "addr", "add", `10.201.3.${i}/24`, "dev", `embp${i}`]);
      inNs(i, ["ip", "link", "set", `embp${i}`, "up"]);
      inNs(i, ["ip", "link", "set", "lo", "up"]);
    }
  }, 60_000);

  afterAll(() => {
    for (const c of children) if (c.proc.exitCode === null) c.proc.kill("SIGKILL");
    teardown();
  });

  it("partition 1 of 3: the minority loses quorum, the majority keeps it, one view after heal", async () => {
    const cs = N.map((i) => startIn(i));
    await until(
      () => cs.every((c) => lastView(c)?.members.length === 3 && lastView(c)?.quorate === true),
      20_000,
      "one view of 3",
    );

    // Cut node 3 off from the subnet in both directions.
    inNs(3, ["iptables", "-A", "INPUT", "-s", "10.201.3.0/24", "-j", "DROP"]);
    inNs(3, ["iptables", "-A", "OUTPUT", "-d", "10.201.3.0/24", "-j", "DROP"]);
    const limit = 4 * (timing.suspectAfter + 3 * TIMEOUT) + 5_000;
    await until(
      () => cs.slice(0, 2).every((c) => lastView(c)?.members.length === 2 && lastView(c)?.quorate === true),
      limit,
      "majority view of 2",
    );
    await until(() => lastView(cs[2]!)?.quorate === false, limit, "minority without quorum");
    expect(cs[2]!.events.some((e) => e.type === "quorumLost")).toBe(true);
    expect(cs[0]!.events.some((e) => e.type === "memberRemoved" && e.member === addrs[2])).toBe(true);

    inNs(3, ["iptables", "-F"]);
    await until(
      () => {
        const vs = cs.map(lastView);
        return (
          vs.every((v) => v?.members.length === 3 && v.quorate) &&
          new Set(vs.map((v) => `${v!.epoch}/${v!.creator}`)).size === 1
        );
      },
      limit,
      "one view of 3 after heal",
    );
    const merged = cs[2]!.events.filter((e) => e.type === "viewInstalled").at(-1) as {
      view: { subgroups: string[][] };
    };
    expect(merged.view.subgroups.length).toBe(2);
  }, 120_000);
});
