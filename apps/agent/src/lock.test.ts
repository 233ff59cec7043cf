import { type ChildProcess, spawn } from "node:child_process";
import { chmodSync, chownSync, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, test } from "vitest";
import { AgentError } from "./errors.ts";
import { acquireLock, isAgentFor } from "./lock.ts";

const dir = mkdtempSync(join(tmpdir(), "ee17-lock-"));
const kids: ChildProcess[] = [];
afterAll(() => {
  for (const k of kids) k.kill("SIGKILL");
  rmSync(dir, { recursive: true, force: true });
});

/** A live process whose command line is `node <script> ...args`; resolves once it runs. */
async function live(script: string, args: string[]): Promise<number> {
  writeFileSync(script, "process.stdout.write('up\\n'); setInterval(() => {}, 1000);\n");
  const k = spawn(process.execPath, [script, ...args], { stdio: ["ignore", "pipe", "ignore"] });
  kids.push(k);
  await new Promise<void>((r) => k.stdout!.once("data", () => r()));
  return k.pid!;
}

describe("lock directory", () => {
  test("is created (mode 0755) when missing, as the systemd unit's /run/efm/lock must be", () => {
    const lockDir = join(dir, "run", "efm", "lock");
    const lock = acquireLock(join(lockDir, "acctg.lock"));
    expect(statSync(lockDir).isDirectory()).toBe(true);
    expect(statSync(lockDir).mode & 0o777).toBe(0o755);
    lock.release();
  });

  test("is refused when group or others may write it", () => {
    const open = join(dir, "open");
    mkdirSync(open);
    chmodSync(open, 0o777);
    expect(() => acquireLock(join(open, "acctg.lock"))).toThrow(/writable by group or others \(mode 777\)/);
  });

  test.runIf(process.getuid?.() === 0)("is refused when another user owns it", () => {
    const theirs = join(dir, "theirs");
    mkdirSync(theirs, { mode: 0o755 });
    chownSync(theirs, 65534, 65534);
    expect(() => acquireLock(join(theirs, "acctg.lock"))).toThrow(/belongs to uid 65534/);
  });
});

describe("whose lock is honoured", () => {
  test("a lock naming PID 1 (or any process that is not an agent of the cluster) is taken over", async () => {
    const path = join(dir, "acctg.lock");
    writeFileSync(path, "1\n");
    acquireLock(path).release();
    // A live process that mentions the cluster but is not an agent.
    const pid = await live(join(dir, "sleeper.js"), ["acctg"]);
    expect(isAgentFor(pid, "acctg")).toBe(false);
    writeFileSync(path, `${pid}\n`);
    acquireLock(path).release();
  });

  test("a live agent of this cluster is honoured; one of another cluster is not", async () => {
    const bin = join(dir, "bin");
    mkdirSync(bin, { recursive: true });
    const pid = await live(join(bin, "efm-agent"), ["start", "acctg"]);
    expect(isAgentFor(pid, "acctg")).toBe(true);
    const path = join(dir, "acctg.lock");
    writeFileSync(path, `${pid}\n`);
    expect(() => acquireLock(path)).toThrow(AgentError);
    expect(() => acquireLock(path)).toThrow(`another agent (pid ${pid}) already runs this cluster`);
    const other = join(dir, "sales.lock");
    writeFileSync(other, `${pid}\n`);
    acquireLock(other).release();
  });
});
