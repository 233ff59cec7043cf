import type { Ctx } from "../context.ts";
import { row, runningOtherMaster, type TransitionRow } from "./rows.ts";

/**
 * Guide 8.1 ("Master cannot ping local database"): a master whose database the others still reach
 * goes Idle and does not release the VIP until `efm resume`. It is still the master on record, not
 * fenced, and nobody else runs as master; its VIP is the cluster's, not a leftover.
 */
function keptByIdleMaster(c: Ctx): boolean {
  return (
    c.s.role === "Idle" &&
    c.s.knownMaster?.address === c.self &&
    !c.s.rebuildNeeded &&
    runningOtherMaster(c) === null
  );
}

/**
 * The VIP watchdog (guide 7's WARNING "Virtual IP address assigned to non-master node"): the agent
 * looks at this host's addresses every few seconds and feeds what it saw as `vipChecked`; these
 * rows decide. A VIP held by an agent that runs as anything but the master (or a candidate being
 * promoted) must go, or two hosts could answer on it: release it and tell the operator, who must
 * make sure the master holds it. The master's own VIP is never touched here: it is assigned when it
 * becomes master and released when it fences, and a master seen without it may be fencing. Nor is
 * the VIP of a master that went Idle because only it could not reach its database (guide 8.1).
 * Every other (state, vipChecked) pair is a generated stale/ignore row (otherwise.ts).
 */
export const vipWatchRows: readonly TransitionRow[] = [
  row({
    id: "vip.watch.release",
    from: ["Standby", "Witness", "Idle"],
    on: "vipChecked",
    guard:
      "the VIP is held on this host, no self-fence is already releasing it, and this is not a master Idle only because it cannot reach its database (8.1)",
    to: "unchanged",
    actions: "notify vipAssignedToNonMaster; releaseVip",
    reason: "the virtual IP is assigned to this non-master node: release it",
    // A fence in progress releases the VIP itself (side by side with the database stop): a
    // second release, and a warning about a VIP that is already going, would only mislead.
    when: (c, e) =>
      e.heldHere && Boolean(c.s.config.virtualIp) && c.s.selfFence === null && !keptByIdleMaster(c),
    run: (c) => {
      c.notify("vipAssignedToNonMaster", {});
      c.act({ type: "releaseVip", token: c.token("vipWatch"), vip: c.s.config.virtualIp! });
    },
  }),
  row({
    id: "vip.watch.released",
    from: ["*"],
    on: "vipDone",
    guard: "the watchdog's release",
    to: "unchanged",
    actions: "none (a failed release is logged by the agent; the next check tries again)",
    reason: "the watchdog released the virtual IP held by a non-master node",
    // Before the start-up/resume VIP rows, which would announce it as a regular release.
    when: (_c, e) => e.token.startsWith("vipWatch:"),
    run: () => {},
  }),
];
