import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import net from "node:net";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, it } from "vitest";
import { createMember, type Member } from "../packages/membership/src/index.ts";

// Heartbeat jitter of a member while strangers and a peer host flood its port.
// Loopback 127.0.17.10-127.0.17.14 on port 17810 belong to this bench.
const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");
const PKG = join(ROOT, "packages", "membership");
const CLUSTER = "ee17bench";
const PASSWORD = "bench-password";
const TIMEOUT = 500;
const MAX_TRIES = 4;
const TARGET = "127.0.17.10:17810";
const PEER = "127.0.17.11:17810";
const procs: ChildProcess[] = [];
const live: Member[] = [];

afterAll(async () => {
  for (const p of procs) if (p.exitCode === null) p.kill("SIGKILL");
  await Promise.all(live.map((m) => m.stop()));
});

// The attacker runs in its own process so that its work does not share the target's thread.
// From a host the target admits (127.0.17.12) it announces 1 MiB frames and feeds them 1 KiB
// at a time (what cost ~2.9 s of CPU per connection with the old decoder), and sends junk;
// from two strangers (127.0.17.13-14) the same. Each connection is reopened once closed.
const ATTACKER = `
import net from "node:net";
import { randomBytes } from "node:crypto";
const [host, port] = ["127.0.17.10", 17810];
let opened = 0, closed = 0;
const chunk = randomBytes(1024);
function one(from, kind) {
  const s = net.connect({ host, port, localAddress: from });
  s.on("error", () => {});
  s.on("connect", () => {
    opened++;
    if (kind === "junk") { s.write(randomBytes(700)); return; }
    const head = Buffer.alloc(4); head.writeUInt32BE(1024 * 1024 - 1); s.write(head);
    const pump = () => { if (s.destroyed) return; while (s.write(chunk)) if (s.destroyed) return; s.once("drain", pump); };
    pump();
  });
  s.on("close", () => { closed++; if (!stop) setTimeout(() => one(from, kind), 1); });
  s.resume();
}
let stop = false;
for (let i = 0; i < 16; i++) { one("127.0.17.12", i % 2 ? "junk" : "trickle"); one(i % 2 ? "127.0.17.13" : "127.0.17.14", "trickle"); }
process.stdin.on("data", () => { stop = true; process.stdout.write(JSON.stringify({ opened, closed }) + "\\n"); setTimeout(() => process.exit(0), 50); });
`;

/** Intervals between the target's heartbeats while `during` runs. */
async function heartbeatIntervals(ms: number): Promise<number[]> {
  const times: number[] = [];
  const realWrite = net.Socket.prototype.write;
  net.Socket.prototype.write = function (this: net.Socket, data: unknown, ...rest: unknown[]) {
    // Only the target runs in this process: its session frames carrying a heartbeat.
    if (Buffer.isBuffer(data) && data.includes('"b":{"t":"hb"')) times.push(performance.now());
    return (realWrite as (...a: unknown[]) => boolean).call(this, data, ...rest);
  } as typeof net.Socket.prototype.write;
  await new Promise((r) => setTimeout(r, ms));
  net.Socket.prototype.write = realWrite;
  return times.slice(1).map((t, i) => t - times[i]!);
}

const stats = (xs: number[]): string => {
  const s = [...xs].sort((a, b) => a - b);
  const med = s[Math.floor(s.length / 2)] ?? Number.NaN;
  return `min ${s[0]?.toFixed(1)} / median ${med.toFixed(1)} / max ${s.at(-1)?.toFixed(1)} ms over ${s.length} intervals`;
};

describe("membership under attack", () => {
  it("heartbeat jitter of a member whose port is flooded", async () => {
    execFileSync(
      process.execPath,
      [join(ROOT, "node_modules", "typescript", "bin", "tsc"), "-p", "tsconfig.build.json"],
      { cwd: PKG },
    );
    const hosts = ["127.0.17.10", "127.0.17.11", "127.0.17.12"];
    const target = createMember({
      bindAddress: TARGET,
      clusterName: CLUSTER,
      dbPassword: PASSWORD,
      timeout: TIMEOUT,
      maxTries: MAX_TRIES,
      seeds: [PEER],
      initialAllowed: hosts,
      mayFoundAlone: true,
    });
    live.push(target);
    const peerOpts = {
      bindAddress: PEER,
      clusterName: CLUSTER,
      dbPassword: PASSWORD,
      timeout: TIMEOUT,
      maxTries: MAX_TRIES,
      seeds: [TARGET],
      initialAllowed: hosts,
    };
    const peer = spawn(process.execPath, [join(PKG, "test", "member-child.mjs"), JSON.stringify(peerOpts)], {
      stdio: ["pipe", "ignore", "inherit"],
    });
    procs.push(peer);
    let lost = 0;
    let suspected = 0;
    target.on("leaseLost", () => lost++);
    target.on("memberSuspected", () => suspected++);
    await target.start();
    await new Promise<void>((resolve) => {
      const check = (): void => {
        if (target.view()?.members.length === 2) resolve();
      };
      target.on("viewInstalled", check);
      check();
    });
    const base = await heartbeatIntervals(5000);
    const attacker = spawn(process.execPath, ["--input-type=module", "-e", ATTACKER], {
      stdio: ["pipe", "pipe", "inherit"],
    });
    procs.push(attacker);
    const cpu0 = process.cpuUsage();
    const during = await heartbeatIntervals(8000);
    const cpu = process.cpuUsage(cpu0);
    const counts = await new Promise<string>((resolve) => {
      attacker.stdout!.once("data", (d: Buffer) => resolve(d.toString().trim()));
      attacker.stdin!.write("stop\n");
    });
    console.log(
      `membership attack: heartbeat interval (nominal ${Math.ceil(TIMEOUT / 2)} ms) idle:   ${stats(base)}`,
    );
    console.log(`membership attack: heartbeat interval under attack: ${stats(during)}`);
    console.log(
      `membership attack: attacker connections ${counts}; target CPU ${((cpu.user + cpu.system) / 1000 / 8).toFixed(0)} ms/s; leaseLost ${lost}, suspicions ${suspected}`,
    );
  }, 120_000);
});
