import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { connect, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import pino from "pino";
import { afterAll, describe, expect, test } from "vitest";
import { adminRequest } from "./client.ts";
import { startAdminServer, writeTokenFile } from "./server.ts";

// Admin ports 17820-17822 belong to this file.
const dir = mkdtempSync(join(tmpdir(), "ee17-admin-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const open = (port: number): Promise<Socket> =>
  new Promise((resolve, reject) => {
    const s = connect({ host: "127.0.0.1", port });
    s.once("connect", () => resolve(s));
    s.once("error", reject);
  });
const closed = (s: Socket): Promise<void> =>
  new Promise((r) => {
    if (s.destroyed) return r();
    s.once("close", () => r());
    s.on("error", () => {});
    s.resume();
  });

describe("admin token file", () => {
  test("is mode 0640 on every start, whatever mode the last one had", () => {
    const path = join(dir, "acctg.token");
    writeFileSync(path, "old\n", { mode: 0o644 });
    chmodSync(path, 0o666);
    const token = writeTokenFile(path);
    expect(statSync(path).mode & 0o777).toBe(0o640);
    expect(readFileSync(path, "utf8")).toBe(`${token}\n`);
  });
});

describe("admin channel limits", () => {
  test("a request trickled a byte at a time is cut off at the absolute deadline", async () => {
    const server = await startAdminServer({
      port: 17820,
      token: "t",
      logger: pino({ level: "silent" }),
      handle: async () => "ok",
      requestDeadlineMs: 300,
    });
    try {
      const s = await open(17820);
      const gone = closed(s);
      // Every byte resets an idle timer; only an absolute deadline ends this.
      let sent = 0;
      const drip = setInterval(() => {
        if (s.destroyed) return;
        s.write("{");
        sent++;
      }, 20);
      await gone;
      clearInterval(drip);
      expect(sent).toBeGreaterThan(0);
      // A proper request still works.
      expect(await adminRequest(17820, { command: "cluster-status" })).toBe("ok");
    } finally {
      server.close();
    }
  });

  test("connections beyond the cap are closed at once", async () => {
    const server = await startAdminServer({
      port: 17821,
      token: "t",
      logger: pino({ level: "silent" }),
      handle: async () => "ok",
      maxConnections: 2,
      requestDeadlineMs: 60_000,
    });
    try {
      const a = await open(17821);
      const b = await open(17821);
      // Served in accept order: the server has counted a and b when c arrives.
      const c = await open(17821);
      await closed(c);
      expect([a.destroyed, b.destroyed]).toEqual([false, false]);
      a.destroy();
      b.destroy();
    } finally {
      server.close();
    }
  });

  test("wrong-token refusals are logged once per 10 s, with the count left out", async () => {
    const lines: Record<string, unknown>[] = [];
    const sink = new Writable({
      write(chunk, _enc, cb) {
        for (const l of String(chunk).split("\n").filter(Boolean)) lines.push(JSON.parse(l));
        cb();
      },
    });
    const server = await startAdminServer({
      port: 17822,
      token: "right",
      logger: pino({ level: "warn" }, sink),
      handle: async () => "ok",
    });
    try {
      const t0 = Date.now();
      for (let i = 0; i < 20; i++)
        await expect(adminRequest(17822, { command: "stop-cluster", token: "wrong" })).rejects.toMatchObject({
          code: "UNAUTHORIZED",
        });
      const refused = lines.filter((l) => String(l.msg).includes("wrong token"));
      // One line per started 10 s (one, unless this machine stalled for seconds).
      expect(refused.length).toBeGreaterThanOrEqual(1);
      expect(refused.length).toBeLessThanOrEqual(1 + Math.floor((Date.now() - t0) / 10_000));
      expect(refused[0]!.suppressed).toBe(0);
    } finally {
      server.close();
    }
  });
});
