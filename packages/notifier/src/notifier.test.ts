import { Writable } from "node:stream";
import pino from "pino";
import { describe, expect, it } from "vitest";
import type { Severity } from "./catalogue.ts";
import type { RenderedNotification } from "./message.ts";
import { createNotifier, type Logger } from "./notifier.ts";
import type { Sink } from "./sinks.ts";

const context = { nodeAddress: "10.0.0.1", clusterName: "c1", databaseName: "db", vipEnabled: false };

/** A pino logger writing JSON records into an array, so tests see what an operator would. */
function capturingLogger(): { logger: Logger; records: Array<Record<string, unknown>> } {
  const records: Array<Record<string, unknown>> = [];
  const stream = new Writable({
    write(chunk, _enc, done) {
      for (const line of String(chunk).split("\n")) if (line) records.push(JSON.parse(line));
      done();
    },
  });
  return { logger: pino({ level: "debug" }, stream), records };
}

/** A sink that records batches and fails the first `failures` tries with the given error. */
function recordingSink(
  name: string,
  opts: {
    minSeverity?: Severity;
    failures?: number;
    batchSize?: number;
    hang?: boolean;
    attempts?: number;
  } = {},
) {
  const delivered: RenderedNotification[] = [];
  let calls = 0;
  let failuresLeft = opts.failures ?? 0;
  const sink: Sink = {
    name,
    minSeverity: opts.minSeverity ?? "INFO",
    batchSize: opts.batchSize ?? 1,
    timeoutMs: 50,
    retry: { attempts: opts.attempts ?? 3, initialDelayMs: 1, maxDelayMs: 4 },
    deliver(batch, signal) {
      calls += 1;
      if (opts.hang)
        return new Promise((_, reject) =>
          signal.addEventListener("abort", () => reject(new Error("aborted"))),
        );
      if (failuresLeft > 0) {
        failuresLeft -= 1;
        return Promise.reject(new Error(`${name} down`));
      }
      delivered.push(...batch);
      return Promise.resolve();
    },
  };
  return { sink, delivered, calls: () => calls };
}

describe("createNotifier", () => {
  it("returns from notify() before any sink is called, then delivers to every sink", async () => {
    const a = recordingSink("a");
    const b = recordingSink("b", { batchSize: 100 });
    const n = createNotifier({ context, sinks: [a.sink, b.sink] });
    n.notify({ id: "failoverCompleted", params: { clusterName: "c1" } });
    n.notify({ id: "masterAgentRunning", params: { nodeAddress: "10.0.0.1", clusterName: "c1" } });
    expect(a.calls() + b.calls()).toBe(0);
    expect(await n.flush(1000)).toEqual({ drained: true, pending: 0 });
    expect(a.delivered.map((x) => x.subject)).toEqual([
      "Failover has completed on cluster c1",
      "Master agent running on 10.0.0.1 for cluster c1",
    ]);
    expect(b.calls()).toBe(1); // both in one batch
    expect(n.stats()).toMatchObject({ accepted: 2, refused: 0, sinks: { a: { delivered: 2, pending: 0 } } });
  });

  it("filters by the sink's level but always feeds an INFO sink", async () => {
    const log = recordingSink("log");
    const mail = recordingSink("mail", { minSeverity: "WARNING" });
    const n = createNotifier({ context, sinks: [log.sink, mail.sink] });
    n.notify({ id: "masterAgentRunning", params: { nodeAddress: "x", clusterName: "c1" } });
    n.notify({ id: "failoverCompleted", params: { clusterName: "c1" } });
    n.notify({ id: "resumeTimedOut", params: { clusterName: "c1" } });
    await n.flush(1000);
    expect(log.delivered.map((x) => x.severity)).toEqual(["INFO", "WARNING", "SEVERE"]);
    expect(mail.delivered.map((x) => x.severity)).toEqual(["WARNING", "SEVERE"]);
  });

  it("retries with backoff, and a retried delivery succeeds", async () => {
    const { logger, records } = capturingLogger();
    const s = recordingSink("s", { failures: 2 });
    const n = createNotifier({ context, sinks: [s.sink], logger });
    n.notify({ id: "failoverCompleted", params: { clusterName: "c1" } });
    await n.flush(1000);
    expect(s.calls()).toBe(3);
    expect(n.stats().sinks.s).toMatchObject({ delivered: 1, failedAttempts: 2, dropped: 0 });
    const retries = records.filter((r) => r.msg === "notification delivery failed; will retry");
    expect(retries.map((r) => r.retryInMs)).toEqual([1, 2]);
  });

  it("drops after the last retry, logs the delivery error, and keeps going with the next one", async () => {
    const { logger, records } = capturingLogger();
    const s = recordingSink("s", { failures: 3 });
    const n = createNotifier({ context, sinks: [s.sink], logger });
    n.notify({ id: "failoverCompleted", params: { clusterName: "c1" } });
    n.notify({ id: "promotionStarted", params: { clusterName: "c1" } });
    await n.flush(1000);
    expect(n.stats().sinks.s).toMatchObject({ delivered: 1, failedAttempts: 3, dropped: 1 });
    const dropped = records.filter((r) => r.msg === "notification not delivered; dropped after retries");
    expect(dropped).toHaveLength(1);
    expect(dropped[0]).toMatchObject({
      level: 50,
      sink: "s",
      subject: "Failover has completed on cluster c1",
      err: { message: "s down" },
    });
    expect(s.delivered.map((x) => x.id)).toEqual(["promotionStarted"]);
  });

  it("times out a hung sink without holding up another sink", async () => {
    const { logger, records } = capturingLogger();
    const hung = recordingSink("hung", { hang: true, attempts: 1 });
    const ok = recordingSink("ok");
    const n = createNotifier({ context, sinks: [hung.sink, ok.sink], logger });
    n.notify({ id: "failoverCompleted", params: { clusterName: "c1" } });
    n.notify({ id: "failoverCompleted", params: { clusterName: "c2" } });
    await n.flush(2000);
    expect(ok.delivered).toHaveLength(2);
    expect(n.stats().sinks.hung).toMatchObject({ dropped: 2, delivered: 0 });
    expect(records.find((r) => r.sink === "hung")).toMatchObject({ err: { code: "SEND_TIMEOUT" } });
  });

  it("treats a sink that throws synchronously as a failed try, never throwing into notify()", async () => {
    const bad: Sink = {
      name: "bad",
      minSeverity: "INFO",
      batchSize: 1,
      timeoutMs: 100,
      retry: { attempts: 1, initialDelayMs: 0, maxDelayMs: 0 },
      deliver() {
        throw new Error("boom");
      },
    };
    const n = createNotifier({ context, sinks: [bad] });
    expect(() => n.notify({ id: "failoverCompleted", params: { clusterName: "c1" } })).not.toThrow();
    await n.flush(1000);
    expect(n.stats().sinks.bad).toMatchObject({ dropped: 1, failedAttempts: 1 });
  });

  it("sheds the least severe notifications when a queue is full, and logs it", async () => {
    const { logger, records } = capturingLogger();
    const s = recordingSink("s", { hang: true, attempts: 1 });
    const n = createNotifier({ context, sinks: [s.sink], logger, queueCapacity: 2 });
    n.notify({ id: "resumeTimedOut", params: { clusterName: "first" } }); // taken by the worker
    await new Promise((r) => setImmediate(r));
    n.notify({ id: "masterAgentRunning", params: { nodeAddress: "x", clusterName: "c1" } });
    n.notify({ id: "resumeTimedOut", params: { clusterName: "c1" } });
    n.notify({ id: "failoverCompleted", params: { clusterName: "c1" } }); // sheds the INFO one
    expect(n.stats().sinks.s).toMatchObject({ shed: 1, pending: 3 });
    expect(records.find((r) => r.code === "QUEUE_FULL")).toMatchObject({ severity: "INFO" });
    await n.close(10);
  });

  it("flush() honours its deadline; close() abandons what is left, closes sinks, and refuses later calls", async () => {
    const { logger, records } = capturingLogger();
    let closedSinks = 0;
    const s = recordingSink("s", { hang: true, attempts: 1 });
    const sink: Sink = { ...s.sink, timeoutMs: 60_000, close: async () => void closedSinks++ };
    const n = createNotifier({ context, sinks: [sink], logger });
    for (let i = 0; i < 3; i++) n.notify({ id: "failoverCompleted", params: { clusterName: `c${i}` } });
    expect(await n.flush(30)).toEqual({ drained: false, pending: 3 });
    expect(await n.close(30)).toEqual({ drained: false, pending: 3 });
    expect(closedSinks).toBe(1);
    // The hung send was cut short by close() (not left to its 60 s timeout); the rest were shed.
    expect(n.stats().sinks.s).toMatchObject({ dropped: 1, shed: 2, pending: 0, delivered: 0 });
    expect(records.find((r) => r.code === "CLOSED")).toMatchObject({ abandoned: 3 });
    n.notify({ id: "failoverCompleted", params: { clusterName: "late" } });
    expect(n.stats().refused).toBe(1);
    expect(await n.close(10)).toEqual({ drained: true, pending: 0 });
  });

  it("close() cuts a retry backoff short instead of waiting it out", async () => {
    const s = recordingSink("s", { failures: 10 });
    const sink: Sink = { ...s.sink, retry: { attempts: 5, initialDelayMs: 60_000, maxDelayMs: 60_000 } };
    const n = createNotifier({ context, sinks: [sink] });
    n.notify({ id: "failoverCompleted", params: { clusterName: "c1" } });
    await new Promise((r) => setTimeout(r, 20));
    expect(await n.close(10)).toEqual({ drained: false, pending: 1 });
    expect(s.calls()).toBe(1);
    expect(n.stats().sinks.s).toMatchObject({ dropped: 1, failedAttempts: 1, pending: 0 });
  });

  it("refuses malformed untyped input without throwing", async () => {
    const s = recordingSink("s");
    const n = createNotifier({ context, sinks: [s.sink] });
    const untyped = { id: "noSuchNotification", params: {} } as never;
    expect(() => n.notify(untyped)).not.toThrow();
    expect(() => n.notify(null as never)).not.toThrow();
    await n.flush(100);
    expect(n.stats()).toMatchObject({ accepted: 0, refused: 2 });
    expect(s.delivered).toHaveLength(0);
  });

  it("rejects bad options with a typed error", () => {
    const s = recordingSink("s");
    expect(() => createNotifier({ context, sinks: [s.sink], queueCapacity: 0 })).toThrow(
      expect.objectContaining({ code: "INVALID_OPTION" }),
    );
    expect(() => createNotifier({ context, sinks: [s.sink, s.sink] })).toThrow(/two sinks are named s/);
    expect(() =>
      createNotifier({
        context,
        sinks: [{ ...s.sink, retry: { attempts: 0, initialDelayMs: 0, maxDelayMs: 0 } }],
      }),
    ).toThrow(/sink s/);
  });

  it("stamps notifications with the injected clock", async () => {
    const s = recordingSink("s");
    const when = new Date("2030-01-01T00:00:00Z");
    const n = createNotifier({ context, sinks: [s.sink], now: () => when });
    n.notify({ id: "failoverCompleted", params: { clusterName: "c1" } });
    await n.flush(1000);
    expect(s.delivered[0]?.time).toBe(when);
  });
});

describe("close() hands what was not delivered to the cluster log", () => {
  it("a mail still retrying at close is recorded as not delivered, after the notification itself", async () => {
    const { mkdtempSync, readFileSync } = await import("node:fs");
    const { tmpdir } = await import("node:os");
    const { join } = await import("node:path");
    const { clusterLogSink, parseClusterLogLine } = await import("./sinks.ts");
    const path = join(mkdtempSync(join(tmpdir(), "efm-notifier-")), "c1.notifications.log");
    // The mail server refuses every try and the next retry is a minute away: only close() ends it.
    const mail: Sink = {
      name: "email",
      minSeverity: "INFO",
      batchSize: 1,
      timeoutMs: 1000,
      retry: { attempts: 10, initialDelayMs: 60_000, maxDelayMs: 60_000 },
      deliver: () => Promise.reject(new Error("connection refused")),
    };
    const n = createNotifier({
      context,
      sinks: [clusterLogSink({ path }), mail],
      logger: capturingLogger().logger,
    });
    n.notify({ id: "masterAgentRunning", params: { nodeAddress: "10.0.0.1", clusterName: "c1" } });
    // Wait for the two facts themselves: the cluster log has the line, the mail failed once
    // (and now sleeps a minute before its next try).
    while (
      n.stats().sinks["cluster-log"]?.delivered !== 1 ||
      (n.stats().sinks.email?.failedAttempts ?? 0) < 1
    ) {
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    const r = await n.close(50);
    expect(r).toEqual({ drained: false, pending: 1 });
    const lines = readFileSync(path, "utf8")
      .split("\n")
      .filter((l) => l !== "")
      .map((l) => parseClusterLogLine(`${l}\n`));
    expect(lines.map((l) => [l?.severity, l?.subject])).toEqual([
      ["INFO", "Master agent running on 10.0.0.1 for cluster c1"],
      [
        "WARNING",
        "Not delivered by email before the agent stopped: Master agent running on 10.0.0.1 for cluster c1",
      ],
    ]);
  });
});
