import {
  type AgentRole,
  type Command,
  createNode,
  type FailoverConfig,
  type FailoverNode,
  type FailoverState,
  formatLsn,
  holdsMasterDb,
  pastFork,
  initialState,
  type MembershipInput,
  type NodePorts,
  type PersistedFailoverState,
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
  quietAfter,
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

/** A fake PostgreSQL: up/down/hang, in recovery or not, a timeline and WAL position, fenced or not. */
export interface FakeDb {
  state: "up" | "down" | "hang";
  inRecovery: boolean;
  /** Recovery settings written (standby.signal): the next start is in recovery. */
  fenced: boolean;
  /** The timeline its WAL is on (1 at the start; each promotion opens a new one). */
  timeline: number;
  lsn: bigint;
  /** The master this standby streams from (null: none). */
  following: string | null;

  /** Probability per replication tick that this standby catches up (lagging standbys are low). */
  catchUp: number;
  /**
   * A fence sent SIGKILL to every server process while the server was hung (a stuck disk: the
   * kill cannot be confirmed): the kernel delivers it the moment the server resumes, so it dies
   * before it takes another write.
   */
  killPending?: boolean;
}

/**
 * The host's watchdog device and the agent's driver of it (apps/agent/src/watchdog): armed while
 * the agent is Master or Promoting, fed from the agent's own loop only while the lease leaves
 * enough time, left armed and unfed while a fence runs or after one failed; when nobody feeds it
 * in time it resets the host. The device outlives the agent process (closing it without the
 * magic close does not stop it): a crashed master agent's host is reset too.
 */
interface HostWatchdog {
  /** The device counts down to this virtual time; null: not running. */
  deadline: number | null;
  handle: EventHandle | null;
  /** This agent incarnation opened the device (a restarted agent starts without it). */
  open: boolean;
  fencing: number;
  fenceFailed: boolean;
  /** Phase and role at the driver's last look. */
  seen?: string;
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
  /** The failover engine's persisted record: kept across agent restarts and host reboots. */
  failoverRecord?: PersistedFailoverState;
  lists: { allowed: readonly string[]; priority: readonly string[] };
  timers: Map<string, EventHandle>;
  db: FakeDb | null;
  /** The agent process is stopped (SIGSTOP, GC, swap) until this virtual time; its database serves on. */
  pausedUntil: number;
  /** This host's clock: local = offset + rate x virtual time (drift; jumps move the offset). */
  clockRate: number;
  clockOffset: number;
  watchdog: HostWatchdog;
  /** Host crashes so far: an operation in flight when the host went down died with it. */
  crashes: number;
}

/** How harsh the world of one run is (drawn from the seed by runClusterSim). */
export interface WorldOptions {
  /** Fences and promotions take time, fail and hang (sudo refused, a slow stop, a stuck pg_ctl). */
  readonly slowOps?: boolean;
  /** jgroups.timeout in virtual ms; 100 is fast, 5000 is the guide's default (then the guide's other defaults too). */
  readonly timeoutMs?: number;
}

/** How the simulated watchdog devices are driven. */
export interface WatchdogSimPlan {
  readonly deviceTimeoutMs: number;
  readonly feedEveryMs: number;
  readonly minLeaseLeftMs: number;
}

/**
 * The agent's watchdog plan (apps/agent/src/watchdog/timing.ts, planWatchdog) for this world's
 * timings, with the device set to the longest timeout the plan accepts (the worst case for
 * safety): keepalives only while `leaseUntil - now >= minLeaseLeft`, so the device fires before
 * the majority's lease wait (L + takeover margin) ends. `watchdog.safety.margin` is its default
 * (2 s) with the guide's timings and 20 ms with the fast ones (2 s would leave no timeout that fits).
 */
export function planSimWatchdog(timing: Timing, scale: number): WatchdogSimPlan {
  const safety = scale >= 50 ? 2000 : 20 * scale;
  const renewalDip = Math.ceil(1.5 * timing.heartbeatInterval);
  const feedEveryMs = Math.max(50, Math.min(1000, timing.heartbeatInterval));
  const healthyLow = timing.lease - renewalDip - feedEveryMs;
  const deviceTimeoutMs = healthyLow + timing.driftMargin - safety;
  if (healthyLow <= 0 || deviceTimeoutMs <= 0)
    throw new Error(
      `no watchdog timeout fits lease ${timing.lease} ms with heartbeats ${timing.heartbeatInterval} ms`,
    );
  const minLeaseLeftMs = Math.max(0, deviceTimeoutMs + safety - timing.driftMargin);
  return { deviceTimeoutMs, feedEveryMs, minLeaseLeftMs };
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
  /** Membership removes a member on one member's suspicion (the old rule; CoreOptions.suspicionRule). */
  readonly suspicionRule?: "majority" | "own";
  /** Keep a readable transcript (slower); failing seeds are replayed with it on. */
  readonly transcript?: boolean;
  /** runClusterSim: draw faults only from these kinds (default: all of FAULT_KINDS). */
  readonly faults?: readonly FaultKind[];
  /**
   * The checker's own test: hosts without a watchdog device (watchdog.mode=automatic on a host
   * where none can be opened). A frozen master on an isolated host then writes beside the new one.
   */
  readonly noWatchdog?: boolean;
}

/** What the simulator judges after every event; each violation is counted under one of these. */
export const INVARIANTS = {
  masters: "never two agents acting as master over databases that accept writes",
  databases: "never two databases that accept writes at the same time, whatever their agents believe",
  vip: "never two hosts holding the VIP",
  promotion:
    "a standby is promoted only in a majority view, on the newest timeline with the highest WAL position among the eligible standbys (ties: priority)",
  diverged:
    "a database that wrote past the fork of a newer timeline (an old master) is never promoted until rewound or rebuilt",
  lostWrites:
    "no acknowledged write is lost except those asynchronous replication allows (written after the last standby received WAL from that master)",
  autoFailover: "auto.failover=false never promotes unless an operator ran efm promote",
  settle: "the cluster forms with one master, and settles after the faults stop",
  liveness:
    "after the faults stop, with a majority of voters up and connected, a healthy standby and auto.failover on, a writable master exists within the bound",
  node: "the failover node drops nothing (malformed peer messages, leases without an end)",
} as const;
export type InvariantName = keyof typeof INVARIANTS;

/**
 * Invariants known to fail today (see tooling/sim/README.md): judged, counted and printed with
 * their seeds in `expectedViolations`. CI holds them to the known-failing seeds of src/baseline.ts,
 * and the named scenarios that break them are it.fails tests that turn red once they hold.
 */
export const EXPECTED_TO_FAIL: ReadonlySet<InvariantName> = new Set(["lostWrites", "liveness"]);

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
  /** Acknowledged writes lost beyond asynchronous replication's allowance. */
  readonly lostWrites: number;
  readonly steps: number;
  readonly transcript: readonly string[];
}

const VIP = "10.0.9.100";
/** No run needs this many events (the longest seeds of 2,000 take about 100,000). */
const MAX_STEPS = 3_000_000;

/**
 * N agents (membership core + failover-core) on one virtual clock and network, with fake
 * databases and the VIP as a shared register. Invariants are checked after every event.
 */
/** What the watchdog last looked at: a change of any of it calls for another look. */
function watchdogSeen(fs: FailoverState): string {
  return `${fs.phase}/${fs.role}/${holdsMasterDb(fs)}`;
}

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
    diverged: 0,
    lostWrites: 0,
    autoFailover: 0,
    settle: 0,
    liveness: 0,
    node: 0,
  };
  /** Timelines: each but the first was opened by a promotion at `fork` on `parent`. */
  readonly timelines = new Map<number, { parent: number | null; fork: bigint }>([
    [1, { parent: null, fork: 0n }],
  ]);
  /** WAL positions of the client writes each timeline acknowledged. */
  readonly writes = new Map<number, bigint[]>();
  /** Per timeline, the highest position a standby received while streaming it. */
  readonly replicated = new Map<number, bigint>();
  /** Acknowledged writes lost beyond asynchronous replication's allowance (computed by `judgeWrites`). */
  lostWrites = 0;
  readonly world: Required<WorldOptions>;
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
  private readonly bootstrap: ReadonlySet<string>;
  private reqSeq = 0;
  private readonly rankedWith = new Map<string, readonly string[]>();
  /** Each database's position as its agent last reported it (what a coordinator ranks by). */
  private readonly reported = new Map<string, { timeline: number; lsn: bigint }>();
  /** How every host's watchdog is driven (null: no device, `noWatchdog`). */
  readonly watchdogPlan: WatchdogSimPlan | null;

  constructor(
    readonly opts: ClusterSimOptions,
    layout: {
      addrs: string[];
      witnesses: Set<string>;
      autoFailover: boolean;
      maxTries: number;
      /** Run without a virtual IP (its ping is what stops a promotion while an old master serves). */
      noVip?: boolean;
      /** Agents started with the operator's bootstrap flag: they may found a cluster alone. */
      bootstrap?: readonly string[];
      world?: WorldOptions;
    },
  ) {
    this.rng = createRng(opts.seed);
    this.netRng = this.rng.fork();
    this.failRng = this.rng.fork();
    this.world = { slowOps: false, timeoutMs: 100, ...layout.world };
    this.timing = deriveTiming(this.world.timeoutMs, layout.maxTries);
    this.net = new VirtualNetwork<Frame>(this.clock, this.netRng, { minDelay: 1, maxDelay: 5, loss: 0 });
    this.addrs = layout.addrs;
    this.autoFailover = layout.autoFailover;
    this.bootstrap = new Set(layout.bootstrap ?? []);
    this.vip = layout.noVip ? null : VIP;
    for (const [i, addr] of layout.addrs.entries()) {
      const witness = layout.witnesses.has(addr);
      const db: FakeDb | null = witness
        ? null
        : {
            state: "up",
            inRecovery: i !== 0,
            fenced: false,
            timeline: 1,
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
        pausedUntil: 0,
        clockRate: 1,
        clockOffset: 0,
        watchdog: { deadline: null, handle: null, open: false, fencing: 0, fenceFailed: false },
        crashes: 0,
      };
      node.node = this.newNode(node);
      this.nodes.set(addr, node);
    }
    this.watchdogPlan = opts.noWatchdog ? null : planSimWatchdog(this.timing, this.scale);
    this.clock.at(0, () => this.walTick());
  }

  /** remote.timeout of this world: the guide's 10 s at its default timings, else 100 ms. */
  private remoteTimeoutMs(): number {
    return this.world.timeoutMs >= 5000 ? 10_000 : 100;
  }

  private failoverConfig(
    addr: string,
    witness: boolean,
    lists: { allowed: readonly string[]; priority: readonly string[] },
  ): FailoverConfig {
    if (this.world.timeoutMs >= 5000) return { ...this.defaultTimings(addr, witness, lists) };
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
      remoteTimeoutMs: this.remoteTimeoutMs(),
      leaseMs: this.timing.lease,
      takeoverMarginMs: this.timing.driftMargin,
      messageSlackMs: 50,
      promotionTimeoutMs: 2000,
      allowed: lists.allowed,
      priority: lists.priority,
    };
  }

  /** The guide's default timings (local.period 10 s, local.timeout 60 s, remote.timeout 10 s ...), as the agent derives them. */
  private defaultTimings(
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
      localPeriodMs: 10_000,
      localTimeoutMs: 60_000,
      localTimeoutFinalMs: 10_000,
      remoteTimeoutMs: this.remoteTimeoutMs(),
      leaseMs: this.timing.lease,
      takeoverMarginMs: this.timing.driftMargin,
      messageSlackMs: Math.max(2000, this.world.timeoutMs),
      // (2 x script.timeout + local.timeout) + 30 s, script.timeout 30 s
      promotionTimeoutMs: 150_000,
      allowed: lists.allowed,
      priority: lists.priority,
    };
  }

  /** Virtual ms per "fast" ms: 1 with jgroups.timeout 100, 50 with the guide's 5000. */
  get scale(): number {
    return this.world.timeoutMs / 100;
  }

  /** The host's own clock (drift and jumps) at virtual time `t`. */
  localTime(n: ClusterNode, t = this.clock.now()): number {
    return n.clockOffset + n.clockRate * t;
  }

  /** The virtual time at which the host's clock shows `local` (never in the past). */
  private virtualAt(n: ClusterNode, local: number): number {
    let t = (local - n.clockOffset) / n.clockRate;
    // Rounding may leave the host's clock a hair short of `local` at t: a timer that checks its
    // time would re-arm at the same instant forever.
    for (let i = 0; this.localTime(n, t) < local && i < 8; i++) t += 1e-6 * 2 ** i;
    return Math.max(this.clock.now(), t);
  }

  /**
   * Run `fn` for the agent of `n` only while its process runs: a paused agent handles its
   * messages, timers and results late, all at once, in order (SIGSTOP, a long GC, swap).
   */
  private gate(n: ClusterNode, fn: () => void): () => void {
    const run = (): void => {
      if (this.clock.now() < n.pausedUntil) this.clock.at(n.pausedUntil, run);
      else fn();
    };
    return run;
  }

  /** Stop the agent process of `addr` for `ms` (its database keeps serving). */
  pauseAgent(addr: string, ms: number): void {
    const n = this.node(addr);
    n.pausedUntil = Math.max(n.pausedUntil, this.clock.now() + ms);
    this.log(`${addr}: agent paused for ${ms} ms`);
  }

  /** Step the host's clock by `ms` (NTP step; the agent reads the wall clock). */
  jumpClock(addr: string, ms: number): void {
    this.node(addr).clockOffset += ms;
    this.log(`${addr}: clock jumps ${ms > 0 ? "+" : ""}${ms} ms`);
  }

  // ---------------------------------------------------------------- the watchdog

  /**
   * One look of the agent's watchdog driver at its role and lease (HardwareWatchdog.tick): arm
   * when Master or Promoting, feed while the lease leaves enough time, keep armed and unfed while
   * a fence runs or after one failed, disarm once stepped down with the database fenced. Runs on
   * the agent's loop, so a paused agent feeds nothing.
   */
  private watchdogTick(n: ClusterNode, gen: number): void {
    const plan = this.watchdogPlan;
    if (!plan || gen !== n.gen || !n.agentUp) return;
    this.watchdogLook(n);
    this.clock.after(
      plan.feedEveryMs,
      this.gate(n, () => this.watchdogTick(n, gen)),
    );
  }

  /** The agent's look at the device: on its timer, and right after a step changes role or phase. */
  private watchdogLook(n: ClusterNode): void {
    const plan = this.watchdogPlan;
    if (!plan) return;
    const wd = n.watchdog;
    wd.seen = watchdogSeen(n.fs);
    // As the agent: an Idle agent still holding the master's database (8.1) is guarded too.
    const writable = n.fs.phase === "running" && (holdsMasterDb(n.fs) || n.fs.role === "Promoting");
    if (!wd.open && writable) {
      wd.open = true;
      wd.fenceFailed = false;
      this.feedWatchdog(n);
      this.log(`${n.addr}: watchdog armed`);
    }
    if (wd.open) {
      if (!writable) {
        // (HardwareWatchdog's fencePending: the step-down releases the VIP before the fence starts)
        if (wd.fencing === 0 && !wd.fenceFailed && n.fs.selfFence === null && !n.fs.fenceUnconfirmed) {
          wd.open = false;
          wd.handle?.cancel();
          wd.handle = null;
          wd.deadline = null;
          this.log(`${n.addr}: watchdog disarmed`);
        }
      } else {
        const left = n.core.leaseUntil() - this.localTime(n);
        if (Number.isFinite(left) && left > 0 && left >= plan.minLeaseLeftMs) this.feedWatchdog(n);
      }
    }
  }

  /** A keepalive: the device's countdown starts again. */
  private feedWatchdog(n: ClusterNode): void {
    const plan = this.watchdogPlan!;
    const wd = n.watchdog;
    wd.handle?.cancel();
    wd.deadline = this.clock.now() + plan.deviceTimeoutMs;
    wd.handle = this.clock.at(wd.deadline, () => {
      wd.handle = null;
      wd.deadline = null;
      if (!n.hostUp) return;
      this.log(`${n.addr}: WATCHDOG RESETS THE HOST (no keepalive for ${plan.deviceTimeoutMs} ms)`);
      this.crashHost(n.addr);
      this.clock.after(this.failRng.int(200, 1500) * this.scale, () => this.startHost(n.addr));
    });
  }

  /** The device stops: the magic close of a graceful stop, or the host going down. */
  private stopWatchdog(n: ClusterNode): void {
    const wd = n.watchdog;
    wd.handle?.cancel();
    n.watchdog = { deadline: null, handle: null, open: false, fencing: 0, fenceFailed: false };
  }

  /** A fresh failover node for the agent's current incarnation (`n.gen`). */
  private newNode(n: ClusterNode): FailoverNode {
    return createNode({
      state: initialState({
        ...this.failoverConfig(n.addr, n.witness, n.lists),
        ...(n.failoverRecord ? { persisted: n.failoverRecord } : {}),
      }),
      ports: this.ports(n, n.gen),
      clock: {
        now: () => this.localTime(n),
        schedule: (at, fire) => this.clock.at(this.virtualAt(n, at), this.gate(n, fire)),
      },
      observer: {
        stepped: (_e, r) => {
          if (n.watchdog.seen !== watchdogSeen(r.state) && n.agentUp) this.watchdogLook(n);
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
      // As the agent: a member silent for the window less remote.timeout is reported quiet, and
      // the others start their check of its database if it is the master.
      quietAfter: quietAfter(this.timing, this.remoteTimeoutMs()),
      ...(this.opts.suspicionRule ? { suspicionRule: this.opts.suspicionRule } : {}),
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
    // (the first boot starts the cluster as it was set up: the master's server runs)
    if (!n.hostUp && n.db && n.gen > 0) {
      // What we tell operators (docs/operations.md): the PostgreSQL unit writes standby.signal
      // before every start at boot, so a rebooted server always comes up read-only and only a
      // promotion by the cluster makes it writable again. An old master whose host rebooted
      // without being fenced cannot take writes beside the master that replaced it; if nobody
      // replaced it, the coordinator finds no master and promotes the best standby (it, when
      // its WAL is the newest).
      n.db.state = "up";
      n.db.inRecovery = true;
      n.db.fenced = true;
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
      this.gate(n, () => this.membership(n, gen, { type: "frame", from: frame.from, msg: frame.msg }))(),
    );
    this.log(`${addr}: agent start`);
    // A new agent process has not opened the device; one its predecessor left running keeps
    // counting down until this agent arms it as master (or the host is reset).
    n.watchdog = { ...n.watchdog, open: false, fencing: 0, fenceFailed: false };
    // A node with no saved voter set founds a cluster alone only as the primary's agent (or
    // when the operator bootstraps it); the others wait for a cluster to join.
    const primary = n.db !== null && n.db.state === "up" && !n.db.inRecovery;
    this.membership(n, gen, { type: "start", mayFoundAlone: primary || this.bootstrap.has(addr) });
    n.node.start();
    this.watchdogTick(n, gen);
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
    n.crashes++;
    if (n.db) {
      n.db.state = "down";
      n.db.killPending = false;
    }
    this.stopWatchdog(n);
    if (this.vipHolder === addr) this.vipHolder = null;
    this.log(`${addr}: host crash`);
  }

  setDb(addr: string, state: FakeDb["state"]): void {
    const n = this.node(addr);
    if (n.db && n.hostUp) n.db.state = state;
    this.log(`${addr}: database ${state}`);
  }

  /** Hang the database (SIGSTOP on the postmaster) for `ms`; it resumes as it was. */
  hangDb(addr: string, ms: number): void {
    const n = this.node(addr);
    if (!n.db || !n.hostUp || n.db.state !== "up") return;
    this.setDb(addr, "hang");
    this.clock.after(ms, () => {
      if (n.db?.state !== "hang" || !n.hostUp) return;
      if (n.db.killPending) {
        n.db.killPending = false;
        this.setDb(addr, "down");
        this.log(`${addr}: the resumed server dies of the fence's pending SIGKILL`);
      } else this.setDb(addr, "up");
    });
  }

  /** Issue an efm command on a node (the admin channel). */
  command(addr: string, command: Command): void {
    const n = this.node(addr);
    if (!n.agentUp) return;
    if (command.kind === "promote") this.manualCommands++;
    this.reqSeq++;
    this.log(`${addr}: efm ${command.kind}`);
    const id = `r${this.reqSeq}`;
    const node = n.node;
    this.gate(n, () => node.command(id, command))();
  }

  // ---------------------------------------------------------------- databases

  private linked(a: string, b: string): boolean {
    return a === b || (!this.net.isCut(a, b) && !this.net.isCut(b, a));
  }

  /** Accepts client writes: the host is up and the server runs out of recovery. */
  private writable(n: ClusterNode): boolean {
    return n.hostUp && n.db !== null && n.db.state === "up" && !n.db.inRecovery;
  }

  /**
   * Clients try a write on every database each tick; it is acknowledged where PostgreSQL would
   * accept it (up, not hung, out of recovery). Standbys stream from whoever they follow, some
   * lagging, and only while their WAL is a prefix of the upstream's history (a standby that went
   * past a fork cannot follow the new timeline until rewound).
   */
  private walTick(): void {
    for (const n of this.nodes.values()) {
      if (!this.writable(n)) continue;
      const db = n.db!;
      db.lsn += BigInt(this.failRng.int(1, 64));
      const w = this.writes.get(db.timeline);
      if (w) w.push(db.lsn);
      else this.writes.set(db.timeline, [db.lsn]);
    }
    for (const n of this.nodes.values()) {
      const db = n.db;
      if (!db || !n.hostUp || db.state !== "up" || !db.inRecovery || !db.following) continue;
      const src = this.nodes.get(db.following);
      if (!src?.db || !src.hostUp || src.db.state !== "up" || !this.linked(src.addr, n.addr)) continue;
      const s = src.db;
      if (s.lsn <= db.lsn && s.timeline === db.timeline) continue;
      if (!this.onHistory(db.timeline, db.lsn, s.timeline)) continue;
      if (this.failRng.chance(db.catchUp)) {
        db.lsn = s.lsn;
        db.timeline = s.timeline;
        if (db.lsn > (this.replicated.get(s.timeline) ?? -1n)) this.replicated.set(s.timeline, db.lsn);
      }
    }
    this.clock.after(20 * this.scale, () => this.walTick());
  }

  /** Whether position (timeline `t`, `lsn`) is part of the history of timeline `u`. */
  onHistory(t: number, lsn: bigint, u: number): boolean {
    let cur: number | null = u;
    let limit: bigint | null = null;
    while (cur !== null) {
      if (cur === t) return limit === null || lsn <= limit;
      const tl = this.timelines.get(cur);
      if (!tl) return false;
      limit = tl.fork;
      cur = tl.parent;
    }
    return false;
  }

  /** The newest timeline (the last one a promotion opened). */
  newestTimeline(): number {
    return Math.max(...this.timelines.keys());
  }

  /**
   * Acknowledged writes lost: not on the history of the final timeline (the writable database's
   * at the end, else the newest). Asynchronous replication may lose what no standby had received
   * from that timeline; anything a standby had received and the cluster still lost counts.
   */
  judgeWrites(): number {
    const dbs = this.writableDatabases();
    const final = dbs.length === 1 ? this.node(dbs[0]!).db!.timeline : this.newestTimeline();
    let lost = 0;
    for (const [t, lsns] of this.writes) {
      const acked = this.replicated.get(t) ?? -1n;
      for (const l of lsns) if (l <= acked && !this.onHistory(t, l, final)) lost++;
    }
    this.lostWrites = lost;
    if (lost > 0)
      this.violate(
        "lostWrites",
        `${lost} acknowledged write(s) that a standby had received are not on the final timeline ${final}`,
      );
    return lost;
  }

  /** A connection from `from` to the database on `target`; `asMaster`: it must also be serving as a master. */
  private reach(from: string, target: string, asMaster = false): "reachable" | "unreachable" {
    const t = this.nodes.get(target);
    if (!t?.db || !t.hostUp || t.db.state !== "up" || !this.linked(from, target)) return "unreachable";
    // pg_is_in_recovery(): recovery settings written to a server that was never restarted do
    // not stop it serving as a master.
    if (asMaster && t.db.inRecovery) return "unreachable";
    return "reachable";
  }

  // ---------------------------------------------------------------- membership glue

  private membership(n: ClusterNode, gen: number, input: Parameters<MembershipCore["handle"]>[1]): void {
    if (gen !== n.gen || !n.agentUp) return;
    const effects = n.core.handle(this.localTime(n), input);
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
          this.clock.at(
            this.virtualAt(n, e.at),
            this.gate(n, () => {
              n.timers.delete(e.id);
              this.membership(n, gen, { type: "timer", id: e.id });
            }),
          ),
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
        // the agent stops itself: a graceful stop closes the watchdog first
        this.stopWatchdog(n);
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
  private later<T>(n: ClusterNode, delay: number, make: () => T): PromiseLike<T> {
    // The work (a pg_ctl, a query) happens after `delay` whatever the agent does; a paused agent
    // only sees its result when it runs again.
    let settled: { ok: true; v: T } | { ok: false; e: unknown } | null = null;
    return settleWhen(
      (run) =>
        this.clock.after(delay, () => {
          try {
            settled = { ok: true, v: make() };
          } catch (e) {
            settled = { ok: false, e };
          }
          this.gate(n, run)();
        }),
      () => {
        const r = settled!;
        if (r.ok) return r.v;
        throw r.e;
      },
    );
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
        return this.later(n, db?.state === "hang" ? n.fs.config.localTimeoutMs : 1, () =>
          db?.state !== "up" ? "unreachable" : db.inRecovery ? "recovery" : "primary",
        );
      },
      checkLocalDb: (timeoutMs) => {
        const state = n.db?.state ?? "down";
        return this.later(n, state === "hang" ? timeoutMs : 1 + this.failRng.int(0, 2), () =>
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
        return this.later(n, quick ? 1 + this.failRng.int(0, 4) : timeoutMs, () =>
          this.reach(me, target, asMaster),
        );
      },
      queryLsn: () =>
        this.later(n, 1, () => {
          const db = n.db;
          if (db?.state !== "up") return null;
          const src = db.following ? this.nodes.get(db.following) : undefined;
          const streaming =
            db.inRecovery &&
            src?.db?.state === "up" &&
            src.hostUp &&
            this.linked(src.addr, n.addr) &&
            this.onHistory(db.timeline, db.lsn, src.db.timeline);
          this.reported.set(me, { timeline: db.timeline, lsn: db.lsn });
          return { lsn: formatLsn(db.lsn), timeline: db.timeline, streaming: streaming === true };
        }),
      pingVip: () =>
        this.later(n, 2, () => {
          const h = this.vipHolder;
          return h !== null && h !== me && this.node(h).hostUp && this.linked(me, h);
        }),
      pingServer: () => this.later(n, 2, () => true),
      runScript: () => this.later(n, 2, () => ({ exitCode: 0, output: "ok" })),
      checkPromotable: () =>
        this.later(n, 2, () => {
          const db = n.db;
          const ok = db !== null && db.state === "up" && db.inRecovery;
          return ok ? { ok } : { ok, error: "not a reachable standby" };
        }),
      promoteDb: (fork) => {
        this.checkPromotion(n);

        // slowOps: pg_ctl promote is slow now and then, fails (the server refuses), or hangs
        // past the promotion timeout and then completes anyway.
        const r = this.world.slowOps ? this.failRng.next() : 1;
        const delay =
          r < 0.04
            ? n.fs.config.promotionTimeoutMs + this.failRng.int(1, 500) * this.scale
            : r < 0.2
              ? this.failRng.int(20, 600) * this.scale
              : 5;
        const fails = r >= 0.04 && r < 0.08;
        const crashes = n.crashes;
        return this.later(n, delay, () => {
          const db = n.db;
          if (db === null || db.state !== "up" || !n.hostUp) throw new Error("the database is not running");
          // a promote requested before the host went down died with it (PostgreSQL removes a
          // leftover promote.signal at start)
          if (n.crashes !== crashes) throw new Error("the host rebooted during pg_ctl promote");
          if (fails) throw new Error("pg_ctl promote: server did not promote in time");
          if (!db.inRecovery) return;
          // The executor's guard (the promoteDb action's fork), at the moment of the promote: WAL
          // streamed in since the candidate was ranked may have carried it past the newer
          // timeline's fork; then nothing is promoted and the coordinator tries the next candidate.
          if (pastFork(fork, db.timeline, formatLsn(db.lsn)))
            throw new Error(
              `not promoted: WAL at ${formatLsn(db.lsn)} on timeline ${db.timeline} is past the fork of a newer timeline`,
            );
          this.checkPromoted(n);
          const tl = this.newestTimeline() + 1;
          this.timelines.set(tl, { parent: db.timeline, fork: db.lsn });
          db.timeline = tl;
          db.inRecovery = false;
          db.fenced = false;
          db.following = null;
          this.promotions++;
          this.log(`${me}: DATABASE PROMOTED at ${formatLsn(db.lsn)}, timeline ${tl}`);
        });
      },
      fenceDb: () => {
        // As the agent's helper does: write the recovery settings, stop the server (immediate,
        // then SIGKILL of every server process) and confirm it down. A server hung in the kernel
        // (a stuck disk) cannot be confirmed down: the fence fails, but the SIGKILL is pending
        // and kills it the moment it resumes. slowOps: sudo refuses now and then (nothing is
        // sent), or the stop is slow. The watchdog driver keeps the device armed and unfed while
        // the fence runs and after it failed (HardwareWatchdog.guardFence).
        const wd = n.watchdog;
        wd.fencing++;
        const r = this.world.slowOps ? this.failRng.next() : 1;
        const hung = n.db?.state === "hang";
        const delay = hung
          ? n.fs.config.localTimeoutMs
          : r < 0.15
            ? this.failRng.int(50, 1000) * this.scale
            : 2;
        const refused = r >= 0.15 && r < 0.2;
        const crashes = n.crashes;
        const run = (): void => {
          if (n.db === null) throw new Error("no database");
          if (n.crashes !== crashes) throw new Error("the host rebooted during the fence");
          if (refused) throw new Error("sudo: a password is required");
          if (!n.hostUp) throw new Error("host down");
          n.db.fenced = true;
          if (n.db.state === "hang") {
            n.db.killPending = true;
            throw new Error("fence not confirmed: server processes still alive after SIGKILL");
          }
          // stopped and confirmed down (an isolated or failed master stays down; this world
          // starts it again in recovery, as a switchover does, so it can serve as a standby)
          if (n.db.state === "up") n.db.inRecovery = true;
          this.log(`${me}: database fenced`);
        };
        return this.later(n, delay, () => {
          try {
            run();
            if (wd === n.watchdog) wd.fenceFailed = false;
          } catch (e) {
            if (wd === n.watchdog) wd.fenceFailed = true;
            throw e;
          } finally {
            if (wd === n.watchdog) wd.fencing = Math.max(0, wd.fencing - 1);
          }
        });
      },
      reconfigureDb: (newMaster) =>
        this.later(n, 3, () => {
          if (n.db) n.db.following = newMaster;
          if (n.db?.state !== "up") throw new Error("the database is not running");
        }),
      assignVip: () =>
        this.later(n, 1, () => {
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
        this.later(n, 1, () => {
          if (this.vipHolder === me) this.vipHolder = null;
          this.log(`${me}: VIP released`);
          return done;
        }),
      notify: (a) => {
        this.log(`${me}: notify ${a.id}`);
      },
      writeState: (allowed, priority) => {
        n.lists = { allowed, priority };
      },
      persist: (state) => {
        n.failoverRecord = state;
      },
      respond: (_id, ok, message) => this.log(`${me}: respond ${ok ? "ok" : "error"}: ${message}`),
      exit: (code, reason) => {
        this.log(`${me}: agent exit ${code} (${reason})`);
        this.stopWatchdog(n);
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

  /** This run's result (judges the acknowledged writes first). */
  result(nodes: number): ClusterSimResult {
    this.judgeWrites();
    return {
      seed: this.opts.seed,
      nodes,
      autoFailover: this.autoFailover,
      violations: this.violations,
      expectedViolations: this.expectedViolations,
      counts: { ...this.counts },
      promotions: this.promotions,
      lostWrites: this.lostWrites,
      steps: this.clock.steps,
      transcript: this.transcript,
    };
  }

  /**
   * The moment a database really leaves recovery: auto.failover=false needs an operator's
   * promote, and a database that wrote past the fork of a newer timeline (an old master) must
   * have been rewound or rebuilt first.
   */
  private checkPromoted(c: ClusterNode): void {
    if (!this.autoFailover && this.manualCommands === 0)
      this.violate(
        "autoFailover",
        `${c.addr} promotes although auto.failover=false and nobody ran efm promote`,
      );
    const db = c.db!;
    for (const [tl, { parent, fork }] of this.timelines) {
      if (parent === db.timeline && db.lsn > fork) {
        this.violate(
          "diverged",
          `${c.addr} promoted on timeline ${db.timeline} at ${formatLsn(db.lsn)}, past the fork of timeline ${tl} at ${formatLsn(fork)}`,
        );
        return;
      }
    }
  }

  /** At the moment a standby decides to promote: majority view, newest timeline and best position among the eligible. */
  private checkPromotion(c: ClusterNode): void {
    if (!c.core.isQuorate()) this.violate("promotion", `${c.addr} promotes outside a majority view`);
    const cand = c.fs.candidacy;
    const coord = cand ? this.nodes.get(cand.coordinator) : undefined;
    const priority = (cand && this.rankedWith.get(cand.token)) ?? coord?.fs.priority ?? c.fs.priority;
    // Positions as their agents last reported them (what the coordinator ranked): WAL a standby
    // receives after that can only come from a primary the cluster already gave up (a fenced
    // master still shipping what it wrote, an old master's host that rebooted as a primary); no
    // choice made then could include it. A database never asked is judged by its position now.
    const at = this.reported;
    const newest = this.newestTimeline();
    const pos = (x: ClusterNode) =>
      at.get(x.addr) ?? { timeline: x.db?.timeline ?? 0, lsn: x.db?.lsn ?? -1n };
    /** -1: a is behind b; 0: same; 1: ahead. On the newest timeline's history first, then (timeline, WAL position). */
    const cmp = (a: { timeline: number; lsn: bigint }, b: { timeline: number; lsn: bigint }): number => {
      const ha = this.onHistory(a.timeline, a.lsn, newest);
      const hb = this.onHistory(b.timeline, b.lsn, newest);
      if (ha !== hb) return ha ? 1 : -1;
      if (a.timeline !== b.timeline) return a.timeline > b.timeline ? 1 : -1;
      return a.lsn === b.lsn ? 0 : a.lsn > b.lsn ? 1 : -1;
    };
    const show = (p: { timeline: number; lsn: bigint }) => `${formatLsn(p.lsn)} on timeline ${p.timeline}`;
    const mine = pos(c);
    const members = new Set(c.core.currentView()?.members ?? []);
    for (const s of this.nodes.values()) {
      if (s === c || !s.agentUp || !s.hostUp || !members.has(s.addr) || !this.linked(c.addr, s.addr))
        continue;
      if (s.fs.phase !== "running" || s.fs.role !== "Standby" || s.db?.state !== "up" || !s.db.inRecovery)
        continue;
      // reachable = both sides see each other in their views (membership drops traffic otherwise)
      if (!s.core.currentView()?.members.includes(c.addr)) continue;
      // a standby that went past a fork cannot be promoted either: it is not eligible
      if (!this.onHistory(pos(s).timeline, pos(s).lsn, newest)) continue;
      const order = cmp(pos(s), mine);
      if (order > 0) {
        this.violate("promotion", `${c.addr} promoted at ${show(mine)} but ${s.addr} had ${show(pos(s))}`);
      } else if (order === 0) {
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

  /** How long after the faults stop a writable master must exist (when liveness is owed). */
  livenessBound(): number {
    return 12 * this.timing.suspectAfter + 6000 * this.scale;
  }

  /**
   * Liveness, with no exemption: run until a writable master exists or `bound`; then, if none
   * does although a majority of the voters' agents run (on a healed network), a healthy standby
   * exists (up, in recovery, its agent running, on the newest timeline's history) and
   * auto.failover is on, that is a violation.
   */
  checkLiveness(bound: number): void {
    if (this.writableMasters().length > 0) return;
    this.runUntilTrue(bound, () => this.writableMasters().length > 0);
    if (this.writableMasters().length > 0 || !this.autoFailover) return;
    const all = [...this.nodes.values()];
    const up = all.filter((x) => x.agentUp && x.hostUp);
    if (up.length * 2 <= all.length) return;
    const newest = this.newestTimeline();
    const healthy = up.filter(
      (x) => x.db?.state === "up" && x.db.inRecovery && this.onHistory(x.db.timeline, x.db.lsn, newest),
    );
    if (healthy.length === 0) return;
    this.violate(
      "liveness",
      `no writable master ${Math.round(this.livenessBound())} ms after the faults stopped, with a majority up and healthy standbys ${healthy.map((x) => x.addr).join(", ")}: ${this.roles()}`,
    );
  }

  /** Agents acting as master (running, not paused, role Master) whose database accepts writes. */
  writableMasters(): string[] {
    const now = this.clock.now();
    return [...this.nodes.values()]
      .filter(
        (n) =>
          n.agentUp &&
          n.pausedUntil <= now &&
          n.fs.phase === "running" &&
          n.fs.role === "Master" &&
          this.writable(n),
      )
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
    // A run that never ends is a bug of the world or the node (a timer re-armed at its own instant):
    // fail loudly instead of hanging CI.
    if (this.clock.steps > MAX_STEPS)
      throw new Error(
        `seed ${this.opts.seed}: more than ${MAX_STEPS} events by t=${this.clock.now()}: a loop`,
      );
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
  "checkDb.shared",
  "checkDb.answer",
  "quiet.note",
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
  const n = options.nodes ?? setup.int(2, 9);
  const addrs = Array.from({ length: n }, (_, i) => addrOf(i));
  const witnesses = new Set<string>(n >= 3 && setup.chance(0.5) ? [addrs[n - 1]!] : []);
  const autoFailover = !setup.chance(0.1);
  // One seed in ten runs the guide's default timings (jgroups.timeout 5 s, max.tries 8,
  // local.period 10 s ...); the others the fast ones. Half the seeds get slow, failing and
  // hanging fences and promotions.
  const guideTimings = setup.chance(0.1);
  const world: WorldOptions = { slowOps: setup.chance(0.5), timeoutMs: guideTimings ? 5000 : 100 };
  const sim = new ClusterSim(
    { seed, ...options },
    { addrs, witnesses, autoFailover, maxTries: guideTimings ? 8 : setup.pick([3, 3, 4, 5]), world },
  );
  const k = sim.scale;
  // Clocks drift within the 1 % membership's margin assumes, and start a little apart.
  for (const a of addrs) {
    const x = sim.node(a);
    x.clockRate = 1 + (setup.next() * 2 - 1) * 0.005;
    x.clockOffset = setup.int(-20, 20) * k;
  }
  const fail = (what: string): void => sim.violate("settle", what);
  for (const a of addrs) sim.clock.at(setup.int(0, 60) * k, () => sim.startHost(a));
  const formBy = 3000 * k;
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
  const allowed = (options.faults ?? FAULT_KINDS).map((f) => FAULT_KINDS.indexOf(f));
  const kinds = Array.from({ length: faults }, () => setup.pick(allowed));
  // A master whose agent died cannot fence itself; if the network also splits, only a real STONITH
  // could stop it (EFM's documented limit), so such seeds crash only non-master agents. A paused
  // (frozen) master agent is not exempt: see the frozen-master scenario.
  const netFaults = kinds.some((x) => x <= 2 || x === 9);
  for (const kind of kinds) {
    const at = t0 + setup.int(0, 2500) * k;
    const a = setup.pick(addrs);
    const b = setup.pick(addrs.filter((x) => x !== a));
    if (kind === 4 || kind === 5) dbFaults = true;
    sim.clock.at(at, () => {
      switch (FAULT_KINDS[kind]) {
        case "partition": {
          const order = setup.shuffle(addrs);
          const cut = setup.int(1, n - 1);
          sim.net.partition([order.slice(0, cut), order.slice(cut)]);
          sim.log(`partition ${order.slice(0, cut).join(",")} | ${order.slice(cut).join(",")}`);
          return;
        }
        case "isolate-master": {
          // isolate the master (with maybe one companion): the 8.6 scenario
          const m = master();
          const group = setup.chance(0.5) ? [m] : [m, b === m ? a : b];
          sim.net.partition([group, addrs.filter((x) => !group.includes(x))]);
          sim.log(`isolate ${group.join(",")}`);
          return;
        }
        case "one-way-cut":
          sim.net.cutOneWay(a, b);
          sim.log(`cut ${a} -> ${b}`);
          return;
        case "host-reboot": {
          const victim = setup.chance(0.5) ? master() : a;
          sim.crashHost(victim);
          sim.clock.after(setup.int(200, 1500) * k, () => sim.startHost(victim));
          return;
        }
        case "db-fail": {
          const victim = setup.chance(0.6) ? master() : a;
          if (setup.chance(0.6)) sim.setDb(victim, "down");
          // a hung server (SIGSTOP, a stuck disk) that resumes later, maybe after the faults stop
          else sim.hangDb(victim, setup.int(100, 6000) * k);
          return;
        }
        case "db-down":
          sim.setDb(a, "down");
          return;
        case "agent-restart": {
          const others = addrs.filter((x) => x !== master());
          const victim = netFaults ? setup.pick(others) : setup.chance(0.5) ? master() : a;
          sim.crashAgent(victim);
          sim.clock.after(setup.int(1, 1500) * k, () => sim.startAgent(victim));
          return;
        }
        case "lossy-network":
          sim.net.setDefaults({ minDelay: 1, maxDelay: 20 * k, loss: 0.05 });
          sim.log("lossy network");
          return;
        case "operator-promote":
          sim.command(setup.pick(addrs), { kind: "promote", force: setup.chance(0.7) });
          return;
        case "cut-pair":
          // a partial partition: only a and b lose each other, everyone else sees both
          sim.net.cut(a, b);
          sim.log(`cut ${a} <-> ${b}`);
          return;
        case "agent-pause":
          sim.pauseAgent(setup.chance(0.5) ? master() : a, setup.int(20, 2000) * k);
          return;
        case "clock-jump":
          sim.jumpClock(a, (setup.chance(0.5) ? 1 : -1) * setup.int(1, 200) * k);
          return;
        case "slow-network": {
          const spec = {
            minDelay: 1,
            maxDelay: setup.int(10, 60) * k,
            loss: 0,
            duplicate: setup.chance(0.5) ? 0.05 : 0,
            reorder: setup.chance(0.3),
          };
          sim.net.setDefaults(spec);
          sim.log(`slow network ${JSON.stringify(spec)}`);
          return;
        }
        case "operator-resume":
          sim.command(a, { kind: "resume" });
          return;
        default:
          return;
      }
    });
  }
  sim.runUntil(t0 + 3000 * k);
  // ---- liveness phase: heal everything but failed databases (hung ones resume on their own)
  sim.net.heal();
  sim.net.setDefaults({ minDelay: 1, maxDelay: 5, loss: 0 });
  sim.log("heal");
  for (const a of addrs) {
    const x = sim.node(a);
    if (!x.hostUp) sim.startHost(a);
    else if (!x.agentUp) sim.startAgent(a);
  }
  const bound = sim.clock.now() + sim.livenessBound();
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
  sim.checkLiveness(bound);
  return sim.result(n);
}

/** The fault kinds runClusterSim draws from (each seed draws one to four of them). */
export const FAULT_KINDS = [
  "partition",
  "isolate-master",
  "one-way-cut",
  "host-reboot",
  "db-fail",
  "db-down",
  "agent-restart",
  "lossy-network",
  "operator-promote",
  "cut-pair",
  "agent-pause",
  "clock-jump",
  "slow-network",
  "operator-resume",
] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];

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
 * A one-way cut from the master to the coordinator: the coordinator stops hearing the master,
 * while the master still hears (and is acknowledged by) the others. The coordinator alone
 * suspects it, and a member leaves the view only when a majority of the voters suspects it: the
 * master stays and nothing fails over. (Were it removed, the coordinator, itself a standby,
 * could not reach the master's database or VIP either; runLeaseWaitSim builds that case.)
 */
export function runOneWayCutSim(
  seed: number,
  options: Omit<ClusterSimOptions, "seed"> = {},
): ClusterSimResult {
  const setup = createRng(seed ^ 0x1ca7);
  const n = setup.int(4, 6);
  const addrs = Array.from({ length: n }, (_, i) => addrOf(i));
  const master = addrs[0]!;
  const coordinator = addrs[1]!;
  const sim = new ClusterSim(
    { seed, ...options },
    {
      addrs,
      witnesses: new Set(),
      autoFailover: true,
      maxTries: setup.pick([3, 4, 5]),
      bootstrap: [coordinator],
    },
  );
  // the coordinator (oldest member) is a standby: it starts first, bootstrapped by the operator
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
    // Membership's old rule (a coordinator removes whom it alone suspects) builds the case; with
    // removal by majority suspicion the master stays, and the lease wait is the second line.
    { seed, suspicionRule: "own", ...options },
    {
      addrs,
      witnesses: new Set(),
      autoFailover: true,
      maxTries: setup.pick([5, 6, 8]),
      bootstrap: [addrs[1]!],
    },
  );
  const master = addrs[0]!;
  // A standby founds the cluster first (the operator bootstraps it), so the coordinator (its
  // oldest member) is a standby.
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
    // Hosts without a watchdog: with one, the crashed agent's device resets the master's host
    // and the promotion is then right; without, only the candidate's check of the old master's
    // database stands in the way, which is what this scenario tests.
    { seed, noWatchdog: true, ...options },
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

/** Start every host and wait for one master; a cluster that does not form is a `settle` violation. */
function form(sim: ClusterSim, addrs: readonly string[], setup: Rng): string {
  for (const a of addrs) sim.clock.at(setup.int(0, 60), () => sim.startHost(a));
  if (
    !sim.runUntilTrue(3000, () => sim.converged() && sim.writableMasters().length === 1 && allRunning(sim))
  ) {
    sim.violate("settle", `cluster did not form: ${sim.roles()}`);
  }
  return sim.writableMasters()[0] ?? addrs[0]!;
}

/**
 * Issue 12: partition {M} | {S1,S2}, both standbys' agents restart (losing what they knew in
 * memory), then an operator runs `efm promote` on S1 while M's lease may still run. The promotion
 * must wait until M can no longer write (its lease has run out and it fenced itself).
 */
export function runPartitionRestartPromoteSim(
  seed: number,
  options: Omit<ClusterSimOptions, "seed"> = {},
): ClusterSimResult {
  const setup = createRng(seed ^ 0x9a27);
  const addrs = Array.from({ length: 3 }, (_, i) => addrOf(i));
  const sim = new ClusterSim(
    { seed, ...options },
    { addrs, witnesses: new Set(), autoFailover: setup.chance(0.5), maxTries: setup.pick([3, 4, 5]) },
  );
  const master = form(sim, addrs, setup);
  const [s1, s2] = addrs.filter((a) => a !== master) as [string, string];
  sim.runUntil(sim.clock.now() + setup.int(0, 200));
  sim.net.partition([[master], [s1, s2]]);
  sim.log(`partition ${master} | ${s1},${s2}`);
  sim.runUntil(sim.clock.now() + setup.int(0, 50));
  sim.crashAgent(s1);
  sim.crashAgent(s2);
  sim.runUntil(sim.clock.now() + setup.int(1, 30));
  sim.startAgent(s1);
  sim.startAgent(s2);
  // The operator promotes as soon as the restarted agents run.
  sim.runUntilTrue(sim.clock.now() + 3000, () => sim.node(s1).fs.phase === "running");
  sim.command(s1, { kind: "promote", force: setup.chance(0.5) });
  sim.runUntil(sim.clock.now() + 4000);
  return sim.result(3);
}

/**
 * Issue 12: the master's database hangs (SIGSTOP on the postmaster) long enough for the cluster
 * to confirm it failed; fencing cannot stop a hung server (the settings are written, the restart
 * times out), a standby is promoted, and then the hung server resumes, still a primary.
 */
export function runHungMasterSim(
  seed: number,
  options: Omit<ClusterSimOptions, "seed"> = {},
): ClusterSimResult {
  const setup = createRng(seed ^ 0x4a9c);
  const n = setup.int(3, 5);
  const addrs = Array.from({ length: n }, (_, i) => addrOf(i));
  const sim = new ClusterSim(
    { seed, ...options },
    { addrs, witnesses: new Set(), autoFailover: true, maxTries: setup.pick([3, 4, 5]) },
  );
  const master = form(sim, addrs, setup);
  sim.runUntil(sim.clock.now() + setup.int(0, 200));
  sim.hangDb(master, 6000 + setup.int(0, 2000));
  sim.runUntil(sim.clock.now() + 10_000);
  return sim.result(n);
}

/**
 * Issue 12: the master's agent is frozen (SIGSTOP, a long GC) and its host isolated at once; its
 * database keeps serving. A frozen agent cannot fence itself, so a standby promoted when the
 * old lease ends finds the old database still taking writes until the agent runs again.
 */
export function runFrozenMasterSim(
  seed: number,
  options: Omit<ClusterSimOptions, "seed"> = {},
): ClusterSimResult {
  const setup = createRng(seed ^ 0xf402);
  const n = setup.int(3, 5);
  const addrs = Array.from({ length: n }, (_, i) => addrOf(i));
  const sim = new ClusterSim(
    { seed, ...options },
    { addrs, witnesses: new Set(), autoFailover: true, maxTries: setup.pick([3, 4, 5]) },
  );
  const master = form(sim, addrs, setup);
  sim.runUntil(sim.clock.now() + setup.int(0, 200));
  sim.pauseAgent(master, 5000 + setup.int(0, 2000));
  sim.net.partition([[master], addrs.filter((a) => a !== master)]);
  sim.log(`isolate ${master}`);
  sim.runUntil(sim.clock.now() + 9000);
  return sim.result(n);
}

/**
 * Issue 12: the isolated master writes and fences itself; S1 is promoted (a new timeline); the
 * old master's host reboots and rejoins in recovery with WAL past the fork; then S1's host dies.
 * The old master has the highest WAL position but on the old timeline: promoting it would lose
 * everything S1 wrote. A lagging S2 on the new timeline is the right candidate.
 */
export function runRebootedDivergedSim(
  seed: number,
  options: Omit<ClusterSimOptions, "seed"> = {},
): ClusterSimResult {
  const setup = createRng(seed ^ 0xd1e4);
  const addrs = Array.from({ length: 4 }, (_, i) => addrOf(i));
  const sim = new ClusterSim(
    { seed, ...options },
    { addrs, witnesses: new Set([addrs[3]!]), autoFailover: true, maxTries: setup.pick([3, 4, 5]) },
  );
  const master = form(sim, addrs, setup);
  sim.runUntil(sim.clock.now() + setup.int(0, 200));
  sim.net.partition([[master], addrs.filter((a) => a !== master)]);
  sim.log(`isolate ${master}`);
  const promoted = (): string | undefined => sim.writableMasters().find((a) => a !== master);
  if (!sim.runUntilTrue(sim.clock.now() + 6000, () => promoted() !== undefined))
    sim.violate("settle", `no standby took over from the isolated master: ${sim.roles()}`);
  const s1 = promoted() ?? addrs[1]!;
  sim.crashHost(master);
  sim.net.heal();
  sim.log("heal");
  sim.runUntil(sim.clock.now() + setup.int(50, 300));
  sim.startHost(master);
  sim.runUntilTrue(sim.clock.now() + 3000, () => sim.converged() && allRunning(sim));
  sim.crashHost(s1);
  sim.runUntil(sim.clock.now() + 6000);
  return sim.result(4);
}

/**
 * Issue 12: a cut between the master and one standby only; the other standby and the witness
 * still see both. The master's database stays reachable from a majority: no failover may happen.
 */
export function runCutPairSim(seed: number, options: Omit<ClusterSimOptions, "seed"> = {}): ClusterSimResult {
  const setup = createRng(seed ^ 0xc07a);
  const addrs = Array.from({ length: 4 }, (_, i) => addrOf(i));
  const sim = new ClusterSim(
    { seed, ...options },
    { addrs, witnesses: new Set([addrs[3]!]), autoFailover: true, maxTries: setup.pick([3, 4, 5]) },
  );
  const master = form(sim, addrs, setup);
  const standby = setup.pick(addrs.filter((a) => a !== master && a !== addrs[3]));
  sim.runUntil(sim.clock.now() + setup.int(0, 200));
  sim.net.cut(master, standby);
  sim.log(`cut ${master} <-> ${standby}`);
  sim.runUntil(sim.clock.now() + 6000);
  if (sim.promotions > 0 || sim.writableMasters()[0] !== master)
    sim.violate(
      "settle",
      `a cut between the master and one standby caused a failover (the master stays reachable from a majority): ${sim.roles()}`,
    );
  return sim.result(4);
}

/**
 * Issue 12's "every database in recovery": 3-4 nodes, every database stays up, only network faults
 * and agent pauses. A master that fenced itself (once, on a message, or on its lease) must end with
 * some database writable again: checked by `liveness`.
 */
export function runAllInRecoverySim(
  seed: number,
  options: Omit<ClusterSimOptions, "seed"> = {},
): ClusterSimResult {
  return runClusterSim(seed, {
    nodes: 3 + (seed % 2),
    faults: [
      "partition",
      "isolate-master",
      "one-way-cut",
      "cut-pair",
      "agent-pause",
      "lossy-network",
      "slow-network",
    ],
    ...options,
  });
}
