import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { threadId as mainThread } from "node:worker_threads";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { exec } from "./exec.ts";
import { runPing } from "./ping.ts";
import {
  type ChildListener,
  crashSpawnerForTests,
  spawnHere,
  startChild,
  useWorkerCodeForTests,
} from "./spawner.ts";

const dir = mkdtempSync(join(tmpdir(), "efm-vip-spawner-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
afterEach(() => useWorkerCodeForTests(undefined));

function script(name: string, body: string): string {
  const p = join(dir, name);
  writeFileSync(p, `#!/bin/sh\n${body}\n`);
  chmodSync(p, 0o755);
  return p;
}

const reply = "64 bytes from 10.0.0.1: icmp_seq=1 ttl=64 time=0.05 ms";
/** A ping that answers at once, then waits for more replies until it is interrupted. */
const answering = script("ping", `echo "${reply}"\nexec sleep 60`);

/** What a started program reported; `last` is the final report (close or lost). */
interface Reports {
  stdout: string;
  stderr: string;
  errors: (string | undefined)[];
  exits: number;
  last: string;
}

function record(start: (listener: ChildListener) => unknown): Promise<Reports> {
  return new Promise((resolve) => {
    // Output and exit come from different pipes and signals: only their content is compared,
    // not how they interleave.
    const r: Reports = { stdout: "", stderr: "", errors: [], exits: 0, last: "" };
    const after = (what: string) => () => {
      if (r.last !== "") r.errors.push(`${what} after ${r.last}`);
    };
    start({
      stdout: (d) => {
        after("stdout")();
        r.stdout += d;
      },
      stderr: (d) => {
        after("stderr")();
        r.stderr += d;
      },
      error: (e) => {
        after("error")();
        r.errors.push(e.code);
      },
      exit: () => {
        after("exit")();
        r.exits++;
      },
      close: (code, signal) => {
        after("close")();
        r.last = `close ${code} ${signal}`;
        setTimeout(() => resolve(r), 50); // a report after close would show up in errors
      },
      lost: (e) => {
        r.last = `lost ${e.message}`;
        resolve(r);
      },
    });
  });
}

/** Resolves once `path` exists; the test's timeout is what fails it otherwise. */
async function until(path: string): Promise<void> {
  while (!existsSync(path)) await new Promise((r) => setTimeout(r, 10));
}

/** The state letter of `pid` in /proc (R, S, Z for a zombie...), or "gone". */
function procState(pid: number): string {
  try {
    return /\) (\S)/.exec(readFileSync(`/proc/${pid}/stat`, "utf8"))?.[1] ?? "gone";
  } catch {
    return "gone";
  }
}

describe("programs start from a worker thread", () => {
  it("20 pings at once: every one forked by the worker, none by this thread", async () => {
    const outcomes = await Promise.all(
      Array.from({ length: 20 }, () => runPing([answering, "10.0.0.1"], "10.0.0.1", 600_000)),
    );
    const threads = new Set(outcomes.map((o) => o.threadId));
    expect(outcomes.every((o) => o.reachable)).toBe(true);
    expect(threads.size).toBe(1);
    expect(threads.has(mainThread)).toBe(false);
    expect(threads.has(undefined)).toBe(false);
  });

  it("exec (ip addr, efm-address) too, with the exit code and output", async () => {
    const r = await exec([script("out", 'echo "$A out"\necho err >&2\nexit 4')], 60_000, { A: "a" });
    expect(r).toMatchObject({ code: 4, stdout: "a out\n", stderr: "err\n" });
    expect(r.threadId).not.toBe(mainThread);
    await expect(exec([join(dir, "missing")], 60_000)).rejects.toMatchObject({ code: "COMMAND_NOT_FOUND" });
    await expect(exec([script("hang", "exec sleep 60")], 200)).rejects.toMatchObject({
      code: "COMMAND_TIMEOUT",
    });
  });

  it("the environment is this thread's at the call, not the worker's copy from its start", async () => {
    await exec(["true"], 60_000); // the worker runs
    process.env.EFM_SPAWNER_PROBE = "now";
    try {
      expect((await exec([script("env", 'echo "$EFM_SPAWNER_PROBE"')], 60_000)).stdout).toBe("now\n");
    } finally {
      delete process.env.EFM_SPAWNER_PROBE;
    }
  });
});

describe("a worker that dies", () => {
  it("rejects the calls it was running, stops their programs, and the next call gets a new worker", async () => {
    const before = await runPing([answering, "10.0.0.1"], "10.0.0.1", 600_000);
    const started = join(dir, "started");
    const pending = runPing(
      [script("hangs", `echo $$ > ${started}.tmp; mv ${started}.tmp ${started}\nexec sleep 60`), "x"],
      null,
      600_000,
    );
    await until(started);
    crashSpawnerForTests();
    await expect(pending).rejects.toMatchObject({
      code: "COMMAND_FAILED",
      message: expect.stringMatching(/worker thread that started .*hangs stopped .* its outcome is unknown/),
    });
    // Its program is killed as the worker goes down (and stays a zombie: the thread that would
    // reap it is gone); waiting is bounded by the test's timeout.
    const pid = Number(readFileSync(started, "utf8"));
    while (!["Z", "X", "gone"].includes(procState(pid))) await new Promise((r) => setTimeout(r, 20));
    const after = await runPing([answering, "10.0.0.1"], "10.0.0.1", 600_000);
    expect(after.reachable).toBe(true);
    expect(after.threadId).not.toBe(mainThread);
    expect(after.threadId).not.toBe(before.threadId); // thread ids are never reused
  });

  it("exec's pending call is rejected the same way", async () => {
    const started = join(dir, "started-exec");
    const pending = exec([script("hangs-exec", `touch ${started}\nexec sleep 60`)], 600_000);
    await until(started);
    crashSpawnerForTests();
    await expect(pending).rejects.toMatchObject({ code: "COMMAND_FAILED" });
    expect((await exec(["true"], 60_000)).code).toBe(0);
  });
});

describe("fallback to this thread", () => {
  it("a worker that cannot start: the programs start here, with the same outcomes", async () => {
    useWorkerCodeForTests("throw new Error('this worker cannot start')");
    const outcome = await runPing([answering, "10.0.0.1"], "10.0.0.1", 600_000);
    expect(outcome).toEqual({ reachable: true, threadId: mainThread });
    const r = await exec([script("out2", "echo out\nexit 2")], 60_000);
    expect(r).toEqual({ code: 2, stdout: "out\n", stderr: "", threadId: mainThread });
    await expect(exec([join(dir, "missing")], 60_000)).rejects.toMatchObject({ code: "COMMAND_NOT_FOUND" });
  });

  it("reports what the worker reports: output, errors, exit, and close last", async () => {
    const cases: [string, string[]][] = [
      ["output and exit code", [script("c1", "echo one\necho two >&2\nexit 3")]],
      ["a missing program", [join(dir, "missing")]],
      ["a program ended by a signal", [script("c2", "kill -TERM $$")]],
      ["an argument Node refuses", ["echo", "nul\0byte"]],
    ];
    for (const [what, argv] of cases) {
      const env = { ...process.env };
      const here = await record((l) => spawnHere(argv, env, l));
      const there = await record((l) => startChild(argv, env, l));
      expect(there, what).toEqual(here);
    }
  });
});
