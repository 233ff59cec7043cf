import { z } from "zod";
import type { DbQuery } from "../status-report.ts";

/** Commands of the admin channel; the mutating ones need the token (guide 4.1). */
export const PRIVILEGED = [
  "add-node",
  "remove-node",
  "set-priority",
  "promote",
  "resume",
  "stop-cluster",
] as const;
export const OPEN = ["cluster-status", "node-status"] as const;

const address = z.string().min(1).max(255);

/** One request: a line of JSON, at most MAX_REQUEST_BYTES. */
export const requestSchema = z.discriminatedUnion("command", [
  z.object({ command: z.literal("cluster-status"), token: z.string().optional() }),
  z.object({ command: z.literal("node-status"), token: z.string().optional() }),
  z.object({
    command: z.literal("add-node"),
    token: z.string(),
    address,
    priority: z.number().int().min(1).max(1000).optional(),
  }),
  z.object({ command: z.literal("remove-node"), token: z.string(), address }),
  z.object({
    command: z.literal("set-priority"),
    token: z.string(),
    address,
    priority: z.number().int().min(1).max(1000),
  }),
  z.object({
    command: z.literal("promote"),
    token: z.string(),
    force: z.boolean().default(false),
    // `efm promote -switchover [-sourcenode <address>]` (EFM 3.x+): a clean switchover.
    switchover: z.boolean().optional(),
    to: address.optional(),
  }),
  z.object({ command: z.literal("resume"), token: z.string() }),
  z.object({ command: z.literal("stop-cluster"), token: z.string() }),
]);
export type AdminRequest = z.infer<typeof requestSchema>;

export const MAX_REQUEST_BYTES = 64 * 1024;

/** A node's row of `cluster-status` (guide 4.2.1) and of `cluster-status-json` (5.3). */
export interface NodeStatus {
  address: string;
  type: "Master" | "Standby" | "Witness" | "Idle" | "Promoting";
  agent: "UP" | "DOWN" | "UNKNOWN";
  db: "UP" | "DOWN" | "UNKNOWN";
  info: string;
  /** Its start-up checks (guide 4.1.1) have not ended: the type is tentative. */
  starting?: boolean;
}

/** What the local agent knows of the cluster, and what it found querying each database. */
export interface ClusterStatus {
  cluster: string;
  self: string;
  nodes: NodeStatus[];
  allowedNodes: string[];
  failoverPriority: string[];
  messages: string[];
  /**
   * Each database of the report queried by the agent (guide 4.2.1 "Promote Status"): the agent
   * holds the database password, so the CLI never has to decrypt it.
   */
  databases?: DbQuery[];
  /** What weakens the cluster's security as the agent runs it (no cluster secret). */
  warnings?: string[];
}

/** Every reply: `ok` with a result, or an error with a stable code. */
export type AdminResponse =
  | { ok: true; result: unknown }
  | { ok: false; error: { code: string; message: string } };
