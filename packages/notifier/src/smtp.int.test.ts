import { mkdtemp, readFile, rm } from "node:fs/promises";
import { createServer as createTcpServer } from "node:net";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { monitorEventLoopDelay, performance } from "node:perf_hooks";
import { Writable } from "node:stream";
import pino from "pino";
import { SMTPServer } from "smtp-server";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Notification } from "./catalogue.ts";
import { createNotifier, type Notifier } from "./notifier.ts";
import { clusterLogSink, emailSink, parseClusterLogLine } from "./sinks.ts";

interface Received {
  mailFrom: string;
  rcptTo: string[];
  headers: Map<string, string>;
  body: string;
}

// Just enough MIME for what nodemailer writes for a plain-text message: unfolded headers and
// a 7bit or quoted-printable body.
function parseMessage(raw: string): { headers: Map<string, string>; body: string } {
  const split = raw.indexOf("\r\n\r\n");
  const headers = new Map<string, string>();
  for (const line of raw
    .slice(0, split)
    .replace(/\r\n[ \t]+/g, " ")
    .split("\r\n")) {
    const colon = line.indexOf(":");
    headers.set(line.slice(0, colon).toLowerCase(), line.slice(colon + 1).trim());
  }
  let body = raw.slice(split + 4);
  if (headers.get("content-transfer-encoding") === "quoted-printable") {
    body = Buffer.from(
      body
        .replace(/=\r\n/g, "")
        .replace(/=([0-9A-F]{2})/g, (_, h: string) => String.fromCharCode(Number.parseInt(h, 16))),
      "latin1",
    ).toString("utf8");
  }
  return { headers, body: body.replace(/\r\n/g, "\n") };
}

const received: Received[] = [];
let smtp: SMTPServer;
let smtpPort: number;
let closedPort: number;
let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "efm-notifier-smtp-int-"));
  smtp = new SMTPServer({
    authOptional: true,
    disabledCommands: ["AUTH", "STARTTLS"],
    logger: false,
    onData(stream, session, callback) {
      const chunks: Buffer[] = [];
      stream.on("data", (c: Buffer) => chunks.push(c));
      stream.on("end", () => {
        const { headers, body } = parseMessage(Buffer.concat(chunks).toString("utf8"));
        received.push({
          mailFrom: session.envelope.mailFrom ? session.envelope.mailFrom.address : "",
          rcptTo: session.envelope.rcptTo.map((r) => r.address),
          headers,
          body,
        });
        callback();
      });
    },
  });
  await new Promise<void>((resolve) => smtp.listen(0, "127.0.0.1", resolve));
  smtpPort = (smtp.server.address() as AddressInfo).port;

  // A port that was just free and is now closed: connections are refused at once.
  const probe = createTcpServer();
  await new Promise<void>((resolve) => probe.listen(0, "127.0.0.1", resolve));
  closedPort = (probe.address() as AddressInfo).port;
  await new Promise<void>((resolve) => probe.close(() => resolve()));
});

afterAll(async () => {
  await new Promise<void>((resolve) => smtp.close(() => resolve()));
  await rm(dir, { recursive: true, force: true });
});

function capturingLogger() {
  const records: Array<Record<string, unknown>> = [];
  const stream = new Writable({
    write(chunk, _enc, done) {
      for (const line of String(chunk).split("\n")) if (line) records.push(JSON.parse(line));
      done();
    },
  });
  return { logger: pino({ level: "info" }, stream), records };
}

async function readLog(path: string) {
  return (await readFile(path, "utf8"))
    .split("\n")
    .filter((l) => l !== "")
    .map((l) => parseClusterLogLine(l));
}

const sample: Notification[] = [
  { id: "masterAgentRunning", params: { nodeAddress: "10.0.1.11", clusterName: "acctg" } },
  { id: "assigningVip", params: { nodeAddress: "10.0.1.11", vipAddress: "10.0.1.50", scriptResults: "ok" } },
  { id: "failoverCompleted", params: { clusterName: "acctg" } },
  { id: "standbyPromoteVipAssigned", params: { vipAddress: "10.0.1.50" } },
  {
    id: "fencingScriptError",
    params: { scriptName: "/usr/local/bin/fence.sh", exitCode: 1, scriptResults: "nope" },
  },
  { id: "dbConnectInvalidPassword", params: { nodeAddress: "10.0.1.12", userName: "efm" } },
];

describe("e-mail through a real SMTP server", () => {
  let notifier: Notifier;
  const logPath = () => join(dir, "live", "acctg.log");

  afterAll(async () => {
    await notifier?.close(1000);
  });

  it("delivers a sample of all three severities with recipients, sender, subject and body header", async () => {
    notifier = createNotifier({
      context: {
        nodeAddress: "10.0.1.11",
        clusterName: "acctg",
        databaseName: "postgres",
        vipEnabled: true,
        textPrefix: "[acctg]",
      },
      sinks: [
        clusterLogSink({ path: logPath() }),
        emailSink({
          recipients: ["dba@example.com", "oncall@example.com"],
          from: "efm@db1.example.com",
          host: "127.0.0.1",
          port: smtpPort,
        }),
      ],
    });
    received.length = 0;
    for (const n of sample) {
      notifier.notify(n, [
        { role: "Master", address: "10.0.1.11", agent: "UP", db: "UP" },
        { role: "Standby", address: "10.0.1.12", agent: "UP", db: "UP" },
      ]);
    }
    expect(await notifier.flush(20_000)).toEqual({ drained: true, pending: 0 });

    expect(received).toHaveLength(sample.length);
    const expectedSubjects = [
      "[acctg] Master agent running on 10.0.1.11 for cluster acctg",
      "[acctg] Assigning VIP to node 10.0.1.11",
      "[acctg] Failover has completed on cluster acctg",
      "[acctg] Standby agent tried to promote, but VIP appears to still be assigned",
      "[acctg] Fencing script error",
      "[acctg] Unable to connect to DB on 10.0.1.12",
    ];
    expect(received.map((r) => r.headers.get("subject"))).toEqual(expectedSubjects);
    expect(received.map((r) => r.headers.get("x-efm-severity"))).toEqual([
      "INFO",
      "INFO",
      "WARNING",
      "WARNING",
      "SEVERE",
      "SEVERE",
    ]);
    for (const r of received) {
      expect(r.mailFrom).toBe("efm@db1.example.com");
      expect(r.headers.get("from")).toBe("efm@db1.example.com");
      expect(r.rcptTo).toEqual(["dba@example.com", "oncall@example.com"]);
      expect(r.headers.get("to")).toBe("dba@example.com, oncall@example.com");
      expect(
        r.body.startsWith(
          "EFM node:      10.0.1.11\nCluster name:  acctg\nDatabase name: postgres\nVIP support:   ENABLED\n\n",
        ),
      ).toBe(true);
      expect(r.body).toContain(" Standby     10.0.1.12            UP     UP");
    }
    expect(received[3]?.body).toContain(
      "The standby EFM agent tried to promote itself, but could not because the virtual IP address (10.0.1.50) appears to still be assigned to another node.",
    );
    expect(received[4]?.body).toContain("Exit Value: 1\nResults: nope\nFailover has NOT occurred.");
    expect(received[5]?.body).toContain("Invalid password for db.user=efm.");

    const log = await readLog(logPath());
    expect(log.map((l) => l?.subject)).toEqual(expectedSubjects);
    expect(notifier.stats().sinks.email).toMatchObject({ delivered: 6, dropped: 0, failedAttempts: 0 });
  });

  it("mails only notifications at or above the e-mail sink's minSeverity, but logs all", async () => {
    const path = join(dir, "level", "acctg.log");
    const n = createNotifier({
      context: { nodeAddress: "10.0.1.11", clusterName: "acctg", databaseName: "", vipEnabled: false },
      sinks: [
        clusterLogSink({ path }),
        emailSink({
          recipients: ["dba@example.com"],
          from: "failover@example.com",
          host: "127.0.0.1",
          port: smtpPort,
          minSeverity: "SEVERE",
        }),
      ],
    });
    received.length = 0;
    for (const x of sample) n.notify(x);
    await n.close(20_000);
    expect(received.map((r) => r.headers.get("subject"))).toEqual([
      "Fencing script error",
      "Unable to connect to DB on 10.0.1.12",
    ]);
    expect(received[0]?.mailFrom).toBe("failover@example.com");
    expect(await readLog(path)).toHaveLength(sample.length);
  });
});

describe("with the SMTP server down", () => {
  it("accepts 1,000 notifications at once, logs every one to the cluster log, and logs each delivery error", async () => {
    const path = join(dir, "down", "acctg.log");
    const { logger, records } = capturingLogger();
    const n = createNotifier({
      context: { nodeAddress: "10.0.1.11", clusterName: "acctg", databaseName: "", vipEnabled: false },
      sinks: [
        clusterLogSink({ path }),
        emailSink({
          recipients: ["dba@example.com"],
          from: "efm@db1.example.com",
          host: "127.0.0.1",
          port: closedPort,
          retry: { attempts: 2, initialDelayMs: 5, maxDelayMs: 5 },
          timeoutMs: 2000,
        }),
      ],
      logger,
    });
    const loop = monitorEventLoopDelay({ resolution: 1 });
    loop.enable();
    const started = performance.now();
    for (let i = 0; i < 1000; i++) {
      n.notify({ id: "failoverCompleted", params: { clusterName: `acctg-${i}` } });
    }
    const notifyMs = performance.now() - started;
    const flushed = await n.flush(60_000);
    loop.disable();
    // Numbers for the report; the bench prints them too. Tests assert behaviour only.
    console.log(
      `1000 notify() with SMTP down: ${notifyMs.toFixed(1)} ms in total; event loop delay max ${(loop.max / 1e6).toFixed(1)} ms, p99 ${(loop.percentile(99) / 1e6).toFixed(1)} ms`,
    );

    expect(flushed).toEqual({ drained: true, pending: 0 });
    const log = await readLog(path);
    expect(log).toHaveLength(1000);
    expect(new Set(log.map((l) => l?.subject)).size).toBe(1000);
    expect(log[999]?.subject).toBe("Failover has completed on cluster acctg-999");

    const stats = n.stats();
    expect(stats.accepted).toBe(1000);
    expect(stats.sinks["cluster-log"]).toMatchObject({ delivered: 1000, dropped: 0, shed: 0 });
    expect(stats.sinks.email).toMatchObject({ delivered: 0, dropped: 1000, failedAttempts: 2000, shed: 0 });

    const dropped = records.filter((r) => r.msg === "notification not delivered; dropped after retries");
    expect(dropped).toHaveLength(1000);
    expect(dropped[0]).toMatchObject({
      sink: "email",
      subject: "Failover has completed on cluster acctg-0",
      err: { code: "SMTP_DELIVERY_FAILED", message: expect.stringMatching(/ECONNREFUSED|ECONNECTION/) },
    });
    expect(records.filter((r) => r.msg === "notification delivery failed; will retry")).toHaveLength(1000);
    expect(await n.close(1000)).toEqual({ drained: true, pending: 0 });
  });
});
