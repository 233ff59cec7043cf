import { randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { deriveClusterKey, FrameDecoder, lengthPrefixed, PRE_AUTH_MAX_BYTES } from "./frame.ts";
import {
  decodeHello,
  decodeWelcome,
  encodeHello,
  encodeWelcome,
  freshNonce,
  Session,
  sessionKeys,
} from "./session.ts";

const key = deriveClusterKey("efm", "pw");
const A = { addr: "10.0.0.1:7800", inc: "aa" };
const B = { addr: "10.0.0.2:7800", inc: "bb" };
/** The body of the one frame in `bytes` (drops the length prefix). */
const body = (bytes: Buffer): Buffer => {
  const r = new FrameDecoder(1 << 20).push(bytes);
  expect(r.fault).toBeNull();
  expect(r.frames).toHaveLength(1);
  return r.frames[0]!;
};

/** A full handshake between A (dialer) and B (acceptor): both sides' sessions. */
function handshake(): { a: Session; b: Session } {
  const na = freshNonce();
  const hello = decodeHello(key, "efm", B.addr, body(encodeHello(key, "efm", A, B.addr, na)));
  if (typeof hello === "string") throw new Error(hello);
  const nb = freshNonce();
  const welcome = decodeWelcome(key, "efm", A, B.addr, na, body(encodeWelcome(key, "efm", B, hello, nb)));
  if (typeof welcome === "string") throw new Error(welcome);
  const ka = sessionKeys(key, "efm", A, welcome.from, na, welcome.nonce);
  const kb = sessionKeys(key, "efm", hello.from, B, hello.nonce, nb);
  return {
    a: new Session(ka.dialerToAcceptor, ka.acceptorToDialer),
    b: new Session(kb.acceptorToDialer, kb.dialerToAcceptor),
  };
}

describe("frame decoder", () => {
  it("splits frames across arbitrary chunking", () => {
    const f1 = lengthPrefixed(randomBytes(40));
    const f2 = lengthPrefixed(randomBytes(300));
    const bytes = Buffer.concat([f1, f2]);
    for (const step of [1, 3, 7, 64, bytes.length]) {
      const d = new FrameDecoder(1 << 20);
      const got: Buffer[] = [];
      for (let i = 0; i < bytes.length; i += step) got.push(...d.push(bytes.subarray(i, i + step)).frames);
      expect(got.map((b) => b.toString("hex"))).toEqual(
        [f1.subarray(4), f2.subarray(4)].map((b) => b.toString("hex")),
      );
      expect(d.pending).toBe(0);
    }
  });

  it("holds a trickled frame's chunks without joining them until it is complete", () => {
    const d = new FrameDecoder(1 << 20);
    const frame = lengthPrefixed(randomBytes(100_000));
    // Count the bytes copied: a decoder that joins per chunk copies ~n^2/2 bytes here.
    let copied = 0;
    const realConcat = Buffer.concat;
    const realCopy = Buffer.prototype.copy;
    Buffer.concat = ((list: readonly Uint8Array[], n?: number) => {
      copied += list.reduce((s, b) => s + b.length, 0);
      return realConcat(list, n);
    }) as typeof Buffer.concat;
    Buffer.prototype.copy = function (this: Buffer, ...args: Parameters<Buffer["copy"]>) {
      const k = realCopy.apply(this, args);
      copied += k;
      return k;
    };
    let out: Buffer[] = [];
    try {
      for (let i = 0; i < frame.length; i += 100) out = out.concat(d.push(frame.subarray(i, i + 100)).frames);
    } finally {
      Buffer.concat = realConcat;
      Buffer.prototype.copy = realCopy;
    }
    expect(out).toHaveLength(1);
    expect(out[0]!.equals(frame.subarray(4))).toBe(true);
    expect(copied).toBeLessThanOrEqual(2 * frame.length);
  });

  it("closes on a length outside the limit, and the pre-auth limit is a few KiB", () => {
    const big = Buffer.alloc(4);
    big.writeUInt32BE(PRE_AUTH_MAX_BYTES + 1);
    const d = new FrameDecoder(PRE_AUTH_MAX_BYTES);
    expect(d.push(big).fault?.kind).toBe("close");
    // Once failed, the stream stays failed.
    expect(d.push(lengthPrefixed(randomBytes(40))).fault?.kind).toBe("close");
    const d2 = new FrameDecoder(PRE_AUTH_MAX_BYTES);
    d2.setLimit(1 << 20);
    expect(d2.push(big).fault).toBeNull();
    const tiny = Buffer.alloc(4);
    tiny.writeUInt32BE(3);
    expect(new FrameDecoder(1 << 20).push(tiny).fault?.kind).toBe("close");
  });
});

describe("handshake and sessions", () => {
  it("derives different cluster keys for another cluster name or password", () => {
    expect(deriveClusterKey("efm", "pw").equals(deriveClusterKey("efm2", "pw"))).toBe(false);
    expect(deriveClusterKey("efm", "pw").equals(deriveClusterKey("efm", "pw2"))).toBe(false);
  });

  it("carries messages both ways in order", () => {
    const { a, b } = handshake();
    const r1 = b.open(body(a.seal({ t: "hb", n: 1 })));
    const r2 = b.open(body(a.seal({ t: "hb", n: 2 })));
    const r3 = a.open(body(b.seal({ t: "hbAck" })));
    expect([r1, r2, r3]).toEqual([
      { ok: true, body: { t: "hb", n: 1 } },
      { ok: true, body: { t: "hb", n: 2 } },
      { ok: true, body: { t: "hbAck" } },
    ]);
  });

  it("refuses a replayed, reordered or reflected frame", () => {
    const { a, b } = handshake();
    const f0 = body(a.seal({ t: "admin", requestId: "x", op: "disallow", host: "10.0.0.3" }));
    const f1 = body(a.seal({ t: "hb" }));
    expect(b.open(f0).ok).toBe(true);
    expect(b.open(f0)).toEqual({ ok: false, reason: "sequence number 0, expected 1" });
    // The frame reflected back to its sender fails: each direction has its own key.
    expect(a.open(f1).ok).toBe(false);
    // A frame captured on one connection is worthless on the next one between the same members.
    const next = handshake();
    expect(next.b.open(f0).ok).toBe(false);
  });

  it("refuses a hello under another key, for another member or cluster", () => {
    const n = freshNonce();
    const other = deriveClusterKey("efm", "other");
    expect(decodeHello(key, "efm", B.addr, body(encodeHello(other, "efm", A, B.addr, n)))).toMatch(
      /bad handshake MAC/,
    );
    expect(decodeHello(key, "efm", B.addr, body(encodeHello(key, "efm", A, "10.0.0.9:7800", n)))).toMatch(
      /meant for/,
    );
    expect(decodeHello(key, "efm", B.addr, body(encodeHello(key, "x", A, B.addr, n)))).toBe(
      'frame for cluster "x"',
    );
    expect(decodeHello(key, "efm", B.addr, randomBytes(80))).toMatch(/bad handshake MAC/);
  });

  it("refuses a welcome replayed from an earlier connection", () => {
    const old = freshNonce();
    const hello = decodeHello(key, "efm", B.addr, body(encodeHello(key, "efm", A, B.addr, old)));
    if (typeof hello === "string") throw new Error(hello);
    const captured = body(encodeWelcome(key, "efm", B, hello, freshNonce()));
    // A's next connection has a fresh nonce: the old welcome does not answer it.
    expect(decodeWelcome(key, "efm", A, B.addr, freshNonce(), captured)).toMatch(/does not answer our hello/);
    // Nor does it fit a restarted A (new incarnation) or another dialed address.
    expect(decodeWelcome(key, "efm", { ...A, inc: "cc" }, B.addr, old, captured)).toBe(
      "welcome for another member",
    );
    expect(decodeWelcome(key, "efm", A, "10.0.0.9:7800", old, captured)).toMatch(/peer answered as/);
  });

  it("binds session keys to both incarnations", () => {
    const na = freshNonce();
    const nb = freshNonce();
    const k1 = sessionKeys(key, "efm", A, B, na, nb);
    const k2 = sessionKeys(key, "efm", A, { ...B, inc: "b2" }, na, nb);
    const k3 = sessionKeys(key, "efm", { ...A, inc: "a2" }, B, na, nb);
    expect(k1.dialerToAcceptor.equals(k2.dialerToAcceptor)).toBe(false);
    expect(k1.dialerToAcceptor.equals(k3.dialerToAcceptor)).toBe(false);
    expect(k1.dialerToAcceptor.equals(k1.acceptorToDialer)).toBe(false);
  });
});
