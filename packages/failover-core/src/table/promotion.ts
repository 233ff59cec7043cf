import type { Ctx } from "../context.ts";
import type { Promotion } from "../types.ts";
import { compareLsn } from "../lsn.ts";
import { outsideSyncSet } from "../sync.ts";
import {
  type TransitionRow,
  row,
  possibleStandbys,
  queryPositions,
  pendingPromoteTarget,
  failureList,
  lastMaster,
} from "./rows.ts";

/** Why a standby whose record names itself the last master is no candidate (lsn.reply). */
const SUPERSEDED =
  "it was the master before a later promotion and may hold WAL past that promotion's fork: rewind or re-clone it";

/** An automatic promotion whose positions rank no standby as a candidate. */
function noCandidate(c: Ctx, p: Promotion | null): p is Promotion {
  return p !== null && !p.manual && c.rankCandidates(p.lsns, p.timelines, p.masterTimeline).length === 0;
}

/** A standby was left out because it holds WAL past the newest promotion's fork. */
function leftOutPastFork(c: Ctx, p: Promotion): boolean {
  return Object.values(c.offTimeline(p)).some((why) => why.includes("past the fork"));
}

/**
 * May `old`, the last master, take its role back as the fenced old master? We coordinate, every
 * voter is here, it is here, Idle, its database up, and nobody here heard of a master after it
 * (a promotion it missed while cut off would put a newer timeline past its WAL's fork).
 */
function restorable(c: Ctx, old: string | null): boolean {
  return (
    c.isCoordinator() &&
    old !== null &&
    // every voter is here: no standby still on its way back in a merge could be better
    (c.s.view?.voters ?? []).every((v) => c.members().includes(v)) &&
    c.members().includes(old) &&
    c.roleOf(old) === "Idle" &&
    (old === c.self ? c.s.db : c.s.peers[old]?.db) === "UP" &&
    c.others().every((a) => (c.s.peers[a]?.master ?? old) === old) &&
    (c.s.knownMaster?.address ?? old) === old
  );
}

/**
 * The position `candidate` was ranked at, for the promote message: the timeline it opens forks off
 * there or later (it replays what it received before leaving recovery; after a clean switchover
 * it replayed the old master's final position too). Empty when its timeline is unknown.
 */
function rankedAt(p: Promotion, candidate: string): { atLsn?: string; atTimeline?: number } {
  const lsn = p.lsns[candidate] ?? null;
  const timeline = p.timelines[candidate] ?? null;
  if (lsn === null || timeline === null) return {};
  const final = p.switchover?.finalLsn ?? null;
  return { atLsn: final !== null && compareLsn(final, lsn) > 0 ? final : lsn, atTimeline: timeline };
}

/** How often a standby still streaming from the stopped old master is asked again (lsn.reply.draining). */
export const LSN_DRAIN_POLL_MS = 20;

/** The host of an agent address ("host:port", "[v6]:port"): what a WAL receiver names as its sender. */
function hostPart(address: string): string {
  const i = address.lastIndexOf(":");
  const host = i < 0 ? address : address.slice(0, i);
  return host.startsWith("[") && host.endsWith("]") ? host.slice(1, -1) : host;
}

/** The standby an lsnDrain timer asks again, while that round still waits for it; else null. */
function drainTarget(c: Ctx, name: string): string | null {
  const p = c.s.promotion;
  if (p?.stage !== "queryLsn") return null;
  const prefix = `lsnDrain:${p.token}|`;
  const a = name.startsWith(prefix) ? name.slice(prefix.length) : null;
  return a !== null && p.awaiting.includes(a) ? a : null;
}

/** Rows of one concern (promotion, coordinator side), in the table's match order. */
export const promotionRows: readonly TransitionRow[] = [
  // ---- promotion, coordinator side ----
  row({
    id: "promo.requery.masterStopped",
    from: ["*"],
    on: "promotionRequested",
    guard: "positions being collected for a promotion from this same master, which has now stopped writing",
    to: "unchanged",
    actions: "ask every standby for its position again (new token)",
    reason:
      "the old master stopped writing while positions were collected: rank the standbys on their final positions",
    // Invariant: the candidate is ranked on final positions (ties by priority). Positions collected
    // while the old master still wrote are stale once it stops: the standby that answered last
    // looked best although another, first in the priority list, had caught up to the same point.
    // (Regression test: table.test.ts, "a master that stops writing during a promotion's query".)
    when: (c, e) =>
      c.s.promotion?.stage === "queryLsn" &&
      !e.manual &&
      e.oldMaster !== null &&
      e.oldMaster === c.s.promotion.oldMaster,
    run: (c, e) => {
      const p = c.s.promotion!;
      const token = c.token("promo");
      const ask = possibleStandbys(c);
      c.setPromotion({
        ...p,
        token,
        awaiting: ask,
        lsns: {},
        timelines: {},
        candidate: null,
        switchedOver: p.switchedOver || e.masterFenced === true,
      });
      queryPositions(c, token, ask);
    },
  }),
  row({
    id: "promo.busy",
    from: ["*"],
    on: "promotionRequested",
    guard: "a promotion is already running",
    to: "unchanged",
    actions: "notify promotionNotOccurred",
    reason: "only one promotion at a time",
    when: (c) => c.s.promotion !== null,
    run: (c, e) => {
      c.notify("promotionNotOccurred", {
        clusterName: c.s.config.clusterName,
        ipAddress: pendingPromoteTarget(c),
      });
      if (e.request)
        c.reply(e.request.origin, e.request.requestId, false, "A promotion is already in progress.");
    },
  }),
  row({
    id: "promo.candidatePromoting",
    from: ["*"],
    on: "promotionRequested",
    guard: "a member of the view (maybe this agent) is still Promoting",
    to: "unchanged",
    actions: "refuse (manual) / look again with the masterless watch (automatic)",
    reason:
      "a candidate is still promoting: its pg_ctl promote may yet complete, so promoting another would make two masters",
    // Invariant: never two databases that accept writes. A promote that outlived the promotion
    // timeout cannot be called back (the server acts on it whenever it gets to it); until its
    // agent reports the outcome (Master, or back to Standby/Idle) nobody else is promoted.
    when: (c) => c.membersWithRole("Promoting").length > 0,
    run: (c, e) => {
      if (e.request)
        c.reply(e.request.origin, e.request.requestId, false, "A promotion is already in progress.");
      else c.timer("masterWatch", c.now + c.s.config.promotionTimeoutMs);
    },
  }),
  row({
    id: "promo.autoFailoverOff",
    from: ["*"],
    on: "promotionRequested",
    guard: "automatic request and auto.failover=false",
    to: "unchanged",
    actions: "notify potentialManualFailover",
    reason: "auto.failover=false: detect and notify, never act",
    when: (c, e) => !e.manual && !c.s.config.autoFailover,
    run: (c) => c.notify("potentialManualFailover", c.cluster()),
  }),
  row({
    id: "promo.noStandby.restore",
    from: ["*"],
    on: "promotionRequested",
    guard:
      "automatic; every voter in the view, none a standby agent; the old master confirmed its fence, is here, Idle, its database up, and nobody here knows a later master",
    to: "unchanged",
    actions: "ask the old master to check, then take its role back",
    reason: "no standby to promote: bring the fenced old master back rather than leave no master",
    // Invariant (liveness): a quorate cluster with a healthy database and auto.failover on ends
    // with a master. A master that fenced itself (confirmed) for a failover that never came holds
    // the newest WAL there is (nobody was promoted after it: it was the last master here), so it
    // takes the role back as when every standby failed (promo.exhausted.restore).
    when: (c, e) =>
      !e.manual &&
      e.masterFenced === true &&
      // no standby here, and no member whose role we do not know yet (just merged back in)
      c.members().every((a) => c.roleOf(a) !== null && c.roleOf(a) !== "Standby") &&
      restorable(c, e.oldMaster),
    run: (c, e) => {
      c.setPromotion({
        token: c.token("promo"),
        manual: false,
        force: false,
        oldMaster: e.oldMaster,
        stage: "precheck",
        awaiting: [],
        lsns: {},
        timelines: {},
        masterLsn: null,
        masterTimeline: null,
        candidate: null,
        request: null,
        epoch: c.s.view?.epoch ?? 0,
        switchedOver: true,
        ranked: [],
        failures: {},
        verified: [],
        restoring: false,
      });
      c.nextCandidate(true);
    },
  }),
  row({
    id: "promo.noStandby",
    from: ["*"],
    on: "promotionRequested",
    guard: "no standby agent in the view",
    to: "unchanged",
    actions: "notify failoverNotOccurred (automatic) / refuse (manual)",
    reason: "there are no standby nodes available for failover",
    when: (c) => c.membersWithRole("Standby").length === 0,
    run: (c, e) => {
      if (e.request)
        c.reply(e.request.origin, e.request.requestId, false, "There is no standby available to promote.");
      else c.notify("failoverNotOccurred", c.cluster());
    },
  }),
  row({
    id: "promo.manual.masterTooRecent",
    from: ["*"],
    on: "promotionRequested",
    guard: "manual, no master in the view, last master heard less than L+margin ago",
    to: "unchanged",
    actions: "refuse",
    reason: "the lost master could still hold its lease: wait L plus the margin before promoting",
    when: (c, e) =>
      e.manual &&
      c.membersWithRole("Master").length === 0 &&
      c.s.knownMaster !== null &&
      c.now < c.s.knownMaster.lastHeardAt + c.s.config.leaseMs + c.s.config.takeoverMarginMs,
    run: (c, e) => {
      if (e.request)
        c.reply(
          e.request.origin,
          e.request.requestId,
          false,
          "The master was seen too recently; try again shortly.",
        );
    },
  }),
  row({
    id: "promo.manual.tooSoonAfterStart",
    from: ["*"],
    on: "promotionRequested",
    guard: "manual, no master in the view, this agent started less than L+margin ago",
    to: "unchanged",
    actions: "refuse",
    reason:
      "a restarted coordinator does not know when the last master was heard: its lease may still run until start + L + margin",
    // The issue-13 schedule: the master cut off, both standbys' agents restarted, `efm promote`
    // promoted one while the master, unaware, still held its lease and took writes.
    when: (c, e) =>
      e.manual &&
      c.membersWithRole("Master").length === 0 &&
      c.s.startedAt !== null &&
      c.now < c.s.startedAt + c.s.config.leaseMs + c.s.config.takeoverMarginMs,
    run: (c, e) => {
      if (e.request)
        c.reply(
          e.request.origin,
          e.request.requestId,
          false,
          "The agents restarted too recently: the last master may still hold its lease; try again shortly.",
        );
    },
  }),
  row({
    id: "promo.start.probe",
    from: ["*"],
    on: "promotionRequested",
    guard: "manual (or a masterless cluster found by the coordinator) and no master in the view",
    to: "unchanged",
    actions: "checkRemoteDb(asMaster) on the database of every member and voter first",
    reason:
      "no master is known here: ask every member database whether it is in recovery before choosing a standby",
    when: (c, e) => (e.manual || e.probe === true) && c.membersWithRole("Master").length === 0,
    run: (c, e) => {
      const token = c.token("promo");
      const probes: Record<string, string> = {};
      // Voters outside the view too: a master whose agent crashed is no member, but its database
      // may still run as a primary (a down host or a witness simply does not answer as a master).
      const targets = [...new Set([...c.members(), ...(c.s.view?.voters ?? [])])];
      for (const a of targets) {
        if (c.roleOf(a) === "Witness" || (a === c.self && c.s.config.isWitness)) continue;
        const t = c.token("probe");
        probes[t] = a;
        c.act({
          type: "checkRemoteDb",
          token: t,
          target: a,
          timeoutMs: c.s.config.remoteTimeoutMs,
          asMaster: true,
        });
      }
      c.setPromotion({
        token,
        manual: e.manual,
        force: e.force,
        oldMaster: e.oldMaster ?? c.s.knownMaster?.address ?? c.s.recordedMaster,
        stage: "probe",
        probes,
        awaiting: Object.values(probes),
        lsns: {},
        timelines: {},
        masterLsn: null,
        masterTimeline: null,
        candidate: null,
        request: e.request,
        epoch: c.s.view?.epoch ?? 0,
        switchedOver: e.masterFenced === true,
        ranked: [],
        failures: {},
        verified: [],
        restoring: false,
      });
      c.timer(`promotion:${token}`, c.now + c.s.config.remoteTimeoutMs + c.s.config.messageSlackMs);
      if (Object.keys(probes).length === 0) c.raise({ type: "probesDone", now: c.now });
    },
  }),
  row({
    id: "promo.start",
    from: ["*"],
    on: "promotionRequested",
    guard: "otherwise",
    to: "unchanged",
    actions: "queryLsn on every standby (and the master for a manual promotion)",
    reason: "find the most up-to-date standby",
    run: (c, e) => {
      const token = c.token("promo");
      const master = c.membersWithRole("Master")[0] ?? null;
      const ask = [...possibleStandbys(c), ...(e.manual && master ? [master] : [])];
      c.setPromotion({
        ...(e.switchover ? { switchover: { to: e.switchover.to, finalLsn: null, until: null } } : {}),
        token,
        manual: e.manual,
        force: e.force,
        // Without a master in the view, the last known one is checked by the candidate like on failover.
        oldMaster: e.manual ? (master ?? c.s.knownMaster?.address ?? null) : e.oldMaster,
        stage: "queryLsn",
        awaiting: ask,
        lsns: {},
        timelines: {},
        masterLsn: null,
        masterTimeline: null,
        candidate: null,
        request: e.request,
        epoch: c.s.view?.epoch ?? 0,
        switchedOver: e.masterFenced === true,
        ranked: [],
        failures: {},
        verified: [],
        restoring: false,
      });
      queryPositions(c, token, ask);
    },
  }),
  row({
    id: "promo.probe.master",
    from: ["*"],
    on: "remoteDbChecked",
    guard: "probing before a promotion: a member database is not in recovery, or could not be verified",
    to: "unchanged",
    actions: "drop the promotion; refuse",
    reason:
      "a database answered as a master (or could not be verified): promoting a standby would make two masters",
    when: (c, e) =>
      c.s.promotion?.stage === "probe" &&
      c.s.promotion.probes?.[e.token] !== undefined &&
      e.result !== "unreachable",
    run: (c, e) => {
      const p = c.s.promotion!;
      const who = p.probes![e.token]!;
      c.setPromotion(null);
      const why =
        e.result === "reachable"
          ? `the database of ${who} is not in recovery (pg_is_in_recovery() is false): a master may still be running`
          : `the database of ${who} answered but could not be verified`;
      const text = `Promotion has not occurred: ${why}.`;
      if (p.request) c.reply(p.request.origin, p.request.requestId, false, text);
      else if (c.s.attention !== text) {
        // The periodic look finds the same database each time: say it once, keep it in cluster-status.
        c.notify("unexpectedError", { clusterName: c.s.config.clusterName, errorDetails: text });
        c.setAttention(text);
      }
    },
  }),
  row({
    id: "promo.probe.recovery",
    from: ["*"],
    on: "remoteDbChecked",
    guard: "probing before a promotion: that member database is in recovery or down",
    to: "unchanged",
    actions: "record; ask for WAL positions once every database answered",
    reason: "no master database found there",
    when: (c, e) => c.s.promotion?.stage === "probe" && c.s.promotion.probes?.[e.token] !== undefined,
    run: (c, e) => {
      const p = c.s.promotion!;
      const { [e.token]: _done, ...rest } = p.probes!;
      c.setPromotion({ ...p, probes: rest, awaiting: Object.values(rest) });
      if (Object.keys(rest).length === 0) c.raise({ type: "probesDone", now: c.now });
    },
  }),
  row({
    id: "promo.probe.done",
    from: ["*"],
    on: "probesDone",
    guard: "every member database is in recovery or down",
    to: "unchanged",
    actions: "queryLsn on every standby",
    reason: "no database of the cluster runs as a master: find the most up-to-date standby",
    run: (c) => {
      const p = c.s.promotion;
      if (p?.stage !== "probe") return;
      const ask = possibleStandbys(c);
      c.setPromotion({ ...p, stage: "queryLsn", awaiting: ask, epoch: c.s.view?.epoch ?? p.epoch });
      queryPositions(c, p.token, ask);
    },
  }),
  row({
    id: "lsn.request",
    from: ["*"],
    on: "message:queryLsn",
    guard: "always",
    to: "unchanged",
    actions: "queryLsn on the local database",
    reason: "the coordinator asks for our WAL position",
    run: (c, e) => {
      const t = c.token("lsn");
      c.s.lsnQueries = { ...c.s.lsnQueries, [t]: `${e.from}|${e.message.token}` };
      c.act({ type: "queryLsn", token: t });
    },
  }),
  row({
    id: "lsn.answer",
    from: ["*"],
    on: "lsnQueried",
    guard: "a position the coordinator asked for",
    to: "unchanged",
    actions: "reply with the position",
    reason: "report our WAL position",
    when: (c, e) => c.s.lsnQueries[e.token] !== undefined,
    run: (c, e) => {
      const dest = c.s.lsnQueries[e.token]!;
      const { [e.token]: _d, ...rest } = c.s.lsnQueries;
      c.s.lsnQueries = rest;
      const bar = dest.indexOf("|");
      const to = bar < 0 ? c.self : dest.slice(0, bar);
      const token = bar < 0 ? dest : dest.slice(bar + 1);
      c.send(to, {
        type: "lsnReply",
        token,
        lsn: e.lsn,
        role: c.s.role ?? "Idle",
        ...(e.timeline !== undefined ? { timeline: e.timeline } : {}),
        ...(c.s.rebuildNeeded ? { rebuild: true } : {}),
        ...(e.streaming !== undefined ? { streaming: e.streaming } : {}),
        ...(e.replayed !== undefined ? { replayed: e.replayed } : {}),
        ...(e.upstream !== undefined ? { upstream: e.upstream } : {}),
        // A database whose record names itself the last master (its host reset before any fence,
        // booted read-only) says so with the promotions it has seen: see lsn.reply.
        ...(c.s.recordedMaster === c.self && c.s.role !== "Master"
          ? { lastMaster: true, epoch: c.s.epoch }
          : {}),
      });
    },
  }),
  row({
    id: "lsn.reply.draining",
    from: ["*"],
    on: "message:lsnReply",
    guard:
      "automatic failover from a master known stopped; this standby still streams from that master's host, within remote.timeout of the first such answer",
    to: "unchanged",
    actions: "ask it again shortly instead of ranking it",
    reason: "its WAL receiver is still reading what the stopped master sent: its position may still grow",
    // Invariant: the candidate is ranked on final positions. A master stopped just after a partition
    // healed (its lease lapsed during the cut) had sent WAL that was still in flight: a standby that
    // answered while reading it got more after the ranking and could not follow the candidate's
    // timeline. Once its WAL receiver saw the end of the stream, it has flushed all it will get.
    when: (c, e) => {
      const p = c.s.promotion;
      return (
        p?.stage === "queryLsn" &&
        p.token === e.message.token &&
        p.awaiting.includes(e.from) &&
        !p.manual &&
        p.switchedOver &&
        p.oldMaster !== null &&
        e.message.streaming === true &&
        typeof e.message.upstream === "string" &&
        e.message.upstream === hostPart(p.oldMaster) &&
        c.now < (p.drainUntil ?? c.now + c.s.config.remoteTimeoutMs)
      );
    },
    run: (c, e) => {
      const p = c.s.promotion!;
      c.setPromotion({ ...p, drainUntil: p.drainUntil ?? c.now + c.s.config.remoteTimeoutMs });
      c.timer(`lsnDrain:${p.token}|${e.from}`, c.now + LSN_DRAIN_POLL_MS);
    },
  }),
  row({
    id: "lsn.drain.ask",
    from: ["*"],
    on: "timer:lsnDrain",
    guard: "still collecting positions with that token; that standby not ranked yet",
    to: "unchanged",
    actions: "queryLsn on it (no new check or bound)",
    reason: "ask the standby whose WAL receiver was still reading from the stopped master again",
    when: (c, e) => drainTarget(c, e.name) !== null,
    run: (c, e) => queryPositions(c, c.s.promotion!.token, [drainTarget(c, e.name)!], false),
  }),
  row({
    id: "lsn.drain.stale",
    from: ["*"],
    on: "timer:lsnDrain",
    guard: "otherwise",
    to: "unchanged",
    actions: "none",
    reason: "that position round is over",
    run: () => {},
  }),
  row({
    id: "lsn.reply",
    from: ["*"],
    on: "message:lsnReply",
    guard: "promotion collecting positions",
    to: "unchanged",
    actions: "record; continue when every standby answered",
    reason: "a WAL position arrived",
    when: (c, e) =>
      c.s.promotion?.stage === "queryLsn" &&
      c.s.promotion.token === e.message.token &&
      c.s.promotion.awaiting.includes(e.from),
    run: (c, e) => {
      const p = c.s.promotion!;
      const isMaster = e.message.role === "Master";
      const timeline = e.message.timeline ?? null;
      // Invariant: a database that may hold WAL past the fork of a newer timeline is never
      // promoted. A fenced ex-master not yet rewound is never a candidate, whatever its position;
      // neither is one whose record names itself the last master while we have seen a promotion
      // since (more promotions than it): its host was reset before any fence, it booted read-only
      // with whatever it wrote last, and with no master running it cannot tell its timeline.
      // A position on a newer timeline than any fork we know of: a promotion we did not see.
      c.learnTimeline(timeline);
      const superseded = e.message.lastMaster === true && (e.message.epoch ?? 0) < c.s.epoch;
      const candidate = e.message.role === "Standby" && e.message.rebuild !== true && !superseded;
      c.setPromotion({
        ...p,
        ...(superseded
          ? {
              failures: { ...p.failures, [e.from]: SUPERSEDED },
            }
          : {}),
        awaiting: p.awaiting.filter((a) => a !== e.from),
        lsns: candidate ? { ...p.lsns, [e.from]: e.message.lsn } : p.lsns,
        timelines: candidate ? { ...p.timelines, [e.from]: timeline } : p.timelines,
        masterLsn: isMaster ? e.message.lsn : p.masterLsn,
        masterTimeline: isMaster ? timeline : p.masterTimeline,
        ...(candidate && e.message.streaming !== undefined
          ? { streaming: { ...p.streaming, [e.from]: e.message.streaming } }
          : {}),
      });
      if (c.s.promotion!.awaiting.length === 0) c.raise({ type: "lsnsCollected", now: c.now });
    },
  }),
  row({
    id: "lsn.stale",
    from: ["*"],
    on: "message:lsnReply",
    guard: "otherwise",
    to: "unchanged",
    actions: "none",
    reason: "WAL position for a promotion no longer collecting",
    run: () => {},
  }),
  row({
    id: "promo.notCoordinator",
    from: ["*"],
    on: "lsnsCollected",
    guard: "no longer coordinator of a majority",
    to: "unchanged",
    actions: "drop the promotion",
    reason: "a promotion is only decided inside a majority view",
    when: (c) => !c.isCoordinator(),
    run: (c) => {
      const p = c.s.promotion;
      if (p?.request)
        c.reply(p.request.origin, p.request.requestId, false, "Lost the majority; promotion abandoned.");
      c.setPromotion(null);
    },
  }),
  row({
    id: "promo.viewChanged",
    from: ["*"],
    on: "lsnsCollected",
    guard: "the view changed while positions were collected",
    to: "unchanged",
    actions: "ask the new view's standbys again",
    reason: "members came or went during the query: a newcomer may be the most up to date, ask again",
    when: (c) => c.s.promotion !== null && c.s.view !== null && c.s.promotion.epoch !== c.s.view.epoch,
    run: (c) => {
      const p = c.s.promotion!;
      const ask = possibleStandbys(c).filter((a) => !(p.manual && a === p.oldMaster && !p.switchedOver));
      const master = p.manual && !p.switchedOver && p.oldMaster ? [p.oldMaster] : [];
      c.setPromotion({
        ...p,
        epoch: c.s.view!.epoch,
        awaiting: [...ask, ...master],
        lsns: {},
        timelines: {},
        masterLsn: null,
      });
      queryPositions(c, p.token, [...ask, ...master]);
    },
  }),
  row({
    id: "promo.noCandidate.restore",
    from: ["*"],
    on: "lsnsCollected",
    guard:
      "automatic; no standby can be a candidate and one was left out as a master superseded by a later promotion, or as past the newest timeline's fork; that later master is here, fenced, Idle, its database up, every voter here and nobody knows a later one",
    to: "unchanged",
    actions: "ask the old master to check, then take its role back",
    reason:
      "the only standbys may hold WAL past its fork (older masters it replaced, standbys that went past it): bring the fenced last master back rather than leave no master",
    // Invariant (liveness, with 'diverged'): a quorate cluster with a healthy database that can
    // safely be master ends with a master. The last master fenced itself and holds the newest WAL
    // there is (nobody was promoted after it); the standbys left are masters it replaced, which
    // are never promoted. As with no standby at all (promo.noStandby.restore), it takes its role back.
    when: (c) => {
      const p = c.s.promotion;
      return (
        noCandidate(c, p) &&
        (Object.values(p.failures).includes(SUPERSEDED) || leftOutPastFork(c, p)) &&
        c.members().every((a) => c.roleOf(a) !== null) &&
        restorable(c, p.oldMaster ?? lastMaster(c))
      );
    },
    run: (c) => {
      const p = c.s.promotion!;
      c.setPromotion({ ...p, oldMaster: p.oldMaster ?? lastMaster(c), switchedOver: true });
      c.nextCandidate(true);
    },
  }),
  row({
    id: "promo.noCandidate.pastFork",
    from: ["*"],
    on: "lsnsCollected",
    guard: "automatic; no standby can be a candidate and one was left out past the newest promotion's fork",
    to: "unchanged",
    actions: "notify failoverNotOccurred; tell every agent (cluster-status) which standbys need a rewind",
    reason:
      "the only standbys hold WAL past the fork of a newer timeline: promoting one would discard that timeline's writes, so an operator must rewind or re-clone it",
    // Invariant 'diverged': a database that wrote past the fork of a newer timeline is never
    // promoted until rewound or rebuilt, even once the newer timeline's master is gone.
    when: (c) => {
      const p = c.s.promotion;
      return noCandidate(c, p) && leftOutPastFork(c, p);
    },
    run: (c) => {
      const p = c.s.promotion!;
      c.setPromotion(null);
      const off = Object.entries(c.offTimeline(p)).map(([a, why]) => `${a}: ${why}`);
      const cluster = c.s.config.clusterName;
      const text =
        `Failover has not occurred: every standby holds WAL past the fork of a newer timeline (${off.join("; ")}). ` +
        `Bring back the database of the newer timeline's master; or, accepting that its writes are lost, ` +
        `promote a standby by hand (pg_ctl promote -D <data directory>, as the database owner) and run 'efm resume ${cluster}' on its node.`;
      // The periodic look finds the same standbys each time: say it once, keep it in cluster-status.
      if (c.s.attention !== text) {
        c.notify("failoverNotOccurred", c.cluster());
        c.setAttention(text);
      }
    },
  }),
  row({
    id: "promo.noCandidate",
    from: ["*"],
    on: "lsnsCollected",
    guard: "no standby reported a position",
    to: "unchanged",
    actions: "notify failoverNotOccurred",
    reason: "no standby could report its WAL position: nothing to promote",
    when: (c) => {
      const p = c.s.promotion;
      return p !== null && c.rankCandidates(p.lsns, p.timelines, p.masterTimeline).length === 0;
    },
    run: (c) => {
      const p = c.s.promotion!;
      c.setPromotion(null);
      const off = Object.entries(c.offTimeline(p)).map(([a, why]) => `${a}: ${why}`);
      const why =
        off.length > 0
          ? `No standby is on the current timeline (${off.join("; ")}).`
          : "No standby could report its WAL position.";
      if (p.request) c.reply(p.request.origin, p.request.requestId, false, why);
      else c.notify("failoverNotOccurred", c.cluster());
    },
  }),
  row({
    id: "promo.manual.notUpToDate",
    from: ["*"],
    on: "lsnsCollected",
    guard: "manual, no force, best standby behind the master",
    to: "unchanged",
    actions: "refuse (the CLI asks and retries with force)",
    reason: "no standby is up to date with the master: promoting would lose data",
    when: (c) => {
      const p = c.s.promotion;
      if (!p?.manual || p.force || p.switchedOver || p.masterLsn === null) return false;
      const best = c.rankCandidates(p.lsns, p.timelines, p.masterTimeline)[0]!;
      return (
        p.lsns[best] !== p.masterLsn &&
        (c.rankCandidates(
          { m: p.masterLsn, s: p.lsns[best]! },
          { m: p.masterTimeline, s: p.timelines[best] ?? null },
        )[0] ?? "m") === "m"
      );
    },
    run: (c) => {
      const p = c.s.promotion!;
      c.setPromotion(null);
      if (p.request)
        c.reply(p.request.origin, p.request.requestId, false, "No standby is up to date with the master.");
    },
  }),
  row({
    id: "promo.rank",
    from: ["*"],
    on: "lsnsCollected",
    guard: "otherwise",
    to: "unchanged",
    actions:
      "rank the candidates (a failover under synchronous.mode: only the last published synchronous set); the best untried one goes on if its check (asked with the positions) passed, is skipped if it failed, else its check is awaited (or asked)",
    reason:
      "rank the standbys by (timeline, WAL position), ties by the priority list, leaving out any behind the current timeline; the best must pass its pre-promotion check before anyone is fenced",
    run: (c) => {
      const p = c.s.promotion!;
      // A manual promotion without force only considers standbys up to date with the master.
      const ranked = c
        .rankCandidates(p.lsns, p.timelines, p.masterTimeline)
        .filter(
          (a) => !p.manual || p.force || p.masterLsn === null || compareLsn(p.lsns[a]!, p.masterLsn) >= 0,
        );
      // synchronous.mode: a failover promotes only a standby of the last published synchronous
      // set (the others may lack commits acknowledged to clients); an operator's promote may.
      const outside = p.manual ? {} : outsideSyncSet(c, ranked);
      // Standbys left out for their timeline or the synchronous set are named in the outcome if
      // nobody can be promoted.
      c.setPromotion({
        ...p,
        ranked: ranked.filter((a) => outside[a] === undefined),
        failures: { ...c.offTimeline(p), ...outside, ...p.failures },
      });
      c.nextCandidate();
    },
  }),
  row({
    id: "promo.verified.notCoordinator",
    from: ["*"],
    on: "candidateVerified",
    guard: "no longer coordinator of a majority",
    to: "unchanged",
    actions: "drop the promotion",
    reason: "a promotion is only decided inside a majority view",
    when: (c) => !c.isCoordinator(),
    run: (c) => {
      const p = c.s.promotion;
      if (p?.request)
        c.reply(p.request.origin, p.request.requestId, false, "Lost the majority; promotion abandoned.");
      c.setPromotion(null);
    },
  }),
  row({
    id: "promo.manual.switchover",
    from: ["*"],
    on: "candidateVerified",
    guard: "manual with a master in the view",
    to: "unchanged",
    actions: "ask the master to release the VIP and fence itself",
    reason: "manual promotion: the master steps down first (4.1.4), now that the candidate can be promoted",
    when: (c) =>
      c.s.promotion?.manual === true &&
      c.s.promotion.oldMaster !== null &&
      c.membersWithRole("Master").includes(c.s.promotion.oldMaster) &&
      !c.s.promotion.switchedOver,
    run: (c) => {
      const p = c.s.promotion!;
      c.setPromotion({ ...p, stage: "switchover" });
      c.send(p.oldMaster!, { type: "switchover", token: p.token, newMaster: p.candidate! });
      c.timer(`promotion:${p.token}`, c.now + c.s.config.promotionTimeoutMs);
    },
  }),
  row({
    id: "promo.send",
    from: ["*"],
    on: "candidateVerified",
    guard: "otherwise",
    to: "unchanged",
    actions: "notify promotionStarted; send promote to the verified candidate",
    reason: "promote the most up-to-date standby that can be promoted",
    run: (c) => {
      const p = c.s.promotion!;
      const candidate = p.candidate!;
      c.setPromotion({ ...p, stage: "promoting" });
      c.notify("promotionStarted", c.cluster());
      c.send(candidate, {
        type: "promote",
        token: p.token,
        epoch: c.s.view?.epoch ?? p.epoch,
        oldMaster: p.oldMaster,
        checkMaster: (!p.switchedOver || p.masterUnconfirmed === true) && !p.restoring,
        ...(p.restoring ? { restore: true } : rankedAt(p, candidate)),
        // A candidate cut off when the newest timeline was announced learns its fork here.
        ...(c.s.newestFork && !p.restoring
          ? { forkTimeline: c.s.newestFork.parent, forkLsn: c.s.newestFork.lsn }
          : {}),
      });
      c.timer(`promotion:${p.token}`, c.now + c.s.config.promotionTimeoutMs);
    },
  }),
  row({
    id: "promo.precheck.early.refused",
    from: ["*"],
    on: "message:promotableReply",
    guard: "our candidate refused the check asked together with the positions, and has not been asked since",
    to: "unchanged",
    actions: "ask the candidate for its pre-promotion check again",
    reason:
      "the candidate refused the check asked with the positions (a moment before it was a running standby of our view, as its position report shows it is now): ask it again, as the check after ranking would have",
    // Invariant: the check asked with the positions never decides more than the check after
    // ranking did. That one was asked once the candidate had reported itself a standby; this one
    // may have reached it a moment before, so its refusal is not the candidate's last word.
    when: (c, e) => {
      const p = c.s.promotion;
      return (
        p?.stage === "precheck" &&
        p.token === e.message.token &&
        p.candidate === e.from &&
        e.message.refused === true &&
        p.prechecks?.[e.from]?.token === e.message.token &&
        p.prechecks[e.from]!.error === undefined
      );
    },
    run: (c, e) => {
      const p = c.s.promotion!;
      const { [e.from]: _asked, ...prechecks } = p.prechecks!;
      c.setPromotion({ ...p, prechecks });
      c.send(e.from, { type: "checkPromotable", token: p.token });
    },
  }),
  row({
    id: "promo.precheck.ok",
    from: ["*"],
    on: "message:promotableReply",
    guard: "our candidate can be promoted",
    to: "unchanged",
    actions: "go on with the switchover or the promotion",
    reason: "the candidate's database answers, is in recovery and its agent can promote it",
    when: (c, e) =>
      c.s.promotion?.stage === "precheck" &&
      c.s.promotion.token === e.message.token &&
      c.s.promotion.candidate === e.from &&
      e.message.ok,
    run: (c, e) => {
      const p = c.s.promotion!;
      c.setPromotion({ ...p, verified: [...p.verified, e.from] });
      c.raise({ type: "candidateVerified", now: c.now });
    },
  }),
  row({
    id: "promo.precheck.refused",
    from: ["*"],
    on: "message:promotableReply",
    guard: "our candidate did not run the check (not yet a running standby of our view)",
    to: "unchanged",
    actions: "drop the promotion; re-evaluate the cluster shortly",
    reason:
      "the candidate refused to be checked (a view change or start-up in flight): start over with fresh positions rather than skip it",
    // Skipping it would promote a less up-to-date standby over one that is only a view behind.
    when: (c, e) =>
      c.s.promotion?.stage === "precheck" &&
      c.s.promotion.token === e.message.token &&
      c.s.promotion.candidate === e.from &&
      e.message.refused === true,
    run: (c, e) => {
      const p = c.s.promotion!;
      c.setPromotion(null);
      if (c.s.view?.coordinator === c.self) c.timer("reconcile", c.now + c.s.config.messageSlackMs);
      if (p.request)
        c.reply(
          p.request.origin,
          p.request.requestId,
          false,
          `Promotion has not occurred: ${e.from}: ${e.message.error ?? "refused the pre-promotion check"}.`,
        );
    },
  }),
  row({
    id: "promo.precheck.failed",
    from: ["*"],
    on: "message:promotableReply",
    guard: "our candidate cannot be promoted",
    to: "unchanged",
    actions: "try the next candidate in rank order",
    reason: "the candidate failed its pre-promotion check: nobody was fenced for it, try the next one",
    when: (c, e) =>
      c.s.promotion?.stage === "precheck" &&
      c.s.promotion.token === e.message.token &&
      c.s.promotion.candidate === e.from,
    run: (c, e) => c.candidateFailed(`cannot be promoted: ${e.message.error ?? "no reason given"}`),
  }),
  row({
    id: "promo.precheck.early",
    from: ["*"],
    on: "message:promotableReply",
    guard: "a check asked together with the positions, from a standby not awaited as the candidate",
    to: "unchanged",
    actions:
      "record it: verified, failed (with the reason) or refused (ask again if it becomes the candidate)",
    reason:
      "a standby answered the pre-promotion check asked with its position: the candidate chosen on the positions goes on without another round trip",
    // Invariant: no candidate is promoted unless its check passed; a failed one is tried no more
    // than after a failed check today (nextCandidate reads this record as that check's answer).
    when: (c, e) => {
      const p = c.s.promotion;
      return (
        p !== null &&
        p.token === e.message.token &&
        p.prechecks?.[e.from]?.token === e.message.token &&
        p.prechecks[e.from]!.error === undefined
      );
    },
    run: (c, e) => {
      const p = c.s.promotion!;
      const { [e.from]: _asked, ...rest } = p.prechecks!;
      if (e.message.ok) c.setPromotion({ ...p, prechecks: rest, verified: [...p.verified, e.from] });
      else if (e.message.refused === true) c.setPromotion({ ...p, prechecks: rest });
      else
        c.setPromotion({
          ...p,
          prechecks: {
            ...rest,
            [e.from]: { token: e.message.token, error: e.message.error ?? "no reason given" },
          },
        });
    },
  }),
  row({
    id: "promo.precheck.stale",
    from: ["*"],
    on: "message:promotableReply",
    guard: "otherwise",
    to: "unchanged",
    actions: "none",
    reason: "pre-promotion check result for a promotion no longer waiting for it",
    run: () => {},
  }),
  row({
    id: "promo.exhausted.restore",
    from: ["*"],
    on: "candidatesExhausted",
    guard:
      "no standby could be promoted; the old master fenced itself for this promotion, is here, Idle, its database up",
    to: "unchanged",
    actions: "ask the old master to check, then take its role back",
    reason: "no standby could be promoted: bring the healthy old master back rather than leave no master",
    when: (c) => {
      const p = c.s.promotion!;
      const old = p.oldMaster;
      return (
        c.isCoordinator() &&
        old !== null &&
        p.switchedOver &&
        !p.restoring &&
        !(old in p.failures) &&
        c.members().includes(old) &&
        c.roleOf(old) === "Idle" &&
        (old === c.self ? c.s.db : c.s.peers[old]?.db) === "UP"
      );
    },
    run: (c) => c.nextCandidate(true),
  }),
  row({
    id: "promo.exhausted.noMaster",
    from: ["*"],
    on: "candidatesExhausted",
    guard: "no candidate could be promoted and no master runs",
    to: "unchanged",
    actions:
      "notify unexpectedError with the steps; tell every agent (cluster-status) what to do; answer the operator",
    reason: "every database is in recovery and none could be promoted: an operator must act",
    when: (c) => c.membersWithRole("Master", "Promoting").length === 0,
    run: (c) => {
      const p = c.s.promotion!;
      c.setPromotion(null);
      const tried = failureList(p, ": ");
      const cluster = c.s.config.clusterName;
      const action =
        `No database of cluster ${cluster} is a master. Fix the cause in the agent logs, then either ` +
        `promote the most up-to-date database by hand (pg_ctl promote -D <data directory>, as the database owner) ` +
        `and run 'efm resume ${cluster}' on its node, or run 'efm resume ${cluster}' on each Idle standby ` +
        `and then 'efm promote ${cluster}'.`;
      // The guide's catalogue has no entry for this outcome (EFM could end here silently); its
      // SEVERE "unexpected error" carries the failures and the exact steps.
      c.notify("unexpectedError", {
        clusterName: cluster,
        errorDetails: `Promotion failed on every candidate (${tried || "no candidate"}). ${action}`,
      });
      c.setAttention(`Promotion failed (${tried || "no candidate"}). ${action}`);
      if (p.request)
        c.reply(
          p.request.origin,
          p.request.requestId,
          false,
          `Promotion failed: ${tried || "no candidate"}. ${action}`,
        );
    },
  }),
  row({
    id: "promo.exhausted",
    from: ["*"],
    on: "candidatesExhausted",
    guard: "otherwise (the master still runs: nobody was fenced)",
    to: "unchanged",
    actions: "answer the operator / notify failoverNotOccurred",
    reason: "no standby can be promoted; the master was left alone",
    run: (c) => {
      const p = c.s.promotion!;
      c.setPromotion(null);
      const tried = failureList(p, ": ");
      if (p.request)
        c.reply(
          p.request.origin,
          p.request.requestId,
          false,
          `Promotion failed: no standby can be promoted (${tried || "no candidate"}). The master was not changed.`,
        );
      else c.notify("failoverNotOccurred", c.cluster());
    },
  }),
  row({
    id: "promo.lsn.retry",
    from: ["*"],
    on: "timer:promotion",
    guard: "still collecting positions; a standby that has not answered is still in the view",
    to: "unchanged",
    actions: "ask the silent standbys again",
    reason:
      "a standby of this view has not reported its WAL position: it may be the most up to date, ask again",
    when: (c, e) =>
      c.s.promotion?.stage === "queryLsn" &&
      e.name === `promotion:${c.s.promotion.token}` &&
      c.isCoordinator() &&
      c.s.promotion.awaiting.some((a) => possibleStandbys(c).includes(a)),
    run: (c) => {
      const p = c.s.promotion!;
      const silent = p.awaiting.filter((a) => possibleStandbys(c).includes(a));
      c.setPromotion({ ...p, awaiting: silent });
      queryPositions(c, p.token, silent);
    },
  }),
  row({
    id: "promo.timeout.lsn",
    from: ["*"],
    on: "timer:promotion",
    guard: "still collecting positions",
    to: "unchanged",
    actions: "continue with the positions received",
    reason: "remote.timeout passed: standbys that did not answer are not candidates",
    when: (c, e) => c.s.promotion?.stage === "queryLsn" && e.name === `promotion:${c.s.promotion.token}`,
    run: (c) => c.raise({ type: "lsnsCollected", now: c.now }),
  }),
  row({
    id: "promo.timeout",
    from: ["*"],
    on: "timer:promotion",
    guard: "candidate (its check or its promotion) or master did not answer in time",
    to: "unchanged",
    actions: "drop the promotion",
    reason: "the promotion did not complete in time; re-evaluate the cluster shortly",
    // A silent candidate is not skipped for the next one: it may be the most up to date and only
    // cut off for a moment; the coordinator starts over with fresh positions (reconcile).
    when: (c, e) => c.s.promotion !== null && e.name === `promotion:${c.s.promotion.token}`,
    run: (c) => {
      const p = c.s.promotion!;
      c.setPromotion(null);
      if (c.s.view?.coordinator === c.self) c.timer("reconcile", c.now + c.s.config.messageSlackMs);
      if (p.request)
        c.reply(p.request.origin, p.request.requestId, false, "The promotion did not complete in time.");
    },
  }),
  row({
    id: "promo.timer.stale",
    from: ["*"],
    on: "timer:promotion",
    guard: "otherwise",
    to: "unchanged",
    actions: "none",
    reason: "timer of a finished promotion",
    run: () => {},
  }),
  row({
    id: "promo.result.ok",
    from: ["*"],
    on: "message:promotionResult",
    guard: "our promotion succeeded",
    to: "unchanged",
    actions: "clear; answer the operator",
    reason: "the candidate is the new master",
    when: (c, e) => c.s.promotion?.token === e.message.token && e.message.ok,
    run: (c, e) => {
      const p = c.s.promotion!;
      c.setPromotion(null);
      // The new master's announcement says where its timeline forked; an older agent's does not.
      const at = p.restoring ? {} : rankedAt(p, e.from);
      if (at.atLsn !== undefined && typeof at.atTimeline === "number")
        c.learnFork({ parent: at.atTimeline, lsn: at.atLsn });
      c.s.knownMaster = { address: e.from, lastHeardAt: c.now };
      c.s.peers = { ...c.s.peers, [e.from]: { role: "Master", db: "UP" } };
      if (p.request)
        c.reply(p.request.origin, p.request.requestId, true, `Promotion of ${e.from} has completed.`);
    },
  }),
  row({
    id: "promo.result.next",
    from: ["*"],
    on: "message:promotionResult",
    guard: "our candidate failed on its own (its database stayed in recovery, its network)",
    to: "unchanged",
    actions: "try the next candidate (then the old master); never end with no master silently",
    reason: "the promotion failed on this candidate: try the next one in rank order",
    // Only the candidate's own failures: a refusal over a changed view or a lost lease is retried
    // with fresh positions (the best standby may still be the best), not by skipping it.
    when: (c, e) =>
      c.s.promotion?.token === e.message.token &&
      c.s.promotion.candidate === e.from &&
      e.message.next === true,
    run: (c, e) => c.candidateFailed(e.message.reason),
  }),
  row({
    id: "promo.result.failed",
    from: ["*"],
    on: "message:promotionResult",
    guard: "our promotion was aborted by the candidate",
    to: "unchanged",
    actions: "clear; answer the operator",
    reason: "the candidate refused or aborted; failover has NOT occurred",
    when: (c, e) => c.s.promotion?.token === e.message.token,
    run: (c, e) => {
      const p = c.s.promotion!;
      c.setPromotion(null);
      // A candidate that lost its lease mid-way said nothing against promoting: an automatic
      // failover the cluster still needs is looked at again as soon as a lease can be back, through
      // the masterless watch (which asks every database first), not a whole promotion timeout later.
      if (e.message.retry && !p.request) {
        const cfg = c.s.config;
        c.timer("masterWatch", c.now + cfg.leaseMs + cfg.takeoverMarginMs + cfg.messageSlackMs);
      }
      if (p.request)
        c.reply(p.request.origin, p.request.requestId, false, `Promotion failed: ${e.message.reason}`);
    },
  }),
  row({
    id: "promo.result.stale",
    from: ["*"],
    on: "message:promotionResult",
    guard: "otherwise",
    to: "unchanged",
    actions: "none",
    reason: "result of a promotion no longer tracked",
    run: () => {},
  }),
];
