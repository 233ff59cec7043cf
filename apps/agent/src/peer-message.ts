import type { PeerMessage } from "@efm/failover-core";
import { z } from "zod";

const role = z.enum(["Master", "Standby", "Witness", "Idle", "Promoting"]);
const db = z.enum(["UP", "DOWN", "UNKNOWN"]);
const reach = z.enum(["reachable", "unreachable", "unknown"]);
const str = z.string().max(1024);
const command = z.discriminatedUnion("kind", [
  z.object({ kind: z.literal("promote"), force: z.boolean() }),
  z.object({ kind: z.literal("resume") }),
  z.object({ kind: z.literal("addNode"), address: str, priority: z.number().int().optional() }),
  z.object({ kind: z.literal("removeNode"), address: str }),
  z.object({ kind: z.literal("stopCluster") }),
]);

/**
 * The failover messages agents exchange, checked field by field: a frame that passed the
 * cluster's HMAC can still come from an agent of another version or a bug, and must not reach
 * the engine half-formed.
 */
const peerMessage = z.discriminatedUnion("type", [
  z.object({
    type: z.literal("status"),
    role,
    db,
    master: str.nullable().optional(),
    ask: z.boolean().optional(),
    starting: z.boolean().optional(),
    conflict: z.boolean().optional(),
  }),
  z.object({ type: z.literal("dbFailed"), role }),
  z.object({ type: z.literal("checkDb"), token: str, target: str, asMaster: z.boolean().optional() }),
  z.object({ type: z.literal("checkDbReply"), token: str, result: reach }),
  z.object({ type: z.literal("dbFailureVerdict"), token: str, confirmed: z.boolean() }),
  z.object({ type: z.literal("fenced"), token: str }),
  z.object({ type: z.literal("switchover"), token: str, newMaster: str.optional() }),
  z.object({ type: z.literal("queryLsn"), token: str }),
  z.object({ type: z.literal("lsnReply"), token: str, lsn: str.nullable(), role }),
  z.object({
    type: z.literal("promote"),
    token: str,
    epoch: z.number(),
    oldMaster: str.nullable(),
    checkMaster: z.boolean(),
    restore: z.boolean().optional(),
  }),
  z.object({
    type: z.literal("promotionResult"),
    token: str,
    ok: z.boolean(),
    reason: z.string().max(65536),
    next: z.boolean().optional(),
  }),
  z.object({ type: z.literal("checkPromotable"), token: str, restore: z.boolean().optional() }),
  z.object({
    type: z.literal("promotableReply"),
    token: str,
    ok: z.boolean(),
    error: z.string().max(65536).optional(),
    refused: z.boolean().optional(),
  }),
  z.object({ type: z.literal("notice"), text: z.string().max(65536).nullable() }),
  z.object({ type: z.literal("newMaster"), address: str }),
  z.object({ type: z.literal("lists"), allowed: z.array(str).max(1000), priority: z.array(str).max(1000) }),
  z.object({ type: z.literal("command"), requestId: str, command }),
  z.object({
    type: z.literal("commandReply"),
    requestId: str,
    ok: z.boolean(),
    message: z.string().max(65536),
  }),
  z.object({ type: z.literal("stop") }),
  z.object({ type: z.literal("fencedMasterBack") }),
]);

type Parsed = z.infer<typeof peerMessage>;
// Drift guard: zod drops fields it does not know, so a field the engine adds to a message
// would silently never arrive. These fail to compile unless the schema has exactly the
// engine's message types and fields.
type FieldsOf<U, K> = U extends { type: K } ? keyof U : never;
type Fields<U extends { type: string }> = { [K in U["type"]]: FieldsOf<U, K> };
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
const sameFields: Same<Fields<Parsed>, Fields<PeerMessage>> = true;
const toEngine = (m: Parsed): PeerMessage => m;
void sameFields;
void toEngine;

/** A failover message from a peer, or null when it is not one. */
export function parsePeerMessage(payload: unknown): PeerMessage | null {
  const r = peerMessage.safeParse(payload);
  return r.success ? r.data : null;
}
