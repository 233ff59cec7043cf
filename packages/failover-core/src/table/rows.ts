import type { AnyEvent, Ctx } from "../context.ts";
import { learnSyncSet } from "../sync.ts";
import type { AgentRole, Command, FailoverEvent, Investigation, PeerMessage, Phase } from "../types.ts";

/** Where a row applies: a role (in the running phase), a start-up phase, or anywhere. */
export type RowSource = AgentRole | Exclude<Phase, "running"> | "*";

export type MessageEvent = Extract<FailoverEvent, { type: "messageReceived" }>;
export type CommandEvent = Extract<FailoverEvent, { type: "command" }>;

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
  /** A generated "otherwise" row (table/otherwise.ts): printed, never run. */
  readonly generated?: true;
}

/** The guard of a row written without one: it applies whenever its state and event match. */
const always = (): boolean => true;

/** Does this row apply whenever its state and event match (it has no guard)? */
export function unguarded(r: TransitionRow): boolean {
  return r.when === always;
}

export function row<K extends string>(r: {
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
    when: (r.when ?? always) as TransitionRow["when"],
    run: r.run as TransitionRow["run"],
  };
}

export const DB_ROLES: RowSource[] = ["Master", "Standby"];
/** Upper bound of a resume's wait for a rebuilt database to stream (the CLI waits 30 s for an answer). */
export const RESUME_STREAMING_WAIT_MS = 20_000;
export const RUNNING: RowSource[] = ["Master", "Standby", "Witness", "Idle", "Promoting"];

// ---------- helpers shared by several rows ----------

export function finishStartup(c: Ctx): void {
  c.setPhase("running");
  // Invariant (safety): a database that was the master on record and another member replaced is
  // an old master, never a candidate, until rewound or re-cloned. A master whose host was reset
  // (watchdog, power) before any fence could record it boots in recovery (the read-only boot
  // operators are told to install) with whatever WAL it wrote last, possibly past the fork of
  // the promotion made meanwhile. Judged here, once every member's role is known. Replaced means
  // a member runs as master now, or a running member names another master than us: the master
  // promoted after us may be gone too (its host reset), and without a master running nothing else
  // kept this database, unable to tell its timeline, from being ranked as a current standby.
  const replacedBy = c.others().find((a) => {
    const p = c.s.peers[a];
    return (
      ["Master", "Promoting"].includes(c.roleOf(a) ?? "") ||
      (p !== undefined && !p.starting && typeof p.master === "string" && p.master !== c.self)
    );
  });
  if (c.s.role === "Standby" && c.s.config.persisted?.lastMaster === c.self && replacedBy !== undefined) {
    c.s.role = "Idle";
    c.s.rebuildNeeded = true;
    c.s.lastReason =
      "this database was the master and another member was made master since: it may hold WAL past the promotion's fork (rewind or re-clone it, then efm resume)";
  }
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
  // Invariant (liveness): an old master whose database came back in recovery (start.recovery.rebuild)
  // while no member runs as master is a fenced master: the coordinator hears it and fails over to a
  // standby or, when nobody was promoted after it and no standby is left, gives it its role back
  // (promo.noStandby.restore). Without the report no rule replaced it. A master replaced meanwhile
  // is not the coordinator's last master, so its report is ignored.
  if (
    role === "Idle" &&
    c.s.rebuildNeeded &&
    c.s.db === "UP" &&
    c.s.recordedMaster === c.self &&
    c.quorate() &&
    c.membersWithRole("Master", "Promoting").length === 0
  ) {
    c.s.fencedForIsolation = true;
    reportFencedMaster(c);
  }
  // local monitoring of a Master or Standby is armed by step (Ctx.keepMonitoring)
  // Invariant (liveness): a quorate cluster without a master always has a coordinator that decides.
  // A coordinator that just started (its view arrived while it was still starting) reconciles once
  // like one that gained the role in a view, e.g. a fenced old master that restarted as a standby
  // and became coordinator, where nobody else would decide.
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
export function anotherMaster(c: Ctx): boolean {
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

/**
 * Another member of our view that runs, past its own start-up, as Master or Promoting: the
 * master the cluster has (or is making) besides us, or null. A database of ours that accepts
 * writes beside it is a second master and must be fenced; a rival that is itself still starting
 * is the start-up conflict rows' business (either of the two may be the master on record).
 * `promoting: false` counts only a settled master (a promotion may still give up).
 */
export function runningOtherMaster(c: Ctx, promoting = true): string | null {
  for (const a of c.others()) {
    if (c.s.peers[a]?.starting) continue;
    const role = c.roleOf(a);
    if (role === "Master" || (promoting && role === "Promoting")) return a;
  }
  return null;
}

/**
 * Fence our own database because another master runs: stop it, confirm it down, write standby
 * settings naming that master, and persist the rebuild flag (it may hold writes past the
 * cluster's fork), then tell the operator. The same executor as a confirmed master failure's
 * fence (a `retry`-purpose self-fence: no VIP to release, no script, an unconfirmed stop retried
 * by fenceRetry). The invariant: an agent never leaves its database writable beside another
 * master, whatever the guide's start-up conflict says (EFM 2.0.3 goes Idle and leaves it so).
 */
export function fenceBesideMaster(c: Ctx, master: string): void {
  c.s.role = "Idle";
  c.s.idleForConflict = false;
  c.s.rebuildNeeded = true;
  c.s.fenceUnconfirmed = false;
  const token = c.token("fence");
  c.s.selfFence = { token, purpose: "retry", stage: "fenceDb", replyTo: null, newMaster: master };
  c.act({ type: "fenceDb", token, newMaster: master });
  c.notify("secondMasterFenced", {
    nodeAddress: c.self,
    clusterName: c.s.config.clusterName,
    serverAddress: master,
  });
}

/** Bookkeeping for a peer's status: its role, its known master, the priority list. */
export function recordStatus(c: Ctx, e: EventFor<"message:status">): void {
  if (e.message.ask && c.s.role !== null) c.send(e.from, c.status());
  // A member that asks is joining or rejoining: the coordinator also hands it the allowed and
  // priority lists, or a list changed before it joined would never reach it (lists travel only
  // when they change).
  if (e.message.ask && c.isCoordinator()) {
    c.send(e.from, { type: "lists", allowed: c.s.allowed, priority: c.s.priority });
  }
  // The newest synchronous standby set published: the only standbys a failover may promote.
  learnSyncSet(c, e.message);
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
export function afterSwitchover(c: Ctx): void {
  const p = c.s.promotion!;
  const ask = possibleStandbys(c);
  // A standby left out for the timeline it reported before the master stopped is judged again on
  // its final position (it may have caught up since): only that verdict is dropped, a failed
  // pre-promotion check still counts.
  const offTimeline = c.offTimeline(p);
  const failures = Object.fromEntries(
    Object.entries(p.failures).filter(([a, why]) => offTimeline[a] !== why),
  );
  c.setPromotion({
    ...p,
    stage: "queryLsn",
    switchedOver: true,
    awaiting: ask,
    lsns: {},
    timelines: {},
    failures,
    candidate: null,
  });
  queryPositions(c, p.token, ask);
}

/** Joined a quorate view: announce our (tentative) role and ask for everyone's before checking databases. */
export function joinQuorate(c: Ctx): void {
  c.setPhase("checking");
  c.s.joinedAt = c.now;
  c.broadcast(c.status(true));
  c.timer("startupChecks", c.now + c.s.config.messageSlackMs);
}

/** After learning our role: if the quorate view already arrived while we probed, join it now. */
export function afterRoleKnown(c: Ctx): void {
  c.setPhase("joining");
  if (c.s.view?.quorate) joinQuorate(c);
}

export function beginStartupChecks(c: Ctx): void {
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

export function adoptView(c: Ctx, e: EventFor<"viewInstalled">): void {
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
  // removal's takeoverAllowedAt (and on database checks made while it was down) broke the invariant
  // that no promotion happens while the old master may still hold a lease: a coordinator promoted
  // over a master that had restarted and was then isolated. If it is lost again, its new removal
  // starts a new investigation with a new takeoverAllowedAt.
  const back = new Set(view.members.map((m) => m.address));
  c.s.investigations = c.s.investigations.filter((i) => i.kind === "dbFailure" || !back.has(i.target));
}

export function quorateView(c: Ctx, e: EventFor<"viewInstalled">): void {
  const before = new Set((c.s.view?.members ?? []).map((m) => m.address));
  adoptView(c, e);
  if (c.s.isolated) {
    c.s.isolated = false;
    c.notify("nodeNoLongerIsolated", c.cluster());
  }
  c.broadcast(c.status());
  // A member new to our view (a merge, a restart) may have installed it before us: the status it
  // sent then was dropped as coming from a non-member, and statuses travel only when they change,
  // so we would show its old role for good. Asked now, it answers: we are in its view already.
  for (const m of e.view.members) {
    if (m.address !== c.self && !before.has(m.address)) c.send(m.address, c.status(true));
  }
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

export function fenceForIsolation(c: Ctx, why: string): void {
  c.beginSelfFence("isolation", null);
  c.s.lastReason = why;
}

export function minorityNotice(c: Ctx): void {
  c.notify("subsetDisconnectedFromMaster", {
    clusterName: c.s.config.clusterName,
    nodeAddress: c.members().join(" "),
  });
  if (c.s.config.pingServer)
    c.act({ type: "pingServer", token: c.token("isolation"), server: c.s.config.pingServer });
}

export function selfFenceScript(c: Ctx, purpose: "dbFailure" | "switchover" | "isolation" | "retry"): void {
  const kind = purpose === "dbFailure" ? "dbFailure" : purpose === "isolation" ? "masterIsolated" : null;
  const path = kind ? c.s.config.scripts[kind] : null;
  if (kind && path) c.act({ type: "runScript", token: c.token("script"), script: kind, path });
}

export function completeSelfFence(c: Ctx): void {
  const f = c.s.selfFence;
  if (!f) return;
  c.s.selfFence = null;
  selfFenceScript(c, f.purpose);
  if (f.replyTo) c.send(f.replyTo.to, fencedReport(c, f.replyTo.token, f.finalLsn));
  // Whatever the reason, until someone takes over the coordinator must know this master is fenced:
  // a promotion that gets abandoned (lost lease, timeout) is otherwise never retried. When the
  // coordinator asked for the fencing it is already promoting: only remind it later.
  if (f.replyTo) c.timer("fencedRetry", c.now + c.s.config.remoteTimeoutMs + c.s.config.messageSlackMs);
  else reportFencedMaster(c);
}

/** Our answer to "fence yourself": fenced, or (its stop not confirmed) possibly still writable. */
export function fencedReport(c: Ctx, token: string, finalLsn?: string): PeerMessage {
  return {
    type: "fenced",
    token,
    ...(c.s.fenceUnconfirmed ? { unconfirmed: true } : {}),
    ...(finalLsn !== undefined && !c.s.fenceUnconfirmed ? { finalLsn } : {}),
  };
}

/** Tell the coordinator (if we see one) that this old master is fenced, and keep telling it until someone takes over. */
export function reportFencedMaster(c: Ctx): void {
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
export function unconfirmedFenceNotice(c: Ctx, master: string): void {
  c.notify("unexpectedError", {
    clusterName: c.s.config.clusterName,
    errorDetails:
      `The old master ${master} could not confirm that its database stopped, so it may still accept writes. ` +
      "A standby is promoted only if the VIP does not answer, the ping server answers and the old master's " +
      "database cannot be reached as a master; make sure that database is stopped.",
  });
}

export function reportDbFailure(c: Ctx): void {
  const coord = c.coordinator();
  if (coord) c.send(coord, { type: "dbFailed", role: c.s.role ?? "Idle" });
  c.timer("dbFailedRetry", c.now + c.s.config.remoteTimeoutMs + c.s.config.messageSlackMs);
}

export function anyReached(inv: Investigation): boolean {
  return Object.values(inv.results).includes("reachable");
}

/** The last master we know of, or (after our own restart) the one a running peer reports. */
export function lastMaster(c: Ctx): string | null {
  if (c.s.knownMaster) return c.s.knownMaster.address;
  for (const a of c.others()) {
    const p = c.s.peers[a];
    if (p && !p.starting && p.master) return p.master;
  }
  return null;
}

export function startMasterLost(c: Ctx, address: string, notBefore: number): void {
  if (c.s.investigations.some((i) => i.kind === "masterLost" && i.target === address)) return;
  c.startInvestigation("masterLost", address, "Master", notBefore);
}

export function clusterCommand(c: Ctx, requestId: string, origin: string, command: Command): void {
  c.raise({ type: "clusterCommand", now: c.now, requestId, origin, command });
}

export function resumeAsRole(c: Ctx, role: "Master" | "Standby", requestId: string): void {
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
  // An empty request id: the old master of a switchover joining by itself, nobody to answer.
  if (requestId !== "")
    c.act({ type: "respond", requestId, ok: true, message: `Resumed monitoring as ${role}.` });
}

export function exitAgent(c: Ctx, code: number, reason: string): void {
  c.setPhase("exited");
  c.act({ type: "exit", code, reason });
}

/** Standbys of the view, and members whose role has not reached us yet (a joiner's status may be in flight). */
export function possibleStandbys(c: Ctx): string[] {
  return c.members().filter((a) => {
    const r = c.roleOf(a);
    return r === "Standby" || r === null;
  });
}

/**
 * Asks each member for its WAL position (ourselves directly) and bounds the wait. The standbys
 * among them are asked for their pre-promotion check in the same round (Ctx.askPromotable), so
 * the candidate chosen on these positions is usually verified by the time they are all in.
 */
export function queryPositions(c: Ctx, token: string, ask: readonly string[], bound = true): void {
  for (const a of ask) {
    if (a === c.self) {
      const t = c.token("lsn");
      c.s.lsnQueries = { ...c.s.lsnQueries, [t]: token };
      c.act({ type: "queryLsn", token: t });
    } else c.send(a, { type: "queryLsn", token });
  }
  // A switchover's replay wait asks again and again under its own, longer bound; its target was
  // checked before the master stopped, so the replay rounds carry no check.
  if (bound) {
    c.askPromotable(token, ask);
    c.timer(`promotion:${token}`, c.now + c.s.config.remoteTimeoutMs + c.s.config.messageSlackMs);
  }
}

export function pendingPromoteTarget(c: Ctx): string {
  return c.s.promotion?.candidate ?? c.s.promotion?.oldMaster ?? c.self;
}

export function exitNotice(c: Ctx, why: string): void {
  if (c.s.phase !== "running") c.notify("agentExitedDuringStartup", c.cluster());
  else if (c.s.role === "Master") c.notify("masterAgentExited", c.node());
  else if (c.s.role === "Standby") c.notify("standbyAgentExited", c.node());
  else if (c.s.role === "Witness") c.notify("witnessAgentExited", c.node());
  else if (c.s.role === "Promoting") c.notify("agentExitedDuringPromotion", c.node());
  else c.notify("idleAgentExited", c.node());
  exitAgent(c, 0, why);
}

/** The candidates a promotion tried and why each failed, for the operator's reply ("a<sep>why; ..."). */
export function failureList(p: { readonly failures: Readonly<Record<string, string>> }, sep: string): string {
  return Object.entries(p.failures)
    .map(([a, why]) => `${a}${sep}${why}`)
    .join("; ");
}
