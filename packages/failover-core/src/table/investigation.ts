import {
  type TransitionRow,
  row,
  RUNNING,
  recordStatus,
  afterSwitchover,
  reportFencedMaster,
  unconfirmedFenceNotice,
  anyReached,
  lastMaster,
  startMasterLost,
  fenceBesideMaster,
  runningOtherMaster,
} from "./rows.ts";
import type { Ctx } from "../context.ts";

/**
 * Whether to start our direct check of `address`'s database as a master now that its agent went
 * quiet or is suspected: it is the master we know of (not us), and no such check runs here or
 * found it down as recently as a new one could (Ctx.freshMasterAnswer): that check or answer is
 * the one the confirmation takes, so a second one would only make it wait longer. Membership says
 * "quiet" once per silence, so at a quiet a check still running began in an earlier silence (the
 * master was heard since, e.g. a pause under load): it does not count, and the confirmation joins
 * the newest check (Ctx.runningMasterCheck).
 */
const masterCheckDue = (c: Ctx, address: string, newSilence: boolean): boolean =>
  address !== c.self &&
  (c.roleOf(address) === "Master" || c.s.knownMaster?.address === address) &&
  (newSilence || c.runningMasterCheck(address) === null) &&
  c.freshMasterAnswer(address) === null;

/** Rows of one concern (members leaving, and checking a database on the coordinator's behalf), in the table's match order. */
export const investigationRows: readonly TransitionRow[] = [
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
    id: "quiet.master",
    from: RUNNING,
    on: "memberQuiet",
    guard:
      "the quiet member is the master we know of; no check of its database as a master found it down as recently as a new one could (one still running began in an earlier silence)",
    to: "unchanged",
    actions:
      "checkRemoteDb(asMaster) on the master's database now, its answer kept for the confirmation; a standby starts a VIP probe (Ctx.startVipProbe)",
    reason:
      "the master agent has been silent for the window less remote.timeout: start our direct check of its database now, so that its answer is in when the view removes the master and the confirmation (8.3) waits for no remote.timeout",
    // Nothing is decided here: the master may well be heard again (then this was one harmless
    // check). The answer joins the confirmation only by checkDb.shared's rules: asked while it
    // runs, or found down as recently as a new check could.
    when: (c, e) => masterCheckDue(c, e.address, true),
    run: (c, e) => {
      c.startRemoteCheck(e.address, true, []);
      if (c.s.role === "Standby") c.startVipProbe();
    },
  }),
  row({
    id: "quiet.note",
    from: ["*"],
    on: "memberQuiet",
    guard: "otherwise",
    to: "unchanged",
    actions: "none",
    reason: "a member has been silent for a while; membership suspects it later if it stays silent",
    run: () => {},
  }),
  row({
    id: "suspect.master",
    from: RUNNING,
    on: "memberSuspected",
    guard:
      "the suspected member is the master we know of; no check of its database as a master runs here (begun when it went quiet) or found it down as recently as a new one could",
    to: "unchanged",
    actions:
      "checkRemoteDb(asMaster) on the master's database now, its answer kept for the confirmation; a standby starts a VIP probe (Ctx.startVipProbe)",
    reason:
      "the master agent is suspected: start our direct check of its database now, so that the confirmation after its removal (8.3) has it without waiting remote.timeout again",
    // Nothing is decided here: membership may still find the master alive. The answer only joins
    // the confirmation if the coordinator asks while it runs or soon after it came (checkDb.shared).
    when: (c, e) => masterCheckDue(c, e.address, false),
    run: (c, e) => {
      c.startRemoteCheck(e.address, true, []);
      if (c.s.role === "Standby") c.startVipProbe();
    },
  }),
  row({
    id: "suspect.note",
    from: ["*"],
    on: "memberSuspected",
    guard: "otherwise",
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
    id: "watch.askPromoting",
    from: RUNNING,
    on: "timer:masterWatch",
    guard: "coordinator of a majority; no promotion or check of ours; a member still shows as Promoting",
    to: "unchanged",
    actions: "ask that member for its status; look again later",
    reason:
      "a member has shown as Promoting for a whole watch interval: ask it, the status that ended it may have been lost",
    // Invariant (liveness): a quorate coordinator that finds no writable master while a healthy
    // standby exists promotes. A status lost or overtaken during a network fault left a standby
    // marked Promoting here for good, and a Promoting member blocks every promotion; asking it
    // costs one message per interval, only while the role is shown.
    when: (c) =>
      c.isCoordinator() &&
      c.s.promotion === null &&
      c.s.investigations.length === 0 &&
      c.others().some((a) => c.roleOf(a) === "Promoting"),
    run: (c) => {
      for (const a of c.others().filter((x) => c.roleOf(x) === "Promoting")) c.send(a, c.status(true));
      c.timer("masterWatch", c.now + c.s.config.promotionTimeoutMs);
    },
  }),
  row({
    id: "watch.askMaster",
    from: RUNNING,
    on: "timer:masterWatch",
    guard: "coordinator of a majority; another member is shown as the master",
    to: "unchanged",
    actions: "ask that member for its status; look again later",
    reason:
      "refresh the master's role once a watch interval: a status lost in a network fault would keep a member that restarted as a standby shown as the master, and a master shown blocks every failover",
    // Invariant (liveness): a quorate coordinator that finds no writable master while a healthy
    // standby exists promotes. Statuses travel only when they change: a master whose host was
    // reset came back as a standby, and its statuses to the coordinator were all lost on a lossy
    // link, so the coordinator showed it as Master for good and never failed over. Asking costs
    // one message each way per interval; the answer (recordStatus) starts a reconcile when the
    // last master turns out to run as something else.
    when: (c) => c.isCoordinator() && c.others().some((a) => c.roleOf(a) === "Master"),
    run: (c) => {
      for (const a of c.others().filter((x) => c.roleOf(x) === "Master")) c.send(a, c.status(true));
      c.timer("masterWatch", c.now + c.s.config.promotionTimeoutMs);
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
    guard: "still fenced for isolation, no fence running, and nobody took over",
    to: "unchanged",
    actions: "report fenced to the coordinator again",
    reason: "no new master yet: remind the coordinator this old master is fenced",
    // Not while a fence runs: its own report comes when it ends, and a reminder before it says
    // "fenced" of a database that may not have stopped (and carries no switchover final position).
    when: (c) => c.s.fencedForIsolation && c.s.selfFence === null,
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
    // Invariant (liveness): a fenced master with a healthy standby and no other master ends in a
    // failover. A coordinator that restarted while the master was cut off never learned it: with no
    // other master known here or reported by running peers, the fenced master's own word is the best
    // knowledge; without it the cluster stayed without a master for good.
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
    // Invariant: never two writable databases. Only the coordinator's word counts: it alone runs
    // promotions and names no master while one is in flight; a standby's word let an old primary
    // resume while the coordinator was promoting another standby.
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
    id: "conflict.recheck.fence",
    from: ["Idle"],
    on: "timer:conflictRecheck",
    guard:
      "still Idle for a start-up conflict (our database a primary) and another member, past its start-up, now runs as Master",
    to: "Idle",
    actions:
      "fence our database (standby settings naming that master; rebuild flag persisted); notify secondMasterFenced",
    reason: "the conflict was settled for another master: our primary must not stay writable beside it",
    // A rival still promoting may give up (then the coordinator vouches for one of the primaries):
    // the conflict waits that out; once a master runs, our primary beside it is fenced.
    when: (c) => c.s.idleForConflict && c.quorate() && runningOtherMaster(c, false) !== null,
    run: (c) => fenceBesideMaster(c, runningOtherMaster(c, false)!),
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
    id: "checkDb.shared",
    from: ["*"],
    on: "message:checkDb",
    guard:
      "asked as a master, and a check of that database as a master already runs here (begun at the master's suspicion) or found it down as recently as a new check could",
    to: "unchanged",
    actions: "answer with that check (when it answers, or now); a standby pings the ping server and the VIP",
    reason:
      "the coordinator asked us to try the master database, which we already try (or just found down): that answer is this one's",
    // Invariant: the confirmation (8.3) still gets every agent's own direct attempt on the master
    // database, begun no earlier than the master's suspicion (or as fresh as a new attempt);
    // only the wait for a second attempt of a silent host is saved.
    when: (c, e) =>
      e.message.asMaster === true &&
      (c.runningMasterCheck(e.message.target) !== null || c.freshMasterAnswer(e.message.target) !== null),
    run: (c, e) => {
      c.checkDbFor(e.from, e.message.token, e.message.target, true);
      // A standby may be promoted if the master's database is confirmed down (Ctx.startEarlyPing),
      // and 8.3 has the agents ping the lost master's VIP: a new probe unless one runs or a free
      // answer is still fresh (the one from the quiet may have aged out: a short ping command).
      if (c.s.role === "Standby") {
        c.startEarlyPing();
        c.startVipProbe();
      }
    },
  }),
  row({
    id: "checkDb.request",
    from: ["*"],
    on: "message:checkDb",
    guard: "otherwise",
    to: "unchanged",
    actions:
      "checkRemoteDb(target); a standby asked about a master's database pings the ping server (and, after the master's loss, the VIP)",
    reason: "the coordinator asked us to try a database directly",
    run: (c, e) => {
      c.startRemoteCheck(e.message.target, e.message.asMaster === true, [
        { to: e.from, token: e.message.token },
      ]);
      // Asked about the master's database (as a master after its loss, or because its own agent
      // reported it failed), a standby may be promoted next (Ctx.startEarlyPing).
      if (c.s.role === "Standby" && (e.message.asMaster === true || c.roleOf(e.message.target) === "Master"))
        c.startEarlyPing();
      // After the master's loss (8.3: the agents ping its VIP), not after its database failed
      // (8.1: its agent still holds the VIP until the confirmation ends).
      if (c.s.role === "Standby" && e.message.asMaster === true) c.startVipProbe();
    },
  }),
  row({
    id: "checkDb.answer",
    from: ["*"],
    on: "remoteDbChecked",
    guard: "result of a direct check asked for (or begun at the master's suspicion)",
    to: "unchanged",
    actions: "answer whoever asked; keep an as-master answer with when it was asked and came",
    reason: "report whether we reached the database",
    when: (c, e) => c.s.remoteChecks[e.token] !== undefined,
    run: (c, e) => {
      const req = c.s.remoteChecks[e.token]!;
      const { [e.token]: _done, ...rest } = c.s.remoteChecks;
      c.s.remoteChecks = rest;
      // Kept for a candidacy or a confirmation that may follow (Ctx.freshMasterAnswer): our own
      // word on whether that database still serves as a master, and how fresh it is.
      // A check begun in an earlier silence that answers late does not replace a newer one's answer.
      if (
        req.asMaster &&
        req.askedAt >= (c.s.masterDbAnswers[req.target]?.askedAt ?? Number.NEGATIVE_INFINITY)
      )
        c.s.masterDbAnswers = {
          ...c.s.masterDbAnswers,
          [req.target]: { result: e.result, askedAt: req.askedAt, answeredAt: c.now },
        };
      for (const reply of req.replies) c.answerCheck(reply, e.result);
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
    id: "fenced.dbFailure.unconfirmed",
    from: ["*"],
    on: "message:fenced",
    guard: "coordinator waiting for the failed master to fence; its fence was not confirmed",
    to: "unchanged",
    actions: "notify unexpectedError; wait L + margin (the old master's watchdog) before promoting",
    reason:
      "the failed master could not confirm its database stopped: it may resume writable, so wait out its lease before failing over",
    // Invariant: never two databases that accept writes. A hung server that a fence could not
    // confirm stopped may resume as a primary whatever a candidate's check sees now (it does not
    // answer while hung). The old master's watchdog is left armed and unfed after a failed fence
    // (apps/agent/src/watchdog), so its host is reset at the latest L + margin after it stepped
    // down, which came before this report: promote only after now + L + margin, and then only
    // with the 8.3 checks (the candidate checks the old master's database). A confirmed fence
    // arriving meanwhile ends the wait.
    when: (c, e) =>
      c.investigation(e.message.token)?.awaitingFence === true &&
      c.isCoordinator() &&
      e.message.unconfirmed === true,
    run: (c, e) => {
      const inv = c.investigation(e.message.token)!;
      if (inv.fenceWaitUntil !== undefined) return;
      unconfirmedFenceNotice(c, inv.target);
      const until = c.now + c.s.config.leaseMs + c.s.config.takeoverMarginMs;
      c.putInvestigation({ ...inv, fenceWaitUntil: until });
      c.timer(`fenceWait:${inv.token}`, until);
    },
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
    id: "fenceWait.over",
    from: ["*"],
    on: "timer:fenceWait",
    guard: "coordinator still waiting on an unconfirmed fence, and L + margin has passed",
    to: "unchanged",
    actions: "request a promotion (the candidate runs the 8.3 checks)",
    reason:
      "the old master's lease has run out since it reported an unconfirmed fence: fail over, checking its database first (8.3)",
    when: (c, e) => {
      const inv = c.investigation(e.name.slice("fenceWait:".length));
      return inv?.awaitingFence === true && inv.fenceWaitUntil !== undefined && c.isCoordinator();
    },
    run: (c, e) => {
      const inv = c.investigation(e.name.slice("fenceWait:".length))!;
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
    id: "fenceWait.stale",
    from: ["*"],
    on: "timer:fenceWait",
    guard: "otherwise",
    to: "unchanged",
    actions: "none",
    reason: "no longer waiting on that fence (confirmed, or the master left and agent loss took over)",
    run: () => {},
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
      const p = c.s.promotion!;
      if (e.message.unconfirmed === true) {
        // Invariant: never two databases that accept writes. The master stepped down but could not
        // confirm its database stopped: hung, it answers no check now and may resume as a primary
        // beside the standby we promote. As for an unconfirmed fence after a failure (8.1), nobody
        // is chosen before its watchdog, left armed and unfed, has reset its host (L + margin from
        // now, later than its step-down); then the candidate still checks its database (8.3).
        if (p.fenceWaitUntil !== undefined) return;
        unconfirmedFenceNotice(c, e.from);
        const until = c.now + c.s.config.leaseMs + c.s.config.takeoverMarginMs;
        c.setPromotion({ ...p, masterUnconfirmed: true, fenceWaitUntil: until });
        c.timer(`switchoverFenceWait:${p.token}`, until);
        // The promotion's own bound starts again after the wait.
        c.timer(`promotion:${p.token}`, until + c.s.config.promotionTimeoutMs);
        return;
      }
      // A confirmed fence (the retried stop worked) ends any wait; the candidate still checks the
      // old master's database if an unconfirmed report came first.
      afterSwitchover(c);
    },
  }),
  row({
    id: "switchoverFenceWait.over",
    from: ["*"],
    on: "timer:switchoverFenceWait",
    guard: "manual promotion still waiting on the old master's unconfirmed fence; L + margin passed",
    to: "unchanged",
    actions: "query the standbys' positions again (the candidate runs the 8.3 checks)",
    reason:
      "the old master's watchdog has reset its host since it reported an unconfirmed fence: pick the candidate, checking the old master's database first (8.3)",
    when: (c, e) => {
      const p = c.s.promotion;
      return (
        p !== null &&
        p.stage === "switchover" &&
        e.name === `switchoverFenceWait:${p.token}` &&
        p.fenceWaitUntil !== undefined
      );
    },
    run: (c) => afterSwitchover(c),
  }),
  row({
    id: "switchoverFenceWait.stale",
    from: ["*"],
    on: "timer:switchoverFenceWait",
    guard: "otherwise",
    to: "unchanged",
    actions: "none",
    reason: "no longer waiting on that fence (confirmed meanwhile, or the promotion ended)",
    run: () => {},
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
];
