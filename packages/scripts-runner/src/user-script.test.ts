import { readFileSync } from "node:fs";
import { chmod, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BoundedCapture } from "./capture.ts";
import { isScriptsRunnerError } from "./errors.ts";
import { runProcess } from "./run.ts";
import { runUserScript, scriptEnvironment } from "./user-script.ts";

let dir: string;

async function script(name: string, body: string, mode = 0o755): Promise<string> {
  const path = join(dir, name);
  await writeFile(path, `#!/bin/sh\n${body}\n`);
  await chmod(path, mode);
  return path;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  // A zombie waiting for init to reap it is dead for our purpose.
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, "utf8"));
  } catch {
    return false;
  }
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "efm-scripts-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("BoundedCapture", () => {
  it("keeps everything under the bound", () => {
    const c = new BoundedCapture(10);
    c.push(Buffer.from("hello"));
    expect(c.text()).toBe("hello");
    expect(c.truncated).toBe(false);
  });
  it("keeps head and tail over the bound", () => {
    const c = new BoundedCapture(6);
    for (const s of ["abc", "defgh", "ijk", "lmnop"]) c.push(Buffer.from(s));
    expect(c.totalBytes).toBe(16);
    expect(c.truncated).toBe(true);
    expect(c.text()).toBe("abc\n[... 10 bytes omitted ...]\nnop");
  });
});

describe("runUserScript", () => {
  it("reports exit 1 as failed, with the script's output", async () => {
    const fence = await script("fence.sh", 'echo "fencing $EFM_FAILED_MASTER"; echo "no route" >&2; exit 1');
    const result = await runUserScript("fence", fence, { cluster: "efm", failedMaster: "10.0.0.1" });
    expect(result.ok).toBe(false);
    expect(result.exitCode).toBe(1);
    expect(result.timedOut).toBe(false);
    expect(result.stdout).toBe("fencing 10.0.0.1\n");
    expect(result.stderr).toBe("no route\n");
  });

  it("passes the documented environment and drops inherited EFM_ variables", async () => {
    const s = await script("env.sh", "env | grep '^EFM_' | sort");
    const result = await runUserScript(
      "post.promotion",
      s,
      { cluster: "prod", node: "10.0.0.2", newMaster: "10.0.0.2", failedMaster: "10.0.0.1", vip: "10.0.0.9" },
      { baseEnv: { PATH: "/usr/bin:/bin", EFM_NEW_MASTER: "stale" } },
    );
    expect(result.ok).toBe(true);
    expect(result.stdout.trim().split("\n")).toEqual([
      "EFM_CLUSTER=prod",
      "EFM_EVENT=post.promotion",
      "EFM_FAILED_MASTER=10.0.0.1",
      "EFM_NEW_MASTER=10.0.0.2",
      "EFM_NODE=10.0.0.2",
      "EFM_SCRIPT_PROPERTY=script.post.promotion",
      "EFM_VIP=10.0.0.9",
    ]);
  });

  it("kills a script that sleeps forever, and its children, at the timeout", async () => {
    const pids = join(dir, "pids");
    const s = await script(
      "forever.sh",
      `sleep 1000 & echo $! > ${pids}; trap '' TERM; (trap '' TERM; sleep 1000) & echo $! >> ${pids}; echo started; while :; do sleep 1; done`,
    );
    const result = await runUserScript("db.failure", s, { cluster: "efm" }, { timeoutMs: 500 });
    expect(result.timedOut).toBe(true);
    expect(result.ok).toBe(false);
    expect(result.stdout).toBe("started\n");
    const children = (await readFile(pids, "utf8")).trim().split("\n").map(Number);
    expect(children).toHaveLength(2);
    // The group got SIGKILL after the grace period; give the kernel a moment to tear down.
    for (let i = 0; i < 50 && children.some(alive); i++) await new Promise((r) => setTimeout(r, 100));
    expect(children.filter(alive)).toEqual([]);
  });

  it("cuts 100 MB of output to the bound and still sees the exit code", async () => {
    const s = await script(
      "loud.sh",
      "head -c 104857600 /dev/zero | tr '\\0' x; echo; echo last line; exit 3",
    );
    const result = await runUserScript("notification", s, { cluster: "efm" }, { maxOutputBytes: 4096 });
    expect(result.exitCode).toBe(3);
    expect(result.outputTruncated).toBe(true);
    expect(result.stdoutBytes).toBe(104857600 + 1 + 10);
    expect(result.stdout.length).toBeLessThan(4096 + 100);
    expect(result.stdout.startsWith("x".repeat(2048))).toBe(true);
    expect(result.stdout.endsWith("last line\n")).toBe(true);
  });

  it("rejects a missing script with SCRIPT_NOT_FOUND", async () => {
    await expect(runUserScript("fence", join(dir, "nope.sh"), { cluster: "efm" })).rejects.toSatisfy((e) =>
      isScriptsRunnerError(e, "SCRIPT_NOT_FOUND"),
    );
  });

  it("rejects a non-executable script with SCRIPT_NOT_EXECUTABLE", async () => {
    const s = await script("plain.sh", "exit 0", 0o644);
    await expect(runUserScript("fence", s, { cluster: "efm" })).rejects.toSatisfy((e) =>
      isScriptsRunnerError(e, "SCRIPT_NOT_EXECUTABLE"),
    );
    await expect(runUserScript("fence", dir, { cluster: "efm" })).rejects.toSatisfy((e) =>
      isScriptsRunnerError(e, "SCRIPT_NOT_EXECUTABLE"),
    );
  });

  it("rejects a relative path with SCRIPT_PATH_INVALID", async () => {
    await expect(runUserScript("fence", "fence.sh", { cluster: "efm" })).rejects.toSatisfy((e) =>
      isScriptsRunnerError(e, "SCRIPT_PATH_INVALID"),
    );
  });

  it("never interprets the path with a shell", async () => {
    const s = await script("odd name;touch pwned.sh", "echo ran");
    const result = await runUserScript("fence", s, { cluster: "efm" });
    expect(result.stdout).toBe("ran\n");
  });
});

describe("runProcess", () => {
  it("rejects a program that cannot be started with SPAWN_FAILED", async () => {
    await expect(runProcess(["/nonexistent/prog"], { timeoutMs: 1000 })).rejects.toSatisfy((e) =>
      isScriptsRunnerError(e, "SPAWN_FAILED"),
    );
  });
  it("does not wait for a background child holding the pipes", async () => {
    const result = await runProcess(["/bin/sh", "-c", "sleep 30 & echo done"], { timeoutMs: 20_000 });
    expect(result.exitCode).toBe(0);
    expect(result.timedOut).toBe(false);
    expect(result.stdout).toBe("done\n");
  });
  it("reports a signal death", async () => {
    const result = await runProcess(["/bin/sh", "-c", "kill -9 $$"], { timeoutMs: 5000 });
    expect(result.signal).toBe("SIGKILL");
    expect(result.exitCode).toBeNull();
  });
  it("feeds input on stdin", async () => {
    const result = await runProcess(["/bin/cat"], { timeoutMs: 5000, input: "abc" });
    expect(result.stdout).toBe("abc");
  });
  it("checks scriptEnvironment leaves unknown fields out", () => {
    const env = scriptEnvironment("fence", { cluster: "c" }, {});
    expect(env).toEqual({ EFM_CLUSTER: "c", EFM_EVENT: "fence", EFM_SCRIPT_PROPERTY: "script.fence" });
  });
});
