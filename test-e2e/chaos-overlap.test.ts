/**
 * The chaos suite's split-brain judge (findOverlaps) on hand-made write logs: it must flag a host
 * that committed between two commits of another, and nothing else. No cluster, no resources.
 */
import { describe, expect, it } from "vitest";
import { type Ack, findOverlaps } from "./chaos-world.ts";

const ack = (host: Ack["host"], start: number, end: number): Ack => ({
  host,
  via: "tcp",
  token: `${host}-${start}`,
  start,
  ack: end,
});

describe("findOverlaps", () => {
  it("a clean handover (the old master's last write before the new one's first) is no overlap", () => {
    expect(findOverlaps([ack("a", 0, 10), ack("a", 20, 30), ack("b", 40, 50), ack("b", 60, 70)])).toEqual([]);
  });

  it("flags the old master writing after the new master's first write", () => {
    const log = [ack("a", 0, 10), ack("b", 40, 50), ack("a", 60, 70), ack("b", 80, 90)];
    const o = findOverlaps(log);
    expect(o.length).toBeGreaterThan(0);
    expect(
      o.some((x) => x.host === "a" && x.other === "b") || o.some((x) => x.host === "b" && x.other === "a"),
    ).toBe(true);
  });

  it("flags one write of a third host between two of the master's", () => {
    const [first, between, last] = [ack("a", 0, 10), ack("c", 20, 30), ack("a", 40, 50)];
    expect(findOverlaps([first, between, last])).toEqual([
      { host: "c", other: "a", before: first, write: between, after: last },
    ]);
  });

  it("intervals that touch or overlap prove nothing: the commits may have been in either order", () => {
    expect(findOverlaps([ack("a", 0, 20), ack("b", 10, 30), ack("a", 25, 40)])).toEqual([]);
    expect(findOverlaps([ack("a", 0, 10), ack("b", 10, 20), ack("a", 20, 30)])).toEqual([]);
  });
});
