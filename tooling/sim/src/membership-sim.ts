import {
  type ClusterConfig,
  type CoreInput,
  compareViewId,
  deriveTiming,
  detectionBound,
  type Effect,
  hostOf,
  MembershipCore,
  type MembershipEvent,
  type Msg,
  type NodeId,
  type PersistedState,
  type QuorumRule,
  type Timing,
  type ViewId,
} from "@efm/membership";
import { type EventHandle, VirtualClock } from "./clock.ts";
import { type LinkSpec, VirtualNetwork } from "./network.ts";
import { createRng, type Rng } from "./rng.ts";

/** What travels on the virtual network: the authenticated envelope, reduced to what the core sees. */
export interface SimFrame {
  readonly from: NodeId;
  readonly msg: Msg;
}

/** How to create one simulated member. */
export interface SimNodeSpec {
  readonly addr: string;
  /** Addresses of its members (.nodes) file. */
  readonly seeds?: readonly string[];
  /** Allowed hosts it starts with when it has no persisted state. */
  readonly initialAllowed?: readonly string[];
  /** Its database is the primary: it may found a cluster alone (see MembershipCore's start). */
  readonly mayFoundAlone?: boolean;
}

/** Options of a membership simulation. */
export interface MembershipSimOptions {
  readonly seed: number;
  readonly timing?: Timing;
  readonly link?: LinkSpec;
  /** Inject a different quorum rule (to show the simulator catches unsafe ones). */
  readonly quorumRule?: QuorumRule;
  /** Remove members on one member's suspicion (the old rule; see CoreOptions.suspicionRule). */
  readonly suspicionRule?: "majority" | "own";
  /**
   * When the simulated failover layer may take over a removed member's role; default: the
   * core's published `takeoverAllowedAt`. Tests pass a broken rule to show the checker bites.
   */
  readonly takeoverRule?: (removal: { committedAt: number; takeoverAllowedAt: number }) => number;
  /** Addresses every view may contain (the allowed universe); others must never appear in a view. */
  readonly allowedAddrs: readonly string[];
}

/** One simulated member: the real core, its timers, its disk, and the fault switches. */
export interface SimNode {
  readonly addr: string;
  readonly spec: SimNodeSpec;
  core: MembershipCore;
  inc: string;
  alive: boolean;
  halted: boolean;
  gen: number;
  pausedUntil: number;
  persisted: PersistedState | null;
  timers: Map<string, EventHandle>;
  events: MembershipEvent[];
  membersFileRewrites: (readonly string[])[];
  drops: number;
}

interface TakeoverRecord {
  member: string;
  inc: string;
  removing: ViewId;
  allowedAt: number;
}

/**
 * N membership cores on a virtual clock and network, driven by one seed. Invariants are checked
 * after every event; the first violation is kept with the virtual time and the seed to replay.
 */
export class MembershipSim {
  readonly clock = new VirtualClock();
  readonly rng: Rng;
  readonly net: VirtualNetwork<SimFrame>;
  readonly timing: Timing;
  readonly nodes = new Map<string, SimNode>();
  readonly violations: string[] = [];
  private readonly allowed: Set<string>;
  private readonly maxEpoch = new Map<string, number>();
  private readonly takeovers: TakeoverRecord[] = [];
  private readonly netRng: Rng;

  constructor(private readonly opts: MembershipSimOptions) {
    this.rng = createRng(opts.seed);
    this.netRng = this.rng.fork();
    this.timing = opts.timing ?? deriveTiming(100, 3);
    this.net = new VirtualNetwork<SimFrame>(
      this.clock,
      this.netRng,
      opts.link ?? { minDelay: 1, maxDelay: 5, loss: 0 },
    );
    this.allowed = new Set(opts.allowedAddrs);
  }

  /** Create a member (not started). */
  add(spec: SimNodeSpec): SimNode {
    const node: SimNode = {
      addr: spec.addr,
      spec,
      core: this.newCore(spec, null, "0"),
      inc: "0",
      alive: false,
      halted: false,
      gen: 0,
      pausedUntil: 0,
      persisted: null,
      timers: new Map(),
      events: [],
      membersFileRewrites: [],
      drops: 0,
    };
    this.nodes.set(spec.addr, node);
    return node;
  }

  private newCore(spec: SimNodeSpec, persisted: PersistedState | null, inc: string): MembershipCore {
    return new MembershipCore({
      self: spec.addr,
      incarnation: inc,
      timing: this.timing,
      seeds: spec.seeds ?? [],
      initialAllowed: spec.initialAllowed ?? [],
      persisted,
      ...(this.opts.quorumRule ? { quorumRule: this.opts.quorumRule } : {}),
      ...(this.opts.suspicionRule ? { suspicionRule: this.opts.suspicionRule } : {}),
    });
  }

  private node(addr: string): SimNode {
    const n = this.nodes.get(addr);
    if (!n) throw new Error(`no simulated node ${addr}`);
    return n;
  }

  /** Start (or restart after a crash, on the same address with a new incarnation and its disk). */
  start(addr: string): void {
    const n = this.node(addr);
    n.gen++;
    n.inc = this.rng.hex(8);
    n.core = this.newCore(n.spec, n.persisted, n.inc);
    n.alive = true;
    n.halted = false;
    n.pausedUntil = 0;
    const gen = n.gen;
    this.net.attach(addr, (_from, frame) =>
      this.deliver(n, gen, { type: "frame", from: frame.from, msg: frame.msg }),
    );
    this.deliver(n, gen, { type: "start", mayFoundAlone: n.spec.mayFoundAlone === true });
  }

  /** Kill the process: timers and in-flight work vanish, the disk stays. */
  crash(addr: string): void {
    const n = this.node(addr);
    n.alive = false;
    n.gen++;
    for (const t of n.timers.values()) t.cancel();
    n.timers.clear();
    this.net.detach(addr);
  }

  /** Freeze a process for `ms`: its timers and messages run late, all at once, on resume. */
  pause(addr: string, ms: number): void {
    this.node(addr).pausedUntil = this.clock.now() + ms;
  }

  /** Feed an input (admin request, leave, application message) to a live member. */
  input(addr: string, input: CoreInput): void {
    const n = this.node(addr);
    this.deliver(n, n.gen, input);
  }

  private deliver(n: SimNode, gen: number, input: CoreInput): void {
    if (gen !== n.gen || !n.alive || n.halted) return;
    const now = this.clock.now();
    if (n.pausedUntil > now) {
      this.clock.at(n.pausedUntil, () => this.deliver(n, gen, input));
      return;
    }
    const effects = n.core.handle(now, input);
    for (const e of effects) this.apply(n, gen, e);
  }

  private apply(n: SimNode, gen: number, e: Effect): void {
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
            this.deliver(n, gen, { type: "timer", id: e.id });
          }),
        );
        return;
      }
      case "cancelTimer":
        n.timers.get(e.id)?.cancel();
        n.timers.delete(e.id);
        return;
      case "emit":
        n.events.push(e.event);
        if (e.event.type === "viewCommitted") {
          for (const r of e.event.removed) {
            this.takeovers.push({
              member: r.member,
              inc: r.incarnation,
              removing: { epoch: e.event.epoch, creator: e.event.creator },
              allowedAt: this.opts.takeoverRule
                ? this.opts.takeoverRule({
                    committedAt: e.event.committedAt,
                    takeoverAllowedAt: r.takeoverAllowedAt,
                  })
                : r.takeoverAllowedAt,
            });
          }
        }
        return;
      case "persist":
        n.persisted = e.state;
        return;
      case "rewriteMembersFile":
        n.membersFileRewrites.push(e.addresses);
        return;
      case "drop":
        n.drops++;
        return;
      case "halt":
        n.halted = true;
        for (const t of n.timers.values()) t.cancel();
        n.timers.clear();
        this.net.detach(n.addr);
        return;
    }
  }

  /** Live members that have not left. */
  live(): SimNode[] {
    return [...this.nodes.values()].filter((n) => n.alive && !n.halted);
  }

  /** Run until virtual time `t`, checking the invariants after every event. */
  runUntil(t: number): void {
    this.clock.runUntil(t, () => this.check());
  }

  /** Run until `pred` holds (checked after every event) or time `t`; returns the time it held, or null. */
  runUntilTrue(t: number, pred: () => boolean): number | null {
    if (pred()) return this.clock.now();
    let hit: number | null = null;
    const stop = this.clock.now();
    void stop;
    while (hit === null && this.clock.now() <= t) {
      if (!this.clock.step()) break;
      if (this.clock.now() > t) break;
      this.check();
      if (pred()) hit = this.clock.now();
    }
    if (hit === null) this.runUntil(t);
    return hit;
  }

  /** All live, allowed members in one view that holds exactly them. */
  converged(
    expected: readonly string[] = this.live()
      .filter((n) => this.allowed.has(n.addr))
      .map((n) => n.addr),
  ): boolean {
    const want = [...expected].sort().join(",");
    let id: ViewId | null = null;
    for (const a of expected) {
      const n = this.nodes.get(a);
      const v = n?.core.rawView();
      if (!n || !v) return false;
      if (
        v.members
          .map((m) => m.addr)
          .sort()
          .join(",") !== want
      )
        return false;
      if (id && compareViewId(id, v.id) !== 0) return false;
      id = v.id;
    }
    return true;
  }

  private violate(what: string): void {
    if (this.violations.length < 5) {
      this.violations.push(`seed ${this.opts.seed} t=${this.clock.now()}: ${what}`);
    }
  }

  /** The safety invariants, checked after every event. */
  check(): void {
    const now = this.clock.now();
    const live = this.live();
    for (const n of live) {
      const v = n.core.rawView();
      if (!v) continue;
      const prev = this.maxEpoch.get(n.addr) ?? 0;
      if (v.id.epoch < prev) this.violate(`${n.addr} went back from epoch ${prev} to ${v.id.epoch}`);
      this.maxEpoch.set(n.addr, Math.max(prev, v.id.epoch));
      for (const m of v.members) {
        if (m.addr !== n.addr && !this.allowed.has(m.addr))
          this.violate(`${n.addr} has non-allowed ${m.addr} in its view`);
      }
    }
    for (let i = 0; i < live.length; i++) {
      const a = live[i]!;
      const va = a.core.rawView();
      if (!va) continue;
      const qa = a.core.isQuorate();
      const la = a.core.leaseValidAt(now);
      if (!qa && !la) continue;
      const ma = new Set(va.members.map((m) => m.addr));
      for (let j = i + 1; j < live.length; j++) {
        const b = live[j]!;
        const vb = b.core.rawView();
        if (!vb || vb.members.some((m) => ma.has(m.addr))) continue;
        if (qa && b.core.isQuorate()) {
          this.violate(
            `disjoint views both quorate: ${a.addr} ${fmt(va.members)} and ${b.addr} ${fmt(vb.members)}`,
          );
        }
        if (la && b.core.leaseValidAt(now)) {
          this.violate(`disjoint views both hold a lease: ${a.addr} and ${b.addr}`);
        }
      }
    }
    // A removed member's lease must have run out once takeover is allowed, unless a later view
    // took it back in (then a later removal makes a new record).
    for (let k = this.takeovers.length - 1; k >= 0; k--) {
      const r = this.takeovers[k]!;
      const readmitted = live.some((n) => {
        const v = n.core.rawView();
        return (
          v !== null &&
          compareViewId(v.id, r.removing) > 0 &&
          v.members.some((m) => m.addr === r.member && m.inc === r.inc)
        );
      });
      const x = this.nodes.get(r.member);
      if (readmitted || !x || x.inc !== r.inc || !x.alive) {
        this.takeovers.splice(k, 1);
        continue;
      }
      if (now >= r.allowedAt && !x.halted && x.core.leaseValidAt(now)) {
        this.violate(`${r.member} still holds its lease after takeover was allowed at ${r.allowedAt}`);
      }
    }
  }

  /** Worst case from a crash to its removal from every reachable view, for this simulation. */
  detectionBound(): number {
    return detectionBound(this.timing, 5) + this.timing.ackTimeout;
  }

  /**
   * Bound on convergence after the network heals and every member is up: stale members are
   * suspected and removed (detection), coordinators exchange INFO (one merge interval), a
   * merge collects answers (half the merge timeout) and may need a retry after a cancelled one.
   */
  healBound(): number {
    const t = this.timing;
    return this.detectionBound() + 3 * t.mergeInterval + 2 * t.mergeTimeout + 10 * t.discoveryInterval;
  }

  /** Addresses sharing a host with the given config's allowed list (for assertions). */
  static allowedBy(config: ClusterConfig, addr: string): boolean {
    return config.allowed.includes(hostOf(addr));
  }
}

const fmt = (ms: readonly NodeId[]): string => `[${ms.map((m) => m.addr).join(",")}]`;

/** The scenario families run over many seeds. */
export const MEMBERSHIP_SCENARIOS = [
  "random",
  "cascade",
  "pausedCoordinator",
  "restart",
  "crash",
  "unresolvable",
  "nonAllowed",
  "threeGroups",
  "leave",
] as const;
/** One scenario family. */
export type MembershipScenario = (typeof MEMBERSHIP_SCENARIOS)[number];

/** Result of one seeded run. */
export interface ScenarioResult {
  readonly seed: number;
  readonly scenario: MembershipScenario;
  readonly violations: readonly string[];
  /** Virtual ms from heal (or from the last fault) to one view, when measured. */
  readonly convergedAfter: number | null;
  readonly steps: number;
}

const addrOf = (i: number): string => `10.0.0.${i + 1}:7800`;

/**
 * Run one seeded membership scenario; the scenario family is chosen from the seed unless given.
 * Same seed, same run: a failing seed printed by a test replays exactly.
 */
export function runMembershipScenario(
  seed: number,
  options: {
    scenario?: MembershipScenario;
    quorumRule?: QuorumRule;
    takeoverRule?: MembershipSimOptions["takeoverRule"];
    suspicionRule?: MembershipSimOptions["suspicionRule"];
  } = {},
): ScenarioResult {
  const setup = createRng(seed ^ 0x5eed);
  const scenario = options.scenario ?? MEMBERSHIP_SCENARIOS[seed % MEMBERSHIP_SCENARIOS.length]!;
  const n = scenario === "random" ? setup.int(3, 7) : scenario === "threeGroups" ? setup.int(5, 7) : 5;
  const addrsAll = Array.from({ length: n }, (_, i) => addrOf(i));
  const hosts = addrsAll.map(hostOf);
  // Vary jgroups.max.tries too: with 2 the lease L equals one heartbeat interval (tightest case).
  const sim = new MembershipSim({
    seed,
    timing: deriveTiming(100, setup.pick([2, 3, 3, 5])),
    allowedAddrs: addrsAll,
    ...(options.quorumRule ? { quorumRule: options.quorumRule } : {}),
    ...(options.takeoverRule ? { takeoverRule: options.takeoverRule } : {}),
    ...(options.suspicionRule ? { suspicionRule: options.suspicionRule } : {}),
  });
  const t = sim.timing;
  const extraSeeds = scenario === "unresolvable" ? ["nowhere.invalid:7800"] : [];
  // The first address plays the primary's agent: the one node that may found the cluster alone;
  // the others join it (one voter at a time), wherever they start in the window below.
  for (const a of addrsAll) {
    sim.add({
      addr: a,
      seeds: [...addrsAll.filter((x) => x !== a), ...extraSeeds],
      initialAllowed: hosts,
      mayFoundAlone: a === addrsAll[0],
    });
  }
  const stranger = "10.0.0.99:7800";
  if (scenario === "nonAllowed") sim.add({ addr: stranger, seeds: addrsAll, initialAllowed: [] });
  const fail = (what: string): void => {
    sim.violations.push(`seed ${seed} (${scenario}) t=${sim.clock.now()}: ${what}`);
  };
  // All start within a short window: the "all at once" case every scenario begins with.
  for (const a of addrsAll) {
    const at = setup.int(0, 3 * t.discoveryInterval);
    sim.clock.at(at, () => sim.start(a));
  }
  if (scenario === "nonAllowed") sim.clock.at(setup.int(0, 500), () => sim.start(stranger));
  const formBound = 1000 + n * 4 * t.batchDelay + 20 * t.discoveryInterval;
  // Formed: one view of everyone, and everyone a voter (R grows one voter at a time after the
  // founder, so the scenarios below start from the full voter set they assume).
  const formed = sim.runUntilTrue(
    formBound,
    () =>
      sim.converged(addrsAll) &&
      addrsAll.every((a) => sim.nodes.get(a)!.core.clusterConfig().voters.length === addrsAll.length),
  );
  if (formed === null) fail(`no single view of ${n} members within ${formBound} ms of starting`);
  let convergedAfter: number | null = null;
  const healAndConverge = (label: string): void => {
    sim.net.heal();
    sim.net.setDefaults({ minDelay: 1, maxDelay: 5, loss: 0 });
    for (const a of addrsAll) if (!sim.nodes.get(a)!.alive) sim.start(a);
    // A pause still running is a fault too: measure from when the last one ends.
    const pausedUntil = Math.max(...addrsAll.map((a) => sim.nodes.get(a)!.pausedUntil));
    if (pausedUntil > sim.clock.now()) sim.runUntil(pausedUntil);
    const from = sim.clock.now();
    const hit = sim.runUntilTrue(from + sim.healBound(), () => sim.converged(addrsAll));
    if (hit === null) fail(`${label}: no single view within ${sim.healBound()} ms after heal`);
    else convergedAfter = hit - from;
  };
  const t0 = sim.clock.now();
  const coordinator = (): string =>
    sim.nodes.get(addrsAll[0]!)!.core.currentView()?.coordinator ?? addrsAll[0]!;
  switch (scenario) {
    case "random": {
      const end = t0 + 1500;
      const faults = setup.int(1, 4);
      const crashed = new Set<string>();
      for (let k = 0; k < faults; k++) {
        const at = t0 + setup.int(0, 1200);
        const kind = setup.int(0, 4);
        const a = setup.pick(addrsAll);
        const b = setup.pick(addrsAll.filter((x) => x !== a));
        sim.clock.at(at, () => {
          if (kind === 0) {
            const cutAt = setup.int(1, n - 1);
            const order = setup.shuffle(addrsAll);
            sim.net.partition([order.slice(0, cutAt), order.slice(cutAt)]);
          } else if (kind === 1) {
            sim.net.cutOneWay(a, b);
          } else if (kind === 2 && !crashed.has(a)) {
            crashed.add(a);
            sim.crash(a);
            sim.clock.after(setup.int(0, 600), () => sim.start(a));
          } else if (kind === 3) {
            sim.pause(a, setup.int(50, 3 * t.suspectAfter));
          } else {
            sim.net.setDefaults({ minDelay: 1, maxDelay: 30, loss: 0.2 });
          }
        });
      }
      sim.runUntil(end);
      healAndConverge("random faults");
      break;
    }
    case "cascade": {
      const [A, B, C, D, E] = addrsAll as [string, string, string, string, string];
      sim.net.partition([
        [A, B, C],
        [D, E],
      ]);
      sim.runUntil(t0 + sim.healBound());
      sim.net.heal();
      sim.net.partition([
        [A, B],
        [C, D, E],
      ]);
      sim.runUntil(sim.clock.now() + 2 * sim.healBound());
      const cde = [C, D, E].map((x) => sim.nodes.get(x)!.core);
      if (!sim.converged([C, D, E]) || !cde.every((c) => c.isQuorate()))
        fail("C, D, E did not form a quorate view");
      if ([A, B].some((x) => sim.nodes.get(x)!.core.isQuorate())) fail("A or B believes it holds quorum");
      healAndConverge("cascade");
      break;
    }
    case "pausedCoordinator": {
      const c = coordinator();
      sim.pause(c, t.suspectAfter + t.verifyTimeout + setup.int(100, 1000));
      sim.runUntil(t0 + t.suspectAfter + t.verifyTimeout + 1200);
      healAndConverge("paused coordinator");
      break;
    }
    case "restart": {
      const a = setup.pick(addrsAll);
      sim.crash(a);
      sim.runUntil(t0 + setup.int(0, 2 * t.suspectAfter));
      healAndConverge("restart on the same address");
      break;
    }
    case "crash": {
      const a = setup.pick(addrsAll);
      const inc = sim.nodes.get(a)!.inc;
      sim.crash(a);
      const bound = sim.detectionBound();
      const gone = sim.runUntilTrue(t0 + bound, () =>
        sim.live().every((x) => !x.core.rawView()?.members.some((m) => m.addr === a && m.inc === inc)),
      );
      if (gone === null) fail(`crashed ${a} still in a view ${bound} ms after the crash`);
      sim.runUntil(sim.clock.now() + 200);
      healAndConverge("crash");
      break;
    }
    case "unresolvable":
      sim.runUntil(t0 + 500);
      healAndConverge("unresolvable seed");
      break;
    case "nonAllowed": {
      sim.runUntil(t0 + 1500);
      const s = sim.nodes.get(stranger)!;
      if (s.core.rawView() !== null) fail("the non-allowed joiner installed a view");
      if (!s.events.some((e) => e.type === "admissionRefused"))
        fail("the non-allowed joiner was never refused");
      healAndConverge("non-allowed joiner");
      break;
    }
    case "threeGroups": {
      const order = setup.shuffle(addrsAll);
      const i = setup.int(1, n - 2);
      const j = setup.int(i + 1, n - 1);
      sim.net.partition([order.slice(0, i), order.slice(i, j), order.slice(j)]);
      sim.runUntil(t0 + sim.healBound());
      healAndConverge("three subgroups");
      break;
    }
    case "leave": {
      const a = setup.pick(addrsAll);
      sim.input(a, { type: "leave" });
      const rest = addrsAll.filter((x) => x !== a);
      const hit = sim.runUntilTrue(t0 + 20 * t.batchDelay + t.timeout, () => sim.converged(rest));
      if (hit === null)
        fail(`graceful leave of ${a} not reflected within ${20 * t.batchDelay + t.timeout} ms`);
      sim.runUntil(sim.clock.now() + 10);
      if (!sim.nodes.get(a)!.halted) fail(`${a} did not halt after leaving`);
      for (const r of rest) {
        const rw = sim.nodes.get(r)!.membersFileRewrites.at(-1);
        if (!rw || rw.includes(a)) fail(`${r} did not rewrite its members file without ${a}`);
      }
      sim.runUntil(sim.clock.now() + 4 * t.timeout);
      for (const r of rest) {
        if (sim.nodes.get(r)!.core.clusterConfig().voters.includes(a))
          fail(`${a} still a voter at ${r} after leaving`);
      }
      break;
    }
  }
  return { seed, scenario, violations: sim.violations, convergedAfter, steps: sim.clock.steps };
}
