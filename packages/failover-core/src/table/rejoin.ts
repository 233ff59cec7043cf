import type { Ctx } from "../context.ts";
import {
  autoRejoinDue,
  rejoinDecision,
  rejoinProblemText,
  rejoinTarget,
  supersededMaster,
} from "../rejoin.ts";
import { type TransitionRow, row } from "./rows.ts";

/** Starts the rejoin against `master`; the node stays Idle (no candidate, no writes) until it streams. */
function startRejoin(c: Ctx, master: string, purpose: "oldMaster" | "standby"): void {
  const token = c.token("rejoin");
  c.s.rejoin = { token, master, requestId: null, purpose };
  c.s.rejoinProblem = null;
  c.act({ type: "rejoinDb", token, newMaster: master });
}

/** Said once per master: cluster-status text, a notification, and no automatic retry against it. */
function rejoinRefused(c: Ctx, master: string, reason: string): void {
  c.s.rejoinGaveUp = master;
  c.s.rejoinProblem = rejoinProblemText(master, reason);
  c.notify("rejoinFailed", {
    nodeAddress: c.self,
    serverAddress: master,
    clusterName: c.s.config.clusterName,
    messageDetails: reason,
  });
}

/** An `efm resume` that rejoins: answered at once (a rewind can outlast the CLI's wait). */
function resumeByRejoin(c: Ctx): void {
  const r = c.s.pendingResume!;
  c.s.pendingResume = null;
  const d = rejoinDecision(c.s);
  if (d.kind === "rejoin") {
    // An operator's resume tries again even against a master an automatic attempt gave up on.
    c.s.rejoinGaveUp = null;
    startRejoin(c, d.master, "oldMaster");
    c.act({
      type: "respond",
      requestId: r.requestId,
      ok: true,
      message: `Rejoining as a standby of ${d.master}: the database is rewound (pg_rewind) and started streaming from it; the outcome is notified and shown by cluster-status.`,
    });
    return;
  }
  if (d.kind === "refuse") rejoinRefused(c, d.master, d.reason);
  c.act({
    type: "respond",
    requestId: r.requestId,
    ok: false,
    message:
      d.kind === "refuse"
        ? rejoinProblemText(d.master, d.reason)
        : `Cannot rejoin this old master yet: ${d.reason}.`,
  });
}

/** Rows of one concern (rejoin of a fenced old master, rewind of a standby; issue 16), in match order. */
export const rejoinRows: readonly TransitionRow[] = [
  row({
    id: "rejoin.auto",
    from: ["Idle"],
    on: "rejoinDue",
    guard: "auto.rejoin; an old master with nothing in flight; a running master in our majority view",
    to: "unchanged",
    actions: "rejoinDb(the master), or notify rejoinFailed when no rewind and no base backup is allowed",
    reason: "a fenced old master rejoins as a standby of the running master (auto.rejoin=true)",
    when: (c) => autoRejoinDue(c.s) !== null,
    run: (c) => {
      const d = rejoinDecision(c.s);
      if (d.kind === "rejoin") startRejoin(c, d.master, "oldMaster");
      else if (d.kind === "refuse") rejoinRefused(c, d.master, d.reason);
    },
  }),
  row({
    id: "cmd.resume.rejoining",
    from: ["Idle"],
    on: "command:resume",
    guard: "a rejoin of this database is in progress",
    to: "unchanged",
    actions: "respond error",
    reason: "resume waits for the rejoin in progress",
    when: (c) => c.s.rejoin !== null,
    run: (c, e) =>
      c.act({
        type: "respond",
        requestId: e.requestId,
        ok: false,
        message: `A rejoin of this database as a standby of ${c.s.rejoin!.master} is in progress.`,
      }),
  }),
  row({
    id: "resume.rejoin.dbDown",
    from: ["Idle"],
    on: "localDbChecked",
    guard: "resuming an old master whose database is down; the agent can rejoin",
    to: "unchanged",
    actions: "rejoinDb(the running master) and respond, or respond why not",
    reason: "efm resume rejoins a fenced old master: rewind it and start it as a standby of the master",
    when: (c, e) =>
      c.s.pendingResume?.token === e.token &&
      !e.ok &&
      c.s.config.rejoin !== undefined &&
      supersededMaster(c.s),
    run: (c) => resumeByRejoin(c),
  }),
  row({
    id: "resume.rejoin.notStreaming",
    from: ["Idle"],
    on: "lsnQueried",
    guard:
      "resuming a fenced ex-master that still does not stream from the running master at the end of the wait; the agent can rejoin",
    to: "unchanged",
    actions: "rejoinDb(the running master) and respond, or respond why not",
    reason: "efm resume rejoins a fenced old master that cannot follow the master as it is",
    when: (c, e) => {
      const r = c.s.pendingResume;
      if (r?.stage !== "wal" || r.token !== e.token || c.s.config.rejoin === undefined) return false;
      const m = rejoinTarget(c.s);
      const follows = e.streaming === true && m !== null;
      const waitOver = c.now + c.s.config.localPeriodMs > (r.until ?? c.now);
      return !follows && waitOver;
    },
    run: (c) => resumeByRejoin(c),
  }),
  row({
    id: "rejoin.standby",
    from: ["Idle"],
    on: "timer:reconfigureRetry",
    guard:
      "db.rewind=on; a standby whose reconfiguration failed (it may hold WAL past the fork); a running master not given up on",
    to: "unchanged",
    actions: "rejoinDb(the master): rewind and restart it as a standby; or notify rejoinFailed",
    reason: "a standby that cannot follow the new master is rewound against it (db.rewind=on)",
    when: (c) => {
      const m = rejoinTarget(c.s);
      return (
        c.s.config.rejoin?.rewindStandbys === true &&
        c.s.reconfigureRetry &&
        c.s.reconfigureToken === null &&
        c.s.rejoin === null &&
        !c.s.fencedForIsolation &&
        !c.s.idleForConflict &&
        !c.s.rebuildNeeded &&
        m !== null &&
        c.s.rejoinGaveUp !== m
      );
    },
    run: (c) => {
      const d = rejoinDecision(c.s);
      if (d.kind === "rejoin") {
        startRejoin(c, d.master, "standby");
        return;
      }
      if (d.kind === "refuse") rejoinRefused(c, d.master, d.reason);
      // Plain reconfiguration retries go on: the cause may still be one that passes.
      c.timer("reconfigureRetry", c.now + c.s.config.promotionTimeoutMs);
    },
  }),
  row({
    id: "rejoin.done",
    from: ["Idle"],
    on: "dbRejoined",
    guard: "our rejoin succeeded: the database streams from the master as a standby",
    to: "Standby",
    actions: "clear the rebuild flag (persisted); notify rejoinCompleted; monitor as a standby",
    reason:
      "the rewound (or re-cloned) database streams from the current master, so its history is the master's: a standby and a candidate again",
    when: (c, e) => c.s.rejoin?.token === e.token && e.ok && c.s.phase === "running",
    run: (c, e) => {
      const r = c.s.rejoin!;
      c.s.rejoin = null;
      c.s.rebuildNeeded = false;
      c.s.fencedForIsolation = false;
      c.s.reconfigureRetry = false;
      c.s.rejoinGaveUp = null;
      c.s.rejoinProblem = null;
      c.s.db = "UP";
      c.s.local = { token: null, final: false, firstFailure: null, reported: false };
      c.setRole("Standby");
      c.startLocalMonitoring();
      c.notify("rejoinCompleted", {
        nodeAddress: c.self,
        serverAddress: r.master,
        clusterName: c.s.config.clusterName,
        messageDetails:
          e.method === "basebackup" ? "pg_basebackup (the old data directory was moved aside)" : "pg_rewind",
      });
    },
  }),
  row({
    id: "rejoin.failed",
    from: ["*"],
    on: "dbRejoined",
    guard: "our rejoin failed or was refused",
    to: "unchanged",
    actions:
      "notify rejoinFailed with the reason; cluster-status says it; no automatic retry against this master",
    reason: "the database could not be brought back as a standby: it stays Idle and takes no writes",
    when: (c, e) => c.s.rejoin?.token === e.token && !e.ok,
    run: (c, e) => {
      const r = c.s.rejoin!;
      c.s.rejoin = null;
      rejoinRefused(c, r.master, e.error ?? "the rejoin failed");
      if (r.purpose === "standby" && c.s.reconfigureRetry)
        c.timer("reconfigureRetry", c.now + c.s.config.promotionTimeoutMs);
    },
  }),
  row({
    id: "rejoin.stale",
    from: ["*"],
    on: "dbRejoined",
    guard: "otherwise",
    to: "unchanged",
    actions: "none",
    reason: "stale rejoin result (or ours, ended while no longer Idle and running: nothing to resume)",
    run: (c, e) => {
      if (c.s.rejoin?.token === e.token) c.s.rejoin = null;
    },
  }),
];
