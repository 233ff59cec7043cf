import type { AnyEvent } from "../context.ts";
import type { Command, PeerMessage } from "../types.ts";
import { row, type RowSource, type TransitionRow, unguarded } from "./rows.ts";

/**
 * The "otherwise" rows: for every state and event key that no hand-written row handles
 * unconditionally, one generated row that ignores the event. The engine already ignores an event
 * no row matches (step.ts goes on with the next one, the state untouched, nothing logged); these
 * rows make that decision explicit and visible in `efm decision-table`, and a test holds the table
 * to it: every (state, event key) pair ends in exactly one unconditional hand-written row or one
 * generated row, never in silence nobody wrote down.
 *
 * Two kinds:
 * - `stale.<state>.<key>`: rows for this event exist in this state but all have guards (a token
 *   of an earlier check, a promotion already over, a timer of a round that ended): the event is
 *   stale when none applies.
 * - `ignore.<state>.<key>`: no row handles this event in this state at all (a standby's lease
 *   timer, a start-up timer after start-up): the event means nothing there.
 *
 * Generated rows match nothing of their own (step never runs them: an ignored event must not
 * change lastReason or appear among the transitions logged); `matchRow` returns undefined exactly
 * where one of them applies.
 */

/** Every state a row can start from, in life-cycle order ("exited" takes no events: step returns at once). */
export const ROW_STATES: readonly Exclude<RowSource, "*">[] = [
  "starting",
  "joining",
  "checking",
  "Master",
  "Standby",
  "Witness",
  "Idle",
  "Promoting",
];

// The event vocabulary, so an event no row names still gets its rows. The table test checks at
// the type level that each list names every member of its union (a new event type must be added).
/** Event types keyed by their own name (messages, timers and commands are keyed by kind). */
export const EVENT_TYPES = [
  "started",
  "localRoleChecked",
  "viewInstalled",
  "memberGone",
  "memberSuspected",
  "memberQuiet",
  "quorumLost",
  "quorumGained",
  "leaseValid",
  "leaseLost",
  "localDbChecked",
  "remoteDbChecked",
  "lsnQueried",
  "vipPinged",
  "vipChecked",
  "pingServerPinged",
  "scriptDone",
  "promotableChecked",
  "dbPromoted",
  "dbFenced",
  "dbReconfigured",
  "dbRejoined",
  "syncStandbysSet",
  "vipDone",
  "promotionRequested",
  "shutdown",
  "investigationDone",
  "lsnsCollected",
  "probesDone",
  "candidateVerified",
  "candidatesExhausted",
  "clusterCommand",
  "reviewSize",
  "reviewStandbys",
  "selfFenced",
  "rejoinDue",
] as const satisfies readonly Exclude<AnyEvent["type"], "timer" | "messageReceived" | "command">[];

/** Peer message types (keyed `message:<type>`). */
export const MESSAGE_TYPES = [
  "status",
  "dbFailed",
  "checkDb",
  "checkDbReply",
  "dbFailureVerdict",
  "fenced",
  "fencedMasterBack",
  "queryLsn",
  "lsnReply",
  "checkPromotable",
  "promotableReply",
  "promote",
  "promotionResult",
  "newMaster",
  "switchover",
  "switchoverDone",
  "lists",
  "command",
  "commandReply",
  "notice",
  "stop",
] as const satisfies readonly PeerMessage["type"][];

/** Admin command kinds (keyed `command:<kind>`). */
export const COMMAND_KINDS = [
  "promote",
  "resume",
  "addNode",
  "removeNode",
  "stopCluster",
] as const satisfies readonly Command["kind"][];

/** Does this row's event key cover `key` (itself, or its `message:*` / `timer:*` / `command:*` wildcard)? */
export function rowCovers(r: TransitionRow, state: Exclude<RowSource, "*">, key: string): boolean {
  const colon = key.indexOf(":");
  const wildcard = colon < 0 ? null : `${key.slice(0, colon)}:*`;
  if (r.on !== key && r.on !== wildcard) return false;
  return r.from.includes("*") || r.from.includes(state);
}

/** Every event key: the vocabulary above plus every key a row names (timers exist only as rows name them). */
export function eventKeys(rows: readonly TransitionRow[]): string[] {
  const keys = new Set<string>([
    ...EVENT_TYPES,
    ...MESSAGE_TYPES.map((m) => `message:${m}`),
    ...COMMAND_KINDS.map((k) => `command:${k}`),
  ]);
  for (const r of rows) if (!r.on.endsWith(":*")) keys.add(r.on);
  return [...keys];
}

/** The generated rows for `rows`: one per (state, event key) that no unguarded row covers. */
export function otherwiseRows(rows: readonly TransitionRow[]): TransitionRow[] {
  const out: TransitionRow[] = [];
  for (const key of eventKeys(rows)) {
    for (const state of ROW_STATES) {
      const covering = rows.filter((r) => rowCovers(r, state, key));
      if (covering.some(unguarded)) continue;
      const stale = covering.length > 0;
      out.push({
        ...row({
          id: `${stale ? "stale" : "ignore"}.${state}.${key}`,
          from: [state],
          on: key,
          guard: stale ? `otherwise (none of ${covering.map((r) => r.id).join(", ")} applies)` : "always",
          to: "unchanged",
          actions: "none",
          reason: stale
            ? `a ${key} event that no row applies to in ${state} is stale: ignored`
            : `a ${key} event means nothing in ${state}: ignored`,
          run: () => {},
        }),
        generated: true,
      });
    }
  }
  return out;
}
