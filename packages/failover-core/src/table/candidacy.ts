import type { Ctx } from "../context.ts";
import { type EventFor, type TransitionRow, row } from "./rows.ts";

type PromoteEvent = EventFor<"message:promote">;

/**
 * The fenced old master asked to take its role back: only once its own fence is over (a database
 * still being stopped is neither checked nor promoted).
 */
const restorable = (c: Ctx, restore: boolean | undefined) =>
  restore === true && c.s.fencedForIsolation && c.s.selfFence === null;

/** cand.accept's guard: a standby (or the fenced old master asked back) of the sender's majority view. */
function acceptable(c: Ctx, e: PromoteEvent): boolean {
  return (
    (c.s.role === "Standby" ? !e.message.restore : restorable(c, e.message.restore)) &&
    c.quorate() &&
    c.leaseValid() &&
    c.s.view?.epoch === e.message.epoch &&
    c.s.view.coordinator === e.from &&
    !c.s.local.reported
  );
}

/**
 * Our candidacy still waits for the old master database's answer. Once a fresh answer from the
 * confirmation stood in for it, a late one moves nothing (cand.masterDown), like an answer
 * arriving just after any check: a database that came back after its check is not seen either.
 */
function masterCheckPending(c: Ctx, token: string): boolean {
  return c.s.candidacy?.token === token && (c.s.candidacy.pendingChecks ?? []).includes("master");
}

/** A new master's announcement names the fork of the timeline it opened (TimelineFork): keep it. */
function learnAnnouncedFork(c: Ctx, e: EventFor<"message:newMaster">): void {
  if (e.message.forkTimeline !== undefined)
    c.learnFork({ parent: e.message.forkTimeline, lsn: e.message.forkLsn ?? null });
}

/** The ping whose answer our candidacy waits for: its own, or the early one it joined. */
function candidacyPing(c: Ctx, token: string): boolean {
  const cand = c.s.candidacy;
  return cand !== null && (cand.pingToken ?? cand.token) === token;
}

/** The candidacy's ping answered: the server is reachable (next check) or not (orphaned: abort). */
function pingAnswered(c: Ctx, reachable: boolean): void {
  if (reachable) {
    c.advanceCandidacy("pingServer");
    return;
  }
  c.notify("standbyPromoteOrphaned", { serverAddress: c.s.config.pingServer ?? "" });
  // Our own network: a candidate elsewhere may still reach the well-known server.
  c.abortCandidacy("orphaned", undefined, true);
}

/** The early ping answered: kept with when it was asked and came (Ctx.freshPingAnswer). */
function keepEarlyPing(c: Ctx, reachable: boolean): void {
  c.s.pingAnswer = { reachable, askedAt: c.s.earlyPing!.askedAt, answeredAt: c.now };
  c.s.earlyPing = null;
}

/** Becomes the candidate and starts the checks before fencing (Ctx.advanceCandidacy). */
function accept(c: Ctx, e: PromoteEvent): void {
  if (e.message.forkTimeline !== undefined)
    c.learnFork({ parent: e.message.forkTimeline, lsn: e.message.forkLsn ?? null });
  c.s.candidacy = {
    token: e.message.token,
    coordinator: e.from,
    epoch: e.message.epoch,
    oldMaster: e.message.oldMaster,
    checkMaster: e.message.checkMaster,
    restore: e.message.restore === true,
    stage: "vip",
    ...(e.message.atLsn !== undefined && typeof e.message.atTimeline === "number"
      ? { position: { parent: e.message.atTimeline, lsn: e.message.atLsn } }
      : {}),
  };
  c.setRole("Promoting");
  c.advanceCandidacy("start");
}

/** Rows of one concern (promotion, candidate side, and the other standbys following after a failover), in the table's match order. */
export const candidacyRows: readonly TransitionRow[] = [
  // ---- promotion, candidate side (the three checks, fencing script, promote, VIP, post script) ----
  row({
    id: "precheck.request",
    from: ["Standby", "Idle"],
    on: "message:checkPromotable",
    guard: "from the coordinator; a healthy standby, or the fenced old master asked to take its role back",
    to: "unchanged",
    actions: "checkPromotable on the local database; start a VIP probe (Ctx.startVipProbe)",
    reason: "the coordinator asks whether this node can be promoted before anyone is fenced",
    when: (c, e) =>
      e.from === c.coordinator() &&
      (c.s.role === "Standby" ? !e.message.restore : restorable(c, e.message.restore)) &&
      !c.s.local.reported &&
      c.s.candidacy === null,
    run: (c, e) => {
      const t = c.token("promotable");
      c.s.promotableChecks = { ...c.s.promotableChecks, [t]: { to: e.from, token: e.message.token } };
      c.act({ type: "checkPromotable", token: t });
      c.startVipProbe();
      // A promote may follow: ping the ping server now, beside this check (Ctx.startEarlyPing).
      c.startEarlyPing();
    },
  }),
  row({
    id: "cand.earlyPing.orphaned",
    from: ["Promoting"],
    on: "pingServerPinged",
    guard:
      "the early ping (begun at the confirmation or the pre-promotion check), which our candidacy waits for: the server does not answer",
    to: "Standby",
    actions: "keep the answer; notify standbyPromoteOrphaned; abort",
    reason: "this standby appears orphaned from the network",
    // As cand.orphaned: this ping was still running when the candidacy's checks started, so it
    // is no older than the one the candidacy would have started (Ctx.advanceCandidacy).
    when: (c, e) => c.s.earlyPing?.token === e.token && candidacyPing(c, e.token) && !e.reachable,
    run: (c, e) => {
      keepEarlyPing(c, e.reachable);
      pingAnswered(c, false);
    },
  }),
  row({
    id: "cand.earlyPing.ok",
    from: ["Promoting"],
    on: "pingServerPinged",
    guard:
      "the early ping (begun at the confirmation or the pre-promotion check), which our candidacy waits for: the server answers",
    to: "unchanged",
    actions: "keep the answer; next check",
    reason: "the network is reachable",
    when: (c, e) => c.s.earlyPing?.token === e.token && candidacyPing(c, e.token),
    run: (c, e) => {
      keepEarlyPing(c, e.reachable);
      pingAnswered(c, true);
    },
  }),
  row({
    id: "precheck.ping",
    from: ["*"],
    on: "pingServerPinged",
    guard:
      "the early ping (begun at the confirmation or the pre-promotion check), no candidacy waiting for it",
    to: "unchanged",
    actions: "keep the answer with when it was asked and came",
    reason: "the ping server answered (or not) the ping begun when a promotion of this standby became likely",
    when: (c, e) => c.s.earlyPing?.token === e.token,
    run: (c, e) => keepEarlyPing(c, e.reachable),
  }),
  row({
    id: "precheck.refuse",
    from: ["*"],
    on: "message:checkPromotable",
    guard: "otherwise",
    to: "unchanged",
    actions: "answer: cannot be promoted",
    reason: "asked whether we can be promoted, but we are not a healthy standby of that coordinator",
    run: (c, e) =>
      c.send(e.from, {
        type: "promotableReply",
        token: e.message.token,
        ok: false,
        error: `this agent is ${c.s.role ?? c.s.phase}${c.s.local.reported ? " with a failed database" : ""}, not a standby that can be promoted`,
        refused: true,
      }),
  }),
  row({
    id: "precheck.answer",
    from: ["*"],
    on: "promotableChecked",
    guard: "a check the coordinator asked for",
    to: "unchanged",
    actions: "reply with the result",
    reason: "report whether this node can be promoted",
    when: (c, e) => c.s.promotableChecks[e.token] !== undefined,
    run: (c, e) => {
      const dest = c.s.promotableChecks[e.token]!;
      const { [e.token]: _d, ...rest } = c.s.promotableChecks;
      c.s.promotableChecks = rest;
      c.send(dest.to, {
        type: "promotableReply",
        token: dest.token,
        ok: e.ok,
        ...(e.ok ? {} : { error: e.error ?? "the pre-promotion check failed" }),
      });
    },
  }),
  row({
    id: "precheck.stale",
    from: ["*"],
    on: "promotableChecked",
    guard: "otherwise",
    to: "unchanged",
    actions: "none",
    reason: "stale pre-promotion check result ignored",
    run: () => {},
  }),
  row({
    id: "notice.update",
    from: ["*"],
    on: "message:notice",
    guard: "always",
    to: "unchanged",
    actions: "remember it for cluster-status",
    reason: "the coordinator says what an operator must do now",
    run: (c, e) => {
      c.s.attention = e.message.text;
    },
  }),
  row({
    id: "cand.busy",
    from: ["Promoting"],
    on: "message:promote",
    guard: "already promoting",
    to: "unchanged",
    actions: "refuse; notify promotionNotOccurred",
    reason: "only one promotion at a time",
    run: (c, e) => {
      c.notify("promotionNotOccurred", { clusterName: c.s.config.clusterName, ipAddress: c.self });
      c.send(e.from, {
        type: "promotionResult",
        token: e.message.token,
        ok: false,
        reason: "already being promoted",
      });
    },
  }),
  row({
    id: "cand.accept.masterFresh",
    from: ["Standby", "Idle"],
    on: "message:promote",
    guard:
      "as cand.accept, and our own check of the old master's database in the confirmation found it unreachable less long ago than that check took",
    to: "Promoting",
    actions:
      "start the checks; our fresh master-database answer counts for that check if it is still as fresh when the others are in (alone: at once)",
    reason:
      "chosen as the most up-to-date standby: start promoting; the old master's database was found down by our own check as recently as a new check could tell, so it is not waited for a second remote.timeout",
    // Invariant: fencing and promotion still follow a check of the old master's database that
    // found it down and is as fresh as the one it replaces (Ctx.freshMasterAnswer); if the VIP or
    // ping answers come so late that it no longer is, the new check, started beside them, decides.
    when: (c, e) =>
      acceptable(c, e) &&
      e.message.checkMaster &&
      e.message.oldMaster !== null &&
      e.message.restore !== true &&
      c.freshMasterAnswer(e.message.oldMaster) !== null,
    run: (c, e) => accept(c, e),
  }),
  row({
    id: "cand.accept",
    from: ["Standby", "Idle"],
    on: "message:promote",
    guard:
      "a standby (or the fenced old master asked to take its role back); quorate view of the same epoch, sender is its coordinator, our lease valid",
    to: "Promoting",
    actions: "start the pre-promotion checks",
    reason: "chosen as the most up-to-date standby: start promoting",
    when: (c, e) => acceptable(c, e),
    run: (c, e) => accept(c, e),
  }),
  row({
    id: "cand.refuse",
    from: ["*"],
    on: "message:promote",
    guard: "otherwise (not a healthy standby, or a stale view)",
    to: "unchanged",
    actions: "refuse",
    reason: "promotion request refused: not a standby in the sender's majority view",
    run: (c, e) =>
      c.send(e.from, {
        type: "promotionResult",
        token: e.message.token,
        ok: false,
        reason: "not eligible for promotion",
      }),
  }),
  row({
    id: "vipProbe.answer",
    // Every state a probe's answer can reach (it is begun from Standby or Idle): whatever the
    // role by then, it is recorded. Before start-up has finished none can be ours.
    from: ["joining", "checking", "Master", "Standby", "Witness", "Idle", "Promoting"],
    on: "vipPinged",
    guard: "our VIP probe (begun when the master went quiet or with the pre-promotion check)",
    to: "unchanged",
    actions:
      "record it; a candidacy waiting on it: free is its VIP check's answer, answered is a ping of its own",
    reason:
      "the VIP probe answered: a free VIP counts for a candidacy's VIP check; an answer may predate the old master's release, so the candidate pings again",
    // Invariant: a candidate promotes only after a ping that found nobody on the VIP and is no
    // older than its own would be (Ctx.vipProbeStanding). An answering VIP never aborts from
    // here: a manual promotion's master still held it when the probe began; the candidate's own
    // ping, begun now, decides (cand.vipAssigned).
    when: (c, e) => c.s.vipProbes.running?.token === e.token,
    run: (c, e) => {
      const asked = c.s.vipProbes.running!.askedAt;
      // Someone answers on the VIP now: no earlier silence stands for the check any more.
      c.s.vipProbes = { running: null, free: e.reachable ? null : { askedAt: asked, answeredAt: c.now } };
      const cand = c.s.candidacy;
      if (!cand?.vipFromProbe || !(cand.pendingChecks ?? []).includes("vip")) return;
      const { vipFromProbe: _p, ...rest } = cand;
      c.s.candidacy = rest;
      if (!e.reachable) c.advanceCandidacy("vip");
      else c.act({ type: "pingVip", token: cand.token, vip: c.s.config.virtualIp ?? "" });
    },
  }),
  row({
    id: "cand.vipAssigned",
    from: ["Promoting"],
    on: "vipPinged",
    guard: "the VIP answers",
    to: "Standby",
    actions: "notify standbyPromoteVipAssigned; abort",
    reason: "the VIP is still assigned to another node: promoting could corrupt data",
    when: (c, e) => c.s.candidacy?.token === e.token && e.reachable,
    run: (c) => {
      c.notify("standbyPromoteVipAssigned", { vipAddress: c.s.config.virtualIp ?? "" });
      c.abortCandidacy("VIP still assigned");
    },
  }),
  row({
    id: "cand.vipFree",
    from: ["Promoting"],
    on: "vipPinged",
    guard: "the VIP does not answer",
    to: "unchanged",
    actions: "next check",
    reason: "the VIP is free",
    when: (c, e) => c.s.candidacy?.token === e.token,
    run: (c) => c.advanceCandidacy("vip"),
  }),
  row({
    id: "cand.orphaned",
    from: ["Promoting"],
    on: "pingServerPinged",
    guard: "the well-known server does not answer",
    to: "Standby",
    actions: "notify standbyPromoteOrphaned; abort",
    reason: "this standby appears orphaned from the network",
    when: (c, e) => candidacyPing(c, e.token) && !e.reachable,
    run: (c) => pingAnswered(c, false),
  }),
  row({
    id: "cand.pingOk",
    from: ["Promoting"],
    on: "pingServerPinged",
    guard: "the well-known server answers",
    to: "unchanged",
    actions: "next check",
    reason: "the network is reachable",
    when: (c, e) => candidacyPing(c, e.token),
    run: (c) => pingAnswered(c, true),
  }),
  row({
    id: "cand.masterRunning",
    from: ["Promoting"],
    on: "remoteDbChecked",
    guard: "the old master database answers",
    to: "Standby",
    actions: "notify standbyPromoteMasterRunning; abort",
    reason: "the master database is still running: failover has NOT occurred",
    when: (c, e) => masterCheckPending(c, e.token) && e.result === "reachable",
    run: (c, e) => {
      c.notify("standbyPromoteMasterRunning", { nodeAddress: e.target });
      c.abortCandidacy("master database still running");
    },
  }),
  row({
    id: "cand.masterUnverified",
    from: ["Promoting"],
    on: "remoteDbChecked",
    guard: "the old master database answered but could not be verified",
    to: "Standby",
    actions: "notify standbyPromoteMasterUnverified; abort",
    reason: "could not verify the master database: failover has NOT occurred",
    when: (c, e) => masterCheckPending(c, e.token) && e.result === "unknown",
    run: (c, e) => {
      c.notify("standbyPromoteMasterUnverified", { nodeAddress: e.target });
      c.abortCandidacy("master database state unknown");
    },
  }),
  row({
    id: "cand.masterDown",
    from: ["Promoting"],
    on: "remoteDbChecked",
    guard: "the old master database is unreachable (or an answer no longer waited for)",
    to: "unchanged",
    actions: "script.fence or promote",
    reason: "the master database is down",
    when: (c, e) => c.s.candidacy?.token === e.token,
    run: (c) => c.advanceCandidacy("master"),
  }),
  row({
    id: "cand.fenceFailed",
    from: ["Promoting"],
    on: "scriptDone",
    guard: "script.fence non-zero exit",
    to: "Standby",
    actions: "notify fencingScriptError; abort",
    reason: "the fencing script failed: failover has NOT occurred",
    when: (c, e) => c.s.candidacy?.token === e.token && e.script === "fence" && e.exitCode !== 0,
    run: (c, e) => {
      c.notify("fencingScriptError", {
        scriptName: c.s.config.scripts.fence ?? "",
        exitCode: e.exitCode,
        scriptResults: e.output,
      });
      c.abortCandidacy("fencing script failed");
    },
  }),
  row({
    id: "cand.fenceOk",
    from: ["Promoting"],
    on: "scriptDone",
    guard: "script.fence exit 0",
    to: "unchanged",
    actions: "notify executingFencingScript; promote the database",
    reason: "fencing script succeeded",
    when: (c, e) => c.s.candidacy?.token === e.token && e.script === "fence",
    run: (c, e) => {
      c.notify("executingFencingScript", {
        scriptName: c.s.config.scripts.fence ?? "",
        scriptResults: e.output,
      });
      c.advanceCandidacy("fence");
    },
  }),
  row({
    id: "cand.promoteFailed",
    from: ["Promoting"],
    on: "dbPromoted",
    guard: "promotion of the database failed",
    to: "unchanged",
    actions: "notify couldNotPromoteStandby; read the database's role before reporting",
    reason:
      "the database could not be promoted: make sure it is still in recovery before another candidate is tried",
    when: (c, e) => c.s.candidacy?.token === e.token && !e.ok,
    run: (c, e) => {
      c.notify("couldNotPromoteStandby", { fileName: "promote", messageDetails: e.error ?? "" });
      c.s.candidacy = { ...c.s.candidacy!, stage: "verifyPromote", error: e.error ?? "" };
      c.act({ type: "checkLocalRole" });
    },
  }),
  row({
    id: "cand.promoteFailed.primary",
    from: ["Promoting"],
    on: "localRoleChecked",
    guard: "after a failed promote the database is out of recovery after all",
    to: "Master",
    actions: "carry on as promoted: VIP, post-promotion script",
    reason: "the promote reported an error but the database left recovery: it is the master",
    when: (c, e) => c.s.candidacy?.stage === "verifyPromote" && e.result === "primary",
    run: (c) => {
      c.setRole("Master");
      c.s.db = "UP";
      c.provisionalLease();
      c.advanceCandidacy("promote");
    },
  }),
  row({
    id: "cand.promoteFailed.retry",
    from: ["Promoting"],
    on: "localRoleChecked",
    guard: "after a failed promote the database is still in recovery (a standby, not a fenced old master)",
    to: "Idle",
    actions:
      "abort; the coordinator tries its next candidate; back to Standby (a candidate again) after a promotion timeout",
    reason:
      "the database could not be promoted and is still a standby: rest for a promotion timeout, then be a candidate again",
    // Invariant (liveness): while no master exists, a quorate coordinator keeps trying a healthy
    // candidate whose promote failed: the candidate rests Idle for one promotion timeout (the
    // coordinator tries the others meanwhile), then is a Standby again, and the coordinator's
    // masterless watch promotes it (notified each time). Idle for good left a cluster whose only
    // standby failed one `pg_ctl promote` without a master.
    when: (c, e) =>
      c.s.candidacy?.stage === "verifyPromote" && e.result === "recovery" && !c.s.candidacy.restore,
    run: (c) => {
      c.abortCandidacy(
        `promotion of the database failed: ${c.s.candidacy?.error ?? ""}`.trim(),
        "Idle",
        true,
      );
      c.s.promoteRetryAt = c.now + c.s.config.promotionTimeoutMs;
      c.timer("promoteRetry", c.s.promoteRetryAt);
    },
  }),
  row({
    id: "promoteRetry.standby",
    from: ["Idle"],
    on: "timer:promoteRetry",
    guard:
      "resting after a failed promote; the database still up; not fenced, not flagged for rebuild, no conflict",
    to: "Standby",
    actions: "announce Standby (a candidate again); local monitoring resumes",
    reason: "the rest after a failed promote is over and the database is still a healthy standby",
    when: (c) =>
      c.s.promoteRetryAt !== null &&
      c.now >= c.s.promoteRetryAt &&
      c.s.db === "UP" &&
      !c.s.rebuildNeeded &&
      !c.s.fencedForIsolation &&
      !c.s.idleForConflict &&
      c.s.selfFence === null,
    run: (c) => {
      c.s.promoteRetryAt = null;
      c.setRole("Standby");
    },
  }),
  row({
    id: "promoteRetry.stale",
    from: ["*"],
    on: "timer:promoteRetry",
    guard: "otherwise",
    to: "unchanged",
    actions: "none",
    reason: "no longer resting after a failed promote (another role, or the database failed meanwhile)",
    run: (c) => {
      c.s.promoteRetryAt = null;
    },
  }),
  row({
    id: "cand.promoteFailed.recovery",
    from: ["Promoting"],
    on: "localRoleChecked",
    guard:
      "after a failed promote the database is still in recovery (the fenced old master taking its role back)",
    to: "Idle",
    actions: "abort; the coordinator may try its next candidate",
    reason:
      "the fenced old master could not be promoted back and is still in recovery: it stays the fenced Idle agent it was",
    when: (c, e) => c.s.candidacy?.stage === "verifyPromote" && e.result === "recovery",
    run: (c) =>
      c.abortCandidacy(
        `promotion of the database failed: ${c.s.candidacy?.error ?? ""}`.trim(),
        "Idle",
        true,
      ),
  }),
  row({
    id: "cand.promoteFailed.unknown",
    from: ["Promoting"],
    on: "localRoleChecked",
    guard: "after a failed promote the database does not answer",
    to: "Idle",
    actions: "abort; no other candidate is tried (this one may still come up promoted)",
    reason:
      "the database could not be promoted and its state cannot be read: promoting another could make two masters",
    when: (c) => c.s.candidacy?.stage === "verifyPromote",
    run: (c) =>
      c.abortCandidacy(
        `promotion of the database failed and its state cannot be read: ${c.s.candidacy?.error ?? ""}`.trim(),
        "Idle",
      ),
  }),
  row({
    id: "cand.promoted",
    from: ["Promoting"],
    on: "dbPromoted",
    guard: "the database left recovery",
    to: "Master",
    actions: "assign the VIP or run script.post.promotion",
    reason: "the standby database is now the master",
    when: (c, e) => c.s.candidacy?.token === e.token,
    run: (c) => {
      c.setRole("Master");
      c.s.db = "UP";
      c.provisionalLease();
      c.advanceCandidacy("promote");
    },
  }),
  row({
    id: "cand.vipAssignedOk",
    from: ["Master"],
    on: "vipDone",
    guard: "VIP assigned after promotion",
    to: "unchanged",
    actions: "notify assigningVip; post-promotion script",
    reason: "the VIP now points at the new master",
    when: (c, e) => c.s.candidacy?.token === e.token && e.op === "assign" && e.ok,
    run: (c, e) => {
      c.notify("assigningVip", {
        nodeAddress: c.self,
        vipAddress: c.s.config.virtualIp ?? "",
        scriptResults: e.output,
      });
      c.advanceCandidacy("assignVip");
    },
  }),
  row({
    id: "cand.vipAssignFailed",
    from: ["Master"],
    on: "vipDone",
    guard: "VIP assignment failed after promotion",
    to: "unchanged",
    actions: "notify couldNotAssignVip; post-promotion script",
    reason: "could not assign the VIP; the promotion itself stands",
    when: (c, e) => c.s.candidacy?.token === e.token && e.op === "assign",
    run: (c) => {
      c.notify("couldNotAssignVip", { nodeAddress: c.self });
      c.advanceCandidacy("assignVip");
    },
  }),
  row({
    id: "cand.postOk",
    from: ["Master"],
    on: "scriptDone",
    guard: "script.post.promotion exit 0",
    to: "unchanged",
    actions: "notify executedPostPromotionScript, failoverCompleted; announce the new master",
    reason: "post-promotion script ran",
    when: (c, e) => c.s.candidacy?.token === e.token && e.script === "postPromotion" && e.exitCode === 0,
    run: (c, e) => {
      c.notify("executedPostPromotionScript", {
        scriptName: c.s.config.scripts.postPromotion ?? "",
        scriptResults: e.output,
      });
      c.finishCandidacy();
    },
  }),
  row({
    id: "cand.postFailed",
    from: ["Master"],
    on: "scriptDone",
    guard: "script.post.promotion non-zero exit",
    to: "unchanged",
    actions: "notify postPromotionScriptFailed, failoverCompleted; announce the new master",
    reason: "post-promotion script failed; the promotion stands",
    when: (c, e) => c.s.candidacy?.token === e.token && e.script === "postPromotion",
    run: (c, e) => {
      c.notify("postPromotionScriptFailed", {
        scriptName: c.s.config.scripts.postPromotion ?? "",
        exitCode: e.exitCode,
        scriptResults: e.output,
      });
      c.finishCandidacy();
    },
  }),
  row({
    id: "vip.assigned",
    from: ["*"],
    on: "vipDone",
    guard: "VIP assigned at start-up or resume",
    to: "unchanged",
    actions: "notify assigningVip / couldNotAssignVip",
    reason: "result of assigning the VIP",
    when: (_c, e) => e.op === "assign",
    run: (c, e) => {
      if (e.ok)
        c.notify("assigningVip", {
          nodeAddress: c.self,
          vipAddress: c.s.config.virtualIp ?? "",
          scriptResults: e.output,
        });
      else c.notify("couldNotAssignVip", { nodeAddress: c.self });
    },
  }),
  row({
    id: "vip.released",
    from: ["*"],
    on: "vipDone",
    guard: "otherwise",
    to: "unchanged",
    actions: "notify releasingVip",
    reason: "result of releasing the VIP",
    run: (c, e) =>
      c.notify("releasingVip", {
        nodeAddress: c.self,
        vipAddress: c.s.config.virtualIp ?? "",
        scriptResults: e.output,
      }),
  }),

  // ---- after a failover: the other standbys follow ----
  row({
    id: "follow.reconfigure",
    from: ["Standby"],
    on: "message:newMaster",
    guard: "auto.reconfigure=true",
    to: "unchanged",
    actions: "reconfigureDb(new master)",
    reason: "point this standby at the new master",
    when: (c) => c.s.config.autoReconfigure,
    run: (c, e) => {
      c.s.knownMaster = { address: e.message.address, lastHeardAt: c.now };
      c.s.epoch = Math.max(c.s.epoch, e.message.epoch ?? 0);
      learnAnnouncedFork(c, e);
      c.s.peers = { ...c.s.peers, [e.message.address]: { role: "Master", db: "UP" } };
      const token = c.token("reconf");
      c.s.reconfigureToken = token;
      c.act({ type: "reconfigureDb", token, newMaster: e.message.address });
    },
  }),
  row({
    id: "follow.warn",
    from: ["Standby"],
    on: "message:newMaster",
    guard: "auto.reconfigure=false",
    to: "unchanged",
    actions: "notify standbyNotReconfigured",
    reason: "auto.reconfigure=false: this standby still follows the old master",
    run: (c, e) => {
      c.s.knownMaster = { address: e.message.address, lastHeardAt: c.now };
      c.s.epoch = Math.max(c.s.epoch, e.message.epoch ?? 0);
      learnAnnouncedFork(c, e);
      c.s.peers = { ...c.s.peers, [e.message.address]: { role: "Master", db: "UP" } };
      c.notify("standbyNotReconfigured", c.cluster());
    },
  }),
  row({
    id: "follow.note",
    from: ["*"],
    on: "message:newMaster",
    guard: "not a standby",
    to: "unchanged",
    actions: "none",
    reason: "a new master was announced",
    run: (c, e) => {
      c.s.knownMaster = { address: e.message.address, lastHeardAt: c.now };
      c.s.epoch = Math.max(c.s.epoch, e.message.epoch ?? 0);
      learnAnnouncedFork(c, e);
      c.s.peers = { ...c.s.peers, [e.message.address]: { role: "Master", db: "UP" } };
      c.s.failoverDisabled = false;
      c.s.fencedForIsolation = false;
    },
  }),
  row({
    id: "reconfigure.ok.resumed",
    from: ["Idle"],
    on: "dbReconfigured",
    guard: "a retried reconfiguration succeeded",
    to: "Standby",
    actions: "take the Standby role back (monitoring, candidate again)",
    reason: "the database now follows the master: resume monitoring as a standby",
    when: (c, e) => c.s.reconfigureToken === e.token && e.ok && c.s.reconfigureRetry,
    run: (c) => {
      c.s.reconfigureToken = null;
      c.s.reconfigureRetry = false;
      c.s.db = "UP";
      c.s.local = { token: null, final: false, firstFailure: null, reported: false };
      c.setRole("Standby");
    },
  }),
  row({
    id: "reconfigure.ok",
    from: ["*"],
    on: "dbReconfigured",
    guard: "the standby follows the new master",
    to: "unchanged",
    actions: "none",
    reason: "standby reconfigured to follow the new master",
    when: (c, e) => c.s.reconfigureToken === e.token && e.ok,
    run: (c) => {
      c.s.reconfigureToken = null;
      c.s.reconfigureRetry = false;
    },
  }),
  row({
    id: "reconfigure.failed",
    from: ["*"],
    on: "dbReconfigured",
    guard: "reconfiguration or restart failed",
    to: "Idle",
    actions: "notify resumeTimedOut (once); try again later",
    reason: "could not resume monitoring after reconfiguring the standby",
    when: (c, e) => c.s.reconfigureToken === e.token,
    run: (c) => {
      c.s.reconfigureToken = null;
      if (!c.s.reconfigureRetry) c.notify("resumeTimedOut", c.cluster());
      if (c.s.phase === "running" && c.s.role === "Standby") c.setRole("Idle");
      // A standby left Idle with its database up and its WAL frozen is no candidate for the next
      // failover (issue 11): keep trying, the cause (the new master not yet accepting, a
      // credential fixed by the operator) may pass.
      if (c.s.role === "Idle") {
        c.s.reconfigureRetry = true;
        c.timer("reconfigureRetry", c.now + c.s.config.promotionTimeoutMs);
      }
    },
  }),
  row({
    id: "reconfigure.retry",
    from: ["Idle"],
    on: "timer:reconfigureRetry",
    guard: "still Idle after a failed reconfiguration; a running master is known",
    to: "unchanged",
    actions: "reconfigureDb(the master) again",
    reason: "try again to make the standby database follow the master",
    when: (c) => {
      const m = c.s.knownMaster?.address;
      return (
        c.s.reconfigureRetry &&
        c.s.reconfigureToken === null &&
        !c.s.fencedForIsolation &&
        !c.s.idleForConflict &&
        m !== undefined &&
        m !== c.self &&
        c.roleOf(m) === "Master"
      );
    },
    run: (c) => {
      const token = c.token("reconf");
      c.s.reconfigureToken = token;
      c.act({ type: "reconfigureDb", token, newMaster: c.s.knownMaster!.address });
    },
  }),
  row({
    id: "reconfigure.retry.wait",
    from: ["Idle"],
    on: "timer:reconfigureRetry",
    guard: "still to retry, but no running master known (or a retry in flight)",
    to: "unchanged",
    actions: "check again later",
    reason: "no master to follow yet: retry the reconfiguration later",
    when: (c) => c.s.reconfigureRetry && !c.s.fencedForIsolation && !c.s.idleForConflict,
    run: (c) => c.timer("reconfigureRetry", c.now + c.s.config.promotionTimeoutMs),
  }),
  row({
    id: "reconfigure.retry.stop",
    from: ["*"],
    on: "timer:reconfigureRetry",
    guard: "otherwise (resumed, or no longer Idle)",
    to: "unchanged",
    actions: "stop retrying",
    reason: "no reconfiguration to retry any more",
    run: (c) => {
      c.s.reconfigureRetry = false;
    },
  }),
  row({
    id: "reconfigure.stale",
    from: ["*"],
    on: "dbReconfigured",
    guard: "otherwise",
    to: "unchanged",
    actions: "none",
    reason: "stale reconfiguration result",
    run: () => {},
  }),
];
