import { readFileSync } from "node:fs";
import type { ClusterSnapshot } from "@efm/failover-core";
import { hostOf } from "@efm/membership";
import { z } from "zod";
import type { ClusterStatus, NodeStatus } from "./admin/protocol.ts";

const stateSchema = z.object({ allowed: z.array(z.string()), priority: z.array(z.string()) });

/** The persisted allowed and priority lists, or null when there are none (or they are unreadable). */
export function readAgentState(path: string): { allowed: string[]; priority: string[] } | null {
  try {
    const r = stateSchema.safeParse(JSON.parse(readFileSync(path, "utf8")));
    return r.success ? r.data : null;
  } catch {
    return null;
  }
}

/** The engine's snapshot as the admin channel's ClusterStatus; addresses shown by host, as EFM does. */
export function statusFromSnapshot(
  snap: ClusterSnapshot,
  allowedHosts: readonly string[],
  voters: readonly string[],
): ClusterStatus {
  // An agent that left gracefully is out of the voter set: it is gone, not DOWN.
  const shown = snap.members.filter((m) => m.agent === "UP" || voters.includes(m.address));
  const nodes: NodeStatus[] = shown.map((m) => ({
    address: hostOf(m.address),
    type: m.role ?? "Idle",
    agent: m.agent,
    db: m.db,
    info: m.role === null && m.agent === "UP" ? "starting" : "",
  }));
  const messages: string[] = [];
  if (!snap.quorate) messages.push("This node is not in a majority view of the cluster.");
  if (snap.failoverDisabled) messages.push("Failover is disabled until the master agent is restarted.");
  if (snap.promoting) messages.push(`Promotion of ${hostOf(snap.promoting)} is in progress.`);
  if (snap.attention) messages.push(snap.attention);
  return {
    cluster: snap.clusterName,
    self: hostOf(snap.self),
    nodes,
    allowedNodes: [...allowedHosts],
    failoverPriority: snap.priority.map(hostOf),
    messages,
  };
}
