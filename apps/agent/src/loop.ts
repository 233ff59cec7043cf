import {
  type ClockPort,
  createNode,
  type FailoverAction,
  type FailoverEvent,
  type FailoverNode,
  type FailoverState,
  type LocalFailure,
  type MembershipInput,
  type NodePorts,
  type PeerMessage,
  type PersistedFailoverState,
  type Reachability,
  type ScriptKind,
  type Step,
  type TimelineFork,
  type WalPosition,
} from "@efm/failover-core";
import { armTimerAt, type MemberEvent } from "@efm/membership";
import type { Logger } from "pino";

/** Everything the agent does to its host and its peers, one method per failover-core action. */
export interface Executors {
  send(to: string, message: PeerMessage): void;
  checkLocalRole(): Promise<"primary" | "recovery" | "unreachable">;
  checkLocalDb(timeoutMs: number): Promise<{ ok: boolean; failure?: LocalFailure }>;
  /** `asMaster`: count it reachable only if it serves as a master (not in recovery). */
  checkRemoteDb(target: string, timeoutMs: number, asMaster: boolean): Promise<Reachability>;
  /** The local WAL position, with its timeline when the database can tell. */
  queryLsn(): Promise<string | null | WalPosition>;
  ping(address: string): Promise<boolean>;
  runScript(kind: ScriptKind, path: string): Promise<{ exitCode: number; output: string }>;
  /**
   * Pre-promotion check over the promote path: the database answers with the configured
   * credentials, is in recovery, and the promotion can be carried out. Optional until every
   * executor provides it; without it the agent checks connection and role via checkLocalRole.
   */
  checkPromotable?(): Promise<{ ok: boolean; error?: string }>;
  /** `fork`: reject, promoting nothing, when the database's WAL went past it. */
  promoteDb(fork?: TimelineFork): Promise<void>;
  /** `clean`: a switchover's fast stop, whose shutdown checkpoint position comes back. */
  fenceDb(newMaster: string | null, clean?: boolean): Promise<void | { finalLsn?: string }>;
  reconfigureDb(newMaster: string): Promise<void>;
  /** Rewind (or re-clone) the local database against `newMaster` and start it as its standby. */
  rejoinDb?(newMaster: string): Promise<void | { method?: "rewind" | "basebackup" }>;
  /** synchronous.mode: set the local master's synchronous_standby_names over these standbys. */
  setSyncStandbys?(standbys: readonly string[]): Promise<void>;
  assignVip(vip: string): Promise<{ ok: boolean; output: string }>;
  releaseVip(vip: string): Promise<{ ok: boolean; output: string }>;
  notify(action: Extract<FailoverAction, { type: "notify" }>): void;
  writeState(allowed: readonly string[], priority: readonly string[]): void;
  /** Persist the engine's record (last master, promotion epoch, rebuild flag), atomically. */
  persist(state: PersistedFailoverState): void;
  respond(requestId: string, ok: boolean, message: string): void;
  exit(code: number, reason: string): void;
}

const ROUTINE = new Set<FailoverAction["type"]>([
  "setTimer",
  "cancelTimer",
  "checkLocalDb",
  // an Idle agent's watch asks every local.period
  "checkLocalRole",
  "send",
  "broadcast",
]);

// Drift guard: every membership event the node translates must have the shape it expects; this
// fails to compile when @efm/membership and failover-core's MembershipInput part ways.
const fitsNode = (e: Extract<MemberEvent, { type: MembershipInput["type"] }>): MembershipInput => e;
void fitsNode;

/** The agent's executors as failover-core's node ports. */
function portsOf(exec: Executors): NodePorts {
  return {
    send: (to, message) => exec.send(to, message),
    checkLocalRole: () => exec.checkLocalRole(),
    checkLocalDb: (timeoutMs) => exec.checkLocalDb(timeoutMs),
    checkRemoteDb: (target, timeoutMs, asMaster) => exec.checkRemoteDb(target, timeoutMs, asMaster),
    queryLsn: () => exec.queryLsn(),
    // Both are an ICMP echo with pingServerCommand.
    pingVip: (vip) => exec.ping(vip),
    pingServer: (server) => exec.ping(server),
    runScript: (kind, path) => exec.runScript(kind, path),
    checkPromotable: () =>
      exec.checkPromotable
        ? exec.checkPromotable()
        : exec.checkLocalRole().then((r) =>
            r === "recovery"
              ? { ok: true }
              : {
                  ok: false,
                  error: `the local database is ${r === "primary" ? "not in recovery" : "unreachable"}`,
                },
          ),
    promoteDb: (fork) => exec.promoteDb(fork),
    fenceDb: (newMaster, clean) => exec.fenceDb(newMaster, clean),
    reconfigureDb: (newMaster) => exec.reconfigureDb(newMaster),
    ...(exec.rejoinDb ? { rejoinDb: (newMaster: string) => exec.rejoinDb!(newMaster) } : {}),
    ...(exec.setSyncStandbys
      ? { setSyncStandbys: (standbys: readonly string[]) => exec.setSyncStandbys!(standbys) }
      : {}),
    assignVip: (vip) => exec.assignVip(vip),
    releaseVip: (vip) => exec.releaseVip(vip),
    notify: (action) => exec.notify(action),
    writeState: (allowed, priority) => exec.writeState(allowed, priority),
    persist: (state) => exec.persist(state),
    respond: (requestId, ok, message) => exec.respond(requestId, ok, message),
    exit: (code, reason) => exec.exit(code, reason),
  };
}

/**
 * The agent's failover node (failover-core's createNode, the same driver the simulator runs)
 * with real timers and the agent's executors as ports; this class only adds the agent's logging.
 */
export class EventLoop {
  private readonly node: FailoverNode;

  constructor(
    state: FailoverState,
    step: Step,
    exec: Executors,
    private readonly log: Logger,
    private readonly clock: () => number = Date.now,
  ) {
    const timers: ClockPort = {
      now: clock,
      schedule: (at, fire, name) => armTimerAt(clock, at, fire, name),
    };
    this.node = createNode({
      state,
      step,
      ports: portsOf(exec),
      clock: timers,
      observer: {
        stepped: (event, result) => {
          // Routine steps (timers, periodic checks, lease renewals) go to debug; a step that
          // changes a role or does something visible is logged at info with its reason.
          const notable = result.actions.some((x) => !ROUTINE.has(x.type));
          for (const t of result.transitions) {
            const level = notable || t.from !== t.to ? "info" : "debug";
            this.log[level]({ rule: t.rule, from: t.from, to: t.to, event: event.type }, t.reason);
          }
        },
        acting: (action) => this.log.debug({ action }, `action ${action.type}`),
        actionFailed: (action, err) =>
          this.log.warn({ action: action.type, err: err.message }, `${action.type} failed`),
        // A bug in a decision must not take the agent down silently: log it loudly and keep the old state.
        rejected: (event, err) =>
          this.log.error({ err, event: event.type }, "failover engine rejected an event"),
        // A peer's malformed message is its problem (another version, a bug): warn. Anything else
        // dropped (an unknown action, a lease without an end) is ours: error.
        dropped: (what, detail) =>
          this.log[what === "malformed failover message" ? "warn" : "error"](detail, what),
      },
    });
  }

  /** The current engine state (for status reports). */
  get current(): FailoverState {
    return this.node.state;
  }

  now(): number {
    return this.clock();
  }

  /** Queue an engine event; processing happens on this tick when idle. */
  dispatch(event: FailoverEvent): void {
    this.node.handle(event);
  }

  /** Feed a membership event: translated, validated (peer messages, lease ends) or ignored. */
  membership(event: MembershipInput | { readonly type: string }): void {
    this.node.membership(event);
  }

  /** Stop accepting events and clear every timer. */
  stop(): void {
    this.node.stop();
  }
}
