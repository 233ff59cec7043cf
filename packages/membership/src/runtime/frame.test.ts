import { describe, expect, it } from "vitest";
import { deriveClusterKey, encodeFrame, FrameDecoder } from "./frame.ts";

const key = deriveClusterKey("efm", "pw");
const env = {
  v: 1,
  cluster: "efm",
  from: { addr: "10.0.0.1:7800", inc: "ab" },
  viewId: null,
  body: { t: "hb" },
};

describe("frames", () => {
  it("round-trips across arbitrary chunking", () => {
    const bytes = Buffer.concat([encodeFrame(key, env), encodeFrame(key, { ...env, body: { t: "join" } })]);
    const d = new FrameDecoder(key, "efm", 1 << 20);
    const got = [];
    for (let i = 0; i < bytes.length; i += 7) got.push(...d.push(bytes.subarray(i, i + 7)).envelopes);
    expect(got.map((e) => e.body)).toEqual([{ t: "hb" }, { t: "join" }]);
  });

  it("derives different keys for another cluster name or password", () => {
    expect(deriveClusterKey("efm", "pw").equals(deriveClusterKey("efm2", "pw"))).toBe(false);
    expect(deriveClusterKey("efm", "pw").equals(deriveClusterKey("efm", "pw2"))).toBe(false);
  });

  it("drops frames under another key but keeps reading", () => {
    const d = new FrameDecoder(key, "efm", 1 << 20);
    const r = d.push(
      Buffer.concat([encodeFrame(deriveClusterKey("efm", "other"), env), encodeFrame(key, env)]),
    );
    expect(r.faults).toEqual([{ kind: "drop", reason: expect.stringMatching(/bad MAC/) }]);
    expect(r.envelopes).toHaveLength(1);
  });

  it("asks to close on an oversized length, non-JSON or a foreign cluster", () => {
    const big = Buffer.alloc(4);
    big.writeUInt32BE(10_000_000);
    expect(new FrameDecoder(key, "efm", 1 << 20).push(big).faults[0]!.kind).toBe("close");
    const other = new FrameDecoder(key, "efm", 1 << 20).push(encodeFrame(key, { ...env, cluster: "x" }));
    expect(other.faults[0]).toEqual({ kind: "close", reason: 'frame for cluster "x"' });
  });
});
