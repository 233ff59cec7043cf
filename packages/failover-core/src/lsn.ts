import { FailoverCoreError } from "./errors.ts";
import type { TimelineFork } from "./types.ts";

const LSN = /^([0-9A-Fa-f]{1,8})\/([0-9A-Fa-f]{1,8})$/;

/** Parses a PostgreSQL LSN ("2/35000230") into a 64-bit number, so positions compare numerically. */
export function parseLsn(text: string): bigint {
  const m = LSN.exec(text);
  if (!m) throw new FailoverCoreError("invalid-lsn", `invalid WAL position "${text}": expected hex "X/Y"`);
  return (BigInt(`0x${m[1]}`) << 32n) | BigInt(`0x${m[2]}`);
}

/** Formats a 64-bit WAL position as PostgreSQL prints it ("2/35000230"). */
export function formatLsn(value: bigint): string {
  if (value < 0n || value > 0xffffffffffffffffn) {
    throw new FailoverCoreError("invalid-lsn", `WAL position ${value} is outside 0..2^64-1`);
  }
  return `${(value >> 32n).toString(16).toUpperCase()}/${(value & 0xffffffffn).toString(16).toUpperCase()}`;
}

/** Compares two LSNs as positions (not strings): negative, zero or positive. */
export function compareLsn(a: string, b: string): number {
  const x = parseLsn(a);
  const y = parseLsn(b);
  return x < y ? -1 : x > y ? 1 : 0;
}

/** How many bytes of WAL `ahead` is past `behind` (0 when it is not ahead). */
export function lsnDistance(ahead: string, behind: string): bigint {
  const d = parseLsn(ahead) - parseLsn(behind);
  return d > 0n ? d : 0n;
}

/**
 * Did a WAL position (timeline `t`, `lsn`) go past the newest promotion's fork (TimelineFork)? On
 * the fork's parent timeline beyond the fork (or anywhere on it when the fork's position is not
 * known), or on an older timeline still. A position whose timeline is unknown cannot tell: false.
 */
export function pastFork(
  fork: TimelineFork | null | undefined,
  t: number | null | undefined,
  lsn: string,
): boolean {
  if (!fork || typeof t !== "number") return false;
  if (t > fork.parent) return false;
  return t < fork.parent || fork.lsn === null || compareLsn(lsn, fork.lsn) > 0;
}
