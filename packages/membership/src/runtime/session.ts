import { createHash, createHmac, hkdfSync, randomBytes, timingSafeEqual } from "node:crypto";
import type { NodeId } from "../core/types.ts";
import { lengthPrefixed, MAC_BYTES, WIRE_VERSION } from "./frame.ts";

// Every connection starts with a two-frame handshake under the cluster key:
//
//   dialer   -> acceptor  hello   {v, t:"hello", cluster, from, to, nonce: Nd}
//   acceptor -> dialer    welcome {v, t:"welcome", cluster, from, to: dialer's id, nonce: Na, echo: Nd}
//
// Both nonces are fresh random 256-bit values. The session keys are HKDF of the cluster key with
// both nonces as salt and both identities (address and incarnation) as info, one key per
// direction; every later frame carries a sequence number that must be exactly the next one.
// So a captured frame is worthless anywhere else: another connection has other keys, the other
// direction has another key, and on the same connection its sequence number is already used.
// A replayed hello gets a welcome, but without the cluster key the replayer cannot produce the
// first session frame, and the acceptor treats the connection as unauthenticated until it does.

const HELLO_LABEL = Buffer.from("efm-hello-v2\0");
const WELCOME_LABEL = Buffer.from("efm-welcome-v2\0");
const NONCE_HEX = 64;

/** A fresh 256-bit nonce, hex. */
export function freshNonce(): string {
  return randomBytes(32).toString("hex");
}

/** The dialer's first frame. */
export interface Hello {
  readonly v: number;
  readonly t: "hello";
  readonly cluster: string;
  readonly from: NodeId;
  /** The address the dialer meant to reach (a hello for another member is refused). */
  readonly to: string;
  readonly nonce: string;
}

/** The acceptor's answer. */
export interface Welcome {
  readonly v: number;
  readonly t: "welcome";
  readonly cluster: string;
  readonly from: NodeId;
  /** The dialer's identity as the acceptor saw it in the hello. */
  readonly to: NodeId;
  readonly nonce: string;
  /** The dialer's nonce. */
  readonly echo: string;
}

const mac = (key: Buffer, label: Buffer, json: Buffer): Buffer =>
  createHmac("sha256", key).update(label).update(json).digest();

function seal(key: Buffer, label: Buffer, msg: object): Buffer {
  const json = Buffer.from(JSON.stringify(msg), "utf8");
  return lengthPrefixed(Buffer.concat([mac(key, label, json), json]));
}

/** Open a handshake frame body (MAC then JSON); a string says why it is refused. */
function open(key: Buffer, label: Buffer, frame: Buffer): Record<string, unknown> | string {
  const json = frame.subarray(MAC_BYTES);
  if (!timingSafeEqual(frame.subarray(0, MAC_BYTES), mac(key, label, json)))
    return "bad handshake MAC (another cluster, another password, or tampering)";
  try {
    const o: unknown = JSON.parse(json.toString("utf8"));
    if (typeof o !== "object" || o === null || Array.isArray(o)) return "handshake is not an object";
    return o as Record<string, unknown>;
  } catch {
    return "authenticated handshake is not JSON";
  }
}

const isNonce = (v: unknown): v is string => typeof v === "string" && /^[0-9a-f]{64}$/.test(v);
const isNodeId = (v: unknown): v is NodeId => {
  const o = v as Record<string, unknown> | null;
  return (
    typeof o === "object" &&
    o !== null &&
    typeof o.addr === "string" &&
    o.addr.length <= 300 &&
    typeof o.inc === "string" &&
    o.inc.length <= 64
  );
};

function common(o: Record<string, unknown>, t: string, cluster: string): string | null {
  if (o.v !== WIRE_VERSION)
    return `unsupported wire version ${String(o.v)} (this agent speaks ${WIRE_VERSION}; agents of different versions cannot form one cluster: stop the cluster and upgrade every agent)`;
  if (o.t !== t) return `expected a ${t} frame`;
  if (o.cluster !== cluster) return `frame for cluster ${JSON.stringify(o.cluster)}`;
  if (!isNodeId(o.from)) return "handshake without a sender";
  if (!isNonce(o.nonce) || (o.nonce as string).length !== NONCE_HEX) return "handshake without a nonce";
  return null;
}

/** Encode the dialer's hello. */
export function encodeHello(key: Buffer, cluster: string, from: NodeId, to: string, nonce: string): Buffer {
  const h: Hello = { v: WIRE_VERSION, t: "hello", cluster, from, to, nonce };
  return seal(key, HELLO_LABEL, h);
}

/** Check a hello frame body for `self`; a string says why it is refused. */
export function decodeHello(key: Buffer, cluster: string, self: string, frame: Buffer): Hello | string {
  const o = open(key, HELLO_LABEL, frame);
  if (typeof o === "string") return o;
  const bad = common(o, "hello", cluster);
  if (bad) return bad;
  if (o.to !== self) return `hello meant for ${JSON.stringify(o.to)}`;
  return o as unknown as Hello;
}

/** Encode the acceptor's welcome. */
export function encodeWelcome(
  key: Buffer,
  cluster: string,
  from: NodeId,
  hello: Hello,
  nonce: string,
): Buffer {
  const w: Welcome = {
    v: WIRE_VERSION,
    t: "welcome",
    cluster,
    from,
    to: hello.from,
    nonce,
    echo: hello.nonce,
  };
  return seal(key, WELCOME_LABEL, w);
}

/** Check a welcome frame body against the hello we sent; a string says why it is refused. */
export function decodeWelcome(
  key: Buffer,
  cluster: string,
  self: NodeId,
  dialed: string,
  ourNonce: string,
  frame: Buffer,
): Welcome | string {
  const o = open(key, WELCOME_LABEL, frame);
  if (typeof o === "string") return o;
  const bad = common(o, "welcome", cluster);
  if (bad) return bad;
  // A welcome that does not echo this connection's fresh nonce is a replay from another one.
  if (o.echo !== ourNonce) return "welcome does not answer our hello (replayed?)";
  const to = o.to as NodeId;
  if (!isNodeId(to) || to.addr !== self.addr || to.inc !== self.inc) return "welcome for another member";
  if ((o.from as NodeId).addr !== dialed) return `peer answered as ${(o.from as NodeId).addr}`;
  return o as unknown as Welcome;
}

/** One direction's key and next sequence number. */
interface Direction {
  readonly key: Buffer;
  seq: number;
}

/**
 * The session of one authenticated connection: `seal` numbers and MACs our frames, `open`
 * accepts only the peer's next frame in order.
 */
export class Session {
  private readonly tx: Direction;
  private readonly rx: Direction;
  constructor(txKey: Buffer, rxKey: Buffer) {
    this.tx = { key: txKey, seq: 0 };
    this.rx = { key: rxKey, seq: 0 };
  }

  /** Frame one message body. */
  seal(body: unknown): Buffer {
    const json = Buffer.from(JSON.stringify({ s: this.tx.seq++, b: body }), "utf8");
    const m = createHmac("sha256", this.tx.key).update(json).digest();
    return lengthPrefixed(Buffer.concat([m, json]));
  }

  /** Open the peer's next frame body: its body, or why the connection must close. */
  open(frame: Buffer): { ok: true; body: unknown } | { ok: false; reason: string } {
    const json = frame.subarray(MAC_BYTES);
    const want = createHmac("sha256", this.rx.key).update(json).digest();
    if (!timingSafeEqual(frame.subarray(0, MAC_BYTES), want))
      return { ok: false, reason: "bad session MAC (replayed, reflected or forged frame)" };
    let o: unknown;
    try {
      o = JSON.parse(json.toString("utf8"));
    } catch {
      return { ok: false, reason: "authenticated frame is not JSON" };
    }
    const f = o as { s?: unknown; b?: unknown } | null;
    if (typeof f !== "object" || f === null || !("b" in f))
      return { ok: false, reason: "frame without a body" };
    if (f.s !== this.rx.seq)
      return { ok: false, reason: `sequence number ${String(f.s)}, expected ${this.rx.seq}` };
    this.rx.seq++;
    return { ok: true, body: f.b };
  }
}

/**
 * The two directions' keys of a connection, bound to both nonces and both identities (so a
 * restarted member, with a new incarnation, never shares keys with its predecessor).
 */
export function sessionKeys(
  clusterKey: Buffer,
  cluster: string,
  dialer: NodeId,
  acceptor: NodeId,
  dialerNonce: string,
  acceptorNonce: string,
): { dialerToAcceptor: Buffer; acceptorToDialer: Buffer } {
  const salt = Buffer.from(dialerNonce + acceptorNonce, "hex");
  // HKDF's info is capped at 1024 bytes: bind the identities through their hash.
  const info = createHash("sha256")
    .update(JSON.stringify(["efm-session-v2", cluster, dialer.addr, dialer.inc, acceptor.addr, acceptor.inc]))
    .digest();
  const k = Buffer.from(hkdfSync("sha256", clusterKey, salt, info, 64));
  return { dialerToAcceptor: k.subarray(0, 32), acceptorToDialer: k.subarray(32) };
}
