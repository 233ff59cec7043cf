import { harnessConfig, initialState } from "@efm/failover-core";
import type { Member } from "@efm/membership";
import { describe, expect, test } from "vitest";
import type { EventLoop } from "../loop.ts";
import { adminHandler, STILL_STARTING } from "./handler.ts";

/**
 * The start-up gate of the admin commands: an agent whose start-up checks have not ended refuses
 * a command that changes the cluster once the bounded wait is over, and changes nothing first.
 * The engine is failover-core's real initial state (phase "starting"); membership is reduced to
 * the calls the handler makes, each one recorded.
 */
function starting(ready: Promise<void>) {
  const calls: string[] = [];
  const member = {
    view: () => null,
    config: () => ({ version: 1, voters: ["127.0.20.11:17730"], allowed: ["127.0.20.11"] }),
    allow: async (host: string) => {
      calls.push(`allow ${host}`);
    },
    disallow: async (host: string) => {
      calls.push(`disallow ${host}`);
    },
  } as unknown as Member;
  const state = initialState(harnessConfig("127.0.20.11:17730"));
  const loop = {
    current: state,
    now: () => 0,
    dispatch: (e: { type: string }) => calls.push(`dispatch ${e.type}`),
  } as unknown as EventLoop;
  const handle = adminHandler({
    cluster: "acctg",
    self: "127.0.20.11:17730",
    member,
    loop,
    pendingReplies: new Map(),
    stopCluster: async () => {},
    ready,
    startupWaitMs: 20,
  });
  return { handle, calls, state };
}

describe("admin commands during start-up", () => {
  test("add-node, set-priority, remove-node and promote fail with 'the agent is still starting' and change nothing", async () => {
    const never = new Promise<void>(() => {});
    const { handle, calls, state } = starting(never);
    expect(state.phase).toBe("starting");
    for (const req of [
      { command: "add-node", address: "127.0.20.12", priority: 1 },
      { command: "set-priority", address: "127.0.20.12", priority: 1 },
      { command: "remove-node", address: "127.0.20.11" },
      { command: "promote", force: true },
      { command: "resume" },
    ] as const) {
      await expect(handle({ ...req, token: "t" } as never)).rejects.toMatchObject({
        code: "STARTING",
        message: STILL_STARTING,
      });
    }
    expect(calls).toEqual([]);
  });

  test("a bad address is refused before the wait and before any change", async () => {
    const { handle, calls } = starting(new Promise<void>(() => {}));
    await expect(
      handle({ command: "add-node", address: "127.0.4.300", token: "t" } as never),
    ).rejects.toMatchObject({ code: "BAD_REQUEST", message: '"127.0.4.300" is not an IPv4 or IPv6 address' });
    expect(calls).toEqual([]);
  });

  test("a switchover's bad target, or a target without --switchover, is refused before any change", async () => {
    const { handle, calls } = starting(new Promise<void>(() => {}));
    await expect(
      handle({ command: "promote", force: false, switchover: true, to: "db-2", token: "t" } as never),
    ).rejects.toMatchObject({
      code: "BAD_REQUEST",
      message: expect.stringContaining('"db-2" is not an IPv4'),
    });
    await expect(
      handle({ command: "promote", force: false, switchover: false, to: "127.0.20.12", token: "t" } as never),
    ).rejects.toMatchObject({ code: "BAD_REQUEST", message: "a target (--to) needs --switchover" });
    expect(calls).toEqual([]);
  });

  test("the status is answered at once while starting, the node flagged as starting", async () => {
    const { handle } = starting(new Promise<void>(() => {}));
    const s = (await handle({ command: "cluster-status" } as never)) as {
      nodes: Array<Record<string, unknown>>;
    };
    expect(s.nodes).toEqual([
      { address: "127.0.20.11", type: "Idle", agent: "UP", db: "UNKNOWN", info: "starting", starting: true },
    ]);
  });
});

/**
 * A running cluster as the handler sees it: this agent (127.0.20.11) is the master, 127.0.20.12
 * a standby, both in a quorate view. The engine's reply to a dispatched command comes back
 * through pendingReplies, as the event loop answers it.
 */
function running() {
  const self = "127.0.20.11:17730";
  const standby = "127.0.20.12:17730";
  const allowed = ["127.0.20.11", "127.0.20.12"];
  const calls: string[] = [];
  const member = {
    view: () => null,
    config: () => ({ version: 1, voters: [self, standby], allowed: [...allowed] }),
    allow: async (host: string) => {
      calls.push(`allow ${host}`);
      if (!allowed.includes(host)) allowed.push(host);
    },
    disallow: async (host: string) => {
      calls.push(`disallow ${host}`);
      allowed.splice(allowed.indexOf(host), 1);
    },
  } as unknown as Member;
  const base = initialState(harnessConfig(self));
  const state = {
    ...base,
    phase: "running",
    role: "Master",
    db: "UP",
    view: {
      epoch: 2,
      members: [{ address: self }, { address: standby }],
      coordinator: self,
      quorate: true,
      voters: [self, standby],
    },
    peers: { [standby]: { role: "Standby", db: "UP", starting: false } },
    allowed: [self, standby],
    priority: [standby],
  };
  const pendingReplies = new Map<string, (r: { ok: boolean; message: string }) => void>();
  const replies: Record<string, string> = {
    removeNode: "remove-node signal sent to local agent.",
    addNode: "add-node signal sent to local agent.",
  };
  const loop = {
    current: state,
    now: () => 0,
    dispatch: (e: { type: string; requestId: string; command: { kind: string } }) => {
      calls.push(`dispatch ${e.command.kind}`);
      pendingReplies.get(e.requestId)?.({ ok: true, message: replies[e.command.kind] ?? "" });
    },
  } as unknown as EventLoop;
  const handle = adminHandler({
    cluster: "acctg",
    self,
    member,
    loop,
    pendingReplies: pendingReplies as never,
    stopCluster: async () => {},
  });
  return { handle, calls };
}

describe("list commands on a running cluster", () => {
  test("remove-node says what it removed from the allowed node host list, as add-node does", async () => {
    const { handle, calls } = running();
    await expect(
      handle({ command: "remove-node", address: "127.0.20.12", token: "t" } as never),
    ).resolves.toBe(
      "remove-node signal sent to local agent.\nRemoved from the allowed node host list: 127.0.20.12",
    );
    expect(calls).toEqual(["disallow 127.0.20.12", "dispatch removeNode"]);
  });

  test("the master cannot be given a standby priority (add-node with a priority, set-priority); nothing changes", async () => {
    const { handle, calls } = running();
    for (const req of [
      { command: "add-node", address: "127.0.20.11", priority: 1 },
      { command: "set-priority", address: "127.0.20.11", priority: 1 },
    ]) {
      await expect(handle({ ...req, token: "t" } as never)).rejects.toMatchObject({
        code: "REFUSED",
        message: "127.0.20.11 is the master: only a standby can be in the standby priority list",
      });
    }
    expect(calls).toEqual([]);
    // The standby still can.
    await expect(
      handle({ command: "set-priority", address: "127.0.20.12", priority: 1, token: "t" } as never),
    ).resolves.toContain("127.0.20.12 has priority 1");
  });
});
