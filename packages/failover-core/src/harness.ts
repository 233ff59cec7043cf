import { FailoverCoreError } from "./errors.ts";
import { formatLsn, parseLsn, pastFork } from "./lsn.ts";
import { createNode, type FailoverNode, type NodePorts, settleWhen } from "./node.ts";
import { initialState } from "./step.ts";
import type {
  AgentRole,
  Command,
  FailoverConfig,
  FailoverEvent,
  FailoverState,
  PeerMessage,
  PersistedFailoverState,
  ScriptKind,
  ViewInfo,
} from "./types.ts";

/** A fake database in the harness world. */
interface FakeDb {
  state: "up" | "down" | "hang";
  inRecovery: boolean;
  lsn: bigint;
  fenced: boolean;
  /** When false the database answers but cannot be verified (authentication failure). */
  verifiable: boolean;
  /** The local agent cannot reach it although other hosts can (a broken local socket or credentials). */
  localBroken: boolean;
  /** The timeline its WAL is on (1 at the start; a promotion moves to a new one). */
  timeline: number;
  /** Its WAL went past the fork of a later promotion: it cannot stream from the new master. */
  diverged: boolean;
  /** The master it was reconfigured to follow (streams from it unless diverged). */
  following: string | null;
  /** synchronous_standby_names as the agent last set it (undefined: never set). */
  syncNames?: string;
}

/** One agent of the harness: its node (the engine with its ports), timers and fake database. */
class HarnessNode {
  /** Armed timers by name, in arming order (ties at the same time fire in that order). */
  readonly timers = new Map<string, { at: number; fire: () => void }>();
  alive = true;
  node!: FailoverNode;
  /** What the agent persisted (survives `restart`). */
  persisted: PersistedFailoverState | undefined;
  /** The stop of the database cannot be confirmed (a fence fails). */
  fenceFails = false;
  /** Setting synchronous_standby_names fails (`sync <node> fails`). */
  syncFails = false;
  constructor(
    readonly address: string,
    readonly db: FakeDb | null,
    readonly config: FailoverConfig,
  ) {}
  get state(): FailoverState {
    return this.node.state;
  }
}

/** Default timings for scenarios (milliseconds). */
export const harnessTimings = {
  localPeriodMs: 1000,
  localTimeoutMs: 3000,
  localTimeoutFinalMs: 1000,
  remoteTimeoutMs: 1000,
  leaseMs: 4000,
  takeoverMarginMs: 1000,
  messageSlackMs: 500,
  promotionTimeoutMs: 10000,
} as const;

/** The configuration of a harness agent: cluster acctg, a VIP, a ping server, no scripts. */
export function harnessConfig(self: string, patch: Partial<FailoverConfig> = {}): FailoverConfig {
  return {
    self,
    clusterName: "acctg",
    isWitness: false,
    autoFailover: true,
    autoReconfigure: true,
    virtualIp: "10.0.0.100",
    pingServer: "8.8.8.8",
    scripts: { fence: null, postPromotion: null, dbFailure: null, masterIsolated: null },
    ...harnessTimings,
    allowed: [],
    priority: [],
    ...patch,
  };
}

/**
 * A deterministic in-memory cluster for scenario transcripts: N failover engines, scripted
 * membership views, fake databases, a VIP register, scripts with chosen exit codes. Messages are
 * delivered in FIFO order; time only moves on `tick`.
 */
/** Adds one transition's "from -> to" to a per-row record (the row `to` check reads it). */
export function recordMove(
  moves: Map<string, Set<string>>,
  t: { rule: string; from: string | null; to: string | null },
  role?: string | null,
): void {
  const set = moves.get(t.rule) ?? new Set<string>();
  moves.set(t.rule, set);
  set.add(`${t.from} -> ${t.to}${role === undefined ? "" : ` role ${role}`}`);
}

export class Harness {
  readonly nodes = new Map<string, HarnessNode>();
  readonly out: string[] = [];
  /** Every table row that fired, for coverage checks. */
  readonly fired = new Set<string>();
  /** Per row id, every "from -> to" it made (role when running, else phase; "role R" after a step's last row). */
  readonly moves = new Map<string, Set<string>>();
  now = 0;
  epoch = 0;
  voters: string[] = [];
  vipHolders = new Set<string>();
  cuts = new Set<string>();
  outside = new Set<string>();
  scriptExit = new Map<ScriptKind, number>();
  lastHeard = new Map<string, number>();
  private queue: (() => void)[] = [];
  private reqSeq = 0;
  private configPatch: Partial<FailoverConfig> = {};

  /** Interprets one block of a scenario file and returns its transcript lines. */
  run(commandLine: string): string[] {
    const start = this.out.length;
    const [cmd, ...args] = commandLine.trim().split(/\s+/);
    switch (cmd) {
      case "config":
        for (const a of args) this.applyConfig(a);
        break;
      case "node":
        this.addNode(args);
        break;
      case "start":
        this.startAll();
        break;
      case "db":
        this.setDb(args[0]!, args[1]!);
        break;
      case "lsn":
        this.db(args[0]!).lsn = parseLsn(args[1]!);
        break;
      case "timeline":
        this.db(args[0]!).timeline = Number(args[1]);
        break;
      case "fence":
        this.node(args[0]!).fenceFails = args[1] === "fails";
        break;
      case "sync":
        this.node(args[0]!).syncFails = args[1] === "fails";
        break;
      case "restart":
        this.restart(args[0]!);
        break;
      case "script":
        this.scriptExit.set(args[0] as ScriptKind, Number(args[1]));
        break;
      case "vip":
        this.vipHolders = new Set(args[0] === "none" ? [] : [args[0]!]);
        break;
      case "outside":
        if (args[1] === "down") this.outside.add(args[0]!);
        else this.outside.delete(args[0]!);
        break;
      case "tick":
        this.tick(Number(args[0]));
        break;
      case "crash":
        this.crash(args[0]!, "removed");
        break;
      case "stop":
        this.deliverNow(args[0]!, { type: "shutdown", now: this.now });
        this.drain();
        this.crash(args[0]!, "left");
        break;
      case "partition":
        this.partition(args.join(" "));
        break;
      case "command":
        this.command(args[0]!, args.slice(1));
        break;
      case "status":
        for (const n of this.nodes.values()) {
          this.out.push(
            `${n.address}: ${n.alive ? (n.state.phase === "running" ? n.state.role : n.state.phase) : "down"}` +
              (n.db
                ? ` db=${n.db.state}${n.db.inRecovery ? "/recovery" : ""}${n.db.fenced ? "/fenced" : ""} lsn=${formatLsn(n.db.lsn)}${n.db.timeline > 1 ? ` tl=${n.db.timeline}` : ""}${n.db.syncNames !== undefined ? ` sync='${n.db.syncNames}'` : ""}`
                : "") +
              (n.state.sync.published !== null && n.alive
                ? ` published=[${n.state.sync.published.standbys.join(" ")}]`
                : ""),
          );
        }
        this.out.push(`vip: ${[...this.vipHolders].join(",") || "none"}`);
        break;
      default:
        throw new FailoverCoreError("invalid-event", `unknown scenario command "${cmd}"`);
    }
    return this.out.slice(start);
  }

  private applyConfig(kv: string): void {
    const [k, v] = kv.split("=") as [string, string];
    const val = v === "none" ? null : v;
    if (k === "auto.failover") this.configPatch = { ...this.configPatch, autoFailover: v === "true" };
    else if (k === "auto.reconfigure")
      this.configPatch = { ...this.configPatch, autoReconfigure: v === "true" };
    else if (k === "virtualIp") this.configPatch = { ...this.configPatch, virtualIp: val };
    else if (k === "pingServer") this.configPatch = { ...this.configPatch, pingServer: val };
    else if (k === "synchronous.mode" && (v === "off" || v === "on" || v === "strict"))
      this.configPatch = { ...this.configPatch, synchronousMode: v };
    else if (k.startsWith("script.")) {
      const kind = k.slice(7) as ScriptKind;
      const base = this.configPatch.scripts ?? {
        fence: null,
        postPromotion: null,
        dbFailure: null,
        masterIsolated: null,
      };
      this.configPatch = { ...this.configPatch, scripts: { ...base, [kind]: val } };
    } else throw new FailoverCoreError("invalid-config", `unknown scenario config "${k}"`);
  }

  private addNode(args: string[]): void {
    const [address, kind, lsn] = args as [string, string, string | undefined];
    const isWitness = kind === "witness";
    const config = harnessConfig(address, { isWitness, ...this.configPatch });
    const db: FakeDb | null = isWitness
      ? null
      : {
          state: "up",
          inRecovery: kind !== "master",
          lsn: parseLsn(lsn ?? "0/100"),
          fenced: false,
          verifiable: true,
          localBroken: false,
          timeline: 1,
          diverged: false,
          following: null,
        };
    const n = new HarnessNode(address, db, config);
    this.spawn(n);
    this.nodes.set(address, n);
    this.voters.push(address);
  }

  private node(address: string): HarnessNode {
    const n = this.nodes.get(address);
    if (!n) throw new FailoverCoreError("invalid-event", `no node ${address}`);
    return n;
  }

  /** A fresh agent on the node (its memory lost, its persisted state kept), started and joined. */
  private restart(address: string): void {
    const n = this.node(address);
    n.alive = true;
    n.timers.clear();
    this.spawn(n);
    this.out.push(`${address}: agent restarted`);
    this.deliverNow(address, { type: "started", now: this.now });
    this.drain();
    this.installViews();
    this.tick(harnessTimings.messageSlackMs);
  }

  private spawn(n: HarnessNode): void {
    const address = n.address;
    n.node = createNode({
      state: initialState(n.persisted ? { ...n.config, persisted: n.persisted } : n.config),
      ports: this.ports(n),
      clock: {
        now: () => this.now,
        schedule: (at, fire, name = "") => {
          const entry = { at, fire };
          n.timers.set(name, entry);
          return {
            cancel: () => {
              if (n.timers.get(name) === entry) n.timers.delete(name);
            },
          };
        },
      },
      observer: {
        stepped: (_e, r) => {
          for (const t of r.transitions) {
            this.fired.add(t.rule);
            // The role after the step is the last row's: start-up rows set a role in a phase.
            recordMove(this.moves, t, t === r.transitions.at(-1) ? r.state.role : undefined);
            if (QUIET_RULES.has(t.rule)) continue;
            this.out.push(
              `${address}: ${t.rule}${t.from !== t.to ? ` (${t.from} -> ${t.to})` : ""}: ${t.reason}`,
            );
          }
        },
        rejected: (_e, err) => {
          throw err;
        },
      },
    });
  }

  private startAll(): void {
    for (const n of this.nodes.values()) this.deliverNow(n.address, { type: "started", now: this.now });
    this.drain();
    this.installViews();
    // Let the start-up role exchange and database checks finish.
    this.tick(harnessTimings.messageSlackMs);
  }

  private db(address: string): FakeDb {
    const db = this.nodes.get(address)?.db;
    if (!db) throw new FailoverCoreError("invalid-event", `no database on ${address}`);
    return db;
  }

  private setDb(address: string, how: string): void {
    const db = this.db(address);
    if (how === "unverifiable") db.verifiable = false;
    else if (how === "diverged") db.diverged = true;
    else if (how === "rebuilt") {
      // Re-cloned from the current master: a standby on its timeline, streaming from it.
      const m = [...this.nodes.values()].find(
        (x) => x.db?.state === "up" && !x.db.inRecovery && !x.db.fenced && x.address !== address,
      );
      db.diverged = false;
      db.inRecovery = true;
      db.fenced = false;
      db.state = "up";
      db.following = m?.address ?? null;
      if (m?.db) {
        db.timeline = m.db.timeline;
        db.lsn = m.db.lsn;
      }
    } else if (how === "recovery") db.inRecovery = true;
    else if (how === "local-broken") db.localBroken = true;
    else db.state = how as FakeDb["state"];
  }

  private linked(a: string, b: string): boolean {
    return a === b || !this.cuts.has(a < b ? `${a}|${b}` : `${b}|${a}`);
  }

  private partition(spec: string): void {
    this.cuts.clear();
    if (spec.trim() !== "heal") {
      const groups = spec.split("|").map((g) => g.trim().split(/\s+/).filter(Boolean));
      for (const g of groups)
        for (const h of groups)
          if (g !== h) for (const a of g) for (const b of h) this.cuts.add(a < b ? `${a}|${b}` : `${b}|${a}`);
    }
    this.installViews();
  }

  private components(): string[][] {
    const alive = [...this.nodes.values()].filter((n) => n.alive).map((n) => n.address);
    const seen = new Set<string>();
    const out: string[][] = [];
    for (const a of alive) {
      if (seen.has(a)) continue;
      const comp = alive.filter((b) => this.linked(a, b));
      for (const b of comp) seen.add(b);
      out.push(comp);
    }
    return out;
  }

  /** Installs one view per connected component; members that disappeared from a node's view are reported gone. */
  private installViews(goneHow: "left" | "removed" = "removed"): void {
    for (const comp of this.components()) {
      this.epoch += 1;
      const view: ViewInfo = {
        epoch: this.epoch,
        members: comp.map((a) => ({ address: a, role: this.roleOf(a) })),
        coordinator: comp[0]!,
        quorate: comp.length > this.voters.length / 2,
        voters: [...this.voters],
      };
      for (const a of comp) {
        const n = this.nodes.get(a)!;
        const before = n.state.view?.members.map((m) => m.address) ?? [];
        // A majority that just installed a view with us acknowledged us: membership's lease.
        if (view.quorate) {
          this.deliverNow(a, { type: "leaseValid", now: this.now, until: this.now + harnessTimings.leaseMs });
        }
        this.deliverNow(a, { type: "viewInstalled", now: this.now, view });
        for (const b of before) {
          if (!comp.includes(b)) {
            this.deliverNow(a, {
              type: "memberGone",
              now: this.now,
              address: b,
              how: goneHow,
              lastHeardAt: this.lastHeardOf(b),
            });
          }
        }
      }
    }
    this.drain();
  }

  private lastHeardOf(address: string): number {
    return this.lastHeard.get(address) ?? this.now;
  }

  private roleOf(address: string): AgentRole | null {
    const n = this.nodes.get(address)!;
    return n.state.phase === "running" || n.state.phase === "checking" || n.state.phase === "joining"
      ? n.state.role
      : null;
  }

  private crash(address: string, how: "left" | "removed"): void {
    const n = this.nodes.get(address)!;
    n.alive = false;
    n.timers.clear();
    if (how === "removed" && n.db) n.db.state = "down";
    if (how === "removed") this.vipHolders.delete(address);
    this.lastHeard.set(address, this.now);
    this.out.push(`${address}: ${how === "left" ? "agent stopped" : "host lost"}`);
    this.installViews(how);
  }

  private command(address: string, args: string[]): void {
    const kind = args[0]!;
    let command: Command;
    if (kind === "promote") command = { kind: "promote", force: args[1] === "force" };
    else if (kind === "resume") command = { kind: "resume" };
    else if (kind === "stop-cluster") command = { kind: "stopCluster" };
    else if (kind === "remove-node") command = { kind: "removeNode", address: args[1] ?? "" };
    else if (kind === "add-node") {
      command =
        args[2] === undefined
          ? { kind: "addNode", address: args[1] ?? "" }
          : { kind: "addNode", address: args[1] ?? "", priority: Number(args[2]) };
    } else throw new FailoverCoreError("invalid-event", `unknown command "${kind}"`);
    this.reqSeq += 1;
    this.deliverNow(address, { type: "command", now: this.now, requestId: `req${this.reqSeq}`, command });
    this.drain();
  }

  /** Advances virtual time, firing timers in order and running each to quiescence. */
  tick(ms: number): void {
    const end = this.now + ms;
    for (;;) {
      let next: { node: HarnessNode; name: string; at: number; fire: () => void } | null = null;
      for (const n of this.nodes.values()) {
        if (!n.alive) continue;
        for (const [name, { at, fire }] of n.timers)
          if (at <= end && (!next || at < next.at)) next = { node: n, name, at, fire };
      }
      if (!next) break;
      this.now = Math.max(this.now, next.at);
      this.renewLeases();
      next.node.timers.delete(next.name);
      this.later(next.node, next.fire);
      this.drain();
    }
    this.now = end;
    this.renewLeases();
    this.drain();
  }

  /** Membership heartbeats: every member of a quorate component is heard by a majority until now + L. */
  private renewLeases(): void {
    for (const comp of this.components()) {
      const quorate = comp.length > this.voters.length / 2;
      for (const a of comp) {
        this.lastHeard.set(a, this.now);
        if (quorate)
          this.deliverNow(a, { type: "leaseValid", now: this.now, until: this.now + harnessTimings.leaseMs });
      }
    }
  }

  private deliverNow(to: string, event: FailoverEvent): void {
    const n = this.nodes.get(to);
    if (n) this.later(n, () => n.node.handle(event));
  }

  /** Run `fn` for a node in FIFO order with everything else queued, if its agent still runs then. */
  private later(n: HarnessNode, fn: () => void): void {
    this.queue.push(() => {
      if (n.alive) fn();
    });
  }

  private drain(): void {
    let guard = 0;
    while (this.queue.length > 0) {
      if (++guard > 100_000) throw new FailoverCoreError("invalid-event", "scenario did not settle");
      this.queue.shift()!();
    }
  }

  private reachDb(from: string, target: string): "reachable" | "unreachable" | "unknown" {
    const t = this.nodes.get(target);
    if (!t?.db || !this.linked(from, target) || t.db.state !== "up") return "unreachable";
    return t.db.verifiable ? "reachable" : "unknown";
  }

  /**
   * The fake world as the node's ports. Each port does its work at once and answers through the
   * harness queue, in FIFO order with every other delivery, as the transcripts expect.
   */
  private ports(n: HarnessNode): NodePorts {
    const me = n.address;
    const answer = <T>(v: T): PromiseLike<T> =>
      settleWhen(
        (run) => this.later(n, run),
        () => v,
      );
    const deliver = (to: string, message: PeerMessage): void => {
      const t = this.nodes.get(to);
      if (t && this.linked(me, to))
        this.later(t, () => t.node.membership({ type: "message", from: me, payload: message }));
    };
    return {
      send: deliver,
      checkLocalRole: () => {
        const db = n.db;
        return answer(
          db?.state !== "up" ? "unreachable" : db.inRecovery || db.fenced ? "recovery" : "primary",
        );
      },
      checkLocalDb: () => {
        const db = n.db;
        const ok = db?.state === "up" && !db.localBroken;
        return answer(ok ? { ok } : { ok, failure: db?.state === "hang" ? "timeout" : "refused" });
      },
      checkRemoteDb: (target, _timeoutMs, asMaster) =>
        answer(asMaster && this.nodes.get(target)?.db?.inRecovery ? "unreachable" : this.reachDb(me, target)),
      queryLsn: () => {
        const db = n.db;
        if (db?.state !== "up") return answer(null);
        const streaming = (db.inRecovery || db.fenced) && db.following !== null && !db.diverged;
        return answer({ lsn: formatLsn(db.lsn), timeline: db.timeline, streaming });
      },
      pingVip: () => answer([...this.vipHolders].some((h) => h !== me && this.linked(me, h))),
      pingServer: () => answer(!this.outside.has(me)),
      runScript: (script) => {
        const exitCode = this.scriptExit.get(script) ?? 0;
        this.out.push(`${me}: run script.${script} -> exit ${exitCode}`);
        return answer({ exitCode, output: `exit ${exitCode}` });
      },
      checkPromotable: () => {
        // Reachable by the local agent and in recovery: what the pre-promotion check verifies.
        const db = n.db;
        const ok = db?.state === "up" && !db.localBroken && (db.inRecovery || db.fenced);
        return answer(ok ? { ok } : { ok, error: "the local database is not a reachable standby" });
      },
      promoteDb: (fork) => {
        if (n.db?.inRecovery && pastFork(fork, n.db.timeline, formatLsn(n.db.lsn))) {
          this.out.push(`${me}: PROMOTE refused: WAL past the fork of a newer timeline`);
          return settleWhen(
            (run) => this.later(n, run),
            () => {
              throw new Error("not promoted: WAL past the fork of a newer timeline");
            },
          );
        }
        if (n.db) {
          n.db.inRecovery = false;
          n.db.fenced = false;
          n.db.following = null;
          // A promotion starts a timeline no database has used yet.
          n.db.timeline = 1 + Math.max(...[...this.nodes.values()].map((x) => x.db?.timeline ?? 0));
        }
        this.out.push(`${me}: PROMOTE database`);
        return n.db
          ? answer(undefined)
          : settleWhen(
              (run) => this.later(n, run),
              () => {
                throw new Error("no database");
              },
            );
      },
      fenceDb: () => {
        if (n.fenceFails) {
          this.out.push(`${me}: FENCE database (the stop cannot be confirmed)`);
          return settleWhen(
            (run) => this.later(n, run),
            () => {
              throw new Error("the database did not stop");
            },
          );
        }
        if (n.db) n.db.fenced = true;
        this.out.push(`${me}: FENCE database`);
        return answer(undefined);
      },
      reconfigureDb: (newMaster) => {
        this.out.push(`${me}: reconfigure to follow ${newMaster}`);
        const db = n.db;
        const master = this.nodes.get(newMaster)?.db;
        if (db) {
          db.following = newMaster;
          if (master && !db.diverged) db.timeline = master.timeline;
        }
        return answer(undefined);
      },
      setSyncStandbys: (standbys) => {
        const value = standbys.length === 0 ? "" : `ANY 1 (${standbys.join(", ")})`;
        if (n.syncFails || n.db?.state !== "up") {
          this.out.push(`${me}: SET synchronous_standby_names = '${value}' (fails)`);
          return settleWhen(
            (run) => this.later(n, run),
            () => {
              throw new Error("could not set synchronous_standby_names");
            },
          );
        }
        n.db.syncNames = value;
        this.out.push(`${me}: SET synchronous_standby_names = '${value}'`);
        return answer(undefined);
      },
      assignVip: () => {
        if (this.vipHolders.size > 0 && !this.vipHolders.has(me))
          this.out.push(`!! VIP already held by ${[...this.vipHolders].join(",")}`);
        this.vipHolders.add(me);
        this.out.push(`${me}: assign VIP`);
        return answer({ ok: true, output: "ok" });
      },
      releaseVip: () => {
        this.vipHolders.delete(me);
        this.out.push(`${me}: release VIP`);
        return answer({ ok: true, output: "ok" });
      },
      notify: (a) => void this.out.push(`${me}: notify ${a.id}`),
      respond: (_id, ok, message) => void this.out.push(`${me}: respond ${ok ? "ok" : "error"}: ${message}`),
      writeState: (allowed, priority) =>
        void this.out.push(
          `${me}: write state allowed=[${allowed.join(" ")}] priority=[${priority.join(" ")}]`,
        ),
      persist: (state) => {
        n.persisted = state;
      },
      exit: (code, reason) => {
        this.out.push(`${me}: EXIT ${code} (${reason})`);
        n.alive = false;
      },
    };
  }
}

/** Periodic rows that would drown a transcript. */
export const QUIET_RULES: ReadonlySet<string> = new Set([
  "local.tick",
  "local.ok",
  "local.tick.skip",
  "lease.valid",
  "lease.timer",
  "peer.status",
  "reconcile.ok",
  "investigation.timer.stale",
  "dbFailed.retry.stop",
  "verdict.retry.stop",
  "promo.timer.stale",
  "fencedRetry.stop",
  "lists.update",
  "watch.ok",
  "watch.askMaster",
  "fenceRetry.stop",
]);

/**
 * Runs a scenario file (blocks of `command` lines, each followed by `----` and the expected
 * transcript) and returns the same file with the actual transcripts, for golden comparison.
 */
export function runScenario(text: string, harness: Harness = new Harness()): string {
  const h = harness;
  const lines = text.split("\n");
  const out: string[] = [];
  let i = 0;
  while (i < lines.length) {
    const line = lines[i]!;
    if (line.trim() === "") {
      i++;
      continue;
    }
    if (line.startsWith("#")) {
      out.push(line);
      i++;
      continue;
    }
    const produced = h.run(line);
    out.push(line, "----", ...produced, "");
    i++;
    if (lines[i] === "----") {
      i++;
      while (i < lines.length && lines[i]!.trim() !== "") i++;
    }
  }
  return out.join("\n");
}
