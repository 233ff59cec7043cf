import type { NotificationId, NotificationParams } from "@efm/notifier";

/** Agent roles as `efm cluster-status` shows them. */
export type AgentRole = "Master" | "Standby" | "Witness" | "Idle" | "Promoting";

/** Life cycle of one agent: probe the local database, join, check every database, run, exit. */
export type Phase = "starting" | "joining" | "checking" | "running" | "exited";

/** What the agent last knew about a database. */
export type DbStatus = "UP" | "DOWN" | "UNKNOWN";

/** Result of trying a (remote) database: `unknown` means it answered but could not be verified (auth, limits). */
export type Reachability = "reachable" | "unreachable" | "unknown";

/** Why a local health check failed, as classified by the probe. */
export type LocalFailure = "refused" | "timeout" | "authentication" | "tooManyConnections" | "notAccepting";

/** User scripts of section 3.2.1. */
export type ScriptKind = "fence" | "postPromotion" | "dbFailure" | "masterIsolated";

/**
 * A database's place in the WAL history: its position and, when the database can tell, the
 * timeline it is on. Candidates are ranked by timeline first: WAL on an older timeline past the
 * fork point is history the cluster discarded, however far it goes.
 */
export interface WalPosition {
  readonly lsn: string | null;
  /** Timeline of that position; null when unknown (no WAL receiver running, an older executor). */
  readonly timeline: number | null;
  /** The WAL receiver streams from its upstream now (so its history is compatible with it). */
  readonly streaming?: boolean;
  /** Last position replayed (pg_last_wal_replay_lsn; a standby's), when the executor reads it. */
  readonly replayed?: string | null;
  /** The host its WAL receiver streams from (pg_stat_wal_receiver.sender_host), when known. */
  readonly upstream?: string | null;
}

/**
 * What an agent keeps across restarts in its state directory (written atomically by the caller,
 * handed back as `config.persisted` at the next start).
 */
export interface PersistedFailoverState {
  /** The last master this agent knew of. */
  readonly lastMaster: string | null;
  /** Promotions this agent has seen completed (a new master raises it). */
  readonly epoch: number;
  /**
   * This agent's database was a master that fenced itself: its WAL may go past the fork of the
   * next promotion, so it is no candidate until rewound or re-cloned and resumed (`efm resume`
   * checks that it streams from the current master).
   */
  readonly rebuildNeeded: boolean;
  /**
   * The synchronous standby set a master last published (synchronous.mode on or strict): only
   * one of these may be promoted automatically. Absent from older agents' files.
   */
  readonly syncStandbys?: SyncSet;
  /** The newest promotion's fork this agent knows (see TimelineFork). Absent from older agents' files. */
  readonly newestFork?: TimelineFork;
}

/**
 * Where the newest promotion the cluster knows of branched a new timeline off the WAL history:
 * off timeline `parent`, at a position no earlier than `lsn` (the promoted standby's last reported
 * position; it replays everything it received before it leaves recovery), null when unknown (only
 * a position on a newer timeline told us). Invariant: a database on `parent` past `lsn` (or on an
 * older timeline) holds WAL the newer timeline does not have; it is never promoted until rewound
 * or re-cloned, even once the new timeline's only master is gone.
 */
export interface TimelineFork {
  readonly parent: number;
  readonly lsn: string | null;
}

/**
 * A published synchronous standby set and its version: the promotion epoch of the master that
 * published it, then a count within that master's term. A newer version wins wherever two meet,
 * so an agent cut off while the set changed learns the newer one when it is back.
 */
export interface SyncSet {
  readonly standbys: readonly string[];
  readonly epoch: number;
  readonly seq: number;
}

/** synchronous.mode: see docs/operations.md, "Synchronous replication guard". */
export type SynchronousMode = "off" | "on" | "strict";

/**
 * Rejoin of a fenced old master, and rewind of a standby that cannot follow a new timeline
 * (auto.rejoin, db.rewind, db.rejoin.basebackup; issue 16). Absent: the agent's executor cannot
 * rejoin, so `efm resume` only checks and explains, as before.
 */
export interface RejoinConfig {
  /** auto.rejoin: a fenced old master rejoins by itself once a running master is known. */
  readonly auto: boolean;
  /** db.rewind=on: a standby whose reconfiguration failed is rewound against the master. */
  readonly rewindStandbys: boolean;
  /** db.rejoin.basebackup: a base backup may replace the data directory when no rewind can. */
  readonly basebackup: boolean;
  /**
   * pg_rewind's precondition as pg_control showed it at start-up (wal_log_hints=on or data
   * checksums); null when it could not be read.
   */
  readonly rewindable: boolean | null;
}

/** Everything the engine needs from the properties file, already validated, times in milliseconds. */
export interface FailoverConfig {
  /** This agent's address as it appears in views (`bind.address`). */
  readonly self: string;
  readonly clusterName: string;
  readonly isWitness: boolean;
  readonly autoFailover: boolean;
  readonly autoReconfigure: boolean;
  /** `virtualIp`, or null when VIP support is disabled. */
  readonly virtualIp: string | null;
  /** `pingServerIp`, or null to skip the orphan check. */
  readonly pingServer: string | null;
  readonly scripts: { readonly [K in ScriptKind]: string | null };
  readonly localPeriodMs: number;
  readonly localTimeoutMs: number;
  readonly localTimeoutFinalMs: number;
  readonly remoteTimeoutMs: number;
  /** Master lease L: a master that has not heard from a majority for this long must fence itself. */
  readonly leaseMs: number;
  /** Extra wait on top of L before the majority takes over a lost master (drift + delivery). */
  readonly takeoverMarginMs: number;
  /** How long a coordinator waits for a peer's answer beyond the operation's own timeout. */
  readonly messageSlackMs: number;
  /** How long a coordinator waits for a candidate to finish promoting before giving up on it. */
  readonly promotionTimeoutMs: number;
  /**
   * `switchover.max.lag.bytes`: a switchover is refused unless its target is at most this far
   * behind the master (default 16 MiB): the write pause waits for the target to replay the rest.
   */
  readonly switchoverMaxLagBytes?: number;
  /** Allowed node host list (persisted state, seeded from the .nodes file). */
  readonly allowed: readonly string[];
  /** Standby priority host list (persisted state). */
  readonly priority: readonly string[];
  /** What this agent persisted before it last stopped; absent on a first start. */
  readonly persisted?: PersistedFailoverState;
  /** Rejoin and rewind settings; absent when the executor cannot rejoin (see RejoinConfig). */
  readonly rejoin?: RejoinConfig;
  /** synchronous.mode; absent = off (the executor cannot set synchronous_standby_names). */
  readonly synchronousMode?: SynchronousMode;
}

/** One member of an installed view, with the failover role it last announced (if membership carries it). */
export interface ViewMember {
  readonly address: string;
  readonly role?: AgentRole | null;
}

/** A view as the membership layer installed it, translated by the caller. */
export interface ViewInfo {
  readonly epoch: number;
  /** Members in join order. */
  readonly members: readonly ViewMember[];
  readonly coordinator: string;
  /** More than half of the voter set is in this view. */
  readonly quorate: boolean;
  /** The persisted voter set R the quorum is counted against. */
  readonly voters: readonly string[];
  /** For merge views: the subgroups merged, quorate first. */
  readonly subgroups?: readonly (readonly string[])[];
}

/** A cluster command from the admin channel (the CLI). */
export type Command =
  | {
      readonly kind: "promote";
      readonly force: boolean;
      /**
       * `efm promote -switchover`: the master shuts down cleanly once the target caught up, the
       * target is promoted, the old master follows it as a standby; `to`: the chosen target.
       */
      readonly switchover?: { readonly to: string | null };
    }
  | { readonly kind: "resume" }
  | { readonly kind: "addNode"; readonly address: string; readonly priority?: number }
  | { readonly kind: "removeNode"; readonly address: string }
  | { readonly kind: "stopCluster" };

/** Messages agents exchange (sent via membership request/response). */
export type PeerMessage =
  | {
      readonly type: "status";
      readonly role: AgentRole;
      readonly db: DbStatus;
      /** The master the sender knows of (so a restarting old master learns it was replaced). */
      readonly master?: string | null;
      /** The sender is starting and asks every member for its status. */
      readonly ask?: boolean;
      /** The sender has not finished start-up: its role is tentative. */
      readonly starting?: boolean;
      /** The sender stays Idle over a start-up master conflict: its database is a primary too. */
      readonly conflict?: boolean;
      /** synchronous.mode on or strict: the newest published synchronous set the sender knows... */
      readonly sync?: readonly string[];
      /** ...its version: the publishing master's promotion epoch... */
      readonly syncEpoch?: number;
      /** ...and its count within that master's term. */
      readonly syncSeq?: number;
    }
  | { readonly type: "dbFailed"; readonly role: AgentRole }
  | { readonly type: "checkDb"; readonly token: string; readonly target: string; readonly asMaster?: boolean }
  | { readonly type: "checkDbReply"; readonly token: string; readonly result: Reachability }
  | { readonly type: "dbFailureVerdict"; readonly token: string; readonly confirmed: boolean }
  | {
      readonly type: "fenced";
      readonly token: string;
      /** The database could not be confirmed stopped: treat the old master as possibly writable. */
      readonly unconfirmed?: boolean;
      /** A clean switchover stop: the position of the shutdown checkpoint, the master's last WAL. */
      readonly finalLsn?: string;
    }
  | {
      readonly type: "switchover";
      readonly token: string;
      readonly newMaster?: string;
      /** `efm promote -switchover`: CHECKPOINT, a clean fast shutdown, report the final position. */
      readonly clean?: boolean;
    }
  /** Coordinator to the old master after a clean switchover: the target is master, follow it as a standby. */
  | { readonly type: "switchoverDone"; readonly newMaster: string }
  | { readonly type: "queryLsn"; readonly token: string }
  | {
      readonly type: "lsnReply";
      readonly token: string;
      readonly lsn: string | null;
      readonly role: AgentRole;
      /** The timeline of that position, when the database can tell (absent from older agents). */
      readonly timeline?: number | null;
      /** The sender is a fenced ex-master not yet rewound or re-cloned: never a candidate. */
      readonly rebuild?: boolean;
      /** Its WAL receiver streams from its upstream now (absent from older agents). */
      readonly streaming?: boolean;
      /** Last position replayed (a standby's; absent from older agents and on a master). */
      readonly replayed?: string | null;
      /** The host its WAL receiver streams from, when it streams (absent from older agents). */
      readonly upstream?: string | null;
      /**
       * The sender is not the master but its record names itself the last master: with `epoch`
       * (the promotions it has seen), the coordinator can tell a promotion happened after it.
       */
      readonly lastMaster?: boolean;
      readonly epoch?: number;
    }
  | {
      readonly type: "promote";
      readonly token: string;
      readonly epoch: number;
      readonly oldMaster: string | null;
      readonly checkMaster: boolean;
      /** The receiver is the fenced old master, brought back because no standby could be promoted. */
      readonly restore?: boolean;
      /** The position the candidate was ranked at (absent from older agents): the new timeline's fork is no earlier. */
      readonly atLsn?: string;
      readonly atTimeline?: number | null;
      /** The newest promotion's fork the coordinator knows (TimelineFork; absent from older agents). */
      readonly forkTimeline?: number;
      readonly forkLsn?: string | null;
    }
  | {
      readonly type: "promotionResult";
      readonly token: string;
      readonly ok: boolean;
      readonly reason: string;
      /** The failure is this candidate's own (its database, its network): another one may succeed. */
      readonly next?: boolean;
      /**
       * The candidate gave up for a passing reason (it lost the majority's acknowledgements before
       * promoting), not because a check said no: the cluster still needs a master, so look again soon.
       */
      readonly retry?: boolean;
    }
  /** Coordinator to candidate: can you be promoted (database reachable with our credentials, in recovery, promote path usable)? */
  | { readonly type: "checkPromotable"; readonly token: string; readonly restore?: boolean }
  | {
      readonly type: "promotableReply";
      readonly token: string;
      readonly ok: boolean;
      readonly error?: string;
      /** Not checked at all: the receiver is not (yet) a running standby of the sender's view. */
      readonly refused?: boolean;
    }
  /** What an operator must do now (the cluster has no master and cannot make one); null: nothing. */
  | { readonly type: "notice"; readonly text: string | null }
  | {
      readonly type: "newMaster";
      readonly address: string;
      /** The promotion epoch the new master reached (absent from older agents). */
      readonly epoch?: number;
      /** The fork of the timeline it opened (TimelineFork), when it knows it (absent from older agents). */
      readonly forkTimeline?: number;
      readonly forkLsn?: string | null;
    }
  | { readonly type: "lists"; readonly allowed: readonly string[]; readonly priority: readonly string[] }
  | { readonly type: "command"; readonly requestId: string; readonly command: Command }
  | {
      readonly type: "commandReply";
      readonly requestId: string;
      readonly ok: boolean;
      readonly message: string;
    }
  | { readonly type: "stop" }
  /** An old master that fenced itself in a minority is back in a majority view. */
  | {
      readonly type: "fencedMasterBack";
      /** Its fence could not be confirmed: the old database may still take writes. */
      readonly unconfirmed?: boolean;
    };

/** Inputs to `step`. Every event carries the current time: the engine never reads a clock. */
export type FailoverEvent =
  | { readonly type: "started"; readonly now: number }
  | {
      readonly type: "localRoleChecked";
      readonly now: number;
      readonly result: "primary" | "recovery" | "unreachable";
      /** The token of the `checkLocalRole` action answered, when it had one. */
      readonly token?: string;
    }
  | { readonly type: "viewInstalled"; readonly now: number; readonly view: ViewInfo }
  | {
      readonly type: "memberGone";
      readonly now: number;
      readonly address: string;
      /** left = graceful stop; removed = suspected then verified dead/unreachable. */
      readonly how: "left" | "removed";
      /** When this agent last heard anything from that member. */
      readonly lastHeardAt: number;
      /** From membership's committed removal view: when its role may be taken over (overrides lastHeardAt + L + margin). */
      readonly takeoverAllowedAt?: number;
    }
  | { readonly type: "memberSuspected"; readonly now: number; readonly address: string }
  /** Membership: the member has been silent long enough that slow checks start now (before suspicion). */
  | { readonly type: "memberQuiet"; readonly now: number; readonly address: string }
  | { readonly type: "quorumLost"; readonly now: number }
  | { readonly type: "quorumGained"; readonly now: number }
  /** A majority acknowledged us: our master lease runs until `until` (membership's leaseUntil). */
  | { readonly type: "leaseValid"; readonly now: number; readonly until: number }
  | { readonly type: "leaseLost"; readonly now: number }
  | { readonly type: "timer"; readonly now: number; readonly name: string }
  | {
      readonly type: "localDbChecked";
      readonly now: number;
      readonly token: string;
      readonly ok: boolean;
      readonly failure?: LocalFailure;
    }
  | {
      readonly type: "remoteDbChecked";
      readonly now: number;
      readonly token: string;
      readonly target: string;
      readonly result: Reachability;
    }
  | {
      readonly type: "lsnQueried";
      readonly now: number;
      readonly token: string;
      readonly lsn: string | null;
      readonly timeline?: number | null;
      readonly streaming?: boolean;
      /** Last position replayed (standby), when the executor reads it. */
      readonly replayed?: string | null;
      readonly upstream?: string | null;
    }
  | { readonly type: "vipPinged"; readonly now: number; readonly token: string; readonly reachable: boolean }
  /**
   * The VIP watchdog looked at this host's addresses: is the virtual IP held here? The agent feeds
   * it every few seconds; table/vip-watch.ts decides what to do about it.
   */
  | { readonly type: "vipChecked"; readonly now: number; readonly heldHere: boolean }
  | {
      readonly type: "pingServerPinged";
      readonly now: number;
      readonly token: string;
      readonly reachable: boolean;
    }
  | {
      readonly type: "scriptDone";
      readonly now: number;
      readonly token: string;
      readonly script: ScriptKind;
      readonly exitCode: number;
      readonly output: string;
    }
  | {
      /** Result of `checkPromotable`: ok, or why this node's database cannot be promoted. */
      readonly type: "promotableChecked";
      readonly now: number;
      readonly token: string;
      readonly ok: boolean;
      readonly error?: string;
    }
  | {
      readonly type: "dbPromoted";
      readonly now: number;
      readonly token: string;
      readonly ok: boolean;
      readonly error?: string;
    }
  | {
      readonly type: "vipDone";
      readonly now: number;
      readonly token: string;
      readonly op: "assign" | "release";
      readonly ok: boolean;
      readonly output: string;
    }
  | {
      readonly type: "dbFenced";
      readonly now: number;
      readonly token: string;
      readonly ok: boolean;
      readonly error?: string;
      /** A clean fence (switchover): the shutdown checkpoint's position, when it shut down cleanly. */
      readonly finalLsn?: string;
    }
  | {
      /** Result of `rejoinDb`: the database streams from the master as a standby, or why not. */
      readonly type: "dbRejoined";
      readonly now: number;
      readonly token: string;
      readonly ok: boolean;
      readonly error?: string;
      /** How it was resynchronised (pg_rewind or a base backup), when ok. */
      readonly method?: "rewind" | "basebackup";
    }
  | {
      readonly type: "dbReconfigured";
      readonly now: number;
      readonly token: string;
      readonly ok: boolean;
      readonly error?: string;
    }
  | {
      /** Result of `setSyncStandbys`: the local database's synchronous_standby_names is set. */
      readonly type: "syncStandbysSet";
      readonly now: number;
      readonly token: string;
      readonly ok: boolean;
      readonly error?: string;
    }
  | {
      readonly type: "messageReceived";
      readonly now: number;
      readonly from: string;
      readonly message: PeerMessage;
    }
  | { readonly type: "command"; readonly now: number; readonly requestId: string; readonly command: Command }
  | { readonly type: "shutdown"; readonly now: number };

/** The event type names, for the transition table. */
export type FailoverEventType = FailoverEvent["type"];

/** A notification to send: a catalogue id and exactly its parameters. */
export type NotifyAction = {
  [Id in NotificationId]: {
    readonly type: "notify";
    readonly id: Id;
    readonly params: NotificationParams<Id>;
  };
}[NotificationId];

/** Side effects the caller performs; results come back as events carrying the same `token`. */
export type FailoverAction =
  | { readonly type: "send"; readonly to: string; readonly message: PeerMessage }
  | { readonly type: "broadcast"; readonly message: PeerMessage }
  /** token: set by an Idle agent's watch, so its answer is never taken for another check's. */
  | { readonly type: "checkLocalRole"; readonly token?: string }
  | { readonly type: "checkLocalDb"; readonly token: string; readonly timeoutMs: number }
  | {
      readonly type: "checkRemoteDb";
      readonly token: string;
      readonly target: string;
      readonly timeoutMs: number;
      /** Count it reachable only if it runs as a master (pg_is_in_recovery() = false). */
      readonly asMaster?: boolean;
    }
  | { readonly type: "queryLsn"; readonly token: string }
  | { readonly type: "pingVip"; readonly token: string; readonly vip: string }
  | { readonly type: "pingServer"; readonly token: string; readonly server: string }
  | { readonly type: "runScript"; readonly token: string; readonly script: ScriptKind; readonly path: string }
  /**
   * Pre-promotion check, run over the same path `promoteDb` uses: the local database answers with
   * the configured credentials, is in recovery, and the agent can carry out the promotion.
   * Answered by `promotableChecked` with the same token.
   */
  | { readonly type: "checkPromotable"; readonly token: string }
  | {
      readonly type: "promoteDb";
      readonly token: string;
      /**
       * The newest promotion's fork the candidate knows (TimelineFork): the executor reads the
       * database's WAL position right before promoting and rejects, promoting nothing, when it
       * went past it. A standby still streaming from a master the cluster gave up (it missed the
       * announcement that would have pointed it elsewhere) can receive that WAL after it was ranked.
       */
      readonly fork?: TimelineFork;
    }
  | {
      readonly type: "fenceDb";
      readonly token: string;
      readonly newMaster: string | null;
      /**
       * `efm promote -switchover`: CHECKPOINT, a fast stop that must end cleanly (its shutdown
       * checkpoint's position comes back in dbFenced.finalLsn), then start in recovery following
       * newMaster.
       */
      readonly clean?: boolean;
    }
  | { readonly type: "reconfigureDb"; readonly token: string; readonly newMaster: string }
  /**
   * Master, synchronous.mode on or strict: set the local database's synchronous_standby_names to
   * `ANY 1 (...)` over these standbys' WAL receiver names, `ANY 1 (*)` for ["*"] (any standby),
   * or '' for none, and reload; answered by `syncStandbysSet` with the same token.
   */
  | { readonly type: "setSyncStandbys"; readonly token: string; readonly standbys: readonly string[] }
  /**
   * Resynchronise the local database with `newMaster` (pg_rewind, or a base backup when allowed)
   * and start it as a standby streaming from it; answered by `dbRejoined` with the same token.
   */
  | { readonly type: "rejoinDb"; readonly token: string; readonly newMaster: string }
  | { readonly type: "assignVip"; readonly token: string; readonly vip: string }
  | { readonly type: "releaseVip"; readonly token: string; readonly vip: string }
  | NotifyAction
  | { readonly type: "writeState"; readonly allowed: readonly string[]; readonly priority: readonly string[] }
  /** Persist what must survive a restart (last master, promotion epoch, rebuild flag). */
  | { readonly type: "persist"; readonly state: PersistedFailoverState }
  | { readonly type: "respond"; readonly requestId: string; readonly ok: boolean; readonly message: string }
  | { readonly type: "setTimer"; readonly name: string; readonly at: number }
  | { readonly type: "cancelTimer"; readonly name: string }
  | { readonly type: "exit"; readonly code: number; readonly reason: string };

/** What this agent knows about another member. */
export interface PeerInfo {
  readonly role: AgentRole | null;
  readonly db: DbStatus;
  /** The master that peer knows of, from its last status. */
  readonly master?: string | null;
  /** That peer had not finished start-up when it last announced itself (its role is tentative). */
  readonly starting?: boolean;
  /** That peer is Idle over a start-up master conflict: it holds an unresolved primary database. */
  readonly conflict?: boolean;
}

/** A coordinator-side check of one database by every member of the view. */
export interface Investigation {
  readonly token: string;
  readonly kind: "dbFailure" | "masterLost" | "standbyLost";
  readonly target: string;
  readonly targetRole: AgentRole;
  readonly awaiting: readonly string[];
  readonly results: Readonly<Record<string, Reachability>>;
  /** Conclusions wait for this time too (the lease wait on agent loss). */
  readonly notBefore: number;
  readonly deadline: number;
  /** Confirmed master database failure: waiting for the master's `fenced` before promoting. */
  readonly awaitingFence?: boolean;
  /**
   * The master reported its fence as unconfirmed: no promotion before this time (when it
   * reported, plus L and the takeover margin), by which its watchdog has reset its host.
   */
  readonly fenceWaitUntil?: number;
}

/** A promotion driven by the coordinator. */
export interface Promotion {
  readonly token: string;
  readonly manual: boolean;
  readonly force: boolean;
  readonly oldMaster: string | null;
  /** probe: no master known, every member database is asked pg_is_in_recovery() first. */
  /** replay (switchover): the master stopped cleanly; waiting for the target to replay its final position. */
  readonly stage: "probe" | "queryLsn" | "precheck" | "switchover" | "replay" | "promoting";
  /** Probe stage: our check token to the member whose database it asks. */
  readonly probes?: Readonly<Record<string, string>>;
  /** Manual promotion: the master has stepped down, positions were queried again. */
  readonly switchedOver: boolean;
  /**
   * Until when a standby still streaming from the stopped old master is asked again rather than
   * ranked (its WAL receiver is still reading what that master sent: lsn.reply.draining).
   */
  readonly drainUntil?: number;
  readonly awaiting: readonly string[];
  readonly lsns: Readonly<Record<string, string | null>>;
  /** Timelines the standbys reported with their positions (null: unknown). */
  readonly timelines: Readonly<Record<string, number | null>>;
  readonly masterLsn: string | null;
  /** The master's timeline when it answered too (manual promotion). */
  readonly masterTimeline: number | null;
  readonly candidate: string | null;
  readonly request: { readonly requestId: string; readonly origin: string } | null;
  readonly epoch: number;
  /** Candidates in rank order, set once positions are collected; tried one after another. */
  readonly ranked: readonly string[];
  /** Why each candidate tried so far could not be promoted. */
  readonly failures: Readonly<Record<string, string>>;
  /** Candidates whose pre-promotion check passed. */
  readonly verified: readonly string[];
  /** The candidate is the fenced old master, brought back because no standby could be promoted. */
  readonly restoring: boolean;
  /**
   * The old master's fence was not confirmed: it may still take writes, so the candidate runs the
   * 8.3 checks (VIP, ping server, master database) even after a switchover.
   */
  readonly masterUnconfirmed?: boolean;
  /**
   * The old master stepped down for this manual promotion but its fence was not confirmed: no
   * standby is chosen before this time (when it reported, plus L and the takeover margin), by which
   * its watchdog has reset its host.
   */
  readonly fenceWaitUntil?: number;
  /** Whether each standby's WAL receiver was streaming when it reported its position. */
  readonly streaming?: Readonly<Record<string, boolean>>;
  /**
   * Pre-promotion checks asked together with the positions, by standby: the promotion token it
   * was asked under, and `error` once it answered that it cannot be promoted. No `error`: not
   * answered yet. An ok answer moves the standby to `verified`; a refusal drops the entry (the
   * standby is asked again if it becomes the candidate), as does an answer under an older token.
   */
  readonly prechecks?: Readonly<Record<string, { readonly token: string; readonly error?: string }>>;
  /**
   * `efm promote -switchover`: the target asked for (null: the coordinator's choice), the
   * master's final position once it stopped cleanly, and until when the target may take to
   * replay it. Anything failing before the target is promoted brings the old master back.
   */
  readonly switchover?: {
    readonly to: string | null;
    readonly finalLsn: string | null;
    readonly until: number | null;
  };
}

/** The promotion pipeline on the chosen standby. */
export interface Candidacy {
  readonly token: string;
  readonly coordinator: string;
  readonly epoch: number;
  readonly oldMaster: string | null;
  readonly checkMaster: boolean;
  /** We are the fenced old master taking the role back: no master check, no fencing script. */
  readonly restore: boolean;
  /** The position the coordinator ranked us at, when it said (the fork of the timeline we open). */
  readonly position?: TimelineFork;
  /**
   * verifyPromote: the promote failed; the database's role is read before reporting it.
   * lease: the checks and the fencing script are done, but the majority's acknowledgements
   * lapsed for a moment: the promote waits for the lease to be renewed (bounded, then aborted).
   */
  readonly stage:
    | "vip"
    | "pingServer"
    | "master"
    | "fence"
    | "lease"
    | "promote"
    | "verifyPromote"
    | "assignVip"
    | "postPromotion";
  /** Why the promote failed (while verifying it). */
  readonly error?: string;
  /**
   * The checks before fencing (VIP free, ping server answering, old master database down) that
   * have not answered yet: they run side by side, and fencing waits for all of them.
   */
  readonly pendingChecks?: readonly CandidateCheck[];
  /** When the checks (or the master database's second read) were asked for. */
  readonly checksAskedAt?: number;
  /**
   * When the master database answered "down" while other checks were still out: if they answer
   * more than that check's own duration later, the database is read again before fencing.
   */
  readonly masterAnsweredAt?: number;
  /**
   * Our own check of the old master's database from the confirmation (asked, answered): it found
   * it down, and it counts for the master check if it is still as fresh as a new check could be
   * when every other check is in.
   */
  readonly priorMaster?: { readonly askedAt: number; readonly answeredAt: number };
  /**
   * The VIP check waits for our VIP probe (State.vipProbes) still running when the checks
   * started, instead of a ping of its own.
   */
  readonly vipFromProbe?: boolean;
  /**
   * The ping of the ping server whose answer is this candidacy's: the early one
   * (EngineState.earlyPing) when it was still running as the checks started.
   * Absent: the candidacy's own ping (its token).
   */
  readonly pingToken?: string;
}

/** One ping of the ping server (pingServerCommand): whether it answered, when asked and answered. */
export interface PingAnswer {
  readonly reachable: boolean;
  readonly askedAt: number;
  readonly answeredAt: number;
}

/**
 * Our pings of the virtual IP begun before any candidacy (Ctx.startVipProbe): when the master
 * goes quiet or is suspected (guide 8.3: a lost master's VIP is pinged to see whether it was
 * released) and when the coordinator asks for our pre-promotion check. By the time we are
 * chosen, one has usually answered, or is closer to its bound than a new ping would be.
 */
export interface VipProbes {
  /** The probe still out, if any (at most one at a time). */
  readonly running: { readonly token: string; readonly askedAt: number } | null;
  /** The latest probe that found nobody on the VIP, unless a later one found it answering. */
  readonly free: { readonly askedAt: number; readonly answeredAt: number } | null;
}

/** One direct check of a database: what it found, when it was asked and when it answered. */
export interface DbAnswer {
  readonly result: Reachability;
  readonly askedAt: number;
  readonly answeredAt: number;
}

/** A candidate's read-only check before anything is fenced (guide 8.3's order, run at once). */
export type CandidateCheck = "vip" | "pingServer" | "master";

/**
 * An agent fencing itself (release the VIP and fence the database side by side, then run a
 * script and report).
 */
export interface SelfFence {
  readonly token: string;
  /** retry: fencing again after a fence whose stop could not be confirmed. */
  readonly purpose: "dbFailure" | "switchover" | "isolation" | "retry";
  /**
   * The results still awaited: both (VIP release and database fence in flight at once), only
   * the VIP release (the database result is kept in `dbResult`), or only the database fence.
   */
  readonly stage: "both" | "releaseVip" | "fenceDb";
  /** The database fence's result when it came in before the VIP release's. */
  readonly dbResult?: { readonly ok: boolean; readonly error?: string };
  readonly replyTo: { readonly to: string; readonly token: string } | null;
  /** Where the fenced database must point (a switchover names the candidate); null: unknown. */
  readonly newMaster?: string | null;
  /** `efm promote -switchover`: a clean stop whose final position is reported. */
  readonly clean?: boolean;
  /** The clean stop's shutdown checkpoint position, once the fence reported it. */
  readonly finalLsn?: string;
}

/** The whole agent state: plain data, safe to serialise and to compare. */
export interface FailoverState {
  readonly config: FailoverConfig;
  readonly phase: Phase;
  readonly role: AgentRole | null;
  readonly db: DbStatus;
  readonly view: ViewInfo | null;
  readonly peers: Readonly<Record<string, PeerInfo>>;
  readonly allowed: readonly string[];
  readonly priority: readonly string[];
  readonly lastReason: string;
  readonly seq: number;
  /** Until when a majority is known to hear us (the master lease); null before any. */
  readonly leaseUntil: number | null;
  /** Last master this agent knew of, and when it was last heard. */
  readonly knownMaster: { readonly address: string; readonly lastHeardAt: number } | null;
  readonly failoverDisabled: boolean;
  readonly isolated: boolean;
  /** Started with a primary database but stayed Idle because another master was claimed. */
  readonly idleForConflict: boolean;
  /**
   * Our `pg_ctl promote` failed with the database still in recovery: Idle until this time (a
   * promotion timeout), then a Standby (a candidate) again while it stays healthy. Null otherwise.
   */
  readonly promoteRetryAt: number | null;
  /** We were master and fenced ourselves (isolation, failure, switchover); nobody has taken over yet. */
  readonly fencedForIsolation: boolean;
  /**
   * When the armed `localCheck` timer fires; null when none is armed. With `local.token` it lets
   * `step` keep the rule that a running Master or Standby always has a local check scheduled or
   * in flight, whichever row changed its role.
   */
  readonly localCheckAt: number | null;
  /**
   * An Idle agent still watches its database every local.period (a database started by hand
   * beside a running master must not stay writable): when the next role check is due, and the
   * token of the one in flight.
   */
  readonly idleCheck: { readonly at: number | null; readonly token: string | null };
  readonly local: {
    readonly token: string | null;
    readonly final: boolean;
    readonly firstFailure: LocalFailure | null;
    readonly reported: boolean;
  };
  readonly startupChecks: Readonly<Record<string, string>> | null;
  /** When we joined a quorate view at start-up (bounds the wait for the others' roles). */
  readonly joinedAt: number | null;
  /**
   * Direct database checks in flight, by local token: what was asked (target, asMaster) and when,
   * and whom to answer under which token (ourselves or the coordinator; none yet for a check begun
   * at the master's suspicion). A request for a check already running joins its `replies`.
   */
  readonly remoteChecks: Readonly<
    Record<
      string,
      {
        readonly replies: readonly { readonly to: string; readonly token: string }[];
        readonly target: string;
        readonly asMaster: boolean;
        readonly askedAt: number;
      }
    >
  >;
  /**
   * The latest answer of this agent's own direct check of each database as a master (asked for a
   * confirmation), with when it was asked and answered: a candidate whose check of the old master
   * is as fresh as a new one could be uses it instead of waiting for a second one.
   */
  readonly masterDbAnswers: Readonly<Record<string, DbAnswer>>;
  /** Our VIP probes (see VipProbes). */
  readonly vipProbes: VipProbes;
  /**
   * The ping of the ping server begun when a promotion of this standby became likely (the
   * coordinator asked it to try the master's database, or for its pre-promotion check), while it
   * runs: its token and when it was asked (Ctx.startEarlyPing).
   */
  readonly earlyPing: { readonly token: string; readonly askedAt: number } | null;
  /** The latest answer of that early ping: a candidacy uses it while it is fresh (Ctx.freshPingAnswer). */
  readonly pingAnswer: PingAnswer | null;
  readonly investigations: readonly Investigation[];
  readonly promotion: Promotion | null;
  readonly candidacy: Candidacy | null;
  readonly selfFence: SelfFence | null;
  readonly pendingResume: {
    readonly requestId: string;
    /** wal: a fenced ex-master's database must be shown to stream from the current master. */
    readonly stage: "db" | "role" | "wal";
    readonly token: string;
    /** wal stage: until when a database not streaming yet is asked again (its WAL receiver may be connecting). */
    readonly until?: number;
  } | null;
  readonly lsnQueries: Readonly<Record<string, string>>;
  /** Pre-promotion checks in flight: local token to the coordinator's address and token. */
  readonly promotableChecks: Readonly<Record<string, { readonly to: string; readonly token: string }>>;
  /** What an operator must do now (shown by cluster-status); null when nothing is needed. */
  readonly attention: string | null;
  /** The last master on record (persisted; kept apart from knownMaster, which is live knowledge). */
  readonly recordedMaster: string | null;
  /** When this agent (re)started: a lease granted before may still run until startedAt + L + margin. */
  readonly startedAt: number | null;
  /** Promotions seen completed (persisted). */
  readonly epoch: number;
  /** See PersistedFailoverState.rebuildNeeded (persisted). */
  readonly rebuildNeeded: boolean;
  /** The newest promotion's fork known (persisted; null: none known). */
  readonly newestFork: TimelineFork | null;
  /** We fenced ourselves but the stop of the database could not be confirmed. */
  readonly fenceUnconfirmed: boolean;
  readonly reconfigureToken: string | null;
  /**
   * Idle because reconfiguring to follow the new master failed: the agent keeps trying (the cause
   * may pass) and takes the Standby role back once its database follows the master.
   */
  readonly reconfigureRetry: boolean;
  readonly previousViewSize: number;
  readonly hadStandby: boolean;
  /**
   * A rejoin (or a standby's rewind) in flight: against which master, and the `efm resume`
   * request waiting for it (null when the agent started it by itself).
   */
  readonly rejoin: {
    readonly token: string;
    readonly master: string;
    readonly requestId: string | null;
    readonly purpose: "oldMaster" | "standby";
  } | null;
  /** The master an automatic rejoin or rewind last failed against: not tried again by itself. */
  readonly rejoinGaveUp: string | null;
  /** Why this node could not rejoin (shown by cluster-status); null when nothing to say. */
  readonly rejoinProblem: string | null;
  /** The synchronous standby guard (synchronous.mode on or strict). */
  readonly sync: SyncState;
}

/**
 * The synchronous standby set. Invariant: every standby the master's database may count as the
 * one synchronous copy (applied) is in the set the other agents know (published), so a commit
 * acknowledged to a client is on a standby that stays eligible for promotion. Hence a standby
 * joins the published set before the database's setting, and leaves it after.
 */
export interface SyncState {
  /** The newest set a master published that this agent knows (persisted; null: none known). */
  readonly published: SyncSet | null;
  /** Master: what the local database was last set to; null until set in this term as master. */
  readonly applied: readonly string[] | null;
  /** Master: a setting in flight, and the set to publish once it succeeded (null: no change). */
  readonly pending: {
    readonly token: string;
    readonly standbys: readonly string[];
    readonly publishAfter: readonly string[] | null;
  } | null;
  /** Master: after a failed setting, the next try is not before this time. */
  readonly retryAt: number | null;
}

/** Where a step came from in the table, and why: every decision carries a reason. */
export interface Transition {
  readonly rule: string;
  readonly reason: string;
  readonly from: AgentRole | Phase | null;
  readonly to: AgentRole | Phase | null;
}

/** Result of one `step`. */
export interface StepResult {
  readonly state: FailoverState;
  readonly actions: readonly FailoverAction[];
  readonly transitions: readonly Transition[];
}
