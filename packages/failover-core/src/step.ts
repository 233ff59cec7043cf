import { type AnyEvent, Ctx } from "./context.ts";
import { FailoverCoreError } from "./errors.ts";
import { autoRejoinDue } from "./rejoin.ts";
import { keepSyncStandbys } from "./sync.ts";
import { type TransitionRow, transitions } from "./table.ts";
import type { FailoverConfig, FailoverEvent, FailoverState, StepResult } from "./types.ts";

/** Safety valve against a row that keeps raising events for itself (a bug, never a legal cascade). */
const MAX_CASCADE = 64;

/** Validates the configuration and builds the state of an agent that has not started yet. */
export function initialState(config: FailoverConfig): FailoverState {
  const problems: string[] = [];
  if (typeof config.self !== "string" || config.self.trim() === "")
    problems.push("self (bind.address) is empty");
  if (typeof config.clusterName !== "string" || config.clusterName === "")
    problems.push("clusterName is empty");
  for (const key of [
    "localPeriodMs",
    "localTimeoutMs",
    "localTimeoutFinalMs",
    "remoteTimeoutMs",
    "leaseMs",
    "takeoverMarginMs",
    "messageSlackMs",
    "promotionTimeoutMs",
  ] as const) {
    const v = config[key];
    if (typeof v !== "number" || !Number.isFinite(v) || v < 0)
      problems.push(`${key} must be a non-negative number`);
  }
  if (problems.length > 0) {
    throw new FailoverCoreError("invalid-config", `invalid failover configuration: ${problems.join("; ")}`);
  }
  return {
    config,
    phase: "starting",
    role: null,
    db: "UNKNOWN",
    view: null,
    peers: {},
    allowed: [...config.allowed],
    priority: [...config.priority],
    lastReason: "not started",
    seq: 0,
    leaseUntil: null,
    knownMaster: null,
    failoverDisabled: false,
    isolated: false,
    fencedForIsolation: false,
    idleForConflict: false,
    promoteRetryAt: null,
    localCheckAt: null,
    idleCheck: { at: null, token: null },
    local: { token: null, final: false, firstFailure: null, reported: false },
    startupChecks: null,
    joinedAt: null,
    remoteChecks: {},
    masterDbAnswers: {},
    vipProbes: { running: null, free: null },
    earlyPing: null,
    pingAnswer: null,
    investigations: [],
    promotion: null,
    candidacy: null,
    selfFence: null,
    pendingResume: null,
    lsnQueries: {},
    promotableChecks: {},
    attention: null,
    recordedMaster: config.persisted?.lastMaster ?? null,
    startedAt: null,
    epoch: config.persisted?.epoch ?? 0,
    rebuildNeeded: config.persisted?.rebuildNeeded === true,
    newestFork: config.persisted?.newestFork ?? null,
    fenceUnconfirmed: false,
    reconfigureToken: null,
    reconfigureRetry: false,
    previousViewSize: 0,
    hadStandby: false,
    rejoin: null,
    rejoinGaveUp: null,
    rejoinProblem: null,
    sync: {
      published: config.persisted?.syncStandbys ?? null,
      applied: null,
      pending: null,
      retryAt: null,
    },
  };
}

/** The table key of an event: messages, timers and commands are keyed by their kind. */
export function eventKey(e: AnyEvent): { key: string; wildcard: string | null } {
  if (e.type === "messageReceived") return { key: `message:${e.message.type}`, wildcard: "message:*" };
  if (e.type === "timer") {
    const i = e.name.indexOf(":");
    return { key: `timer:${i < 0 ? e.name : e.name.slice(0, i)}`, wildcard: "timer:*" };
  }
  if (e.type === "command") return { key: `command:${e.command.kind}`, wildcard: "command:*" };
  return { key: e.type, wildcard: null };
}

function sourceMatches(row: TransitionRow, state: FailoverState): boolean {
  for (const f of row.from) {
    if (f === "*") return true;
    if (state.phase === "running" ? f === state.role : f === state.phase) return true;
  }
  return false;
}

/** The first row of the table that applies to this event in this state, if any. */
export function matchRow(c: Ctx, e: AnyEvent): TransitionRow | undefined {
  const { key, wildcard } = eventKey(e);
  for (const r of transitions) {
    if (r.on !== key && r.on !== wildcard) continue;
    if (!sourceMatches(r, c.s as FailoverState)) continue;
    if ((r.when as (c: Ctx, e: AnyEvent) => boolean)(c, e)) return r;
  }
  return undefined;
}

/**
 * The engine: one event in, the next state and the actions to perform out. Pure: no clock, no I/O;
 * the state passed in is never modified.
 */
export function step(state: FailoverState, event: FailoverEvent): StepResult {
  if (state.phase === "exited") return { state, actions: [], transitions: [] };
  const c = new Ctx(state, event.now);
  // The local check timer is no longer armed once it fires (timers are one-shot).
  if (event.type === "timer" && event.name === "localCheck") c.s.localCheckAt = null;
  c.queue.push(event);
  let n = 0;
  // A fenced old master with auto.rejoin rejoins once a running master is known, whichever event
  // made it known (a status, a newMaster, a view, its own fence ending): one check after the rows.
  // At most once per step, so a row that does not act on it can never loop.
  let rejoinAsked = false;
  const dueRejoin = () => {
    if (rejoinAsked || c.queue.length > 0 || autoRejoinDue(c.s as FailoverState) === null) return false;
    rejoinAsked = true;
    c.queue.push({ type: "rejoinDue", now: c.now });
    return true;
  };
  while (c.queue.length > 0 || dueRejoin()) {
    if (++n > MAX_CASCADE) {
      throw new FailoverCoreError(
        "invalid-event",
        `event ${event.type} cascaded more than ${MAX_CASCADE} times`,
      );
    }
    const e = c.queue.shift()!;
    const r = matchRow(c, e);
    if (!r) continue;
    const from = c.s.phase === "running" ? c.s.role : c.s.phase;
    (r.run as (c: Ctx, e: AnyEvent) => void)(c, e);
    c.s.lastReason = r.reason;
    const to = c.s.phase === "running" ? c.s.role : c.s.phase;
    c.transitions.push({ rule: r.id, reason: r.reason, from, to });
  }
  // One place for the monitoring invariant, whatever row changed the role (a promotion, a vouched
  // Idle primary, a resume, an aborted candidacy): a promoted master whose timer chain had died
  // while Promoting was never checked again, so a second failure of a master went unnoticed.
  c.keepMonitoring();
  // And for the synchronous standby set: whatever changed the standbys or made us master.
  keepSyncStandbys(c);
  // One place for persistence too: whatever row learned a new master, finished a promotion or
  // fenced a master, what must survive a restart is handed to the caller in this same step.
  c.keepRecord(state);
  // An operator notice about a masterless cluster ends once a master runs again.
  if (c.s.attention !== null && (c.s.role === "Master" || c.membersWithRole("Master").length > 0))
    c.s.attention = null;
  return { state: c.s as FailoverState, actions: c.actions, transitions: c.transitions };
}
