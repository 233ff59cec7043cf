import { describe, expect, it } from "vitest";
import { VirtualClock } from "./clock.ts";
import { VirtualNetwork } from "./network.ts";
import { createRng } from "./rng.ts";

function deliveries(spec: Parameters<VirtualNetwork<number>["setDefaults"]>[0]): number[] {
  const clock = new VirtualClock();
  const net = new VirtualNetwork<number>(clock, createRng(3), spec);
  const got: number[] = [];
  net.attach("b", (_from, m) => got.push(m));
  for (let i = 0; i < 200; i++) net.send("a", "b", i);
  clock.runUntil(10_000);
  return got;
}

describe("VirtualNetwork link faults", () => {
  it("keeps a link in order and delivers each message once by default (TCP)", () => {
    expect(deliveries({ minDelay: 1, maxDelay: 50, loss: 0 })).toEqual(
      Array.from({ length: 200 }, (_, i) => i),
    );
  });

  it("a reordering link delivers every message, not in send order", () => {
    const got = deliveries({ minDelay: 1, maxDelay: 50, loss: 0, reorder: true });
    expect([...got].sort((x, y) => x - y)).toEqual(Array.from({ length: 200 }, (_, i) => i));
    expect(got).not.toEqual([...got].sort((x, y) => x - y));
  });

  it("a duplicating link delivers some messages twice, in order per copy", () => {
    const got = deliveries({ minDelay: 1, maxDelay: 5, loss: 0, duplicate: 0.2 });
    const twice = new Set(got.filter((m, i) => got.indexOf(m) !== i));
    expect(twice.size).toBeGreaterThan(10);
    expect(new Set(got).size).toBe(200);
  });
});
