import type { FailoverState } from "@efm/failover-core";

/** What the local database said when asked for this request (null: it did not answer). */
export interface LocalDbAnswer {
  inRecovery: boolean;
  /** The WAL receiver's status on a standby ("streaming" when it follows a master). */
  walReceiverStatus: string | null;
}

/** An endpoint's answer: the HTTP status and the reason shown in the body. */
export interface Verdict {
  ok: boolean;
  reason: string;
}

/** What a verdict on the master role needs beyond the engine state: the lease and the clock. */
export interface LeaseClock {
  leaseUntil: number;
  now: number;
}

/**
 * Whether this node may answer 200 on /primary: the engine says Master and is not fencing or
 * isolated, the majority's lease still covers us, and the database itself (asked for this
 * request, not remembered) is out of recovery. The role alone is not enough: a master whose
 * database was restarted read-only, or who lost the majority, must not draw writes. The lease
 * is what keeps two hosts from answering 200 at once: a standby is only promoted after the old
 * master's lease (plus the drift margin) has run out.
 */
export function judgePrimary(state: FailoverState, lease: LeaseClock, db: LocalDbAnswer | null): Verdict {
  if (state.phase !== "running") return { ok: false, reason: `the agent is ${state.phase}` };
  if (state.role !== "Master")
    return { ok: false, reason: `this node is ${state.role ?? "not assigned a role"}` };
  if (state.selfFence) return { ok: false, reason: "this master is fencing itself" };
  if (state.isolated) return { ok: false, reason: "this master is isolated from the majority" };
  if (!(lease.leaseUntil > lease.now))
    return { ok: false, reason: "this master holds no lease from a majority" };
  if (!db) return { ok: false, reason: "the local database does not answer" };
  if (db.inRecovery) return { ok: false, reason: "the local database is in recovery" };
  return { ok: true, reason: "master with a lease; its database is not in recovery" };
}

/**
 * Whether this node may answer 200 on /replica: a running Standby whose database is in
 * recovery and streams from a master; with `maxLag`, replayed to within that many bytes of the
 * master's current position (`lagBytes` null: the lag could not be measured).
 */
export function judgeReplica(
  state: FailoverState,
  db: LocalDbAnswer | null,
  maxLag: bigint | null,
  lagBytes: bigint | null,
): Verdict {
  if (state.phase !== "running") return { ok: false, reason: `the agent is ${state.phase}` };
  if (state.role !== "Standby")
    return { ok: false, reason: `this node is ${state.role ?? "not assigned a role"}` };
  if (!db) return { ok: false, reason: "the local database does not answer" };
  if (!db.inRecovery) return { ok: false, reason: "the local database is not in recovery" };
  if (db.walReceiverStatus !== "streaming") {
    return {
      ok: false,
      reason: `the local database is not streaming (${db.walReceiverStatus ?? "no WAL receiver"})`,
    };
  }
  if (maxLag !== null) {
    if (lagBytes === null)
      return { ok: false, reason: "the replay lag cannot be measured: no master answered" };
    if (lagBytes > maxLag) return { ok: false, reason: `replay lag ${lagBytes} bytes is over ${maxLag}` };
  }
  return {
    ok: true,
    reason: lagBytes === null ? "streaming standby" : `streaming standby, ${lagBytes} bytes behind`,
  };
}

/** /health: the agent runs and, unless it is a witness, its database answers. */
export function judgeHealth(state: FailoverState, dbAnswered: boolean): Verdict {
  if (state.phase !== "running") return { ok: false, reason: `the agent is ${state.phase}` };
  if (state.config.isWitness) return { ok: true, reason: "witness agent running" };
  if (!dbAnswered) return { ok: false, reason: "the local database does not answer" };
  return { ok: true, reason: "agent running, database answers" };
}

/** Parse `?lag=`: a whole number of bytes; null when absent; a string says what is wrong. */
export function parseMaxLag(text: string | undefined): bigint | null | string {
  if (text === undefined) return null;
  if (!/^\d{1,20}$/.test(text)) return `lag must be a whole number of bytes, got "${text}"`;
  return BigInt(text);
}
