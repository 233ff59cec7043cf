import type { Ctx } from "./context.ts";
import type { FailoverState, PeerMessage, SyncSet, SynchronousMode } from "./types.ts";

/**
 * The synchronous standby guard (synchronous.mode on or strict), Patroni's synchronous_mode in
 * this engine's terms. The master keeps its database's `synchronous_standby_names` at
 * `ANY 1 (...)` over its running standbys, so a commit is acknowledged only once one of them has
 * it; the set is published to every agent (in the master's status), and a failover promotes
 * only a standby of the last published set. An isolated or frozen old master then cannot commit
 * alone: its standbys are gone, so its commits wait.
 */

/** "*": any standby (a master that knows no running standby but must not commit alone). */
export const ANY_STANDBY = "*";

const sameSet = (a: readonly string[], b: readonly string[]): boolean =>
  a.length === b.length && a.every((x) => b.includes(x));

/** synchronous.mode, off when the caller did not configure it. */
export function syncMode(c: Ctx): SynchronousMode {
  return c.s.config.synchronousMode ?? "off";
}

/** Standbys of our view whose agent runs and whose database is up, sorted. */
function runningStandbys(c: Ctx): string[] {
  return c
    .others()
    .filter((a) => {
      const p = c.s.peers[a];
      return p?.role === "Standby" && p.db === "UP" && p.starting !== true;
    })
    .sort();
}

/**
 * What the master's database should count as synchronous now. Running standbys when there are
 * any. Without one: in strict mode the last setting stays (commits wait for one of them to come
 * back), or any standby when none was set; in mode on the setting is relaxed to none only by a
 * master in a majority view that a majority still hears (an isolated or frozen master never
 * relaxes it, so it cannot commit alone), and otherwise stays.
 */
export function syncTarget(c: Ctx, mode: Exclude<SynchronousMode, "off">): readonly string[] {
  const running = runningStandbys(c);
  if (running.length > 0) return running;
  const applied = c.s.sync.applied;
  const kept = applied !== null && applied.length > 0 ? applied : [ANY_STANDBY];
  if (mode === "strict") return kept;
  return c.quorate() && c.leaseValid() ? [] : kept;
}

/** (epoch, seq) order: the later master's set, then the later set of one master. */
function newer(a: { epoch: number; seq: number }, b: SyncSet | null): boolean {
  return b === null || a.epoch > b.epoch || (a.epoch === b.epoch && a.seq > b.seq);
}

/**
 * Publishes a new synchronous set: in our status (every agent keeps the newest it hears and
 * passes it on in its own status) and persisted (keepRecord). Its version is our promotion epoch
 * (the one a promotion in progress is about to reach), so a new master's sets outrank the old
 * master's even when it missed some of them.
 */
export function publishSync(c: Ctx, standbys: readonly string[]): void {
  const prev = c.s.sync.published;
  const term = c.s.candidacy !== null ? c.s.epoch + 1 : c.s.epoch;
  const epoch = Math.max(term, prev?.epoch ?? 0);
  const seq = prev !== null && prev.epoch === epoch ? prev.seq + 1 : 1;
  c.s.sync = { ...c.s.sync, published: { standbys: [...standbys], epoch, seq } };
  c.broadcast(c.status());
}

/** Keeps a set a peer reports when it is newer than ours (from any role: it passes the master's on). */
export function learnSyncSet(c: Ctx, m: Extract<PeerMessage, { type: "status" }>): void {
  if (m.sync === undefined || m.syncEpoch === undefined || m.syncSeq === undefined) return;
  const v = { epoch: m.syncEpoch, seq: m.syncSeq };
  if (newer(v, c.s.sync.published)) c.s.sync = { ...c.s.sync, published: { standbys: [...m.sync], ...v } };
}

/** The status fields that carry our newest known set (none with synchronous.mode off). */
export function syncFields(s: FailoverState): { sync?: string[]; syncEpoch?: number; syncSeq?: number } {
  const p = s.sync.published;
  if ((s.config.synchronousMode ?? "off") === "off" || p === null) return {};
  return { sync: [...p.standbys], syncEpoch: p.epoch, syncSeq: p.seq };
}

/**
 * Keeps the master's synchronous setting and the published set in step, in the order that keeps
 * the invariant (see SyncState): a standby joins the published set before the setting counts it,
 * and leaves the published set only once the setting no longer counts it. One setting in flight
 * at a time; a failed one is retried after a local period. Called after every step, like
 * keepMonitoring, so whatever row made us master or changed a standby is followed at once (a new
 * master sets it before anything else: its database may carry another term's setting).
 */
export function keepSyncStandbys(c: Ctx): void {
  const mode = syncMode(c);
  if (mode === "off") return;
  const sync = c.s.sync;
  if (c.s.phase !== "running" || c.s.role !== "Master" || c.s.selfFence !== null) {
    // Not (or no longer) master: a later term starts from an unknown setting.
    if (sync.applied !== null || sync.pending !== null || sync.retryAt !== null)
      c.s.sync = { ...sync, applied: null, pending: null, retryAt: null };
    return;
  }
  if (sync.pending !== null || c.s.db !== "UP") return;
  if (sync.retryAt !== null && c.now < sync.retryAt) return;
  const target = syncTarget(c, mode);
  // "*" lets any standby acknowledge: the published set then restricts nobody (empty).
  const wanted = target.includes(ANY_STANDBY) ? [] : [...target];
  const published = sync.published?.standbys ?? [];
  if (sync.applied !== null && sameSet(sync.applied, target) && sameSet(published, wanted)) return;
  let first = published;
  if (target.includes(ANY_STANDBY) ? published.length > 0 : wanted.some((a) => !published.includes(a))) {
    first = target.includes(ANY_STANDBY) ? [] : [...new Set([...published, ...wanted])].sort();
    publishSync(c, first);
  }
  const token = c.token("sync");
  c.s.sync = {
    ...c.s.sync,
    pending: { token, standbys: [...target], publishAfter: sameSet(first, wanted) ? null : wanted },
    retryAt: null,
  };
  c.act({ type: "setSyncStandbys", token, standbys: [...target] });
}

/**
 * Why each ranked standby may not be promoted automatically: with the guard on and a non-empty
 * published set, only its members can hold every acknowledged commit. Empty when all may.
 */
export function outsideSyncSet(c: Ctx, candidates: readonly string[]): Record<string, string> {
  const set = c.s.sync.published?.standbys ?? null;
  if (syncMode(c) === "off" || set === null || set.length === 0) return {};
  const out: Record<string, string> = {};
  for (const a of candidates) {
    if (!set.includes(a))
      out[a] =
        `not in the last synchronous standby set (${set.join(", ")}): it may lack commits acknowledged to clients`;
  }
  return out;
}
