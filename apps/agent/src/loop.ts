import type {
  FailoverAction,
  FailoverEvent,
  FailoverState,
  LocalFailure,
  PeerMessage,
  Reachability,
  ScriptKind,
  StepResult,
} from "@efm/failover-core";
import { armTimerAt, type TimerHandle } from "@efm/membership";
import type { Logger } from "pino";

/** Everything the agent does to its host and its peers, one method per failover-core action. */
export interface Executors {
  send(to: string, message: PeerMessage): void;
  broadcast(message: PeerMessage): void;
  checkLocalRole(): Promise<"primary" | "recovery" | "unreachable">;
  checkLocalDb(timeoutMs: number): Promise<{ ok: boolean; failure?: LocalFailure }>;
  /** `asMaster`: count it reachable only if it serves as a master (not in recovery). */
  checkRemoteDb(target: string, timeoutMs: number, asMaster: boolean): Promise<Reachability>;
  queryLsn(): Promise<string | null>;
  ping(address: string): Promise<boolean>;
  runScript(kind: ScriptKind, path: string): Promise<{ exitCode: number; output: string }>;
  /**
   * Pre-promotion check over the promote path: the database answers with the configured
   * credentials, is in recovery, and the promotion can be carried out. Optional until every
   * executor provides it; without it the loop checks connection and role via checkLocalRole.
   */
  checkPromotable?(): Promise<{ ok: boolean; error?: string }>;
  promoteDb(): Promise<void>;
  fenceDb(newMaster: string | null): Promise<void>;
  reconfigureDb(newMaster: string): Promise<void>;
  assignVip(vip: string): Promise<{ ok: boolean; output: string }>;
  releaseVip(vip: string): Promise<{ ok: boolean; output: string }>;
  notify(action: Extract<FailoverAction, { type: "notify" }>): void;
  writeState(allowed: readonly string[], priority: readonly string[]): void;
  respond(requestId: string, ok: boolean, message: string): void;
  exit(code: number, reason: string): void;
}

const ROUTINE = new Set<FailoverAction["type"]>([
  "setTimer",
  "cancelTimer",
  "checkLocalDb",
  "send",
  "broadcast",
]);

type Step = (state: FailoverState, event: FailoverEvent) => StepResult;

/**
 * The agent's one event loop: each event goes through the pure `step`, its actions are run,
 * and their results come back as events. Events are processed strictly one at a time, in
 * arrival order, so the engine never sees two events at once.
 */
export class EventLoop {
  private queue: FailoverEvent[] = [];
  private draining = false;
  private readonly timers = new Map<string, TimerHandle>();
  private stopped = false;

  constructor(
    private state: FailoverState,
    private readonly step: Step,
    private readonly exec: Executors,
    private readonly log: Logger,
    private readonly clock: () => number = Date.now,
  ) {}

  /** The current engine state (for status reports). */
  get current(): FailoverState {
    return this.state;
  }

  now(): number {
    return this.clock();
  }

  /** Queue an event; processing happens on this tick when idle. */
  dispatch(event: FailoverEvent): void {
    if (this.stopped) return;
    this.queue.push(event);
    if (!this.draining) this.drain();
  }

  /** Stop accepting events and clear every timer. */
  stop(): void {
    this.stopped = true;
    for (const t of this.timers.values()) t.cancel();
    this.timers.clear();
    this.queue = [];
  }

  private drain(): void {
    this.draining = true;
    try {
      for (let ev = this.queue.shift(); ev !== undefined && !this.stopped; ev = this.queue.shift()) {
        let result: StepResult;
        try {
          result = this.step(this.state, ev);
        } catch (err) {
          // A bug in a decision must not take the agent down silently: log it loudly and keep the old state.
          this.log.error({ err, event: ev.type }, "failover engine rejected an event");
          continue;
        }
        this.state = result.state;
        // Routine steps (timers, periodic checks, lease renewals) go to debug; a step that
        // changes a role or does something visible is logged at info with its reason.
        const notable = result.actions.some((x) => !ROUTINE.has(x.type));
        for (const t of result.transitions) {
          const level = notable || t.from !== t.to ? "info" : "debug";
          this.log[level]({ rule: t.rule, from: t.from, to: t.to, event: ev.type }, t.reason);
        }
        for (const a of result.actions) this.run(a);
      }
    } finally {
      this.draining = false;
    }
  }

  /** Run one action; async results come back as events carrying the action's token. */
  private run(a: FailoverAction) {
    const now = () => this.clock();
    const later = <T>(p: Promise<T>, ok: (v: T) => FailoverEvent, fail: (e: Error) => FailoverEvent) => {
      p.then(
        (v) => this.dispatch(ok(v)),
        (e: unknown) => {
          const err = e instanceof Error ? e : new Error(String(e));
          this.log.warn({ action: a.type, err: err.message }, `${a.type} failed`);
          this.dispatch(fail(err));
        },
      );
    };
    this.log.debug({ action: a }, `action ${a.type}`);
    switch (a.type) {
      case "send":
        return this.exec.send(a.to, a.message);
      case "broadcast":
        return this.exec.broadcast(a.message);
      case "checkLocalRole":
        return later(
          this.exec.checkLocalRole(),
          (result) => ({ type: "localRoleChecked", now: now(), result }),
          () => ({ type: "localRoleChecked", now: now(), result: "unreachable" }),
        );
      case "checkLocalDb":
        return later(
          this.exec.checkLocalDb(a.timeoutMs),
          (r) => ({
            type: "localDbChecked",
            now: now(),
            token: a.token,
            ok: r.ok,
            ...(r.failure ? { failure: r.failure } : {}),
          }),
          () => ({ type: "localDbChecked", now: now(), token: a.token, ok: false, failure: "timeout" }),
        );
      case "checkRemoteDb":
        return later(
          this.exec.checkRemoteDb(a.target, a.timeoutMs, a.asMaster === true),
          (result) => ({ type: "remoteDbChecked", now: now(), token: a.token, target: a.target, result }),
          () => ({
            type: "remoteDbChecked",
            now: now(),
            token: a.token,
            target: a.target,
            result: "unknown",
          }),
        );
      case "queryLsn":
        return later(
          this.exec.queryLsn(),
          (lsn) => ({ type: "lsnQueried", now: now(), token: a.token, lsn }),
          () => ({ type: "lsnQueried", now: now(), token: a.token, lsn: null }),
        );
      case "pingVip":
        return later(
          this.exec.ping(a.vip),
          (reachable) => ({ type: "vipPinged", now: now(), token: a.token, reachable }),
          // Could not run the test: assume the VIP may still be in use, which blocks promotion.
          () => ({ type: "vipPinged", now: now(), token: a.token, reachable: true }),
        );
      case "pingServer":
        return later(
          this.exec.ping(a.server),
          (reachable) => ({ type: "pingServerPinged", now: now(), token: a.token, reachable }),
          () => ({ type: "pingServerPinged", now: now(), token: a.token, reachable: false }),
        );
      case "runScript":
        return later(
          this.exec.runScript(a.script, a.path),
          (r) => ({ type: "scriptDone", now: now(), token: a.token, script: a.script, ...r }),
          (e) => ({
            type: "scriptDone",
            now: now(),
            token: a.token,
            script: a.script,
            exitCode: -1,
            output: e.message,
          }),
        );
      case "checkPromotable":
        return later(
          this.exec.checkPromotable
            ? this.exec.checkPromotable()
            : this.exec
                .checkLocalRole()
                .then((r) =>
                  r === "recovery"
                    ? { ok: true }
                    : {
                        ok: false,
                        error: `the local database is ${r === "primary" ? "not in recovery" : "unreachable"}`,
                      },
                ),
          (r) => ({
            type: "promotableChecked",
            now: now(),
            token: a.token,
            ok: r.ok,
            ...(r.ok ? {} : { error: r.error ?? "the pre-promotion check failed" }),
          }),
          (e) => ({ type: "promotableChecked", now: now(), token: a.token, ok: false, error: e.message }),
        );
      case "promoteDb":
        return later(
          this.exec.promoteDb(),
          () => ({ type: "dbPromoted", now: now(), token: a.token, ok: true }),
          (e) => ({ type: "dbPromoted", now: now(), token: a.token, ok: false, error: e.message }),
        );
      case "fenceDb":
        return later(
          this.exec.fenceDb(a.newMaster),
          () => ({ type: "dbFenced", now: now(), token: a.token, ok: true }),
          (e) => ({ type: "dbFenced", now: now(), token: a.token, ok: false, error: e.message }),
        );
      case "reconfigureDb":
        return later(
          this.exec.reconfigureDb(a.newMaster),
          () => ({ type: "dbReconfigured", now: now(), token: a.token, ok: true }),
          (e) => ({ type: "dbReconfigured", now: now(), token: a.token, ok: false, error: e.message }),
        );
      case "assignVip":
      case "releaseVip": {
        const op = a.type === "assignVip" ? "assign" : "release";
        return later(
          op === "assign" ? this.exec.assignVip(a.vip) : this.exec.releaseVip(a.vip),
          (r) => ({ type: "vipDone", now: now(), token: a.token, op, ok: r.ok, output: r.output }),
          (e) => ({ type: "vipDone", now: now(), token: a.token, op, ok: false, output: e.message }),
        );
      }
      case "notify":
        return this.exec.notify(a);
      case "writeState":
        return this.exec.writeState(a.allowed, a.priority);
      case "respond":
        return this.exec.respond(a.requestId, a.ok, a.message);
      case "setTimer": {
        this.timers.get(a.name)?.cancel();
        this.timers.delete(a.name);
        try {
          this.timers.set(
            a.name,
            armTimerAt(
              now,
              a.at,
              () => {
                this.timers.delete(a.name);
                this.dispatch({ type: "timer", now: now(), name: a.name });
              },
              a.name,
            ),
          );
        } catch (err) {
          this.log.error({ err, timer: a.name }, "failover engine asked for an invalid timer");
        }
        return;
      }
      case "cancelTimer": {
        this.timers.get(a.name)?.cancel();
        this.timers.delete(a.name);
        return;
      }
      case "exit":
        return this.exec.exit(a.code, a.reason);
      default: {
        const never: never = a;
        this.log.error({ action: never }, "unknown action");
      }
    }
  }
}
