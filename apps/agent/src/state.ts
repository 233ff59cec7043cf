import { accessSync, closeSync, constants, fsyncSync, openSync, readFileSync, writeSync } from "node:fs";
import { dirname } from "node:path";
import type { ClusterSnapshot } from "@efm/failover-core";
import { hostOf, type PersistedState } from "@efm/membership";
import { type HostPort, printNodes, writeNodes } from "@efm/properties-parser";
import { z } from "zod";
import type { ClusterStatus, NodeStatus } from "./admin/protocol.ts";
import { AgentError } from "./errors.ts";

const stateSchema = z.object({ allowed: z.array(z.string()), priority: z.array(z.string()) });
const membershipSchema = z.object({
  config: z.object({
    version: z.number().int().nonnegative(),
    voters: z.array(z.string()),
    allowed: z.array(z.string()),
  }),
  lastEpoch: z.number().nonnegative(),
  // The cluster id (carried in every frame); absent in states written before cluster ids.
  clusterId: z.string().max(300).nullable().optional(),
});

/**
 * Read a state file: null when it does not exist (a first start), its parsed content when it
 * is valid, and an error naming the file otherwise. An unreadable or corrupt file must stop the
 * start: carrying on from the members file instead would undo a remove-node, say.
 */
function readStrict<T>(path: string, what: string, schema: z.ZodType<T>): T | null {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw new AgentError(
      "IO",
      `cannot read the ${what} file ${path}: ${(err as Error).message}; the agent will not start without it (restore it, or fix its permissions for the efm user)`,
      { cause: err },
    );
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new AgentError(
      "IO",
      `the ${what} file ${path} is corrupt (not JSON: ${(err as Error).message}); the agent will not start from the members file instead. Restore it from a backup, or delete it only if this node should rejoin as if new`,
      { cause: err },
    );
  }
  const r = schema.safeParse(json);
  if (!r.success) {
    const where = r.error.issues.map((i) => `${i.path.join(".") || "top level"}: ${i.message}`).join("; ");
    throw new AgentError(
      "IO",
      `the ${what} file ${path} is corrupt (${where}); the agent will not start from the members file instead. Restore it from a backup, or delete it only if this node should rejoin as if new`,
    );
  }
  return r.data;
}

/** The persisted allowed and priority lists; null when the file does not exist; throws when it is unreadable or corrupt. */
export function readAgentState(path: string): { allowed: string[]; priority: string[] } | null {
  return readStrict(path, "state", stateSchema);
}

/** The persisted membership state (voters, allowed hosts, last epoch); null when missing; throws when unreadable or corrupt. */
export function readMembershipState(path: string): PersistedState | null {
  return readStrict(path, "membership state", membershipSchema);
}

/**
 * Rewrite the members (.nodes) file. Atomically (temporary file and rename) when the agent may
 * write its directory; when it may not (the configuration directory is root's) but may write
 * the file, the file is rewritten in place and synced. Throws, naming the file, otherwise.
 */
export function rewriteMembersFile(path: string, nodes: readonly HostPort[]): void {
  let dirWritable = true;
  try {
    accessSync(dirname(path), constants.W_OK);
  } catch {
    dirWritable = false;
  }
  if (dirWritable) {
    writeNodes(path, nodes);
    return;
  }
  let fd: number;
  try {
    fd = openSync(path, constants.O_WRONLY | constants.O_TRUNC | constants.O_NOFOLLOW);
  } catch (err) {
    throw new AgentError(
      "IO",
      `cannot rewrite the members file ${path}: neither its directory nor the file is writable by this agent's user (${(err as Error).message})`,
      { cause: err },
    );
  }
  try {
    const buf = Buffer.from(printNodes(nodes), "utf8");
    let off = 0;
    while (off < buf.length) off += writeSync(fd, buf, off, buf.length - off);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** The engine's snapshot as the admin channel's ClusterStatus; addresses shown by host, as EFM does. */
export function statusFromSnapshot(
  snap: ClusterSnapshot,
  allowedHosts: readonly string[],
  voters: readonly string[],
  /** Roles members had before they were lost (`ip:port` -> role), see `statusFromSnapshot`. */
  lastRoles: ReadonlyMap<string, string> = new Map(),
): ClusterStatus {
  // An agent that left gracefully is out of the voter set: it is gone, not DOWN.
  const shown = snap.members.filter((m) => m.agent === "UP" || voters.includes(m.address));
  const nodes: NodeStatus[] = shown.map((m) => {
    // A lost agent has no role any more; a witness stays a Witness (its agent DOWN): it has no
    // database, and showing it Idle would suggest one that is down.
    const type = m.role ?? (lastRoles.get(m.address) === "Witness" ? "Witness" : "Idle");
    const starting = m.agent === "UP" && m.starting;
    return {
      address: hostOf(m.address),
      type,
      agent: m.agent,
      db: m.db,
      info: starting
        ? "starting"
        : m.address === snap.self && snap.rejoin
          ? `rejoining ${hostOf(snap.rejoin.master)}`
          : m.address === snap.self && snap.rejoinProblem
            ? "rejoin refused"
            : "",
      ...(starting ? { starting: true } : {}),
    };
  });
  const messages: string[] = [];
  if (!snap.quorate) messages.push("This node is not in a majority view of the cluster.");
  if (snap.failoverDisabled) messages.push("Failover is disabled until the master agent is restarted.");
  if (snap.promoting) messages.push(`Promotion of ${hostOf(snap.promoting)} is in progress.`);
  if (snap.attention) messages.push(snap.attention);
  // Issue 16: why this old master could not rejoin (also notified as rejoinFailed).
  if (snap.rejoinProblem) messages.push(snap.rejoinProblem);
  // synchronous.mode: which standbys may be promoted automatically (docs/operations.md).
  if (snap.syncStandbys !== undefined)
    messages.push(
      snap.syncStandbys.length > 0
        ? `Synchronous standbys (the only ones a failover may promote): ${snap.syncStandbys.map(hostOf).join(", ")}.`
        : "Synchronous standbys: none published (a failover may promote any standby).",
    );
  return {
    cluster: snap.clusterName,
    self: hostOf(snap.self),
    nodes,
    allowedNodes: [...allowedHosts],
    failoverPriority: snap.priority.map(hostOf),
    messages,
  };
}
