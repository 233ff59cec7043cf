import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, unlinkSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { ClusterSnapshot } from "@efm/failover-core";
import pino from "pino";
import { afterAll, describe, expect, test } from "vitest";
import { adminRequest } from "./admin/client.ts";
import { resolveAddress } from "./admin/handler.ts";
import { startAdminServer } from "./admin/server.ts";
import { resolveDirs } from "./dirs.ts";
import { AgentError } from "./errors.ts";
import { acquireLock } from "./lock.ts";
import { statusFromSnapshot } from "./state.ts";

const dir = mkdtempSync(join(tmpdir(), "efm-agent-parts-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("lock file", () => {
  test("a live holder refuses a second agent; a dead holder's lock is taken over", async () => {
    const path = join(dir, "acctg.lock");
    const lock = acquireLock(path);
    expect(() => acquireLock(path)).toThrow(AgentError);
    expect(() => acquireLock(path)).toThrow(/already runs this cluster/);
    expect(lock.stillHeld()).toBe(true);
    lock.release();
    // A pid that no longer exists: a crashed agent.
    const child = spawn(process.execPath, ["-e", ""]);
    const pid = child.pid ?? 0;
    await new Promise((r) => child.on("exit", r));
    writeFileSync(path, `${pid}\n`);
    const again = acquireLock(path);
    expect(again.stillHeld()).toBe(true);
    unlinkSync(path);
    expect(again.stillHeld()).toBe(false);
  });
});

test("directories: environment, then properties, then FHS defaults", () => {
  expect(resolveDirs({}, {})).toEqual({
    lockDir: "/var/lock/efm",
    logDir: "/var/log/efm",
    runDir: "/run/efm",
    stateDir: "/var/lib/efm",
  });
  expect(resolveDirs({ logDir: "/srv/log" }, { EFM_RUN_DIR: "/tmp/r" })).toMatchObject({
    logDir: "/srv/log",
    runDir: "/tmp/r",
  });
  expect(resolveDirs({ logDir: "/srv/log" }, { EFM_LOG_DIR: "/tmp/l" }).logDir).toBe("/tmp/l");
});

test("CLI addresses resolve to members' ip:port", () => {
  const known = ["10.0.1.8:7800", "10.0.1.9:7801"];
  expect(resolveAddress("10.0.1.9", "10.0.1.8:7800", known)).toBe("10.0.1.9:7801");
  expect(resolveAddress("10.0.1.9:7805", "10.0.1.8:7800", known)).toBe("10.0.1.9:7805");
  expect(resolveAddress("10.0.1.20", "10.0.1.8:7800", known)).toBe("10.0.1.20:7800");
  expect(resolveAddress("fd00::5", "[fd00::1]:7800", [])).toBe("[fd00::5]:7800");
});

test("status shows nodes by address and lists the messages an operator needs", () => {
  const snap: ClusterSnapshot = {
    clusterName: "acctg",
    self: "10.0.1.8:7800",
    phase: "running",
    role: "Master",
    epoch: 3,
    coordinator: "10.0.1.8:7800",
    quorate: true,
    members: [
      { address: "10.0.1.8:7800", role: "Master", agent: "UP", db: "UP", starting: false },
      { address: "10.0.1.9:7800", role: "Standby", agent: "UP", db: "UP", starting: true },
      { address: "10.0.1.10:7800", role: null, agent: "DOWN", db: "UNKNOWN", starting: false },
    ],
    allowed: [],
    priority: ["10.0.1.9:7800"],
    promoting: null,
    failoverDisabled: true,
    attention: null,
    rejoin: null,
    rejoinProblem: null,
    lastReason: "",
  };
  const s = statusFromSnapshot(
    snap,
    ["10.0.1.8", "10.0.1.9", "10.0.1.10"],
    ["10.0.1.8:7800", "10.0.1.9:7800", "10.0.1.10:7800"],
  );
  expect(s.nodes.map((n) => [n.address, n.type, n.agent])).toEqual([
    ["10.0.1.8", "Master", "UP"],
    ["10.0.1.9", "Standby", "UP"],
    ["10.0.1.10", "Idle", "DOWN"],
  ]);
  expect(s.failoverPriority).toEqual(["10.0.1.9"]);
  // The standby has not finished its start-up checks: Info says so and the JSON flag is set.
  expect(s.nodes.map((n) => [n.info, n.starting ?? false])).toEqual([
    ["", false],
    ["starting", true],
    ["", false],
  ]);
  // Issue 16: this node's rejoin in progress, or why it was refused, in Info and the messages.
  const rejoining = statusFromSnapshot(
    { ...snap, role: "Idle", rejoin: { master: "10.0.1.9:7800" } },
    [],
    ["10.0.1.8:7800", "10.0.1.9:7800"],
  );
  expect(rejoining.nodes[0]).toMatchObject({ info: "rejoining 10.0.1.9" });
  const refused = statusFromSnapshot(
    { ...snap, role: "Idle", rejoinProblem: "Could not rejoin as a standby of 10.0.1.9:7800: no." },
    [],
    ["10.0.1.8:7800", "10.0.1.9:7800"],
  );
  expect(refused.nodes[0]).toMatchObject({ info: "rejoin refused" });
  expect(refused.messages).toContain("Could not rejoin as a standby of 10.0.1.9:7800: no.");
  // synchronous.mode: the published set, by host; nothing said with the mode off (no field).
  const voters = ["10.0.1.8:7800", "10.0.1.9:7800"];
  expect(statusFromSnapshot({ ...snap, syncStandbys: ["10.0.1.9:7800"] }, [], voters).messages).toContain(
    "Synchronous standbys (the only ones a failover may promote): 10.0.1.9.",
  );
  expect(statusFromSnapshot({ ...snap, syncStandbys: [] }, [], voters).messages).toContain(
    "Synchronous standbys: none published (a failover may promote any standby).",
  );
  expect(statusFromSnapshot(snap, [], voters).messages.join(" ")).not.toContain("Synchronous");
  // A lost witness stays a Witness (its agent DOWN) rather than an Idle node with a database.
  const lost = statusFromSnapshot(
    snap,
    [],
    ["10.0.1.8:7800", "10.0.1.9:7800", "10.0.1.10:7800"],
    new Map([["10.0.1.10:7800", "Witness"]]),
  );
  expect(lost.nodes[2]).toMatchObject({ address: "10.0.1.10", type: "Witness", agent: "DOWN" });
  // A DOWN member that is no longer a voter (it left gracefully) is not shown at all.
  expect(statusFromSnapshot({ ...snap, failoverDisabled: false }, [], ["10.0.1.8:7800"]).nodes).toHaveLength(
    2,
  );
  expect(s.messages).toContain("Failover is disabled until the master agent is restarted.");
});

describe("admin server", () => {
  const send = (port: number, text: string) =>
    new Promise<string>((resolve) => {
      const sock = connect({ host: "127.0.0.1", port });
      let buf = "";
      sock.on("connect", () => sock.write(text));
      sock.on("data", (c) => {
        buf += c.toString();
      });
      sock.on("close", () => resolve(buf));
      sock.on("error", () => resolve(buf));
    });

  test("open commands answer; privileged ones need the token; garbage gets an error, not a crash", async () => {
    const seen: string[] = [];
    const server = await startAdminServer({
      port: 0,
      token: "s3cret",
      logger: pino({ level: "silent" }),
      handle: async (req) => {
        seen.push(req.command);
        return req.command === "stop-cluster" ? "stopping" : { ok: 1 };
      },
    });
    const port = (server.address() as { port: number }).port;
    try {
      expect(await adminRequest(port, { command: "cluster-status" })).toEqual({ ok: 1 });
      await expect(adminRequest(port, { command: "stop-cluster", token: "wrong" })).rejects.toMatchObject({
        code: "UNAUTHORIZED",
      });
      expect(await adminRequest(port, { command: "stop-cluster", token: "s3cret" })).toBe("stopping");
      expect(JSON.parse(await send(port, "{not json\n"))).toMatchObject({
        ok: false,
        error: { code: "BAD_REQUEST" },
      });
      expect(JSON.parse(await send(port, '{"command":"format-disk"}\n'))).toMatchObject({ ok: false });
      expect(
        JSON.parse(await send(port, '{"command":"add-node","token":"s3cret","address":5}\n')),
      ).toMatchObject({
        ok: false,
        error: { code: "BAD_REQUEST" },
      });
      expect(JSON.parse(await send(port, `${"x".repeat(70_000)}`))).toMatchObject({ ok: false });
      expect(seen).toEqual(["cluster-status", "stop-cluster"]);
    } finally {
      server.close();
    }
  });

  test("no agent listening: a clear message", async () => {
    await expect(adminRequest(1, { command: "cluster-status" })).rejects.toThrow(
      /is the local agent running\?/,
    );
  });
});

test("admin commands name nodes by IP address only: anything else is refused with the reason", async () => {
  const { checkAddress } = await import("./admin/handler.ts");
  expect(checkAddress("127.0.20.12")).toBeNull();
  expect(checkAddress("127.0.20.12:17730")).toBeNull();
  expect(checkAddress("fd00::12")).toBeNull();
  expect(checkAddress("127.0.4.300")).toBe('"127.0.4.300" is not an IPv4 or IPv6 address');
  expect(checkAddress("foo")).toBe(
    '"foo" is not an IPv4 or IPv6 address (efm resolves host names before sending them)',
  );
});
