import { chmod, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { renderNotification } from "./message.ts";
import { createNotifier } from "./notifier.ts";
import {
  clusterLogSink,
  formatClusterLogLine,
  parseClusterLogLine,
  type RunScript,
  scriptSink,
  spawnScript,
} from "./sinks.ts";

const context = { nodeAddress: "10.0.0.1", clusterName: "c1", databaseName: "db", vipEnabled: true };
const time = new Date("2026-11-26T21:00:00.000Z");
let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "efm-notifier-sinks-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("cluster log lines", () => {
  it("hold time, severity, subject and body on one line, and parse back", () => {
    const n = renderNotification(
      {
        id: "fencingScriptError",
        params: { scriptName: "/f.sh", exitCode: 2, scriptResults: "a\tb\\c\r\n" },
      },
      context,
      time,
    );
    const line = formatClusterLogLine(n);
    expect(line.endsWith("\n")).toBe(true);
    expect(line.slice(0, -1)).not.toMatch(/[\n\r]/);
    expect(
      line.startsWith("2026-11-26T21:00:00.000Z\tSEVERE\tFencing script error\tEFM node:      10.0.0.1\\n"),
    ).toBe(true);
    expect(parseClusterLogLine(line)).toEqual({
      time: "2026-11-26T21:00:00.000Z",
      severity: "SEVERE",
      subject: "Fencing script error",
      body: n.body,
    });
  });

  it("round-trip any subject and body, and never contain a raw line break (fast-check)", () => {
    fc.assert(
      fc.property(fc.string({ unit: "binary" }), fc.string({ unit: "binary" }), (subject, body) => {
        const line = formatClusterLogLine({
          id: "failoverCompleted",
          severity: "WARNING",
          subject,
          body,
          time,
        });
        expect(line.slice(0, -1)).not.toMatch(/[\n\r]/);
        expect(parseClusterLogLine(line)).toEqual({
          time: time.toISOString(),
          severity: "WARNING",
          subject,
          body,
        });
      }),
    );
  });

  it("are refused by the parser when malformed", () => {
    expect(parseClusterLogLine("junk")).toBeUndefined();
    expect(parseClusterLogLine("t\tDEBUG\ts\tb")).toBeUndefined();
  });
});

describe("clusterLogSink", () => {
  it("appends one line per notification, creating the folder", async () => {
    const path = join(dir, "log", "nested", "c1.log");
    const n = createNotifier({ context, sinks: [clusterLogSink({ path })], now: () => time });
    for (let i = 0; i < 5; i++) n.notify({ id: "failoverCompleted", params: { clusterName: `c${i}` } });
    expect(await n.flush(5000)).toEqual({ drained: true, pending: 0 });
    n.notify({ id: "resumeTimedOut", params: { clusterName: "c1" } });
    await n.close(5000);
    const lines = (await readFile(path, "utf8")).trimEnd().split("\n").map(parseClusterLogLine);
    expect(lines.map((l) => l?.subject)).toEqual([
      ...[0, 1, 2, 3, 4].map((i) => `Failover has completed on cluster c${i}`),
      "Resume timed out for cluster c1",
    ]);
    expect(lines[5]?.severity).toBe("SEVERE");
  });

  it("keeps every notification of a burst larger than the notifier's queue capacity", async () => {
    const path = join(dir, "burst", "c1.log");
    const n = createNotifier({ context, sinks: [clusterLogSink({ path })], queueCapacity: 100 });
    for (let i = 0; i < 1500; i++) n.notify({ id: "failoverCompleted", params: { clusterName: `c${i}` } });
    await n.close(10_000);
    const lines = (await readFile(path, "utf8")).trimEnd().split("\n");
    expect(lines).toHaveLength(1500);
    expect(n.stats().sinks["cluster-log"]).toMatchObject({ delivered: 1500, shed: 0 });
  });

  it("reports a write failure as LOG_WRITE_FAILED naming the file", async () => {
    const blocker = join(dir, "not-a-folder");
    await writeFile(blocker, "");
    const sink = clusterLogSink({ path: join(blocker, "c1.log") });
    const n = renderNotification({ id: "failoverCompleted", params: { clusterName: "c1" } }, context, time);
    await expect(sink.deliver([n], new AbortController().signal)).rejects.toMatchObject({
      code: "LOG_WRITE_FAILED",
      message: expect.stringContaining(blocker),
    });
  });
});

describe("scriptSink", () => {
  it("runs the script with subject and body as two arguments (no shell)", async () => {
    const out = join(dir, "args.txt");
    const script = join(dir, "notify.sh");
    await writeFile(script, `#!/bin/sh\nprintf '%s\\n--\\n%s' "$1" "$2" > '${out}'\n`);
    await chmod(script, 0o755);
    const n = createNotifier({ context, sinks: [scriptSink({ path: script })] });
    n.notify({ id: "unexpectedError", params: { clusterName: "c1; rm -rf /", errorDetails: "$(whoami)" } });
    await n.close(10_000);
    const text = await readFile(out, "utf8");
    expect(text.startsWith("An unexpected error has occurred for cluster c1; rm -rf /\n--\nEFM node:")).toBe(
      true,
    );
    expect(text).toContain("Error: $(whoami)");
    expect(n.stats().sinks.script).toMatchObject({ delivered: 1, dropped: 0 });
  });

  it("reports a non-zero exit, a timeout and a missing script as SCRIPT_FAILED", async () => {
    const failing = join(dir, "fail.sh");
    await writeFile(failing, "#!/bin/sh\necho 'mail relay down' >&2\nexit 3\n");
    await chmod(failing, 0o755);
    const slow = join(dir, "slow.sh");
    await writeFile(slow, "#!/bin/sh\nexec sleep 30\n");
    await chmod(slow, 0o755);
    const msg = renderNotification({ id: "failoverCompleted", params: { clusterName: "c1" } }, context, time);
    const signal = new AbortController().signal;

    await expect(scriptSink({ path: failing }).deliver([msg], signal)).rejects.toMatchObject({
      code: "SCRIPT_FAILED",
      message: expect.stringMatching(/fail\.sh exited with 3 .*mail relay down/),
    });
    await expect(scriptSink({ path: slow, timeoutMs: 200 }).deliver([msg], signal)).rejects.toMatchObject({
      code: "SCRIPT_FAILED",
      message: expect.stringContaining("timed out after 200 ms"),
    });
    await expect(scriptSink({ path: join(dir, "missing.sh") }).deliver([msg], signal)).rejects.toMatchObject({
      code: "SCRIPT_FAILED",
      message: expect.stringContaining("could not start"),
    });
  });

  it("uses an injected runScript", async () => {
    const calls: Array<{ path: string; args: readonly string[] }> = [];
    const runScript: RunScript = async (path, args) => {
      calls.push({ path, args });
      return { exitCode: 0, signal: null, output: "", timedOut: false };
    };
    const msg = renderNotification({ id: "failoverCompleted", params: { clusterName: "c1" } }, context, time);
    await scriptSink({ path: "/opt/notify", runScript }).deliver([msg], new AbortController().signal);
    expect(calls).toEqual([{ path: "/opt/notify", args: [msg.subject, msg.body] }]);
  });

  it("spawnScript caps the captured output and is killed by the abort signal", async () => {
    const chatty = join(dir, "chatty.sh");
    await writeFile(chatty, "#!/bin/sh\nhead -c 100000 /dev/zero | tr '\\0' x\nexec sleep 30\n");
    await chmod(chatty, 0o755);
    const abort = new AbortController();
    setTimeout(() => abort.abort(), 300);
    const result = await spawnScript(chatty, [], { timeoutMs: 20_000, signal: abort.signal });
    expect(result.output.length).toBe(8192);
    expect(result.exitCode).toBeNull();
    expect(result.signal).toBe("SIGKILL");
  });
});
