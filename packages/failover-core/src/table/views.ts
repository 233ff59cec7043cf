import {
  type TransitionRow,
  row,
  RUNNING,
  adoptView,
  quorateView,
  fenceForIsolation,
  minorityNotice,
  reportFencedMaster,
} from "./rows.ts";

/** Rows of one concern (views, quorum and the master lease), in the table's match order. */
export const viewRows: readonly TransitionRow[] = [
  // ---- views, quorum and the master lease (8.6, DESIGN 4) ----
  row({
    id: "view.minority.master",
    from: ["Master", "Idle"],
    on: "viewInstalled",
    guard:
      "our database is the master's (Master, or Idle after 8.1 without fencing); view not quorate and the unseen voters could form a quorum",
    to: "Idle",
    actions: "release VIP, fence, script.master.isolated; notify subset disconnected",
    reason: "master isolated in a minority: fence before the majority may promote (8.6)",
    when: (c, e) => c.holdsMasterDb() && !e.view.quorate && c.othersCouldFormQuorum(e.view),
    run: (c, e) => {
      adoptView(c, e);
      fenceForIsolation(c, "isolated in a minority");
      minorityNotice(c);
    },
  }),
  row({
    id: "view.minority.candidate",
    from: ["Promoting"],
    on: "viewInstalled",
    guard: "view not quorate, database not yet promoted",
    to: "Standby",
    actions: "abort the promotion",
    reason: "lost the majority before promoting: a promotion only happens inside a majority view",
    when: (c, e) =>
      !e.view.quorate &&
      c.s.candidacy !== null &&
      ["vip", "pingServer", "master", "fence", "lease"].includes(c.s.candidacy.stage),
    run: (c, e) => {
      adoptView(c, e);
      c.abortCandidacy("lost the majority view before promoting");
      minorityNotice(c);
    },
  }),
  row({
    id: "view.minority",
    from: RUNNING,
    on: "viewInstalled",
    guard: "view not quorate",
    to: "unchanged",
    actions: "notify subset disconnected; ping the well-known server",
    reason: "in a minority: failover will not be attempted from here",
    when: (_c, e) => !e.view.quorate,
    run: (c, e) => {
      const wasQuorate = c.quorate();
      adoptView(c, e);
      if (wasQuorate) minorityNotice(c);
    },
  }),
  row({
    id: "view.changed.candidate",
    from: ["Promoting"],
    on: "viewInstalled",
    guard: "view changed (new epoch), database not yet promoted",
    to: "Standby",
    actions: "abort the promotion",
    reason: "the view changed under the promotion (a member came or went): abort, the coordinator re-decides",
    when: (c, e) =>
      c.s.candidacy !== null &&
      e.view.epoch !== c.s.candidacy.epoch &&
      ["vip", "pingServer", "master", "fence", "lease"].includes(c.s.candidacy.stage),
    run: (c, e) => {
      adoptView(c, e);
      c.abortCandidacy("view changed before promoting");
    },
  }),
  row({
    id: "view.quorate.fencedMaster",
    from: ["Idle"],
    on: "viewInstalled",
    guard: "view quorate; we fenced ourselves as an isolated master and nobody took over",
    to: "unchanged",
    actions: "tell the coordinator the old master is fenced",
    reason:
      "back in a majority after fencing: the coordinator may promote without waiting for our database to vanish",
    when: (c, e) => e.view.quorate && c.s.fencedForIsolation && c.s.selfFence === null,
    run: (c, e) => {
      quorateView(c, e);
      reportFencedMaster(c);
    },
  }),
  row({
    id: "view.quorate",
    from: RUNNING,
    on: "viewInstalled",
    guard: "view quorate",
    to: "unchanged",
    actions: "announce status; coordinator reviews size and standbys, reconciles after a delay",
    reason: "new majority view installed",
    when: (_c, e) => e.view.quorate,
    run: (c, e) => quorateView(c, e),
  }),
  row({
    id: "review.belowThree",
    from: RUNNING,
    on: "reviewSize",
    guard: "coordinator; fewer than three members, previously three or more",
    to: "unchanged",
    actions: "notify clusterBelowThreeNodes",
    reason: "the cluster dropped below three nodes: no full failover protection",
    when: (c) => c.members().length < 3 && c.s.previousViewSize >= 3,
    run: (c) => c.notify("clusterBelowThreeNodes", c.cluster()),
  }),
  row({
    id: "review.size.ok",
    from: RUNNING,
    on: "reviewSize",
    guard: "otherwise",
    to: "unchanged",
    actions: "none",
    reason: "cluster size is fine",
    run: () => {},
  }),
  row({
    id: "review.noStandby",
    from: RUNNING,
    on: "reviewStandbys",
    guard: "coordinator; there was a standby, now none",
    to: "unchanged",
    actions: "notify noStandbyAgent",
    reason: "the standbys have left the cluster",
    when: (c) => c.s.hadStandby && c.membersWithRole("Standby", "Promoting").length === 0,
    run: (c) => {
      c.s.hadStandby = false;
      c.notify("noStandbyAgent", c.cluster());
    },
  }),
  row({
    id: "review.standbys.ok",
    from: RUNNING,
    on: "reviewStandbys",
    guard: "otherwise",
    to: "unchanged",
    actions: "none",
    reason: "standby count reviewed",
    run: (c) => {
      if (c.membersWithRole("Standby", "Promoting").length > 0) c.s.hadStandby = true;
    },
  }),
  row({
    id: "isolation.pingFailed",
    from: RUNNING,
    on: "pingServerPinged",
    guard: "minority and the well-known server is unreachable",
    to: "unchanged",
    actions: "notify nodesIsolated",
    reason: "this node appears isolated from the network",
    when: (c, e) => e.token.startsWith("isolation:") && !e.reachable && !c.quorate(),
    run: (c) => {
      c.s.isolated = true;
      c.notify("nodesIsolated", { clusterName: c.s.config.clusterName, nodeName: c.others().join(" ") });
    },
  }),
  row({
    id: "isolation.pingOk",
    from: RUNNING,
    on: "pingServerPinged",
    guard: "isolation probe: server reachable or quorum back",
    to: "unchanged",
    actions: "none",
    reason: "the well-known server is reachable: the network is not isolated",
    when: (_c, e) => e.token.startsWith("isolation:"),
    run: () => {},
  }),
  row({
    id: "quorum.lost.master",
    from: ["Master", "Idle"],
    on: "quorumLost",
    guard:
      "our database is the master's (Master, or Idle after 8.1 without fencing); the unseen voters could form a quorum",
    to: "Idle",
    actions: "release VIP, fence, script.master.isolated",
    reason: "master lost the majority: fence before the majority may promote",
    when: (c) => c.holdsMasterDb() && c.quorumWithoutSelfPossible(),
    run: (c) => {
      fenceForIsolation(c, "quorum lost");
      minorityNotice(c);
    },
  }),
  row({
    id: "quorum.lost",
    from: RUNNING,
    on: "quorumLost",
    guard: "otherwise",
    to: "unchanged",
    actions: "none",
    reason: "quorum lost: no failover decisions from this side",
    run: (c) => {
      if (c.s.view) c.s.view = { ...c.s.view, quorate: false };
    },
  }),
  row({
    id: "quorum.gained",
    from: RUNNING,
    on: "quorumGained",
    guard: "always",
    to: "unchanged",
    actions: "none",
    reason: "quorum regained",
    run: (c) => {
      if (c.s.view) c.s.view = { ...c.s.view, quorate: true };
    },
  }),
  row({
    id: "lease.valid.candidate",
    from: ["Promoting"],
    on: "leaseValid",
    guard:
      "our promote waits for a renewed lease (it lapsed after the checks); the view is the candidacy's and quorate",
    to: "unchanged",
    actions: "re-arm the lease timer; promote the database",
    reason:
      "a majority hears us again in the view the promotion was decided in: go on with the promote instead of a new round",
    // Invariant: the candidate promotes only with a valid majority lease at that moment, in the
    // view the coordinator decided in (a new view aborts: view.changed.candidate).
    when: (c, e) =>
      c.s.candidacy?.stage === "lease" &&
      c.quorate() &&
      c.s.view?.epoch === c.s.candidacy.epoch &&
      e.now < Math.max(c.s.leaseUntil ?? e.until, e.until),
    run: (c, e) => {
      c.s.leaseUntil = Math.max(c.s.leaseUntil ?? e.until, e.until);
      c.armLease();
      c.adoptStandbys();
      c.advanceCandidacy("lease");
    },
  }),
  row({
    id: "lease.regained.fencedMaster",
    from: ["Idle"],
    on: "leaseValid",
    guard:
      "our lease had lapsed; view quorate; we fenced ourselves as an isolated master, the fence is done and nobody took over",
    to: "unchanged",
    actions: "renew the lease; tell the coordinator the old master is fenced",
    reason:
      "a majority hears us again after fencing: the coordinator may promote now (the report we sent while cut off was lost or came before it could act)",
    // Invariant (liveness): a master fenced by a cut shorter than the detection window (its lease L
    // is shorter than the silence that removes a member) is never removed, so no view change
    // re-sends its report (view.quorate.fencedMaster). The report it sent while cut off was lost, or,
    // when it is the coordinator itself, met its own lapsed lease; the reminder came only after
    // promotionTimeoutMs, and the cluster stayed without a master that long.
    when: (c) => c.s.fencedForIsolation && c.s.selfFence === null && !c.leaseValid() && c.quorate(),
    run: (c, e) => {
      c.s.leaseUntil = Math.max(c.s.leaseUntil ?? e.until, e.until);
      c.armLease();
      c.adoptStandbys();
      reportFencedMaster(c);
    },
  }),
  row({
    id: "lease.valid",
    from: ["*"],
    on: "leaseValid",
    guard: "always",
    to: "unchanged",
    actions: "master re-arms the lease timer",
    reason: "a majority heard us: lease renewed",
    run: (c, e) => {
      c.s.leaseUntil = Math.max(c.s.leaseUntil ?? e.until, e.until);
      c.armLease();
      // Standbys that announced themselves before we could coordinate join the list now.
      c.adoptStandbys();
    },
  }),
  row({
    id: "lease.lost.master",
    from: ["Master", "Idle"],
    on: "leaseLost",
    guard:
      "our database is the master's (Master, or Idle after 8.1 without fencing); a quorum without us is possible (three or more voters)",
    to: "Idle",
    actions: "release VIP, fence, script.master.isolated",
    reason: "master lease lost: fence before the majority may promote (DESIGN 4 safety rule)",
    when: (c) => c.holdsMasterDb() && c.quorumWithoutSelfPossible(),
    run: (c) => {
      fenceForIsolation(c, "lease lost");
      minorityNotice(c);
    },
  }),
  row({
    id: "lease.lost.candidate",
    from: ["Promoting"],
    on: "leaseLost",
    guard: "database not yet promoted",
    to: "unchanged",
    actions: "none: the checks go on; the promote waits for a renewed lease",
    reason:
      "lost the majority's acknowledgements for a moment before promoting: the checks only read, and the promote itself needs the lease again (Ctx.advanceCandidacy)",
    when: (c) =>
      c.s.candidacy !== null &&
      ["vip", "pingServer", "master", "fence", "lease"].includes(c.s.candidacy.stage),
    run: () => {},
  }),
  row({
    id: "candidateLease.expired",
    from: ["Promoting"],
    on: "timer:candidateLease",
    guard: "our promote still waits for a renewed lease",
    to: "Standby",
    actions: "abort the promotion (the coordinator looks again once a lease can be back)",
    reason: "no majority acknowledged us within a lease length: a promotion needs a majority that hears us",
    when: (c, e) => c.s.candidacy?.stage === "lease" && e.name === `candidateLease:${c.s.candidacy.token}`,
    run: (c) => c.abortCandidacy("lease expired before promoting", undefined, false, true),
  }),
  row({
    id: "lease.lost",
    from: ["*"],
    on: "leaseLost",
    guard: "otherwise",
    to: "unchanged",
    actions: "none",
    reason: "lease lost but no quorum can form without us (or not master): keep the role",
    run: () => {},
  }),
  row({
    id: "lease.expired",
    from: ["Master", "Idle"],
    on: "timer:lease",
    guard:
      "our database is the master's (Master, or Idle after 8.1 without fencing); no majority heard for L and a quorum without us is possible",
    to: "Idle",
    actions: "release VIP, fence, script.master.isolated",
    reason: "master has not heard from a majority for L: fence itself (DESIGN 4 safety rule)",
    when: (c, e) =>
      c.holdsMasterDb() &&
      (c.s.leaseUntil === null || e.now >= c.s.leaseUntil) &&
      c.quorumWithoutSelfPossible(),
    run: (c) => {
      fenceForIsolation(c, "lease expired");
      minorityNotice(c);
    },
  }),
  row({
    id: "lease.timer",
    from: ["*"],
    on: "timer:lease",
    guard: "otherwise",
    to: "unchanged",
    actions: "re-arm if master",
    reason: "lease still valid",
    run: (c) => c.armLease(),
  }),
];
