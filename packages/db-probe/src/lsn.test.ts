import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { DbProbeError } from "./errors.ts";
import { Lsn } from "./lsn.ts";

describe("Lsn", () => {
  it("parses and prints PostgreSQL's spelling", () => {
    expect(Lsn.parse("2/35000230").toString()).toBe("2/35000230");
    expect(Lsn.parse("0/0").value).toBe(0n);
    expect(Lsn.parse("a/b").toString()).toBe("A/B");
    expect(Lsn.parse("FFFFFFFF/FFFFFFFF").value).toBe(0xffffffffffffffffn);
    expect(Lsn.parse("1/0").value).toBe(2n ** 32n);
  });

  it("compares numerically where strings would get it wrong", () => {
    expect(Lsn.compare(Lsn.parse("10/0"), Lsn.parse("9/0"))).toBeGreaterThan(0);
    expect(Lsn.compare(Lsn.parse("0/A0"), Lsn.parse("0/9F"))).toBeGreaterThan(0);
    expect(Lsn.compare(Lsn.parse("2/35000230"), Lsn.parse("2/35000230"))).toBe(0);
    expect(Lsn.parse("2/35000160").isAfter(Lsn.parse("2/35000230"))).toBe(false);
    expect(Lsn.parse("3/0").diff(Lsn.parse("2/FFFFFFFF"))).toBe(1n);
    expect(Lsn.max(null, Lsn.parse("1/5"), Lsn.parse("1/10"), null)?.toString()).toBe("1/10");
    expect(Lsn.compare(null, Lsn.parse("0/0"))).toBeLessThan(0);
  });

  it("rejects malformed text with INVALID_LSN", () => {
    for (const bad of ["", "2", "2/", "/2", "2/3/4", "g/0", "123456789/0", "-1/0", " / "]) {
      expect(() => Lsn.parse(bad)).toThrow(DbProbeError);
      expect(Lsn.tryParse(bad)).toBeNull();
    }
    expect(() => Lsn.parse(undefined as unknown as string)).toThrow(/not a WAL position/);
    expect(() => Lsn.fromBigInt(-1n)).toThrow(DbProbeError);
  });

  it("round-trips and orders like the 64-bit value", () => {
    const u64 = fc.bigInt({ min: 0n, max: 2n ** 64n - 1n });
    fc.assert(
      fc.property(u64, u64, (a, b) => {
        const la = Lsn.parse(Lsn.fromBigInt(a).toString());
        const lb = Lsn.fromBigInt(b);
        expect(la.value).toBe(a);
        expect(Math.sign(Lsn.compare(la, lb))).toBe(a < b ? -1 : a > b ? 1 : 0);
      }),
    );
  });
});
