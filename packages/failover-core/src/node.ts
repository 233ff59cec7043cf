import { parsePeerMessage } from "./peer-message.ts";
import { step as engineStep } from "./step.ts";
import type {
  Command,
  FailoverAction,
  FailoverEvent,
  FailoverState,
  LocalFailure,
  NotifyAction,
  PeerMessage,
  PersistedFailoverState,
  Reachability,
  ScriptKind,
  StepResult,
  TimelineFork,
  WalPosition,
} from "./types.ts";

/** The engine's step function (or a wrapper around it that observes it). */
export type Step = (state: FailoverState, event: FailoverEvent) => StepResult;

/** A scheduled callback. */
export interface TimerHandle {
  cancel(): void;
}

/**
 * Time, injected: the engine never reads a clock. `now()` must be the clock membership's times
 * (lease ends, takeover times) are on; `schedule` calls `fire` once `now()` has reached `at`
 * (always a finite time).
 */
export interface ClockPort {
  now(): number;
  /** `name` is the engine's name for the timer (for logs; a node never arms two of one name). */
  schedule(at: number, fire: () => void, name: string): TimerHandle;
}

/** What a local role check finds. */
export type LocalRole = "primary" | "recovery" | "unreachable";

/**
 * The outside world, one method per engine action. An asynchronous port returns a PromiseLike:
 * the node turns its value, or its rejection, into the action's result event. The agent returns
 * real promises; a simulator returns thenables that settle on its virtual clock.
 */
export interface NodePorts {
  /** A failover message to one member (membership carries it; a non-member is dropped there). */
  send(to: string, message: PeerMessage): void;
  checkLocalRole(): PromiseLike<LocalRole>;
  checkLocalDb(timeoutMs: number): PromiseLike<{ ok: boolean; failure?: LocalFailure }>;
  /** `asMaster`: count it reachable only if it serves as a master (not in recovery). */
  checkRemoteDb(target: string, timeoutMs: number, asMaster: boolean): PromiseLike<Reachability>;
  /**
   * The local database's WAL position; with its timeline when the database can tell (a plain
   * position, or null when it cannot be read, is accepted from executors that do not know it).
   */
  queryLsn(): PromiseLike<string | null | WalPosition>;
  /** Is the virtual IP answering from some other host? */
  pingVip(vip: string): PromiseLike<boolean>;
  /** Does pingServerIp answer (are we still connected to the outside)? */
  pingServer(server: string): PromiseLike<boolean>;
  runScript(kind: ScriptKind, path: string): PromiseLike<{ exitCode: number; output: string }>;
  /** Can the local database be promoted, checked over the path the promotion itself takes? */
  checkPromotable(): PromiseLike<{ ok: boolean; error?: string }>;
  /** `fork`: reject, promoting nothing, when the database's WAL went past it (the promoteDb action). */
  promoteDb(fork?: TimelineFork): PromiseLike<void>;
  /** `clean` (switchover): a fast stop that must end cleanly; its shutdown checkpoint comes back. */
  fenceDb(newMaster: string | null, clean?: boolean): PromiseLike<void | { readonly finalLsn?: string }>;
  reconfigureDb(newMaster: string): PromiseLike<void>;
  /**
   * Resynchronise the local database with `newMaster` (pg_rewind, or a base backup when allowed)
   * and start it streaming from it as a standby. Optional: without it a rejoin fails, saying so.
   */
  rejoinDb?(newMaster: string): PromiseLike<void | { readonly method?: "rewind" | "basebackup" }>;
  /**
   * synchronous.mode: set the local (master) database's synchronous_standby_names to
   * `ANY 1 (...)` over these standbys (by the application name their WAL receivers use),
   * `ANY 1 (*)` for ["*"], or '' for none, and reload. Optional: without it the setting fails,
   * saying so (only called when the configuration turns the guard on).
   */
  setSyncStandbys?(standbys: readonly string[]): PromiseLike<void>;
  assignVip(vip: string): PromiseLike<{ ok: boolean; output: string }>;
  releaseVip(vip: string): PromiseLike<{ ok: boolean; output: string }>;
  notify(action: NotifyAction): void;
  /** Persist the allowed and priority lists. */
  writeState(allowed: readonly string[], priority: readonly string[]): void;
  /**
   * Persist what must survive a restart (last master, promotion epoch, rebuild flag) and hand it
   * back as `config.persisted` at the next start. Write it atomically (temporary file, fsync,
   * rename); the engine does not wait for it, so a failure is the port's to report.
   */
  persist(state: PersistedFailoverState): void;
  /** Answer an admin request (the CLI). */
  respond(requestId: string, ok: boolean, message: string): void;
  exit(code: number, reason: string): void;
}

/** Hooks for logs, metrics and transcripts; none of them may change what the node does. */
export interface NodeObserver {
  /** After each step of the engine: the event, the state before it and what the step decided. */
  stepped?(event: FailoverEvent, result: StepResult, before: FailoverState): void;
  /** An action is about to be handed to its port. */
  acting?(action: FailoverAction): void;
  /** An asynchronous port failed; its failure becomes the action's result event. */
  actionFailed?(action: FailoverAction, error: Error): void;
  /** The engine threw on an event (a bug): the node keeps its state and goes on. */
  rejected?(event: FailoverEvent, error: unknown): void;
  /** Input refused at the edge: a malformed peer message, a broken lease contract, an unknown action. */
  dropped?(what: string, detail: Readonly<Record<string, unknown>>): void;
}

/**
 * The membership events the node understands. @efm/membership's MembershipEvent and its runtime
 * events satisfy this; another membership backend must emit the same shapes and keep the lease
 * contract (see the README): every time is on the node's clock, and a lease end is finite.
 */
export type MembershipInput =
  | {
      readonly type: "viewInstalled";
      readonly view: {
        readonly epoch: number;
        /** Members in join order; the first is the coordinator. */
        readonly members: readonly string[];
        readonly coordinator: string;
        /** More than half of `voters` are members. */
        readonly quorate: boolean;
        readonly subgroups: readonly (readonly string[])[];
        /** The persisted voter set R. */
        readonly voters: readonly string[];
      };
      /** Members that left gracefully with this view. */
      readonly left: readonly string[];
    }
  | {
      /** A view is acknowledged by a majority of R: its removals may now be acted on. */
      readonly type: "viewCommitted";
      readonly committedAt: number;
      readonly removed: readonly { readonly member: string; readonly takeoverAllowedAt: number }[];
    }
  | { readonly type: "memberSuspected"; readonly member: string }
  /** Silent for membership's quietAfter, before any suspicion (nothing is decided on it). */
  | { readonly type: "memberQuiet"; readonly member: string }
  | { readonly type: "quorumGained" }
  | { readonly type: "quorumLost" }
  /** Our lease runs until `until`: sent when it is established and on every renewal. */
  | { readonly type: "leaseValid"; readonly until: number }
  | { readonly type: "leaseLost" }
  | { readonly type: "message"; readonly from: string; readonly payload: unknown }
  | { readonly type: "clusterStopping"; readonly by: string }
  | { readonly type: "halted"; readonly reason: string };

/** A membership event the node has no use for (joins, admin results, persistence...). */
type OtherMembershipEvent = { readonly type: string };

/** One agent's failover node: the engine, its timers and its ports, driven by events. */
export interface FailoverNode {
  /** The engine's current state (for status reports and invariants). */
  readonly state: FailoverState;
  /** Feed one engine event as it is (an embedder with its own membership, scripted tests). */
  handle(event: FailoverEvent): void;
  /** Feed one membership event; it is translated, validated, or ignored. */
  membership(event: MembershipInput | OtherMembershipEvent): void;
  /** The agent has started (membership is running). */
  start(): void;
  /** An admin command (the CLI); the answer goes to `ports.respond(requestId, ...)`. */
  command(requestId: string, command: Command): void;
  /** The operator stops this agent: the engine leaves cleanly, then asks `ports.exit`. */
  shutdown(): void;
  /** Stop at once: cancel every timer, ignore every later event and result. */
  stop(): void;
}

/** What createNode needs. */
export interface NodeOptions {
  /** The engine's state to start from: `initialState(config)`. */
  readonly state: FailoverState;
  readonly ports: NodePorts;
  readonly clock: ClockPort;
  readonly observer?: NodeObserver;
  /** The engine's step; defaults to failover-core's own. */
  readonly step?: Step;
}

/**
 * A PromiseLike for ports of a deterministic world (a simulator on a virtual clock, a scripted
 * harness): it settles when `schedule` runs the callback it is given, with what `compute`
 * returns at that moment, or with what it throws. Real promises would settle on the microtask
 * queue, outside the world's own order of events. Settle it once; it cannot be chained.
 */
export function settleWhen<T>(schedule: (run: () => void) => void, compute: () => T): PromiseLike<T> {
  return {
    // biome-ignore lint/suspicious/noThenProperty: being a thenable is this object's whole purpose
    then<A = T, B = never>(
      onValue?: ((v: T) => A | PromiseLike<A>) | null,
      onError?: ((e: unknown) => B | PromiseLike<B>) | null,
    ): PromiseLike<A | B> {
      schedule(() => {
        let v: T;
        try {
          v = compute();
        } catch (e) {
          onError?.(e);
          return;
        }
        onValue?.(v);
      });
      return settleWhen<A | B>(
        () => {},
        () => {
          throw new Error("settleWhen: a deterministic port result cannot be chained");
        },
      );
    },
  };
}

const KNOWN_MEMBERSHIP = new Set([
  "viewInstalled",
  "viewCommitted",
  "memberSuspected",
  "memberQuiet",
  "quorumGained",
  "quorumLost",
  "leaseValid",
  "leaseLost",
  "message",
  "clusterStopping",
  "halted",
]);

const asError = (e: unknown): Error => (e instanceof Error ? e : new Error(String(e)));

/**
 * Builds the node: everything between membership, the engine and the outside world. Events are
 * processed strictly one at a time in arrival order (an event raised while one is being handled
 * waits its turn), every action goes to its port, and every port result comes back as the event
 * the engine expects, carrying the action's token.
 */
export function createNode(options: NodeOptions): FailoverNode {
  const { ports, clock } = options;
  const obs = options.observer ?? {};
  const step = options.step ?? engineStep;
  let state = options.state;
  let queue: FailoverEvent[] = [];
  let draining = false;
  let stopped = false;
  const timers = new Map<string, TimerHandle>();

  const handle = (event: FailoverEvent): void => {
    if (stopped) return;
    queue.push(event);
    if (!draining) drain();
  };

  const drain = (): void => {
    draining = true;
    try {
      for (let ev = queue.shift(); ev !== undefined && !stopped; ev = queue.shift()) {
        let result: StepResult;
        try {
          result = step(state, ev);
        } catch (err) {
          obs.rejected?.(ev, err);
          continue;
        }
        const before = state;
        state = result.state;
        obs.stepped?.(ev, result, before);
        for (const a of result.actions) {
          if (stopped) break;
          act(a);
        }
      }
    } finally {
      draining = false;
    }
  };

  /** Run an asynchronous port; its value or failure comes back as an event. */
  /** The token of a `checkLocalRole` action, echoed in its answer (only when it has one). */
  const tokenOf = (a: { readonly token?: string }) => (a.token !== undefined ? { token: a.token } : {});

  const later = <T>(
    a: FailoverAction,
    run: () => PromiseLike<T>,
    ok: (v: T, now: number) => FailoverEvent,
    fail: (e: Error, now: number) => FailoverEvent,
  ): void => {
    const failed = (e: unknown): void => {
      const err = asError(e);
      obs.actionFailed?.(a, err);
      handle(fail(err, clock.now()));
    };
    let p: PromiseLike<T>;
    try {
      p = run();
    } catch (e) {
      // A port that throws instead of rejecting fails the same way, on the same path.
      failed(e);
      return;
    }
    p.then((v) => handle(ok(v, clock.now())), failed);
  };

  const setTimer = (name: string, at: number): void => {
    timers.get(name)?.cancel();
    timers.delete(name);
    if (!Number.isFinite(at)) {
      // Never hand a clock a time that is not one: a timer "at Infinity" would fire at once forever.
      obs.dropped?.("timer at a time that is not finite", { name, at });
      return;
    }
    timers.set(
      name,
      clock.schedule(
        at,
        () => {
          timers.delete(name);
          handle({ type: "timer", now: clock.now(), name });
        },
        name,
      ),
    );
  };

  const act = (a: FailoverAction) => {
    obs.acting?.(a);
    switch (a.type) {
      case "send":
        ports.send(a.to, a.message);
        return;
      case "broadcast":
        for (const m of state.view?.members ?? []) {
          if (m.address !== state.config.self) ports.send(m.address, a.message);
        }
        return;
      case "checkLocalRole":
        return later(
          a,
          () => ports.checkLocalRole(),
          (result, now) => ({ type: "localRoleChecked", now, result, ...tokenOf(a) }),
          (_e, now) => ({ type: "localRoleChecked", now, result: "unreachable", ...tokenOf(a) }),
        );
      case "checkLocalDb":
        return later(
          a,
          () => ports.checkLocalDb(a.timeoutMs),
          (r, now) => ({
            type: "localDbChecked",
            now,
            token: a.token,
            ok: r.ok,
            ...(r.failure ? { failure: r.failure } : {}),
          }),
          (_e, now) => ({ type: "localDbChecked", now, token: a.token, ok: false, failure: "timeout" }),
        );
      case "checkRemoteDb":
        return later(
          a,
          () => ports.checkRemoteDb(a.target, a.timeoutMs, a.asMaster === true),
          (result, now) => ({ type: "remoteDbChecked", now, token: a.token, target: a.target, result }),
          (_e, now) => ({
            type: "remoteDbChecked",
            now,
            token: a.token,
            target: a.target,
            result: "unknown",
          }),
        );
      case "queryLsn":
        return later(
          a,
          () => ports.queryLsn(),
          (pos, now) =>
            pos === null || typeof pos === "string"
              ? { type: "lsnQueried", now, token: a.token, lsn: pos }
              : {
                  type: "lsnQueried",
                  now,
                  token: a.token,
                  lsn: pos.lsn,
                  timeline: pos.timeline,
                  ...(pos.streaming !== undefined ? { streaming: pos.streaming } : {}),
                  ...(pos.replayed !== undefined ? { replayed: pos.replayed } : {}),
                  ...(pos.upstream !== undefined ? { upstream: pos.upstream } : {}),
                },
          (_e, now) => ({ type: "lsnQueried", now, token: a.token, lsn: null }),
        );
      case "pingVip":
        return later(
          a,
          () => ports.pingVip(a.vip),
          (reachable, now) => ({ type: "vipPinged", now, token: a.token, reachable }),
          // Could not run the test: assume the VIP may still be in use, which blocks promotion.
          (_e, now) => ({ type: "vipPinged", now, token: a.token, reachable: true }),
        );
      case "pingServer":
        return later(
          a,
          () => ports.pingServer(a.server),
          (reachable, now) => ({ type: "pingServerPinged", now, token: a.token, reachable }),
          (_e, now) => ({ type: "pingServerPinged", now, token: a.token, reachable: false }),
        );
      case "runScript":
        return later(
          a,
          () => ports.runScript(a.script, a.path),
          (r, now) => ({
            type: "scriptDone",
            now,
            token: a.token,
            script: a.script,
            exitCode: r.exitCode,
            output: r.output,
          }),
          (e, now) => ({
            type: "scriptDone",
            now,
            token: a.token,
            script: a.script,
            exitCode: -1,
            output: e.message,
          }),
        );
      case "checkPromotable":
        return later(
          a,
          () => ports.checkPromotable(),
          (r, now) => ({
            type: "promotableChecked",
            now,
            token: a.token,
            ok: r.ok,
            ...(r.ok ? {} : { error: r.error ?? "the pre-promotion check failed" }),
          }),
          (e, now) => ({ type: "promotableChecked", now, token: a.token, ok: false, error: e.message }),
        );
      case "promoteDb":
        return later(
          a,
          () => ports.promoteDb(a.fork),
          (_v, now) => ({ type: "dbPromoted", now, token: a.token, ok: true }),
          (e, now) => ({ type: "dbPromoted", now, token: a.token, ok: false, error: e.message }),
        );
      case "fenceDb":
        return later(
          a,
          () => ports.fenceDb(a.newMaster, a.clean === true),
          (v, now) => ({
            type: "dbFenced",
            now,
            token: a.token,
            ok: true,
            ...(v?.finalLsn !== undefined ? { finalLsn: v.finalLsn } : {}),
          }),
          (e, now) => ({ type: "dbFenced", now, token: a.token, ok: false, error: e.message }),
        );
      case "reconfigureDb":
        return later(
          a,
          () => ports.reconfigureDb(a.newMaster),
          (_v, now) => ({ type: "dbReconfigured", now, token: a.token, ok: true }),
          (e, now) => ({ type: "dbReconfigured", now, token: a.token, ok: false, error: e.message }),
        );
      case "rejoinDb":
        return later(
          a,
          () => {
            if (ports.rejoinDb === undefined) throw new Error("this executor cannot rejoin a database");
            return ports.rejoinDb(a.newMaster);
          },
          (v, now) => ({
            type: "dbRejoined",
            now,
            token: a.token,
            ok: true,
            ...(v?.method !== undefined ? { method: v.method } : {}),
          }),
          (e, now) => ({ type: "dbRejoined", now, token: a.token, ok: false, error: e.message }),
        );
      case "setSyncStandbys":
        return later(
          a,
          () => {
            if (ports.setSyncStandbys === undefined)
              throw new Error("this executor cannot set synchronous_standby_names");
            return ports.setSyncStandbys(a.standbys);
          },
          (_v, now) => ({ type: "syncStandbysSet", now, token: a.token, ok: true }),
          (e, now) => ({ type: "syncStandbysSet", now, token: a.token, ok: false, error: e.message }),
        );
      case "assignVip":
      case "releaseVip": {
        const op = a.type === "assignVip" ? "assign" : "release";
        return later(
          a,
          () => (op === "assign" ? ports.assignVip(a.vip) : ports.releaseVip(a.vip)),
          (r, now) => ({ type: "vipDone", now, token: a.token, op, ok: r.ok, output: r.output }),
          (e, now) => ({ type: "vipDone", now, token: a.token, op, ok: false, output: e.message }),
        );
      }
      case "notify":
        ports.notify(a);
        return;
      case "writeState":
        ports.writeState(a.allowed, a.priority);
        return;
      case "persist":
        ports.persist(a.state);
        return;
      case "respond":
        ports.respond(a.requestId, a.ok, a.message);
        return;
      case "setTimer":
        setTimer(a.name, a.at);
        return;
      case "cancelTimer":
        timers.get(a.name)?.cancel();
        timers.delete(a.name);
        return;
      case "exit":
        ports.exit(a.code, a.reason);
        return;
      default: {
        // An engine newer than this node: say so and go on with the next action.
        const unknown: never = a;
        obs.dropped?.("unknown action", { action: unknown });
      }
    }
  };

  /** Membership events in the engine's terms; the rest of the membership vocabulary is ignored. */
  const membership = (input: MembershipInput | OtherMembershipEvent) => {
    if (stopped || !KNOWN_MEMBERSHIP.has(input.type)) return;
    const e = input as MembershipInput;
    const now = clock.now();
    switch (e.type) {
      // Departures come with the view that records them; removals only once the removing view
      // is committed, with the time from which the removed member's role may be taken over.
      case "viewInstalled":
        handle({
          type: "viewInstalled",
          now,
          view: {
            epoch: e.view.epoch,
            members: e.view.members.map((address) => ({ address })),
            coordinator: e.view.coordinator,
            quorate: e.view.quorate,
            voters: e.view.voters,
            subgroups: e.view.subgroups,
          },
        });
        for (const address of e.left)
          handle({ type: "memberGone", now, address, how: "left", lastHeardAt: now });
        return;
      case "viewCommitted":
        for (const r of e.removed) {
          handle({
            type: "memberGone",
            now,
            address: r.member,
            how: "removed",
            lastHeardAt: e.committedAt,
            takeoverAllowedAt: r.takeoverAllowedAt,
          });
        }
        return;
      case "memberSuspected":
        return handle({ type: "memberSuspected", now, address: e.member });
      case "memberQuiet":
        return handle({ type: "memberQuiet", now, address: e.member });
      case "quorumGained":
        return handle({ type: "quorumGained", now });
      case "quorumLost":
        return handle({ type: "quorumLost", now });
      case "leaseValid":
        // The lease contract: a lease ends at a finite time. "Forever" would never let the
        // engine's lease timer expire (and cannot be armed as a timer at all).
        if (typeof e.until !== "number" || !Number.isFinite(e.until)) {
          obs.dropped?.("lease renewal with an end that is not a finite time", { until: e.until });
          return;
        }
        return handle({ type: "leaseValid", now, until: e.until });
      case "leaseLost":
        return handle({ type: "leaseLost", now });
      case "message": {
        const message = parsePeerMessage(e.payload);
        if (typeof message === "string") {
          obs.dropped?.("malformed failover message", { from: e.from, reason: message });
          return;
        }
        return handle({ type: "messageReceived", now, from: e.from, message });
      }
      case "clusterStopping":
        return handle({ type: "messageReceived", now, from: e.by, message: { type: "stop" } });
      case "halted":
        // Our own stop-cluster finished: stop as every other member does.
        if (e.reason === "stopCluster")
          handle({ type: "messageReceived", now, from: state.config.self, message: { type: "stop" } });
        return;
    }
  };

  return {
    get state() {
      return state;
    },
    handle,
    membership,
    start: () => handle({ type: "started", now: clock.now() }),
    command: (requestId, command) => handle({ type: "command", now: clock.now(), requestId, command }),
    shutdown: () => handle({ type: "shutdown", now: clock.now() }),
    stop: () => {
      stopped = true;
      for (const t of timers.values()) t.cancel();
      timers.clear();
      queue = [];
    },
  };
}
