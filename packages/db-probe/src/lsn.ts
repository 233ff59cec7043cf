import { DbProbeError } from "./errors.ts";

const LSN = /^([0-9A-Fa-f]{1,8})\/([0-9A-Fa-f]{1,8})$/;

/**
 * A WAL position (PostgreSQL `pg_lsn`, printed `2/35000230`): a 64-bit number written as two
 * hex halves. Compare with `compare`/`isAfter`, never as strings: "9/0" sorts after "10/0".
 */
export class Lsn {
  /** The position as an unsigned 64-bit integer. */
  readonly value: bigint;

  private constructor(value: bigint) {
    this.value = value;
  }

  /** Parse `hi/lo` hex; throws DbProbeError INVALID_LSN naming the bad text. */
  static parse(text: string): Lsn {
    const m = LSN.exec(typeof text === "string" ? text.trim() : "");
    if (m === null || m[1] === undefined || m[2] === undefined) {
      throw new DbProbeError(
        "INVALID_LSN",
        `not a WAL position: ${JSON.stringify(text)} (expected hex "hi/lo")`,
      );
    }
    return new Lsn((BigInt(`0x${m[1]}`) << 32n) | BigInt(`0x${m[2]}`));
  }

  /** Parse, or null for null/undefined/malformed input (e.g. a standby that never received WAL). */
  static tryParse(text: string | null | undefined): Lsn | null {
    if (text === null || text === undefined) return null;
    try {
      return Lsn.parse(text);
    } catch {
      return null;
    }
  }

  /** Build from the 64-bit value. */
  static fromBigInt(value: bigint): Lsn {
    if (value < 0n || value > 0xffffffffffffffffn) {
      throw new DbProbeError("INVALID_LSN", `WAL position ${value} is outside 0..2^64-1`);
    }
    return new Lsn(value);
  }

  /** Negative if a < b, zero if equal, positive if a > b. Null sorts before every position. */
  static compare(a: Lsn | null, b: Lsn | null): number {
    if (a === null || b === null) return a === b ? 0 : a === null ? -1 : 1;
    return a.value < b.value ? -1 : a.value > b.value ? 1 : 0;
  }

  /** The greatest of the given positions, ignoring nulls; null if none. */
  static max(...all: (Lsn | null)[]): Lsn | null {
    return all.reduce<Lsn | null>((m, x) => (Lsn.compare(x, m) > 0 ? x : m), null);
  }

  /** True when this position is strictly after other. */
  isAfter(other: Lsn): boolean {
    return this.value > other.value;
  }

  /** True when both name the same position. */
  equals(other: Lsn | null): boolean {
    return other !== null && this.value === other.value;
  }

  /** Bytes of WAL from other to this (negative if this is behind). */
  diff(other: Lsn): bigint {
    return this.value - other.value;
  }

  /** PostgreSQL's own spelling: upper-case hex, no leading zeros, e.g. `2/35000230`. */
  toString(): string {
    return `${(this.value >> 32n).toString(16).toUpperCase()}/${(this.value & 0xffffffffn).toString(16).toUpperCase()}`;
  }

  toJSON(): string {
    return this.toString();
  }
}
