import {
  type AgentRole,
  type Command,
  createNode,
  type FailoverConfig,
  type FailoverNode,
  type FailoverState,
  formatLsn,
  initialState,
  type MembershipInput,
  type NodePorts,
  QUIET_RULES,
  settleWhen,
} from "@efm/failover-core";
import {
  type Effect,
  deriveTiming,
  hostOf,
  MembershipCore,
  type MembershipEvent,
  type Msg,
  type NodeId,
  type PersistedState,
  type Timing,
} from "@efm/membership";
import { type EventHandle, VirtualClock } from "./clock.ts";
import { VirtualNetwork } from "./network.ts";
import { createRng, type Rng } from "./rng.ts";

/** What travels on the virtual network between membership cores. */
interface Frame {
  readonly from: NodeId;
  readonly msg: Msg;
}

/** A fake PostgreSQL: up/down/hang, in recovery or not, a WAL position, fenced or not. */
export interface FakeDb {
  state: "up" | "down" | "hang";
  inRecovery: boolean;
  fenced: boolean;
  lsn: bigint;
  /** The master this standby streams from (null: none). */
  following: string | null;
  /** Probability per replication tick that this standby catches up (lagging standbys are low). */
  catchUp: number;
}

/** One simulated host: agent (membership core + failover engine), its database, its disk. */
export interface ClusterNode {
  readonly addr: string;
  readonly witness: boolean;
  hostUp: boolean;
  agentUp: boolean;
  gen: number;
  core: MembershipCore;
  /** This incarnation's failover node: the same driver the agent runs, with simulated ports. */
  node: FailoverNode;
  /** The node's engine state. */
  readonly fs: FailoverState;
  persisted: PersistedState | null;
  lists: { allowed: readonly string[]; priority: readonly string[] };
  timers: Map<string, EventHandle>;
  db: FakeDb | null;
}

/** Options of one combined simulation. */
export interface ClusterSimOptions {
  readonly seed: number;
  /** Number of hosts (3-7 when drawn from the seed). */
  readonly nodes?: number;
  /**
   * Deliberately broken rule for the checker's own test: take over a removed master's role as
   * soon as its removal is committed, without waiting out its lease (L + margin).
   */
  readonly skipLeaseWait?: boolean;
  /** Keep a readable transcript (slower); failing seeds are replayed with it on. */
  readonly transcript?: boolean;
}

/** What the simulator judges after every event; each violation is counted under one of these. */
export const INVARIANTS = {
  masters: "never two agents acting as master over databases that accept writes",
  databases: "never two databases that accept writes at the same time, whatever their agents believe",
  vip: "never two hosts holding the VIP",
  promotion:
    "a standby is promoted only in a majority view, from the best position (ties: priority), never with auto.failover=false unless an operator asked",
  settle: "the cluster forms with one master, and settles after the faults stop",
  node: "the failover node drops nothing (malformed peer messages, leases without an end)",
} as const;
export type InvariantName = keyof typeof INVARIANTS;

/**
 * Invariants known to fail today (see tooling/sim/README.md): judged, counted and printed with
 * their seeds, but not yet counted as failures; each has a test that fails once it holds.
 */
export const EXPECTED_TO_FAIL: ReadonlySet<InvariantName> = new Set(["databases"]);

/** Result of one seeded run. */
export interface ClusterSimResult {
  readonly seed: number;
  readonly nodes: number;
  readonly autoFailover: boolean;
  /** Violations of enforced invariants (the first few): any makes the seed fail. */
  readonly violations: readonly string[];
  /** Violations of invariants in EXPECTED_TO_FAIL (the first few). */
  readonly expectedViolations: readonly string[];
  /** How many times each invariant was found violated in this run. */
  readonly counts: Readonly<Record<InvariantName, number>>;
  readonly promotions: number;
  readonly steps: number;
  readonly transcript: readonly string[];
}

const VIP = "10.0.9.100";

/**
 * N agents (membership core + failover-core) on one virtual clock and network, with fake
 * databases and the VIP as a shared register. Invariants are checked after every event.
 */
export class ClusterSim {
  readonly clock = new VirtualClock();
  readonly rng: Rng;
  readonly net: VirtualNetwork<Frame>;
  readonly timing: Timing;
  readonly nodes = new Map<string, ClusterNode>();
  readonly violations: string[] = [];
  readonly expectedViolations: string[] = [];
  readonly counts: Record<InvariantName, number> = {
    masters: 0,
    databases: 0,
    vip: 0,
    promotion: 0,
    settle: 0,
    node: 0,
  };
  /** The databases that accepted writes together at the last check, while they still do. */
  private dbOverlap: string | null = null;
  readonly transcript: string[] = [];
  vipHolder: string | null = null;
  /** Agents that exited at start-up because a cluster database was unreachable (4.1.1). */
  readonly startupExits = new Set<string>();
  promotions = 0;
  manualCommands = 0;
  readonly autoFailover: boolean;
  private readonly vip: string | null;
  private readonly failRng: Rng;
  private readonly netRng: Rng;
  private readonly addrs: string[];
  private reqSeq = 0;
  private readonly rankedWith = new Map<string, readonly string[]>();
  /** Every database's WAL position when the coordinator sent a promotion (by promotion token). */
  private readonly positionsAt = new Map<string, ReadonlyMap<string, bigint>>();

  constructor(
    readonly opts: ClusterSimOptions,
    layout: {
      addrs: string[];
      witnesses: Set<string>;
      autoFailover: boolean;
      maxTries: number;
      /** Run without a virtual IP (its ping is what stops a promotion while an old master serves). */
      noVip?: boolean;
    },
  ) {
    this.rng = createRng(opts.seed);
    this.netRng = this.rng.fork();
    this.failRng = this.rng.fork();
    this.timing = deriveTiming(100, layout.maxTries);
    this.net = new VirtualNetwork<Frame>(this.clock, this.netRng, { minDelay: 1, maxDelay: 5, loss: 0 });
    this.addrs = layout.addrs;
    this.autoFailover = layout.autoFailover;
    this.vip = layout.noVip ? null : VIP;
    for (const [i, addr] of layout.addrs.entries()) {
      const witness = layout.witnesses.has(addr);
      const db: FakeDb | null = witness
        ? null
        : {
            state: "up",
            inRecovery: i !== 0,
            fenced: false,
            lsn: 0x3000000n,
            following: i === 0 ? null : layout.addrs[0]!,
            catchUp: this.rng.pick([1, 1, 0.5, 0.1]),
          };
      const node: ClusterNode = {
        addr,
        witness,
        hostUp: false,
        agentUp: false,
        gen: 0,
        core: this.newCore(addr, null),
        node: null as unknown as FailoverNode,
        get fs() {
          return this.node.state;
        },
        persisted: null,
        lists: { allowed: [], priority: [] },
        timers: new Map(),
        db,
      };
      node.node = this.newNode(node);
      this.nodes.set(addr, node);
    }
    this.clock.at(0, () => this.walTick());
  }

  private failoverConfig(
    addr: string,
    witness: boolean,
    lists: { allowed: readonly string[]; priority: readonly string[] },
  ): FailoverConfig {
    return {
      self: addr,
      clusterName: "sim",
      isWitness: witness,
      autoFailover: this.autoFailover,
      autoReconfigure: true,
      virtualIp: this.vip,
      pingServer: "8.8.8.8",
      scripts: { fence: "/bin/fence", postPromotion: null, dbFailure: null, masterIsolated: null },
      localPeriodMs: 200,
      localTimeoutMs: 300,
      localTimeoutFinalMs: 100,
      remoteTimeoutMs: 100,
      leaseMs: this.timing.lease,
      takeoverMarginMs: this.timing.driftMargin,
      messageSlackMs: 50,
      promotionTimeoutMs: 2000,
      allowed: lists.allowed,
      priority: lists.priority,
    };
  }

  /** A fresh failover node for the agent's current incarnation (`n.gen`). */
  private newNode(n: ClusterNode): FailoverNode {
    return createNode({
      state: initialState(this.failoverConfig(n.addr, n.witness, n.lists)),
      ports: this.ports(n, n.gen),
      clock: { now: () => this.clock.now(), schedule: (at, fire) => this.clock.at(at, fire) },
      observer: {
        stepped: (_e, r) => {
          if (!this.opts.transcript) return;
          for (const t of r.transitions) {
            if (QUIET.has(t.rule)) continue;
            this.log(`${n.addr}: ${t.rule}${t.from !== t.to ? ` (${t.from} -> ${t.to})` : ""}: ${t.reason}`);
          }
        },
        rejected: (_e, err) => {
          throw err;
        },
        dropped: (what, detail) =>
          this.violate("node", `${n.addr} dropped ${what}: ${JSON.stringify(detail)}`),
      },
    });
  }

  private newCore(addr: string, persisted: PersistedState | null): MembershipCore {
    return new MembershipCore({
      self: addr,
      incarnation: this.rng.hex(8),
      timing: this.timing,
      seeds: this.addrs.filter((a) => a !== addr),
      initialAllowed: this.addrs.map(hostOf),
      persisted,
    });
  }

  /** Append a line to the transcript (when enabled). */
  log(line: string): void {
    if (this.opts.transcript) this.transcript.push(`t=${this.clock.now().toFixed(1)} ${line}`);
  }

  node(addr: string): ClusterNode {
    const n = this.nodes.get(addr);
    if (!n) throw new Error(`no simulated node ${addr}`);
    return n;
  }

  // ---------------------------------------------------------------- faults and life cycle

  /** Boot the host (its database starts; a fenced database comes up in recovery) and the agent. */
  startHost(addr: string): void {
    const n = this.node(addr);
    if (!n.hostUp && n.db) {
      n.db.state = "up";
      if (n.db.fenced) n.db.inRecovery = true;
    }
    n.hostUp = true;
    this.startAgent(addr);
  }

  /** Start (or restart) the agent: a new membership incarnation and a fresh failover engine. */
  startAgent(addr: string): void {
    const n = this.node(addr);
    if (!n.hostUp || n.agentUp) return;
    n.gen++;
    n.agentUp = true;
    this.startupExits.delete(addr);
    n.core = this.newCore(addr, n.persisted);
    n.node.stop();
    n.node = this.newNode(n);
    const gen = n.gen;
    this.net.attach(addr, (_from, frame) =>
      this.membership(n, gen, { type: "frame", from: frame.from, msg: frame.msg }),
    );
    this.log(`${addr}: agent start`);
    this.membership(n, gen, { type: "start" });
    n.node.start();
  }

  /** Kill the agent process only; the database keeps running. */
  crashAgent(addr: string): void {
    const n = this.node(addr);
    if (!n.agentUp) return;
    n.agentUp = false;
    n.gen++;
    for (const t of n.timers.values()) t.cancel();
    n.timers.clear();
    n.node.stop();
    this.net.detach(addr);
    this.log(`${addr}: agent crash`);
  }

  /** Lose the whole host: agent, database and the VIP alias it held. */
  crashHost(addr: string): void {
    const n = this.node(addr);
    this.crashAgent(addr);
    n.hostUp = false;
    if (n.db) n.db.state = "down";
    if (this.vipHolder === addr) this.vipHolder = null;
    this.log(`${addr}: host crash`);
  }

  setDb(addr: string, state: FakeDb["state"]): void {
    const db = this.node(addr).db;
    if (db) db.state = state;
    this.log(`${addr}: database ${state}`);
  }

  /** Issue an efm command on a node (the admin channel). */
  command(addr: string, command: Command): void {
    const n = this.node(addr);
    if (!n.agentUp) return;
    if (command.kind === "promote") this.manualCommands++;
    this.reqSeq++;
    this.log(`${addr}: efm ${command.kind}`);
    n.node.command(`r${this.reqSeq}`, command);
  }

  // ---------------------------------------------------------------- databases

  private linked(a: string, b: string): boolean {
    return a === b || (!this.net.isCut(a, b) && !this.net.isCut(b, a));
  }

  /** Accepts client writes: the host is up and the server runs out of recovery. */
  private writable(n: ClusterNode): boolean {
    return n.hostUp && n.db !== null && n.db.state === "up" && !n.db.inRecovery;
  }

  /** The master writes; standbys stream from whoever they follow, some lagging. */
  private walTick(): void {
    for (const n of this.nodes.values()) if (this.writable(n)) n.db!.lsn += BigInt(this.failRng.int(1, 64));
    for (const n of this.nodes.values()) {
      const db = n.db;
      if (!db || !n.hostUp || db.state !== "up" || !db.inRecovery || !db.following) continue;
      const src = this.nodes.get(db.following);
      if (!src || !this.writable(src) || !this.linked(src.addr, n.addr)) continue;
      if (src.db!.lsn > db.lsn && this.failRng.chance(db.catchUp)) db.lsn = src.db!.lsn;
    }
    this.clock.after(20, () => this.walTick());
  }

  /** A connection from `from` to the database on `target`; `asMaster`: it must also be serving as a master. */
  private reach(from: string, target: string, asMaster = false): "reachable" | "unreachable" {
    const t = this.nodes.get(target);
    if (!t?.db || !t.hostUp || t.db.state !== "up" || !this.linked(from, target)) return "unreachable";
    // In this model a fenced database no longer serves (it stopped writing and shipping WAL).
    if (asMaster && (t.db.inRecovery || t.db.fenced)) return "unreachable";
    return "reachable";
  }

  // ---------------------------------------------------------------- membership glue

  private membership(n: ClusterNode, gen: number, input: Parameters<MembershipCore["handle"]>[1]): void {
    if (gen !== n.gen || !n.agentUp) return;
    const effects = n.core.handle(this.clock.now(), input);
    for (const e of effects) this.applyMembership(n, gen, e);
  }

  private applyMembership(n: ClusterNode, gen: number, e: Effect): void {
    switch (e.type) {
      case "send":
        this.net.send(n.addr, e.to, { from: n.core.self, msg: e.msg });
        return;
      case "setTimer": {
        n.timers.get(e.id)?.cancel();
        n.timers.set(
          e.id,
          this.clock.at(e.at, () => {
            n.timers.delete(e.id);
            this.membership(n, gen, { type: "timer", id: e.id });
          }),
        );
        return;
      }
      case "cancelTimer":
        n.timers.get(e.id)?.cancel();
        n.timers.delete(e.id);
        return;
      case "emit":
        n.node.membership(this.skipLeaseWait(e.event));
        return;
      case "persist":
        n.persisted = e.state;
        return;
      case "halt":
        this.crashAgent(n.addr);
        return;
      default:
        return;
    }
  }

  /** The deliberately broken rule of `skipLeaseWait`: take over a removed member at once. */
  private skipLeaseWait(ev: MembershipEvent): MembershipInput | MembershipEvent {
    if (!this.opts.skipLeaseWait || ev.type !== "viewCommitted") return ev;
    return { ...ev, removed: ev.removed.map((r) => ({ ...r, takeoverAllowedAt: ev.committedAt })) };
  }

  // ---------------------------------------------------------------- the world as the node's ports

  /** Deliver a port's result after `delay` ms of virtual time, computed then. */
  private later<T>(delay: number, make: () => T): PromiseLike<T> {
    return settleWhen((run) => this.clock.after(delay, run), make);
  }

  private ports(n: ClusterNode, gen: number): NodePorts {
    const me = n.addr;
    const done = { ok: true, output: "ok" };
    return {
      send: (to, message) => {
        // the priority list the coordinator ranked with, for the promotion invariant
        if (message.type === "promote") this.rankedWith.set(message.token, n.fs.priority);
        this.membership(n, gen, { type: "send", to, payload: message });
      },
      checkLocalRole: () => {
        const db = n.db;
        return this.later(db?.state === "hang" ? n.fs.config.localTimeoutMs : 1, () =>
          db?.state !== "up" ? "unreachable" : db.inRecovery || db.fenced ? "recovery" : "primary",
        );
      },
      checkLocalDb: (timeoutMs) => {
        const state = n.db?.state ?? "down";
        return this.later(state === "hang" ? timeoutMs : 1 + this.failRng.int(0, 2), () =>
          n.db?.state === "up"
            ? { ok: true }
            : { ok: false, failure: n.db?.state === "hang" ? ("timeout" as const) : ("refused" as const) },
        );
      },
      checkRemoteDb: (target, timeoutMs, asMaster) => {
        const result = this.reach(me, target);
        const t = this.nodes.get(target);
        const quick =
          result === "reachable" || (t?.hostUp && this.linked(me, target) && t.db?.state === "down");
        return this.later(quick ? 1 + this.failRng.int(0, 4) : timeoutMs, () =>
          this.reach(me, target, asMaster),
        );
      },
      queryLsn: () => this.later(1, () => (n.db?.state === "up" ? formatLsn(n.db.lsn) : null)),
      pingVip: () =>
        this.later(2, () => {
          const h = this.vipHolder;
          return h !== null && h !== me && this.node(h).hostUp && this.linked(me, h);
        }),
      pingServer: () => this.later(2, () => true),
      runScript: () => this.later(2, () => ({ exitCode: 0, output: "ok" })),
      checkPromotable: () =>
        this.later(2, () => {
          const db = n.db;
          const ok = db !== null && db.state === "up" && (db.inRecovery || db.fenced);
          return ok ? { ok } : { ok, error: "not a reachable standby" };
        }),
      promoteDb: () => {
        this.checkPromotion(n);
        return this.later(5, () => {
          const db = n.db;
          if (db === null || db.state !== "up") throw new Error("the database is not running");
          db.inRecovery = false;
          db.fenced = false;
          db.following = null;
          this.promotions++;
          this.log(`${me}: DATABASE PROMOTED at ${formatLsn(db.lsn)}`);
        });
      },
      fenceDb: () =>
        this.later(2, () => {
          if (n.db === null) throw new Error("no database");
          n.db.fenced = true;
          // As the agent does: a fenced server that still runs is restarted read-only, in
          // recovery; one that is down comes back in recovery at its next start; a hung one
          // cannot be restarted and stays what it was.
          if (n.db.state === "up") n.db.inRecovery = true;
          this.log(`${me}: database fenced`);
        }),
      reconfigureDb: (newMaster) =>
        this.later(3, () => {
          if (n.db) n.db.following = newMaster;
          if (n.db?.state !== "up") throw new Error("the database is not running");
        }),
      assignVip: () =>
        this.later(1, () => {
          if (this.vipHolder !== null && this.vipHolder !== me && this.node(this.vipHolder).hostUp) {
            this.violate(
              "vip",
              `${me} assigned the VIP while ${this.vipHolder} still holds it (two VIP holders)`,
            );
          }
          this.vipHolder = me;
          this.log(`${me}: VIP assigned`);
          return done;
        }),
      releaseVip: () =>
        this.later(1, () => {
          if (this.vipHolder === me) this.vipHolder = null;
          this.log(`${me}: VIP released`);
          return done;
        }),
      notify: (a) => {
        // promo.send: the coordinator has just chosen (also when it chose itself, with no message)
        if (a.id === "promotionStarted" && n.fs.promotion) {
          const at = new Map<string, bigint>();
          for (const x of this.nodes.values()) if (x.db) at.set(x.addr, x.db.lsn);
          this.positionsAt.set(n.fs.promotion.token, at);
        }
        this.log(`${me}: notify ${a.id}`);
      },
      writeState: (allowed, priority) => {
        n.lists = { allowed, priority };
      },
      respond: (_id, ok, message) => this.log(`${me}: respond ${ok ? "ok" : "error"}: ${message}`),
      exit: (code, reason) => {
        this.log(`${me}: agent exit ${code} (${reason})`);
        this.crashAgent(me);
        if (reason.startsWith("cannot connect to the database")) this.startupExits.add(me);
      },
    };
  }

  // ---------------------------------------------------------------- invariants

  /** Record a violation of `invariant`. */
  violate(invariant: InvariantName, what: string): void {
    this.counts[invariant]++;
    const list = EXPECTED_TO_FAIL.has(invariant) ? this.expectedViolations : this.violations;
    if (list.length < 5) list.push(`seed ${this.opts.seed} t=${this.clock.now()}: ${what}`);
    this.log(`!! VIOLATION (${invariant}): ${what}`);
  }

  /** This run's result. */
  result(nodes: number): ClusterSimResult {
    return {
      seed: this.opts.seed,
      nodes,
      autoFailover: this.autoFailover,
      violations: this.violations,
      expectedViolations: this.expectedViolations,
      counts: { ...this.counts },
      promotions: this.promotions,
      steps: this.clock.steps,
      transcript: this.transcript,
    };
  }

  /** At the moment a standby decides to promote: majority view, best position, auto.failover respected. */
  private checkPromotion(c: ClusterNode): void {
    if (!c.core.isQuorate()) this.violate("promotion", `${c.addr} promotes outside a majority view`);
    if (!this.autoFailover && this.manualCommands === 0) {
      this.violate("promotion", `${c.addr} promotes although auto.failover=false and nobody ran efm promote`);
    }
    const cand = c.fs.candidacy;
    const coord = cand ? this.nodes.get(cand.coordinator) : undefined;
    const priority = (cand && this.rankedWith.get(cand.token)) ?? coord?.fs.priority ?? c.fs.priority;
    // Positions as they were when the coordinator chose: WAL a standby receives after that can
    // only come from a primary the cluster already gave up (an old master's host that rebooted
    // with its database still a primary, or one Idle over a start-up conflict). No choice made
    // then could include it, and the failover discards it in any real cluster; stopping that
    // writer is script.fence's job. Without a recorded choice (a manual promote of ourselves) use now.
    const at = cand ? this.positionsAt.get(cand.token) : undefined;
    const pos = (x: ClusterNode): bigint => at?.get(x.addr) ?? x.db?.lsn ?? -1n;
    const mine = pos(c);
    const members = new Set(c.core.currentView()?.members ?? []);
    for (const s of this.nodes.values()) {
      if (s === c || !s.agentUp || !s.hostUp || !members.has(s.addr) || !this.linked(c.addr, s.addr))
        continue;
      if (s.fs.phase !== "running" || s.fs.role !== "Standby" || s.db?.state !== "up" || !s.db.inRecovery)
        continue;
      // reachable = both sides see each other in their views (membership drops traffic otherwise)
      if (!s.core.currentView()?.members.includes(c.addr)) continue;
      if (pos(s) > mine) {
        this.violate(
          "promotion",
          `${c.addr} promoted at ${formatLsn(mine)} but ${s.addr} had ${formatLsn(pos(s))}`,
        );
      } else if (pos(s) === mine) {
        const pi = (a: string) => (priority.indexOf(a) < 0 ? Number.MAX_SAFE_INTEGER : priority.indexOf(a));
        if (pi(s.addr) < pi(c.addr) || (pi(s.addr) === pi(c.addr) && s.addr < c.addr)) {
          this.violate(
            "promotion",
            `${c.addr} promoted but ${s.addr} is as up to date and first in the priority list`,
          );
        }
      }
    }
  }

  /** Agents acting as master (running, role Master) whose database accepts writes. */
  writableMasters(): string[] {
    return [...this.nodes.values()]
      .filter((n) => n.agentUp && n.fs.phase === "running" && n.fs.role === "Master" && this.writable(n))
      .map((n) => n.addr);
  }

  /**
   * Databases that accept a client write now: the host is up and the server runs out of
   * recovery. What their agents believe does not matter (an agent may be crashed, frozen or
   * still joining over a primary that serves).
   */
  writableDatabases(): string[] {
    return [...this.nodes.values()].filter((n) => this.writable(n)).map((n) => n.addr);
  }

  /** Checked after every event. */
  check(): void {
    const masters = this.writableMasters();
    if (masters.length > 1) this.violate("masters", `two writable masters acting: ${masters.join(", ")}`);
    const dbs = this.writableDatabases();
    const overlap = dbs.length > 1 ? dbs.join(", ") : null;
    // One report per overlap, not one per event while it lasts.
    if (overlap !== null && overlap !== this.dbOverlap)
      this.violate("databases", `two databases accept writes at once: ${overlap} (${this.roles()})`);
    this.dbOverlap = overlap;
  }

  roles(): string {
    return [...this.nodes.values()]
      .map((n) => {
        const role = !n.hostUp
          ? "host-down"
          : !n.agentUp
            ? "agent-down"
            : n.fs.phase === "running"
              ? n.fs.role
              : n.fs.phase;
        const db = n.db
          ? ` ${n.db.state}${n.db.inRecovery ? "/rec" : ""}${n.db.fenced ? "/fenced" : ""} ${formatLsn(n.db.lsn)}`
          : "";
        return `${n.addr}=${role}${db}`;
      })
      .join("  ");
  }

  /** Run until virtual time `t`, checking the invariants after every event. */
  runUntil(t: number): void {
    this.clock.runUntil(t, () => this.check());
  }

  /** Run until `pred` holds or time `t`; returns whether it held. */
  runUntilTrue(t: number, pred: () => boolean): boolean {
    for (;;) {
      if (pred()) return true;
      if (this.clock.now() >= t) return false;
      const before = this.clock.now();
      this.clock.runUntil(Math.min(t, before + 10), () => this.check());
    }
  }

  /** Run event by event until `pred` holds right after one (or time `t`); returns whether it held. */
  runUntilEvent(t: number, pred: () => boolean): boolean {
    while (!pred()) {
      if (this.clock.now() >= t || !this.clock.step()) return false;
      this.check();
    }
    return true;
  }

  /** Every live agent in one quorate view holding exactly the live agents. */
  converged(): boolean {
    const live = [...this.nodes.values()].filter((n) => n.agentUp);
    const want = live
      .map((n) => n.addr)
      .sort()
      .join(",");
    let epoch: number | null = null;
    for (const n of live) {
      const v = n.core.currentView();
      if (!v?.quorate || [...v.members].sort().join(",") !== want) return false;
      if (epoch !== null && v.epoch !== epoch) return false;
      epoch = v.epoch;
    }
    return live.length > 0;
  }
}

/** Periodic rows that would drown a transcript: the harness's, and the chatter of every check. */
const QUIET = new Set([
  ...QUIET_RULES,
  "checkDb.request",
  "checkDb.answer",
  "checkDb.reply",
  "lsn.request",
  "lsn.answer",
  "lsn.reply",
  "review.size.ok",
  "review.standbys.ok",
  "gone.record",
]);

/** The roles each agent plays, for reports. */
export type RoleMap = Record<string, AgentRole | null>;

const addrOf = (i: number): string => `10.0.1.${i + 1}:7800`;

/**
 * One seeded run: form the cluster, inject faults (partitions, one-way cuts, host and agent
 * crashes, database failures and hangs, message loss, manual promotions), then heal and check
 * the cluster settles. Same seed, same run.
 */
export function runClusterSim(seed: number, options: Omit<ClusterSimOptions, "seed"> = {}): ClusterSimResult {
  const setup = createRng(seed ^ 0xc1a5);
  const n = options.nodes ?? setup.int(3, 7);
  const addrs = Array.from({ length: n }, (_, i) => addrOf(i));
  const witnesses = new Set<string>(n >= 3 && setup.chance(0.5) ? [addrs[n - 1]!] : []);
  const autoFailover = !setup.chance(0.1);
  const sim = new ClusterSim(
    { seed, ...options },
    { addrs, witnesses, autoFailover, maxTries: setup.pick([3, 3, 4, 5]) },
  );
  const fail = (what: string): void => sim.violate("settle", what);
  for (const a of addrs) sim.clock.at(setup.int(0, 60), () => sim.startHost(a));
  const formBy = 3000;
  if (
    !sim.runUntilTrue(formBy, () => sim.converged() && sim.writableMasters().length === 1 && allRunning(sim))
  ) {
    fail(`cluster did not form with one master by ${formBy} ms: ${sim.roles()}`);
  }
  // ---- safety phase: faults
  const t0 = sim.clock.now();
  const faults = setup.int(1, 4);
  let dbFaults = false;
  const master = (): string => sim.writableMasters()[0] ?? addrs[0]!;
  const kinds = Array.from({ length: faults }, () => setup.int(0, 8));
  // A master whose agent died cannot fence itself; if the network also splits, only a real STONITH
  // could stop it (EFM's documented limit), so such seeds crash only non-master agents.
  const netFaults = kinds.some((k) => k <= 2);
  for (const kind of kinds) {
    const at = t0 + setup.int(0, 2500);
    const a = setup.pick(addrs);
    const b = setup.pick(addrs.filter((x) => x !== a));
    if (kind === 4 || kind === 5) dbFaults = true;
    sim.clock.at(at, () => {
      switch (kind) {
        case 0: {
          const order = setup.shuffle(addrs);
          const cut = setup.int(1, n - 1);
          sim.net.partition([order.slice(0, cut), order.slice(cut)]);
          sim.log(`partition ${order.slice(0, cut).join(",")} | ${order.slice(cut).join(",")}`);
          return;
        }
        case 1: {
          // isolate the master (with maybe one companion): the 8.6 scenario
          const m = master();
          const group = setup.chance(0.5) ? [m] : [m, b === m ? a : b];
          sim.net.partition([group, addrs.filter((x) => !group.includes(x))]);
          sim.log(`isolate ${group.join(",")}`);
          return;
        }
        case 2:
          sim.net.cutOneWay(a, b);
          sim.log(`cut ${a} -> ${b}`);
          return;
        case 3: {
          const victim = setup.chance(0.5) ? master() : a;
          sim.crashHost(victim);
          sim.clock.after(setup.int(200, 1500), () => sim.startHost(victim));
          return;
        }
        case 4:
          sim.setDb(setup.chance(0.6) ? master() : a, setup.chance(0.8) ? "down" : "hang");
          return;
        case 5:
          sim.setDb(a, "down");
          return;
        case 6: {
          const others = addrs.filter((x) => x !== master());
          const victim = netFaults ? setup.pick(others) : setup.chance(0.5) ? master() : a;
          sim.crashAgent(victim);
          sim.clock.after(setup.int(200, 1500), () => sim.startAgent(victim));
          return;
        }
        case 7:
          sim.net.setDefaults({ minDelay: 1, maxDelay: 20, loss: 0.05 });
          sim.log("lossy network");
          return;
        default:
          sim.command(setup.pick(addrs), { kind: "promote", force: true });
          return;
      }
    });
  }
  sim.runUntil(t0 + 3000);
  // ---- liveness phase: heal everything but failed databases
  sim.net.heal();
  sim.net.setDefaults({ minDelay: 1, maxDelay: 5, loss: 0 });
  sim.log("heal");
  for (const a of addrs) {
    const x = sim.node(a);
    if (!x.hostUp) sim.startHost(a);
    else if (!x.agentUp) sim.startAgent(a);
  }
  const bound = sim.clock.now() + 12 * sim.timing.suspectAfter + 6000;
  const settled = sim.runUntilTrue(bound, () => {
    // 4.1.1: an agent that cannot reach every cluster database at start-up exits, so a database
    // that stays failed keeps restarted agents down until the operator repairs it (EFM does the same).
    const down = [...sim.nodes.values()].filter((x) => x.hostUp && !x.agentUp);
    if (dbFaults && down.length > 0 && down.every((x) => sim.startupExits.has(x.addr))) return true;
    if (!sim.converged()) return false;
    const live = [...sim.nodes.values()].filter((x) => x.agentUp);
    if (live.some((x) => x.fs.role === "Promoting" || x.fs.phase !== "running")) return false;
    const masters = sim.writableMasters().length;
    // Without a healthy standby there is nothing to promote (EFM: "Failover has not occurred").
    const healthyStandby = live.some((x) => x.fs.role === "Standby" && x.db?.state === "up");
    return masters === 1 || (masters === 0 && (dbFaults || !autoFailover || !healthyStandby));
  });
  if (!settled) fail(`did not settle after the faults stopped: ${sim.roles()}`);
  return sim.result(n);
}

function allRunning(sim: ClusterSim): boolean {
  return [...sim.nodes.values()].every((n) => n.agentUp && n.fs.phase === "running");
}

/**
 * The cascading split where the lease wait matters: five nodes split {A,B,C} | {D,E} (A is the
 * master), then C moves: {A,B} | {C,D,E}. C, D and E merge into a majority at once (no silence
 * detection needed) and remove A while A may still hold the lease C's last acknowledgements gave it.
 * Taking over before lease + margin then yields two writable masters.
 */
export function runCascadeSim(seed: number, options: Omit<ClusterSimOptions, "seed"> = {}): ClusterSimResult {
  const setup = createRng(seed ^ 0xca5c);
  const addrs = Array.from({ length: 5 }, (_, i) => addrOf(i));
  const sim = new ClusterSim(
    { seed, ...options },
    { addrs, witnesses: new Set(), autoFailover: true, maxTries: setup.pick([3, 4, 5]) },
  );
  for (const a of addrs) sim.clock.at(setup.int(0, 60), () => sim.startHost(a));
  if (
    !sim.runUntilTrue(3000, () => sim.converged() && sim.writableMasters().length === 1 && allRunning(sim))
  ) {
    sim.violate("settle", `cluster did not form: ${sim.roles()}`);
  }
  const [A, B, C, D, E] = addrs as [string, string, string, string, string];
  const t0 = sim.clock.now();
  sim.net.partition([
    [A, B, C],
    [D, E],
  ]);
  sim.log("partition A,B,C | D,E");
  sim.runUntil(t0 + setup.int(200, 1500));
  sim.net.heal();
  sim.net.partition([
    [A, B],
    [C, D, E],
  ]);
  sim.log("partition A,B | C,D,E");
  sim.runUntil(sim.clock.now() + 4000);
  return sim.result(5);
}

/**
 * A one-way cut from the master to the coordinator: the coordinator stops hearing the master and
 * removes it, while the master still hears (and is acknowledged by) the others for a while. The
 * coordinator, itself a standby, cannot reach the master's database or VIP either, so only the
 * lease wait keeps it from promoting while the old master is still writable.
 */
export function runOneWayCutSim(
  seed: number,
  options: Omit<ClusterSimOptions, "seed"> = {},
): ClusterSimResult {
  const setup = createRng(seed ^ 0x1ca7);
  const n = setup.int(4, 6);
  const addrs = Array.from({ length: n }, (_, i) => addrOf(i));
  const sim = new ClusterSim(
    { seed, ...options },
    { addrs, witnesses: new Set(), autoFailover: true, maxTries: setup.pick([3, 4, 5]) },
  );
  const master = addrs[0]!;
  const coordinator = addrs[1]!;
  // the coordinator (oldest member) is a standby: it starts first
  sim.clock.at(0, () => sim.startHost(coordinator));
  for (const a of addrs) if (a !== coordinator) sim.clock.at(setup.int(40, 80), () => sim.startHost(a));
  if (
    !sim.runUntilTrue(3000, () => sim.converged() && sim.writableMasters().length === 1 && allRunning(sim))
  ) {
    sim.violate("settle", `cluster did not form: ${sim.roles()}`);
  }
  sim.runUntil(sim.clock.now() + setup.int(0, 300));
  sim.net.cutOneWay(master, coordinator);
  sim.log(`cut ${master} -> ${coordinator}`);
  sim.runUntil(sim.clock.now() + 4000);
  return sim.result(n);
}

/**
 * The case the master lease exists for, built deterministically: the master's traffic to the
 * coordinator is cut one way, so the coordinator removes the master while the other members still
 * hear it and acknowledge its heartbeats, renewing its lease until they install the view without
 * it. At that very moment (before anyone checks its database) the master is isolated completely:
 * the majority can no longer reach its database and fails over, and the old master, which hears
 * nobody, keeps a valid lease for about L after the removal. Only waiting for takeoverAllowedAt
 * (committedAt + L + margin) keeps the promotion after the old master fenced itself; with
 * `skipLeaseWait` the promotion lands inside the old lease and two writable masters coexist.
 */
export function runLeaseWaitSim(
  seed: number,
  options: Omit<ClusterSimOptions, "seed"> = {},
): ClusterSimResult {
  const setup = createRng(seed ^ 0x1ea5e);
  const n = setup.int(3, 6);
  const addrs = Array.from({ length: n }, (_, i) => addrOf(i));
  // max.tries >= 5 (8 is the default): the lease L = (max.tries - 1) x T outlasts the path from
  // removal to promotion (about two remote.timeouts here, 250 ms), so a takeover that skips the
  // wait always lands inside the old master's lease.
  const sim = new ClusterSim(
    { seed, ...options },
    { addrs, witnesses: new Set(), autoFailover: true, maxTries: setup.pick([5, 6, 8]) },
  );
  const master = addrs[0]!;
  // The standbys found the cluster first, so the coordinator (its oldest member) is a standby.
  for (const a of addrs.slice(1)) sim.clock.at(setup.int(0, 40), () => sim.startHost(a));
  sim.clock.at(setup.int(400, 500), () => sim.startHost(master));
  if (
    !sim.runUntilTrue(3000, () => sim.converged() && sim.writableMasters().length === 1 && allRunning(sim))
  ) {
    sim.violate("settle", `cluster did not form: ${sim.roles()}`);
  }
  sim.runUntil(sim.clock.now() + setup.int(0, 300));
  const coordinator = sim.node(master).core.currentView()?.coordinator ?? addrs[1]!;
  if (coordinator === master) sim.violate("settle", `the master coordinates: ${sim.roles()}`);
  sim.net.cutOneWay(master, coordinator);
  sim.log(`cut ${master} -> ${coordinator}`);
  const removed = sim.runUntilEvent(sim.clock.now() + 3000, () => {
    const v = sim.node(coordinator).core.currentView();
    return v !== null && !v.members.includes(master);
  });
  if (!removed) sim.violate("settle", `the coordinator never removed the master: ${sim.roles()}`);
  sim.net.partition([[master], addrs.filter((a) => a !== master)]);
  sim.log(`isolate ${master}`);
  sim.runUntil(sim.clock.now() + 4000);
  return sim.result(n);
}

/**
 * Issue 12's schedule "master agent crashed, its database healthy, no VIP, `efm promote`": the
 * master's agent dies while its database keeps serving, and an operator promotes a standby.
 * With no VIP to ping, only the candidate's check of the old master's database stands between
 * this and a second primary; the promotion must be refused while that database serves.
 */
export function runAgentlessPromoteSim(
  seed: number,
  options: Omit<ClusterSimOptions, "seed"> = {},
): ClusterSimResult {
  const setup = createRng(seed ^ 0xa9e1);
  const n = setup.int(3, 5);
  const addrs = Array.from({ length: n }, (_, i) => addrOf(i));
  const sim = new ClusterSim(
    { seed, ...options },
    { addrs, witnesses: new Set(), autoFailover: true, maxTries: setup.pick([3, 4, 5]), noVip: true },
  );
  for (const a of addrs) sim.clock.at(setup.int(0, 60), () => sim.startHost(a));
  if (
    !sim.runUntilTrue(3000, () => sim.converged() && sim.writableMasters().length === 1 && allRunning(sim))
  ) {
    sim.violate("settle", `cluster did not form: ${sim.roles()}`);
  }
  const master = sim.writableMasters()[0] ?? addrs[0]!;
  sim.runUntil(sim.clock.now() + setup.int(0, 300));
  sim.crashAgent(master);
  // The others remove the master's agent and find its database still up (guide 8.3: no failover).
  sim.runUntil(sim.clock.now() + 8 * sim.timing.suspectAfter);
  const operator = setup.pick(addrs.filter((a) => a !== master));
  sim.command(operator, { kind: "promote", force: setup.chance(0.5) });
  sim.runUntil(sim.clock.now() + 4000);
  return sim.result(n);
}

/**
 * Issue 12's "a rebooted old primary whose agent is still joining": the master's host is lost,
 * a standby is promoted, then the old host boots again and its database starts as it was, a
 * primary, before (and whatever) its agent decides. Judged on the agents' beliefs this is fine
 * (the old agent is only starting); judged on the databases two of them accept writes. Expected
 * to fail until a primary that lost its role cannot come back writable (fencing that survives a
 * crash, or a database started in recovery by default).
 */
export function runRebootedOldPrimarySim(
  seed: number,
  options: Omit<ClusterSimOptions, "seed"> = {},
): ClusterSimResult {
  const setup = createRng(seed ^ 0x5eb0);
  const n = setup.int(3, 5);
  const addrs = Array.from({ length: n }, (_, i) => addrOf(i));
  const sim = new ClusterSim(
    { seed, ...options },
    { addrs, witnesses: new Set(), autoFailover: true, maxTries: setup.pick([3, 4, 5]) },
  );
  for (const a of addrs) sim.clock.at(setup.int(0, 60), () => sim.startHost(a));
  if (
    !sim.runUntilTrue(3000, () => sim.converged() && sim.writableMasters().length === 1 && allRunning(sim))
  ) {
    sim.violate("settle", `cluster did not form: ${sim.roles()}`);
  }
  const master = sim.writableMasters()[0] ?? addrs[0]!;
  sim.runUntil(sim.clock.now() + setup.int(0, 300));
  sim.crashHost(master);
  const failedOver = sim.runUntilTrue(sim.clock.now() + 12 * sim.timing.suspectAfter + 6000, () =>
    sim.writableMasters().some((a) => a !== master),
  );
  if (!failedOver) sim.violate("settle", `no standby took over from the lost master: ${sim.roles()}`);
  sim.startHost(master);
  sim.runUntil(sim.clock.now() + 3000);
  return sim.result(n);
}
