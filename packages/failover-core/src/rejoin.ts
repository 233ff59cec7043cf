import type { FailoverState } from "./types.ts";

/**
 * Decision rules of the rejoin (issue 16), pure: which master a fenced old master (or a standby
 * that cannot follow a new timeline) may resynchronise with, and whether it may try at all. The
 * rows of table/rejoin.ts carry them out; the agent's `rejoinDb` does the work.
 */

/** Why a rejoin is refused before anything is touched: pg_rewind cannot work and no base backup may replace it. */
export const NO_REWIND_NO_BASEBACKUP =
  "pg_rewind needs wal_log_hints=on or data checksums and this database has neither (pg_control, read at the agent's start), and db.rejoin.basebackup=false allows no base backup";

/**
 * The master a node may rejoin now: a member other than us, announced Master by a running agent
 * (not one still starting), in our majority view. Never a master we only remember: rejoining
 * follows a master that runs, or a minority's stale belief would rewind a database onto history
 * the cluster may not keep.
 */
export function rejoinTarget(s: FailoverState): string | null {
  const m = s.knownMaster?.address;
  if (m === undefined || m === s.config.self) return null;
  if (s.view?.quorate !== true || !s.view.members.some((x) => x.address === m)) return null;
  const p = s.peers[m];
  return p?.role === "Master" && p.starting !== true ? m : null;
}

/**
 * This node's database is an old master's that another master has replaced: it fenced itself
 * (the persisted rebuild flag), or it was the master on record when this agent last stopped and
 * its database is down now (a crash that took the agent too, so no fence could record it). Its
 * WAL may go past the promotion's fork: it may only come back rewound or re-cloned.
 */
export function supersededMaster(s: FailoverState): boolean {
  return s.rebuildNeeded || (s.config.persisted?.lastMaster === s.config.self && s.db === "DOWN");
}

export type RejoinDecision =
  | { readonly kind: "rejoin"; readonly master: string }
  | { readonly kind: "refuse"; readonly master: string; readonly reason: string }
  | { readonly kind: "wait"; readonly reason: string };

/** Whether to rejoin now, against which master, or why not (the configuration rules it out, or no master runs). */
export function rejoinDecision(s: FailoverState): RejoinDecision {
  const r = s.config.rejoin;
  if (r === undefined) return { kind: "wait", reason: "this agent cannot rejoin its database by itself" };
  const master = rejoinTarget(s);
  if (master === null) {
    return { kind: "wait", reason: "no running master is known in this node's majority view" };
  }
  // Unknown (pg_control unreadable at start-up): let pg_rewind itself say.
  if (r.rewindable === false && !r.basebackup) {
    return { kind: "refuse", master, reason: NO_REWIND_NO_BASEBACKUP };
  }
  return { kind: "rejoin", master };
}

/**
 * The master an automatic rejoin (auto.rejoin=true) should start against now, or null: a
 * running, Idle, superseded old master with nothing else in flight, a master to follow, and no
 * automatic attempt that already failed against that same master (it is not repeated in a loop;
 * `efm resume` or a new master tries again).
 */
export function autoRejoinDue(s: FailoverState): string | null {
  if (s.config.rejoin?.auto !== true || s.config.isWitness) return null;
  if (s.phase !== "running" || s.role !== "Idle" || !supersededMaster(s)) return null;
  if (s.rejoin !== null || s.pendingResume !== null || s.selfFence !== null) return null;
  // A fence that could not be confirmed is retried first: the database may still be writable.
  if (s.fenceUnconfirmed || s.candidacy !== null || s.idleForConflict) return null;
  const m = rejoinTarget(s);
  return m === null || s.rejoinGaveUp === m ? null : m;
}

/**
 * The running master that makes our starting primary a stale old master's database, or null. We
 * were the master on record (or fenced ourselves), our database came back as a primary (started
 * by an init system, or by hand without standby.signal), and another agent, past its own
 * start-up, runs as master or is promoting: our database must never take writes, so it is
 * fenced and, like any old master, rejoined. Two agents both starting with primaries are the
 * start-up conflict rows' business, not this one's. Only for an executor that can rejoin.
 */
export function stalePrimaryAtStart(s: FailoverState): string | null {
  if (s.config.rejoin === undefined || s.config.isWitness) return null;
  if (s.phase !== "checking" || s.role !== "Master") return null;
  if (!s.rebuildNeeded && s.config.persisted?.lastMaster !== s.config.self) return null;
  for (const m of s.view?.members ?? []) {
    if (m.address === s.config.self) continue;
    const p = s.peers[m.address];
    if ((p?.role === "Master" || p?.role === "Promoting") && p.starting !== true) return m.address;
  }
  return null;
}

/** What cluster-status says about a refused or failed rejoin. */
export function rejoinProblemText(master: string, reason: string): string {
  return `Could not rejoin as a standby of ${master}: ${reason}. This node stays Idle and takes no writes; rebuild it (docs/operations.md, "Rejoining the old master") and run efm resume.`;
}
