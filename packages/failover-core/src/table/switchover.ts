import type { Ctx } from "../context.ts";
import { compareLsn, lsnDistance } from "../lsn.ts";
import type { Promotion } from "../types.ts";
import {
  failureList,
  queryPositions,
  RESUME_STREAMING_WAIT_MS,
  row,
  type TransitionRow,
  unconfirmedFenceNotice,
} from "./rows.ts";

/** Default of `switchover.max.lag.bytes`: 16 MiB, one WAL segment. */
export const SWITCHOVER_MAX_LAG_BYTES = 16 * 1024 * 1024;
/** How often the coordinator asks the target how far it replayed while the master is down. */
export const SWITCHOVER_REPLAY_POLL_MS = 100;

const maxLag = (c: Ctx) => c.s.config.switchoverMaxLagBytes ?? SWITCHOVER_MAX_LAG_BYTES;

/**
 * Why a switchover cannot start, from what this coordinator knows of the agents, or null. Checked
 * before anything is asked of any database, so a refusal changes nothing.
 */
export function switchoverRefusal(c: Ctx, to: string | null): string | null {
  // A candidate still Promoting may yet come up as a master whatever this coordinator tracks.
  if (c.s.promotion !== null || c.membersWithRole("Promoting").length > 0)
    return "a promotion is already in progress";
  const masters = c.membersWithRole("Master");
  if (masters.length !== 1) return "there is no running master to switch over from";
  // Every agent up: a node whose agent is down could not follow the new master or be told to.
  const down = (c.s.view?.voters ?? []).filter((v) => !c.members().includes(v));
  if (down.length > 0) return `the agent of ${down.join(", ")} is not running: every agent must be up`;
  const starting = c.members().filter((a) => a !== c.self && c.s.peers[a]?.starting === true);
  if (starting.length > 0) return `the agent of ${starting.join(", ")} is still starting`;
  if (to !== null) {
    if (to === masters[0]) return `${to} is already the master`;
    if (!c.members().includes(to)) return `${to} is not a member of the cluster`;
    const role = c.roleOf(to);
    if (role !== "Standby") return `${to} is not a running standby (its role is ${role ?? "unknown"})`;
  } else if (c.membersWithRole("Standby").length === 0) return "there is no standby to switch over to";
  return null;
}

/** Why standby `a` cannot take over without losing writes or making the master wait long, or null. */
function targetProblem(c: Ctx, p: Promotion, a: string): string | null {
  const lsn = p.lsns[a];
  if (lsn === undefined) return "did not report its position as a standby that can be promoted";
  if (lsn === null) return "did not report a WAL position";
  if (p.streaming?.[a] !== true) return "is not streaming from the master";
  const tl = p.timelines[a] ?? null;
  if (p.masterTimeline !== null && tl !== null && tl !== p.masterTimeline)
    return `is on timeline ${tl}, the master on ${p.masterTimeline}`;
  const lag = lsnDistance(p.masterLsn!, lsn);
  if (lag > BigInt(maxLag(c)))
    return `is ${lag} bytes behind the master (switchover.max.lag.bytes is ${maxLag(c)})`;
  return null;
}

/**
 * The standby a switchover hands the master role to: the one asked for, else the first of the
 * priority list that qualifies, else the qualifying one with the highest WAL position. Pure over
 * the positions collected; a refusal names every standby's problem.
 */
export function switchoverTarget(c: Ctx, p: Promotion): { target: string } | { refused: string } {
  if (p.masterLsn === null) return { refused: "the master did not report its WAL position" };
  const to = p.switchover?.to ?? null;
  if (to !== null) {
    const why = targetProblem(c, p, to);
    return why === null ? { target: to } : { refused: `${to} ${why}` };
  }
  const standbys = Object.keys(p.lsns);
  const fine = standbys.filter((a) => targetProblem(c, p, a) === null);
  const byPriority = c.s.priority.filter((a) => fine.includes(a));
  const target = byPriority[0] ?? c.rankCandidates(Object.fromEntries(fine.map((a) => [a, p.lsns[a]!])))[0];
  if (target !== undefined) return { target };
  const reasons = standbys.map((a) => `${a} ${targetProblem(c, p, a)}`);
  return { refused: reasons.length > 0 ? reasons.join("; ") : "no standby reported its position" };
}

/** The old master cannot come back (restore) for this reason; tried through candidatesExhausted. */
function rollBack(c: Ctx, why: string): void {
  const p = c.s.promotion!;
  const target = p.candidate ?? p.switchover?.to ?? "the target";
  c.setPromotion({ ...p, switchedOver: true, failures: { ...p.failures, [target]: why } });
  c.raise({ type: "candidatesExhausted", now: c.now });
}

/**
 * The old master could not confirm its database stopped: it may still accept writes, so neither the
 * target (its final position is unknown) nor the old master (its database cannot be trusted) is
 * made master here. The switchover ends, saying so; the fenced master's reminders then go through
 * the cluster's handling of a failed master (the candidate checks the old database first, 8.3).
 */
function stopUnconfirmed(c: Ctx): void {
  const p = c.s.promotion!;
  c.setPromotion(null);
  unconfirmedFenceNotice(c, p.oldMaster ?? "the master");
  if (p.request)
    c.reply(
      p.request.origin,
      p.request.requestId,
      false,
      `Switchover failed: ${p.oldMaster} could not confirm that its database stopped, so it may still accept writes; no standby was promoted. The cluster now handles it as a failed master.`,
    );
}

/** Our switchover waits for its master's stop (asked, not reported yet). */
const stopping = (c: Ctx) => c.s.promotion?.stage === "switchover" && c.s.promotion.switchover !== undefined;

const replaying = (c: Ctx, token: string) =>
  c.s.promotion?.stage === "replay" &&
  c.s.promotion.token === token &&
  c.s.promotion.switchover !== undefined;

/**
 * Rows of `efm promote -switchover` (coordinator and old master). They sit before the generic
 * promotion rows and only ever match a promotion carrying `switchover`, so a plain `efm promote`
 * and every failover keep their rows. The sequence: refuse unless every precondition holds; pick
 * the target on fresh positions; its pre-promotion check; the master CHECKPOINTs, stops fast
 * (handing its standbys every record) and reports its shutdown checkpoint; the target replays
 * past it; only then is it promoted. A failure before that promotion brings the old master back
 * (the restore path), so a switchover never ends without a master or with a lost write.
 */
export const switchoverRows: readonly TransitionRow[] = [
  row({
    id: "switchover.refused",
    from: ["*"],
    on: "promotionRequested",
    guard:
      "efm promote -switchover and a precondition fails (master, every agent up, target a running standby)",
    to: "unchanged",
    actions: "refuse with the reason; nothing changed",
    reason: "a switchover starts only when every agent is up and the target is a running standby",
    when: (c, e) => e.switchover !== undefined && switchoverRefusal(c, e.switchover.to) !== null,
    run: (c, e) => {
      const why = switchoverRefusal(c, e.switchover!.to)!;
      if (e.request)
        c.reply(
          e.request.origin,
          e.request.requestId,
          false,
          `Switchover refused: ${why}. Nothing was changed.`,
        );
    },
  }),
  row({
    id: "switchover.check",
    from: ["*"],
    on: "lsnsCollected",
    guard:
      "switchover, coordinator, same view, master not stopped yet: the target streams, on the master's timeline, lag within switchover.max.lag.bytes",
    to: "unchanged",
    actions: "pre-promotion check of the target only / refuse with the reason",
    reason:
      "the master stops only for a target that can replay the rest at once: pick it on fresh positions or refuse",
    when: (c) => {
      const p = c.s.promotion;
      return (
        p?.switchover !== undefined &&
        !p.switchedOver &&
        c.isCoordinator() &&
        c.s.view !== null &&
        p.epoch === c.s.view.epoch
      );
    },
    run: (c) => {
      const p = c.s.promotion!;
      const d = switchoverTarget(c, p);
      if ("refused" in d) {
        c.setPromotion(null);
        if (p.request)
          c.reply(
            p.request.origin,
            p.request.requestId,
            false,
            `Switchover refused: ${d.refused}. Nothing was changed.`,
          );
        return;
      }
      // Only the target: a switchover never falls back to another standby behind the operator's back.
      c.setPromotion({ ...p, ranked: [d.target], failures: {} });
      c.nextCandidate();
    },
  }),
  row({
    id: "switchover.stopMaster",
    from: ["*"],
    on: "candidateVerified",
    guard: "switchover, still coordinator, the target passed its check, the master not stopped yet",
    to: "unchanged",
    actions: "ask the master for a clean stop (CHECKPOINT, fast shutdown) following the target",
    reason: "the target can be promoted: the master stops writing and hands it every record",
    when: (c) => {
      const p = c.s.promotion;
      return (
        p?.switchover !== undefined &&
        !p.switchedOver &&
        c.isCoordinator() &&
        p.oldMaster !== null &&
        c.membersWithRole("Master").includes(p.oldMaster)
      );
    },
    run: (c) => {
      const p = c.s.promotion!;
      c.setPromotion({ ...p, stage: "switchover" });
      c.send(p.oldMaster!, { type: "switchover", token: p.token, newMaster: p.candidate!, clean: true });
      c.timer(`promotion:${p.token}`, c.now + c.s.config.promotionTimeoutMs);
    },
  }),
  row({
    id: "switchover.notStarted",
    from: ["*"],
    on: "candidatesExhausted",
    guard: "switchover whose target failed its pre-promotion check (the master never stopped)",
    to: "unchanged",
    actions: "refuse with the reason; nothing changed",
    reason: "the target cannot be promoted: the master was left alone",
    when: (c) => c.s.promotion?.switchover !== undefined && !c.s.promotion.switchedOver,
    run: (c) => {
      const p = c.s.promotion!;
      c.setPromotion(null);
      const tried = failureList(p, " ");
      if (p.request)
        c.reply(
          p.request.origin,
          p.request.requestId,
          false,
          `Switchover refused: ${tried || "no target"}. Nothing was changed.`,
        );
    },
  }),
  row({
    id: "switchover.masterUnconfirmed",
    from: ["*"],
    on: "message:fenced",
    guard: "switchover waiting for this stop; the master could not confirm its database stopped",
    to: "unchanged",
    actions: "end the switchover: notify unexpectedError; answer the operator (nobody promoted)",
    reason:
      "the old database may still accept writes: promote nobody now, leave it to the handling of a failed master",
    // Invariant: a switchover promotes its target only, and only past the master's final position.
    // An unconfirmed stop has none, so it never goes on to rank the standbys as a plain promotion does.
    when: (c, e) => stopping(c) && c.s.promotion!.token === e.message.token && e.message.unconfirmed === true,
    run: (c) => stopUnconfirmed(c),
  }),
  row({
    id: "switchover.masterStopped",
    from: ["*"],
    on: "message:fenced",
    guard: "switchover waiting for this stop; the master stopped cleanly and reports its final position",
    to: "unchanged",
    actions: "ask the target how far it replayed (until promotion.timeout)",
    reason: "the master is down at a known position: promote the target once it replayed every record",
    when: (c, e) =>
      c.s.promotion?.stage === "switchover" &&
      c.s.promotion.token === e.message.token &&
      c.s.promotion.switchover !== undefined &&
      e.message.unconfirmed !== true &&
      e.message.finalLsn !== undefined,
    run: (c, e) => {
      const p = c.s.promotion!;
      const until = c.now + c.s.config.promotionTimeoutMs;
      c.setPromotion({
        ...p,
        stage: "replay",
        switchedOver: true,
        awaiting: [p.candidate!],
        switchover: { ...p.switchover!, finalLsn: e.message.finalLsn!, until },
      });
      queryPositions(c, p.token, [p.candidate!], false);
      c.timer(`promotion:${p.token}`, until);
    },
  }),
  row({
    id: "switchover.masterNotClean",
    from: ["*"],
    on: "message:fenced",
    guard: "switchover waiting for this stop; the master stopped but not cleanly (no final position)",
    to: "unchanged",
    actions: "bring the old master back (restore)",
    reason:
      "without the master's final position nobody can tell the target has every write: the old master takes its role back",
    when: (c, e) =>
      c.s.promotion?.stage === "switchover" &&
      c.s.promotion.token === e.message.token &&
      c.s.promotion.switchover !== undefined &&
      e.message.unconfirmed !== true,
    run: (c) => rollBack(c, "the master did not shut down cleanly (its shutdown checkpoint is unknown)"),
  }),
  row({
    id: "switchover.fencedMasterBack",
    from: ["*"],
    on: "message:fencedMasterBack",
    guard:
      "coordinator; switchover waiting for this old master's stop, whose report (with the final position) was lost",
    to: "unchanged",
    actions: "bring the old master back (restore); unconfirmed: end the switchover as above",
    reason:
      "the master is fenced but its final position never arrived: nobody can tell the target has every write",
    // The reminder is sent only once the fence is over, after the report itself: that was lost.
    when: (c, e) => c.isCoordinator() && stopping(c) && c.s.promotion!.oldMaster === e.from,
    run: (c, e) => {
      if (e.message.unconfirmed === true) stopUnconfirmed(c);
      else rollBack(c, "the master's report of its final position was lost");
    },
  }),
  row({
    id: "switchover.stopTimeout",
    from: ["*"],
    on: "timer:promotion",
    guard: "switchover still waiting for the master to report its stop past promotion.timeout",
    to: "unchanged",
    actions: "bring the old master back (restore)",
    reason: "the master did not report a clean stop in time: it takes its role back",
    when: (c, e) => stopping(c) && e.name === `promotion:${c.s.promotion!.token}`,
    run: (c) =>
      rollBack(
        c,
        `the master did not report its stop within ${Math.round(c.s.config.promotionTimeoutMs / 1000)} s`,
      ),
  }),
  row({
    id: "switchover.replayed",
    from: ["*"],
    on: "message:lsnReply",
    guard: "switchover waiting for the target; it replayed past the master's final position",
    to: "unchanged",
    actions: "promote the target (no master check: the master is down cleanly)",
    reason: "the target holds every record the master wrote: promote it",
    // Past, not at: the replay position is the end of the last record replayed, so only a
    // position after the shutdown checkpoint's start says that record itself was replayed.
    when: (c, e) => {
      const p = c.s.promotion;
      if (!replaying(c, e.message.token) || e.from !== p!.candidate) return false;
      const r = e.message.replayed;
      return typeof r === "string" && compareLsn(r, p!.switchover!.finalLsn!) > 0;
    },
    run: (c) => {
      const p = c.s.promotion!;
      c.setPromotion({ ...p, awaiting: [] });
      c.raise({ type: "candidateVerified", now: c.now });
    },
  }),
  row({
    id: "switchover.replayWait",
    from: ["*"],
    on: "message:lsnReply",
    guard: "switchover waiting for the target; it has not replayed that far yet",
    to: "unchanged",
    actions: "ask again shortly (the promotion timer bounds the wait)",
    reason: "the target is still replaying the master's last records",
    when: (c, e) => replaying(c, e.message.token) && e.from === c.s.promotion!.candidate,
    run: (c) => c.timer(`switchoverReplay:${c.s.promotion!.token}`, c.now + SWITCHOVER_REPLAY_POLL_MS),
  }),
  row({
    id: "switchover.replayAsk",
    from: ["*"],
    on: "timer:switchoverReplay",
    guard: "still waiting for that target's replay",
    to: "unchanged",
    actions: "queryLsn on the target",
    reason: "ask the target how far it replayed",
    when: (c, e) => {
      const p = c.s.promotion;
      return p !== null && e.name === `switchoverReplay:${p.token}` && replaying(c, p.token);
    },
    run: (c) => queryPositions(c, c.s.promotion!.token, [c.s.promotion!.candidate!], false),
  }),
  row({
    id: "switchover.replayAsk.stale",
    from: ["*"],
    on: "timer:switchoverReplay",
    guard: "otherwise",
    to: "unchanged",
    actions: "none",
    reason: "no switchover waits for a replay any more",
    run: () => {},
  }),
  row({
    id: "switchover.replayTimeout",
    from: ["*"],
    on: "timer:promotion",
    guard: "switchover waiting for the target's replay past promotion.timeout",
    to: "unchanged",
    actions: "bring the old master back (restore)",
    reason: "the target did not replay the master's last records in time: the old master takes its role back",
    when: (c, e) => {
      const p = c.s.promotion;
      return p !== null && e.name === `promotion:${p.token}` && replaying(c, p.token);
    },
    run: (c) => {
      const p = c.s.promotion!;
      rollBack(
        c,
        `did not replay the master's final position ${p.switchover!.finalLsn} within ${Math.round(c.s.config.promotionTimeoutMs / 1000)} s`,
      );
    },
  }),
  row({
    id: "switchover.done",
    from: ["*"],
    on: "message:promotionResult",
    guard: "our switchover's promotion succeeded",
    to: "unchanged",
    actions: "tell the old master to follow as a standby; answer the operator",
    reason: "the target is master: the old one, stopped cleanly at a position it replayed, follows it",
    when: (c, e) =>
      c.s.promotion?.token === e.message.token &&
      e.message.ok &&
      c.s.promotion.switchover !== undefined &&
      !c.s.promotion.restoring,
    run: (c, e) => {
      const p = c.s.promotion!;
      c.setPromotion(null);
      c.s.knownMaster = { address: e.from, lastHeardAt: c.now };
      c.s.peers = { ...c.s.peers, [e.from]: { role: "Master", db: "UP" } };
      if (p.oldMaster) c.send(p.oldMaster, { type: "switchoverDone", newMaster: e.from });
      if (p.request)
        c.reply(
          p.request.origin,
          p.request.requestId,
          true,
          `Switchover has completed: ${e.from} is the master; ${p.oldMaster} follows it as a standby.`,
        );
    },
  }),
  row({
    id: "switchover.rolledBack",
    from: ["*"],
    on: "message:promotionResult",
    guard: "our switchover failed before the target's promotion and the old master took its role back",
    to: "unchanged",
    actions: "answer the operator with what failed",
    reason: "rolled back: the old master is master again",
    when: (c, e) =>
      c.s.promotion?.token === e.message.token &&
      e.message.ok &&
      c.s.promotion.switchover !== undefined &&
      c.s.promotion.restoring,
    run: (c, e) => {
      const p = c.s.promotion!;
      c.setPromotion(null);
      c.s.knownMaster = { address: e.from, lastHeardAt: c.now };
      c.s.peers = { ...c.s.peers, [e.from]: { role: "Master", db: "UP" } };
      const tried = failureList(p, " ");
      if (p.request)
        c.reply(
          p.request.origin,
          p.request.requestId,
          false,
          `Switchover failed: ${tried}. Rolled back: ${e.from} is the master again.`,
        );
    },
  }),
  row({
    id: "switchover.follow",
    from: ["Idle"],
    on: "message:switchoverDone",
    guard:
      "we are the old master of that switchover (Idle, database not a candidate until shown to follow), from the coordinator",
    to: "unchanged",
    actions: "queryLsn: does the database stream from the new master? (then Standby, as a resume would)",
    reason:
      "the old master stopped cleanly at a position the new master replayed: once it streams from it, it is a standby",
    // The rebuild flag, not fencedForIsolation: the new master's announcement (follow.note), which
    // may arrive first, clears the latter.
    when: (c, e) =>
      c.coordinator() === e.from &&
      c.s.rebuildNeeded &&
      c.s.pendingResume === null &&
      c.s.selfFence === null &&
      !c.s.config.isWitness,
    // The resume rows take it from here (an empty request id: nobody waits for an answer): streaming
    // is PostgreSQL's own proof that this history is the new master's.
    run: (c, e) => {
      c.s.knownMaster = { address: e.message.newMaster, lastHeardAt: c.now };
      c.s.peers = { ...c.s.peers, [e.message.newMaster]: { role: "Master", db: "UP" } };
      const token = c.token("resume");
      const until = c.now + Math.min(c.s.config.localTimeoutMs, RESUME_STREAMING_WAIT_MS);
      c.s.pendingResume = { requestId: "", stage: "wal", token, until };
      c.act({ type: "queryLsn", token });
    },
  }),
  row({
    id: "switchover.follow.ignore",
    from: ["*"],
    on: "message:switchoverDone",
    guard: "otherwise",
    to: "unchanged",
    actions: "none",
    reason: "not the old master of that switchover (or already resuming)",
    run: () => {},
  }),
];
