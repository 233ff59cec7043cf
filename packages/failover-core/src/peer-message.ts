import type { Command, PeerMessage } from "./types.ts";

/**
 * What one field of a peer message may hold. A frame that passed the cluster's HMAC can still
 * come from an agent of another version or from a bug, and must not reach the engine half-formed.
 */
type Kind = "str" | "text" | "bool" | "num" | "role" | "db" | "reach" | "list" | "command";
interface Field {
  readonly kind: Kind;
  readonly optional?: true;
  readonly nullable?: true;
}

/**
 * One Field per field of every message type, no more and no less: adding a field or a message
 * to PeerMessage fails to compile until it is described here, so nothing the engine sends is
 * silently dropped on the way in.
 */
type Spec<M> = { readonly [F in Exclude<keyof M, "type">]-?: Field };
type Specs = { readonly [K in PeerMessage["type"]]: Spec<Extract<PeerMessage, { type: K }>> };

const f = (kind: Kind, extra: { optional?: true; nullable?: true } = {}): Field => ({ kind, ...extra });
const STR = f("str");
const OPT = { optional: true } as const;

const SPECS: Specs = {
  status: {
    role: f("role"),
    db: f("db"),
    master: f("str", { optional: true, nullable: true }),
    ask: f("bool", OPT),
    starting: f("bool", OPT),
    conflict: f("bool", OPT),
    sync: f("list", OPT),
    syncEpoch: f("num", OPT),
    syncSeq: f("num", OPT),
  },
  dbFailed: { role: f("role") },
  checkDb: { token: STR, target: STR, asMaster: f("bool", OPT) },
  checkDbReply: { token: STR, result: f("reach") },
  dbFailureVerdict: { token: STR, confirmed: f("bool") },
  fenced: { token: STR, unconfirmed: f("bool", OPT), finalLsn: f("str", OPT) },
  switchover: { token: STR, newMaster: f("str", OPT), clean: f("bool", OPT) },
  switchoverDone: { newMaster: STR },
  queryLsn: { token: STR },
  lsnReply: {
    token: STR,
    lsn: f("str", { nullable: true }),
    role: f("role"),
    timeline: f("num", { optional: true, nullable: true }),
    rebuild: f("bool", OPT),
    streaming: f("bool", OPT),
    replayed: f("str", { optional: true, nullable: true }),
    upstream: f("str", { optional: true, nullable: true }),
    lastMaster: f("bool", OPT),
    epoch: f("num", OPT),
  },
  promote: {
    token: STR,
    epoch: f("num"),
    oldMaster: f("str", { nullable: true }),
    checkMaster: f("bool"),
    restore: f("bool", OPT),
    atLsn: f("str", OPT),
    atTimeline: f("num", { optional: true, nullable: true }),
    forkTimeline: f("num", OPT),
    forkLsn: f("str", { optional: true, nullable: true }),
  },
  promotionResult: {
    token: STR,
    ok: f("bool"),
    reason: f("text"),
    next: f("bool", OPT),
    retry: f("bool", OPT),
  },
  checkPromotable: { token: STR, restore: f("bool", OPT) },
  promotableReply: { token: STR, ok: f("bool"), error: f("text", OPT), refused: f("bool", OPT) },
  notice: { text: f("text", { nullable: true }) },
  newMaster: {
    address: STR,
    epoch: f("num", OPT),
    forkTimeline: f("num", OPT),
    forkLsn: f("str", { optional: true, nullable: true }),
  },
  lists: { allowed: f("list"), priority: f("list") },
  command: { requestId: STR, command: f("command") },
  commandReply: { requestId: STR, ok: f("bool"), message: f("text") },
  stop: {},
  fencedMasterBack: { unconfirmed: f("bool", OPT) },
};

const ROLES = new Set(["Master", "Standby", "Witness", "Idle", "Promoting"]);
const DB = new Set(["UP", "DOWN", "UNKNOWN"]);
const REACH = new Set(["reachable", "unreachable", "unknown"]);
const MAX_STR = 1024;
const MAX_TEXT = 65536;
const MAX_LIST = 1000;

const isRecord = (v: unknown): v is Record<string, unknown> =>
  typeof v === "object" && v !== null && !Array.isArray(v);
const isStr = (v: unknown, max = MAX_STR): v is string => typeof v === "string" && v.length <= max;

function parseCommand(v: unknown): Command | string {
  if (!isRecord(v)) return "not an object";
  switch (v.kind) {
    case "promote": {
      if (typeof v.force !== "boolean") return "force is not a boolean";
      if (v.switchover === undefined) return { kind: "promote", force: v.force };
      const so = v.switchover;
      if (!isRecord(so) || (so.to !== null && !isStr(so.to))) return "switchover.to is not a string or null";
      return { kind: "promote", force: v.force, switchover: { to: so.to as string | null } };
    }
    case "resume":
      return { kind: "resume" };
    case "stopCluster":
      return { kind: "stopCluster" };
    case "removeNode":
      return isStr(v.address) ? { kind: "removeNode", address: v.address } : "address is not a string";
    case "addNode":
      if (!isStr(v.address)) return "address is not a string";
      if (v.priority === undefined) return { kind: "addNode", address: v.address };
      return Number.isInteger(v.priority)
        ? { kind: "addNode", address: v.address, priority: v.priority as number }
        : "priority is not an integer";
    default:
      return `unknown command kind ${JSON.stringify(String(v.kind)).slice(0, 40)}`;
  }
}

/** The value of one field, or a reason it is not acceptable. */
function parseField(kind: Kind, v: unknown): { ok: true; value: unknown } | { ok: false; why: string } {
  const bad = (why: string) => ({ ok: false as const, why });
  switch (kind) {
    case "str":
      return isStr(v) ? { ok: true, value: v } : bad(`not a string of at most ${MAX_STR} characters`);
    case "text":
      return isStr(v, MAX_TEXT)
        ? { ok: true, value: v }
        : bad(`not a string of at most ${MAX_TEXT} characters`);
    case "bool":
      return typeof v === "boolean" ? { ok: true, value: v } : bad("not a boolean");
    case "num":
      return typeof v === "number" && Number.isFinite(v)
        ? { ok: true, value: v }
        : bad("not a finite number");
    case "role":
      return typeof v === "string" && ROLES.has(v) ? { ok: true, value: v } : bad("not an agent role");
    case "db":
      return typeof v === "string" && DB.has(v) ? { ok: true, value: v } : bad("not a database status");
    case "reach":
      return typeof v === "string" && REACH.has(v) ? { ok: true, value: v } : bad("not a reachability");
    case "list":
      return Array.isArray(v) && v.length <= MAX_LIST && v.every((x) => isStr(x))
        ? { ok: true, value: [...v] }
        : bad(`not a list of at most ${MAX_LIST} strings`);
    case "command": {
      const c = parseCommand(v);
      return typeof c === "string" ? bad(c) : { ok: true, value: c };
    }
  }
}

/**
 * A failover message from a peer, checked field by field and rebuilt with only the fields the
 * engine knows; or the reason it is not one (for the log).
 */
export function parsePeerMessage(payload: unknown): PeerMessage | string {
  if (!isRecord(payload)) return "the payload is not an object";
  const type = payload.type;
  if (typeof type !== "string" || !Object.hasOwn(SPECS, type))
    return `unknown message type ${JSON.stringify(String(type)).slice(0, 40)}`;
  const spec = SPECS[type as PeerMessage["type"]] as Readonly<Record<string, Field>>;
  const out: Record<string, unknown> = { type };
  for (const [name, field] of Object.entries(spec)) {
    const v = payload[name];
    if (v === undefined) {
      if (field.optional) continue;
      return `${type}.${name} is missing`;
    }
    if (v === null) {
      if (!field.nullable) return `${type}.${name} is null`;
      out[name] = null;
      continue;
    }
    const r = parseField(field.kind, v);
    if (!r.ok) return `${type}.${name} is ${r.why}`;
    out[name] = r.value;
  }
  return out as PeerMessage;
}
