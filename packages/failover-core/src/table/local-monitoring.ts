import {
  type TransitionRow,
  row,
  DB_ROLES,
  RUNNING,
  selfFenceScript,
  fencedReport,
  reportDbFailure,
  fenceBesideMaster,
  runningOtherMaster,
} from "./rows.ts";

/** Rows of one concern (local database monitoring), in the table's match order. */
export const localMonitoringRows: readonly TransitionRow[] = [
  // ---- local database monitoring (local.period / local.timeout / local.timeout.final) ----
  row({
    id: "local.tick",
    from: DB_ROLES,
    on: "timer:localCheck",
    guard: "no check in flight, failure not yet reported",
    to: "unchanged",
    actions: "checkLocalDb(local.timeout); re-arm",
    reason: "periodic local database check",
    when: (c) => c.s.local.token === null && !c.s.local.reported,
    run: (c) => {
      const token = c.token("local");
      c.s.local = { ...c.s.local, token, final: false };
      c.act({ type: "checkLocalDb", token, timeoutMs: c.s.config.localTimeoutMs });
      c.startLocalMonitoring();
    },
  }),
  row({
    id: "local.tick.skip",
    from: ["*"],
    on: "timer:localCheck",
    guard: "otherwise",
    to: "unchanged",
    actions: "none (step re-arms monitoring while Master or Standby)",
    reason: "a check is already running (or the role does not monitor a database)",
    run: () => {},
  }),
  row({
    id: "local.ok",
    from: DB_ROLES,
    on: "localDbChecked",
    guard: "first check succeeded",
    to: "unchanged",
    actions: "none",
    reason: "local database healthy",
    when: (c, e) => e.token === c.s.local.token && e.ok && !c.s.local.final,
    run: (c) => {
      c.s.local = { token: null, final: false, firstFailure: null, reported: false };
      c.s.db = "UP";
    },
  }),
  row({
    id: "local.fail",
    from: DB_ROLES,
    on: "localDbChecked",
    guard: "first check failed",
    to: "unchanged",
    actions: "final checkLocalDb(local.timeout.final); notify on credential problems",
    reason: "local check failed: make the final attempt before declaring failure",
    when: (c, e) => e.token === c.s.local.token && !e.ok && !c.s.local.final,
    run: (c, e) => {
      const failure = e.failure ?? "refused";
      if (failure === "authentication") {
        c.notify("dbConnectInvalidPassword", { nodeAddress: c.self, userName: "db.user" });
      } else if (failure === "tooManyConnections")
        c.notify("dbConnectMaxConnections", { nodeAddress: c.self });
      const token = c.token("local");
      c.s.local = { token, final: true, firstFailure: failure, reported: false };
      c.act({ type: "checkLocalDb", token, timeoutMs: c.s.config.localTimeoutFinalMs });
    },
  }),
  row({
    id: "local.final.recovered",
    from: DB_ROLES,
    on: "localDbChecked",
    guard: "final check succeeded",
    to: "unchanged",
    actions: "notify agentTimingOut if the first check timed out",
    reason: "the final check reached the database: keep monitoring",
    when: (c, e) => e.token === c.s.local.token && e.ok,
    run: (c) => {
      if (c.s.local.firstFailure === "timeout") c.notify("agentTimingOut", c.cluster());
      c.s.local = { token: null, final: false, firstFailure: null, reported: false };
      c.s.db = "UP";
    },
  }),
  row({
    id: "local.final.failed",
    from: DB_ROLES,
    on: "localDbChecked",
    guard: "final check failed",
    to: "unchanged",
    actions: "report dbFailed to the coordinator",
    reason: "local database failed the final check: ask the cluster to confirm (8.1 / 8.2)",
    when: (c, e) => e.token === c.s.local.token,
    run: (c) => {
      c.s.local = { ...c.s.local, token: null, reported: true };
      c.s.db = "DOWN";
      // Everyone's cluster-status shows the dead database now, not only after the verdict.
      c.broadcast(c.status());
      reportDbFailure(c);
    },
  }),
  row({
    id: "local.stale",
    from: ["*"],
    on: "localDbChecked",
    guard: "result nobody waits for",
    to: "unchanged",
    actions: "none (a check that was in flight no longer is)",
    reason: "stale local check result ignored",
    when: (c, e) => c.s.pendingResume?.token !== e.token,
    // The check was started as a Standby and ends while Promoting (or Idle): nobody acts on it, but
    // it is no longer in flight. Left set, the token made the monitoring invariant believe a check
    // was running, so a standby promoted while its check was out was never checked again as master.
    run: (c, e) => {
      if (e.token === c.s.local.token) c.s.local = { ...c.s.local, token: null, final: false };
    },
  }),
  // ---- an Idle agent watches its database (issue 13) ----
  row({
    id: "idle.tick",
    from: ["Idle"],
    on: "timer:idleCheck",
    guard: "Idle and nothing else owns the database (fence, rejoin, resume, conflict); no check in flight",
    to: "unchanged",
    actions: "checkLocalRole (pg_is_in_recovery) with a token",
    reason: "an Idle agent still watches whether its database runs, and as what",
    when: (c) => c.watchesIdleDb() && c.s.idleCheck.token === null,
    run: (c) => {
      const token = c.token("idle");
      c.s.idleCheck = { at: null, token };
      c.act({ type: "checkLocalRole", token });
    },
  }),
  row({
    id: "idle.tick.skip",
    from: ["*"],
    on: "timer:idleCheck",
    guard: "otherwise",
    to: "unchanged",
    actions: "none (step re-arms the watch while it applies)",
    reason: "the agent is no longer a watching Idle agent, or a check is in flight",
    run: (c) => {
      c.s.idleCheck = { ...c.s.idleCheck, at: null };
    },
  }),
  row({
    id: "idle.primaryBesideMaster",
    from: ["Idle"],
    on: "localRoleChecked",
    guard:
      "the Idle watch's answer: our database accepts writes while another member, past its start-up, runs as Master (majority view)",
    to: "Idle",
    actions:
      "fence our database (standby settings naming that master; rebuild flag persisted); notify secondMasterFenced",
    reason:
      "a database started by hand as a primary beside a running master is an old master back: fence it, never leave it writable",
    when: (c, e) =>
      e.token !== undefined &&
      e.token === c.s.idleCheck.token &&
      e.result === "primary" &&
      c.watchesIdleDb() &&
      c.quorate() &&
      runningOtherMaster(c, false) !== null,
    run: (c) => {
      c.s.idleCheck = { at: null, token: null };
      c.s.db = "UP";
      fenceBesideMaster(c, runningOtherMaster(c, false)!);
      c.broadcast(c.status());
    },
  }),
  row({
    id: "idle.report",
    from: ["*"],
    on: "localRoleChecked",
    guard: "the Idle watch's answer, otherwise",
    to: "unchanged",
    actions: "record the database state; tell the others when it changed",
    reason:
      "an Idle agent only reports what its database does (a standby, or a primary with no other master, waits for efm resume)",
    when: (c, e) => e.token !== undefined && e.token === c.s.idleCheck.token,
    run: (c, e) => {
      c.s.idleCheck = { at: null, token: null };
      if (c.s.role !== "Idle") return;
      const db = e.result === "unreachable" ? "DOWN" : "UP";
      if (c.s.db === db) return;
      c.s.db = db;
      // cluster-status on every agent shows it now
      c.broadcast(c.status());
    },
  }),
  row({
    id: "dbFailed.retry",
    from: DB_ROLES,
    on: "timer:dbFailedRetry",
    guard: "failure reported, no verdict yet",
    to: "unchanged",
    actions: "report dbFailed again",
    reason: "no verdict from the coordinator yet: report again",
    when: (c) => c.s.local.reported,
    run: (c) => reportDbFailure(c),
  }),
  row({
    id: "dbFailed.retry.stop",
    from: ["*"],
    on: "timer:dbFailedRetry",
    guard: "otherwise",
    to: "unchanged",
    actions: "none",
    reason: "verdict already received",
    run: () => {},
  }),
  row({
    id: "coord.dbFailed",
    from: RUNNING,
    on: "message:dbFailed",
    guard: "coordinator, no check of that database running",
    to: "unchanged",
    actions: "everyone else checks the database",
    reason: "an agent reported its database failed: all other agents try it directly",
    when: (c, e) => c.isCoordinator() && !c.s.investigations.some((i) => i.target === e.from),
    run: (c, e) => c.startInvestigation("dbFailure", e.from, e.message.role, c.now),
  }),
  row({
    id: "coord.dbFailed.ignore",
    from: ["*"],
    on: "message:dbFailed",
    guard: "otherwise",
    to: "unchanged",
    actions: "none",
    reason: "not the coordinator, or already checking that database",
    run: () => {},
  }),
  row({
    id: "verdict.master.confirmed",
    from: ["Master"],
    on: "message:dbFailureVerdict",
    guard: "failure confirmed",
    to: "Idle",
    actions: "release VIP, fence, script.db.failure; notify database failure; report fenced",
    reason: "nobody can reach the master database: declare failure, release the VIP, fence (8.1)",
    when: (c, e) => c.s.local.reported && e.message.confirmed,
    run: (c, e) => {
      c.s.local = { token: null, final: false, firstFailure: null, reported: false };
      c.notify("databaseFailure", { masterOrStandby: "Master", clusterName: c.s.config.clusterName });
      c.beginSelfFence("dbFailure", { to: e.from, token: e.message.token });
    },
  }),
  row({
    id: "verdict.master.refuted",
    from: ["Master"],
    on: "message:dbFailureVerdict",
    guard: "another agent reached the database",
    to: "Idle",
    actions: "notify masterCannotPingLocalDb",
    reason: "the master cannot reach its database but others can: go Idle, keep the VIP, no fencing",
    when: (c, e) => c.s.local.reported && !e.message.confirmed,
    run: (c) => {
      c.s.local = { token: null, final: false, firstFailure: null, reported: false };
      c.notify("masterCannotPingLocalDb", c.node());
      c.setRole("Idle");
    },
  }),
  row({
    id: "verdict.standby.confirmed",
    from: ["Standby"],
    on: "message:dbFailureVerdict",
    guard: "failure confirmed",
    to: "Idle",
    actions: "notify database failure; script.db.failure",
    reason: "nobody can reach the standby database: it failed (8.2)",
    when: (c, e) => c.s.local.reported && e.message.confirmed,
    run: (c) => {
      c.s.local = { token: null, final: false, firstFailure: null, reported: false };
      c.notify("databaseFailure", { masterOrStandby: "Standby", clusterName: c.s.config.clusterName });
      selfFenceScript(c, "dbFailure");
      c.setRole("Idle");
    },
  }),
  row({
    id: "verdict.standby.refuted",
    from: ["Standby"],
    on: "message:dbFailureVerdict",
    guard: "another agent reached the database",
    to: "Idle",
    actions: "notify standbyCannotReachDatabase",
    reason: "this agent cannot reach its standby database but others can: go Idle",
    when: (c) => c.s.local.reported,
    run: (c) => {
      c.s.local = { token: null, final: false, firstFailure: null, reported: false };
      c.notify("standbyCannotReachDatabase", c.cluster());
      c.setRole("Idle");
    },
  }),
  row({
    id: "verdict.repeat",
    from: ["Idle"],
    on: "message:dbFailureVerdict",
    guard: "already fenced after a confirmed failure",
    to: "unchanged",
    actions: "report fenced again",
    reason: "the coordinator asks again: our fenced report was lost",
    when: (c, e) => e.message.confirmed && c.s.selfFence === null,
    run: (c, e) => c.send(e.from, fencedReport(c, e.message.token)),
  }),
  row({
    id: "verdict.stale",
    from: ["*"],
    on: "message:dbFailureVerdict",
    guard: "otherwise",
    to: "unchanged",
    actions: "none",
    reason: "verdict for a failure no longer pending",
    run: () => {},
  }),
];
