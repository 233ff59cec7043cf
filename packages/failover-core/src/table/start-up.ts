import type { Ctx } from "../context.ts";
import { stalePrimaryAtStart } from "../rejoin.ts";
import {
  type TransitionRow,
  row,
  finishStartup,
  anotherMaster,
  joinQuorate,
  afterRoleKnown,
  beginStartupChecks,
  adoptView,
  exitAgent,
  fenceBesideMaster,
  runningOtherMaster,
} from "./rows.ts";

/**
 * A member that left the view is not checked at start-up: its database is the failover's to
 * handle (a master whose host failed while we start). Its pending check is dropped; when that
 * leaves none, the checks start over on the members there are now (check.begin decides).
 */
function dropChecksOfLeft(c: Ctx): void {
  const checks = c.s.startupChecks;
  if (checks === null) return;
  const members = c.members();
  const kept = Object.fromEntries(Object.entries(checks).filter(([, target]) => members.includes(target)));
  if (Object.keys(kept).length === Object.keys(checks).length) return;
  if (Object.keys(kept).length > 0) {
    c.s.startupChecks = kept;
    return;
  }
  c.s.startupChecks = null;
  c.timer("startupChecks", c.now);
}

/** Rows of one concern (start-up (4.1.1)), in the table's match order. */
export const startUpRows: readonly TransitionRow[] = [
  // ---- start-up (4.1.1) ----
  row({
    id: "start.witness",
    from: ["starting"],
    on: "started",
    guard: "is.witness=true",
    to: "Witness",
    actions: "wait for a view",
    reason: "is.witness=true: start as a dedicated witness without a local database",
    when: (c) => c.s.config.isWitness,
    run: (c) => {
      c.s.startedAt = c.now;
      c.s.role = "Witness";
      c.s.db = "UNKNOWN";
      afterRoleKnown(c);
    },
  }),
  row({
    id: "start.probe",
    from: ["starting"],
    on: "started",
    guard: "not a witness",
    to: "starting",
    actions: "checkLocalRole (pg_is_in_recovery)",
    reason: "ask the local database whether it is in recovery to learn our role",
    run: (c) => {
      c.s.startedAt = c.now;
      c.act({ type: "checkLocalRole" });
    },
  }),
  row({
    id: "start.primary",
    from: ["starting"],
    on: "localRoleChecked",
    guard: "pg_is_in_recovery() = false",
    to: "Master",
    actions: "wait for a view",
    reason: "the local database is not in recovery: this agent is the master agent",
    when: (_c, e) => e.result === "primary",
    run: (c) => {
      c.s.role = "Master";
      c.s.db = "UP";
      afterRoleKnown(c);
    },
  }),
  row({
    id: "start.recovery.rebuild",
    from: ["starting"],
    on: "localRoleChecked",
    guard: "pg_is_in_recovery() = true, but this database was a master that fenced itself (persisted)",
    to: "Idle",
    actions: "wait for a view; stay Idle until `efm resume` finds it streaming from the master",
    reason:
      "this database was a fenced master and may hold WAL past the last promotion's fork: no candidate until rewound or re-cloned and resumed",
    when: (c, e) => e.result === "recovery" && c.s.rebuildNeeded,
    run: (c) => {
      c.s.role = "Idle";
      c.s.db = "UP";
      afterRoleKnown(c);
    },
  }),
  row({
    id: "start.recovery",
    from: ["starting"],
    on: "localRoleChecked",
    guard: "pg_is_in_recovery() = true",
    to: "Standby",
    actions: "wait for a view",
    reason: "the local database is in recovery: this agent is a standby agent",
    when: (_c, e) => e.result === "recovery",
    run: (c) => {
      c.s.role = "Standby";
      c.s.db = "UP";
      afterRoleKnown(c);
    },
  }),
  row({
    id: "start.unreachable",
    from: ["starting"],
    on: "localRoleChecked",
    guard: "local database unreachable",
    to: "Idle",
    actions: "wait for a view",
    reason: "the local database cannot be reached: start Idle until `efm resume`",
    run: (c) => {
      c.s.role = "Idle";
      c.s.db = "DOWN";
      afterRoleKnown(c);
    },
  }),
  row({
    id: "start.view",
    from: ["starting"],
    on: "viewInstalled",
    guard: "a view arrived while we still probe the local database",
    to: "starting",
    actions: "remember it",
    reason: "keep the view: we join it as soon as we know our role",
    run: (c, e) => adoptView(c, e),
  }),
  row({
    id: "join.minority",
    from: ["joining"],
    on: "viewInstalled",
    guard: "view not quorate",
    to: "joining",
    actions: "none",
    reason: "joined a view without a majority of the voters: wait before acting on anything",
    when: (_c, e) => !e.view.quorate,
    run: (c, e) => adoptView(c, e),
  }),
  row({
    id: "join.quorate",
    from: ["joining"],
    on: "viewInstalled",
    guard: "view quorate",
    to: "checking",
    actions: "announce our role; collect the others' roles briefly",
    reason: "joined the cluster: learn every member's role before checking their databases",
    when: (_c, e) => e.view.quorate,
    run: (c, e) => {
      adoptView(c, e);
      joinQuorate(c);
    },
  }),
  row({
    id: "check.begin.noMajority",
    from: ["checking"],
    on: "timer:startupChecks",
    guard: "the view is no longer quorate, or we would be master without a lease",
    to: "checking",
    actions: "wait",
    reason: "a role is only taken inside a majority that hears us",
    when: (c) => !c.quorate() || (c.s.role === "Master" && !c.leaseValid()),
    run: (c) => c.timer("startupChecks", c.now + c.s.config.messageSlackMs),
  }),
  row({
    id: "check.begin.wait",
    from: ["checking"],
    on: "timer:startupChecks",
    guard: "a member's role has not reached us yet (bounded by promotion.timeout)",
    to: "checking",
    actions: "ask for statuses again; wait",
    reason: "deciding our role needs every member's status (a lost one could hide a newer master)",
    when: (c) =>
      c.others().some((a) => c.roleOf(a) === null) &&
      c.now < (c.s.joinedAt ?? c.now) + c.s.config.promotionTimeoutMs,
    run: (c) => {
      c.broadcast(c.status(true));
      c.timer("startupChecks", c.now + c.s.config.messageSlackMs);
    },
  }),
  row({
    id: "check.begin.staleMaster",
    from: ["checking"],
    on: "timer:startupChecks",
    guard:
      "we are Master (a primary database) and were the master on record, and another agent runs as master (issue 16)",
    to: "Idle",
    actions:
      "fence our database (stopped, standby settings naming the running master; rebuild flag persisted); check every cluster database",
    reason:
      "an old master's database came back writable while another master runs: fence it so it never takes writes, then it can rejoin",
    when: (c) => stalePrimaryAtStart(c.s) !== null,
    run: (c) => {
      const master = stalePrimaryAtStart(c.s)!;
      c.s.role = "Idle";
      c.s.rebuildNeeded = true;
      c.s.fenceUnconfirmed = false;
      // The fence a retry uses: nothing to release (no VIP before start-up ends), no script, no
      // report; an unconfirmed stop is retried like any other (fenceRetry).
      const token = c.token("fence");
      c.s.selfFence = { token, purpose: "retry", stage: "fenceDb", replyTo: null, newMaster: master };
      c.act({ type: "fenceDb", token, newMaster: master });
      beginStartupChecks(c);
      if (Object.keys(c.s.startupChecks ?? {}).length === 0) finishStartup(c);
    },
  }),
  row({
    id: "check.begin.secondMaster.fence",
    from: ["checking"],
    on: "timer:startupChecks",
    guard:
      "we are Master (our database accepts writes) and another member, past its start-up, runs as Master or Promoting",
    to: "Idle",
    actions:
      "fence our database (stopped, standby settings naming that master; rebuild flag persisted); notify secondMasterFenced; check every cluster database",
    reason:
      "a database that accepts writes beside a running master is a second master: fence it, never leave it writable (EFM 2.0.3 only goes Idle)",
    when: (c) => c.s.role === "Master" && runningOtherMaster(c) !== null,
    run: (c) => {
      fenceBesideMaster(c, runningOtherMaster(c)!);
      beginStartupChecks(c);
      if (Object.keys(c.s.startupChecks ?? {}).length === 0) finishStartup(c);
    },
  }),
  row({
    id: "check.begin.secondMaster",
    from: ["checking"],
    on: "timer:startupChecks",
    guard: "we are Master and another member is Master or Promoting, or the others know another master",
    to: "Idle",
    actions: "become Idle; check every cluster database",
    reason:
      "another master agent is running or the cluster failed over to another master: do not take the master role",
    when: (c) => c.s.role === "Master" && anotherMaster(c),
    run: (c) => {
      c.s.role = "Idle";
      c.s.idleForConflict = true;
      c.timer("conflictRecheck", c.now + c.s.config.promotionTimeoutMs);
      beginStartupChecks(c);
      if (Object.keys(c.s.startupChecks ?? {}).length === 0) finishStartup(c);
    },
  }),
  row({
    id: "check.begin",
    from: ["checking"],
    on: "timer:startupChecks",
    guard: "other members have databases",
    to: "checking",
    actions: "checkRemoteDb for every other database",
    reason: "check we can connect to every database in the cluster (4.1.1)",
    when: (c) => c.others().some((a) => c.roleOf(a) === "Master" || c.roleOf(a) === "Standby"),
    run: (c) => beginStartupChecks(c),
  }),
  row({
    id: "check.begin.none",
    from: ["checking"],
    on: "timer:startupChecks",
    guard: "no other database to check",
    to: "running",
    actions: "notify agent running; master assigns the VIP; start monitoring",
    reason: "joined the cluster and there is no other database to check",
    run: (c) => finishStartup(c),
  }),
  row({
    id: "check.failed.wait",
    from: ["checking"],
    on: "remoteDbChecked",
    guard:
      "a cluster database cannot be reached (its agent is still a member: check.view drops the others), within promotion.timeout of joining",
    to: "checking",
    actions: "check it again shortly",
    reason:
      "its host may just have failed: the view drops a dead member within its detection window, and a database whose agent left is the failover's to handle",
    // Invariant (liveness): a master that fails while other agents are still starting leaves them
    // running. They exited on their start-up check of its database, and the survivors fell below
    // a majority of the voters: nobody could be promoted.
    when: (c, e) =>
      c.s.startupChecks?.[e.token] !== undefined &&
      e.result !== "reachable" &&
      c.now + c.s.config.messageSlackMs < (c.s.joinedAt ?? c.now) + c.s.config.promotionTimeoutMs,
    run: (c, e) => c.timer(`startupRecheck:${e.token}`, c.now + c.s.config.messageSlackMs),
  }),
  row({
    id: "check.recheck",
    from: ["checking"],
    on: "timer:startupRecheck",
    guard: "that start-up check still pending (its member still in the view)",
    to: "checking",
    actions: "checkRemoteDb again",
    reason: "check again the database that could not be reached a moment ago",
    when: (c, e) => c.s.startupChecks?.[e.name.slice("startupRecheck:".length)] !== undefined,
    run: (c, e) => {
      const token = e.name.slice("startupRecheck:".length);
      const target = c.s.startupChecks![token]!;
      c.act({ type: "checkRemoteDb", token, target, timeoutMs: c.s.config.remoteTimeoutMs });
    },
  }),
  row({
    id: "check.recheck.stale",
    from: ["*"],
    on: "timer:startupRecheck",
    guard: "otherwise",
    to: "unchanged",
    actions: "none",
    reason: "the start-up checks are over, or that member left the view (its check was dropped)",
    run: () => {},
  }),
  row({
    id: "check.failed",
    from: ["checking"],
    on: "remoteDbChecked",
    guard: "a cluster database cannot be reached",
    to: "exited",
    actions: "notify agentExitedDuringStartup; exit 1",
    reason: "cannot connect to every database of the cluster at start-up: shutting down (4.1.1)",
    when: (c, e) => c.s.startupChecks?.[e.token] !== undefined && e.result !== "reachable",
    run: (c, e) => {
      c.notify("agentExitedDuringStartup", c.cluster());
      exitAgent(c, 1, `cannot connect to the database at ${e.target}`);
    },
  }),
  row({
    id: "check.progress",
    from: ["checking"],
    on: "remoteDbChecked",
    guard: "reachable, other checks pending",
    to: "checking",
    actions: "none",
    reason: "one more cluster database is reachable",
    when: (c, e) =>
      c.s.startupChecks?.[e.token] !== undefined && Object.keys(c.s.startupChecks ?? {}).length > 1,
    run: (c, e) => {
      const { [e.token]: _done, ...rest } = c.s.startupChecks ?? {};
      c.s.startupChecks = rest;
    },
  }),
  row({
    id: "check.done",
    from: ["checking"],
    on: "remoteDbChecked",
    guard: "reachable, last check",
    to: "running",
    actions: "notify agent running; master assigns the VIP; start monitoring",
    reason: "every database of the cluster is reachable: start monitoring",
    when: (c, e) =>
      c.s.startupChecks?.[e.token] !== undefined && c.quorate() && (c.s.role !== "Master" || c.leaseValid()),
    run: (c) => {
      c.s.startupChecks = null;
      finishStartup(c);
    },
  }),
  row({
    id: "check.done.noMajority",
    from: ["checking"],
    on: "remoteDbChecked",
    guard: "last check done but the majority (or our lease) was lost meanwhile",
    to: "checking",
    actions: "start over once a majority hears us",
    reason: "a role is only taken inside a majority that hears us",
    when: (c, e) => c.s.startupChecks?.[e.token] !== undefined,
    run: (c) => {
      c.s.startupChecks = null;
      c.timer("startupChecks", c.now + c.s.config.messageSlackMs);
    },
  }),
  row({
    id: "check.view",
    from: ["checking"],
    on: "viewInstalled",
    guard: "view changed during start-up checks",
    to: "checking",
    actions: "drop the checks of members that left (none left: check the members there are now)",
    reason: "keep the newest view while start-up checks run",
    run: (c, e) => {
      adoptView(c, e);
      dropChecksOfLeft(c);
    },
  }),
];
