import {
  type EventFor,
  type TransitionRow,
  row,
  RESUME_STREAMING_WAIT_MS,
  RUNNING,
  clusterCommand,
  resumeAsRole,
  exitNotice,
} from "./rows.ts";

/** Rows of one concern (manual switchover (master side), commands (5.3) and exits), in the table's match order. */
export const commandRows: readonly TransitionRow[] = [
  // ---- manual switchover (4.1.4), master side ----
  row({
    id: "switchover.master",
    from: ["Master"],
    on: "message:switchover",
    guard: "from the coordinator",
    to: "Idle",
    actions: "release VIP, fence; report fenced",
    reason: "manual promotion: the master releases the VIP, fences its database and goes Idle",
    when: (c, e) => c.coordinator() === e.from,
    // `efm promote -switchover` asks for a clean stop whose final position comes back with `fenced`.
    run: (c, e) =>
      c.beginSelfFence(
        "switchover",
        { to: e.from, token: e.message.token },
        e.message.newMaster,
        e.message.clean === true && e.message.newMaster !== undefined,
      ),
  }),
  row({
    id: "switchover.ignore",
    from: ["*"],
    on: "message:switchover",
    guard: "otherwise",
    to: "unchanged",
    actions: "none",
    reason: "switchover request from a node that is not our coordinator, or we are not master",
    run: () => {},
  }),

  // ---- commands (5.3) ----
  row({
    id: "cmd.resume.notIdle",
    from: ["*"],
    on: "command:resume",
    guard: "agent not Idle",
    to: "unchanged",
    actions: "respond error",
    reason: "resume only applies to an Idle agent",
    when: (c) => c.s.phase !== "running" || c.s.role !== "Idle" || c.s.pendingResume !== null,
    run: (c, e) =>
      c.act({
        type: "respond",
        requestId: e.requestId,
        ok: false,
        message: "Agent is not Idle; nothing to resume.",
      }),
  }),
  row({
    id: "cmd.resume",
    from: ["Idle"],
    on: "command:resume",
    guard: "Idle with a local database",
    to: "unchanged",
    actions: "checkLocalDb",
    reason: "resume: check the local database is healthy first",
    when: (c) => !c.s.config.isWitness,
    run: (c, e) => {
      const token = c.token("resume");
      c.s.pendingResume = { requestId: e.requestId, stage: "db", token };
      c.act({ type: "checkLocalDb", token, timeoutMs: c.s.config.localTimeoutMs });
    },
  }),
  row({
    id: "resume.dbDown",
    from: ["Idle"],
    on: "localDbChecked",
    guard: "resume check failed",
    to: "Idle",
    actions: "respond error",
    reason: "cannot resume: the local database is not healthy",
    when: (c, e) => c.s.pendingResume?.token === e.token && !e.ok,
    run: (c) => {
      const r = c.s.pendingResume!;
      c.s.pendingResume = null;
      c.act({
        type: "respond",
        requestId: r.requestId,
        ok: false,
        message: "The local database is not running.",
      });
    },
  }),
  row({
    id: "resume.dbUp",
    from: ["Idle"],
    on: "localDbChecked",
    guard: "resume check succeeded",
    to: "unchanged",
    actions: "checkLocalRole",
    reason: "local database healthy: learn whether it is in recovery",
    when: (c, e) => c.s.pendingResume?.token === e.token,
    run: (c) => {
      c.s.pendingResume = { ...c.s.pendingResume!, stage: "role" };
      c.act({ type: "checkLocalRole" });
    },
  }),
  row({
    id: "resume.standby",
    from: ["Idle"],
    on: "localRoleChecked",
    guard: "resuming; database in recovery",
    to: "Standby",
    actions: "start monitoring; respond ok",
    reason: "resumed as a standby",
    when: (c, e) => c.s.pendingResume?.stage === "role" && e.result === "recovery" && !c.s.rebuildNeeded,
    run: (c) => resumeAsRole(c, "Standby", c.s.pendingResume!.requestId),
  }),
  row({
    id: "resume.rebuild.check",
    from: ["Idle"],
    on: "localRoleChecked",
    guard: "resuming; database in recovery; it was a fenced master (rebuild flag)",
    to: "unchanged",
    actions: "queryLsn: does the database stream from its upstream now?",
    reason:
      "a fenced ex-master resumes as a standby only once it follows the current master's timeline (rewound or re-cloned)",
    when: (c, e) => c.s.pendingResume?.stage === "role" && e.result === "recovery",
    run: (c) => {
      // A database just started needs a moment before its WAL receiver streams (PostgreSQL retries
      // every wal_retrieve_retry_interval, 5 s by default): ask again until local.timeout, capped
      // so that the operator's `efm resume` (answered within 30 s) hears the outcome.
      const until = c.now + Math.min(c.s.config.localTimeoutMs, RESUME_STREAMING_WAIT_MS);
      c.s.pendingResume = { ...c.s.pendingResume!, stage: "wal", until };
      c.act({ type: "queryLsn", token: c.s.pendingResume.token });
    },
  }),
  row({
    id: "resume.rebuild.ok",
    from: ["Idle"],
    on: "lsnQueried",
    guard:
      "resuming a fenced ex-master; its database streams from the running master (no older timeline than the cluster's)",
    to: "Standby",
    actions: "clear the rebuild flag (persisted); resume as a standby",
    reason:
      "the rebuilt database streams from the current master, so its history is the master's: it is a standby and a candidate again",
    // PostgreSQL only streams once the upstream's timeline history is compatible with the
    // standby's own; a database with WAL past the fork never gets there.
    when: (c, e) => {
      const m = c.s.knownMaster?.address;
      return (
        c.s.pendingResume?.stage === "wal" &&
        c.s.pendingResume.token === e.token &&
        e.streaming === true &&
        m !== undefined &&
        m !== c.self &&
        c.roleOf(m) === "Master"
      );
    },
    run: (c) => {
      c.s.rebuildNeeded = false;
      c.s.fencedForIsolation = false;
      resumeAsRole(c, "Standby", c.s.pendingResume!.requestId);
    },
  }),
  row({
    id: "resume.rebuild.wait",
    from: ["Idle"],
    on: "lsnQueried",
    guard: "resuming a fenced ex-master that does not stream yet, within the wait",
    to: "unchanged",
    actions: "ask again after local.period",
    reason: "the database may still be connecting to the master: ask again shortly",
    when: (c, e) =>
      c.s.pendingResume?.stage === "wal" &&
      c.s.pendingResume.token === e.token &&
      c.now + c.s.config.localPeriodMs <= (c.s.pendingResume.until ?? c.now),
    run: (c) => c.timer("resumeStreaming", c.now + c.s.config.localPeriodMs),
  }),
  row({
    id: "resume.rebuild.again",
    from: ["Idle"],
    on: "timer:resumeStreaming",
    guard: "still resuming a fenced ex-master",
    to: "unchanged",
    actions: "queryLsn again",
    reason: "ask again whether the database streams from its upstream",
    when: (c) => c.s.pendingResume?.stage === "wal",
    run: (c) => c.act({ type: "queryLsn", token: c.s.pendingResume!.token }),
  }),
  row({
    id: "resume.rebuild.stale",
    from: ["*"],
    on: "timer:resumeStreaming",
    guard: "otherwise",
    to: "unchanged",
    actions: "none",
    reason: "no resume waits for streaming any more",
    run: () => {},
  }),
  row({
    id: "resume.rebuild.refused",
    from: ["Idle"],
    on: "lsnQueried",
    guard: "resuming a fenced ex-master that does not stream from a running master",
    to: "Idle",
    actions: "respond error with the steps",
    reason: "a fenced ex-master that does not follow the current master stays out of the candidates",
    when: (c, e) => c.s.pendingResume?.stage === "wal" && c.s.pendingResume.token === e.token,
    run: (c) => {
      const r = c.s.pendingResume!;
      c.s.pendingResume = null;
      const m = c.s.knownMaster?.address;
      // The old master of a switchover joining by itself: nobody waits; it stays Idle for `efm resume`.
      if (r.requestId === "") return;
      c.act({
        type: "respond",
        requestId: r.requestId,
        ok: false,
        message:
          "This database was a master that fenced itself and may hold WAL the cluster discarded at the last " +
          `promotion. Rewind it (pg_rewind) or re-clone it from the current master${m && m !== c.self ? ` (${m})` : ""}, ` +
          "start it as a standby streaming from that master, then run resume again.",
      });
    },
  }),
  row({
    id: "resume.master.conflict",
    from: ["Idle"],
    on: "localRoleChecked",
    guard: "resuming; database not in recovery but another master exists",
    to: "Idle",
    actions: "respond error",
    reason: "refuse to resume as a second master",
    when: (c, e) =>
      c.s.pendingResume?.stage === "role" && e.result === "primary" && c.membersWithRole("Master").length > 0,
    run: (c) => {
      const r = c.s.pendingResume!;
      c.s.pendingResume = null;
      c.act({
        type: "respond",
        requestId: r.requestId,
        ok: false,
        message: "The local database is not in recovery but another master is running.",
      });
    },
  }),
  row({
    id: "resume.master",
    from: ["Idle"],
    on: "localRoleChecked",
    guard: "resuming; database not in recovery, no other master, majority view",
    to: "Master",
    actions: "assign the VIP; start monitoring; respond ok",
    reason: "resumed as the master",
    when: (c, e) => c.s.pendingResume?.stage === "role" && e.result === "primary" && c.quorate(),
    run: (c) => resumeAsRole(c, "Master", c.s.pendingResume!.requestId),
  }),
  row({
    id: "resume.failed",
    from: ["*"],
    on: "localRoleChecked",
    guard: "otherwise",
    to: "unchanged",
    actions: "respond error if resuming",
    reason: "cannot resume: database unreachable, or a master without a majority view",
    run: (c) => {
      const r = c.s.pendingResume;
      c.s.pendingResume = null;
      if (r)
        c.act({
          type: "respond",
          requestId: r.requestId,
          ok: false,
          message: "Could not resume monitoring.",
        });
    },
  }),
  row({
    id: "cmd.cluster.local",
    from: RUNNING,
    on: "command:*",
    guard: "this agent is the coordinator",
    to: "unchanged",
    actions: "handle the cluster command here",
    reason: "cluster commands are decided by the coordinator",
    when: (c) => c.isCoordinator(),
    run: (c, e: EventFor<"command">) => clusterCommand(c, e.requestId, c.self, e.command),
  }),
  row({
    id: "cmd.cluster.forward",
    from: RUNNING,
    on: "command:*",
    guard: "in a majority view, not the coordinator",
    to: "unchanged",
    actions: "forward to the coordinator",
    reason: "cluster commands are decided by the coordinator",
    when: (c) => c.quorate(),
    run: (c, e: EventFor<"command">) =>
      c.send(c.coordinator()!, { type: "command", requestId: e.requestId, command: e.command }),
  }),
  row({
    id: "cmd.noMajority",
    from: ["*"],
    on: "command:*",
    guard: "otherwise",
    to: "unchanged",
    actions: "respond error",
    reason: "this agent is not in a majority view: cluster commands cannot be decided",
    run: (c, e: EventFor<"command">) =>
      c.act({
        type: "respond",
        requestId: e.requestId,
        ok: false,
        message: "This agent is not part of a majority of the cluster.",
      }),
  }),
  row({
    id: "cmd.remote",
    from: RUNNING,
    on: "message:command",
    guard: "coordinator",
    to: "unchanged",
    actions: "handle the forwarded command",
    reason: "a member forwarded a cluster command",
    when: (c) => c.isCoordinator(),
    run: (c, e) => clusterCommand(c, e.message.requestId, e.from, e.message.command),
  }),
  row({
    id: "cmd.remote.refuse",
    from: ["*"],
    on: "message:command",
    guard: "otherwise",
    to: "unchanged",
    actions: "reply error",
    reason: "forwarded to a node that is no longer coordinator",
    run: (c, e) =>
      c.send(e.from, {
        type: "commandReply",
        requestId: e.message.requestId,
        ok: false,
        message: "Not the coordinator; retry.",
      }),
  }),
  row({
    id: "cmd.reply",
    from: ["*"],
    on: "message:commandReply",
    guard: "always",
    to: "unchanged",
    actions: "respond to the CLI",
    reason: "the coordinator answered a forwarded command",
    run: (c, e) =>
      c.act({
        type: "respond",
        requestId: e.message.requestId,
        ok: e.message.ok,
        message: e.message.message,
      }),
  }),
  row({
    id: "cc.promote",
    from: ["*"],
    on: "clusterCommand",
    guard: "efm promote",
    to: "unchanged",
    actions: "request a manual promotion (ignores auto.failover)",
    reason: "manual promotion requested (4.1.4)",
    when: (_c, e) => e.command.kind === "promote",
    run: (c, e) => {
      const force = e.command.kind === "promote" && e.command.force;
      const switchover = e.command.kind === "promote" ? e.command.switchover : undefined;
      c.raise({
        type: "promotionRequested",
        now: c.now,
        manual: true,
        force,
        oldMaster: null,
        request: { requestId: e.requestId, origin: e.origin },
        ...(switchover ? { switchover } : {}),
      });
    },
  }),
  row({
    id: "cc.addNode.invalid",
    from: ["*"],
    on: "clusterCommand",
    guard: "add-node with an empty address or a priority that is not a positive integer",
    to: "unchanged",
    actions: "reply error",
    reason: "invalid add-node arguments",
    when: (_c, e) =>
      e.command.kind === "addNode" &&
      (e.command.address.trim() === "" ||
        (e.command.priority !== undefined &&
          (!Number.isInteger(e.command.priority) || e.command.priority < 1))),
    run: (c, e) =>
      c.reply(e.origin, e.requestId, false, "add-node needs an address and a priority of 1 or more."),
  }),
  row({
    id: "cc.addNode",
    from: ["*"],
    on: "clusterCommand",
    guard: "add-node",
    to: "unchanged",
    actions: "update the allowed and priority lists; persist and broadcast",
    reason: "add the node to the allowed list (and the priority list at the given position)",
    when: (_c, e) => e.command.kind === "addNode",
    run: (c, e) => {
      if (e.command.kind !== "addNode") return;
      const { address, priority } = e.command;
      if (!c.s.allowed.includes(address)) c.s.allowed = [...c.s.allowed, address];
      if (priority !== undefined) {
        const rest = c.s.priority.filter((a) => a !== address);
        const at = Math.min(priority - 1, rest.length);
        c.s.priority = [...rest.slice(0, at), address, ...rest.slice(at)];
      }
      c.publishLists();
      c.reply(e.origin, e.requestId, true, `add-node signal sent to local agent.`);
    },
  }),
  row({
    id: "cc.removeNode.unknown",
    from: ["*"],
    on: "clusterCommand",
    guard: "remove-node of an address not in the allowed list",
    to: "unchanged",
    actions: "reply error",
    reason: "nothing to remove",
    when: (c, e) => e.command.kind === "removeNode" && !c.s.allowed.includes(e.command.address),
    run: (c, e) =>
      c.reply(e.origin, e.requestId, false, "That address is not in the allowed node host list."),
  }),
  row({
    id: "cc.removeNode",
    from: ["*"],
    on: "clusterCommand",
    guard: "remove-node",
    to: "unchanged",
    actions: "remove from the allowed and priority lists; persist and broadcast",
    reason: "the node may no longer join and is no longer a promotion candidate",
    when: (_c, e) => e.command.kind === "removeNode",
    run: (c, e) => {
      if (e.command.kind !== "removeNode") return;
      const address = e.command.address;
      c.s.allowed = c.s.allowed.filter((a) => a !== address);
      c.s.priority = c.s.priority.filter((a) => a !== address);
      c.publishLists();
      c.reply(e.origin, e.requestId, true, "remove-node signal sent to local agent.");
    },
  }),
  row({
    id: "cc.stopCluster",
    from: ["*"],
    on: "clusterCommand",
    guard: "stop-cluster",
    // The exit is stop.exit's, when this agent's own stop message arrives like everyone else's.
    to: "unchanged",
    actions: "broadcast stop; reply; send stop to self (stop.exit exits)",
    reason: "stop-cluster: every agent exits",
    when: (_c, e) => e.command.kind === "stopCluster",
    run: (c, e) => {
      c.broadcast({ type: "stop" });
      c.reply(e.origin, e.requestId, true, "stop-cluster signal sent to all agents.");
      if (e.origin !== c.self) c.send(e.origin, { type: "stop" });
      c.send(c.self, { type: "stop" });
    },
  }),
  row({
    id: "cc.resume",
    from: ["*"],
    on: "clusterCommand",
    guard: "resume reached the coordinator",
    to: "unchanged",
    actions: "reply error",
    reason: "resume is handled by the local agent, not the coordinator",
    run: (c, e) => c.reply(e.origin, e.requestId, false, "resume must be run on the Idle node."),
  }),
  row({
    id: "lists.update",
    from: ["*"],
    on: "message:lists",
    guard: "always",
    to: "unchanged",
    actions: "writeState",
    reason: "the coordinator published new allowed/priority lists",
    run: (c, e) => {
      c.s.allowed = e.message.allowed;
      c.s.priority = e.message.priority;
      c.act({ type: "writeState", allowed: e.message.allowed, priority: e.message.priority });
    },
  }),

  // ---- exits ----
  row({
    id: "stop.exit",
    from: ["*"],
    on: "message:stop",
    guard: "not already exited",
    to: "exited",
    actions: "notify agent exited; exit 0",
    reason: "stop-cluster: exiting",
    when: (c) => c.s.phase !== "exited",
    run: (c) => exitNotice(c, "stop-cluster"),
  }),
  row({
    id: "shutdown",
    from: ["*"],
    on: "shutdown",
    guard: "not already exited",
    to: "exited",
    actions: "notify agent exited; exit 0",
    reason: "agent stopped by the operator",
    when: (c) => c.s.phase !== "exited",
    run: (c) => exitNotice(c, "agent stopped"),
  }),
];
