import { createHmac, hkdfSync, timingSafeEqual } from "node:crypto";
import type { NodeId, ViewId } from "../core/types.ts";

/** Wire version carried in every frame. */
export const WIRE_VERSION = 1;
/** Default cap on one frame (bytes after the length prefix). */
export const DEFAULT_MAX_FRAME_BYTES = 1024 * 1024;
const MAC_BYTES = 32;

/**
 * The cluster key: HKDF-SHA256 over the decrypted database password, bound to the cluster name,
 * so agents of another cluster (or with another password) cannot speak to us.
 */
export function deriveClusterKey(clusterName: string, dbPassword: string): Buffer {
  return Buffer.from(
    hkdfSync("sha256", Buffer.from(dbPassword, "utf8"), "efm-membership-v1", clusterName, 32),
  );
}

/** The authenticated envelope around every protocol message. */
export interface Envelope {
  readonly v: number;
  readonly cluster: string;
  readonly from: NodeId;
  readonly viewId: ViewId | null;
  readonly body: unknown;
}

/** Encode one frame: 4-byte big-endian length, then HMAC-SHA256 (32 bytes), then the JSON envelope. */
export function encodeFrame(key: Buffer, env: Envelope): Buffer {
  const json = Buffer.from(JSON.stringify(env), "utf8");
  const mac = createHmac("sha256", key).update(json).digest();
  const head = Buffer.allocUnsafe(4);
  head.writeUInt32BE(MAC_BYTES + json.length, 0);
  return Buffer.concat([head, mac, json]);
}

/** Why a frame was not accepted: `close` means the byte stream can no longer be trusted. */
export type FrameFault = { readonly kind: "close" | "drop"; readonly reason: string };

/** Incremental decoder for one connection's byte stream. */
export class FrameDecoder {
  private buf: Buffer = Buffer.alloc(0);
  constructor(
    private readonly key: Buffer,
    private readonly cluster: string,
    private readonly maxBytes: number,
  ) {}

  /** Feed bytes; returns the envelopes completed and the faults met (stop reading on a `close`). */
  push(chunk: Buffer): { envelopes: Envelope[]; faults: FrameFault[] } {
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
    const envelopes: Envelope[] = [];
    const faults: FrameFault[] = [];
    while (this.buf.length >= 4) {
      const len = this.buf.readUInt32BE(0);
      if (len > this.maxBytes || len < MAC_BYTES + 2) {
        faults.push({ kind: "close", reason: `frame length ${len} outside 34..${this.maxBytes} bytes` });
        this.buf = Buffer.alloc(0);
        return { envelopes, faults };
      }
      if (this.buf.length < 4 + len) break;
      const mac = this.buf.subarray(4, 4 + MAC_BYTES);
      const json = this.buf.subarray(4 + MAC_BYTES, 4 + len);
      this.buf = this.buf.subarray(4 + len);
      const want = createHmac("sha256", this.key).update(json).digest();
      if (!timingSafeEqual(mac, want)) {
        faults.push({ kind: "drop", reason: "bad MAC (another cluster, another password, or tampering)" });
        continue;
      }
      let env: unknown;
      try {
        env = JSON.parse(json.toString("utf8"));
      } catch {
        faults.push({ kind: "close", reason: "authenticated frame is not JSON" });
        return { envelopes, faults };
      }
      const bad = checkEnvelope(env, this.cluster);
      if (bad) {
        faults.push({ kind: "close", reason: bad });
        return { envelopes, faults };
      }
      envelopes.push(env as Envelope);
    }
    return { envelopes, faults };
  }
}

function checkEnvelope(e: unknown, cluster: string): string | null {
  if (typeof e !== "object" || e === null) return "envelope is not an object";
  const o = e as Record<string, unknown>;
  if (o.v !== WIRE_VERSION) return `unsupported wire version ${String(o.v)}`;
  if (o.cluster !== cluster) return `frame for cluster ${JSON.stringify(o.cluster)}`;
  const f = o.from as Record<string, unknown> | null;
  if (typeof f !== "object" || f === null || typeof f.addr !== "string" || typeof f.inc !== "string") {
    return "envelope without a sender";
  }
  if (f.addr.length > 300 || f.inc.length > 64) return "sender identity too long";
  if (!("body" in o)) return "envelope without a body";
  return null;
}
