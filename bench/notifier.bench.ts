// Notifier numbers: e-mails per second into a live in-process SMTP server, cluster-log lines
// per second, cost of notify() with the mail server down, and queue memory at 10,000 pending.
// Prints numbers only; it asserts nothing about time.
import { mkdtemp, rm } from "node:fs/promises";
import { createRequire } from "node:module";
import { type AddressInfo, createServer, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { monitorEventLoopDelay, performance } from "node:perf_hooks";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { afterAll, beforeAll, expect, it } from "vitest";
import {
  clusterLogSink,
  createNotifier,
  emailSink,
  type SnapshotNode,
} from "../packages/notifier/src/index.ts";

// smtp-server is a dev dependency of the notifier package, not of the root.
const requireFromNotifier = createRequire(new URL("../packages/notifier/package.json", import.meta.url));
const { SMTPServer } = requireFromNotifier("smtp-server") as typeof import("smtp-server");

setFlagsFromString("--expose-gc");
const gc = runInNewContext("gc") as () => void;

const context = {
  nodeAddress: "10.0.1.11",
  clusterName: "acctg",
  databaseName: "postgres",
  vipEnabled: true,
};
const snapshot: SnapshotNode[] = [
  { role: "Master", address: "10.0.1.11", agent: "UP", db: "UP" },
  { role: "Standby", address: "10.0.1.12", agent: "UP", db: "UP" },
  { role: "Witness", address: "10.0.1.13", agent: "UP", db: "N/A" },
];

let dir: string;
let received = 0;
let onReceived: (() => void) | undefined;
const smtp = new SMTPServer({
  authOptional: true,
  disabledCommands: ["AUTH", "STARTTLS"],
  logger: false,
  onData(stream, _session, callback) {
    stream.resume();
    stream.on("end", () => {
      received += 1;
      onReceived?.();
      callback();
    });
  },
});
let smtpPort = 0;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "efm-notifier-bench-"));
  await new Promise<void>((resolve) => smtp.listen(0, "127.0.0.1", resolve));
  smtpPort = (smtp.server.address() as AddressInfo).port;
});

afterAll(async () => {
  await new Promise<void>((resolve) => smtp.close(() => resolve()));
  await rm(dir, { recursive: true, force: true });
});

it("e-mails per second into a live SMTP server", async () => {
  const total = 2000;
  const n = createNotifier({
    context,
    sinks: [
      emailSink({ recipients: ["dba@example.com"], from: "efm@bench", host: "127.0.0.1", port: smtpPort }),
    ],
    queueCapacity: total,
  });
  received = 0;
  const done = new Promise<void>((resolve) => {
    onReceived = () => received >= total && resolve();
  });
  const started = performance.now();
  for (let i = 0; i < total; i++)
    n.notify({ id: "failoverCompleted", params: { clusterName: `c${i}` } }, snapshot);
  await done;
  const seconds = (performance.now() - started) / 1000;
  console.log(
    `[notifier] e-mail: ${total} notifications in ${seconds.toFixed(2)} s = ${(total / seconds).toFixed(0)}/s`,
  );
  expect(n.stats().sinks.email?.dropped).toBe(0);
  await n.close(5000);
});

it("cluster-log lines per second", async () => {
  const total = 20_000;
  const n = createNotifier({
    context,
    sinks: [clusterLogSink({ path: join(dir, "acctg.log") })],
    queueCapacity: total,
  });
  const started = performance.now();
  for (let i = 0; i < total; i++)
    n.notify({ id: "failoverCompleted", params: { clusterName: `c${i}` } }, snapshot);
  const flushed = await n.flush(60_000);
  const seconds = (performance.now() - started) / 1000;
  console.log(
    `[notifier] cluster log: ${total} lines in ${seconds.toFixed(2)} s = ${(total / seconds).toFixed(0)}/s`,
  );
  expect(flushed.drained).toBe(true);
  await n.close(1000);
});

it("notify() cost and event-loop delay with the SMTP server down", async () => {
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, "127.0.0.1", resolve));
  const closedPort = (probe.address() as AddressInfo).port;
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  const n = createNotifier({
    context,
    sinks: [
      clusterLogSink({ path: join(dir, "down.log") }),
      emailSink({
        recipients: ["dba@example.com"],
        from: "efm@bench",
        host: "127.0.0.1",
        port: closedPort,
        retry: { attempts: 2, initialDelayMs: 5, maxDelayMs: 5 },
      }),
    ],
  });
  // Control: the same histogram over an idle second shows what the shared machine adds.
  const idle = monitorEventLoopDelay({ resolution: 1 });
  idle.enable();
  await new Promise((r) => setTimeout(r, 1000));
  idle.disable();

  const whole = monitorEventLoopDelay({ resolution: 1 }); // includes the caller's own loop of calls
  const after = monitorEventLoopDelay({ resolution: 1 }); // only the delivery work afterwards
  whole.enable();
  const started = performance.now();
  for (let i = 0; i < 1000; i++)
    n.notify({ id: "failoverCompleted", params: { clusterName: `c${i}` } }, snapshot);
  const notifyMs = performance.now() - started;
  after.enable();
  await n.flush(60_000);
  whole.disable();
  after.disable();
  const ms = (ns: number) => (ns / 1e6).toFixed(1);
  const s = n.stats().sinks;
  console.log(
    `[notifier] SMTP down: 1000 notify() took ${notifyMs.toFixed(1)} ms in total (${notifyMs.toFixed(1)} us each on average); ` +
      `logged ${s["cluster-log"]?.delivered}, mail dropped ${s.email?.dropped}`,
  );
  console.log(
    `[notifier] event-loop delay max/p99: including the calls ${ms(whole.max)}/${ms(whole.percentile(99))} ms; ` +
      `during delivery only ${ms(after.max)}/${ms(after.percentile(99))} ms; idle control ${ms(idle.max)}/${ms(idle.percentile(99))} ms`,
  );
  await n.close(1000);
});

it("queue memory at 10,000 pending", async () => {
  // A relay that accepts the connection and never greets: the first send hangs, everything
  // else waits in the queue.
  const sockets: Socket[] = [];
  const silent = createServer((socket) => sockets.push(socket));
  await new Promise<void>((resolve) => silent.listen(0, "127.0.0.1", resolve));
  const port = (silent.address() as AddressInfo).port;
  const pending = 10_000;
  const n = createNotifier({
    context,
    sinks: [
      emailSink({
        recipients: ["dba@example.com"],
        from: "efm@bench",
        host: "127.0.0.1",
        port,
        timeoutMs: 600_000,
      }),
    ],
    queueCapacity: pending,
  });
  gc();
  const before = process.memoryUsage().heapUsed;
  for (let i = 0; i < pending; i++) {
    n.notify(
      { id: "standbyPromoteVipAssigned", params: { vipAddress: `10.0.${i >> 8}.${i & 255}` } },
      snapshot,
    );
  }
  await new Promise((r) => setImmediate(r));
  gc();
  const after = process.memoryUsage().heapUsed;
  const stats = n.stats().sinks.email;
  const mib = (after - before) / 2 ** 20;
  console.log(
    `[notifier] queue: ${stats?.pending} pending use ${mib.toFixed(2)} MiB of heap ` +
      `(${((after - before) / pending).toFixed(0)} bytes per notification, subject+body+snapshot)`,
  );
  expect(stats?.pending).toBe(pending);
  await n.close(0);
  for (const s of sockets) s.destroy();
  await new Promise<void>((resolve) => silent.close(() => resolve()));
});
