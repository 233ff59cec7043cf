import type { AnyEvent, Ctx } from "./context.ts";
import { compareLsn } from "./lsn.ts";
import type { AgentRole, Command, FailoverEvent, Investigation, PeerMessage, Phase } from "./types.ts";

/** Where a row applies: a role (in the running phase), a start-up phase, or anywhere. */
export type RowSource = AgentRole | Exclude<Phase, "running"> | "*";

type MessageEvent = Extract<FailoverEvent, { type: "messageReceived" }>;
type CommandEvent = Extract<FailoverEvent, { type: "command" }>;

/** The event a row key stands for: "message:promote", "timer:lease", "command:resume" or an event type. */
export type EventFor<K extends string> = K extends `message:${infer M}`
  ? MessageEvent & { readonly message: Extract<PeerMessage, { type: M }> }
  : K extends `timer:${string}`
    ? Extract<FailoverEvent, { type: "timer" }>
    : K extends `command:${infer C}`
      ? CommandEvent & { readonly command: Extract<Command, { kind: C }> }
      : Extract<AnyEvent, { type: K }>;

/** One row of the transition table: from, event, guard, to, actions and the reason logged. */
export interface TransitionRow {
  readonly id: string;
  readonly from: readonly RowSource[];
  readonly on: string;
  /** The guard in words (the table can be printed). */
  readonly guard: string;
  readonly to: AgentRole | Phase | "unchanged";
  /** The actions in words. */
  readonly actions: string;
  readonly reason: string;
  readonly when: (c: Ctx, e: never) => boolean;
  readonly run: (c: Ctx, e: never) => void;
}

function row<K extends string>(r: {
  id: string;
  from: readonly RowSource[];
  on: K;
  guard: string;
  to: AgentRole | Phase | "unchanged";
  actions: string;
  reason: string;
  when?: (c: Ctx, e: EventFor<K>) => boolean;
  run: (c: Ctx, e: EventFor<K>) => void;
}): TransitionRow {
  return {
    ...r,
    when: (r.when ?? (() => true)) as TransitionRow["when"],
    run: r.run as TransitionRow["run"],
  };
}

const DB_ROLES: RowSource[] = ["Master", "Standby"];
/** Upper bound of a resume's wait for a rebuilt database to stream (the CLI waits 30 s for an answer). */
const RESUME_STREAMING_WAIT_MS = 20_000;
const RUNNING: RowSource[] = ["Master", "Standby", "Witness", "Idle", "Promoting"];

// ---------- helpers shared by several rows ----------

function finishStartup(c: Ctx): void {
  c.setPhase("running");
  // Every running agent looks for a masterless cluster now and then; only a coordinator acts.
  c.timer("masterWatch", c.now + c.s.config.promotionTimeoutMs);
  const role = c.s.role;
  if (role === "Witness") c.notify("witnessAgentRunning", c.node());
  else if (role === "Master") c.notify("masterAgentRunning", c.node());
  else if (role === "Standby") c.notify("standbyAgentRunning", c.node());
  c.broadcast(c.status());
  if (role === "Master") {
    c.s.knownMaster = { address: c.self, lastHeardAt: c.now };
    c.provisionalLease();
    if (c.s.config.virtualIp) c.act({ type: "assignVip", token: c.token("vip"), vip: c.s.config.virtualIp });
  }
  // local monitoring of a Master or Standby is armed by step (Ctx.keepMonitoring)
  // A coordinator that just started (its view arrived while it was still starting) reconciles once
  // like one that gained the role in a view: the cluster may have no master (sim seed 22604, 4 nodes:
  // the fenced old master restarted as a standby and became coordinator; nobody else decides).
  if (
    c.quorate() &&
    c.s.view?.coordinator === c.self &&
    c.membersWithRole("Master", "Promoting").length === 0
  ) {
    c.timer("reconcile", c.now + c.s.config.remoteTimeoutMs + c.s.config.messageSlackMs);
  }
}

/**
 * Should a starting agent with a primary database stay Idle? Yes if a running peer is master or
 * promoting, if running peers know a master other than us that is not here as a non-master, or if
 * another starting agent also claims Master (or sits Idle over such a conflict) and no running
 * peer vouches for us.
 */
function anotherMaster(c: Ctx): boolean {
  const others = c.others();
  const peer = (a: string) => c.s.peers[a];
  if (others.some((a) => ["Master", "Promoting"].includes(c.roleOf(a) ?? "") && !peer(a)?.starting))
    return true;
  const reports = others
    .filter((a) => !peer(a)?.starting)
    .map((a) => peer(a)?.master)
    .filter((m): m is string => typeof m === "string");
  const elsewhere = reports.some(
    (m) =>
      m !== c.self &&
      (!c.members().includes(m) || !["Standby", "Idle", "Witness"].includes(c.roleOf(m) ?? "")),
  );
  if (elsewhere) return true;
  // A rival primary: a starting agent claiming Master, or one that already stepped aside to Idle
  // over this same conflict (its database is still a primary; whichever of us decides later must
  // not read its Idle role as "no other master", or the stale primary of the two wins).
  const rival = others.some(
    (a) => (c.roleOf(a) === "Master" && peer(a)?.starting) || (c.roleOf(a) === "Idle" && peer(a)?.conflict),
  );
  return rival && !reports.includes(c.self);
}

/** Bookkeeping for a peer's status: its role, its known master, the priority list. */
function recordStatus(c: Ctx, e: EventFor<"message:status">): void {
  if (e.message.ask && c.s.role !== null) c.send(e.from, c.status());
  // A member that asks is joining or rejoining: the coordinator also hands it the allowed and
  // priority lists, or a list changed before it joined would never reach it (lists travel only
  // when they change).
  if (e.message.ask && c.isCoordinator()) {
    c.send(e.from, { type: "lists", allowed: c.s.allowed, priority: c.s.priority });
  }
  const prev = c.s.peers[e.from];
  c.s.peers = {
    ...c.s.peers,
    [e.from]: {
      role: e.message.role,
      db: e.message.db,
      master: e.message.master ?? null,
      starting: e.message.starting === true,
      conflict: e.message.conflict === true,
    },
  };
  // A starting agent's role is tentative: it is not the cluster's master until it runs.
  if (e.message.role === "Master" && !e.message.starting) {
    c.s.knownMaster = { address: e.from, lastHeardAt: e.now };
    c.s.failoverDisabled = false;
  } else if (!e.message.starting && c.s.knownMaster?.address === e.from && c.s.failoverDisabled) {
    // "Failover is disabled until the master agent is restarted": it restarted, but not as master.
    c.s.failoverDisabled = false;
    if (c.s.view?.coordinator === c.self) c.timer("reconcile", c.now + c.s.config.messageSlackMs);
  } else if (
    !e.message.starting &&
    c.s.knownMaster?.address === e.from &&
    (prev === undefined || prev.starting || prev.role !== e.message.role) &&
    c.s.view?.coordinator === c.self
  ) {
    // The last master is back (its investigation ended when it rejoined) and runs as something
    // else: nobody may be master now, so check again (the reconcile rows decide, lease wait included).
    c.timer("reconcile", c.now + c.s.config.messageSlackMs);
  }
  if (
    c.isCoordinator() &&
    e.message.role === "Standby" &&
    !c.s.priority.includes(e.from) &&
    (c.s.allowed.length === 0 || c.s.allowed.includes(e.from))
  ) {
    c.s.priority = [...c.s.priority, e.from];
    c.publishLists();
  }
  if (c.isCoordinator() && e.message.role === "Standby") c.s.hadStandby = true;
}

/** The master stepped down for a manual promotion: ask the standbys' final positions. */
function afterSwitchover(c: Ctx): void {
  const p = c.s.promotion!;
  const ask = possibleStandbys(c);
  c.setPromotion({
    ...p,
    stage: "queryLsn",
    switchedOver: true,
    awaiting: ask,
    lsns: {},
    timelines: {},
    candidate: null,
  });
  queryPositions(c, p.token, ask);
}

/** Joined a quorate view: announce our (tentative) role and ask for everyone's before checking databases. */
function joinQuorate(c: Ctx): void {
  c.setPhase("checking");
  c.s.joinedAt = c.now;
  c.broadcast(c.status(true));
  c.timer("startupChecks", c.now + c.s.config.messageSlackMs);
}

/** After learning our role: if the quorate view already arrived while we probed, join it now. */
function afterRoleKnown(c: Ctx): void {
  c.setPhase("joining");
  if (c.s.view?.quorate) joinQuorate(c);
}

function beginStartupChecks(c: Ctx): void {
  const targets = c.others().filter((a) => {
    const r = c.roleOf(a);
    return r === "Master" || r === "Standby";
  });
  const checks: Record<string, string> = {};
  for (const t of targets) {
    const token = c.token("start");
    checks[token] = t;
    c.act({ type: "checkRemoteDb", token, target: t, timeoutMs: c.s.config.remoteTimeoutMs });
  }
  c.s.startupChecks = checks;
}

function adoptView(c: Ctx, e: EventFor<"viewInstalled">): void {
  const view = e.view;
  c.s.previousViewSize = c.s.view?.members.length ?? 0;
  c.s.view = view;
  // Members that left keep their entry until their memberGone is handled: the decision needs their role.
  const peers: Record<string, { role: AgentRole | null; db: "UP" | "DOWN" | "UNKNOWN" }> = { ...c.s.peers };
  for (const m of view.members) {
    if (m.address === c.self) continue;
    const old = c.s.peers[m.address];
    peers[m.address] = { ...old, role: m.role ?? old?.role ?? null, db: old?.db ?? "UNKNOWN" };
    if (m.role === "Master") {
      c.s.knownMaster = { address: m.address, lastHeardAt: e.now };
      c.s.failoverDisabled = false;
    }
  }
  c.s.peers = peers;
  // A lost member is back (a restarted agent or a merge): the removal an investigation waited on no
  // longer bounds its lease, since it may have earned a fresh one since. Deciding on that old
  // removal's takeoverAllowedAt (and on database checks made while it was down) let a coordinator
  // promote over a master that had restarted and was then isolated (sim seed 11943, 5 nodes). If
  // it is lost again, its new removal starts a new investigation with a new takeoverAllowedAt.
  const back = new Set(view.members.map((m) => m.address));
  c.s.investigations = c.s.investigations.filter((i) => i.kind === "dbFailure" || !back.has(i.target));
}

function quorateView(c: Ctx, e: EventFor<"viewInstalled">): void {
  adoptView(c, e);
  if (c.s.isolated) {
    c.s.isolated = false;
    c.notify("nodeNoLongerIsolated", c.cluster());
  }
  c.broadcast(c.status());
  if (c.s.role === "Master") c.armLease();
  if (c.isCoordinator()) {
    c.raise({ type: "reviewSize", now: c.now });
    c.raise({ type: "reviewStandbys", now: c.now });
  }
  // Reconcile even if our lease is not established yet (acks of a fresh view are still in flight).
  if (e.view.coordinator === c.self) {
    c.timer("reconcile", c.now + c.s.config.remoteTimeoutMs + c.s.config.messageSlackMs);
  }
}

function fenceForIsolation(c: Ctx, why: string): void {
  c.beginSelfFence("isolation", null);
  c.s.lastReason = why;
}

function minorityNotice(c: Ctx): void {
  c.notify("subsetDisconnectedFromMaster", {
    clusterName: c.s.config.clusterName,
    nodeAddress: c.members().join(" "),
  });
  if (c.s.config.pingServer)
    c.act({ type: "pingServer", token: c.token("isolation"), server: c.s.config.pingServer });
}

function selfFenceScript(c: Ctx, purpose: "dbFailure" | "switchover" | "isolation" | "retry"): void {
  const kind = purpose === "dbFailure" ? "dbFailure" : purpose === "isolation" ? "masterIsolated" : null;
  const path = kind ? c.s.config.scripts[kind] : null;
  if (kind && path) c.act({ type: "runScript", token: c.token("script"), script: kind, path });
}

function completeSelfFence(c: Ctx): void {
  const f = c.s.selfFence;
  if (!f) return;
  c.s.selfFence = null;
  selfFenceScript(c, f.purpose);
  if (f.replyTo) c.send(f.replyTo.to, fencedReport(c, f.replyTo.token));
  // Whatever the reason, until someone takes over the coordinator must know this master is fenced:
  // a promotion that gets abandoned (lost lease, timeout) is otherwise never retried. When the
  // coordinator asked for the fencing it is already promoting: only remind it later.
  if (f.replyTo) c.timer("fencedRetry", c.now + c.s.config.remoteTimeoutMs + c.s.config.messageSlackMs);
  else reportFencedMaster(c);
}

/** Our answer to "fence yourself": fenced, or (its stop not confirmed) possibly still writable. */
function fencedReport(c: Ctx, token: string): PeerMessage {
  return { type: "fenced", token, ...(c.s.fenceUnconfirmed ? { unconfirmed: true } : {}) };
}

/** Tell the coordinator (if we see one) that this old master is fenced, and keep telling it until someone takes over. */
function reportFencedMaster(c: Ctx): void {
  const coord = c.coordinator();
  if (coord) {
    // our status first (same connection, in order): the coordinator may still think we are Master
    if (coord !== c.self) c.send(coord, c.status());
    c.send(coord, { type: "fencedMasterBack", ...(c.s.fenceUnconfirmed ? { unconfirmed: true } : {}) });
  }
  c.timer("fencedRetry", c.now + c.s.config.promotionTimeoutMs);
}

/**
 * The coordinator learns an old master's fence was not confirmed: say why the next promotion
 * checks it like a lost master (8.3) instead of trusting the fence.
 */
function unconfirmedFenceNotice(c: Ctx, master: string): void {
  c.notify("unexpectedError", {
    clusterName: c.s.config.clusterName,
    errorDetails:
      `The old master ${master} could not confirm that its database stopped, so it may still accept writes. ` +
      "A standby is promoted only if the VIP does not answer, the ping server answers and the old master's " +
      "database cannot be reached as a master; make sure that database is stopped.",
  });
}

function reportDbFailure(c: Ctx): void {
  const coord = c.coordinator();
  if (coord) c.send(coord, { type: "dbFailed", role: c.s.role ?? "Idle" });
  c.timer("dbFailedRetry", c.now + c.s.config.remoteTimeoutMs + c.s.config.messageSlackMs);
}

function anyReached(inv: Investigation): boolean {
  return Object.values(inv.results).includes("reachable");
}

/** The last master we know of, or (after our own restart) the one a running peer reports. */
function lastMaster(c: Ctx): string | null {
  if (c.s.knownMaster) return c.s.knownMaster.address;
  for (const a of c.others()) {
    const p = c.s.peers[a];
    if (p && !p.starting && p.master) return p.master;
  }
  return null;
}

function startMasterLost(c: Ctx, address: string, notBefore: number): void {
  if (c.s.investigations.some((i) => i.kind === "masterLost" && i.target === address)) return;
  c.startInvestigation("masterLost", address, "Master", notBefore);
}

function clusterCommand(c: Ctx, requestId: string, origin: string, command: Command): void {
  c.raise({ type: "clusterCommand", now: c.now, requestId, origin, command });
}

function resumeAsRole(c: Ctx, role: "Master" | "Standby", requestId: string): void {
  c.s.pendingResume = null;
  c.s.reconfigureRetry = false;
  c.s.db = "UP";
  c.s.local = { token: null, final: false, firstFailure: null, reported: false };
  c.setRole(role);
  if (role === "Master") {
    c.provisionalLease();
    if (c.s.config.virtualIp) c.act({ type: "assignVip", token: c.token("vip"), vip: c.s.config.virtualIp });
  }
  // A resume restarts the check cycle now (step's invariant keeps it going from there).
  c.startLocalMonitoring();
  c.act({ type: "respond", requestId, ok: true, message: `Resumed monitoring as ${role}.` });
}

function exitAgent(c: Ctx, code: number, reason: string): void {
  c.setPhase("exited");
  c.act({ type: "exit", code, reason });
}

/** Standbys of the view, and members whose role has not reached us yet (a joiner's status may be in flight). */
function possibleStandbys(c: Ctx): string[] {
  return c.members().filter((a) => {
    const r = c.roleOf(a);
    return r === "Standby" || r === null;
  });
}

/** Asks each member for its WAL position (ourselves directly) and bounds the wait. */
function queryPositions(c: Ctx, token: string, ask: readonly string[]): void {
  for (const a of ask) {
    if (a === c.self) {
      const t = c.token("lsn");
      c.s.lsnQueries = { ...c.s.lsnQueries, [t]: token };
      c.act({ type: "queryLsn", token: t });
    } else c.send(a, { type: "queryLsn", token });
  }
  c.timer(`promotion:${token}`, c.now + c.s.config.remoteTimeoutMs + c.s.config.messageSlackMs);
}

function pendingPromoteTarget(c: Ctx): string {
  return c.s.promotion?.candidate ?? c.s.promotion?.oldMaster ?? c.self;
}

// ---------- the table ----------

/** Every transition of the engine, in match order (first matching row wins). */
export const transitions: readonly TransitionRow[] = [
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
    actions: "none",
    reason: "keep the newest view while start-up checks run",
    run: (c, e) => adoptView(c, e),
  }),

  // ---- views, quorum and the master lease (8.6, DESIGN 4) ----
  row({
    id: "view.minority.master",
    from: ["Master"],
    on: "viewInstalled",
    guard: "view not quorate and the unseen voters could form a quorum",
    to: "Idle",
    actions: "release VIP, fence, script.master.isolated; notify subset disconnected",
    reason: "master isolated in a minority: fence before the majority may promote (8.6)",
    when: (c, e) => !e.view.quorate && c.othersCouldFormQuorum(e.view),
    run: (c, e) => {
      adoptView(c, e);
      fenceForIsolation(c, "isolated in a minority");
      minorityNotice(c);
    },
  }),
  row({
    id: "view.minority.candidate",
    from: ["Promoting"],
    on: "viewInstalled",
    guard: "view not quorate, database not yet promoted",
    to: "Standby",
    actions: "abort the promotion",
    reason: "lost the majority before promoting: a promotion only happens inside a majority view",
    when: (c, e) =>
      !e.view.quorate &&
      c.s.candidacy !== null &&
      ["vip", "pingServer", "master", "fence"].includes(c.s.candidacy.stage),
    run: (c, e) => {
      adoptView(c, e);
      c.abortCandidacy("lost the majority view before promoting");
      minorityNotice(c);
    },
  }),
  row({
    id: "view.minority",
    from: RUNNING,
    on: "viewInstalled",
    guard: "view not quorate",
    to: "unchanged",
    actions: "notify subset disconnected; ping the well-known server",
    reason: "in a minority: failover will not be attempted from here",
    when: (_c, e) => !e.view.quorate,
    run: (c, e) => {
      const wasQuorate = c.quorate();
      adoptView(c, e);
      if (wasQuorate) minorityNotice(c);
    },
  }),
  row({
    id: "view.changed.candidate",
    from: ["Promoting"],
    on: "viewInstalled",
    guard: "view changed (new epoch), database not yet promoted",
    to: "Standby",
    actions: "abort the promotion",
    reason: "the view changed under the promotion (a member came or went): abort, the coordinator re-decides",
    when: (c, e) =>
      c.s.candidacy !== null &&
      e.view.epoch !== c.s.candidacy.epoch &&
      ["vip", "pingServer", "master", "fence"].includes(c.s.candidacy.stage),
    run: (c, e) => {
      adoptView(c, e);
      c.abortCandidacy("view changed before promoting");
    },
  }),
  row({
    id: "view.quorate.fencedMaster",
    from: ["Idle"],
    on: "viewInstalled",
    guard: "view quorate; we fenced ourselves as an isolated master and nobody took over",
    to: "unchanged",
    actions: "tell the coordinator the old master is fenced",
    reason:
      "back in a majority after fencing: the coordinator may promote without waiting for our database to vanish",
    when: (c, e) => e.view.quorate && c.s.fencedForIsolation && c.s.selfFence === null,
    run: (c, e) => {
      quorateView(c, e);
      reportFencedMaster(c);
    },
  }),
  row({
    id: "view.quorate",
    from: RUNNING,
    on: "viewInstalled",
    guard: "view quorate",
    to: "unchanged",
    actions: "announce status; coordinator reviews size and standbys, reconciles after a delay",
    reason: "new majority view installed",
    when: (_c, e) => e.view.quorate,
    run: (c, e) => quorateView(c, e),
  }),
  row({
    id: "review.belowThree",
    from: RUNNING,
    on: "reviewSize",
    guard: "coordinator; fewer than three members, previously three or more",
    to: "unchanged",
    actions: "notify clusterBelowThreeNodes",
    reason: "the cluster dropped below three nodes: no full failover protection",
    when: (c) => c.members().length < 3 && c.s.previousViewSize >= 3,
    run: (c) => c.notify("clusterBelowThreeNodes", c.cluster()),
  }),
  row({
    id: "review.size.ok",
    from: RUNNING,
    on: "reviewSize",
    guard: "otherwise",
    to: "unchanged",
    actions: "none",
    reason: "cluster size is fine",
    run: () => {},
  }),
  row({
    id: "review.noStandby",
    from: RUNNING,
    on: "reviewStandbys",
    guard: "coordinator; there was a standby, now none",
    to: "unchanged",
    actions: "notify noStandbyAgent",
    reason: "the standbys have left the cluster",
    when: (c) => c.s.hadStandby && c.membersWithRole("Standby", "Promoting").length === 0,
    run: (c) => {
      c.s.hadStandby = false;
      c.notify("noStandbyAgent", c.cluster());
    },
  }),
  row({
    id: "review.standbys.ok",
    from: RUNNING,
    on: "reviewStandbys",
    guard: "otherwise",
    to: "unchanged",
    actions: "none",
    reason: "standby count reviewed",
    run: (c) => {
      if (c.membersWithRole("Standby", "Promoting").length > 0) c.s.hadStandby = true;
    },
  }),
  row({
    id: "isolation.pingFailed",
    from: RUNNING,
    on: "pingServerPinged",
    guard: "minority and the well-known server is unreachable",
    to: "unchanged",
    actions: "notify nodesIsolated",
    reason: "this node appears isolated from the network",
    when: (c, e) => e.token.startsWith("isolation:") && !e.reachable && !c.quorate(),
    run: (c) => {
      c.s.isolated = true;
      c.notify("nodesIsolated", { clusterName: c.s.config.clusterName, nodeName: c.others().join(" ") });
    },
  }),
  row({
    id: "isolation.pingOk",
    from: RUNNING,
    on: "pingServerPinged",
    guard: "isolation probe: server reachable or quorum back",
    to: "unchanged",
    actions: "none",
    reason: "the well-known server is reachable: the network is not isolated",
    when: (_c, e) => e.token.startsWith("isolation:"),
    run: () => {},
  }),
  row({
    id: "quorum.lost.master",
    from: ["Master"],
    on: "quorumLost",
    guard: "the unseen voters could form a quorum",
    to: "Idle",
    actions: "release VIP, fence, script.master.isolated",
    reason: "master lost the majority: fence before the majority may promote",
    when: (c) => c.quorumWithoutSelfPossible(),
    run: (c) => {
      fenceForIsolation(c, "quorum lost");
      minorityNotice(c);
    },
  }),
  row({
    id: "quorum.lost",
    from: RUNNING,
    on: "quorumLost",
    guard: "otherwise",
    to: "unchanged",
    actions: "none",
    reason: "quorum lost: no failover decisions from this side",
    run: (c) => {
      if (c.s.view) c.s.view = { ...c.s.view, quorate: false };
    },
  }),
  row({
    id: "quorum.gained",
    from: RUNNING,
    on: "quorumGained",
    guard: "always",
    to: "unchanged",
    actions: "none",
    reason: "quorum regained",
    run: (c) => {
      if (c.s.view) c.s.view = { ...c.s.view, quorate: true };
    },
  }),
  row({
    id: "lease.valid",
    from: ["*"],
    on: "leaseValid",
    guard: "always",
    to: "unchanged",
    actions: "master re-arms the lease timer",
    reason: "a majority heard us: lease renewed",
    run: (c, e) => {
      c.s.leaseUntil = Math.max(c.s.leaseUntil ?? e.until, e.until);
      c.armLease();
      // Standbys that announced themselves before we could coordinate join the list now.
      c.adoptStandbys();
    },
  }),
  row({
    id: "lease.lost.master",
    from: ["Master"],
    on: "leaseLost",
    guard: "a quorum without us is possible (three or more voters)",
    to: "Idle",
    actions: "release VIP, fence, script.master.isolated",
    reason: "master lease lost: fence before the majority may promote (DESIGN 4 safety rule)",
    when: (c) => c.quorumWithoutSelfPossible(),
    run: (c) => {
      fenceForIsolation(c, "lease lost");
      minorityNotice(c);
    },
  }),
  row({
    id: "lease.lost.candidate",
    from: ["Promoting"],
    on: "leaseLost",
    guard: "database not yet promoted",
    to: "Standby",
    actions: "abort the promotion",
    reason:
      "lost the majority's acknowledgements before promoting: a promotion needs a majority that hears us",
    when: (c) =>
      c.s.candidacy !== null && ["vip", "pingServer", "master", "fence"].includes(c.s.candidacy.stage),
    run: (c) => c.abortCandidacy("lease lost before promoting"),
  }),
  row({
    id: "lease.lost",
    from: ["*"],
    on: "leaseLost",
    guard: "otherwise",
    to: "unchanged",
    actions: "none",
    reason: "lease lost but no quorum can form without us (or not master): keep the role",
    run: () => {},
  }),
  row({
    id: "lease.expired",
    from: ["Master"],
    on: "timer:lease",
    guard: "no majority heard for L and a quorum without us is possible",
    to: "Idle",
    actions: "release VIP, fence, script.master.isolated",
    reason: "master has not heard from a majority for L: fence itself (DESIGN 4 safety rule)",
    when: (c, e) => (c.s.leaseUntil === null || e.now >= c.s.leaseUntil) && c.quorumWithoutSelfPossible(),
    run: (c) => {
      fenceForIsolation(c, "lease expired");
      minorityNotice(c);
    },
  }),
  row({
    id: "lease.timer",
    from: ["*"],
    on: "timer:lease",
    guard: "otherwise",
    to: "unchanged",
    actions: "re-arm if master",
    reason: "lease still valid",
    run: (c) => c.armLease(),
  }),

  // ---- members leaving (8.3, 8.4, 8.5, 8.6) ----
  row({
    id: "gone.master",
    from: RUNNING,
    on: "memberGone",
    guard: "coordinator; the master agent left",
    to: "unchanged",
    actions: "everyone checks the master database; conclude no earlier than lastHeard+L+margin",
    reason: "the master agent is gone: check its database, wait out its lease before deciding (8.3)",
    when: (c, e) =>
      c.isCoordinator() && (c.roleOf(e.address) === "Master" || c.s.knownMaster?.address === e.address),
    run: (c, e) => {
      delete (c.s.peers as Record<string, unknown>)[e.address];
      c.s.peers = { ...c.s.peers };
      c.s.knownMaster = { address: e.address, lastHeardAt: e.lastHeardAt };
      if (e.how === "removed")
        c.notify("masterBeingFenced", { clusterName: c.s.config.clusterName, ipAddress: e.address });
      startMasterLost(
        c,
        e.address,
        e.takeoverAllowedAt ?? e.lastHeardAt + c.s.config.leaseMs + c.s.config.takeoverMarginMs,
      );
    },
  }),
  row({
    id: "gone.standby",
    from: RUNNING,
    on: "memberGone",
    guard: "coordinator; a standby agent left",
    to: "unchanged",
    actions: "everyone checks its database; drop it from the priority list",
    reason: "a standby agent is gone: check whether its database still runs (8.4)",
    when: (c, e) =>
      c.isCoordinator() && (c.roleOf(e.address) === "Standby" || c.roleOf(e.address) === "Promoting"),
    run: (c, e) => {
      const role = c.roleOf(e.address)!;
      const { [e.address]: _gone, ...rest } = c.s.peers;
      c.s.peers = rest;
      if (c.s.promotion?.candidate === e.address) c.setPromotion(null);
      if (c.s.priority.includes(e.address)) {
        c.s.priority = c.s.priority.filter((a) => a !== e.address);
        c.publishLists();
      }
      c.startInvestigation("standbyLost", e.address, role, c.now);
    },
  }),
  row({
    id: "gone.witness",
    from: RUNNING,
    on: "memberGone",
    guard: "coordinator; the witness left",
    to: "unchanged",
    actions: "notify witnessFailure",
    reason: "the witness agent is gone (8.5)",
    when: (c, e) => c.isCoordinator() && c.roleOf(e.address) === "Witness",
    run: (c, e) => {
      const { [e.address]: _gone, ...rest } = c.s.peers;
      c.s.peers = rest;
      c.notify("witnessFailure", c.node(e.address));
    },
  }),
  row({
    id: "gone.idle",
    from: RUNNING,
    on: "memberGone",
    guard: "coordinator; an Idle agent left",
    to: "unchanged",
    actions: "notify idleAgentFailure",
    reason: "an Idle agent is gone",
    when: (c, e) => c.isCoordinator() && c.roleOf(e.address) === "Idle",
    run: (c, e) => {
      const { [e.address]: _gone, ...rest } = c.s.peers;
      c.s.peers = rest;
      c.notify("idleAgentFailure", c.node(e.address));
    },
  }),
  row({
    id: "gone.record",
    from: ["*"],
    on: "memberGone",
    guard: "otherwise",
    to: "unchanged",
    actions: "remember when the master was last heard",
    reason: "a member left; the coordinator decides",
    run: (c, e) => {
      if (c.roleOf(e.address) === "Master" || c.s.knownMaster?.address === e.address) {
        c.s.knownMaster = { address: e.address, lastHeardAt: e.lastHeardAt };
      }
      const { [e.address]: _gone, ...rest } = c.s.peers;
      c.s.peers = rest;
    },
  }),
  row({
    id: "suspect.note",
    from: ["*"],
    on: "memberSuspected",
    guard: "always",
    to: "unchanged",
    actions: "none",
    reason: "a member is suspected; membership verifies before removing it",
    run: () => {},
  }),
  row({
    id: "watch.masterless",
    from: RUNNING,
    on: "timer:masterWatch",
    guard:
      "coordinator of a majority with its lease; no master, promotion or check anywhere; a healthy standby; no lease can still run (last master heard, our start: L+margin ago); failover not disabled",
    to: "unchanged",
    actions:
      "request a promotion that first asks every database whether it is in recovery (auto.failover=false: notify)",
    reason:
      "the cluster has no writable master and a healthy standby: the guide would have failed over, so do it (or say it is needed)",
    // A masterless end state that waits for a person (every database in recovery after a cluster
    // restart, a failover abandoned half-way) is not one the guide's failover would leave.
    when: (c) => {
      const cfg = c.s.config;
      const wait = cfg.leaseMs + cfg.takeoverMarginMs;
      const healthy = c
        .membersWithRole("Standby")
        .some((a) => (a === c.self ? c.s.db : c.s.peers[a]?.db) === "UP" && !c.s.peers[a]?.starting);
      return (
        c.isCoordinator() &&
        c.membersWithRole("Master", "Promoting").length === 0 &&
        c.s.promotion === null &&
        c.s.investigations.length === 0 &&
        !c.s.failoverDisabled &&
        healthy &&
        (c.s.knownMaster === null || c.now >= c.s.knownMaster.lastHeardAt + wait) &&
        c.s.startedAt !== null &&
        c.now >= c.s.startedAt + wait
      );
    },
    run: (c) => {
      c.timer("masterWatch", c.now + c.s.config.promotionTimeoutMs);
      if (!c.s.config.autoFailover) {
        // Detect and notify, never act; once per masterless spell (cluster-status keeps saying it).
        const text = `Potential manual failover required on cluster ${c.s.config.clusterName}: no database is a master and a standby is healthy; run 'efm promote ${c.s.config.clusterName}'.`;
        if (c.s.attention !== text) {
          c.notify("potentialManualFailover", c.cluster());
          c.setAttention(text);
        }
        return;
      }
      c.raise({
        type: "promotionRequested",
        now: c.now,
        manual: false,
        force: false,
        oldMaster: null,
        request: null,
        probe: true,
      });
    },
  }),
  row({
    id: "watch.ok",
    from: ["*"],
    on: "timer:masterWatch",
    guard: "otherwise",
    to: "unchanged",
    actions: "look again later",
    reason: "a master runs, a decision is in progress, or this agent does not coordinate",
    run: (c) => {
      if (c.s.phase === "running") c.timer("masterWatch", c.now + c.s.config.promotionTimeoutMs);
    },
  }),
  row({
    id: "reconcile.noMaster",
    from: RUNNING,
    on: "timer:reconcile",
    guard: "coordinator; last master gone or no longer master; no master, promotion or check anywhere",
    to: "unchanged",
    actions: "investigate the last known master (lease wait from now)",
    reason: "new coordinator sees no master: re-run the master-loss checks it may have missed",
    when: (c) => {
      const m = lastMaster(c);
      return (
        c.isCoordinator() &&
        m !== null &&
        (!c.members().includes(m) || ["Standby", "Idle", "Witness"].includes(c.roleOf(m) ?? "")) &&
        c.membersWithRole("Master", "Promoting").length === 0 &&
        c.s.promotion === null &&
        !c.s.failoverDisabled &&
        c.s.investigations.length === 0
      );
    },
    run: (c) => startMasterLost(c, lastMaster(c)!, c.now + c.s.config.leaseMs + c.s.config.takeoverMarginMs),
  }),
  row({
    id: "reconcile.wait",
    from: RUNNING,
    on: "timer:reconcile",
    guard: "coordinator of a quorate view without a lease yet",
    to: "unchanged",
    actions: "try again later",
    reason: "a majority has not acknowledged us yet: reconcile once it has",
    when: (c) => c.quorate() && c.s.view?.coordinator === c.self && !c.leaseValid(),
    run: (c) => c.timer("reconcile", c.now + c.s.config.remoteTimeoutMs + c.s.config.messageSlackMs),
  }),
  row({
    id: "reconcile.ok",
    from: ["*"],
    on: "timer:reconcile",
    guard: "otherwise",
    to: "unchanged",
    actions: "none",
    reason: "cluster roles are consistent",
    run: () => {},
  }),

  // ---- checking a database on the coordinator's behalf ----
  row({
    id: "fencedRetry.again",
    from: ["Idle"],
    on: "timer:fencedRetry",
    guard: "still fenced for isolation and nobody took over",
    to: "unchanged",
    actions: "report fenced to the coordinator again",
    reason: "no new master yet: remind the coordinator this old master is fenced",
    when: (c) => c.s.fencedForIsolation,
    run: (c) => reportFencedMaster(c),
  }),
  row({
    id: "fencedRetry.stop",
    from: ["*"],
    on: "timer:fencedRetry",
    guard: "otherwise",
    to: "unchanged",
    actions: "none",
    reason: "a new master exists (or we resumed): nothing to report",
    run: () => {},
  }),
  row({
    id: "coord.fencedMasterBack.switchover",
    from: RUNNING,
    on: "message:fencedMasterBack",
    guard: "coordinator waiting for exactly this master to step down for a manual promotion",
    to: "unchanged",
    actions: "continue the promotion",
    reason: "its 'fenced' answer was lost, this reminder says the same: the master has stepped down",
    when: (c, e) =>
      c.isCoordinator() && c.s.promotion?.stage === "switchover" && c.s.promotion.oldMaster === e.from,
    run: (c) => afterSwitchover(c),
  }),
  row({
    id: "coord.fencedMasterBack",
    from: RUNNING,
    on: "message:fencedMasterBack",
    guard:
      "coordinator; it was the last master (or we know no other); no master, promotion or check in progress",
    to: "unchanged",
    actions: "request a promotion that skips the master-database check",
    reason: "the old master fenced itself and nobody took over: fail over to the best standby",
    // A coordinator that restarted while the master was cut off never learned it: with no other
    // master known here or reported by running peers, the fenced master's own word is the best
    // knowledge (sim seed 10461, 3 nodes: the cluster otherwise stayed without a master for good).
    when: (c, e) =>
      c.isCoordinator() &&
      (lastMaster(c) ?? e.from) === e.from &&
      c.membersWithRole("Master", "Promoting").length === 0 &&
      c.s.promotion === null &&
      c.s.investigations.length === 0,
    // A fence its master could not confirm proves nothing: the candidate then checks the old
    // master like a lost one (8.3: VIP, ping server, master database) before promoting.
    run: (c, e) => {
      const confirmed = e.message.unconfirmed !== true;
      if (!confirmed) unconfirmedFenceNotice(c, e.from);
      c.raise({
        type: "promotionRequested",
        now: c.now,
        manual: false,
        force: false,
        oldMaster: e.from,
        request: null,
        masterFenced: confirmed,
      });
    },
  }),
  row({
    id: "coord.fencedMasterBack.ignore",
    from: ["*"],
    on: "message:fencedMasterBack",
    guard: "otherwise",
    to: "unchanged",
    actions: "none",
    reason: "a master already exists or a decision is in progress (or we are not the coordinator)",
    run: () => {},
  }),
  row({
    id: "idle.vouched",
    from: ["Idle"],
    on: "message:status",
    guard:
      "Idle because of a master conflict at start-up; the coordinator names us the master; no master here",
    to: "Master",
    actions: "take the master role: lease, VIP, monitoring",
    reason: "the coordinator vouches for us as its master and nobody else holds the role: resume as master",
    // Only the coordinator's word counts: it alone runs promotions and names no master while one is
    // in flight. A standby's word let an old primary resume while the coordinator was promoting
    // another standby (sim seed 13580, 7 nodes: two writable masters).
    when: (c, e) =>
      c.s.idleForConflict &&
      !e.message.starting &&
      e.from === c.s.view?.coordinator &&
      e.message.master === c.self &&
      c.quorate() &&
      c.leaseValid() &&
      !c.others().some((a) => ["Master", "Promoting"].includes(c.roleOf(a) ?? "") && !c.s.peers[a]?.starting),
    run: (c, e) => {
      recordStatus(c, e);
      c.s.idleForConflict = false;
      c.setRole("Master");
      c.provisionalLease();
      if (c.s.config.virtualIp)
        c.act({ type: "assignVip", token: c.token("vip"), vip: c.s.config.virtualIp });
    },
  }),
  row({
    id: "conflict.recheck.vouched",
    from: ["Idle"],
    on: "timer:conflictRecheck",
    guard: "still Idle for a start-up conflict; the rival is gone; the coordinator names us the master",
    to: "Master",
    actions: "take the master role: lease, VIP, monitoring",
    reason: "the conflict that kept us Idle is over and the coordinator names us its master",
    when: (c) => {
      const coord = c.s.view?.coordinator;
      // as coordinator ourselves: what our running peers report, and no promotion of ours in flight
      const vouched =
        coord === c.self
          ? c.s.promotion === null &&
            c.others().some((a) => !c.s.peers[a]?.starting && c.s.peers[a]?.master === c.self)
          : coord !== undefined && !c.s.peers[coord]?.starting && c.s.peers[coord]?.master === c.self;
      return (
        c.s.idleForConflict &&
        c.quorate() &&
        c.leaseValid() &&
        !c.others().some((a) => ["Master", "Promoting"].includes(c.roleOf(a) ?? "")) &&
        vouched
      );
    },
    run: (c) => {
      c.s.idleForConflict = false;
      c.setRole("Master");
      c.provisionalLease();
      if (c.s.config.virtualIp)
        c.act({ type: "assignVip", token: c.token("vip"), vip: c.s.config.virtualIp });
    },
  }),
  row({
    id: "conflict.recheck.wait",
    from: ["*"],
    on: "timer:conflictRecheck",
    guard: "otherwise",
    to: "unchanged",
    actions: "check again later while still Idle for a conflict; ask the coordinator's status",
    reason: "the start-up conflict is not resolved yet",
    run: (c) => {
      if (c.s.idleForConflict && c.s.role === "Idle") {
        c.timer("conflictRecheck", c.now + c.s.config.promotionTimeoutMs);
        // statuses are sent on changes only: ask the coordinator again for the master it names
        const coord = c.s.view?.coordinator;
        if (coord && coord !== c.self && c.members().includes(coord)) c.send(coord, c.status(true));
      }
    },
  }),
  row({
    id: "peer.status",
    from: ["*"],
    on: "message:status",
    guard: "always",
    to: "unchanged",
    actions: "coordinator appends a new standby to the priority list",
    reason: "a peer announced its role",
    run: (c, e) => {
      recordStatus(c, e);
    },
  }),
  row({
    id: "checkDb.request",
    from: ["*"],
    on: "message:checkDb",
    guard: "always",
    to: "unchanged",
    actions: "checkRemoteDb(target)",
    reason: "the coordinator asked us to try a database directly",
    run: (c, e) => {
      const t = c.token("chk");
      c.s.remoteChecks = { ...c.s.remoteChecks, [t]: { replyTo: e.from, token: e.message.token } };
      c.act({
        type: "checkRemoteDb",
        token: t,
        target: e.message.target,
        timeoutMs: c.s.config.remoteTimeoutMs,
        asMaster: e.message.asMaster === true,
      });
    },
  }),
  row({
    id: "checkDb.answer",
    from: ["*"],
    on: "remoteDbChecked",
    guard: "result of a check the coordinator asked for",
    to: "unchanged",
    actions: "reply to the coordinator",
    reason: "report whether we reached the database",
    when: (c, e) => c.s.remoteChecks[e.token] !== undefined,
    run: (c, e) => {
      const req = c.s.remoteChecks[e.token]!;
      const { [e.token]: _done, ...rest } = c.s.remoteChecks;
      c.s.remoteChecks = rest;
      if (req.replyTo === c.self) c.recordCheck(req.token, c.self, e.result);
      else c.send(req.replyTo, { type: "checkDbReply", token: req.token, result: e.result });
    },
  }),
  row({
    id: "checkDb.reply",
    from: ["*"],
    on: "message:checkDbReply",
    guard: "always",
    to: "unchanged",
    actions: "record; conclude when all answered and the lease wait is over",
    reason: "a member reported on the database",
    run: (c, e) => c.recordCheck(e.message.token, e.from, e.message.result),
  }),
  row({
    id: "investigation.deadline",
    from: ["*"],
    on: "timer:investigation",
    guard: "always",
    to: "unchanged",
    actions: "conclude with the answers received",
    reason: "remote.timeout passed: members that did not answer count as not having reached the database",
    when: (c, e) => c.investigation(e.name.slice("investigation:".length)) !== undefined,
    run: (c, e) => c.maybeConclude(e.name.slice("investigation:".length), true),
  }),
  row({
    id: "investigation.timer.stale",
    from: ["*"],
    on: "timer:investigation",
    guard: "otherwise",
    to: "unchanged",
    actions: "none",
    reason: "timer of an investigation already concluded",
    run: () => {},
  }),
  row({
    id: "investigation.notBefore",
    from: ["*"],
    on: "timer:notBefore",
    guard: "always",
    to: "unchanged",
    actions: "conclude if every member answered",
    reason: "the lost master's lease (L + margin) has run out",
    run: (c, e) => {
      const token = e.name.slice("notBefore:".length);
      const inv = c.investigation(token);
      c.maybeConclude(token, inv !== undefined && c.now >= inv.deadline);
    },
  }),
  row({
    id: "inv.notCoordinator",
    from: ["*"],
    on: "investigationDone",
    guard: "no longer coordinator of a majority",
    to: "unchanged",
    actions: "drop the investigation",
    reason: "lost the coordinator role or the majority: a decision here would not be safe",
    when: (c) => !c.isCoordinator(),
    run: (c, e) => c.dropInvestigation(e.token),
  }),
  row({
    id: "inv.dbFailure.refuted",
    from: ["*"],
    on: "investigationDone",
    guard: "database failure reported, another agent reached the database",
    to: "unchanged",
    actions: "verdict refuted to the reporter",
    reason: "another agent can connect to the database: no failover",
    when: (c, e) => {
      const inv = c.investigation(e.token);
      return inv?.kind === "dbFailure" && anyReached(inv);
    },
    run: (c, e) => {
      const inv = c.investigation(e.token)!;
      c.dropInvestigation(inv.token);
      c.send(inv.target, { type: "dbFailureVerdict", token: inv.token, confirmed: false });
    },
  }),
  row({
    id: "inv.dbFailure.standby",
    from: ["*"],
    on: "investigationDone",
    guard: "standby database failure confirmed by everyone",
    to: "unchanged",
    actions: "verdict confirmed; notify standbyDatabaseFailed",
    reason: "no agent can reach the standby database: it has failed (8.2)",
    when: (c, e) => {
      const inv = c.investigation(e.token);
      return inv?.kind === "dbFailure" && inv.targetRole !== "Master";
    },
    run: (c, e) => {
      const inv = c.investigation(e.token)!;
      c.dropInvestigation(inv.token);
      c.send(inv.target, { type: "dbFailureVerdict", token: inv.token, confirmed: true });
      c.notify("standbyDatabaseFailed", c.cluster());
    },
  }),
  row({
    id: "inv.dbFailure.master",
    from: ["*"],
    on: "investigationDone",
    guard: "master database failure confirmed by everyone",
    to: "unchanged",
    actions: "verdict confirmed; wait for the master to fence itself",
    reason: "no agent can reach the master database: the master must release the VIP and fence (8.1)",
    when: (c, e) => c.investigation(e.token)?.kind === "dbFailure",
    run: (c, e) => {
      const inv = c.investigation(e.token)!;
      c.putInvestigation({ ...inv, awaitingFence: true });
      c.send(inv.target, { type: "dbFailureVerdict", token: inv.token, confirmed: true });
      c.timer(`verdictRetry:${inv.token}`, c.now + c.s.config.remoteTimeoutMs + c.s.config.messageSlackMs);
    },
  }),
  row({
    id: "inv.masterLost.reachable",
    from: ["*"],
    on: "investigationDone",
    guard: "master agent gone but its database is reachable",
    to: "unchanged",
    actions: "notify masterNodeLeft; failover disabled until the master agent returns",
    reason: "the master database still runs: failover is disabled until the master agent is restarted (8.3)",
    when: (c, e) => {
      const inv = c.investigation(e.token);
      return inv?.kind === "masterLost" && anyReached(inv);
    },
    run: (c, e) => {
      c.dropInvestigation(e.token);
      c.s.failoverDisabled = true;
      c.notify("masterNodeLeft", c.cluster());
    },
  }),
  row({
    id: "inv.masterLost.unreachable",
    from: ["*"],
    on: "investigationDone",
    guard: "master agent gone and nobody reaches its database",
    to: "unchanged",
    actions: "request a promotion",
    reason: "the master agent and database are gone: fail over (8.3)",
    when: (c, e) => c.investigation(e.token)?.kind === "masterLost",
    run: (c, e) => {
      const inv = c.investigation(e.token)!;
      c.dropInvestigation(inv.token);
      c.raise({
        type: "promotionRequested",
        now: c.now,
        manual: false,
        force: false,
        oldMaster: inv.target,
        request: null,
      });
    },
  }),
  row({
    id: "inv.standbyLost.reachable",
    from: ["*"],
    on: "investigationDone",
    guard: "standby agent gone, database still running",
    to: "unchanged",
    actions: "notify standbyAgentFailed",
    reason: "the standby agent left but its database still runs (8.4)",
    when: (c, e) => {
      const inv = c.investigation(e.token);
      return inv?.kind === "standbyLost" && anyReached(inv);
    },
    run: (c, e) => {
      c.dropInvestigation(e.token);
      c.notify("standbyAgentFailed", c.cluster());
    },
  }),
  row({
    id: "inv.standbyLost.unreachable",
    from: ["*"],
    on: "investigationDone",
    guard: "standby agent gone and its database unreachable",
    to: "unchanged",
    actions: "notify standbyDatabaseFailed",
    reason: "the standby node failed: neither agent nor database can be reached (8.4)",
    when: (c, e) => c.investigation(e.token)?.kind === "standbyLost",
    run: (c, e) => {
      c.dropInvestigation(e.token);
      c.notify("standbyDatabaseFailed", c.cluster());
    },
  }),
  row({
    id: "verdict.retry",
    from: ["*"],
    on: "timer:verdictRetry",
    guard: "still waiting for the master to fence",
    to: "unchanged",
    actions: "resend the confirmed verdict",
    reason: "the master has not confirmed fencing yet: ask again",
    when: (c, e) => {
      const inv = c.investigation(e.name.slice("verdictRetry:".length));
      return inv?.awaitingFence === true && c.isCoordinator() && c.members().includes(inv.target);
    },
    run: (c, e) => {
      const inv = c.investigation(e.name.slice("verdictRetry:".length))!;
      c.send(inv.target, { type: "dbFailureVerdict", token: inv.token, confirmed: true });
      c.timer(e.name, c.now + c.s.config.remoteTimeoutMs + c.s.config.messageSlackMs);
    },
  }),
  row({
    id: "verdict.retry.stop",
    from: ["*"],
    on: "timer:verdictRetry",
    guard: "otherwise",
    to: "unchanged",
    actions: "drop the wait (agent loss takes over if the master left)",
    reason: "no longer waiting for that master to fence",
    run: (c, e) => c.dropInvestigation(e.name.slice("verdictRetry:".length)),
  }),
  row({
    id: "fenced.dbFailure",
    from: ["*"],
    on: "message:fenced",
    guard: "coordinator waiting for the failed master to fence",
    to: "unchanged",
    actions: "request a promotion",
    reason: "the failed master released the VIP and fenced its database: fail over (8.1)",
    when: (c, e) => c.investigation(e.message.token)?.awaitingFence === true && c.isCoordinator(),
    // The candidate checks the failed master's database either way (8.1 promotes with the 8.3 checks).
    run: (c, e) => {
      const inv = c.investigation(e.message.token)!;
      c.dropInvestigation(inv.token);
      if (e.message.unconfirmed === true) unconfirmedFenceNotice(c, inv.target);
      c.raise({
        type: "promotionRequested",
        now: c.now,
        manual: false,
        force: false,
        oldMaster: inv.target,
        request: null,
      });
    },
  }),
  row({
    id: "fenced.switchover",
    from: ["*"],
    on: "message:fenced",
    guard: "manual promotion waiting for the master to step down",
    to: "unchanged",
    actions: "query the standbys' positions again (the master no longer writes)",
    reason: "the master stepped down for a manual promotion (4.1.4): pick the candidate on final positions",
    when: (c, e) => c.s.promotion?.stage === "switchover" && c.s.promotion.token === e.message.token,
    run: (c, e) => {
      if (e.message.unconfirmed === true) {
        // The master stepped down but its database may still take writes: check it before promoting.
        unconfirmedFenceNotice(c, e.from);
        c.setPromotion({ ...c.s.promotion!, masterUnconfirmed: true });
      }
      afterSwitchover(c);
    },
  }),
  row({
    id: "fenced.stale",
    from: ["*"],
    on: "message:fenced",
    guard: "otherwise",
    to: "unchanged",
    actions: "none",
    reason: "fencing report for a request no longer pending",
    run: () => {},
  }),

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
    actions: "none",
    reason: "stale local check result ignored",
    when: (c, e) => c.s.pendingResume?.token !== e.token,
    run: () => {},
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

  // ---- fencing ourselves (release VIP, fencing recovery configuration, script) ----
  row({
    id: "selfFence.vipReleased",
    from: ["*"],
    on: "vipDone",
    guard: "releasing the VIP while fencing",
    to: "unchanged",
    actions: "notify releasingVip; fenceDb",
    reason: "VIP released: now write the fencing recovery configuration",
    when: (c, e) => c.s.selfFence?.token === e.token && e.op === "release",
    run: (c, e) => {
      const f = c.s.selfFence!;
      c.notify("releasingVip", {
        nodeAddress: c.self,
        vipAddress: c.s.config.virtualIp ?? "",
        scriptResults: e.output,
      });
      c.s.selfFence = { ...f, stage: "fenceDb" };
      c.act({ type: "fenceDb", token: f.token, newMaster: f.newMaster ?? null });
    },
  }),
  row({
    id: "selfFence.done",
    from: ["*"],
    on: "dbFenced",
    guard: "fencing succeeded",
    to: "unchanged",
    actions: "run script.db.failure / script.master.isolated; report fenced",
    reason: "database fenced: a restart comes up read-only",
    when: (c, e) => c.s.selfFence?.token === e.token && e.ok,
    run: (c) => {
      c.s.fenceUnconfirmed = false;
      if (c.s.selfFence?.purpose !== "retry") completeSelfFence(c);
      else {
        // A retried fence held: nothing else to run; tell the coordinator while nobody took over.
        c.s.selfFence = null;
        if (c.s.fencedForIsolation) reportFencedMaster(c);
      }
    },
  }),
  row({
    id: "selfFence.failed",
    from: ["*"],
    on: "dbFenced",
    guard: "fencing failed: the database could not be confirmed stopped",
    to: "unchanged",
    actions: "notify recoveryConfCreateError; report fenced as unconfirmed; retry the fence",
    reason:
      "the fence could not be confirmed: report it as failed, so the cluster treats this database as possibly writable",
    when: (c, e) => c.s.selfFence?.token === e.token,
    run: (c, e) => {
      c.s.fenceUnconfirmed = true;
      // Said once; a retry that fails again changes nothing the cluster was told.
      if (c.s.selfFence?.purpose === "retry") c.s.selfFence = null;
      else {
        c.notify("recoveryConfCreateError", {
          nodeAddress: c.self,
          clusterName: c.s.config.clusterName,
          messageDetails: e.error ?? "",
        });
        completeSelfFence(c);
      }
      c.timer("fenceRetry", c.now + c.s.config.remoteTimeoutMs + c.s.config.messageSlackMs);
    },
  }),
  row({
    id: "fenceRetry.again",
    from: ["Idle"],
    on: "timer:fenceRetry",
    guard: "our fence is still unconfirmed and no fence runs",
    to: "unchanged",
    actions: "fenceDb again (pointing at the new master once known)",
    reason: "the database was not confirmed stopped: try to fence it again",
    when: (c) => c.s.fenceUnconfirmed && c.s.selfFence === null,
    run: (c) => {
      const token = c.token("fence");
      const m = c.s.knownMaster?.address;
      const newMaster = m !== undefined && m !== c.self ? m : null;
      c.s.selfFence = { token, purpose: "retry", stage: "fenceDb", replyTo: null, newMaster };
      c.act({ type: "fenceDb", token, newMaster });
    },
  }),
  row({
    id: "fenceRetry.stop",
    from: ["*"],
    on: "timer:fenceRetry",
    guard: "otherwise",
    to: "unchanged",
    actions: "none",
    reason: "the fence is confirmed (or we are no longer the fenced old master)",
    run: () => {},
  }),
  row({
    id: "script.dbFailure.ok",
    from: ["*"],
    on: "scriptDone",
    guard: "script.db.failure exit 0",
    to: "unchanged",
    actions: "notify executedPostDatabaseFailureScript",
    reason: "post-database failure script ran",
    when: (_c, e) => e.script === "dbFailure" && e.exitCode === 0,
    run: (c, e) =>
      c.notify("executedPostDatabaseFailureScript", {
        scriptName: c.s.config.scripts.dbFailure ?? "",
        scriptResults: e.output,
      }),
  }),
  row({
    id: "script.dbFailure.failed",
    from: ["*"],
    on: "scriptDone",
    guard: "script.db.failure non-zero exit",
    to: "unchanged",
    actions: "notify postDatabaseFailureScriptError",
    reason: "post-database failure script failed",
    when: (_c, e) => e.script === "dbFailure",
    run: (c, e) =>
      c.notify("postDatabaseFailureScriptError", {
        scriptName: c.s.config.scripts.dbFailure ?? "",
        exitCode: e.exitCode,
        scriptResults: e.output,
      }),
  }),
  row({
    id: "script.isolated.ok",
    from: ["*"],
    on: "scriptDone",
    guard: "script.master.isolated exit 0",
    to: "unchanged",
    actions: "notify executedMasterIsolationScript",
    reason: "master isolation script ran",
    when: (_c, e) => e.script === "masterIsolated" && e.exitCode === 0,
    run: (c, e) =>
      c.notify("executedMasterIsolationScript", {
        scriptName: c.s.config.scripts.masterIsolated ?? "",
        scriptResults: e.output,
      }),
  }),
  row({
    id: "script.isolated.failed",
    from: ["*"],
    on: "scriptDone",
    guard: "script.master.isolated non-zero exit",
    to: "unchanged",
    actions: "notify masterIsolationScriptFailed",
    reason: "master isolation script failed",
    when: (_c, e) => e.script === "masterIsolated",
    run: (c, e) =>
      c.notify("masterIsolationScriptFailed", {
        scriptName: c.s.config.scripts.masterIsolated ?? "",
        exitCode: e.exitCode,
        scriptResults: e.output,
      }),
  }),

  // ---- promotion, coordinator side ----
  row({
    id: "promo.requery.masterStopped",
    from: ["*"],
    on: "promotionRequested",
    guard: "positions being collected for a promotion from this same master, which has now stopped writing",
    to: "unchanged",
    actions: "ask every standby for its position again (new token)",
    reason:
      "the old master stopped writing while positions were collected: rank the standbys on their final positions",
    // Sim seed 20599 (7 nodes): a manual promotion collected positions while the master still wrote;
    // its database then failed and it fenced itself, and the standby that answered last looked best
    // although another, first in the priority list, had caught up to the same final position.
    when: (c, e) =>
      c.s.promotion?.stage === "queryLsn" &&
      !e.manual &&
      e.oldMaster !== null &&
      e.oldMaster === c.s.promotion.oldMaster,
    run: (c, e) => {
      const p = c.s.promotion!;
      const token = c.token("promo");
      const ask = possibleStandbys(c);
      c.setPromotion({
        ...p,
        token,
        awaiting: ask,
        lsns: {},
        timelines: {},
        candidate: null,
        switchedOver: p.switchedOver || e.masterFenced === true,
      });
      queryPositions(c, token, ask);
    },
  }),
  row({
    id: "promo.busy",
    from: ["*"],
    on: "promotionRequested",
    guard: "a promotion is already running",
    to: "unchanged",
    actions: "notify promotionNotOccurred",
    reason: "only one promotion at a time",
    when: (c) => c.s.promotion !== null,
    run: (c, e) => {
      c.notify("promotionNotOccurred", {
        clusterName: c.s.config.clusterName,
        ipAddress: pendingPromoteTarget(c),
      });
      if (e.request)
        c.reply(e.request.origin, e.request.requestId, false, "A promotion is already in progress.");
    },
  }),
  row({
    id: "promo.autoFailoverOff",
    from: ["*"],
    on: "promotionRequested",
    guard: "automatic request and auto.failover=false",
    to: "unchanged",
    actions: "notify potentialManualFailover",
    reason: "auto.failover=false: detect and notify, never act",
    when: (c, e) => !e.manual && !c.s.config.autoFailover,
    run: (c) => c.notify("potentialManualFailover", c.cluster()),
  }),
  row({
    id: "promo.noStandby",
    from: ["*"],
    on: "promotionRequested",
    guard: "no standby agent in the view",
    to: "unchanged",
    actions: "notify failoverNotOccurred (automatic) / refuse (manual)",
    reason: "there are no standby nodes available for failover",
    when: (c) => c.membersWithRole("Standby").length === 0,
    run: (c, e) => {
      if (e.request)
        c.reply(e.request.origin, e.request.requestId, false, "There is no standby available to promote.");
      else c.notify("failoverNotOccurred", c.cluster());
    },
  }),
  row({
    id: "promo.manual.masterTooRecent",
    from: ["*"],
    on: "promotionRequested",
    guard: "manual, no master in the view, last master heard less than L+margin ago",
    to: "unchanged",
    actions: "refuse",
    reason: "the lost master could still hold its lease: wait L plus the margin before promoting",
    when: (c, e) =>
      e.manual &&
      c.membersWithRole("Master").length === 0 &&
      c.s.knownMaster !== null &&
      c.now < c.s.knownMaster.lastHeardAt + c.s.config.leaseMs + c.s.config.takeoverMarginMs,
    run: (c, e) => {
      if (e.request)
        c.reply(
          e.request.origin,
          e.request.requestId,
          false,
          "The master was seen too recently; try again shortly.",
        );
    },
  }),
  row({
    id: "promo.manual.tooSoonAfterStart",
    from: ["*"],
    on: "promotionRequested",
    guard: "manual, no master in the view, this agent started less than L+margin ago",
    to: "unchanged",
    actions: "refuse",
    reason:
      "a restarted coordinator does not know when the last master was heard: its lease may still run until start + L + margin",
    // The issue-13 schedule: the master cut off, both standbys' agents restarted, `efm promote`
    // promoted one while the master, unaware, still held its lease and took writes.
    when: (c, e) =>
      e.manual &&
      c.membersWithRole("Master").length === 0 &&
      c.s.startedAt !== null &&
      c.now < c.s.startedAt + c.s.config.leaseMs + c.s.config.takeoverMarginMs,
    run: (c, e) => {
      if (e.request)
        c.reply(
          e.request.origin,
          e.request.requestId,
          false,
          "The agents restarted too recently: the last master may still hold its lease; try again shortly.",
        );
    },
  }),
  row({
    id: "promo.start.probe",
    from: ["*"],
    on: "promotionRequested",
    guard: "manual (or a masterless cluster found by the coordinator) and no master in the view",
    to: "unchanged",
    actions: "checkRemoteDb(asMaster) on the database of every member and voter first",
    reason:
      "no master is known here: ask every member database whether it is in recovery before choosing a standby",
    when: (c, e) => (e.manual || e.probe === true) && c.membersWithRole("Master").length === 0,
    run: (c, e) => {
      const token = c.token("promo");
      const probes: Record<string, string> = {};
      // Voters outside the view too: a master whose agent crashed is no member, but its database
      // may still run as a primary (a down host or a witness simply does not answer as a master).
      const targets = [...new Set([...c.members(), ...(c.s.view?.voters ?? [])])];
      for (const a of targets) {
        if (c.roleOf(a) === "Witness" || (a === c.self && c.s.config.isWitness)) continue;
        const t = c.token("probe");
        probes[t] = a;
        c.act({
          type: "checkRemoteDb",
          token: t,
          target: a,
          timeoutMs: c.s.config.remoteTimeoutMs,
          asMaster: true,
        });
      }
      c.setPromotion({
        token,
        manual: e.manual,
        force: e.force,
        oldMaster: e.oldMaster ?? c.s.knownMaster?.address ?? c.s.recordedMaster,
        stage: "probe",
        probes,
        awaiting: Object.values(probes),
        lsns: {},
        timelines: {},
        masterLsn: null,
        masterTimeline: null,
        candidate: null,
        request: e.request,
        epoch: c.s.view?.epoch ?? 0,
        switchedOver: e.masterFenced === true,
        ranked: [],
        failures: {},
        verified: [],
        restoring: false,
      });
      c.timer(`promotion:${token}`, c.now + c.s.config.remoteTimeoutMs + c.s.config.messageSlackMs);
      if (Object.keys(probes).length === 0) c.raise({ type: "probesDone", now: c.now });
    },
  }),
  row({
    id: "promo.start",
    from: ["*"],
    on: "promotionRequested",
    guard: "otherwise",
    to: "unchanged",
    actions: "queryLsn on every standby (and the master for a manual promotion)",
    reason: "find the most up-to-date standby",
    run: (c, e) => {
      const token = c.token("promo");
      const master = c.membersWithRole("Master")[0] ?? null;
      const ask = [...possibleStandbys(c), ...(e.manual && master ? [master] : [])];
      c.setPromotion({
        token,
        manual: e.manual,
        force: e.force,
        // Without a master in the view, the last known one is checked by the candidate like on failover.
        oldMaster: e.manual ? (master ?? c.s.knownMaster?.address ?? null) : e.oldMaster,
        stage: "queryLsn",
        awaiting: ask,
        lsns: {},
        timelines: {},
        masterLsn: null,
        masterTimeline: null,
        candidate: null,
        request: e.request,
        epoch: c.s.view?.epoch ?? 0,
        switchedOver: e.masterFenced === true,
        ranked: [],
        failures: {},
        verified: [],
        restoring: false,
      });
      queryPositions(c, token, ask);
    },
  }),
  row({
    id: "promo.probe.master",
    from: ["*"],
    on: "remoteDbChecked",
    guard: "probing before a promotion: a member database is not in recovery, or could not be verified",
    to: "unchanged",
    actions: "drop the promotion; refuse",
    reason:
      "a database answered as a master (or could not be verified): promoting a standby would make two masters",
    when: (c, e) =>
      c.s.promotion?.stage === "probe" &&
      c.s.promotion.probes?.[e.token] !== undefined &&
      e.result !== "unreachable",
    run: (c, e) => {
      const p = c.s.promotion!;
      const who = p.probes![e.token]!;
      c.setPromotion(null);
      const why =
        e.result === "reachable"
          ? `the database of ${who} is not in recovery (pg_is_in_recovery() is false): a master may still be running`
          : `the database of ${who} answered but could not be verified`;
      const text = `Promotion has not occurred: ${why}.`;
      if (p.request) c.reply(p.request.origin, p.request.requestId, false, text);
      else if (c.s.attention !== text) {
        // The periodic look finds the same database each time: say it once, keep it in cluster-status.
        c.notify("unexpectedError", { clusterName: c.s.config.clusterName, errorDetails: text });
        c.setAttention(text);
      }
    },
  }),
  row({
    id: "promo.probe.recovery",
    from: ["*"],
    on: "remoteDbChecked",
    guard: "probing before a promotion: that member database is in recovery or down",
    to: "unchanged",
    actions: "record; ask for WAL positions once every database answered",
    reason: "no master database found there",
    when: (c, e) => c.s.promotion?.stage === "probe" && c.s.promotion.probes?.[e.token] !== undefined,
    run: (c, e) => {
      const p = c.s.promotion!;
      const { [e.token]: _done, ...rest } = p.probes!;
      c.setPromotion({ ...p, probes: rest, awaiting: Object.values(rest) });
      if (Object.keys(rest).length === 0) c.raise({ type: "probesDone", now: c.now });
    },
  }),
  row({
    id: "promo.probe.done",
    from: ["*"],
    on: "probesDone",
    guard: "every member database is in recovery or down",
    to: "unchanged",
    actions: "queryLsn on every standby",
    reason: "no database of the cluster runs as a master: find the most up-to-date standby",
    run: (c) => {
      const p = c.s.promotion;
      if (p?.stage !== "probe") return;
      const ask = possibleStandbys(c);
      c.setPromotion({ ...p, stage: "queryLsn", awaiting: ask, epoch: c.s.view?.epoch ?? p.epoch });
      queryPositions(c, p.token, ask);
    },
  }),
  row({
    id: "lsn.request",
    from: ["*"],
    on: "message:queryLsn",
    guard: "always",
    to: "unchanged",
    actions: "queryLsn on the local database",
    reason: "the coordinator asks for our WAL position",
    run: (c, e) => {
      const t = c.token("lsn");
      c.s.lsnQueries = { ...c.s.lsnQueries, [t]: `${e.from}|${e.message.token}` };
      c.act({ type: "queryLsn", token: t });
    },
  }),
  row({
    id: "lsn.answer",
    from: ["*"],
    on: "lsnQueried",
    guard: "a position the coordinator asked for",
    to: "unchanged",
    actions: "reply with the position",
    reason: "report our WAL position",
    when: (c, e) => c.s.lsnQueries[e.token] !== undefined,
    run: (c, e) => {
      const dest = c.s.lsnQueries[e.token]!;
      const { [e.token]: _d, ...rest } = c.s.lsnQueries;
      c.s.lsnQueries = rest;
      const bar = dest.indexOf("|");
      const to = bar < 0 ? c.self : dest.slice(0, bar);
      const token = bar < 0 ? dest : dest.slice(bar + 1);
      c.send(to, {
        type: "lsnReply",
        token,
        lsn: e.lsn,
        role: c.s.role ?? "Idle",
        ...(e.timeline !== undefined ? { timeline: e.timeline } : {}),
        ...(c.s.rebuildNeeded ? { rebuild: true } : {}),
      });
    },
  }),
  row({
    id: "lsn.reply",
    from: ["*"],
    on: "message:lsnReply",
    guard: "promotion collecting positions",
    to: "unchanged",
    actions: "record; continue when every standby answered",
    reason: "a WAL position arrived",
    when: (c, e) =>
      c.s.promotion?.stage === "queryLsn" &&
      c.s.promotion.token === e.message.token &&
      c.s.promotion.awaiting.includes(e.from),
    run: (c, e) => {
      const p = c.s.promotion!;
      const isMaster = e.message.role === "Master";
      const timeline = e.message.timeline ?? null;
      // A fenced ex-master not yet rewound is never a candidate, whatever its position.
      const candidate = e.message.role === "Standby" && e.message.rebuild !== true;
      c.setPromotion({
        ...p,
        awaiting: p.awaiting.filter((a) => a !== e.from),
        lsns: candidate ? { ...p.lsns, [e.from]: e.message.lsn } : p.lsns,
        timelines: candidate ? { ...p.timelines, [e.from]: timeline } : p.timelines,
        masterLsn: isMaster ? e.message.lsn : p.masterLsn,
        masterTimeline: isMaster ? timeline : p.masterTimeline,
      });
      if (c.s.promotion!.awaiting.length === 0) c.raise({ type: "lsnsCollected", now: c.now });
    },
  }),
  row({
    id: "lsn.stale",
    from: ["*"],
    on: "message:lsnReply",
    guard: "otherwise",
    to: "unchanged",
    actions: "none",
    reason: "WAL position for a promotion no longer collecting",
    run: () => {},
  }),
  row({
    id: "promo.notCoordinator",
    from: ["*"],
    on: "lsnsCollected",
    guard: "no longer coordinator of a majority",
    to: "unchanged",
    actions: "drop the promotion",
    reason: "a promotion is only decided inside a majority view",
    when: (c) => !c.isCoordinator(),
    run: (c) => {
      const p = c.s.promotion;
      if (p?.request)
        c.reply(p.request.origin, p.request.requestId, false, "Lost the majority; promotion abandoned.");
      c.setPromotion(null);
    },
  }),
  row({
    id: "promo.viewChanged",
    from: ["*"],
    on: "lsnsCollected",
    guard: "the view changed while positions were collected",
    to: "unchanged",
    actions: "ask the new view's standbys again",
    reason: "members came or went during the query: a newcomer may be the most up to date, ask again",
    when: (c) => c.s.promotion !== null && c.s.view !== null && c.s.promotion.epoch !== c.s.view.epoch,
    run: (c) => {
      const p = c.s.promotion!;
      const ask = possibleStandbys(c).filter((a) => !(p.manual && a === p.oldMaster && !p.switchedOver));
      const master = p.manual && !p.switchedOver && p.oldMaster ? [p.oldMaster] : [];
      c.setPromotion({
        ...p,
        epoch: c.s.view!.epoch,
        awaiting: [...ask, ...master],
        lsns: {},
        timelines: {},
        masterLsn: null,
      });
      queryPositions(c, p.token, [...ask, ...master]);
    },
  }),
  row({
    id: "promo.noCandidate",
    from: ["*"],
    on: "lsnsCollected",
    guard: "no standby reported a position",
    to: "unchanged",
    actions: "notify failoverNotOccurred",
    reason: "no standby could report its WAL position: nothing to promote",
    when: (c) => {
      const p = c.s.promotion;
      return p !== null && c.rankCandidates(p.lsns, p.timelines, p.masterTimeline).length === 0;
    },
    run: (c) => {
      const p = c.s.promotion!;
      c.setPromotion(null);
      const off = Object.entries(c.offTimeline(p)).map(([a, why]) => `${a}: ${why}`);
      const why =
        off.length > 0
          ? `No standby is on the current timeline (${off.join("; ")}).`
          : "No standby could report its WAL position.";
      if (p.request) c.reply(p.request.origin, p.request.requestId, false, why);
      else c.notify("failoverNotOccurred", c.cluster());
    },
  }),
  row({
    id: "promo.manual.notUpToDate",
    from: ["*"],
    on: "lsnsCollected",
    guard: "manual, no force, best standby behind the master",
    to: "unchanged",
    actions: "refuse (the CLI asks and retries with force)",
    reason: "no standby is up to date with the master: promoting would lose data",
    when: (c) => {
      const p = c.s.promotion;
      if (!p?.manual || p.force || p.switchedOver || p.masterLsn === null) return false;
      const best = c.rankCandidates(p.lsns, p.timelines, p.masterTimeline)[0]!;
      return (
        p.lsns[best] !== p.masterLsn &&
        (c.rankCandidates(
          { m: p.masterLsn, s: p.lsns[best]! },
          { m: p.masterTimeline, s: p.timelines[best] ?? null },
        )[0] ?? "m") === "m"
      );
    },
    run: (c) => {
      const p = c.s.promotion!;
      c.setPromotion(null);
      if (p.request)
        c.reply(p.request.origin, p.request.requestId, false, "No standby is up to date with the master.");
    },
  }),
  row({
    id: "promo.rank",
    from: ["*"],
    on: "lsnsCollected",
    guard: "otherwise",
    to: "unchanged",
    actions: "rank the candidates; ask the best untried one to check it can be promoted",
    reason:
      "rank the standbys by (timeline, WAL position), ties by the priority list, leaving out any behind the current timeline; the best must pass its pre-promotion check before anyone is fenced",
    run: (c) => {
      const p = c.s.promotion!;
      // A manual promotion without force only considers standbys up to date with the master.
      const ranked = c
        .rankCandidates(p.lsns, p.timelines, p.masterTimeline)
        .filter(
          (a) => !p.manual || p.force || p.masterLsn === null || compareLsn(p.lsns[a]!, p.masterLsn) >= 0,
        );
      // Standbys left out for their timeline are named in the outcome if nobody can be promoted.
      c.setPromotion({ ...p, ranked, failures: { ...c.offTimeline(p), ...p.failures } });
      c.nextCandidate();
    },
  }),
  row({
    id: "promo.verified.notCoordinator",
    from: ["*"],
    on: "candidateVerified",
    guard: "no longer coordinator of a majority",
    to: "unchanged",
    actions: "drop the promotion",
    reason: "a promotion is only decided inside a majority view",
    when: (c) => !c.isCoordinator(),
    run: (c) => {
      const p = c.s.promotion;
      if (p?.request)
        c.reply(p.request.origin, p.request.requestId, false, "Lost the majority; promotion abandoned.");
      c.setPromotion(null);
    },
  }),
  row({
    id: "promo.manual.switchover",
    from: ["*"],
    on: "candidateVerified",
    guard: "manual with a master in the view",
    to: "unchanged",
    actions: "ask the master to release the VIP and fence itself",
    reason: "manual promotion: the master steps down first (4.1.4), now that the candidate can be promoted",
    when: (c) =>
      c.s.promotion?.manual === true &&
      c.s.promotion.oldMaster !== null &&
      c.membersWithRole("Master").includes(c.s.promotion.oldMaster) &&
      !c.s.promotion.switchedOver,
    run: (c) => {
      const p = c.s.promotion!;
      c.setPromotion({ ...p, stage: "switchover" });
      c.send(p.oldMaster!, { type: "switchover", token: p.token, newMaster: p.candidate! });
      c.timer(`promotion:${p.token}`, c.now + c.s.config.promotionTimeoutMs);
    },
  }),
  row({
    id: "promo.send",
    from: ["*"],
    on: "candidateVerified",
    guard: "otherwise",
    to: "unchanged",
    actions: "notify promotionStarted; send promote to the verified candidate",
    reason: "promote the most up-to-date standby that can be promoted",
    run: (c) => {
      const p = c.s.promotion!;
      const candidate = p.candidate!;
      c.setPromotion({ ...p, stage: "promoting" });
      c.notify("promotionStarted", c.cluster());
      c.send(candidate, {
        type: "promote",
        token: p.token,
        epoch: c.s.view?.epoch ?? p.epoch,
        oldMaster: p.oldMaster,
        checkMaster: (!p.switchedOver || p.masterUnconfirmed === true) && !p.restoring,
        ...(p.restoring ? { restore: true } : {}),
      });
      c.timer(`promotion:${p.token}`, c.now + c.s.config.promotionTimeoutMs);
    },
  }),
  row({
    id: "promo.precheck.ok",
    from: ["*"],
    on: "message:promotableReply",
    guard: "our candidate can be promoted",
    to: "unchanged",
    actions: "go on with the switchover or the promotion",
    reason: "the candidate's database answers, is in recovery and its agent can promote it",
    when: (c, e) =>
      c.s.promotion?.stage === "precheck" &&
      c.s.promotion.token === e.message.token &&
      c.s.promotion.candidate === e.from &&
      e.message.ok,
    run: (c, e) => {
      const p = c.s.promotion!;
      c.setPromotion({ ...p, verified: [...p.verified, e.from] });
      c.raise({ type: "candidateVerified", now: c.now });
    },
  }),
  row({
    id: "promo.precheck.refused",
    from: ["*"],
    on: "message:promotableReply",
    guard: "our candidate did not run the check (not yet a running standby of our view)",
    to: "unchanged",
    actions: "drop the promotion; re-evaluate the cluster shortly",
    reason:
      "the candidate refused to be checked (a view change or start-up in flight): start over with fresh positions rather than skip it",
    // Skipping it would promote a less up-to-date standby over one that is only a view behind.
    when: (c, e) =>
      c.s.promotion?.stage === "precheck" &&
      c.s.promotion.token === e.message.token &&
      c.s.promotion.candidate === e.from &&
      e.message.refused === true,
    run: (c, e) => {
      const p = c.s.promotion!;
      c.setPromotion(null);
      if (c.s.view?.coordinator === c.self) c.timer("reconcile", c.now + c.s.config.messageSlackMs);
      if (p.request)
        c.reply(
          p.request.origin,
          p.request.requestId,
          false,
          `Promotion has not occurred: ${e.from}: ${e.message.error ?? "refused the pre-promotion check"}.`,
        );
    },
  }),
  row({
    id: "promo.precheck.failed",
    from: ["*"],
    on: "message:promotableReply",
    guard: "our candidate cannot be promoted",
    to: "unchanged",
    actions: "try the next candidate in rank order",
    reason: "the candidate failed its pre-promotion check: nobody was fenced for it, try the next one",
    when: (c, e) =>
      c.s.promotion?.stage === "precheck" &&
      c.s.promotion.token === e.message.token &&
      c.s.promotion.candidate === e.from,
    run: (c, e) => c.candidateFailed(`cannot be promoted: ${e.message.error ?? "no reason given"}`),
  }),
  row({
    id: "promo.precheck.stale",
    from: ["*"],
    on: "message:promotableReply",
    guard: "otherwise",
    to: "unchanged",
    actions: "none",
    reason: "pre-promotion check result for a promotion no longer waiting for it",
    run: () => {},
  }),
  row({
    id: "promo.exhausted.restore",
    from: ["*"],
    on: "candidatesExhausted",
    guard:
      "no standby could be promoted; the old master fenced itself for this promotion, is here, Idle, its database up",
    to: "unchanged",
    actions: "ask the old master to check, then take its role back",
    reason: "no standby could be promoted: bring the healthy old master back rather than leave no master",
    when: (c) => {
      const p = c.s.promotion!;
      const old = p.oldMaster;
      return (
        c.isCoordinator() &&
        old !== null &&
        p.switchedOver &&
        !p.restoring &&
        !(old in p.failures) &&
        c.members().includes(old) &&
        c.roleOf(old) === "Idle" &&
        (old === c.self ? c.s.db : c.s.peers[old]?.db) === "UP"
      );
    },
    run: (c) => c.nextCandidate(true),
  }),
  row({
    id: "promo.exhausted.noMaster",
    from: ["*"],
    on: "candidatesExhausted",
    guard: "no candidate could be promoted and no master runs",
    to: "unchanged",
    actions:
      "notify unexpectedError with the steps; tell every agent (cluster-status) what to do; answer the operator",
    reason: "every database is in recovery and none could be promoted: an operator must act",
    when: (c) => c.membersWithRole("Master", "Promoting").length === 0,
    run: (c) => {
      const p = c.s.promotion!;
      c.setPromotion(null);
      const tried = Object.entries(p.failures)
        .map(([a, why]) => `${a}: ${why}`)
        .join("; ");
      const cluster = c.s.config.clusterName;
      const action =
        `No database of cluster ${cluster} is a master. Fix the cause in the agent logs, then either ` +
        `promote the most up-to-date database by hand (pg_ctl promote -D <data directory>, as the database owner) ` +
        `and run 'efm resume ${cluster}' on its node, or run 'efm resume ${cluster}' on each Idle standby ` +
        `and then 'efm promote ${cluster}'.`;
      // The guide's catalogue has no entry for this outcome (EFM could end here silently); its
      // SEVERE "unexpected error" carries the failures and the exact steps.
      c.notify("unexpectedError", {
        clusterName: cluster,
        errorDetails: `Promotion failed on every candidate (${tried || "no candidate"}). ${action}`,
      });
      c.setAttention(`Promotion failed (${tried || "no candidate"}). ${action}`);
      if (p.request)
        c.reply(
          p.request.origin,
          p.request.requestId,
          false,
          `Promotion failed: ${tried || "no candidate"}. ${action}`,
        );
    },
  }),
  row({
    id: "promo.exhausted",
    from: ["*"],
    on: "candidatesExhausted",
    guard: "otherwise (the master still runs: nobody was fenced)",
    to: "unchanged",
    actions: "answer the operator / notify failoverNotOccurred",
    reason: "no standby can be promoted; the master was left alone",
    run: (c) => {
      const p = c.s.promotion!;
      c.setPromotion(null);
      const tried = Object.entries(p.failures)
        .map(([a, why]) => `${a}: ${why}`)
        .join("; ");
      if (p.request)
        c.reply(
          p.request.origin,
          p.request.requestId,
          false,
          `Promotion failed: no standby can be promoted (${tried || "no candidate"}). The master was not changed.`,
        );
      else c.notify("failoverNotOccurred", c.cluster());
    },
  }),
  row({
    id: "promo.lsn.retry",
    from: ["*"],
    on: "timer:promotion",
    guard: "still collecting positions; a standby that has not answered is still in the view",
    to: "unchanged",
    actions: "ask the silent standbys again",
    reason:
      "a standby of this view has not reported its WAL position: it may be the most up to date, ask again",
    when: (c, e) =>
      c.s.promotion?.stage === "queryLsn" &&
      e.name === `promotion:${c.s.promotion.token}` &&
      c.isCoordinator() &&
      c.s.promotion.awaiting.some((a) => possibleStandbys(c).includes(a)),
    run: (c) => {
      const p = c.s.promotion!;
      const silent = p.awaiting.filter((a) => possibleStandbys(c).includes(a));
      c.setPromotion({ ...p, awaiting: silent });
      queryPositions(c, p.token, silent);
    },
  }),
  row({
    id: "promo.timeout.lsn",
    from: ["*"],
    on: "timer:promotion",
    guard: "still collecting positions",
    to: "unchanged",
    actions: "continue with the positions received",
    reason: "remote.timeout passed: standbys that did not answer are not candidates",
    when: (c, e) => c.s.promotion?.stage === "queryLsn" && e.name === `promotion:${c.s.promotion.token}`,
    run: (c) => c.raise({ type: "lsnsCollected", now: c.now }),
  }),
  row({
    id: "promo.timeout",
    from: ["*"],
    on: "timer:promotion",
    guard: "candidate (its check or its promotion) or master did not answer in time",
    to: "unchanged",
    actions: "drop the promotion",
    reason: "the promotion did not complete in time; re-evaluate the cluster shortly",
    // A silent candidate is not skipped for the next one: it may be the most up to date and only
    // cut off for a moment; the coordinator starts over with fresh positions (reconcile).
    when: (c, e) => c.s.promotion !== null && e.name === `promotion:${c.s.promotion.token}`,
    run: (c) => {
      const p = c.s.promotion!;
      c.setPromotion(null);
      if (c.s.view?.coordinator === c.self) c.timer("reconcile", c.now + c.s.config.messageSlackMs);
      if (p.request)
        c.reply(p.request.origin, p.request.requestId, false, "The promotion did not complete in time.");
    },
  }),
  row({
    id: "promo.timer.stale",
    from: ["*"],
    on: "timer:promotion",
    guard: "otherwise",
    to: "unchanged",
    actions: "none",
    reason: "timer of a finished promotion",
    run: () => {},
  }),
  row({
    id: "promo.result.ok",
    from: ["*"],
    on: "message:promotionResult",
    guard: "our promotion succeeded",
    to: "unchanged",
    actions: "clear; answer the operator",
    reason: "the candidate is the new master",
    when: (c, e) => c.s.promotion?.token === e.message.token && e.message.ok,
    run: (c, e) => {
      const p = c.s.promotion!;
      c.setPromotion(null);
      c.s.knownMaster = { address: e.from, lastHeardAt: c.now };
      c.s.peers = { ...c.s.peers, [e.from]: { role: "Master", db: "UP" } };
      if (p.request)
        c.reply(p.request.origin, p.request.requestId, true, `Promotion of ${e.from} has completed.`);
    },
  }),
  row({
    id: "promo.result.next",
    from: ["*"],
    on: "message:promotionResult",
    guard: "our candidate failed on its own (its database stayed in recovery, its network)",
    to: "unchanged",
    actions: "try the next candidate (then the old master); never end with no master silently",
    reason: "the promotion failed on this candidate: try the next one in rank order",
    // Only the candidate's own failures: a refusal over a changed view or a lost lease is retried
    // with fresh positions (the best standby may still be the best), not by skipping it.
    when: (c, e) =>
      c.s.promotion?.token === e.message.token &&
      c.s.promotion.candidate === e.from &&
      e.message.next === true,
    run: (c, e) => c.candidateFailed(e.message.reason),
  }),
  row({
    id: "promo.result.failed",
    from: ["*"],
    on: "message:promotionResult",
    guard: "our promotion was aborted by the candidate",
    to: "unchanged",
    actions: "clear; answer the operator",
    reason: "the candidate refused or aborted; failover has NOT occurred",
    when: (c, e) => c.s.promotion?.token === e.message.token,
    run: (c, e) => {
      const p = c.s.promotion!;
      c.setPromotion(null);
      if (p.request)
        c.reply(p.request.origin, p.request.requestId, false, `Promotion failed: ${e.message.reason}`);
    },
  }),
  row({
    id: "promo.result.stale",
    from: ["*"],
    on: "message:promotionResult",
    guard: "otherwise",
    to: "unchanged",
    actions: "none",
    reason: "result of a promotion no longer tracked",
    run: () => {},
  }),

  // ---- promotion, candidate side (the three checks, fencing script, promote, VIP, post script) ----
  row({
    id: "precheck.request",
    from: ["Standby", "Idle"],
    on: "message:checkPromotable",
    guard: "from the coordinator; a healthy standby, or the fenced old master asked to take its role back",
    to: "unchanged",
    actions: "checkPromotable on the local database",
    reason: "the coordinator asks whether this node can be promoted before anyone is fenced",
    when: (c, e) =>
      e.from === c.coordinator() &&
      (c.s.role === "Standby" ? !e.message.restore : e.message.restore === true && c.s.fencedForIsolation) &&
      !c.s.local.reported &&
      c.s.candidacy === null,
    run: (c, e) => {
      const t = c.token("promotable");
      c.s.promotableChecks = { ...c.s.promotableChecks, [t]: { to: e.from, token: e.message.token } };
      c.act({ type: "checkPromotable", token: t });
    },
  }),
  row({
    id: "precheck.refuse",
    from: ["*"],
    on: "message:checkPromotable",
    guard: "otherwise",
    to: "unchanged",
    actions: "answer: cannot be promoted",
    reason: "asked whether we can be promoted, but we are not a healthy standby of that coordinator",
    run: (c, e) =>
      c.send(e.from, {
        type: "promotableReply",
        token: e.message.token,
        ok: false,
        error: `this agent is ${c.s.role ?? c.s.phase}${c.s.local.reported ? " with a failed database" : ""}, not a standby that can be promoted`,
        refused: true,
      }),
  }),
  row({
    id: "precheck.answer",
    from: ["*"],
    on: "promotableChecked",
    guard: "a check the coordinator asked for",
    to: "unchanged",
    actions: "reply with the result",
    reason: "report whether this node can be promoted",
    when: (c, e) => c.s.promotableChecks[e.token] !== undefined,
    run: (c, e) => {
      const dest = c.s.promotableChecks[e.token]!;
      const { [e.token]: _d, ...rest } = c.s.promotableChecks;
      c.s.promotableChecks = rest;
      c.send(dest.to, {
        type: "promotableReply",
        token: dest.token,
        ok: e.ok,
        ...(e.ok ? {} : { error: e.error ?? "the pre-promotion check failed" }),
      });
    },
  }),
  row({
    id: "precheck.stale",
    from: ["*"],
    on: "promotableChecked",
    guard: "otherwise",
    to: "unchanged",
    actions: "none",
    reason: "stale pre-promotion check result ignored",
    run: () => {},
  }),
  row({
    id: "notice.update",
    from: ["*"],
    on: "message:notice",
    guard: "always",
    to: "unchanged",
    actions: "remember it for cluster-status",
    reason: "the coordinator says what an operator must do now",
    run: (c, e) => {
      c.s.attention = e.message.text;
    },
  }),
  row({
    id: "cand.busy",
    from: ["Promoting"],
    on: "message:promote",
    guard: "already promoting",
    to: "unchanged",
    actions: "refuse; notify promotionNotOccurred",
    reason: "only one promotion at a time",
    run: (c, e) => {
      c.notify("promotionNotOccurred", { clusterName: c.s.config.clusterName, ipAddress: c.self });
      c.send(e.from, {
        type: "promotionResult",
        token: e.message.token,
        ok: false,
        reason: "already being promoted",
      });
    },
  }),
  row({
    id: "cand.accept",
    from: ["Standby", "Idle"],
    on: "message:promote",
    guard:
      "a standby (or the fenced old master asked to take its role back); quorate view of the same epoch, sender is its coordinator, our lease valid",
    to: "Promoting",
    actions: "start the pre-promotion checks",
    reason: "chosen as the most up-to-date standby: start promoting",
    when: (c, e) =>
      (c.s.role === "Standby" ? !e.message.restore : e.message.restore === true && c.s.fencedForIsolation) &&
      c.quorate() &&
      c.leaseValid() &&
      c.s.view?.epoch === e.message.epoch &&
      c.s.view.coordinator === e.from &&
      !c.s.local.reported,
    run: (c, e) => {
      c.s.candidacy = {
        token: e.message.token,
        coordinator: e.from,
        epoch: e.message.epoch,
        oldMaster: e.message.oldMaster,
        checkMaster: e.message.checkMaster,
        restore: e.message.restore === true,
        stage: "vip",
      };
      c.setRole("Promoting");
      c.advanceCandidacy("start");
    },
  }),
  row({
    id: "cand.refuse",
    from: ["*"],
    on: "message:promote",
    guard: "otherwise (not a healthy standby, or a stale view)",
    to: "unchanged",
    actions: "refuse",
    reason: "promotion request refused: not a standby in the sender's majority view",
    run: (c, e) =>
      c.send(e.from, {
        type: "promotionResult",
        token: e.message.token,
        ok: false,
        reason: "not eligible for promotion",
      }),
  }),
  row({
    id: "cand.vipAssigned",
    from: ["Promoting"],
    on: "vipPinged",
    guard: "the VIP answers",
    to: "Standby",
    actions: "notify standbyPromoteVipAssigned; abort",
    reason: "the VIP is still assigned to another node: promoting could corrupt data",
    when: (c, e) => c.s.candidacy?.token === e.token && e.reachable,
    run: (c) => {
      c.notify("standbyPromoteVipAssigned", { vipAddress: c.s.config.virtualIp ?? "" });
      c.abortCandidacy("VIP still assigned");
    },
  }),
  row({
    id: "cand.vipFree",
    from: ["Promoting"],
    on: "vipPinged",
    guard: "the VIP does not answer",
    to: "unchanged",
    actions: "next check",
    reason: "the VIP is free",
    when: (c, e) => c.s.candidacy?.token === e.token,
    run: (c) => c.advanceCandidacy("vip"),
  }),
  row({
    id: "cand.orphaned",
    from: ["Promoting"],
    on: "pingServerPinged",
    guard: "the well-known server does not answer",
    to: "Standby",
    actions: "notify standbyPromoteOrphaned; abort",
    reason: "this standby appears orphaned from the network",
    when: (c, e) => c.s.candidacy?.token === e.token && !e.reachable,
    run: (c) => {
      c.notify("standbyPromoteOrphaned", { serverAddress: c.s.config.pingServer ?? "" });
      // Our own network: a candidate elsewhere may still reach the well-known server.
      c.abortCandidacy("orphaned", undefined, true);
    },
  }),
  row({
    id: "cand.pingOk",
    from: ["Promoting"],
    on: "pingServerPinged",
    guard: "the well-known server answers",
    to: "unchanged",
    actions: "next check",
    reason: "the network is reachable",
    when: (c, e) => c.s.candidacy?.token === e.token,
    run: (c) => c.advanceCandidacy("pingServer"),
  }),
  row({
    id: "cand.masterRunning",
    from: ["Promoting"],
    on: "remoteDbChecked",
    guard: "the old master database answers",
    to: "Standby",
    actions: "notify standbyPromoteMasterRunning; abort",
    reason: "the master database is still running: failover has NOT occurred",
    when: (c, e) => c.s.candidacy?.token === e.token && e.result === "reachable",
    run: (c, e) => {
      c.notify("standbyPromoteMasterRunning", { nodeAddress: e.target });
      c.abortCandidacy("master database still running");
    },
  }),
  row({
    id: "cand.masterUnverified",
    from: ["Promoting"],
    on: "remoteDbChecked",
    guard: "the old master database answered but could not be verified",
    to: "Standby",
    actions: "notify standbyPromoteMasterUnverified; abort",
    reason: "could not verify the master database: failover has NOT occurred",
    when: (c, e) => c.s.candidacy?.token === e.token && e.result === "unknown",
    run: (c, e) => {
      c.notify("standbyPromoteMasterUnverified", { nodeAddress: e.target });
      c.abortCandidacy("master database state unknown");
    },
  }),
  row({
    id: "cand.masterDown",
    from: ["Promoting"],
    on: "remoteDbChecked",
    guard: "the old master database is unreachable",
    to: "unchanged",
    actions: "script.fence or promote",
    reason: "the master database is down",
    when: (c, e) => c.s.candidacy?.token === e.token,
    run: (c) => c.advanceCandidacy("master"),
  }),
  row({
    id: "cand.fenceFailed",
    from: ["Promoting"],
    on: "scriptDone",
    guard: "script.fence non-zero exit",
    to: "Standby",
    actions: "notify fencingScriptError; abort",
    reason: "the fencing script failed: failover has NOT occurred",
    when: (c, e) => c.s.candidacy?.token === e.token && e.script === "fence" && e.exitCode !== 0,
    run: (c, e) => {
      c.notify("fencingScriptError", {
        scriptName: c.s.config.scripts.fence ?? "",
        exitCode: e.exitCode,
        scriptResults: e.output,
      });
      c.abortCandidacy("fencing script failed");
    },
  }),
  row({
    id: "cand.fenceOk",
    from: ["Promoting"],
    on: "scriptDone",
    guard: "script.fence exit 0",
    to: "unchanged",
    actions: "notify executingFencingScript; promote the database",
    reason: "fencing script succeeded",
    when: (c, e) => c.s.candidacy?.token === e.token && e.script === "fence",
    run: (c, e) => {
      c.notify("executingFencingScript", {
        scriptName: c.s.config.scripts.fence ?? "",
        scriptResults: e.output,
      });
      c.advanceCandidacy("fence");
    },
  }),
  row({
    id: "cand.promoteFailed",
    from: ["Promoting"],
    on: "dbPromoted",
    guard: "promotion of the database failed",
    to: "unchanged",
    actions: "notify couldNotPromoteStandby; read the database's role before reporting",
    reason:
      "the database could not be promoted: make sure it is still in recovery before another candidate is tried",
    when: (c, e) => c.s.candidacy?.token === e.token && !e.ok,
    run: (c, e) => {
      c.notify("couldNotPromoteStandby", { fileName: "promote", messageDetails: e.error ?? "" });
      c.s.candidacy = { ...c.s.candidacy!, stage: "verifyPromote", error: e.error ?? "" };
      c.act({ type: "checkLocalRole" });
    },
  }),
  row({
    id: "cand.promoteFailed.primary",
    from: ["Promoting"],
    on: "localRoleChecked",
    guard: "after a failed promote the database is out of recovery after all",
    to: "Master",
    actions: "carry on as promoted: VIP, post-promotion script",
    reason: "the promote reported an error but the database left recovery: it is the master",
    when: (c, e) => c.s.candidacy?.stage === "verifyPromote" && e.result === "primary",
    run: (c) => {
      c.setRole("Master");
      c.s.db = "UP";
      c.provisionalLease();
      c.advanceCandidacy("promote");
    },
  }),
  row({
    id: "cand.promoteFailed.recovery",
    from: ["Promoting"],
    on: "localRoleChecked",
    guard: "after a failed promote the database is still in recovery",
    to: "Idle",
    actions: "abort; the coordinator may try its next candidate",
    reason: "the database could not be promoted and is still a standby: another candidate may be tried",
    when: (c, e) => c.s.candidacy?.stage === "verifyPromote" && e.result === "recovery",
    run: (c) =>
      c.abortCandidacy(
        `promotion of the database failed: ${c.s.candidacy?.error ?? ""}`.trim(),
        "Idle",
        true,
      ),
  }),
  row({
    id: "cand.promoteFailed.unknown",
    from: ["Promoting"],
    on: "localRoleChecked",
    guard: "after a failed promote the database does not answer",
    to: "Idle",
    actions: "abort; no other candidate is tried (this one may still come up promoted)",
    reason:
      "the database could not be promoted and its state cannot be read: promoting another could make two masters",
    when: (c) => c.s.candidacy?.stage === "verifyPromote",
    run: (c) =>
      c.abortCandidacy(
        `promotion of the database failed and its state cannot be read: ${c.s.candidacy?.error ?? ""}`.trim(),
        "Idle",
      ),
  }),
  row({
    id: "cand.promoted",
    from: ["Promoting"],
    on: "dbPromoted",
    guard: "the database left recovery",
    to: "Master",
    actions: "assign the VIP or run script.post.promotion",
    reason: "the standby database is now the master",
    when: (c, e) => c.s.candidacy?.token === e.token,
    run: (c) => {
      c.setRole("Master");
      c.s.db = "UP";
      c.provisionalLease();
      c.advanceCandidacy("promote");
    },
  }),
  row({
    id: "cand.vipAssignedOk",
    from: ["Master"],
    on: "vipDone",
    guard: "VIP assigned after promotion",
    to: "unchanged",
    actions: "notify assigningVip; post-promotion script",
    reason: "the VIP now points at the new master",
    when: (c, e) => c.s.candidacy?.token === e.token && e.op === "assign" && e.ok,
    run: (c, e) => {
      c.notify("assigningVip", {
        nodeAddress: c.self,
        vipAddress: c.s.config.virtualIp ?? "",
        scriptResults: e.output,
      });
      c.advanceCandidacy("assignVip");
    },
  }),
  row({
    id: "cand.vipAssignFailed",
    from: ["Master"],
    on: "vipDone",
    guard: "VIP assignment failed after promotion",
    to: "unchanged",
    actions: "notify couldNotAssignVip; post-promotion script",
    reason: "could not assign the VIP; the promotion itself stands",
    when: (c, e) => c.s.candidacy?.token === e.token && e.op === "assign",
    run: (c) => {
      c.notify("couldNotAssignVip", { nodeAddress: c.self });
      c.advanceCandidacy("assignVip");
    },
  }),
  row({
    id: "cand.postOk",
    from: ["Master"],
    on: "scriptDone",
    guard: "script.post.promotion exit 0",
    to: "unchanged",
    actions: "notify executedPostPromotionScript, failoverCompleted; announce the new master",
    reason: "post-promotion script ran",
    when: (c, e) => c.s.candidacy?.token === e.token && e.script === "postPromotion" && e.exitCode === 0,
    run: (c, e) => {
      c.notify("executedPostPromotionScript", {
        scriptName: c.s.config.scripts.postPromotion ?? "",
        scriptResults: e.output,
      });
      c.finishCandidacy();
    },
  }),
  row({
    id: "cand.postFailed",
    from: ["Master"],
    on: "scriptDone",
    guard: "script.post.promotion non-zero exit",
    to: "unchanged",
    actions: "notify postPromotionScriptFailed, failoverCompleted; announce the new master",
    reason: "post-promotion script failed; the promotion stands",
    when: (c, e) => c.s.candidacy?.token === e.token && e.script === "postPromotion",
    run: (c, e) => {
      c.notify("postPromotionScriptFailed", {
        scriptName: c.s.config.scripts.postPromotion ?? "",
        exitCode: e.exitCode,
        scriptResults: e.output,
      });
      c.finishCandidacy();
    },
  }),
  row({
    id: "vip.assigned",
    from: ["*"],
    on: "vipDone",
    guard: "VIP assigned at start-up or resume",
    to: "unchanged",
    actions: "notify assigningVip / couldNotAssignVip",
    reason: "result of assigning the VIP",
    when: (_c, e) => e.op === "assign",
    run: (c, e) => {
      if (e.ok)
        c.notify("assigningVip", {
          nodeAddress: c.self,
          vipAddress: c.s.config.virtualIp ?? "",
          scriptResults: e.output,
        });
      else c.notify("couldNotAssignVip", { nodeAddress: c.self });
    },
  }),
  row({
    id: "vip.released",
    from: ["*"],
    on: "vipDone",
    guard: "otherwise",
    to: "unchanged",
    actions: "notify releasingVip",
    reason: "result of releasing the VIP",
    run: (c, e) =>
      c.notify("releasingVip", {
        nodeAddress: c.self,
        vipAddress: c.s.config.virtualIp ?? "",
        scriptResults: e.output,
      }),
  }),

  // ---- after a failover: the other standbys follow ----
  row({
    id: "follow.reconfigure",
    from: ["Standby"],
    on: "message:newMaster",
    guard: "auto.reconfigure=true",
    to: "unchanged",
    actions: "reconfigureDb(new master)",
    reason: "point this standby at the new master",
    when: (c) => c.s.config.autoReconfigure,
    run: (c, e) => {
      c.s.knownMaster = { address: e.message.address, lastHeardAt: c.now };
      c.s.epoch = Math.max(c.s.epoch, e.message.epoch ?? 0);
      c.s.peers = { ...c.s.peers, [e.message.address]: { role: "Master", db: "UP" } };
      const token = c.token("reconf");
      c.s.reconfigureToken = token;
      c.act({ type: "reconfigureDb", token, newMaster: e.message.address });
    },
  }),
  row({
    id: "follow.warn",
    from: ["Standby"],
    on: "message:newMaster",
    guard: "auto.reconfigure=false",
    to: "unchanged",
    actions: "notify standbyNotReconfigured",
    reason: "auto.reconfigure=false: this standby still follows the old master",
    run: (c, e) => {
      c.s.knownMaster = { address: e.message.address, lastHeardAt: c.now };
      c.s.epoch = Math.max(c.s.epoch, e.message.epoch ?? 0);
      c.s.peers = { ...c.s.peers, [e.message.address]: { role: "Master", db: "UP" } };
      c.notify("standbyNotReconfigured", c.cluster());
    },
  }),
  row({
    id: "follow.note",
    from: ["*"],
    on: "message:newMaster",
    guard: "not a standby",
    to: "unchanged",
    actions: "none",
    reason: "a new master was announced",
    run: (c, e) => {
      c.s.knownMaster = { address: e.message.address, lastHeardAt: c.now };
      c.s.epoch = Math.max(c.s.epoch, e.message.epoch ?? 0);
      c.s.peers = { ...c.s.peers, [e.message.address]: { role: "Master", db: "UP" } };
      c.s.failoverDisabled = false;
      c.s.fencedForIsolation = false;
    },
  }),
  row({
    id: "reconfigure.ok.resumed",
    from: ["Idle"],
    on: "dbReconfigured",
    guard: "a retried reconfiguration succeeded",
    to: "Standby",
    actions: "take the Standby role back (monitoring, candidate again)",
    reason: "the database now follows the master: resume monitoring as a standby",
    when: (c, e) => c.s.reconfigureToken === e.token && e.ok && c.s.reconfigureRetry,
    run: (c) => {
      c.s.reconfigureToken = null;
      c.s.reconfigureRetry = false;
      c.s.db = "UP";
      c.s.local = { token: null, final: false, firstFailure: null, reported: false };
      c.setRole("Standby");
    },
  }),
  row({
    id: "reconfigure.ok",
    from: ["*"],
    on: "dbReconfigured",
    guard: "the standby follows the new master",
    to: "unchanged",
    actions: "none",
    reason: "standby reconfigured to follow the new master",
    when: (c, e) => c.s.reconfigureToken === e.token && e.ok,
    run: (c) => {
      c.s.reconfigureToken = null;
      c.s.reconfigureRetry = false;
    },
  }),
  row({
    id: "reconfigure.failed",
    from: ["*"],
    on: "dbReconfigured",
    guard: "reconfiguration or restart failed",
    to: "Idle",
    actions: "notify resumeTimedOut (once); try again later",
    reason: "could not resume monitoring after reconfiguring the standby",
    when: (c, e) => c.s.reconfigureToken === e.token,
    run: (c) => {
      c.s.reconfigureToken = null;
      if (!c.s.reconfigureRetry) c.notify("resumeTimedOut", c.cluster());
      if (c.s.phase === "running" && c.s.role === "Standby") c.setRole("Idle");
      // A standby left Idle with its database up and its WAL frozen is no candidate for the next
      // failover (issue 11): keep trying, the cause (the new master not yet accepting, a
      // credential fixed by the operator) may pass.
      if (c.s.role === "Idle") {
        c.s.reconfigureRetry = true;
        c.timer("reconfigureRetry", c.now + c.s.config.promotionTimeoutMs);
      }
    },
  }),
  row({
    id: "reconfigure.retry",
    from: ["Idle"],
    on: "timer:reconfigureRetry",
    guard: "still Idle after a failed reconfiguration; a running master is known",
    to: "unchanged",
    actions: "reconfigureDb(the master) again",
    reason: "try again to make the standby database follow the master",
    when: (c) => {
      const m = c.s.knownMaster?.address;
      return (
        c.s.reconfigureRetry &&
        c.s.reconfigureToken === null &&
        !c.s.fencedForIsolation &&
        !c.s.idleForConflict &&
        m !== undefined &&
        m !== c.self &&
        c.roleOf(m) === "Master"
      );
    },
    run: (c) => {
      const token = c.token("reconf");
      c.s.reconfigureToken = token;
      c.act({ type: "reconfigureDb", token, newMaster: c.s.knownMaster!.address });
    },
  }),
  row({
    id: "reconfigure.retry.wait",
    from: ["Idle"],
    on: "timer:reconfigureRetry",
    guard: "still to retry, but no running master known (or a retry in flight)",
    to: "unchanged",
    actions: "check again later",
    reason: "no master to follow yet: retry the reconfiguration later",
    when: (c) => c.s.reconfigureRetry && !c.s.fencedForIsolation && !c.s.idleForConflict,
    run: (c) => c.timer("reconfigureRetry", c.now + c.s.config.promotionTimeoutMs),
  }),
  row({
    id: "reconfigure.retry.stop",
    from: ["*"],
    on: "timer:reconfigureRetry",
    guard: "otherwise (resumed, or no longer Idle)",
    to: "unchanged",
    actions: "stop retrying",
    reason: "no reconfiguration to retry any more",
    run: (c) => {
      c.s.reconfigureRetry = false;
    },
  }),
  row({
    id: "reconfigure.stale",
    from: ["*"],
    on: "dbReconfigured",
    guard: "otherwise",
    to: "unchanged",
    actions: "none",
    reason: "stale reconfiguration result",
    run: () => {},
  }),

  // ---- manual switchover (4.1.4), master side ----
  row({
    id: "switchover.master",
    from: ["Master"],
    on: "message:switchover",
    guard: "from the coordinator",
    to: "Idle",
    actions: "release VIP, fence; report fenced",
    reason: "manual promotion: the master releases the VIP, fences its database and goes Idle",
    when: (c, e) => c.coordinator() === e.from,
    run: (c, e) =>
      c.beginSelfFence("switchover", { to: e.from, token: e.message.token }, e.message.newMaster),
  }),
  row({
    id: "switchover.ignore",
    from: ["*"],
    on: "message:switchover",
    guard: "otherwise",
    to: "unchanged",
    actions: "none",
    reason: "switchover request from a node that is not our coordinator, or we are not master",
    run: () => {},
  }),

  // ---- commands (5.3) ----
  row({
    id: "cmd.resume.notIdle",
    from: ["*"],
    on: "command:resume",
    guard: "agent not Idle",
    to: "unchanged",
    actions: "respond error",
    reason: "resume only applies to an Idle agent",
    when: (c) => c.s.phase !== "running" || c.s.role !== "Idle" || c.s.pendingResume !== null,
    run: (c, e) =>
      c.act({
        type: "respond",
        requestId: e.requestId,
        ok: false,
        message: "Agent is not Idle; nothing to resume.",
      }),
  }),
  row({
    id: "cmd.resume",
    from: ["Idle"],
    on: "command:resume",
    guard: "Idle with a local database",
    to: "unchanged",
    actions: "checkLocalDb",
    reason: "resume: check the local database is healthy first",
    when: (c) => !c.s.config.isWitness,
    run: (c, e) => {
      const token = c.token("resume");
      c.s.pendingResume = { requestId: e.requestId, stage: "db", token };
      c.act({ type: "checkLocalDb", token, timeoutMs: c.s.config.localTimeoutMs });
    },
  }),
  row({
    id: "resume.dbDown",
    from: ["Idle"],
    on: "localDbChecked",
    guard: "resume check failed",
    to: "Idle",
    actions: "respond error",
    reason: "cannot resume: the local database is not healthy",
    when: (c, e) => c.s.pendingResume?.token === e.token && !e.ok,
    run: (c) => {
      const r = c.s.pendingResume!;
      c.s.pendingResume = null;
      c.act({
        type: "respond",
        requestId: r.requestId,
        ok: false,
        message: "The local database is not running.",
      });
    },
  }),
  row({
    id: "resume.dbUp",
    from: ["Idle"],
    on: "localDbChecked",
    guard: "resume check succeeded",
    to: "unchanged",
    actions: "checkLocalRole",
    reason: "local database healthy: learn whether it is in recovery",
    when: (c, e) => c.s.pendingResume?.token === e.token,
    run: (c) => {
      c.s.pendingResume = { ...c.s.pendingResume!, stage: "role" };
      c.act({ type: "checkLocalRole" });
    },
  }),
  row({
    id: "resume.standby",
    from: ["Idle"],
    on: "localRoleChecked",
    guard: "resuming; database in recovery",
    to: "Standby",
    actions: "start monitoring; respond ok",
    reason: "resumed as a standby",
    when: (c, e) => c.s.pendingResume?.stage === "role" && e.result === "recovery" && !c.s.rebuildNeeded,
    run: (c) => resumeAsRole(c, "Standby", c.s.pendingResume!.requestId),
  }),
  row({
    id: "resume.rebuild.check",
    from: ["Idle"],
    on: "localRoleChecked",
    guard: "resuming; database in recovery; it was a fenced master (rebuild flag)",
    to: "unchanged",
    actions: "queryLsn: does the database stream from its upstream now?",
    reason:
      "a fenced ex-master resumes as a standby only once it follows the current master's timeline (rewound or re-cloned)",
    when: (c, e) => c.s.pendingResume?.stage === "role" && e.result === "recovery",
    run: (c) => {
      // A database just started needs a moment before its WAL receiver streams (PostgreSQL retries
      // every wal_retrieve_retry_interval, 5 s by default): ask again until local.timeout, capped
      // so that the operator's `efm resume` (answered within 30 s) hears the outcome.
      const until = c.now + Math.min(c.s.config.localTimeoutMs, RESUME_STREAMING_WAIT_MS);
      c.s.pendingResume = { ...c.s.pendingResume!, stage: "wal", until };
      c.act({ type: "queryLsn", token: c.s.pendingResume.token });
    },
  }),
  row({
    id: "resume.rebuild.ok",
    from: ["Idle"],
    on: "lsnQueried",
    guard:
      "resuming a fenced ex-master; its database streams from the running master (no older timeline than the cluster's)",
    to: "Standby",
    actions: "clear the rebuild flag (persisted); resume as a standby",
    reason:
      "the rebuilt database streams from the current master, so its history is the master's: it is a standby and a candidate again",
    // PostgreSQL only streams once the upstream's timeline history is compatible with the
    // standby's own; a database with WAL past the fork never gets there.
    when: (c, e) => {
      const m = c.s.knownMaster?.address;
      return (
        c.s.pendingResume?.stage === "wal" &&
        c.s.pendingResume.token === e.token &&
        e.streaming === true &&
        m !== undefined &&
        m !== c.self &&
        c.roleOf(m) === "Master"
      );
    },
    run: (c) => {
      c.s.rebuildNeeded = false;
      c.s.fencedForIsolation = false;
      resumeAsRole(c, "Standby", c.s.pendingResume!.requestId);
    },
  }),
  row({
    id: "resume.rebuild.wait",
    from: ["Idle"],
    on: "lsnQueried",
    guard: "resuming a fenced ex-master that does not stream yet, within the wait",
    to: "unchanged",
    actions: "ask again after local.period",
    reason: "the database may still be connecting to the master: ask again shortly",
    when: (c, e) =>
      c.s.pendingResume?.stage === "wal" &&
      c.s.pendingResume.token === e.token &&
      c.now + c.s.config.localPeriodMs <= (c.s.pendingResume.until ?? c.now),
    run: (c) => c.timer("resumeStreaming", c.now + c.s.config.localPeriodMs),
  }),
  row({
    id: "resume.rebuild.again",
    from: ["Idle"],
    on: "timer:resumeStreaming",
    guard: "still resuming a fenced ex-master",
    to: "unchanged",
    actions: "queryLsn again",
    reason: "ask again whether the database streams from its upstream",
    when: (c) => c.s.pendingResume?.stage === "wal",
    run: (c) => c.act({ type: "queryLsn", token: c.s.pendingResume!.token }),
  }),
  row({
    id: "resume.rebuild.stale",
    from: ["*"],
    on: "timer:resumeStreaming",
    guard: "otherwise",
    to: "unchanged",
    actions: "none",
    reason: "no resume waits for streaming any more",
    run: () => {},
  }),
  row({
    id: "resume.rebuild.refused",
    from: ["Idle"],
    on: "lsnQueried",
    guard: "resuming a fenced ex-master that does not stream from a running master",
    to: "Idle",
    actions: "respond error with the steps",
    reason: "a fenced ex-master that does not follow the current master stays out of the candidates",
    when: (c, e) => c.s.pendingResume?.stage === "wal" && c.s.pendingResume.token === e.token,
    run: (c) => {
      const r = c.s.pendingResume!;
      c.s.pendingResume = null;
      const m = c.s.knownMaster?.address;
      c.act({
        type: "respond",
        requestId: r.requestId,
        ok: false,
        message:
          "This database was a master that fenced itself and may hold WAL the cluster discarded at the last " +
          `promotion. Rewind it (pg_rewind) or re-clone it from the current master${m && m !== c.self ? ` (${m})` : ""}, ` +
          "start it as a standby streaming from that master, then run resume again.",
      });
    },
  }),
  row({
    id: "resume.master.conflict",
    from: ["Idle"],
    on: "localRoleChecked",
    guard: "resuming; database not in recovery but another master exists",
    to: "Idle",
    actions: "respond error",
    reason: "refuse to resume as a second master",
    when: (c, e) =>
      c.s.pendingResume?.stage === "role" && e.result === "primary" && c.membersWithRole("Master").length > 0,
    run: (c) => {
      const r = c.s.pendingResume!;
      c.s.pendingResume = null;
      c.act({
        type: "respond",
        requestId: r.requestId,
        ok: false,
        message: "The local database is not in recovery but another master is running.",
      });
    },
  }),
  row({
    id: "resume.master",
    from: ["Idle"],
    on: "localRoleChecked",
    guard: "resuming; database not in recovery, no other master, majority view",
    to: "Master",
    actions: "assign the VIP; start monitoring; respond ok",
    reason: "resumed as the master",
    when: (c, e) => c.s.pendingResume?.stage === "role" && e.result === "primary" && c.quorate(),
    run: (c) => resumeAsRole(c, "Master", c.s.pendingResume!.requestId),
  }),
  row({
    id: "resume.failed",
    from: ["*"],
    on: "localRoleChecked",
    guard: "otherwise",
    to: "unchanged",
    actions: "respond error if resuming",
    reason: "cannot resume: database unreachable, or a master without a majority view",
    run: (c) => {
      const r = c.s.pendingResume;
      c.s.pendingResume = null;
      if (r)
        c.act({
          type: "respond",
          requestId: r.requestId,
          ok: false,
          message: "Could not resume monitoring.",
        });
    },
  }),
  row({
    id: "cmd.cluster.local",
    from: RUNNING,
    on: "command:*",
    guard: "this agent is the coordinator",
    to: "unchanged",
    actions: "handle the cluster command here",
    reason: "cluster commands are decided by the coordinator",
    when: (c) => c.isCoordinator(),
    run: (c, e: EventFor<"command">) => clusterCommand(c, e.requestId, c.self, e.command),
  }),
  row({
    id: "cmd.cluster.forward",
    from: RUNNING,
    on: "command:*",
    guard: "in a majority view, not the coordinator",
    to: "unchanged",
    actions: "forward to the coordinator",
    reason: "cluster commands are decided by the coordinator",
    when: (c) => c.quorate(),
    run: (c, e: EventFor<"command">) =>
      c.send(c.coordinator()!, { type: "command", requestId: e.requestId, command: e.command }),
  }),
  row({
    id: "cmd.noMajority",
    from: ["*"],
    on: "command:*",
    guard: "otherwise",
    to: "unchanged",
    actions: "respond error",
    reason: "this agent is not in a majority view: cluster commands cannot be decided",
    run: (c, e: EventFor<"command">) =>
      c.act({
        type: "respond",
        requestId: e.requestId,
        ok: false,
        message: "This agent is not part of a majority of the cluster.",
      }),
  }),
  row({
    id: "cmd.remote",
    from: RUNNING,
    on: "message:command",
    guard: "coordinator",
    to: "unchanged",
    actions: "handle the forwarded command",
    reason: "a member forwarded a cluster command",
    when: (c) => c.isCoordinator(),
    run: (c, e) => clusterCommand(c, e.message.requestId, e.from, e.message.command),
  }),
  row({
    id: "cmd.remote.refuse",
    from: ["*"],
    on: "message:command",
    guard: "otherwise",
    to: "unchanged",
    actions: "reply error",
    reason: "forwarded to a node that is no longer coordinator",
    run: (c, e) =>
      c.send(e.from, {
        type: "commandReply",
        requestId: e.message.requestId,
        ok: false,
        message: "Not the coordinator; retry.",
      }),
  }),
  row({
    id: "cmd.reply",
    from: ["*"],
    on: "message:commandReply",
    guard: "always",
    to: "unchanged",
    actions: "respond to the CLI",
    reason: "the coordinator answered a forwarded command",
    run: (c, e) =>
      c.act({
        type: "respond",
        requestId: e.message.requestId,
        ok: e.message.ok,
        message: e.message.message,
      }),
  }),
  row({
    id: "cc.promote",
    from: ["*"],
    on: "clusterCommand",
    guard: "efm promote",
    to: "unchanged",
    actions: "request a manual promotion (ignores auto.failover)",
    reason: "manual promotion requested (4.1.4)",
    when: (_c, e) => e.command.kind === "promote",
    run: (c, e) => {
      const force = e.command.kind === "promote" && e.command.force;
      c.raise({
        type: "promotionRequested",
        now: c.now,
        manual: true,
        force,
        oldMaster: null,
        request: { requestId: e.requestId, origin: e.origin },
      });
    },
  }),
  row({
    id: "cc.addNode.invalid",
    from: ["*"],
    on: "clusterCommand",
    guard: "add-node with an empty address or a priority that is not a positive integer",
    to: "unchanged",
    actions: "reply error",
    reason: "invalid add-node arguments",
    when: (_c, e) =>
      e.command.kind === "addNode" &&
      (e.command.address.trim() === "" ||
        (e.command.priority !== undefined &&
          (!Number.isInteger(e.command.priority) || e.command.priority < 1))),
    run: (c, e) =>
      c.reply(e.origin, e.requestId, false, "add-node needs an address and a priority of 1 or more."),
  }),
  row({
    id: "cc.addNode",
    from: ["*"],
    on: "clusterCommand",
    guard: "add-node",
    to: "unchanged",
    actions: "update the allowed and priority lists; persist and broadcast",
    reason: "add the node to the allowed list (and the priority list at the given position)",
    when: (_c, e) => e.command.kind === "addNode",
    run: (c, e) => {
      if (e.command.kind !== "addNode") return;
      const { address, priority } = e.command;
      if (!c.s.allowed.includes(address)) c.s.allowed = [...c.s.allowed, address];
      if (priority !== undefined) {
        const rest = c.s.priority.filter((a) => a !== address);
        const at = Math.min(priority - 1, rest.length);
        c.s.priority = [...rest.slice(0, at), address, ...rest.slice(at)];
      }
      c.publishLists();
      c.reply(e.origin, e.requestId, true, `add-node signal sent to local agent.`);
    },
  }),
  row({
    id: "cc.removeNode.unknown",
    from: ["*"],
    on: "clusterCommand",
    guard: "remove-node of an address not in the allowed list",
    to: "unchanged",
    actions: "reply error",
    reason: "nothing to remove",
    when: (c, e) => e.command.kind === "removeNode" && !c.s.allowed.includes(e.command.address),
    run: (c, e) =>
      c.reply(e.origin, e.requestId, false, "That address is not in the allowed node host list."),
  }),
  row({
    id: "cc.removeNode",
    from: ["*"],
    on: "clusterCommand",
    guard: "remove-node",
    to: "unchanged",
    actions: "remove from the allowed and priority lists; persist and broadcast",
    reason: "the node may no longer join and is no longer a promotion candidate",
    when: (_c, e) => e.command.kind === "removeNode",
    run: (c, e) => {
      if (e.command.kind !== "removeNode") return;
      const address = e.command.address;
      c.s.allowed = c.s.allowed.filter((a) => a !== address);
      c.s.priority = c.s.priority.filter((a) => a !== address);
      c.publishLists();
      c.reply(e.origin, e.requestId, true, "remove-node signal sent to local agent.");
    },
  }),
  row({
    id: "cc.stopCluster",
    from: ["*"],
    on: "clusterCommand",
    guard: "stop-cluster",
    // The exit is stop.exit's, when this agent's own stop message arrives like everyone else's.
    to: "unchanged",
    actions: "broadcast stop; reply; send stop to self (stop.exit exits)",
    reason: "stop-cluster: every agent exits",
    when: (_c, e) => e.command.kind === "stopCluster",
    run: (c, e) => {
      c.broadcast({ type: "stop" });
      c.reply(e.origin, e.requestId, true, "stop-cluster signal sent to all agents.");
      if (e.origin !== c.self) c.send(e.origin, { type: "stop" });
      c.send(c.self, { type: "stop" });
    },
  }),
  row({
    id: "cc.resume",
    from: ["*"],
    on: "clusterCommand",
    guard: "resume reached the coordinator",
    to: "unchanged",
    actions: "reply error",
    reason: "resume is handled by the local agent, not the coordinator",
    run: (c, e) => c.reply(e.origin, e.requestId, false, "resume must be run on the Idle node."),
  }),
  row({
    id: "lists.update",
    from: ["*"],
    on: "message:lists",
    guard: "always",
    to: "unchanged",
    actions: "writeState",
    reason: "the coordinator published new allowed/priority lists",
    run: (c, e) => {
      c.s.allowed = e.message.allowed;
      c.s.priority = e.message.priority;
      c.act({ type: "writeState", allowed: e.message.allowed, priority: e.message.priority });
    },
  }),

  // ---- exits ----
  row({
    id: "stop.exit",
    from: ["*"],
    on: "message:stop",
    guard: "not already exited",
    to: "exited",
    actions: "notify agent exited; exit 0",
    reason: "stop-cluster: exiting",
    when: (c) => c.s.phase !== "exited",
    run: (c) => exitNotice(c, "stop-cluster"),
  }),
  row({
    id: "shutdown",
    from: ["*"],
    on: "shutdown",
    guard: "not already exited",
    to: "exited",
    actions: "notify agent exited; exit 0",
    reason: "agent stopped by the operator",
    when: (c) => c.s.phase !== "exited",
    run: (c) => exitNotice(c, "agent stopped"),
  }),
];

function exitNotice(c: Ctx, why: string): void {
  if (c.s.phase !== "running") c.notify("agentExitedDuringStartup", c.cluster());
  else if (c.s.role === "Master") c.notify("masterAgentExited", c.node());
  else if (c.s.role === "Standby") c.notify("standbyAgentExited", c.node());
  else if (c.s.role === "Witness") c.notify("witnessAgentExited", c.node());
  else if (c.s.role === "Promoting") c.notify("agentExitedDuringPromotion", c.node());
  else c.notify("idleAgentExited", c.node());
  exitAgent(c, 0, why);
}
