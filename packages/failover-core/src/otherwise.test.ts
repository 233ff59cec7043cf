import { describe, expect, it } from "vitest";
import type { AnyEvent } from "./context.ts";
import { Ctx } from "./context.ts";
import { harnessConfig } from "./harness.ts";
import { initialState, matchRow, step } from "./step.ts";
import { decisionTable, transitions } from "./table.ts";
import {
  COMMAND_KINDS,
  EVENT_TYPES,
  eventKeys,
  MESSAGE_TYPES,
  otherwiseRows,
  ROW_STATES,
  rowCovers,
} from "./table/otherwise.ts";
import { row, type TransitionRow, unguarded } from "./table/rows.ts";
import type { Command, FailoverEvent, FailoverState, PeerMessage } from "./types.ts";

// The vocabulary lists name every member of their unions: a new event type, message or command
// that is missing here fails the typecheck (so it can never go without its otherwise rows).
type Missing<All, Listed> = [Exclude<All, Listed>] extends [never] ? true : Exclude<All, Listed>;
const eventsComplete: Missing<
  Exclude<AnyEvent["type"], "timer" | "messageReceived" | "command">,
  (typeof EVENT_TYPES)[number]
> = true;
const messagesComplete: Missing<PeerMessage["type"], (typeof MESSAGE_TYPES)[number]> = true;
const commandsComplete: Missing<Command["kind"], (typeof COMMAND_KINDS)[number]> = true;

/** The row that ends a (state, key) pair: the first unguarded hand-written row, else generated ones. */
function enders(rows: readonly TransitionRow[], state: (typeof ROW_STATES)[number], key: string) {
  const covering = rows.filter((r) => rowCovers(r, state, key));
  const hand = covering.filter((r) => !r.generated && unguarded(r));
  const generated = covering.filter((r) => r.generated);
  return { hand, generated };
}

describe("generated otherwise rows (issue 12)", () => {
  it("list every event type, message and command (checked by the typecheck)", () => {
    expect([eventsComplete, messagesComplete, commandsComplete]).toEqual([true, true, true]);
  });

  it("every (state, event key) pair ends in an unguarded hand-written row or exactly one generated row, never both", () => {
    const table = decisionTable();
    const problems: string[] = [];
    let pairs = 0;
    for (const key of eventKeys(transitions)) {
      for (const state of ROW_STATES) {
        pairs++;
        const { hand, generated } = enders(table, state, key);
        if (generated.length > 1) problems.push(`${state} ${key}: ${generated.length} generated rows`);
        if (hand.length > 0 && generated.length > 0)
          problems.push(`${state} ${key}: generated ${generated[0]!.id} beside hand-written ${hand[0]!.id}`);
        if (hand.length === 0 && generated.length === 0) problems.push(`${state} ${key}: no row at all`);
      }
    }
    expect(problems).toEqual([]);
    // The vocabulary really is the product the table is generated over (8 states, every key).
    expect(pairs).toBe(ROW_STATES.length * eventKeys(transitions).length);
    expect(pairs).toBeGreaterThan(8 * (EVENT_TYPES.length + MESSAGE_TYPES.length + COMMAND_KINDS.length));
  });

  it("come after every hand-written row, one state and one key each, with unique ids saying stale or ignore", () => {
    const table = decisionTable();
    expect(table.slice(0, transitions.length)).toEqual(transitions);
    const generated = table.slice(transitions.length);
    expect(generated.length).toBeGreaterThan(0);
    expect(generated.every((r) => r.generated === true)).toBe(true);
    expect(transitions.some((r) => r.generated)).toBe(false);
    expect(new Set(table.map((r) => r.id)).size).toBe(table.length);
    for (const r of generated) {
      expect(r.from).toHaveLength(1);
      expect(r.to).toBe("unchanged");
      expect(r.actions).toBe("none");
      expect(r.id).toBe(`${r.id.startsWith("stale.") ? "stale" : "ignore"}.${r.from[0]}.${r.on}`);
      // "stale" exactly where guarded rows for this key exist in this state, and it names them.
      const guarded = transitions.filter((t) => rowCovers(t, r.from[0] as (typeof ROW_STATES)[number], r.on));
      expect(r.id.startsWith("stale."), r.id).toBe(guarded.length > 0);
      for (const t of guarded) expect(r.guard).toContain(t.id);
    }
  });

  it("fill exactly the gaps: an unguarded hand-written row removes its pairs' generated rows", () => {
    const fields = {
      from: ["Standby"] as const,
      on: "timer:*",
      guard: "always",
      to: "unchanged" as const,
      actions: "none",
      reason: "test",
      run: () => {},
    };
    const catchAll = row({ ...fields, id: "test.catchAll" });
    const before = otherwiseRows(transitions).filter(
      (r) => r.from[0] === "Standby" && r.on.startsWith("timer:"),
    );
    expect(before.length).toBeGreaterThan(0);
    const after = otherwiseRows([...transitions, catchAll]);
    expect(after.filter((r) => r.from[0] === "Standby" && r.on.startsWith("timer:"))).toEqual([]);
    // A guarded row turns "ignore" into "stale" for its pairs, and adds none.
    const guarded = row({ ...fields, id: "test.guarded", when: () => false });
    const withGuarded = otherwiseRows([...transitions, guarded]);
    expect(withGuarded).toHaveLength(otherwiseRows(transitions).length);
    for (const r of before) {
      expect(withGuarded.find((g) => g.id === `stale.Standby.${r.on}`)?.guard).toContain("test.guarded");
    }
  });

  it("an event whose pair has a generated row changes nothing and is not logged as a transition", () => {
    // A start-up timer reaching a starting agent (no row handles it there), a VIP test result
    // (only a promotion's probe asks for one) and a fence result nobody asked for (its token is
    // no fence's: the self-fence rows' guards all refuse it).
    let s: FailoverState = initialState(harnessConfig("b", { clusterName: "acctg" }));
    s = step(s, { type: "started", now: 0 }).state;
    expect(s.phase).toBe("starting");
    const cases: [FailoverEvent, string][] = [
      [{ type: "timer", now: 1, name: "startupChecks" }, "ignore.starting.timer:startupChecks"],
      [{ type: "vipPinged", now: 1, token: "nobody-asked", reachable: true }, "ignore.starting.vipPinged"],
      [{ type: "dbFenced", now: 1, token: "nobody-asked", ok: true }, "stale.starting.dbFenced"],
    ];
    for (const [event, id] of cases) {
      const generatedRow = decisionTable().find((r) => r.id === id);
      expect(generatedRow, id).toBeDefined();
      expect(matchRow(new Ctx(s, event.now), event)).toBeUndefined();
      const r = step(s, event);
      expect(r.transitions).toEqual([]);
      expect(r.actions).toEqual([]);
      expect(r.state.lastReason).toBe(s.lastReason);
      expect(r.state.phase).toBe(s.phase);
    }
  });
});
