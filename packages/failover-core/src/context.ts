import type { NotificationId, NotificationParams } from "@efm/notifier";
import { compareLsn, pastFork } from "./lsn.ts";
import { syncFields } from "./sync.ts";
import type {
  AgentRole,
  Candidacy,
  CandidateCheck,
  Command,
  DbAnswer,
  PingAnswer,
  FailoverAction,
  FailoverEvent,
  FailoverState,
  Investigation,
  NotifyAction,
  PeerMessage,
  Phase,
  Promotion,
  Reachability,
  SelfFence,
  TimelineFork,
  Transition,
  ViewInfo,
} from "./types.ts";

/** Events the engine raises for itself so that each conclusion is a row of the table too. */
export type InternalEvent =
  | { readonly type: "investigationDone"; readonly now: number; readonly token: string }
  | {
      readonly type: "promotionRequested";
      readonly now: number;
      readonly manual: boolean;
      readonly force: boolean;
      readonly oldMaster: string | null;
      readonly request: { readonly requestId: string; readonly origin: string } | null;
      /** The old master is known to have fenced itself: skip the master-database check. */
      readonly masterFenced?: boolean;
      /** No master is known: every member database is asked pg_is_in_recovery() first. */
      readonly probe?: boolean;
      /** `efm promote -switchover` (manual only), with the target asked for. */
      readonly switchover?: { readonly to: string | null };
    }
  | { readonly type: "lsnsCollected"; readonly now: number }
  /** Every member database answered the pre-promotion probe: none runs as a master. */
  | { readonly type: "probesDone"; readonly now: number }
  /** The promotion's current candidate passed its pre-promotion check. */
  | { readonly type: "candidateVerified"; readonly now: number }
  /** Every candidate of the promotion failed its check or its promotion. */
  | { readonly type: "candidatesExhausted"; readonly now: number }
  | {
      readonly type: "clusterCommand";
      readonly now: number;
      readonly requestId: string;
      readonly origin: string;
      readonly command: Command;
    }
  | { readonly type: "reviewSize"; readonly now: number }
  | { readonly type: "reviewStandbys"; readonly now: number }
  | { readonly type: "selfFenced"; readonly now: number; readonly fence: SelfFence }
  /** A fenced old master with auto.rejoin has a running master to rejoin (see rejoin.ts). */
  | { readonly type: "rejoinDue"; readonly now: number };

/** Any event a row can handle. */
export type AnyEvent = FailoverEvent | InternalEvent;

type Draft<T> = { -readonly [K in keyof T]: T[K] };

/** The newest timeline any candidate (or the master) reported; null when none could tell. */
function currentTimeline(
  lsns: Readonly<Record<string, string | null>>,
  timelines: Readonly<Record<string, number | null>>,
  masterTimeline: number | null,
): number | null {
  let current = masterTimeline;
  for (const [a, lsn] of Object.entries(lsns)) {
    const t = timelines[a];
    if (lsn !== null && typeof t === "number" && (current === null || t > current)) current = t;
  }
  return current;
}

/** A known timeline older than the current one. */
function behindTimeline(t: number | null | undefined, current: number | null): boolean {
  return typeof t === "number" && current !== null && t < current;
}

/**
 * Is our database the cluster's master database, possibly accepting writes? The Master's is; so
 * is an Idle agent's that left the Master role without fencing (it could not reach its database
 * but others could, 8.1) while no other master is known. The others still take it for the master
 * and take over once its lease is out, so it must fence when the lease or the majority goes, as a
 * Master does: otherwise the database that kept running beside the new master takes writes too.
 * For the same reason the agent keeps its watchdog armed and fed under the lease while this holds.
 */
export function holdsMasterDb(s: Readonly<FailoverState>): boolean {
  if (s.role === "Master") return true;
  return (
    s.role === "Idle" &&
    !s.config.isWitness &&
    s.phase === "running" &&
    s.knownMaster?.address === s.config.self &&
    !s.fencedForIsolation &&
    s.selfFence === null &&
    s.rejoin === null &&
    !s.idleForConflict
  );
}

/** Mutable working copy of one step; the caller's state is never touched. */
export class Ctx {
  readonly s: Draft<FailoverState>;
  readonly actions: FailoverAction[] = [];
  readonly transitions: Transition[] = [];
  readonly queue: AnyEvent[] = [];
  now: number;

  constructor(state: FailoverState, now: number) {
    this.s = { ...state };
    this.now = now;
  }

  get self(): string {
    return this.s.config.self;
  }

  /** A token unique to this agent, to match results to requests. */
  token(prefix: string): string {
    this.s.seq += 1;
    return `${prefix}:${this.self}:${this.s.seq}`;
  }

  act(action: FailoverAction): void {
    this.actions.push(action);
  }

  /** Sends to a peer; a message to ourselves is handled in this same step. */
  send(to: string, message: PeerMessage): void {
    if (to === this.self) this.queue.push({ type: "messageReceived", now: this.now, from: to, message });
    else this.actions.push({ type: "send", to, message });
  }

  broadcast(message: PeerMessage): void {
    if (this.others().length > 0) this.actions.push({ type: "broadcast", message });
  }

  raise(event: InternalEvent): void {
    this.queue.push(event);
  }

  notify<Id extends NotificationId>(id: Id, params: NotificationParams<Id>): void {
    this.actions.push({ type: "notify", id, params } as NotifyAction);
  }

  timer(name: string, at: number): void {
    this.actions.push({ type: "setTimer", name, at });
  }

  setRole(role: AgentRole): void {
    this.s.role = role;
    if (role === "Master") this.s.fencedForIsolation = false;
    if (role !== "Idle") this.s.idleForConflict = false;
    if (role === "Master") this.s.knownMaster = { address: this.self, lastHeardAt: this.now };
    // A master's timeline is the current one by definition: nothing to rewind any more.
    if (role === "Master") this.s.rebuildNeeded = false;
    this.broadcast(this.status());
  }

  /**
   * Hands the caller what must survive a restart whenever it changed in this step: the last
   * master (live knowledge wins over the record), the promotion epoch and the rebuild flag.
   */
  keepRecord(before: FailoverState): void {
    const live = this.s.knownMaster?.address ?? null;
    if (live !== null) this.s.recordedMaster = live;
    if (
      this.s.recordedMaster !== before.recordedMaster ||
      this.s.epoch !== before.epoch ||
      this.s.rebuildNeeded !== before.rebuildNeeded ||
      this.s.newestFork !== before.newestFork ||
      this.s.sync.published !== before.sync.published
    ) {
      this.act({
        type: "persist",
        state: {
          lastMaster: this.s.recordedMaster,
          epoch: this.s.epoch,
          rebuildNeeded: this.s.rebuildNeeded,
          // Only once a set was published (synchronous.mode): older records stay as they were.
          ...(this.s.sync.published !== null ? { syncStandbys: this.s.sync.published } : {}),
          ...(this.s.newestFork !== null ? { newestFork: this.s.newestFork } : {}),
        },
      });
    }
  }

  /** Our status announcement: role, database, and the master we know of. */
  status(ask = false): PeerMessage {
    // A coordinator that knows no master itself (it restarted) names the one its running peers
    // report, so an agent Idle over a start-up conflict can be vouched for.
    const heard =
      this.s.view?.coordinator === this.self
        ? (this.others()
            .map((a) => this.s.peers[a])
            .find((p) => p && !p.starting && typeof p.master === "string" && p.master !== this.self)
            ?.master ?? null)
        : null;
    const known = this.s.knownMaster?.address ?? heard;
    // A fenced old master must not keep advertising itself.
    // A coordinator names no master while its promotion runs: an agent Idle over a start-up
    // conflict takes the master role on the coordinator's word.
    const master =
      (known === this.self && this.s.role !== "Master") || this.s.promotion !== null ? null : known;
    const starting = this.s.phase !== "running";
    return {
      type: "status",
      role: this.s.role ?? "Idle",
      db: this.s.db,
      master,
      ...(ask ? { ask } : {}),
      ...(starting ? { starting } : {}),
      ...(this.s.idleForConflict && this.s.role === "Idle" ? { conflict: true } : {}),
      // synchronous.mode: the newest synchronous set we know travels with every status (sync.ts).
      ...syncFields(this.s),
    };
  }

  setPhase(phase: Phase): void {
    this.s.phase = phase;
  }

  cluster(): { clusterName: string } {
    return { clusterName: this.s.config.clusterName };
  }

  node(address?: string): { nodeAddress: string; clusterName: string } {
    return { nodeAddress: address ?? this.self, clusterName: this.s.config.clusterName };
  }

  members(): string[] {
    return this.s.view ? this.s.view.members.map((m) => m.address) : [this.self];
  }

  others(): string[] {
    return this.members().filter((a) => a !== this.self);
  }

  roleOf(address: string): AgentRole | null {
    if (address === this.self) return this.s.role;
    return this.s.peers[address]?.role ?? null;
  }

  membersWithRole(...roles: AgentRole[]): string[] {
    return this.members().filter((a) => {
      const r = this.roleOf(a);
      return r !== null && roles.includes(r);
    });
  }

  quorate(): boolean {
    return this.s.view?.quorate === true;
  }

  /**
   * Coordinator of a majority view that a majority still hears (lease): a view can be stale for up
   * to the detection time, the lease cannot, so a cut-off coordinator stops deciding within L.
   */
  isCoordinator(): boolean {
    return (
      this.s.phase === "running" &&
      this.quorate() &&
      this.s.view?.coordinator === this.self &&
      this.leaseValid()
    );
  }

  /** A majority of the voters acknowledged us less than L ago (as membership reports it). */
  leaseValid(): boolean {
    return this.s.leaseUntil !== null && this.now < this.s.leaseUntil;
  }

  coordinator(): string | null {
    return this.s.view?.quorate ? this.s.view.coordinator : null;
  }

  /** Could the members we cannot see form a quorum without us? If not, nobody can promote: keep serving. */
  othersCouldFormQuorum(view: ViewInfo | null = this.s.view): boolean {
    if (!view) return true;
    const seen = new Set(view.members.map((m) => m.address));
    const unseen = view.voters.filter((v) => !seen.has(v)).length;
    return unseen > view.voters.length / 2;
  }

  /** With the lease lost we do not know whom we hear: fence whenever a quorum without us is possible at all. */
  quorumWithoutSelfPossible(): boolean {
    const voters = this.s.view?.voters.length ?? 0;
    return voters - 1 > voters / 2;
  }

  reply(origin: string, requestId: string, ok: boolean, message: string): void {
    if (origin === this.self) this.act({ type: "respond", requestId, ok, message });
    else this.send(origin, { type: "commandReply", requestId, ok, message });
  }

  // ---- investigations (coordinator) ----

  investigation(token: string): Investigation | undefined {
    return this.s.investigations.find((i) => i.token === token);
  }

  putInvestigation(inv: Investigation): void {
    this.s.investigations = [...this.s.investigations.filter((i) => i.token !== inv.token), inv];
  }

  dropInvestigation(token: string): void {
    this.s.investigations = this.s.investigations.filter((i) => i.token !== token);
  }

  /** Asks every member but the target (ourselves included) to try the target's database directly. */
  startInvestigation(
    kind: Investigation["kind"],
    target: string,
    targetRole: AgentRole,
    notBefore: number,
  ): void {
    const token = this.token("inv");
    const askers = this.members().filter((a) => a !== target && this.roleOf(a) !== null);
    const deadline =
      Math.max(this.now, notBefore) + this.s.config.remoteTimeoutMs + this.s.config.messageSlackMs;
    this.putInvestigation({
      token,
      kind,
      target,
      targetRole,
      awaiting: askers,
      results: {},
      notBefore,
      deadline,
    });
    // Is the old master still serving as a master? A database that came back in recovery is not.
    const asMaster = kind === "masterLost";
    for (const a of askers) {
      if (a === this.self) this.checkDbFor(this.self, token, target, asMaster);
      else this.send(a, { type: "checkDb", token, target, asMaster });
    }
    this.timer(`investigation:${token}`, deadline);
    if (notBefore > this.now) this.timer(`notBefore:${token}`, notBefore);
    this.maybeConclude(token);
  }

  /**
   * A check of `target`'s database as a master that this agent already runs (begun at the
   * master's suspicion, or for an earlier request): its local token, or null.
   */
  /** Our newest running check of `target`'s database as a master (an older one may still run). */
  runningMasterCheck(target: string): string | null {
    let newest: string | null = null;
    for (const [t, r] of Object.entries(this.s.remoteChecks)) {
      if (!r.asMaster || r.target !== target) continue;
      if (newest === null || r.askedAt >= this.s.remoteChecks[newest]!.askedAt) newest = t;
    }
    return newest;
  }

  /**
   * Tries `target`'s database directly and answers `to` (ourselves or the coordinator) under
   * `token`. Asked as a master (is the old master still serving?), a check of it already running
   * here answers this request too, and our own answer that it is down counts when it is as fresh
   * as a new check could be (freshMasterAnswer): a check begun at the master's suspicion makes the
   * confirmation after its removal wait no second remote.timeout. Otherwise a new check.
   */
  checkDbFor(to: string, token: string, target: string, asMaster: boolean): void {
    const reply = { to, token };
    if (asMaster) {
      const running = this.runningMasterCheck(target);
      if (running !== null) {
        const r = this.s.remoteChecks[running]!;
        this.s.remoteChecks = { ...this.s.remoteChecks, [running]: { ...r, replies: [...r.replies, reply] } };
        return;
      }
      if (this.freshMasterAnswer(target) !== null) {
        this.answerCheck(reply, "unreachable");
        return;
      }
    }
    this.startRemoteCheck(target, asMaster, [reply]);
  }

  /** Starts one direct check of `target`'s database, answered to `replies` (checkDb.answer). */
  startRemoteCheck(target: string, asMaster: boolean, replies: { to: string; token: string }[]): void {
    const t = this.token("chk");
    this.s.remoteChecks = { ...this.s.remoteChecks, [t]: { replies, target, asMaster, askedAt: this.now } };
    this.act({ type: "checkRemoteDb", token: t, target, timeoutMs: this.s.config.remoteTimeoutMs, asMaster });
  }

  /** Hands a check's result to whoever asked: our own investigation, or the coordinator's. */
  answerCheck(reply: { readonly to: string; readonly token: string }, result: Reachability): void {
    if (reply.to === this.self) this.recordCheck(reply.token, this.self, result);
    else this.send(reply.to, { type: "checkDbReply", token: reply.token, result });
  }

  recordCheck(token: string, from: string, result: Investigation["results"][string]): void {
    const inv = this.investigation(token);
    if (!inv?.awaiting.includes(from)) return;
    this.putInvestigation({
      ...inv,
      awaiting: inv.awaiting.filter((a) => a !== from),
      results: { ...inv.results, [from]: result },
    });
    this.maybeConclude(token);
  }

  maybeConclude(token: string, timedOut = false): void {
    const inv = this.investigation(token);
    if (!inv || inv.awaitingFence) return;
    if (this.now < inv.notBefore) return;
    if (inv.awaiting.length > 0 && !timedOut) return;
    this.raise({ type: "investigationDone", now: this.now, token });
  }

  // ---- promotion (coordinator) ----

  /**
   * Orders candidates by (timeline, WAL position), ties by the standby priority list, then address.
   * A candidate whose known timeline is older than the current one (the newest any candidate or
   * the master reported) is left out: its WAL past the fork is history the cluster discarded, and
   * promoting it would throw away everything written on the newer timeline. A candidate that cannot
   * tell its timeline (no WAL receiver running) is taken to be on the current one. So is one that
   * went past the newest promotion's fork (newestFork), even once no database on the newer timeline
   * is left to report it: only a rewind or a re-clone makes it a candidate again.
   */
  rankCandidates(
    lsns: Readonly<Record<string, string | null>>,
    timelines: Readonly<Record<string, number | null>> = {},
    masterTimeline: number | null = null,
  ): string[] {
    const current = currentTimeline(lsns, timelines, masterTimeline);
    const prio = (a: string) => {
      const i = this.s.priority.indexOf(a);
      return i < 0 ? Number.MAX_SAFE_INTEGER : i;
    };
    const tl = (a: string) => timelines[a] ?? current ?? 0;
    return Object.entries(lsns)
      .filter(
        (e): e is [string, string] =>
          e[1] !== null &&
          !behindTimeline(timelines[e[0]], current) &&
          !pastFork(this.s.newestFork, timelines[e[0]], e[1]),
      )
      .sort(
        ([a, la], [b, lb]) =>
          tl(b) - tl(a) || compareLsn(lb, la) || prio(a) - prio(b) || (a < b ? -1 : a > b ? 1 : 0),
      )
      .map(([a]) => a);
  }

  /** Why each standby with a position is no candidate for its timeline (for the operator's report). */
  offTimeline(p: Promotion): Record<string, string> {
    const current = currentTimeline(p.lsns, p.timelines, p.masterTimeline);
    const out: Record<string, string> = {};
    for (const [a, lsn] of Object.entries(p.lsns)) {
      const t = p.timelines[a];
      if (lsn !== null && behindTimeline(t, current))
        out[a] = `on timeline ${t}, behind the current timeline ${current}: rewind or re-clone it`;
      else if (lsn !== null && pastFork(this.s.newestFork, t, lsn)) out[a] = this.pastForkReason(t!, lsn);
    }
    return out;
  }

  /** Why a standby past the newest promotion's fork is no candidate (offTimeline). */
  pastForkReason(t: number, lsn: string): string {
    const f = this.s.newestFork!;
    const at = f.lsn === null ? "" : ` at ${f.lsn}`;
    return `at ${lsn} on timeline ${t}, past the fork of a newer timeline off timeline ${f.parent}${at}: promoting it would discard the newer timeline's writes; rewind (pg_rewind) or re-clone it`;
  }

  /**
   * Learns of a promotion's fork (TimelineFork) and keeps the newest: a fork off a newer parent
   * replaces ours; off the same parent, a known position replaces an unknown one (that only said a
   * newer timeline exists) and of two known ones the earlier is kept (a standby past either fork
   * is not on both histories). Persisted by keepRecord.
   */
  learnFork(fork: TimelineFork): void {
    const cur = this.s.newestFork;
    if (cur === null || fork.parent > cur.parent) {
      this.s.newestFork = fork;
      return;
    }
    if (fork.parent < cur.parent || fork.lsn === null) return;
    if (cur.lsn === null || compareLsn(fork.lsn, cur.lsn) < 0) this.s.newestFork = fork;
  }

  /**
   * A database reported a position on timeline `t`: every timeline before it was forked off, at a
   * position we may not know (a promotion we did not see, from before a restart or while cut off).
   */
  learnTimeline(t: number | null | undefined): void {
    if (typeof t !== "number" || t < 2) return;
    const cur = this.s.newestFork;
    if (cur === null || t - 1 > cur.parent) this.s.newestFork = { parent: t - 1, lsn: null };
  }

  setPromotion(p: Promotion | null): void {
    this.s.promotion = p;
  }

  // ---- candidacy (the standby being promoted) ----

  /** Moves the pipeline to the next configured step, skipping those not configured. */
  advanceCandidacy(after: Candidacy["stage"] | "start"): void {
    const c = this.s.candidacy;
    if (!c) return;
    const checks: readonly CandidateCheck[] = ["vip", "pingServer", "master"];
    if (after === "start") {
      // The checks before fencing only read (a ping, a ping, a connection attempt): nothing
      // orders them but the text, so they run side by side and the candidate waits for the
      // slowest instead of the sum. Fencing still waits for every one; the first that fails
      // ends the candidacy, so the answers still out can no longer change the decision.
      // Our own check of the old master's database from the confirmation that started this
      // promotion may stand in for this one (freshMasterAnswer): alone, at once; beside slower
      // checks, if it is still that fresh when they are in (below). The check still runs beside
      // them, so an answer gone stale costs no wait after theirs.
      const prior = this.candidacyAction(c, "master") !== null ? this.freshMasterAnswer(c.oldMaster!) : null;
      // The VIP likewise: our probe begun with the pre-promotion check, when it found the VIP
      // free as recently as a new ping could, is this check's answer; still running, it is
      // waited for instead of a second ping that would wait out the whole bound again.
      const probe = this.candidacyAction(c, "vip") !== null ? this.vipProbeStanding() : null;
      // The ping of the ping server begun with our pre-promotion check answers for this one: its
      // answer that the server is reachable, while as fresh as a new ping could be
      // (freshPingAnswer), counts as given; a ping of it still running is waited for instead of
      // starting a second process. Anything else (no early ping, a stale answer, or one that
      // found the server unreachable) pings again now, as the guide's candidate does.
      const pingRuns = this.candidacyAction(c, "pingServer") !== null;
      const pingDone = pingRuns && this.freshPingAnswer() !== null;
      const pingJoined = pingRuns && !pingDone && this.s.earlyPing !== null ? this.s.earlyPing.token : null;
      const run = checks.filter(
        (s) =>
          this.candidacyAction(c, s) !== null &&
          !(s === "vip" && probe === "free") &&
          !(s === "pingServer" && pingDone),
      );
      if (run.length > 0 && !(prior && run.length === 1 && run[0] === "master")) {
        const fromProbe = probe === "running" && run.includes("vip");
        this.s.candidacy = {
          ...c,
          stage: run[0]!,
          pendingChecks: run,
          checksAskedAt: this.now,
          ...(prior ? { priorMaster: { askedAt: prior.askedAt, answeredAt: prior.answeredAt } } : {}),
          ...(fromProbe ? { vipFromProbe: true } : {}),
          ...(pingJoined !== null ? { pingToken: pingJoined } : {}),
        };
        for (const s of run) {
          if (s === "vip" && fromProbe) continue;
          if (s === "pingServer" && pingJoined !== null) continue;
          this.act(this.candidacyAction(c, s)!);
        }
        return;
      }
      after = "master";
    } else if ((checks as readonly string[]).includes(after)) {
      const pending = c.pendingChecks ?? [];
      // An answer to a check nobody waits for (never asked, or already answered) moves nothing.
      if (!pending.includes(after as CandidateCheck)) return;
      let rest = pending.filter((s) => s !== after);
      let masterAt = after === "master" && rest.length > 0 ? this.now : c.masterAnsweredAt;
      let asked = c.checksAskedAt ?? this.now;
      const prior = c.priorMaster;
      if (rest.length === 1 && rest[0] === "master" && prior && this.asFreshAsNew(prior)) {
        // Only the master database's check is still out, and our own answer from the
        // confirmation is still as fresh as it could make it: that answer is this check's (its
        // late answer moves nothing, cand.masterDown).
        rest = [];
        masterAt = prior.answeredAt;
        asked = prior.askedAt;
      }
      if (rest.length > 0) {
        this.s.candidacy = {
          ...c,
          stage: rest[0]!,
          pendingChecks: rest,
          ...(masterAt !== undefined ? { masterAnsweredAt: masterAt } : {}),
        };
        return;
      }
      if (after !== "master" && masterAt !== undefined && this.now - masterAt > masterAt - asked) {
        // The old master's database was found down well before the slower checks answered:
        // longer ago than the check itself took, so a database that came back since would go
        // unseen. Read it again, so that, as in the guide's order, it is the last thing read
        // before fencing. An answer that came about when the others did (a silent host answers
        // at the bound, as a bounded ping does) is as fresh as the check can make it.
        const { masterAnsweredAt: _, priorMaster: _prior, ...rereading } = c;
        this.s.candidacy = {
          ...rereading,
          stage: "master",
          pendingChecks: ["master"],
          checksAskedAt: this.now,
        };
        this.act(this.candidacyAction(c, "master")!);
        return;
      }
      after = "master";
    }
    const order: Candidacy["stage"][] = [
      "vip",
      "pingServer",
      "master",
      "fence",
      "lease",
      "promote",
      "assignVip",
      "postPromotion",
    ];
    const start = order.indexOf(after) + 1;
    for (let i = start; i < order.length; i++) {
      const stage = order[i]!;
      const action = this.candidacyAction(c, stage);
      if (action && stage === "promote" && !this.leaseValid()) {
        // The irreversible step needs a majority that still hears us. A lease that lapsed for a
        // moment (a late heartbeat on a starved machine) is renewed by the next acknowledged
        // one: wait for it (lease.valid.candidate promotes only with the lease valid again, in
        // the same view), bounded by one lease length and the message slack
        // (timer:candidateLease aborts), instead of a new round from the coordinator.
        this.s.candidacy = { ...c, stage: "lease", pendingChecks: [] };
        this.timer(
          `candidateLease:${c.token}`,
          this.now + this.s.config.leaseMs + this.s.config.messageSlackMs,
        );
        return;
      }
      if (action) {
        this.s.candidacy = { ...c, stage, pendingChecks: [] };
        this.act(action);
        return;
      }
    }
    this.finishCandidacy();
  }

  /**
   * Our own latest check of `target`'s database as a master, if it found it unreachable and is as
   * fresh as a new check could be: it answered less long ago than it took (a silent host answers
   * at remote.timeout, so within remote.timeout; a refused connection answers at once, so almost
   * never). Invariant: the candidate fences and promotes only after a check of the old master's
   * database that found it down and is no older than the one it would otherwise wait for, the
   * rule that already lets an answer that came in before the slower VIP and ping checks stand.
   */
  freshMasterAnswer(target: string): DbAnswer | null {
    const a = this.s.masterDbAnswers[target];
    if (!a || a.result !== "unreachable") return null;
    return this.asFreshAsNew(a) ? a : null;
  }

  /**
   * The freshness rule of every answer a candidacy may reuse (the old master's database, the
   * ping server, the VIP): it came in less long ago than it took, so a new check asked now could
   * not answer about a later moment.
   */
  private asFreshAsNew(a: { readonly askedAt: number; readonly answeredAt: number }): boolean {
    return this.now - a.answeredAt <= a.answeredAt - a.askedAt;
  }

  /**
   * Starts a ping of the virtual IP (State.vipProbes) unless one is still out or one found it
   * free as recently as a new ping could (vipProbeStanding): if we are chosen
   * as the candidate, its VIP check (guide 8.1, 8.3: no agent may reach the VIP before a standby
   * is promoted) has its answer sooner. A free VIP answers nothing, so a ping lasts its whole
   * bound (remote.timeout): begun when the master goes quiet, or with the positions round, that
   * bound runs beside detection and ranking instead of after them.
   */
  startVipProbe(): void {
    const vip = this.s.config.virtualIp;
    // One still out, or a free answer as fresh as a new ping could give: nothing to gain.
    if (!vip || this.vipProbeStanding() !== null) return;
    const token = this.token("vipProbe");
    this.s.vipProbes = { ...this.s.vipProbes, running: { token, askedAt: this.now } };
    this.act({ type: "pingVip", token, vip });
  }

  /** Our probe still out, unless it is past its bound (remote.timeout and the slack): then lost. */
  private vipProbeRunning(): boolean {
    const r = this.s.vipProbes.running;
    return r !== null && this.now - r.askedAt <= this.s.config.remoteTimeoutMs + this.s.config.messageSlackMs;
  }

  /**
   * What our probes can stand for in a candidacy's VIP check: "free" (one found nobody on the
   * VIP less long ago than it took, so as recently as a new ping could: the freshness rule of
   * freshMasterAnswer), "running" (wait for the one still out), or null (a ping of our own
   * decides). Only free answers are ever used: an answer from the VIP may predate the old
   * master's release (a manual promotion releases it after the check), so it proves nothing
   * now, and the candidate pings again.
   */
  vipProbeStanding(): "running" | "free" | null {
    const f = this.s.vipProbes.free;
    if (f !== null && this.asFreshAsNew(f)) return "free";
    return this.vipProbeRunning() ? "running" : null;
  }

  /**
   * A promote of this standby may follow (the coordinator asked it to try the master's database,
   * or for its pre-promotion check): ping the ping server now, unless a ping begun so runs, so that
   * its answer is in (or on its way) when a candidacy's checks start (advanceCandidacy). It only
   * reads; an answer that is not fresh by then is not used (freshPingAnswer).
   */
  startEarlyPing(): void {
    const server = this.s.config.pingServer;
    if (!server || this.s.earlyPing !== null) return;
    const token = this.token("ping");
    this.s.earlyPing = { token, askedAt: this.now };
    this.act({ type: "pingServer", token, server });
  }

  /**
   * The early ping's answer (EngineState.pingAnswer) if it found the ping server reachable and is
   * as fresh as a new ping could be: it answered less long ago than it took, the rule
   * freshMasterAnswer applies to the old master's database. A ping's time is mostly the start of
   * pingServerCommand's process (its reply comes in under a millisecond), so on a loaded host an
   * answer from the position round is still fresh when the promote arrives, and on an idle one a
   * new ping costs little. Invariant: the candidate fences and promotes only after a ping that
   * reached the server and is no older than the one the candidacy would otherwise start.
   */
  freshPingAnswer(): PingAnswer | null {
    const a = this.s.pingAnswer;
    if (!a?.reachable) return null;
    return this.asFreshAsNew(a) ? a : null;
  }

  /** The action of one pipeline stage, or null when that stage is not configured. */
  private candidacyAction(c: Candidacy, stage: Candidacy["stage"]): FailoverAction | null {
    const cfg = this.s.config;
    const token = c.token;
    switch (stage) {
      case "vip":
        return cfg.virtualIp ? { type: "pingVip", token, vip: cfg.virtualIp } : null;
      case "pingServer":
        return cfg.pingServer ? { type: "pingServer", token, server: cfg.pingServer } : null;
      case "master":
        return c.checkMaster && c.oldMaster && !c.restore
          ? {
              type: "checkRemoteDb",
              token,
              target: c.oldMaster,
              timeoutMs: cfg.remoteTimeoutMs,
              asMaster: true,
            }
          : null;
      case "fence":
        // The old master taking its role back must not run the fencing script against itself.
        return cfg.scripts.fence && !c.restore
          ? { type: "runScript", token, script: "fence", path: cfg.scripts.fence }
          : null;
      case "promote":
        // Invariant 'diverged': the position the coordinator ranked may have grown since, from a
        // master the cluster gave up; the executor checks it against the fork right before promoting.
        return {
          type: "promoteDb",
          token,
          ...(this.s.newestFork && !c.restore ? { fork: this.s.newestFork } : {}),
        };
      case "lease":
      case "verifyPromote":
        return null;
      case "assignVip":
        return cfg.virtualIp ? { type: "assignVip", token, vip: cfg.virtualIp } : null;
      case "postPromotion":
        return cfg.scripts.postPromotion
          ? { type: "runScript", token, script: "postPromotion", path: cfg.scripts.postPromotion }
          : null;
    }
  }

  finishCandidacy(): void {
    const c = this.s.candidacy;
    if (!c) return;
    this.s.candidacy = null;
    // A new master: a new promotion epoch, persisted (step) and announced with the new master.
    this.s.epoch += 1;
    this.notify("failoverCompleted", this.cluster());
    // The timeline our promotion opened forks off where we were ranked, or later: everyone keeps it.
    const fork = !c.restore && c.position ? c.position : null;
    if (fork) this.learnFork(fork);
    this.broadcast({
      type: "newMaster",
      address: this.self,
      epoch: this.s.epoch,
      ...(fork ? { forkTimeline: fork.parent, forkLsn: fork.lsn } : {}),
    });
    this.send(c.coordinator, { type: "promotionResult", token: c.token, ok: true, reason: "promoted" });
  }

  /**
   * Gives up: back to Standby (or Idle) and tell the coordinator why. `next`: the failure is ours
   * alone (our database, our network), so the coordinator may try its next candidate.
   */
  abortCandidacy(reason: string, role?: AgentRole, next = false, retry = false): void {
    const c = this.s.candidacy;
    if (!c) return;
    this.s.candidacy = null;
    // The fenced old master that was to take its role back stays the fenced Idle agent it was.
    this.setRole(role ?? (c.restore ? "Idle" : "Standby"));
    this.send(c.coordinator, {
      type: "promotionResult",
      token: c.token,
      ok: false,
      reason,
      ...(next ? { next } : {}),
      ...(retry ? { retry } : {}),
    });
  }

  /**
   * The promotion's next candidate in rank order: verified ones go straight on, others are asked
   * to check they can be promoted first (before any master is asked to step down); none left
   * raises `candidatesExhausted`. `restoreOldMaster` asks the fenced old master instead.
   */
  nextCandidate(restoreOldMaster = false): void {
    const p = this.s.promotion;
    if (!p) return;
    const candidate = restoreOldMaster ? p.oldMaster : (p.ranked.find((a) => !(a in p.failures)) ?? null);
    if (candidate === null) {
      this.setPromotion({ ...p, candidate: null });
      this.raise({ type: "candidatesExhausted", now: this.now });
      return;
    }
    if (p.verified.includes(candidate)) {
      this.setPromotion({ ...p, candidate, restoring: restoreOldMaster });
      this.raise({ type: "candidateVerified", now: this.now });
      return;
    }
    // The check asked with these positions (askPromotable) counts as the check after ranking: a
    // failure is this candidate's failure (the next one is tried), an answer still out is waited
    // for instead of asked twice. The old master taking its role back is always asked here.
    const early = restoreOldMaster ? undefined : p.prechecks?.[candidate];
    const askedNow = early?.token === p.token;
    if (askedNow && early.error !== undefined) {
      this.setPromotion({ ...p, stage: "precheck", candidate, restoring: false });
      this.candidateFailed(`cannot be promoted: ${early.error}`);
      return;
    }
    this.setPromotion({ ...p, stage: "precheck", candidate, restoring: restoreOldMaster });
    if (!askedNow)
      this.send(candidate, {
        type: "checkPromotable",
        token: p.token,
        ...(restoreOldMaster ? { restore: true } : {}),
      });
    const cfg = this.s.config;
    this.timer(
      `promotion:${p.token}`,
      this.now + cfg.localTimeoutMs + cfg.remoteTimeoutMs + cfg.messageSlackMs,
    );
  }

  /**
   * Asks the standbys among `ask` for their pre-promotion check in the same round as their
   * positions (issue 15): the coordinator learns both in one round trip instead of checking the
   * best one only after ranking. Not the master, not a standby already verified or failed, not
   * one asked under this token already. The choice is untouched: nextCandidate still takes the
   * best-ranked standby and promotes it only once its check passed.
   */
  askPromotable(token: string, ask: readonly string[]): void {
    const p = this.s.promotion;
    if (p === null || p.token !== token || p.restoring) return;
    const targets = ask.filter(
      (a) =>
        this.roleOf(a) !== "Master" &&
        !p.verified.includes(a) &&
        !(a in p.failures) &&
        p.prechecks?.[a]?.token !== token,
    );
    if (targets.length === 0) return;
    const prechecks = { ...p.prechecks };
    for (const a of targets) {
      prechecks[a] = { token };
      this.send(a, { type: "checkPromotable", token });
    }
    this.setPromotion({ ...this.s.promotion!, prechecks });
  }

  /** Records why the current candidate cannot be promoted and moves on to the next one. */
  candidateFailed(reason: string): void {
    const p = this.s.promotion;
    if (!p?.candidate) return;
    this.setPromotion({ ...p, failures: { ...p.failures, [p.candidate]: reason } });
    if (p.restoring) {
      this.raise({ type: "candidatesExhausted", now: this.now });
      return;
    }
    // Invariant: the promoted standby holds the highest position among the standbys of the view
    // it is promoted in. A standby that joined after the positions were collected (an old master
    // whose host rebooted read-only, with WAL the others never received) was never ranked: ask
    // every standby again instead of going down a stale list. The failed candidates stay failed.
    const fresh = this.members().filter((a) => this.roleOf(a) === "Standby" && !(a in p.lsns));
    if (fresh.length > 0) {
      const token = this.token("promo");
      const ask = this.members().filter((a) => {
        const r = this.roleOf(a);
        return r === "Standby" || r === null;
      });
      // As after a switchover (afterSwitchover): a standby left out only for the timeline it
      // reported against the old positions is judged again on the new ones; a failed check or
      // promote still counts. Kept, that verdict passed over the best standby of the new round
      // (the newer-timeline standby behind it had failed and was no longer asked).
      const offTimeline = this.offTimeline(p);
      const failures = Object.fromEntries(
        Object.entries(this.s.promotion!.failures).filter(([a, why]) => offTimeline[a] !== why),
      );
      this.setPromotion({
        ...this.s.promotion!,
        failures,
        token,
        epoch: this.s.view?.epoch ?? p.epoch,
        stage: "queryLsn",
        awaiting: ask,
        lsns: {},
        timelines: {},
        candidate: null,
        ranked: [],
      });
      for (const a of ask) {
        if (a === this.self) {
          const t = this.token("lsn");
          this.s.lsnQueries = { ...this.s.lsnQueries, [t]: token };
          this.act({ type: "queryLsn", token: t });
        } else this.send(a, { type: "queryLsn", token });
      }
      this.askPromotable(token, ask);
      this.timer(
        `promotion:${token}`,
        this.now + this.s.config.remoteTimeoutMs + this.s.config.messageSlackMs,
      );
      return;
    }
    this.nextCandidate();
  }

  /** Tells every agent (ourselves too) what an operator must do now; null clears it. */
  setAttention(text: string | null): void {
    if (this.s.attention === text) return;
    this.s.attention = text;
    this.broadcast({ type: "notice", text });
  }

  // ---- fencing ourselves ----

  /**
   * Stops acting as master now: release the VIP and fence the database at the same time (writes
   * stop with the database, so the stop never waits for the VIP command), then, once both
   * results are in, run the script and report.
   */
  beginSelfFence(
    purpose: SelfFence["purpose"],
    replyTo: SelfFence["replyTo"],
    newMaster?: string,
    clean = false,
  ): void {
    const token = this.token("fence");
    this.s.role = "Idle";
    this.s.fencedForIsolation = true;
    // Whatever comes next, this database may hold WAL past the next promotion's fork: it is no
    // candidate until rewound or re-cloned (persisted, so a reboot does not forget it).
    this.s.rebuildNeeded = true;
    this.s.fenceUnconfirmed = false;
    this.broadcast(this.status());
    const vip = this.s.config.virtualIp;
    const extra = clean ? { clean: true } : {};
    this.s.selfFence = {
      token,
      purpose,
      stage: vip ? "both" : "fenceDb",
      replyTo,
      newMaster: newMaster ?? null,
      ...extra,
    };
    this.act({ type: "fenceDb", token, newMaster: newMaster ?? null, ...extra });
    if (vip) this.act({ type: "releaseVip", token, vip });
  }

  startLocalMonitoring(): void {
    if (this.s.config.isWitness) return;
    const at = this.now + this.s.config.localPeriodMs;
    this.s.localCheckAt = at;
    this.timer("localCheck", at);
  }

  /** Does this agent's role watch a local database (guide 8.1 / 8.2)? */
  monitorsLocalDb(): boolean {
    return (
      !this.s.config.isWitness &&
      this.s.phase === "running" &&
      (this.s.role === "Master" || this.s.role === "Standby")
    );
  }

  /**
   * A running Master or Standby always has a local check scheduled or in flight. `step` calls this
   * after every event, so no row has to remember to re-arm monitoring when it changes the role.
   */
  keepMonitoring(): void {
    if (this.monitorsLocalDb() && this.s.local.token === null && this.s.localCheckAt === null)
      this.startLocalMonitoring();
    const idle = this.s.idleCheck;
    if (this.watchesIdleDb() && idle.token === null && idle.at === null) {
      const at = this.now + this.s.config.localPeriodMs;
      this.s.idleCheck = { at, token: null };
      this.timer("idleCheck", at);
    }
  }

  /**
   * Does this Idle agent watch its database (every local.period, whether it runs and as what)?
   * Not while something else owns the database: a fence (or its retries), a rejoin, a resume,
   * a candidacy taking the master role back, or a start-up conflict (conflict.recheck decides).
   */
  watchesIdleDb(): boolean {
    const s = this.s;
    return (
      !s.config.isWitness &&
      s.phase === "running" &&
      s.role === "Idle" &&
      s.selfFence === null &&
      !s.fenceUnconfirmed &&
      s.rejoin === null &&
      s.pendingResume === null &&
      s.candidacy === null &&
      !s.idleForConflict
    );
  }

  /** Arms the lease timer for a master; never for a time already past (that would fire forever). */
  armLease(): void {
    const at = this.s.leaseUntil;
    if (this.holdsMasterDb() && at !== null && at > this.now) this.timer("lease", at);
  }

  /** See the exported `holdsMasterDb`. */
  holdsMasterDb(): boolean {
    return holdsMasterDb(this.s);
  }

  /**
   * Becoming master inside a quorate view: any view removing us is committed after now, so the
   * majority cannot take over before now + L + margin; holding the role until now + L is safe.
   */
  provisionalLease(): void {
    // Only when membership has not reported a lease yet: never extend a lease membership gave.
    if (this.s.leaseUntil === null) this.s.leaseUntil = this.now + this.s.config.leaseMs;
    this.armLease();
  }

  /**
   * The coordinator puts every allowed standby it knows of on the priority list (guide 5.3: all
   * standbys are candidates). Statuses that arrived before we could coordinate (start-up, lease
   * not yet granted) are caught up here, so a cluster started all at once still lists them.
   */
  adoptStandbys(): void {
    if (!this.isCoordinator()) return;
    const missing = this.membersWithRole("Standby").filter(
      (a) => !this.s.priority.includes(a) && (this.s.allowed.length === 0 || this.s.allowed.includes(a)),
    );
    // A promoted standby is the master now, no longer a candidate (guide 4.2.1 lists standbys only).
    const masters = new Set(this.membersWithRole("Master"));
    const kept = this.s.priority.filter((a) => !masters.has(a));
    if (missing.length === 0 && kept.length === this.s.priority.length) return;
    this.s.priority = [...kept, ...missing];
    this.publishLists();
  }

  /** Standby priority list kept by the coordinator: every standby is a candidate. */
  publishLists(): void {
    this.act({ type: "writeState", allowed: this.s.allowed, priority: this.s.priority });
    this.broadcast({ type: "lists", allowed: this.s.allowed, priority: this.s.priority });
  }
}
