import { execFileSync, spawn } from "node:child_process";
import {
  closeSync,
  constants,
  existsSync,
  mkdtempSync,
  openSync,
  readFileSync,
  readSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, test } from "vitest";
import { HardwareWatchdog, type WatchdogOptions } from "./controller.ts";
import { readDeviceTimeout, timeoutFileFor } from "./device.ts";

// SAFETY: every test here drives a simulated device, a regular file or a FIFO in a temporary
// directory that the test reads. No test loads softdog or opens /dev/watchdog: a test process
// that died with a real device armed would reset the machine the tests run on.

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "..", "..");
const base = mkdtempSync(join(tmpdir(), "efm-watchdog-"));
let seq = 0;

/** A simulated device: a regular file with a 1 s timeout beside it. */
function fileDevice(timeoutSeconds = "1"): string {
  const device = join(base, `wd${seq++}`);
  writeFileSync(device, "");
  writeFileSync(`${device}.timeout`, `${timeoutSeconds}\n`);
  return device;
}

/** jgroups.timeout 1000 x 4 with a 500 ms safety margin: a 1 s device fits (minimum lease left 470 ms). */
const TIMING = { leaseMs: 3000, takeoverMarginMs: 1030, heartbeatMs: 500, safetyMarginMs: 500 };

function harness(device: string, overrides: Partial<WatchdogOptions> = {}) {
  const world = { now: 10_000, lease: 13_000, role: "Master" as string | null };
  const logs: string[] = [];
  const unavailable: string[] = [];
  const wd = new HardwareWatchdog({
    mode: "automatic",
    device,
    timing: TIMING,
    now: () => world.now,
    leaseUntil: () => world.lease,
    role: () => world.role,
    log: {
      info: (m) => logs.push(`info ${m}`),
      warn: (m) => logs.push(`warn ${m}`),
      error: (m) => logs.push(`error ${m}`),
    },
    onUnavailable: (why) => unavailable.push(why),
    ...overrides,
  });
  return { wd, world, logs, unavailable, written: () => readFileSync(device, "utf8") };
}

afterAll(() => {
  execFileSync("rm", ["-rf", base]);
});

describe("HardwareWatchdog on a simulated device", () => {
  test("keepalives while master with a lease that covers the device; none once it does not; 'V' on step-down", () => {
    const h = harness(fileDevice());
    h.wd.tick();
    expect(h.wd.armed).toBe(true);
    h.wd.tick();
    h.wd.tick();
    expect(h.written()).toBe("111");
    // 470 ms is the least lease that may be left at a keepalive: 469 gets none, nor does a lost lease.
    h.world.lease = h.world.now + 469;
    h.wd.tick();
    h.world.now = h.world.lease + 1;
    h.wd.tick();
    expect(h.written()).toBe("111");
    expect(h.logs.filter((l) => l.includes("keepalives stop"))).toHaveLength(1);
    expect(h.wd.armed).toBe(true);
    // The agent stepped down (its fence, if any, succeeded): magic close.
    h.world.role = "Idle";
    h.wd.tick();
    expect(h.written()).toBe("111V");
    expect(h.wd.armed).toBe(false);
    h.wd.tick();
    expect(h.written()).toBe("111V");
  });

  test("a standby or witness never arms it; a promoting standby does", () => {
    const device = fileDevice();
    const h = harness(device);
    for (const role of [null, "Standby", "Witness", "Idle"]) {
      h.world.role = role;
      h.wd.tick();
      expect(h.wd.armed).toBe(false);
    }
    expect(h.written()).toBe("");
    h.world.role = "Promoting";
    h.wd.tick();
    expect(h.written()).toBe("1");
  });

  test("stays armed and unfed while the fence runs, disarms after it succeeded, never after it failed", async () => {
    const h = harness(fileDevice());
    let finish: (ok: boolean) => void = () => {};
    const fence = h.wd.guardFence(
      () =>
        new Promise<void>((resolve, reject) => {
          finish = (ok) => (ok ? resolve() : reject(new Error("postmaster still running")));
        }),
    );
    h.wd.tick();
    const running = fence();
    h.world.role = "Idle";
    h.wd.tick();
    expect(h.written()).toBe("1");
    finish(true);
    await running;
    expect(h.written()).toBe("1V");

    const g = harness(fileDevice());
    const failing = g.wd.guardFence(() => Promise.reject(new Error("postmaster still running")));
    g.wd.tick();
    g.world.role = "Idle";
    await expect(failing()).rejects.toThrow("postmaster still running");
    g.wd.tick();
    // Left armed without keepalives: the device's reset is the fence now.
    expect(g.written()).toBe("1");
    expect(g.wd.armed).toBe(true);
    expect(g.logs.some((l) => l.startsWith("error watchdog: the fence failed"))).toBe(true);
    g.wd.close();
    expect(g.written()).toBe("1V");
  });

  test("a master that stepped down stays armed until its own fence has begun and succeeded", () => {
    // Step-down releases the VIP first; the fence starts after. Disarming in between would let a
    // slow fence (or a freeze right then) run unguarded.
    const world = { pending: true };
    const h = harness(fileDevice(), { fencePending: () => world.pending });
    h.wd.tick();
    h.world.role = "Idle";
    h.wd.tick();
    expect(h.wd.armed).toBe(true);
    expect(h.written()).toBe("1");
    world.pending = false;
    h.wd.tick();
    expect(h.written()).toBe("1V");
  });

  test("a graceful stop of a master disarms with the magic close, and nothing arms it again", () => {
    const h = harness(fileDevice());
    h.wd.tick();
    h.wd.close();
    h.wd.tick();
    expect(h.written()).toBe("1V");
  });

  test("required without a device refuses the master role once per term and creates nothing", () => {
    const device = join(base, "missing-watchdog");
    const h = harness(device, { mode: "required" });
    h.wd.tick();
    h.wd.tick();
    expect(h.unavailable).toHaveLength(1);
    expect(h.unavailable[0]).toContain(`watchdog.device=${device}`);
    expect(existsSync(device)).toBe(false);
    // A new term (stepped down, master again) reports again.
    h.world.role = "Idle";
    h.wd.tick();
    h.world.role = "Master";
    h.wd.tick();
    expect(h.unavailable).toHaveLength(2);
    expect(h.wd.check()).toMatchObject({ ok: false });
  });

  test("required with a device whose timeout outlasts the takeover refuses; automatic warns and runs without", () => {
    const device = fileDevice("60");
    const req = harness(device, { mode: "required" });
    req.wd.tick();
    expect(req.unavailable[0]).toContain("(60000 ms) is longer than");
    expect(req.written()).toBe("");
    const auto = harness(device, { mode: "automatic" });
    auto.wd.tick();
    expect(auto.unavailable).toEqual([]);
    expect(auto.logs.some((l) => l.startsWith("warn watchdog:") && l.includes("without a watchdog"))).toBe(
      true,
    );
    expect(auto.wd.armed).toBe(false);
  });

  test("mode off never touches the device", () => {
    const device = fileDevice();
    const h = harness(device, { mode: "off" });
    h.wd.tick();
    h.wd.close();
    expect(h.written()).toBe("");
  });

  test("a FIFO with no reader cannot be opened (no blocked loop); with a reader the keepalives arrive", () => {
    const fifo = join(base, `fifo${seq++}`);
    execFileSync("mkfifo", [fifo]);
    writeFileSync(`${fifo}.timeout`, "1\n");
    const lonely = harness(fifo);
    lonely.wd.tick();
    expect(lonely.wd.armed).toBe(false);
    expect(lonely.logs.some((l) => l.includes("cannot be opened"))).toBe(true);

    const reader = openSync(fifo, constants.O_RDONLY | constants.O_NONBLOCK);
    try {
      const h = harness(fifo);
      h.wd.tick();
      h.wd.tick();
      h.world.role = "Standby";
      h.wd.tick();
      const buf = Buffer.alloc(16);
      const n = readSync(reader, buf, 0, 16, null);
      expect(buf.subarray(0, n).toString()).toBe("11V");
    } finally {
      closeSync(reader);
    }
  });

  test("where the timeout is read: sysfs for a kernel device, <device>.timeout for a simulated one", () => {
    const device = fileDevice("7");
    expect(timeoutFileFor(device)).toBe(`${device}.timeout`);
    expect(readDeviceTimeout(device)).toEqual({ ms: 7000 });
    // /dev/null is a character device but no watchdog.
    expect(timeoutFileFor("/dev/null")).toBeNull();
    expect(readDeviceTimeout(join(base, "nothing"))).toMatchObject({ ms: null });
    writeFileSync(`${device}.timeout`, "soon\n");
    expect(readDeviceTimeout(device)).toMatchObject({ ms: null, why: expect.stringContaining('"soon"') });
  });
});

/** Poll `cond` until it holds; fail with `what` after `limitMs`. */
async function until(cond: () => boolean, what: string, limitMs = 15_000): Promise<void> {
  const end = Date.now() + limitMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

function processState(pid: number): string {
  // /proc/<pid>/stat: "pid (comm) S ..."; comm may hold spaces, so read after the last ')'.
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
}

describe("HardwareWatchdog in a real process", () => {
  test("a SIGSTOPped agent writes no keepalive; after SIGCONT they resume; SIGTERM disarms with 'V'", async () => {
    // The controller compiled as it ships, run by a plain node process with the real timers.
    const out = join(base, "compiled");
    execFileSync(join(ROOT, "node_modules", ".bin", "tsc"), [
      "--outDir",
      out,
      "--module",
      "nodenext",
      "--moduleResolution",
      "nodenext",
      "--target",
      "es2022",
      "--rewriteRelativeImportExtensions",
      "--skipLibCheck",
      "--types",
      "node",
      join(ROOT, "apps", "agent", "src", "watchdog", "controller.ts"),
    ]);
    writeFileSync(join(out, "package.json"), '{"type":"module"}\n');
    const device = fileDevice();
    const child = join(out, "child.js");
    writeFileSync(
      child,
      `import { performance } from "node:perf_hooks";
import { HardwareWatchdog } from "./controller.js";
const wd = new HardwareWatchdog({
  mode: "required",
  device: process.argv[2],
  timing: ${JSON.stringify(TIMING)},
  now: () => performance.now(),
  leaseUntil: () => performance.now() + 3000, // a lease every tick finds renewed
  role: () => "Master",
  log: { info: () => {}, warn: (m) => console.error(m), error: (m) => console.error(m) },
  onUnavailable: (why) => { console.error(why); process.exit(3); },
});
process.on("SIGTERM", () => { wd.close(); process.exit(0); });
wd.start();
// The watchdog's timer never keeps a process alive (an agent has its sockets for that).
setInterval(() => {}, 1 << 30);
`,
    );
    const proc = spawn(process.execPath, [child, device], { stdio: ["ignore", "ignore", "inherit"] });
    const exited = new Promise<number | null>((r) => proc.once("exit", (code) => r(code)));
    const pid = proc.pid!;
    try {
      const size = () => readFileSync(device).length;
      await until(() => size() >= 3, "the first keepalives");
      process.kill(pid, "SIGSTOP");
      await until(() => processState(pid) === "T", "the agent to be stopped");
      const frozenAt = size();
      // Four feed intervals (250 ms each) and more: a stopped process writes nothing at all.
      await new Promise((r) => setTimeout(r, 1500));
      expect(size()).toBe(frozenAt);
      process.kill(pid, "SIGCONT");
      await until(() => size() > frozenAt, "keepalives after SIGCONT");
      process.kill(pid, "SIGTERM");
      expect(await exited).toBe(0);
      const written = readFileSync(device, "utf8");
      expect(written).toMatch(/^1+V$/);
    } finally {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill("SIGKILL");
    }
  }, 60_000);
});
