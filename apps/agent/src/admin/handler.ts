import { randomUUID } from "node:crypto";
import { type Command, snapshot } from "@efm/failover-core";
import { hostOf, type Member } from "@efm/membership";
import { formatHostPort, parseHostPort } from "@efm/properties-parser";
import { AgentError } from "../errors.ts";
import type { EventLoop } from "../loop.ts";
import { statusFromSnapshot } from "../state.ts";
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
  return async (req) => {
    switch (req.command) {
      case "cluster-status":
        return statusFromSnapshot(
          snapshot(deps.loop.current),
          deps.member.config().allowed,
          deps.member.config().voters,
        );
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
        const address = resolveAddress(req.address, deps.self, known());
        await deps.member.allow(hostOf(address)).catch((err: Error) => {
          throw new AgentError("REFUSED", `the cluster did not accept ${hostOf(address)}: ${err.message}`);
        });
        return command(
          deps,
          { kind: "addNode", address, ...(req.priority ? { priority: req.priority } : {}) },
          timeout,
        );
      }
      case "set-priority": {
        const address = resolveAddress(req.address, deps.self, known());
        return command(deps, { kind: "addNode", address, priority: req.priority }, timeout);
      }
      case "remove-node": {
        const address = resolveAddress(req.address, deps.self, known());
        await deps.member.disallow(hostOf(address)).catch((err: Error) => {
          throw new AgentError("REFUSED", `the cluster did not remove ${hostOf(address)}: ${err.message}`);
        });
        return command(deps, { kind: "removeNode", address }, timeout);
      }
      case "promote":
        return command(deps, { kind: "promote", force: req.force }, 10 * 60_000);
      case "resume":
        return command(deps, { kind: "resume" }, timeout);
      case "stop-cluster":
        // Answer first: the agents (this one included) exit as soon as the stop spreads.
        setTimeout(() => void deps.stopCluster(), 50);
        return "stop-cluster signal sent to all agents.";
    }
  };
}
