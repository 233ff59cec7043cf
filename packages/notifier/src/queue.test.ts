import { describe, expect, it } from "vitest";
import type { Severity } from "./catalogue.ts";
import { SeverityQueue } from "./queue.ts";

const item = (severity: Severity, n: number) => ({ severity, n });

describe("SeverityQueue", () => {
  it("is first-in first-out across severities", () => {
    const q = new SeverityQueue(10);
    q.push(item("SEVERE", 1));
    q.push(item("INFO", 2));
    q.push(item("WARNING", 3));
    q.push(item("INFO", 4));
    expect([q.shift(), q.shift(), q.shift(), q.shift(), q.shift()]).toEqual([
      item("SEVERE", 1),
      item("INFO", 2),
      item("WARNING", 3),
      item("INFO", 4),
      undefined,
    ]);
    expect(q.length).toBe(0);
  });

  it("when full, sheds the oldest of the lowest severity present", () => {
    const q = new SeverityQueue(3);
    expect(q.push(item("WARNING", 1))).toBeUndefined();
    expect(q.push(item("INFO", 2))).toBeUndefined();
    expect(q.push(item("INFO", 3))).toBeUndefined();
    expect(q.push(item("SEVERE", 4))).toEqual(item("INFO", 2));
    expect(q.push(item("WARNING", 5))).toEqual(item("INFO", 3));
    expect(q.push(item("WARNING", 6))).toEqual(item("WARNING", 1));
    expect(q.length).toBe(3);
    expect(q.drain()).toEqual([item("SEVERE", 4), item("WARNING", 5), item("WARNING", 6)]);
  });

  it("refuses a newcomer less severe than everything queued", () => {
    const q = new SeverityQueue(2);
    q.push(item("SEVERE", 1));
    q.push(item("WARNING", 2));
    expect(q.push(item("INFO", 3))).toEqual(item("INFO", 3));
    expect(q.drain()).toEqual([item("SEVERE", 1), item("WARNING", 2)]);
  });

  it("keeps order and size through many pushes and shifts (compaction)", () => {
    const q = new SeverityQueue<{ severity: Severity; n: number }>(100_000);
    const sev: Severity[] = ["INFO", "WARNING", "SEVERE"];
    for (let i = 0; i < 5000; i++) q.push(item(sev[i % 3]!, i));
    const out: number[] = [];
    for (let i = 0; i < 3000; i++) out.push(q.shift()!.n);
    for (let i = 5000; i < 6000; i++) q.push(item(sev[i % 3]!, i));
    for (let x = q.shift(); x !== undefined; x = q.shift()) out.push(x.n);
    expect(out).toEqual(Array.from({ length: 6000 }, (_, i) => i));
  });
});
