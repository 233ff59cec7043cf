import { execFileSync } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { threadId as mainThread } from "node:worker_threads";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { isReachable, pingArgv, pingWithin, runPing } from "./ping.ts";

// Real iputils ping. Reserved for this file: 127.0.38.201-203 and namespaces ee38pa/ee38pb on
// 10.201.38.0/24. ee38pa holds 10.201.38.1 on a veth whose peer, in ee38pb, is up but has no
// address: 10.201.38.2 is on the link and nobody answers for it.
const NS = "ee38pa";
const PEER_NS = "ee38pb";

const sh = (...argv: string[]) => execFileSync(argv[0]!, argv.slice(1), { encoding: "utf8" });

function cleanup() {
  for (const ns of [NS, PEER_NS]) {
    try {
      execFileSync("ip", ["netns", "del", ns], { stdio: "ignore" });
    } catch {
      // not there
    }
  }
}

beforeAll(() => {
  cleanup();
  sh("ip", "netns", "add", NS);
  sh("ip", "netns", "add", PEER_NS);
  sh("ip", "-n", NS, "link", "add", "ee38a", "type", "veth", "peer", "name", "ee38b", "netns", PEER_NS);
  sh("ip", "-n", NS, "addr", "add", "10.201.38.1/24", "dev", "ee38a");
  sh("ip", "-n", NS, "link", "set", "ee38a", "up");
  sh("ip", "-n", NS, "link", "set", "lo", "up");
  sh("ip", "-n", PEER_NS, "link", "set", "ee38b", "up");
});

afterAll(cleanup);

/** Pids of running ping processes (not zombies) whose command line names `address`. */
function pingsTo(address: string): number[] {
  const found: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const argv = readFileSync(`/proc/${entry}/cmdline`, "utf8").split("\0");
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      if (argv.some((a) => a.endsWith("ping")) && argv.includes(address) && !/\) [ZX] /.test(stat)) {
        found.push(Number(entry));
      }
    } catch {
      // gone meanwhile
    }
  }
  return found;
}

/** Returns once no ping to `address` runs; the test's timeout is what fails it otherwise. */
async function untilStopped(address: string): Promise<void> {
  while (pingsTo(address).length > 0) await new Promise((r) => setTimeout(r, 20));
}

// Each test's timeout (20 s) is far below the commands' own length (-c 1000 -w 600) and the
// bound (600 s): only an answer at the first reply, and a ping stopped after it, can pass.
describe("pingServerCommand with a real ping", () => {
  it("answers at the first reply from 127.0.38.201 and stops the ping", { timeout: 20_000 }, async () => {
    expect(await pingWithin("127.0.38.201", "/bin/ping -q -c 1000 -w 600", 600_000)).toBe(true);
    await untilStopped("127.0.38.201");
  });

  it("the same for the VIP check, inside a network namespace", { timeout: 20_000 }, async () => {
    const reachable = await isReachable("10.201.38.1", "/bin/ping -q -c 1000 -w 600", {
      netns: NS,
      timeoutMs: 600_000,
    });
    expect(reachable).toBe(true);
    await untilStopped("10.201.38.1");
  });

  it("an address nobody answers is not reachable (the guide's default command, ended on its own)", async () => {
    // ARP for 10.201.38.2 gets no answer: after ~3 s ping prints "Destination Host Unreachable"
    // lines (which are no reply), and ends with exit code 1 once its three probes failed.
    expect(await isReachable("10.201.38.2", "/bin/ping -q -c3 -w5", { netns: NS, timeoutMs: 60_000 })).toBe(
      false,
    );
    expect(await pingWithin("127.0.38.202", "/bin/ping -q -c3 -w5", 60_000)).toBe(true);
  });

  it("an address nobody answers, interrupted at the bound, is not reachable and the ping is stopped", async () => {
    expect(
      await isReachable("10.201.38.2", "/bin/ping -q -c 1000 -w 600", { netns: NS, timeoutMs: 1_000 }),
    ).toBe(false);
    await untilStopped("10.201.38.2");
  });
});

describe("real pings start from the worker thread", () => {
  it("20 at once, each answered at its first reply, none forked by this thread", {
    timeout: 20_000,
  }, async () => {
    const argv = pingArgv("127.0.38.203", "/bin/ping -c 1000 -w 600");
    const outcomes = await Promise.all(
      Array.from({ length: 20 }, () => runPing(argv, "127.0.38.203", 600_000)),
    );
    expect(outcomes.every((o) => o.reachable)).toBe(true);
    expect(outcomes.some((o) => o.threadId === mainThread || o.threadId === undefined)).toBe(false);
    await untilStopped("127.0.38.203");
  });
});

describe("from dist/, as bin/efm-agent loads it (needs `pnpm build`)", () => {
  // Under vitest the worker's module text is loaded by a test runner; a plain node process,
  // with or without flags the worker inherits (`--input-type=module`), must get the worker too.
  // An async function so that the same text runs as CommonJS (plain -e) and as a module.
  const probe = `(async () => {
    const { threadId } = await import("node:worker_threads");
    const { runPing } = await import(${JSON.stringify(new URL("../dist/ping.js", import.meta.url).href)});
    const o = await runPing(["/bin/ping", "-c", "1000", "-w", "600", "127.0.38.203"], "127.0.38.203", 600000);
    console.log(JSON.stringify({ reachable: o.reachable, worker: o.threadId !== undefined && o.threadId !== threadId }));
  })();`;
  for (const flags of [[], ["--input-type=module"]]) {
    it(`node ${[...flags, "-e"].join(" ")}: the ping is forked by the worker`, { timeout: 20_000 }, () => {
      const out = execFileSync(process.execPath, [...flags, "-e", probe], {
        encoding: "utf8",
      });
      expect(JSON.parse(out)).toEqual({ reachable: true, worker: true });
    });
  }
});
