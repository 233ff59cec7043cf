import type { FailoverAction, FailoverEvent, FailoverState, StepResult } from "@efm/failover-core";
import type { Logger } from "pino";
import { describe, expect, it } from "vitest";
import { EventLoop, type Executors } from "./loop.ts";

/** A logger that keeps what was logged at error level. */
function recordingLogger(): { log: Logger; errors: string[] } {
  const errors: string[] = [];
  const noop = () => {};
  const log = {
    error: (_obj: unknown, msg?: string) => errors.push(msg ?? ""),
    warn: noop,
    info: noop,
    debug: noop,
    trace: noop,
  } as unknown as Logger;
  return { log, errors };
}

describe("EventLoop", () => {
  it("logs an action it does not know and keeps processing events", () => {
    const seen: string[] = [];
    const step = (state: FailoverState, event: FailoverEvent): StepResult => {
      seen.push(event.type);
      const actions =
        event.type === "started"
          ? [{ type: "fromANewerEngine", token: "t1" } as unknown as FailoverAction]
          : [{ type: "exit", code: 0, reason: "done" } as FailoverAction];
      return { state, actions, transitions: [] } as unknown as StepResult;
    };
    const exits: string[] = [];
    const exec = { exit: (_code: number, reason: string) => exits.push(reason) } as unknown as Executors;
    const { log, errors } = recordingLogger();
    const loop = new EventLoop({} as FailoverState, step, exec, log, () => 1000);
    expect(() => loop.dispatch({ type: "started", now: 1000 })).not.toThrow();
    expect(errors).toHaveLength(1);
    loop.dispatch({ type: "shutdown", now: 1001 });
    expect(seen).toEqual(["started", "shutdown"]);
    expect(exits).toEqual(["done"]);
    loop.stop();
  });

  it("answers checkPromotable with the executor's verdict, and a rejection as not promotable", async () => {
    const results: FailoverEvent[] = [];
    const step = (state: FailoverState, event: FailoverEvent): StepResult => {
      if (event.type === "promotableChecked") results.push(event);
      const actions =
        event.type === "started" || event.type === "shutdown"
          ? [{ type: "checkPromotable", token: event.type } as FailoverAction]
          : [];
      return { state, actions, transitions: [] } as unknown as StepResult;
    };
    let calls = 0;
    const exec = {
      checkPromotable: async () => {
        calls++;
        if (calls === 1) return { ok: false, error: "cannot connect to the database" };
        throw new Error("helper exited with 1");
      },
    } as unknown as Executors;
    const loop = new EventLoop({} as FailoverState, step, exec, recordingLogger().log, () => 5);
    loop.dispatch({ type: "started", now: 5 });
    loop.dispatch({ type: "shutdown", now: 5 });
    await new Promise((r) => setTimeout(r, 0));
    expect(results).toEqual([
      {
        type: "promotableChecked",
        now: 5,
        token: "started",
        ok: false,
        error: "cannot connect to the database",
      },
      { type: "promotableChecked", now: 5, token: "shutdown", ok: false, error: "helper exited with 1" },
    ]);
    loop.stop();
  });
});
