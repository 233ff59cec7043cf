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
