import type { ClusterConfig, Frame, NodeId, View, ViewId } from "./types.ts";

// Frames are authenticated, but a member running a different version (or a bug) can still send
// nonsense; every field is checked before the protocol looks at it, so nothing can throw later.

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === "object" && v !== null && !Array.isArray(v);
const isStr = (v: unknown, max = 300): v is string => typeof v === "string" && v.length <= max;
const isNum = (v: unknown): v is number => typeof v === "number" && Number.isFinite(v);
const isStrArr = (v: unknown, max = 1000): v is string[] =>
  Array.isArray(v) && v.length <= max && v.every((s) => isStr(s));

/** True when `v` is a structurally valid view id. */
export function isViewId(v: unknown): v is ViewId {
  return isObj(v) && isNum(v.epoch) && v.epoch >= 0 && isStr(v.creator);
}
function isNodeId(v: unknown): v is NodeId {
  return isObj(v) && isStr(v.addr) && isStr(v.inc, 64);
}
function isView(v: unknown): v is View {
  return (
    isObj(v) &&
    isViewId(v.id) &&
    Array.isArray(v.members) &&
    v.members.length >= 1 &&
    v.members.length <= 1000 &&
    v.members.every(isNodeId) &&
    Array.isArray(v.subgroups) &&
    v.subgroups.length <= 1000 &&
    v.subgroups.every((g) => isStrArr(g))
  );
}
function isConfig(v: unknown): v is ClusterConfig {
  return isObj(v) && isNum(v.version) && v.version >= 0 && isStrArr(v.voters) && isStrArr(v.allowed);
}

/** Validate an untrusted message body; returns the message or a reason for dropping it. */
export function parseMsg(m: unknown): Frame | string {
  if (!isObj(m) || !isStr(m.t, 20)) return "not a message object";
  if (m.cid !== null && !isStr(m.cid, 200)) return `${String(m.t)} message without a valid cluster id`;
  const ok = ((): boolean => {
    switch (m.t) {
      case "discover":
      case "join":
      case "leave":
      case "stopCluster":
        return true;
      case "info":
        return (
          (m.viewId === null || isViewId(m.viewId)) &&
          (m.coord === null || isStr(m.coord)) &&
          isStrArr(m.members) &&
          typeof m.quorate === "boolean" &&
          isNum(m.cfgVersion) &&
          isNum(m.voterShare) &&
          typeof m.canFound === "boolean"
        );
      case "joinRefused":
        return isStr(m.reason);
      case "joinRedirect":
        return isStr(m.coord);
      case "view":
        return (
          isView(m.view) && isConfig(m.config) && isStrArr(m.left) && isStrArr(m.removed) && isNum(m.sentAt)
        );
      case "viewAck":
        return (
          isViewId(m.viewId) &&
          isNum(m.sentAt) &&
          Array.isArray(m.silent) &&
          m.silent.length <= 1000 &&
          m.silent.every((x) => isObj(x) && isStr(x.member) && isNum(x.ms) && x.ms >= 0)
        );
      case "cfgPropose":
      case "cfgCommit":
        return isConfig(m.config);
      case "cfgAck":
        return isNum(m.version) && isConfig(m.config);
      case "hb":
        return (
          isViewId(m.viewId) && isNum(m.sentAt) && (m.cfg === null || isConfig(m.cfg)) && isStrArr(m.sus)
        );
      case "suspects":
        return isStrArr(m.sus);
      case "hbAck":
        return isNum(m.sentAt);
      case "aya":
        return isNum(m.nonce);
      case "iaa":
        return isNum(m.nonce) && typeof m.member === "boolean";
      case "mergeReq":
        return isStr(m.mergeId);
      case "mergeRsp":
        return (
          isStr(m.mergeId) &&
          typeof m.ok === "boolean" &&
          (m.view === null || isView(m.view)) &&
          (m.config === null || isConfig(m.config)) &&
          typeof m.quorate === "boolean"
        );
      case "admin":
        return isStr(m.requestId) && (m.op === "allow" || m.op === "disallow") && isStr(m.host);
      case "adminRsp":
        return isStr(m.requestId) && typeof m.ok === "boolean" && (m.error === null || isStr(m.error, 2000));
      case "app":
        return "payload" in m;
      case "req":
      case "rsp":
        return isStr(m.id) && "payload" in m;
      default:
        return false;
    }
  })();
  return ok ? (m as unknown as Frame) : `malformed ${String(m.t)} message`;
}

/** Total order on view ids: epoch, then creator address. */
export function compareViewId(a: ViewId, b: ViewId): number {
  if (a.epoch !== b.epoch) return a.epoch < b.epoch ? -1 : 1;
  return compareAddr(a.creator, b.creator);
}

/** Same view id. */
export function sameViewId(a: ViewId | null, b: ViewId | null): boolean {
  return a !== null && b !== null && a.epoch === b.epoch && a.creator === b.creator;
}

/** Order of addresses: numerically by IPv4 octets and port where possible, else as strings. */
export function compareAddr(a: string, b: string): number {
  const ka = addrKey(a);
  const kb = addrKey(b);
  for (let i = 0; i < Math.min(ka.length, kb.length); i++) {
    const x = ka[i]!;
    const y = kb[i]!;
    if (x !== y) {
      if (typeof x === "number" && typeof y === "number") return x < y ? -1 : 1;
      return String(x) < String(y) ? -1 : 1;
    }
  }
  return ka.length - kb.length;
}
function addrKey(a: string): (number | string)[] {
  return a.split(/[.:]/).map((p) => (/^\d+$/.test(p) ? Number(p) : p));
}

/** The host part of an `ip:port` address (IPv6 in brackets is kept whole). */
export function hostOf(addr: string): string {
  const i = addr.lastIndexOf(":");
  if (i <= 0) return addr;
  const h = addr.slice(0, i);
  return h.startsWith("[") && h.endsWith("]") ? h.slice(1, -1) : h;
}
