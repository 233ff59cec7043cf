/** A seeded pseudo-random source: the only randomness a simulation may use. */
export interface Rng {
  /** Uniform in [0, 1). */
  next(): number;
  /** Integer in [lo, hi] inclusive. */
  int(lo: number, hi: number): number;
  /** True with probability p. */
  chance(p: number): boolean;
  /** One element of a non-empty array. */
  pick<T>(items: readonly T[]): T;
  /** A copy of the array in random order. */
  shuffle<T>(items: readonly T[]): T[];
  /** A hex string of `bytes` random bytes (e.g. an incarnation). */
  hex(bytes: number): string;
  /** An independent generator derived from this one (for a sub-component). */
  fork(): Rng;
}

/** mulberry32: 32-bit state, fast, good enough for test schedules; same seed, same run. */
export function createRng(seed: number): Rng {
  let a = seed >>> 0;
  const next = (): number => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const rng: Rng = {
    next,
    int: (lo, hi) => lo + Math.floor(next() * (hi - lo + 1)),
    chance: (p) => next() < p,
    pick: (items) => {
      if (items.length === 0) throw new RangeError("pick from an empty array");
      return items[Math.floor(next() * items.length)]!;
    },
    shuffle: (items) => {
      const r = [...items];
      for (let i = r.length - 1; i > 0; i--) {
        const j = Math.floor(next() * (i + 1));
        [r[i], r[j]] = [r[j]!, r[i]!];
      }
      return r;
    },
    hex: (bytes) => {
      let s = "";
      for (let i = 0; i < bytes; i++)
        s += Math.floor(next() * 256)
          .toString(16)
          .padStart(2, "0");
      return s;
    },
    fork: () => createRng(Math.floor(next() * 4294967296)),
  };
  return rng;
}
