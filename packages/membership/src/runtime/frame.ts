import { hkdfSync } from "node:crypto";

/**
 * Wire version carried in every handshake frame. Version 2 added the per-connection handshake
 * (fresh nonces from both sides, session keys, sequence numbers). Version 3 added the cluster id
 * to every message, the suspicions carried by heartbeats (a member leaves a view only when a
 * majority suspects it) and, in view acknowledgements, how long ago each removed member was last
 * heard. Agents of different versions cannot talk (the handshake refuses, naming both
 * versions), so a cluster is upgraded by stopping it (as any EFM upgrade is).
 */
export const WIRE_VERSION = 3;
/** Default cap on one frame (bytes after the length prefix) once a connection is authenticated. */
export const DEFAULT_MAX_FRAME_BYTES = 1024 * 1024;
/**
 * Cap on everything a connection may send before it has authenticated: a handshake frame is a
 * few hundred bytes, so a stranger never gets to make us buffer (or hash) more than this.
 */
export const PRE_AUTH_MAX_BYTES = 4096;
/** Bytes of the HMAC-SHA256 that precedes every frame's JSON. */
export const MAC_BYTES = 32;

/**
 * The cluster key: HKDF-SHA256 over the decrypted database password, bound to the cluster name,
 * so agents of another cluster (or with another password) cannot speak to us. It only
 * authenticates handshakes; each connection then runs on its own session keys.
 */
export function deriveClusterKey(clusterName: string, dbPassword: string): Buffer {
  return Buffer.from(
    hkdfSync("sha256", Buffer.from(dbPassword, "utf8"), "efm-membership-v1", clusterName, 32),
  );
}

/** Why a byte stream was not accepted: `close` means it can no longer be trusted. */
export type FrameFault = { readonly kind: "close" | "drop"; readonly reason: string };

/**
 * Splits one connection's byte stream into frames (4-byte big-endian length, then that many
 * bytes). Chunks are kept in a list and joined once per complete frame, so a peer that trickles
 * a large frame in tiny chunks costs linear work, not a copy of the whole buffer per chunk.
 */
export class FrameDecoder {
  private chunks: Buffer[] = [];
  private buffered = 0;
  private need = -1; // length of the frame being read, -1 while the prefix is incomplete
  private failed = false;
  constructor(private maxBytes: number) {}

  /** Change the cap on one frame (raised once the connection has authenticated). */
  setLimit(maxBytes: number): void {
    this.maxBytes = maxBytes;
  }

  /** Bytes held for an incomplete frame. */
  get pending(): number {
    return this.buffered;
  }

  /** Feed bytes; returns the complete frames' bodies, and a fault once the stream is unusable. */
  push(chunk: Buffer): { frames: Buffer[]; fault: FrameFault | null } {
    const frames: Buffer[] = [];
    if (this.failed) return { frames, fault: { kind: "close", reason: "stream already failed" } };
    if (chunk.length > 0) {
      this.chunks.push(chunk);
      this.buffered += chunk.length;
    }
    for (;;) {
      if (this.need < 0) {
        if (this.buffered < 4) break;
        const head = this.take(4);
        const len = head.readUInt32BE(0);
        if (len > this.maxBytes || len < MAC_BYTES + 2) {
          this.failed = true;
          this.chunks = [];
          this.buffered = 0;
          return {
            frames,
            fault: { kind: "close", reason: `frame length ${len} outside 34..${this.maxBytes} bytes` },
          };
        }
        this.need = len;
      }
      if (this.buffered < this.need) break;
      frames.push(this.take(this.need));
      this.need = -1;
    }
    return { frames, fault: null };
  }

  /** Remove and return the first n buffered bytes (n <= buffered), copying only those. */
  private take(n: number): Buffer {
    const first = this.chunks[0]!;
    if (first.length >= n) {
      const out = first.subarray(0, n);
      if (first.length === n) this.chunks.shift();
      else this.chunks[0] = first.subarray(n);
      this.buffered -= n;
      return out;
    }
    const out = Buffer.allocUnsafe(n);
    let off = 0;
    while (off < n) {
      const c = this.chunks[0]!;
      const k = Math.min(c.length, n - off);
      c.copy(out, off, 0, k);
      off += k;
      if (k === c.length) this.chunks.shift();
      else this.chunks[0] = c.subarray(k);
    }
    this.buffered -= n;
    return out;
  }
}

/** Prefix a frame body with its 4-byte length. */
export function lengthPrefixed(body: Buffer): Buffer {
  const head = Buffer.allocUnsafe(4);
  head.writeUInt32BE(body.length, 0);
  return Buffer.concat([head, body]);
}
