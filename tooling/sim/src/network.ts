import type { VirtualClock } from "./clock.ts";
import type { Rng } from "./rng.ts";

/** Delay and loss on one directed link. */
export interface LinkSpec {
  minDelay: number;
  maxDelay: number;
  loss: number;
  /** Probability that a message is delivered twice (a retry after a reconnect). */
  duplicate?: number;
  /** Deliver out of order: each message gets its own delay, ignoring the link's FIFO order. */
  reorder?: boolean;
}

/**
 * A virtual network between named endpoints: per-link delay and loss, directed cuts (a one-way
 * partition blocks a->b only), symmetric partitions into groups, and heal. Messages between
 * the same pair stay in order (like TCP) unless the link reorders; a cut drops what is in flight
 * on it.
 */
export class VirtualNetwork<M> {
  private readonly handlers = new Map<string, (from: string, msg: M) => void>();
  private readonly cuts = new Set<string>();
  private readonly links = new Map<string, LinkSpec>();
  private readonly lastArrival = new Map<string, number>();
  private readonly cutEpoch = new Map<string, number>();
  /** Messages handed to the network / delivered, for statistics. */
  sent = 0;
  delivered = 0;

  constructor(
    private readonly clock: VirtualClock,
    private readonly rng: Rng,
    private defaults: LinkSpec = { minDelay: 1, maxDelay: 5, loss: 0 },
  ) {}

  /** Register the receive function of an endpoint (replaces an earlier one). */
  attach(name: string, onMessage: (from: string, msg: M) => void): void {
    this.handlers.set(name, onMessage);
  }
  /** Remove an endpoint: messages to it vanish (a crashed host, or one that never resolves). */
  detach(name: string): void {
    this.handlers.delete(name);
  }
  /** Set the default link behaviour. */
  setDefaults(spec: LinkSpec): void {
    this.defaults = spec;
  }
  /** Override one directed link. */
  setLink(from: string, to: string, spec: LinkSpec): void {
    this.links.set(`${from}>${to}`, spec);
  }
  /** Block a->b only (a one-way partition). */
  cutOneWay(from: string, to: string): void {
    const k = `${from}>${to}`;
    this.cuts.add(k);
    this.cutEpoch.set(k, (this.cutEpoch.get(k) ?? 0) + 1);
  }
  /** Block both directions between a and b. */
  cut(a: string, b: string): void {
    this.cutOneWay(a, b);
    this.cutOneWay(b, a);
  }
  /** Symmetric partition: nodes in different groups cannot talk; nodes not listed are untouched. */
  partition(groups: readonly (readonly string[])[]): void {
    for (let i = 0; i < groups.length; i++)
      for (let j = 0; j < groups.length; j++)
        if (i !== j) for (const a of groups[i]!) for (const b of groups[j]!) this.cutOneWay(a, b);
  }
  /** Remove every cut (links keep their delay/loss settings). */
  heal(): void {
    this.cuts.clear();
  }
  /** Whether a->b is currently blocked. */
  isCut(from: string, to: string): boolean {
    return this.cuts.has(`${from}>${to}`);
  }

  /** Send a message; it arrives after the link delay unless lost, cut, or the target is gone. */
  send(from: string, to: string, msg: M): void {
    this.sent++;
    const k = `${from}>${to}`;
    if (this.cuts.has(k)) return;
    const spec = this.links.get(k) ?? this.defaults;
    if (spec.loss > 0 && this.rng.chance(spec.loss)) return;
    const copies = spec.duplicate && this.rng.chance(spec.duplicate) ? 2 : 1;
    const epoch = this.cutEpoch.get(k) ?? 0;
    for (let i = 0; i < copies; i++) {
      const delay = spec.minDelay + this.rng.next() * (spec.maxDelay - spec.minDelay);
      const at = spec.reorder
        ? this.clock.now() + delay
        : Math.max(this.clock.now() + delay, this.lastArrival.get(k) ?? 0);
      if (!spec.reorder) this.lastArrival.set(k, at);
      this.clock.at(at, () => {
        if (this.cuts.has(k) || (this.cutEpoch.get(k) ?? 0) !== epoch) return;
        const h = this.handlers.get(to);
        if (!h) return;
        this.delivered++;
        h(from, msg);
      });
    }
  }
}
