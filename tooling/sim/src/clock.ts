/** A scheduled callback in virtual time. */
interface Scheduled {
  at: number;
  seq: number;
  run: () => void;
  cancelled: boolean;
}

/** Handle to cancel a scheduled event. */
export interface EventHandle {
  cancel(): void;
}

/**
 * Virtual clock plus an event queue ordered by (time, insertion order): the whole simulation is
 * a loop popping the earliest event, so a run depends only on its seed.
 */
export class VirtualClock {
  private heap: Scheduled[] = [];
  private seqNo = 0;
  private nowMs = 0;
  /** Events executed so far. */
  steps = 0;

  /** Current virtual time (ms). */
  now(): number {
    return this.nowMs;
  }

  /** Run `fn` at virtual time `at` (never in the past). A time that is not finite is a bug of the caller. */
  at(at: number, fn: () => void): EventHandle {
    if (!Number.isFinite(at))
      throw new RangeError(`virtual clock: an event at ${at} would never run (or always)`);
    const ev: Scheduled = { at: Math.max(at, this.nowMs), seq: this.seqNo++, run: fn, cancelled: false };
    this.push(ev);
    return {
      cancel: () => {
        ev.cancelled = true;
      },
    };
  }

  /** Run `fn` after `delay` ms of virtual time. */
  after(delay: number, fn: () => void): EventHandle {
    return this.at(this.nowMs + delay, fn);
  }

  /** Execute the next event; false when the queue is empty. */
  step(): boolean {
    for (;;) {
      const ev = this.pop();
      if (!ev) return false;
      if (ev.cancelled) continue;
      this.nowMs = ev.at;
      this.steps++;
      ev.run();
      return true;
    }
  }

  /** Execute events up to and including time `t`, calling `after` after each one; time ends at t. */
  runUntil(t: number, after?: () => void): void {
    for (;;) {
      const top = this.peek();
      if (!top || top.at > t) break;
      if (this.step() && after) after();
    }
    this.nowMs = Math.max(this.nowMs, t);
  }

  private peek(): Scheduled | undefined {
    while (this.heap.length > 0 && this.heap[0]!.cancelled) this.pop();
    return this.heap[0];
  }
  private less(a: Scheduled, b: Scheduled): boolean {
    return a.at < b.at || (a.at === b.at && a.seq < b.seq);
  }
  private push(ev: Scheduled): void {
    const h = this.heap;
    h.push(ev);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.less(h[i]!, h[p]!)) break;
      [h[i], h[p]] = [h[p]!, h[i]!];
      i = p;
    }
  }
  private pop(): Scheduled | undefined {
    const h = this.heap;
    const top = h[0];
    const last = h.pop();
    if (h.length > 0 && last) {
      h[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < h.length && this.less(h[l]!, h[m]!)) m = l;
        if (r < h.length && this.less(h[r]!, h[m]!)) m = r;
        if (m === i) break;
        [h[i], h[m]] = [h[m]!, h[i]!];
        i = m;
      }
    }
    return top;
  }
}
