import type { Ctx } from "../context.ts";
import { type TransitionRow, row, completeSelfFence, reportFencedMaster } from "./rows.ts";

/** Rows of one concern (fencing ourselves), in the table's match order. */
export const selfFenceRows: readonly TransitionRow[] = [
  // ---- fencing ourselves (release the VIP and fence the database at once, then the script) ----
  row({
    id: "selfFence.vipReleased",
    from: ["*"],
    on: "vipDone",
    guard: "releasing the VIP while fencing",
    to: "unchanged",
    actions: "notify releasingVip; finish the fence if the database result is in",
    reason: "VIP released: the fence is complete once the database is fenced too",
    when: (c, e) => c.s.selfFence?.token === e.token && e.op === "release",
    run: (c, e) => {
      const f = c.s.selfFence!;
      c.notify("releasingVip", {
        nodeAddress: c.self,
        vipAddress: c.s.config.virtualIp ?? "",
        scriptResults: e.output,
      });
      if (f.stage === "both") c.s.selfFence = { ...f, stage: "fenceDb" };
      else if (f.stage === "releaseVip" && f.dbResult) fenceResult(c, f.dbResult.ok, f.dbResult.error);
    },
  }),
  row({
    id: "selfFence.dbBeforeVip",
    from: ["*"],
    on: "dbFenced",
    guard: "the VIP release is still running",
    to: "unchanged",
    actions: "keep the result until the VIP is released",
    reason: "database fence result in: the fence is complete once the VIP is released too",
    when: (c, e) => c.s.selfFence?.token === e.token && c.s.selfFence.stage === "both",
    run: (c, e) => {
      c.s.selfFence = {
        ...c.s.selfFence!,
        stage: "releaseVip",
        dbResult: { ok: e.ok, ...(e.error !== undefined ? { error: e.error } : {}) },
        ...(e.ok && e.finalLsn !== undefined ? { finalLsn: e.finalLsn } : {}),
      };
    },
  }),
  row({
    id: "selfFence.done",
    from: ["*"],
    on: "dbFenced",
    guard: "fencing succeeded",
    to: "unchanged",
    actions: "run script.db.failure / script.master.isolated; report fenced",
    reason: "database fenced: a restart comes up read-only",
    when: (c, e) => c.s.selfFence?.token === e.token && e.ok,
    run: (c, e) => {
      // A clean switchover stop says where the master's WAL ended: the coordinator waits for the
      // target to replay that far before promoting it.
      if (e.finalLsn !== undefined && c.s.selfFence)
        c.s.selfFence = { ...c.s.selfFence, finalLsn: e.finalLsn };
      fenceResult(c, true);
    },
  }),
  row({
    id: "selfFence.failed",
    from: ["*"],
    on: "dbFenced",
    guard: "fencing failed: the database could not be confirmed stopped",
    to: "unchanged",
    actions: "notify recoveryConfCreateError; report fenced as unconfirmed; retry the fence",
    reason:
      "the fence could not be confirmed: report it as failed, so the cluster treats this database as possibly writable",
    when: (c, e) => c.s.selfFence?.token === e.token,
    run: (c, e) => fenceResult(c, false, e.error),
  }),
  row({
    id: "fenceRetry.again",
    from: ["Idle"],
    on: "timer:fenceRetry",
    guard: "our fence is still unconfirmed and no fence runs",
    to: "unchanged",
    actions: "fenceDb again (pointing at the new master once known)",
    reason: "the database was not confirmed stopped: try to fence it again",
    when: (c) => c.s.fenceUnconfirmed && c.s.selfFence === null,
    run: (c) => {
      const token = c.token("fence");
      const m = c.s.knownMaster?.address;
      const newMaster = m !== undefined && m !== c.self ? m : null;
      c.s.selfFence = { token, purpose: "retry", stage: "fenceDb", replyTo: null, newMaster };
      c.act({ type: "fenceDb", token, newMaster });
    },
  }),
  row({
    id: "fenceRetry.stop",
    from: ["*"],
    on: "timer:fenceRetry",
    guard: "otherwise",
    to: "unchanged",
    actions: "none",
    reason: "the fence is confirmed (or we are no longer the fenced old master)",
    run: () => {},
  }),
  row({
    id: "script.dbFailure.ok",
    from: ["*"],
    on: "scriptDone",
    guard: "script.db.failure exit 0",
    to: "unchanged",
    actions: "notify executedPostDatabaseFailureScript",
    reason: "post-database failure script ran",
    when: (_c, e) => e.script === "dbFailure" && e.exitCode === 0,
    run: (c, e) =>
      c.notify("executedPostDatabaseFailureScript", {
        scriptName: c.s.config.scripts.dbFailure ?? "",
        scriptResults: e.output,
      }),
  }),
  row({
    id: "script.dbFailure.failed",
    from: ["*"],
    on: "scriptDone",
    guard: "script.db.failure non-zero exit",
    to: "unchanged",
    actions: "notify postDatabaseFailureScriptError",
    reason: "post-database failure script failed",
    when: (_c, e) => e.script === "dbFailure",
    run: (c, e) =>
      c.notify("postDatabaseFailureScriptError", {
        scriptName: c.s.config.scripts.dbFailure ?? "",
        exitCode: e.exitCode,
        scriptResults: e.output,
      }),
  }),
  row({
    id: "script.isolated.ok",
    from: ["*"],
    on: "scriptDone",
    guard: "script.master.isolated exit 0",
    to: "unchanged",
    actions: "notify executedMasterIsolationScript",
    reason: "master isolation script ran",
    when: (_c, e) => e.script === "masterIsolated" && e.exitCode === 0,
    run: (c, e) =>
      c.notify("executedMasterIsolationScript", {
        scriptName: c.s.config.scripts.masterIsolated ?? "",
        scriptResults: e.output,
      }),
  }),
  row({
    id: "script.isolated.failed",
    from: ["*"],
    on: "scriptDone",
    guard: "script.master.isolated non-zero exit",
    to: "unchanged",
    actions: "notify masterIsolationScriptFailed",
    reason: "master isolation script failed",
    when: (_c, e) => e.script === "masterIsolated",
    run: (c, e) =>
      c.notify("masterIsolationScriptFailed", {
        scriptName: c.s.config.scripts.masterIsolated ?? "",
        exitCode: e.exitCode,
        scriptResults: e.output,
      }),
  }),
];

/**
 * The fence is complete (VIP released, when there is one, and the database result in): a
 * confirmed stop runs the script and reports fenced; an unconfirmed one says so, reports the
 * fence as unconfirmed, and retries it.
 */
function fenceResult(c: Ctx, ok: boolean, error?: string): void {
  if (ok) {
    c.s.fenceUnconfirmed = false;
    if (c.s.selfFence?.purpose !== "retry") completeSelfFence(c);
    else {
      // A retried fence held: nothing else to run; tell the coordinator while nobody took over.
      c.s.selfFence = null;
      if (c.s.fencedForIsolation) reportFencedMaster(c);
    }
    return;
  }
  c.s.fenceUnconfirmed = true;
  // Said once; a retry that fails again changes nothing the cluster was told.
  if (c.s.selfFence?.purpose === "retry") c.s.selfFence = null;
  else {
    c.notify("recoveryConfCreateError", {
      nodeAddress: c.self,
      clusterName: c.s.config.clusterName,
      messageDetails: error ?? "",
    });
    completeSelfFence(c);
  }
  c.timer("fenceRetry", c.now + c.s.config.remoteTimeoutMs + c.s.config.messageSlackMs);
}
