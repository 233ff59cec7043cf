import { randomUUID } from "node:crypto";
import { isIP } from "node:net";
import { type Command, snapshot } from "@efm/failover-core";
import { hostOf, type Member } from "@efm/membership";
import { formatHostPort, parseHostPort } from "@efm/properties-parser";
import { AgentError } from "../errors.ts";
import type { EventLoop } from "../loop.ts";
import { statusFromSnapshot } from "../state.ts";
import type { DbQuery } from "../status-report.ts";
import type { ClusterStatus } from "./protocol.ts";
import type { AdminHandler } from "./server.ts";

/** What the admin handler needs from the running agent. */
export interface HandlerDeps {
  cluster: string;
  /** Our `ip:port`. */
  self: string;
  member: Member;
  loop: EventLoop;
  pendingReplies: Map<string, (r: { ok: boolean; message: string }) => void>;
  stopCluster(): Promise<void>;
  /** Resolves when the start-up checks have ended (see RunningAgent.ready). */
  ready?: Promise<void>;
  /** Roles of members before they were lost (a dead witness stays a Witness in the status). */
  lastRoles?: ReadonlyMap<string, string>;
  /** How long a command sent during start-up waits for it; default 30 s. */
  startupWaitMs?: number;
  /** Queries each database of a cluster-status report, with the agent's credentials. */
  queryDatabases?: (status: ClusterStatus) => Promise<DbQuery[]>;
  /** Security warnings for cluster-status (no cluster secret). */
  warnings?: readonly string[];
}

/** The refusal of a command that arrived while the agent starts and did not finish in time. */
export const STILL_STARTING =
  "the agent is still starting: run the command again once 'efm cluster-status' no longer shows this node starting";

/**
 * An address the CLI may name: an IPv4 or IPv6 address, optionally with `:port` (4.1.3). The CLI
 * resolves host names before sending; anything else is refused here with the reason, so nothing
 * but an address ever reaches the allowed or priority lists.
 */
export function checkAddress(given: string): string | null {
  const hp = parseHostPort(given);
  const host = hp ? hp.host : given;
  if (isIP(host) !== 0) return null;
  return `"${given}" is not an IPv4 or IPv6 address${/^[\d.]+$/.test(host) ? "" : " (efm resolves host names before sending them)"}`;
}

/** The CLI names nodes by IP (5.3) or `ip:port` (4.1.3); the engine knows members as `ip:port`. */
export function resolveAddress(given: string, self: string, known: readonly string[]): string {
  if (parseHostPort(given)) return given;
  const match = known.find((a) => hostOf(a) === given);
  if (match) return match;
  // Not a member yet: assume it binds the same port as we do (the usual layout).
  return formatHostPort({ host: given, port: Number(self.slice(self.lastIndexOf(":") + 1)) });
}

/** Run a cluster command through the engine and wait for its answer. */
function command(deps: HandlerDeps, cmd: Command, timeoutMs: number): Promise<string> {
  const requestId = randomUUID();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      deps.pendingReplies.delete(requestId);
      reject(
        new AgentError("TIMEOUT", `no answer from the cluster within ${Math.round(timeoutMs / 1000)} s`),
      );
    }, timeoutMs);
    deps.pendingReplies.set(requestId, ({ ok, message }) => {
      clearTimeout(timer);
      if (ok) resolve(message);
      else reject(new AgentError("REFUSED", message));
    });
    deps.loop.dispatch({ type: "command", now: deps.loop.now(), requestId, command: cmd });
  });
}

/** Answers the requests of the admin channel. */
export function adminHandler(deps: HandlerDeps): AdminHandler {
  const known = () => [...(deps.member.view()?.members ?? []), ...deps.member.config().voters];
  const timeout = 60_000;

  /**
   * A command that changes the cluster waits for the start-up checks (bounded), then needs a
   * majority view; it is refused before anything is changed otherwise, so a refused command
   * never leaves a half-applied change (the allowed list grown, say).
   */
  async function whenSettled(needMajority = true): Promise<void> {
    if (deps.loop.current.phase !== "running" && deps.ready) {
      let timer: NodeJS.Timeout | undefined;
      const waited = await Promise.race([
        deps.ready.then(() => true),
        new Promise<boolean>((r) => {
          timer = setTimeout(() => r(false), deps.startupWaitMs ?? 30_000);
        }),
      ]);
      clearTimeout(timer);
      if (!waited) throw new AgentError("STARTING", STILL_STARTING);
    }
    if (deps.loop.current.phase !== "running") throw new AgentError("STARTING", STILL_STARTING);
    if (needMajority && !snapshot(deps.loop.current).quorate) {
      throw new AgentError("REFUSED", "This agent is not part of a majority of the cluster.");
    }
  }

  /** Refuse a node that cannot take a priority: not an address, not a member, or a witness. */
  function priorityTarget(given: string, mustBeMember: boolean): string {
    const bad = checkAddress(given);
    if (bad) throw new AgentError("BAD_REQUEST", bad);
    const address = resolveAddress(given, deps.self, known());
    const member = snapshot(deps.loop.current).members.find((m) => m.address === address);
    if (mustBeMember && member?.agent !== "UP") {
      throw new AgentError(
        "REFUSED",
        `${hostOf(address)} is not a running member of cluster ${deps.cluster}`,
      );
    }
    // The list orders the candidates for promotion (guide 4.1.3); the master is not one, and the
    // coordinator drops it from the list at once, so accepting it would print a list that is
    // already untrue.
    if (member?.role === "Master") {
      throw new AgentError(
        "REFUSED",
        `${hostOf(address)} is the master: only a standby can be in the standby priority list`,
      );
    }
    if (member?.role === "Witness" || deps.lastRoles?.get(address) === "Witness") {
      throw new AgentError(
        "REFUSED",
        `${hostOf(address)} is a witness: it has no database to promote and cannot be in the standby priority list`,
      );
    }
    return address;
  }

  /** What a list command changed, in the words of the status report. */
  function changed(before: { allowed: string[]; priority: string[] }, reply: string): string {
    const after = snapshot(deps.loop.current);
    const allowed = deps.member.config().allowed;
    const lines = [reply];
    const added = allowed.filter((a) => !before.allowed.includes(a));
    const removed = before.allowed.filter((a) => !allowed.includes(a));
    if (added.length > 0) lines.push(`Added to the allowed node host list: ${added.join(" ")}`);
    if (removed.length > 0) lines.push(`Removed from the allowed node host list: ${removed.join(" ")}`);
    const priority = after.priority.map(hostOf);
    if (priority.join(" ") !== before.priority.join(" ")) {
      lines.push(`Standby priority host list: ${priority.join(" ") || "(empty)"}`);
    }
    return lines.join("\n");
  }
  const lists = () => ({
    allowed: [...deps.member.config().allowed],
    priority: snapshot(deps.loop.current).priority.map(hostOf),
  });

  return async (req) => {
    switch (req.command) {
      case "cluster-status": {
        const status: ClusterStatus = statusFromSnapshot(
          snapshot(deps.loop.current),
          deps.member.config().allowed,
          deps.member.config().voters,
          deps.lastRoles,
        );
        return {
          ...status,
          ...(deps.queryDatabases ? { databases: await deps.queryDatabases(status) } : {}),
          ...(deps.warnings && deps.warnings.length > 0 ? { warnings: [...deps.warnings] } : {}),
        };
      }
      case "node-status": {
        const s = deps.loop.current;
        const healthy =
          s.phase === "running" &&
          s.role !== null &&
          s.role !== "Idle" &&
          (s.config.isWitness || s.db === "UP");
        return {
          address: hostOf(deps.self),
          type: s.role ?? "Idle",
          agent: "UP",
          db: s.config.isWitness ? "N/A" : s.db,
          phase: s.phase,
          healthy,
          reason: s.lastReason,
        };
      }
      case "add-node": {
        const bad = checkAddress(req.address);
        if (bad) throw new AgentError("BAD_REQUEST", bad);
        await whenSettled();
        const address = req.priority
          ? priorityTarget(req.address, false)
          : resolveAddress(req.address, deps.self, known());
        const before = lists();
        await deps.member.allow(hostOf(address)).catch((err: Error) => {
          throw new AgentError("REFUSED", `the cluster did not accept ${hostOf(address)}: ${err.message}`);
        });
        const reply = await command(
          deps,
          { kind: "addNode", address, ...(req.priority ? { priority: req.priority } : {}) },
          timeout,
        );
        return changed(before, reply);
      }
      case "set-priority": {
        const bad = checkAddress(req.address);
        if (bad) throw new AgentError("BAD_REQUEST", bad);
        await whenSettled();
        const address = priorityTarget(req.address, true);
        const before = lists();
        await command(deps, { kind: "addNode", address, priority: req.priority }, timeout);
        return changed(before, `set-priority signal sent: ${hostOf(address)} has priority ${req.priority}.`);
      }
      case "remove-node": {
        const bad = checkAddress(req.address);
        if (bad) throw new AgentError("BAD_REQUEST", bad);
        await whenSettled();
        const address = resolveAddress(req.address, deps.self, known());
        if (!deps.member.config().allowed.includes(hostOf(address))) {
          throw new AgentError("REFUSED", "That address is not in the allowed node host list.");
        }
        const before = lists();
        await deps.member.disallow(hostOf(address)).catch((err: Error) => {
          throw new AgentError("REFUSED", `the cluster did not remove ${hostOf(address)}: ${err.message}`);
        });
        // Like add-node and set-priority, say what changed (docs/operations.md promises it).
        return changed(before, await command(deps, { kind: "removeNode", address }, timeout));
      }
      case "promote": {
        if (req.switchover !== true) {
          if (req.to !== undefined) throw new AgentError("BAD_REQUEST", "a target (--to) needs --switchover");
          await whenSettled();
          return command(deps, { kind: "promote", force: req.force }, 10 * 60_000);
        }
        const bad = req.to === undefined ? null : checkAddress(req.to);
        if (bad) throw new AgentError("BAD_REQUEST", bad);
        await whenSettled();
        const to = req.to === undefined ? null : resolveAddress(req.to, deps.self, known());
        return command(deps, { kind: "promote", force: false, switchover: { to } }, 10 * 60_000);
      }
      case "resume":
        // Resume is this node's own business: it needs the start-up to have ended, not a majority.
        await whenSettled(false);
        return command(deps, { kind: "resume" }, timeout);
      case "stop-cluster":
        // Answer first: the agents (this one included) exit as soon as the stop spreads.
        setTimeout(() => void deps.stopCluster(), 50);
        return "stop-cluster signal sent to all agents.";
    }
  };
}
