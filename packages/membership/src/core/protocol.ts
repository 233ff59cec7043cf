import { compareAddr, compareViewId, hostOf, parseMsg, sameViewId } from "./messages.ts";
import { deriveTiming, type Timing, takeoverAllowedAt } from "./timing.ts";
import type {
  ClusterConfig,
  CoreInput,
  Effect,
  Frame,
  MembershipEvent,
  Msg,
  NodeId,
  PersistedState,
  View,
  ViewId,
  ViewInfo,
} from "./types.ts";

/**
 * Decides whether a view may act for the cluster. The default, and the only safe rule, is a
 * strict majority of the persisted voter set R; the parameter exists so the simulator can show
 * that weaker rules (e.g. "majority of the previous view") split the brain.
 */
export type QuorumRule = (
  members: readonly string[],
  voters: readonly string[],
  previousMembers: readonly string[] | null,
) => boolean;

/** Strict majority of the voter set R; an even split has no quorum on either side. */
export const majorityOfVoters: QuorumRule = (members, voters) => {
  if (voters.length === 0) return false;
  const set = new Set(members);
  let n = 0;
  for (const v of voters) if (set.has(v)) n++;
  return 2 * n > voters.length;
};

/** Options of the pure protocol core. */
export interface CoreOptions {
  /** Our `ip:port` (bind.address). */
  readonly self: string;
  /** Random incarnation of this start (draw it from an injected RNG). */
  readonly incarnation: string;
  /** Timers; see deriveTiming(). */
  readonly timing?: Timing;
  /** Addresses of the members (.nodes) file. */
  readonly seeds?: readonly string[];
  /** Allowed hosts used only when no state was persisted (a brand-new cluster). */
  readonly initialAllowed?: readonly string[];
  /** State from the last persist effect of this address, or null on first start. */
  readonly persisted?: PersistedState | null;
  /** Testing hook: replace the quorum rule (see QuorumRule). */
  readonly quorumRule?: QuorumRule;
  /**
   * Testing hook: `"own"` removes a member as soon as this member alone verified its suspicion
   * (the rule before majority suspicion), so the simulator can show that the lease wait alone
   * still keeps a takeover safe when a coordinator removes a master the others still hear.
   */
  readonly suspicionRule?: "majority" | "own";
  /**
   * Silence (ms) after which a member is reported quiet (`memberQuiet`, once per silence), before
   * it is suspected: the failover layer starts slow checks early (see quietAfter() in timing).
   * Absent, null, or not below suspectAfter: no such event.
   */
  readonly quietAfter?: number | null;
}

interface Suspicion {
  nonce: number;
  confirmed: boolean;
}
interface AckTracking {
  viewId: ViewId;
  acks: Set<string>;
  /**
   * `heardBound`: no acknowledging member (the coordinator included) acknowledged the removed
   * member's heartbeats after this time on our clock; it only grows as acknowledgements arrive.
   */
  removed: { member: string; incarnation: string; lastHeard: number | null; heardBound: number }[];
  committed: boolean;
}
interface CfgChange {
  config: ClusterConfig;
  acks: Set<string>;
  replies: { requestId: string; replyTo: string }[];
}
interface AdminOp {
  requestId: string;
  op: "allow" | "disallow";
  host: string;
  replyTo: string;
}
type InfoMsg = Extract<Msg, { t: "info" }>;
interface MergeState {
  id: string;
  leader: string;
  until: number;
  expected: Set<string>;
  responses: Map<string, Extract<Msg, { t: "mergeRsp" }>>;
}

const NOT_PROOF_OF_MEMBERSHIP = new Set([
  "discover",
  "info",
  "join",
  "aya",
  "mergeReq",
  "mergeRsp",
  "joinRedirect",
]);
/** What a node that belongs to no cluster yet (no id) may send. */
const BEFORE_A_CLUSTER = new Set(["discover", "join", "info"]);
const addrs = (ms: readonly NodeId[]): string[] => ms.map((m) => m.addr);
const sameMembers = (a: readonly NodeId[], b: readonly NodeId[]): boolean =>
  a.length === b.length && a.every((m, i) => m.addr === b[i]!.addr && m.inc === b[i]!.inc);

/**
 * The membership protocol as a pure state machine: `handle(now, input)` returns effects and
 * touches no clock, socket, file or random source (time and the incarnation are passed in).
 */
export class MembershipCore {
  readonly self: NodeId;
  readonly timing: Timing;
  private readonly seeds: readonly string[];
  private readonly quorumRule: QuorumRule;
  private readonly suspicionRule: "majority" | "own";
  private readonly quietAfter: number | null;
  /**
   * Members reported quiet, with the last-heard time of that silence: one report per silence,
   * and a member heard since (another last-heard time) is a new silence.
   */
  private readonly quietSince = new Map<string, number>();
  /**
   * Direct are-you-alives sent before the suspicion (at suspectAfter - verifyTimeout of silence):
   * the last-heard time of the silence probed, and when the probe went out. A member heard since
   * (another last-heard time) is a new silence, and the probe no longer counts.
   */
  private readonly probes = new Map<string, { heard: number; sentAt: number }>();
  private config: ClusterConfig;
  private lastEpoch: number;
  /** Set when this node founds a cluster or installs its first view; saved with the voters. */
  private clusterIdValue: string | null;
  private mayFoundAlone = false;
  private startedAt = 0;
  private view: View | null = null;
  private prevMembers: string[] | null = null;
  private quorate = false;
  private started = false;
  private halted = false;
  private leaving = false;
  private now = 0;
  private out: Effect[] = [];
  private hbDue = 0;
  /** When the armed "suspect" timer fires (null: none armed). */
  private suspectDue: number | null = null;
  private nonce = 0;
  private mergeCounter = 0;
  private readonly known = new Set<string>();
  private readonly lastHeard = new Map<string, number>();
  private readonly suspects = new Map<string, Suspicion>();
  /**
   * Each member's latest report of the members it suspects and failed to verify (from its
   * heartbeats and `suspects` messages). A member leaves a quorate view only when a majority
   * of R suspects it, so a cut between two members alone removes neither.
   */
  private readonly reports = new Map<string, ReadonlySet<string>>();
  private lastSusSent = "";
  private readonly leaseAcks = new Map<string, number>();
  /**
   * When we last acknowledged ourselves: our own heartbeat tick (or a view install). We count
   * as one voter of our majority only as recently as we ran, so a lone voter's lease is
   * finite and lapses if the process stops running, like everyone else's.
   */
  private selfAck = Number.NEGATIVE_INFINITY;
  private leaseUntilValue = Number.NEGATIVE_INFINITY;
  private leaseHeld = false;
  private leaseAnnounced = Number.NEGATIVE_INFINITY;
  private leaseTimerAt: number | null = null;
  /** The voter set the lease was last counted against, and the one before it (see evalLease). */
  private leaseCfg: {
    version: number;
    voters: readonly string[];
    prev: readonly string[];
    changedAt: number;
  } = { version: -1, voters: [], prev: [], changedAt: Number.NEGATIVE_INFINITY };
  private discovery = new Map<string, InfoMsg>();
  // Coordinator state.
  private readonly pendingJoins = new Map<string, NodeId>();
  private readonly pendingLeaves = new Set<string>();
  private readonly pendingVoterRemovals = new Set<string>();
  private batchScheduled = false;
  /** R changed since the view was installed: the next batch installs the same members again. */
  private reinstallView = false;
  /** The voter set in force when the current view was installed. */
  private viewVoters: readonly string[] = [];
  private ackTracking: AckTracking | null = null;
  private cfgChange: CfgChange | null = null;
  private readonly adminQueue: AdminOp[] = [];
  private readonly otherViews = new Map<string, { info: InfoMsg; at: number }>();
  private merge: MergeState | null = null;
  private readonly requests = new Map<string, string>();

  constructor(opts: CoreOptions) {
    this.self = { addr: opts.self, inc: opts.incarnation };
    this.timing = opts.timing ?? deriveTiming();
    this.seeds = (opts.seeds ?? []).filter((s) => s !== opts.self);
    this.quorumRule = opts.quorumRule ?? majorityOfVoters;
    this.suspicionRule = opts.suspicionRule ?? "majority";
    const q = opts.quietAfter ?? null;
    if (q !== null && !(Number.isFinite(q) && q > 0))
      throw new RangeError(`quietAfter must be a positive number of ms, got ${q}`);
    this.quietAfter = q !== null && q < this.timing.suspectAfter ? q : null;
    const p = opts.persisted ?? null;
    this.config = p ? p.config : { version: 0, voters: [], allowed: [...(opts.initialAllowed ?? [])] };
    this.lastEpoch = p ? p.lastEpoch : 0;
    this.clusterIdValue = p?.clusterId ?? null;
  }

  /** Feed one input; returns the effects to carry out, in order. */
  handle(now: number, input: CoreInput): Effect[] {
    this.now = now;
    this.out = [];
    if (this.halted) {
      return this.out;
    }
    if (!this.started && input.type !== "start") {
      return this.out;
    }
    switch (input.type) {
      case "start":
        this.mayFoundAlone = input.mayFoundAlone === true;
        this.onStart();
        break;
      case "frame":
        this.onFrame(input.from, input.msg);
        break;
      case "connectionUp":
        break;
      case "connectionDown":
        if (this.isMemberAddr(input.peer) && !this.suspects.has(input.peer)) this.verify(input.peer, false);
        break;
      case "timer":
        this.onTimer(input.id);
        break;
      case "allow":
      case "disallow":
        this.onAdmin({
          requestId: input.requestId,
          op: input.type,
          host: input.host,
          replyTo: this.self.addr,
        });
        break;
      case "leave":
        this.onLeave();
        break;
      case "stopCluster":
        for (const m of this.others()) this.send(m, { t: "stopCluster" });
        this.emit({ type: "clusterStopping", by: this.self.addr });
        this.halt("stopCluster");
        break;
      case "send":
        if (this.isMemberAddr(input.to)) this.send(input.to, { t: "app", payload: input.payload });
        break;
      case "request":
        this.requests.set(input.id, input.to);
        this.setTimer(`req:${input.id}`, now + input.timeoutMs);
        if (this.isMemberAddr(input.to))
          this.send(input.to, { t: "req", id: input.id, payload: input.payload });
        break;
      case "respond":
        if (this.isMemberAddr(input.to))
          this.send(input.to, { t: "rsp", id: input.id, payload: input.payload });
        break;
    }
    return this.out;
  }

  // ---- queries (pure reads, for the runtime, the failover layer and the simulator) ----

  /** The installed view, or null while discovering. */
  currentView(): ViewInfo | null {
    const v = this.view;
    if (!v) return null;
    return {
      epoch: v.id.epoch,
      creator: v.id.creator,
      members: addrs(v.members),
      coordinator: v.members[0]!.addr,
      quorate: this.quorate,
      subgroups: v.subgroups,
      voters: this.config.voters,
    };
  }
  /** The full view id plus incarnations (for fencing tokens and the simulator). */
  rawView(): View | null {
    return this.view;
  }
  /** The replicated configuration this member holds (voter set R, allowed hosts). */
  clusterConfig(): ClusterConfig {
    return this.config;
  }
  /** True when the installed view holds a majority of R. */
  isQuorate(): boolean {
    return this.quorate;
  }
  /** Until when a majority of R has acknowledged our heartbeats (our lease). */
  leaseUntil(): number {
    return this.leaseUntilValue;
  }
  /** Lease check against the caller's clock. */
  leaseValidAt(now: number): boolean {
    return this.view !== null && this.leaseUntilValue > now;
  }
  /** True once a leave or stop-cluster finished. */
  isHalted(): boolean {
    return this.halted;
  }
  /** The id of the cluster we belong to, or null before we founded or joined one. */
  clusterId(): string | null {
    return this.clusterIdValue;
  }
  /** When we last heard from a member, if we track it. */
  lastHeardFrom(addr: string): number | null {
    return this.lastHeard.get(addr) ?? null;
  }

  // ---- plumbing ----

  private emit(event: MembershipEvent): void {
    this.out.push({ type: "emit", event });
  }
  private send(to: string, msg: Msg): void {
    const frame: Frame = { ...msg, cid: this.clusterIdValue };
    this.out.push({ type: "send", to, msg: frame });
  }
  private setTimer(id: string, at: number): void {
    this.out.push({ type: "setTimer", id, at });
  }
  private cancelTimer(id: string): void {
    this.out.push({ type: "cancelTimer", id });
  }
  private drop(from: string, reason: string): void {
    this.out.push({ type: "drop", from, reason });
  }
  private persist(): void {
    this.out.push({
      type: "persist",
      state: { config: this.config, lastEpoch: this.lastEpoch, clusterId: this.clusterIdValue },
    });
  }
  private halt(reason: "left" | "stopCluster"): void {
    this.halted = true;
    this.out.push({ type: "halt", reason });
  }
  private isCoord(): boolean {
    return this.view !== null && this.view.members[0]!.addr === this.self.addr;
  }
  private member(addr: string): NodeId | undefined {
    return this.view?.members.find((m) => m.addr === addr);
  }
  private isMemberAddr(addr: string): boolean {
    return addr !== this.self.addr && this.member(addr) !== undefined;
  }
  private others(): string[] {
    return this.view ? addrs(this.view.members).filter((a) => a !== this.self.addr) : [];
  }
  private isAllowed(addr: string): boolean {
    return this.config.allowed.includes(hostOf(addr));
  }
  private port(): string {
    const i = this.self.addr.lastIndexOf(":");
    return i > 0 ? this.self.addr.slice(i + 1) : "";
  }
  /** Everyone worth asking: the .nodes file, R, the view, allowed hosts on our port, and anyone heard. */
  private candidates(): string[] {
    const s = new Set<string>([...this.seeds, ...this.config.voters, ...this.others(), ...this.known]);
    for (const h of this.config.allowed)
      s.add(h.includes(":") ? `[${h}]:${this.port()}` : `${h}:${this.port()}`);
    s.delete(this.self.addr);
    return [...s].sort(compareAddr);
  }
  private voterShare(members: readonly string[], voters: readonly string[] = this.config.voters): number {
    const set = new Set(members);
    return voters.filter((v) => set.has(v)).length;
  }
  private info(): InfoMsg {
    const v = this.view;
    const members = v ? addrs(v.members) : [];
    return {
      t: "info",
      viewId: v ? v.id : null,
      coord: v ? v.members[0]!.addr : null,
      members,
      quorate: this.quorate,
      cfgVersion: this.config.version,
      voterShare: this.voterShare(members),
      canFound: this.isAllowed(this.self.addr),
    };
  }

  // ---- start and discovery ----

  private onStart(): void {
    this.started = true;
    this.startedAt = this.now;
    this.hbDue = this.now + this.timing.heartbeatInterval;
    this.setTimer("hb", this.hbDue);
    this.discoverRound();
  }

  private discoverRound(): void {
    this.discovery = new Map();
    for (const c of this.candidates()) this.send(c, { t: "discover" });
    this.setTimer("disc", this.now + this.timing.discoveryInterval);
  }

  private onDiscoveryTimer(): void {
    if (this.view || this.leaving) return;
    const replies = [...this.discovery.entries()];
    const withView = replies
      .filter(([, i]) => i.viewId !== null && i.coord !== null && i.coord !== this.self.addr)
      .sort(([, a], [, b]) => {
        if (a.quorate !== b.quorate) return a.quorate ? -1 : 1;
        const c = compareViewId(b.viewId!, a.viewId!);
        return c !== 0 ? c : compareAddr(a.coord!, b.coord!);
      });
    const best = withView[0];
    if (best) {
      this.send(best[1].coord!, { t: "join" });
    } else if (this.isAllowed(this.self.addr) && this.config.voters.length > 0) {
      // We were a member: restart the cluster only as the lowest founder-capable address among
      // a majority of the saved voter set R, which stays R, so two sides of a partition can
      // never both reach quorum.
      const voters = this.config.voters;
      const founders = [
        this.self.addr,
        ...replies.filter(([, i]) => i.viewId === null && i.canFound).map(([a]) => a),
      ];
      const present = voters.filter((u) => founders.includes(u)).length;
      const lowest = [...founders].sort(compareAddr)[0];
      if (2 * present > voters.length && lowest === this.self.addr) {
        this.found();
        return;
      }
    } else if (
      this.isAllowed(this.self.addr) &&
      this.mayFoundAlone &&
      this.now - this.startedAt >= this.timing.joinWindow
    ) {
      // Never a member, and no cluster answered within the join window: the members file only
      // named where to look (guide 3.2.2: addresses that are not running members are ignored).
      // Only a node whose database is the primary (or an operator's bootstrap) founds, alone;
      // the others join it one voter at a time. A standby or a witness never founds a cluster
      // of its own, so a second cluster beside a running one never gets a quorum to promote in.
      this.found();
      return;
    }
    this.discoverRound();
  }

  private found(): void {
    if (this.config.voters.length === 0) {
      this.config = {
        version: this.config.version + 1,
        voters: [this.self.addr],
        allowed: this.config.allowed.includes(hostOf(this.self.addr))
          ? this.config.allowed
          : [...this.config.allowed, hostOf(this.self.addr)],
      };
    }
    // A new id for a new cluster (our address and this start's random incarnation); a cluster
    // restarted from its saved voter set keeps its id.
    if (this.clusterIdValue === null) this.clusterIdValue = `${this.self.addr}/${this.self.inc}`;
    this.installNew([this.self], [], [], []);
  }

  // ---- frames ----

  private onFrame(from: NodeId, raw: unknown): void {
    const parsed = parseMsg(raw);
    if (typeof parsed === "string") {
      this.drop(from.addr, parsed);
      return;
    }
    const { cid, ...body } = parsed;
    const msg = body as Msg;
    if (from.addr === this.self.addr) {
      this.drop(from.addr, "frame claims our own address");
      return;
    }
    if (cid !== null && this.clusterIdValue !== null && cid !== this.clusterIdValue) {
      this.onForeign(from, msg, cid, this.clusterIdValue);
      return;
    }
    if (cid === null && this.clusterIdValue !== null && !BEFORE_A_CLUSTER.has(msg.t)) {
      this.drop(from.addr, `${msg.t} from ${from.addr} without a cluster id`);
      return;
    }
    const mem = this.member(from.addr);
    const fromMember = mem !== undefined && mem.inc === from.inc;
    if (mem && !fromMember && msg.t !== "discover" && msg.t !== "join" && msg.t !== "info") {
      this.drop(from.addr, `stale incarnation ${from.inc}`);
      return;
    }
    if (
      !mem &&
      !this.isAllowed(from.addr) &&
      !["discover", "join", "info", "view", "joinRefused"].includes(msg.t)
    ) {
      this.drop(from.addr, "sender is not an allowed host");
      return;
    }
    if (this.isAllowed(from.addr) || fromMember) this.known.add(from.addr);
    // Only traffic that proves the sender still counts us as a member refreshes failure
    // detection: INFO, discovery and merge chatter reach excluded members too, and a member
    // excluded by the others must notice (and go on to merge) instead of waiting forever.
    if (fromMember && !NOT_PROOF_OF_MEMBERSHIP.has(msg.t) && !(msg.t === "iaa" && !msg.member))
      this.heard(from.addr);
    switch (msg.t) {
      case "discover":
        this.send(from.addr, this.info());
        return;
      case "info":
        this.onInfo(from.addr, msg);
        return;
      case "join":
        this.onJoin(from);
        return;
      case "joinRefused":
        this.emit({ type: "admissionRefused", address: this.self.addr, by: from.addr, reason: msg.reason });
        return;
      case "joinRedirect":
        if (msg.coord !== this.self.addr) this.send(msg.coord, { t: "join" });
        return;
      case "view":
        this.onView(from, msg, cid);
        return;
      case "aya":
        this.send(from.addr, { t: "iaa", nonce: msg.nonce, member: fromMember });
        return;
      case "mergeReq":
        this.onMergeReq(from.addr, msg.mergeId);
        return;
      case "mergeRsp":
        this.onMergeRsp(from.addr, msg);
        return;
    }
    if (!fromMember) {
      this.drop(from.addr, `${msg.t} from a non-member`);
      return;
    }
    switch (msg.t) {
      case "viewAck":
        // Installing our view, the member counted us in as of when we sent it: a lease
        // acknowledgement like a heartbeat's, so a voter just admitted backs our lease at once.
        if (this.view && sameViewId(msg.viewId, this.view.id)) this.leaseAck(from.addr, msg.sentAt);
        if (this.ackTracking && sameViewId(this.ackTracking.viewId, msg.viewId)) {
          const t = this.ackTracking;
          // Every acknowledgement counts as an answer (the ack timer suspects the silent), but
          // once committed the takeover bound is fixed: later ones cannot move it.
          if (t.acks.has(from.addr)) return;
          t.acks.add(from.addr);
          if (t.committed) return;
          // The acknowledging member stopped acknowledging each removed member no later than it
          // installed this view, and that was before its acknowledgement arrived here; it had
          // last heard the member `ms` before that. Unknown means "just now".
          for (const r of t.removed) {
            const ms = msg.silent.find((x) => x.member === r.member)?.ms ?? 0;
            r.heardBound = Math.max(r.heardBound, this.now - ms);
          }
          this.checkViewCommit();
        }
        return;
      case "hb":
        this.send(from.addr, { t: "hbAck", sentAt: msg.sentAt });
        this.onReport(from.addr, msg.sus);
        // The sender installed a newer view we never received (lost on a cut link): ask for it.
        if (this.view && compareViewId(msg.viewId, this.view.id) > 0)
          this.send(msg.viewId.creator, { t: "join" });
        if (msg.cfg && from.addr === this.view?.members[0]?.addr) this.adoptConfig(msg.cfg);
        return;
      case "hbAck":
        this.leaseAck(from.addr, msg.sentAt);
        return;
      case "iaa":
        return;
      case "suspects":
        this.onReport(from.addr, msg.sus);
        return;
      case "cfgPropose":
        if (from.addr === this.view?.members[0]?.addr) this.adoptConfig(msg.config);
        this.send(from.addr, { t: "cfgAck", version: this.config.version, config: this.config });
        return;
      case "cfgAck":
        this.onCfgAck(from.addr, msg.config);
        return;
      case "cfgCommit":
        this.adoptConfig(msg.config);
        return;
      case "leave":
        this.onMemberLeave(from.addr);
        return;
      case "stopCluster":
        this.emit({ type: "clusterStopping", by: from.addr });
        this.halt("stopCluster");
        return;
      case "admin":
        this.onAdmin({ requestId: msg.requestId, op: msg.op, host: msg.host, replyTo: from.addr });
        return;
      case "adminRsp":
        this.emit({
          type: "adminResult",
          requestId: msg.requestId,
          ok: msg.ok,
          ...(msg.error !== null ? { error: msg.error } : {}),
        });
        return;
      case "app":
        this.emit({ type: "message", from: from.addr, payload: msg.payload });
        return;
      case "req":
        this.emit({ type: "request", from: from.addr, id: msg.id, payload: msg.payload });
        return;
      case "rsp":
        if (this.requests.get(msg.id) === from.addr) {
          this.requests.delete(msg.id);
          this.cancelTimer(`req:${msg.id}`);
          this.emit({ type: "response", from: from.addr, id: msg.id, payload: msg.payload });
        }
        return;
    }
  }

  /** A member acknowledged (as a member of its view) something we sent at `sentAt`. */
  private leaseAck(from: string, sentAt: number): void {
    if (sentAt <= this.now && sentAt > (this.leaseAcks.get(from) ?? Number.NEGATIVE_INFINITY)) {
      this.leaseAcks.set(from, sentAt);
      this.evalLease();
    }
  }

  private heard(addr: string): void {
    this.lastHeard.set(addr, this.now);
    const s = this.suspects.get(addr);
    if (s) {
      this.suspects.delete(addr);
      this.cancelTimer(`verify:${addr}`);
      if (s.confirmed) this.announceSuspects();
    }
  }

  // ---- suspicion shared: a member leaves a quorate view only when a majority suspects it ----

  /** Members we suspected and failed to verify, in address order. */
  private verifiedSuspects(): string[] {
    return [...this.suspects.entries()]
      .filter(([, s]) => s.confirmed)
      .map(([a]) => a)
      .sort(compareAddr);
  }

  /** Tell the others at once when our verified suspects change (heartbeats repeat it). */
  private announceSuspects(): void {
    const sus = this.verifiedSuspects();
    const key = sus.join(",");
    if (key === this.lastSusSent) return;
    this.lastSusSent = key;
    for (const m of this.others()) this.send(m, { t: "suspects", sus });
  }

  private onReport(from: string, sus: readonly string[]): void {
    const before = this.reports.get(from);
    if (before && before.size === sus.length && sus.every((x) => before.has(x))) return;
    this.reports.set(from, new Set(sus));
    this.actOnSuspicion();
  }

  /**
   * True when a strict majority of R suspects `x`: us if we verified our suspicion, and every
   * other voter in our view whose latest report names it (a voter we suspect ourselves does not
   * count: its report is as old as our last word from it).
   */
  private suspectedByMajority(x: string): boolean {
    if (this.suspicionRule === "own") return this.suspects.get(x)?.confirmed === true;
    const voters = this.config.voters;
    let n = 0;
    for (const v of voters) {
      if (v === this.self.addr) {
        if (this.suspects.get(x)?.confirmed === true) n++;
      } else if (v !== x && this.isMemberAddr(v) && !this.suspects.has(v) && this.reports.get(v)?.has(x)) n++;
    }
    return voters.length > 0 && 2 * n > voters.length;
  }

  /**
   * The members the next view drops as failed. In a quorate view only those a majority of R
   * suspects (JGroups VERIFY_SUSPECT, Raft CheckQuorum): a cut between two members alone, with
   * the rest seeing both, removes neither, so no failover follows a partial cut. A member that
   * cannot keep a majority with the members it still hears, and would install the next view,
   * drops everyone and goes on alone: its view is not quorate, so it decides nothing, and the
   * merge after the heal needs a view of its own. It must not take the members it still hears
   * along: they may hear the majority it lost (a coordinator just cut off, whose peers' first
   * packets after the heal run late), and a view without quorum would pull them out of it (a
   * master among them would lose its lease). Left in the old view, they hear its silence, and a
   * majority that hears each other suspects it and re-forms without it.
   */
  private removals(): string[] {
    if (!this.view) return [];
    const members = this.others();
    const byMajority = members.filter((m) => this.suspectedByMajority(m));
    const all = members.filter((m) => byMajority.includes(m) || this.suspects.get(m)?.confirmed === true);
    if (all.length === byMajority.length) return byMajority;
    const rest = addrs(this.view.members).filter((a) => !all.includes(a));
    if (majorityOfVoters(rest, this.config.voters, null)) return byMajority;
    // Only the member that would install the view goes alone: the coordinator, or the first
    // member behind everyone it verified (it takes over). Any other waits in the old view.
    const ahead = addrs(this.view.members);
    ahead.splice(ahead.indexOf(this.self.addr));
    return ahead.every((a) => all.includes(a)) ? members : all;
  }

  /** A suspicion was verified or reported: remove whom the rule allows, or take over. */
  private actOnSuspicion(): void {
    if (!this.view || this.leaving) return;
    if (this.isCoord()) {
      if (this.removals().length > 0) this.scheduleBatch();
      return;
    }
    // Take over when every member ahead of us in join order is to be removed.
    const gone = new Set(this.removals());
    const ahead: string[] = [];
    for (const m of this.view.members) {
      if (m.addr === this.self.addr) break;
      ahead.push(m.addr);
    }
    if (ahead.every((a) => gone.has(a))) this.onBatch();
  }

  private adoptConfig(c: ClusterConfig): void {
    if (c.version <= this.config.version) return;
    this.config = c;
    this.persist();
    this.emit({ type: "configCommitted", config: c });
    this.recomputeQuorum();
    this.evalLease();
  }

  // ---- timers ----

  private onTimer(id: string): void {
    if (id === "hb") {
      this.onHeartbeatTick();
      return;
    }
    if (id === "suspect") {
      this.onSuspectTimer();
      return;
    }
    if (id === "disc") {
      this.onDiscoveryTimer();
      return;
    }
    if (id === "batch") {
      this.onBatch();
      return;
    }
    if (id === "merge") {
      this.onMergeTick();
      return;
    }
    if (id === "mergeEnd") {
      this.finishMerge();
      return;
    }
    if (id === "lease") {
      this.leaseTimerAt = null;
      this.evalLease();
      return;
    }
    if (id === "leave") {
      this.emit({ type: "left" });
      this.halt("left");
      return;
    }
    if (id === "ack") {
      const t = this.ackTracking;
      if (t && this.view && sameViewId(t.viewId, this.view.id)) {
        for (const m of this.others()) if (!t.acks.has(m) && !this.suspects.has(m)) this.verify(m, true);
      }
      return;
    }
    if (id.startsWith("verify:")) {
      this.onVerifyTimeout(id.slice(7));
      return;
    }
    if (id.startsWith("req:")) {
      const rid = id.slice(4);
      const to = this.requests.get(rid);
      if (to !== undefined) {
        this.requests.delete(rid);
        this.emit({ type: "requestTimeout", to, id: rid });
      }
    }
  }

  private onHeartbeatTick(): void {
    const late = this.now - this.hbDue;
    if (late > this.timing.pauseThreshold) {
      // We were paused (GC, SIGSTOP, VM migration): the silence is ours, not theirs.
      for (const m of this.others()) this.lastHeard.set(m, this.now);
    }
    this.hbDue = this.now + this.timing.heartbeatInterval;
    this.setTimer("hb", this.hbDue);
    if (!this.view) return;
    // Judge the lease by time before our own tick renews our share of it: after a pause longer
    // than L the lease did lapse, and the failover layer must hear so.
    this.evalLease();
    this.selfAck = this.now;
    const cfg = this.isCoord() ? this.config : null;
    const sus = this.verifiedSuspects();
    for (const m of this.others())
      this.send(m, { t: "hb", viewId: this.view.id, sentAt: this.now, cfg, sus });
    this.suspectSilent();
    if (this.isCoord() && this.cfgChange) {
      for (const m of this.others()) {
        if (!this.cfgChange.acks.has(m)) this.send(m, { t: "cfgPropose", config: this.cfgChange.config });
      }
    }
    this.evalLease();
  }

  /**
   * Report every member silent for quietAfter (once per silence) and verify every member silent
   * for suspectAfter, then arm a timer for the first such deadline before our next heartbeat
   * tick: suspicion starts when the window (jgroups.timeout x max.tries) ends, not up to one
   * heartbeat interval later.
   */
  private suspectSilent(at = this.now): void {
    let next = Number.POSITIVE_INFINITY;
    const others = this.others();
    for (const [m, h] of this.quietSince)
      if (this.lastHeard.get(m) !== h || !others.includes(m)) this.quietSince.delete(m);
    for (const [m, p] of this.probes)
      if (this.lastHeard.get(m) !== p.heard || !others.includes(m)) this.probes.delete(m);
    for (const m of others) {
      const h = this.lastHeard.get(m) ?? this.now;
      // Quiet comes before suspicion on the same timer; it decides nothing (the failover layer
      // only starts a check early), so a member already under verification is reported too.
      if (this.quietAfter !== null && this.quietSince.get(m) !== h) {
        const quietAt = h + this.quietAfter;
        if (at >= quietAt) {
          this.quietSince.set(m, h);
          this.emit({ type: "memberQuiet", member: m });
        } else next = Math.min(next, quietAt);
      }
      if (this.suspects.has(m)) continue;
      // The deadline as one sum, compared as is: `at - h` can round below suspectAfter at the
      // very instant the timer was armed for, which would re-arm it for that instant forever.
      const deadline = h + this.timing.suspectAfter;
      // The direct are-you-alive goes out verifyTimeout before the window ends, so that a member
      // still silent when it ends is verified then, not verifyTimeout later: the suspicion still
      // needs the whole window of silence and an are-you-alive left unanswered for verifyTimeout.
      const probeAt = deadline - this.timing.verifyTimeout;
      const probe = this.probes.get(m);
      if (at >= deadline) {
        this.probes.delete(m);
        this.verify(m, true, probe?.sentAt ?? null);
      } else if (probe === undefined && at >= probeAt) {
        this.probes.set(m, { heard: h, sentAt: this.now });
        this.send(m, { t: "aya", nonce: ++this.nonce });
        next = Math.min(next, deadline);
      } else next = Math.min(next, probe === undefined ? probeAt : deadline);
    }
    if (next < this.hbDue) {
      this.suspectDue = next;
      this.setTimer("suspect", next);
    } else if (this.suspectDue !== null) {
      this.suspectDue = null;
      this.cancelTimer("suspect");
    }
  }

  private onSuspectTimer(): void {
    const due = this.suspectDue;
    this.suspectDue = null;
    // Fired much later than armed: we were paused, and the silence is ours. The heartbeat tick,
    // due soon, notices the pause and starts every member's silence afresh.
    if (due === null || !this.view || this.now - due > this.timing.pauseThreshold) return;
    // A timer may fire a rounding error before its time (clocks convert between time bases):
    // judge the silence at the time it was armed for.
    this.suspectSilent(Math.max(this.now, due));
  }

  /**
   * Direct are-you-alive; the member is removed if nothing at all arrives within verifyTimeout.
   * `probedAt`: one already went out then, in this same silence (suspectSilent's probe), and
   * nothing came since: it is the verification, which ends verifyTimeout after it was sent (on a
   * timer even when that is now, so the suspicion is acted on outside the caller's loop, and after
   * the runtime has read any answer that arrived while its event loop was held up).
   */
  private verify(addr: string, announce: boolean, probedAt: number | null = null): void {
    const nonce = ++this.nonce;
    this.suspects.set(addr, { nonce, confirmed: false });
    if (announce) this.emit({ type: "memberSuspected", member: addr });
    if (probedAt !== null) {
      this.setTimer(`verify:${addr}`, Math.max(this.now, probedAt + this.timing.verifyTimeout));
      return;
    }
    this.send(addr, { t: "aya", nonce });
    this.setTimer(`verify:${addr}`, this.now + this.timing.verifyTimeout);
  }

  private onVerifyTimeout(addr: string): void {
    const s = this.suspects.get(addr);
    if (!s || !this.view || !this.isMemberAddr(addr)) return;
    s.confirmed = true;
    this.announceSuspects();
    this.actOnSuspicion();
  }

  // ---- coordinator: joins, leaves, removals ----

  private onJoin(from: NodeId): void {
    if (!this.view || this.leaving) return;
    if (!this.isCoord()) {
      this.send(from.addr, { t: "joinRedirect", coord: this.view.members[0]!.addr });
      return;
    }
    if (!this.isAllowed(from.addr)) {
      const reason = `host ${hostOf(from.addr)} is not in the allowed node host list`;
      this.send(from.addr, { t: "joinRefused", reason });
      this.emit({ type: "admissionRefused", address: from.addr, by: this.self.addr, reason });
      return;
    }
    // Voters are exact ip:port addresses, and a host runs one agent per cluster: a second port
    // on a host that already takes part is someone holding the key, not another node, and must
    // not join (or be added to the voter set R). A node that moves to another port is removed
    // (efm remove-node) and added again.
    const host = hostOf(from.addr);
    const sibling = [...this.config.voters, ...this.view.members.map((m) => m.addr)].find(
      (a) => a !== from.addr && hostOf(a) === host,
    );
    if (sibling !== undefined) {
      const reason = `host ${host} already takes part in the cluster as ${sibling}`;
      this.send(from.addr, { t: "joinRefused", reason });
      this.emit({ type: "admissionRefused", address: from.addr, by: this.self.addr, reason });
      return;
    }
    const mem = this.member(from.addr);
    if (mem && mem.inc === from.inc) {
      // It missed the view that admitted it.
      this.send(from.addr, {
        t: "view",
        view: this.view,
        config: this.config,
        left: [],
        removed: [],
        sentAt: this.now,
      });
      return;
    }
    this.pendingJoins.set(from.addr, from);
    this.scheduleBatch();
  }

  private onMemberLeave(addr: string): void {
    if (!this.view) return;
    const coord = this.view.members[0]!.addr;
    if (this.isCoord()) {
      this.pendingLeaves.add(addr);
      this.scheduleBatch();
    } else if (addr === coord && this.view.members[1]?.addr === this.self.addr) {
      // Our coordinator hands over to us before leaving.
      this.pendingLeaves.add(addr);
      this.onBatch();
    }
  }

  private onLeave(): void {
    if (!this.view || this.others().length === 0) {
      this.emit({ type: "left" });
      this.halt("left");
      return;
    }
    this.leaving = true;
    const target = this.isCoord() ? this.view.members[1]!.addr : this.view.members[0]!.addr;
    this.send(target, { t: "leave" });
    this.setTimer("leave", this.now + this.timing.leaveTimeout);
  }

  private scheduleBatch(): void {
    if (this.batchScheduled) return;
    this.batchScheduled = true;
    this.setTimer("batch", this.now + this.timing.batchDelay);
  }

  /** Compute and install the next view from pending joins, leaves and confirmed suspects. */
  private onBatch(): void {
    this.batchScheduled = false;
    const v = this.view;
    if (!v || this.leaving) return;
    const left: string[] = [];
    const removed: string[] = [];
    const next: NodeId[] = [];
    const gone = new Set(this.removals());
    for (const m of v.members) {
      if (m.addr === this.self.addr) next.push(m);
      else if (this.pendingLeaves.has(m.addr)) left.push(m.addr);
      else if (gone.has(m.addr)) removed.push(m.addr);
      else if (this.pendingJoins.has(m.addr))
        removed.push(m.addr); // restarted: old incarnation out
      else next.push(m);
    }
    for (const j of this.pendingJoins.values()) if (this.isAllowed(j.addr)) next.push(j);
    for (const l of left) this.pendingVoterRemovals.add(l);
    this.pendingJoins.clear();
    this.pendingLeaves.clear();
    if (next[0]?.addr !== this.self.addr) return; // only the head of the list may install
    if (sameMembers(next, v.members) && !this.reinstallView) return;
    this.installNew(next, [], left, removed);
  }

  private installNew(members: NodeId[], subgroups: string[][], left: string[], removed: string[]): void {
    const epoch = Math.max(this.view?.id.epoch ?? 0, this.lastEpoch) + 1;
    const view: View = { id: { epoch, creator: this.self.addr }, members, subgroups };
    for (const m of members) {
      if (m.addr !== this.self.addr)
        this.send(m.addr, { t: "view", view, config: this.config, left, removed, sentAt: this.now });
    }
    for (const l of left)
      this.send(l, { t: "view", view, config: this.config, left, removed, sentAt: this.now });
    this.install(view, this.config, left, removed);
  }

  // ---- installing views ----

  /**
   * A frame from a member of another cluster (another id): agents of two clusters founded
   * apart never join or merge, whatever their members files say. Say why, on both sides.
   */
  private onForeign(from: NodeId, msg: Msg, theirs: string, ours: string): void {
    if (msg.t === "joinRefused") {
      this.emit({ type: "admissionRefused", address: this.self.addr, by: from.addr, reason: msg.reason });
      return;
    }
    if (msg.t === "discover") {
      this.send(from.addr, this.info());
      return;
    }
    const why = `${from.addr} belongs to another cluster (id ${theirs}; this cluster's id is ${ours}): joins and merges across clusters are refused`;
    if (msg.t === "join") {
      this.send(from.addr, { t: "joinRefused", reason: why });
      this.emit({ type: "admissionRefused", address: from.addr, by: this.self.addr, reason: why });
      return;
    }
    this.drop(from.addr, `${msg.t} from ${why}`);
  }

  private onView(from: NodeId, msg: Extract<Msg, { t: "view" }>, cid: string | null): void {
    const { view } = msg;
    if (from.addr !== view.id.creator) {
      this.drop(from.addr, "view sent by someone other than its creator");
      return;
    }
    const me = view.members.find((m) => m.addr === this.self.addr);
    if (!me || me.inc !== this.self.inc) {
      if (this.leaving && msg.left.includes(this.self.addr)) {
        this.emit({ type: "left" });
        this.halt("left");
      }
      return;
    }
    if (this.view && compareViewId(view.id, this.view.id) <= 0) return;
    if (!this.view && !this.isAllowed(from.addr) && msg.config.allowed.length === 0) return;
    if (cid === null) {
      this.drop(from.addr, "view without a cluster id");
      return;
    }
    // Our first view: from now on we belong to its cluster (saved with the voter set).
    if (this.clusterIdValue === null) this.clusterIdValue = cid;
    this.adoptConfig(msg.config);
    this.install(
      view,
      msg.config.version >= this.config.version ? msg.config : this.config,
      msg.left,
      msg.removed,
      msg.sentAt,
    );
  }

  private install(
    view: View,
    config: ClusterConfig,
    leftIn: readonly string[],
    removedIn: readonly string[],
    viewSentAt = Number.NEGATIVE_INFINITY,
  ): void {
    const prev = this.view;
    this.reinstallView = false;
    this.viewVoters = config.version >= this.config.version ? config.voters : this.config.voters;
    // When we last heard each member, before this view resets or forgets it.
    const heardBefore = new Map(this.lastHeard);
    this.prevMembers = prev ? addrs(prev.members) : null;
    this.view = view;
    // Installing a view is running: a founder holds its own share of the lease at once.
    this.selfAck = this.now;
    if (config.version > this.config.version) this.config = config;
    this.lastEpoch = Math.max(this.lastEpoch, view.id.epoch);
    this.persist();
    this.discovery.clear();
    this.merge = null;
    this.otherViews.clear();
    const now = new Set(addrs(view.members));
    const prevIds = new Map((prev?.members ?? []).map((m) => [m.addr, m.inc]));
    const joined = view.members
      .filter((m) => m.addr !== this.self.addr && prevIds.get(m.addr) !== m.inc)
      .map((m) => m.addr);
    const left = leftIn.filter((a) => prevIds.has(a) && !now.has(a));
    const removed = [...prevIds.keys()].filter(
      (a) => a !== this.self.addr && !now.has(a) && !left.includes(a),
    );
    for (const r of removedIn) if (prevIds.has(r) && now.has(r) && !removed.includes(r)) removed.push(r);
    for (const m of view.members) {
      if (m.addr === this.self.addr) continue;
      if (prevIds.get(m.addr) !== m.inc) {
        this.lastHeard.set(m.addr, this.now);
        this.leaseAcks.delete(m.addr);
        this.suspects.delete(m.addr);
        this.reports.delete(m.addr);
      }
    }
    for (const a of [...this.reports.keys()]) if (!now.has(a)) this.reports.delete(a);
    for (const a of [...this.lastHeard.keys()]) if (!now.has(a)) this.lastHeard.delete(a);
    for (const a of [...this.leaseAcks.keys()]) if (!now.has(a)) this.leaseAcks.delete(a);
    for (const a of [...this.suspects.keys()]) {
      if (!now.has(a)) {
        this.suspects.delete(a);
        this.cancelTimer(`verify:${a}`);
      }
    }
    const removedInfo = removed.map((member) => {
      const lastHeard = heardBefore.get(member) ?? null;
      // Our own last acknowledgement of its heartbeats was no later than our last word from it.
      return { member, incarnation: prevIds.get(member) ?? "", lastHeard, heardBound: lastHeard ?? this.now };
    });
    const quorate = this.computeQuorate();
    this.quorate = quorate;
    this.emit({
      type: "viewInstalled",
      view: { ...this.currentView()!, quorate },
      joined,
      left,
      removed,
    });
    for (const j of joined) this.emit({ type: "memberJoined", member: j });
    for (const l of left) this.emit({ type: "memberLeft", member: l });
    for (const r of removedInfo)
      this.emit({ type: "memberRemoved", member: r.member, lastHeard: r.lastHeard });
    if (joined.length > 0 || left.length > 0) {
      const file = new Set([...now, ...this.config.voters]);
      file.delete(this.self.addr);
      for (const l of left) file.delete(l);
      this.out.push({ type: "rewriteMembersFile", addresses: [...file].sort(compareAddr) });
    }
    const wasQuorate = prev !== null && this.quorateBefore;
    if (quorate && !wasQuorate) this.emit({ type: "quorumGained", epoch: view.id.epoch });
    if (!quorate && wasQuorate) this.emit({ type: "quorumLost", epoch: view.id.epoch });
    this.quorateBefore = quorate;
    this.evalLease();
    if (view.members[0]!.addr === this.self.addr) {
      this.ackTracking = {
        viewId: view.id,
        acks: new Set([this.self.addr]),
        removed: removedInfo,
        committed: false,
      };
      this.setTimer("ack", this.now + this.timing.ackTimeout);
      this.setTimer("merge", this.now + this.timing.mergeInterval);
      this.checkViewCommit();
      if (!prev || prev.members[0]!.addr !== this.self.addr) {
        // New coordinator: first re-confirm the configuration we hold, so a change begun by a
        // predecessor is finished before we start another (one change at a time, always).
        this.cfgChange = null;
        if (this.quorate) this.startCfgChange(this.config, []);
      }
      this.nextCfgChange();
    } else {
      this.ackTracking = null;
      this.cfgChange = null;
      const silent = removedInfo.map((r) => ({
        member: r.member,
        ms: r.lastHeard === null ? 0 : this.now - r.lastHeard,
      }));
      this.send(view.members[0]!.addr, { t: "viewAck", viewId: view.id, silent, sentAt: viewSentAt });
    }
    // Suspicions of members this view dropped are gone: say so, and act on what is left.
    this.lastSusSent = "";
    this.announceSuspects();
    this.actOnSuspicion();
  }
  private quorateBefore = false;

  private computeQuorate(): boolean {
    if (!this.view) return false;
    return this.quorumRule(addrs(this.view.members), this.config.voters, this.prevMembers);
  }

  private recomputeQuorum(): void {
    if (!this.view) return;
    const q = this.computeQuorate();
    if (q === this.quorate) return;
    this.quorate = q;
    this.quorateBefore = q;
    this.emit(
      q
        ? { type: "quorumGained", epoch: this.view.id.epoch }
        : { type: "quorumLost", epoch: this.view.id.epoch },
    );
  }

  private checkViewCommit(): void {
    const t = this.ackTracking;
    if (!t || t.committed) return;
    const voters = this.config.voters;
    const n = voters.filter((v) => t.acks.has(v)).length;
    if (2 * n <= voters.length) return;
    t.committed = true;
    this.emit({
      type: "viewCommitted",
      epoch: t.viewId.epoch,
      creator: t.viewId.creator,
      committedAt: this.now,
      // A majority of R installed the view and acknowledges the removed member no more; it
      // acknowledged it last by heardBound, so the member's lease ends by heardBound + L (a
      // lease needs a majority, and every majority includes one of these). Counting from when
      // it was last heard, not from the removal, takes the detection time out of the wait.
      removed: t.removed.map((r) => ({
        member: r.member,
        incarnation: r.incarnation,
        takeoverAllowedAt: takeoverAllowedAt(Math.min(r.heardBound, this.now), this.timing),
      })),
    });
  }

  // ---- lease ----

  /** Until when a majority of `voters` acknowledged us (our own share as of our last tick). */
  private leaseOver(voters: readonly string[]): number {
    if (voters.length === 0) return Number.NEGATIVE_INFINITY;
    const need = Math.floor(voters.length / 2) + 1;
    const times = voters
      .map((v) => {
        if (v === this.self.addr) return this.selfAck + this.timing.lease;
        if (!this.isMemberAddr(v)) return Number.NEGATIVE_INFINITY;
        return (this.leaseAcks.get(v) ?? Number.NEGATIVE_INFINITY) + this.timing.lease;
      })
      .sort((a, b) => b - a);
    return times[need - 1] ?? Number.NEGATIVE_INFINITY;
  }

  private evalLease(): void {
    let until = Number.NEGATIVE_INFINITY;
    const c = this.config;
    if (c.version !== this.leaseCfg.version) {
      // R changes one voter at a time, so every majority of the new R meets every majority of
      // the one before: acknowledgements a majority of the previous R gave still stop any
      // takeover. A voter just added has acknowledged nothing yet; without this, a master
      // would lose its lease (and fence itself) each time a standby joins. Only for one change
      // (a jump of several versions, after a merge, drops it) and for at most one lease length.
      const consecutive = c.version === this.leaseCfg.version + 1;
      this.leaseCfg = {
        version: c.version,
        voters: c.voters,
        prev: consecutive ? this.leaseCfg.voters : c.voters,
        changedAt: this.now,
      };
    }
    if (this.view) {
      until = Math.max(
        this.leaseOver(c.voters),
        Math.min(this.leaseOver(this.leaseCfg.prev), this.leaseCfg.changedAt + this.timing.lease),
      );
    }
    this.leaseUntilValue = until;
    const held = until > this.now;
    // Announce the lease each time it is established or pushed further, so the failover layer
    // learns every renewal as an event instead of polling leaseUntil().
    if (held && (!this.leaseHeld || until > this.leaseAnnounced)) {
      this.leaseAnnounced = until;
      this.emit({ type: "leaseValid", until });
    }
    if (!held && this.leaseHeld) {
      this.leaseAnnounced = Number.NEGATIVE_INFINITY;
      this.emit({ type: "leaseLost" });
    }
    this.leaseHeld = held;
    if (held && Number.isFinite(until) && this.leaseTimerAt !== until) {
      this.leaseTimerAt = until;
      this.setTimer("lease", until);
    }
  }

  // ---- configuration changes (R and the allowed list), one at a time ----

  private onAdmin(op: AdminOp): void {
    const fail = (error: string): void => {
      if (op.replyTo === this.self.addr)
        this.emit({ type: "adminResult", requestId: op.requestId, ok: false, error });
      else this.send(op.replyTo, { t: "adminRsp", requestId: op.requestId, ok: false, error });
    };
    if (!this.view) {
      fail("this agent is not a member of a running cluster");
      return;
    }
    if (!this.isCoord()) {
      if (op.replyTo === this.self.addr) {
        this.send(this.view.members[0]!.addr, {
          t: "admin",
          requestId: op.requestId,
          op: op.op,
          host: op.host,
        });
      } else fail("not the coordinator");
      return;
    }
    if (!this.quorate) {
      fail("the cluster view does not hold a majority of the voters");
      return;
    }
    this.adminQueue.push(op);
    this.nextCfgChange();
  }

  private reply(requestId: string, replyTo: string, ok: boolean, error: string | null): void {
    if (replyTo === this.self.addr) {
      this.emit({ type: "adminResult", requestId, ok, ...(error !== null ? { error } : {}) });
    } else this.send(replyTo, { t: "adminRsp", requestId, ok, error });
  }

  /** Start the next queued change when none is in flight and the view is quorate. */
  private nextCfgChange(): void {
    if (!this.view || !this.isCoord() || !this.quorate || this.cfgChange) return;
    const c = this.config;
    const op = this.adminQueue.shift();
    if (op) {
      if (op.op === "allow") {
        if (c.allowed.includes(op.host)) {
          this.finishNoop(op);
          return;
        }
        this.startCfgChange({ ...c, version: c.version + 1, allowed: [...c.allowed, op.host] }, [op]);
        return;
      }
      if (!c.allowed.includes(op.host) && !c.voters.some((v) => hostOf(v) === op.host)) {
        this.finishNoop(op);
        return;
      }
      const victim = c.voters.find((v) => hostOf(v) === op.host);
      this.startCfgChange(
        {
          version: c.version + 1,
          allowed: c.allowed.filter((h) => h !== op.host),
          voters: victim ? c.voters.filter((v) => v !== victim) : c.voters,
        },
        [op],
      );
      return;
    }
    for (const r of this.pendingVoterRemovals) {
      this.pendingVoterRemovals.delete(r);
      if (c.voters.includes(r) && !this.isMemberAddr(r)) {
        this.startCfgChange({ ...c, version: c.version + 1, voters: c.voters.filter((v) => v !== r) }, []);
        return;
      }
    }
    const newcomer = this.view.members.find((m) => !c.voters.includes(m.addr) && this.isAllowed(m.addr));
    if (newcomer) {
      this.startCfgChange({ ...c, version: c.version + 1, voters: [...c.voters, newcomer.addr] }, []);
    }
  }

  private finishNoop(op: AdminOp): void {
    this.reply(op.requestId, op.replyTo, true, null);
    this.nextCfgChange();
  }

  private startCfgChange(config: ClusterConfig, ops: AdminOp[]): void {
    this.cfgChange = {
      config,
      acks: new Set([this.self.addr]),
      replies: ops.map((o) => ({ requestId: o.requestId, replyTo: o.replyTo })),
    };
    if (config.version > this.config.version) {
      // The coordinator uses the new configuration at once (single-member changes keep every
      // old and new majority overlapping); it is committed once a majority of the new R holds it.
      this.config = config;
      this.persist();
      this.emit({ type: "configCommitted", config });
    }
    for (const m of this.others()) this.send(m, { t: "cfgPropose", config });
    this.checkCfgCommit();
  }

  private onCfgAck(from: string, held: ClusterConfig): void {
    const ch = this.cfgChange;
    if (!ch || !this.isCoord()) return;
    if (held.version > ch.config.version) {
      // A predecessor's change reached this member but not us: finish that one first.
      for (const r of ch.replies)
        this.reply(r.requestId, r.replyTo, false, "superseded by a newer configuration; retry");
      this.config = held;
      this.persist();
      this.emit({ type: "configCommitted", config: held });
      this.cfgChange = null;
      this.startCfgChange(held, []);
      return;
    }
    if (held.version === ch.config.version) ch.acks.add(from);
    this.checkCfgCommit();
  }

  private checkCfgCommit(): void {
    const ch = this.cfgChange;
    if (!ch) return;
    const voters = ch.config.voters;
    const n = voters.filter((v) => ch.acks.has(v)).length;
    if (2 * n <= voters.length) return;
    this.cfgChange = null;
    for (const m of this.others()) this.send(m, { t: "cfgCommit", config: ch.config });
    for (const r of ch.replies) this.reply(r.requestId, r.replyTo, true, null);
    this.recomputeQuorum();
    this.checkViewCommit();
    this.evalLease();
    // R grows (or shrinks) after the view that admitted (or let go) the member: install the same
    // members again so every member's view (and the failover layer's count of voters, which
    // decides whether a master cut off from the others must fence) names the R now in force.
    if (ch.config.voters.join(",") !== this.viewVoters.join(",")) {
      this.reinstallView = true;
      this.scheduleBatch();
    }
    this.nextCfgChange();
  }

  // ---- merging (MERGE3 style) ----

  private onInfo(from: string, info: InfoMsg): void {
    if (!this.view) {
      this.discovery.set(from, info);
      return;
    }
    if (!this.isCoord() || info.viewId === null || info.coord === null) return;
    if (sameViewId(info.viewId, this.view.id)) return;
    if (info.coord === this.self.addr) return;
    this.otherViews.set(info.coord, { info, at: this.now });
  }

  private rank(
    a: { quorate: boolean; share: number; coord: string },
    b: { quorate: boolean; share: number; coord: string },
  ): number {
    if (a.quorate !== b.quorate) return a.quorate ? -1 : 1;
    if (a.share !== b.share) return b.share - a.share;
    return compareAddr(a.coord, b.coord);
  }

  private onMergeTick(): void {
    if (!this.view || !this.isCoord()) return;
    this.setTimer("merge", this.now + this.timing.mergeInterval);
    const info = this.info();
    const mine = new Set(info.members);
    for (const c of this.candidates()) if (!mine.has(c)) this.send(c, info);
    if (this.merge && this.merge.until <= this.now) this.merge = null; // stalled: cancel
    if (this.merge) return;
    for (const [k, v] of this.otherViews)
      if (this.now - v.at > 2 * this.timing.mergeInterval) this.otherViews.delete(k);
    if (this.otherViews.size === 0) return;
    const me = { quorate: this.quorate, share: info.voterShare, coord: this.self.addr };
    const all = [
      me,
      ...[...this.otherViews.values()].map((o) => ({
        ...o.info,
        coord: o.info.coord!,
        share: o.info.voterShare,
      })),
    ];
    all.sort((a, b) => this.rank(a, b));
    if (all[0]!.coord !== this.self.addr) return; // the leader will ask us
    const id = `${this.self.addr}/${this.view.id.epoch}/${++this.mergeCounter}`;
    const expected = new Set(all.slice(1).map((o) => o.coord));
    this.merge = {
      id,
      leader: this.self.addr,
      until: this.now + this.timing.mergeTimeout,
      expected,
      responses: new Map(),
    };
    for (const c of expected) this.send(c, { t: "mergeReq", mergeId: id });
    this.setTimer("mergeEnd", this.now + Math.ceil(this.timing.mergeTimeout / 2));
  }

  private onMergeReq(from: string, mergeId: string): void {
    const no = (): void =>
      this.send(from, { t: "mergeRsp", mergeId, ok: false, view: null, config: null, quorate: false });
    if (!this.view || !this.isCoord() || this.leaving || !this.isAllowed(from)) {
      no();
      return;
    }
    if (this.merge && this.merge.until > this.now && this.merge.id !== mergeId) {
      // Busy: yield only to a leader that outranks us (it will wait for our answer).
      if (this.merge.leader !== this.self.addr) {
        no();
        return;
      }
      const me = {
        quorate: this.quorate,
        share: this.voterShare(this.others().concat(this.self.addr)),
        coord: this.self.addr,
      };
      const o = this.otherViews.get(from);
      if (!o || this.rank({ quorate: o.info.quorate, share: o.info.voterShare, coord: from }, me) >= 0) {
        no();
        return;
      }
    }
    this.merge = {
      id: mergeId,
      leader: from,
      until: this.now + this.timing.mergeTimeout,
      expected: new Set(),
      responses: new Map(),
    };
    this.send(from, {
      t: "mergeRsp",
      mergeId,
      ok: true,
      view: this.view,
      config: this.config,
      quorate: this.quorate,
    });
  }

  private onMergeRsp(from: string, msg: Extract<Msg, { t: "mergeRsp" }>): void {
    const m = this.merge;
    if (!m || m.leader !== this.self.addr || m.id !== msg.mergeId || !m.expected.has(from)) return;
    m.responses.set(from, msg);
    if (m.responses.size === m.expected.size) this.finishMerge();
  }

  private finishMerge(): void {
    const m = this.merge;
    if (!m || m.leader !== this.self.addr || !this.view) return;
    this.merge = null;
    const groups = [{ view: this.view, config: this.config, quorate: this.quorate }];
    for (const r of m.responses.values()) {
      if (r.ok && r.view && r.config && !sameViewId(r.view.id, this.view.id)) {
        groups.push({ view: r.view, config: r.config, quorate: r.quorate });
      }
    }
    if (groups.length < 2) return;
    let config = this.config;
    for (const g of groups) if (g.config.version > config.version) config = g.config;
    const ranked = groups
      .map((g) => ({
        ...g,
        share: this.voterShare(addrs(g.view.members), config.voters),
        coord: g.view.members[0]!.addr,
      }))
      .sort((a, b) => (a.coord === this.self.addr ? -1 : b.coord === this.self.addr ? 1 : this.rank(a, b)));
    const members: NodeId[] = [];
    const seen = new Set<string>();
    for (const g of ranked) {
      for (const x of g.view.members) {
        if (seen.has(x.addr)) continue;
        if (x.addr !== this.self.addr && !config.allowed.includes(hostOf(x.addr))) continue;
        seen.add(x.addr);
        members.push(x);
      }
    }
    const maxEpoch = Math.max(...groups.map((g) => g.view.id.epoch));
    if (maxEpoch > this.lastEpoch) this.lastEpoch = maxEpoch;
    if (config.version > this.config.version) {
      this.config = config;
      this.emit({ type: "configCommitted", config });
    }
    this.installNew(
      members,
      ranked.map((g) => addrs(g.view.members)),
      [],
      [],
    );
  }
}
