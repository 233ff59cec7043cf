import { type Severity, severities } from "./catalogue.ts";

// A FIFO with O(1) push/shift: an array plus a head index, compacted when half is consumed.
class Fifo<T> {
  private items: T[] = [];
  private head = 0;

  get length(): number {
    return this.items.length - this.head;
  }

  push(item: T): void {
    this.items.push(item);
  }

  peek(): T | undefined {
    return this.items[this.head];
  }

  shift(): T | undefined {
    if (this.head >= this.items.length) return undefined;
    const item = this.items[this.head];
    this.items[this.head] = undefined as T; // let the GC take it
    this.head += 1;
    if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return item;
  }

  clear(): T[] {
    const rest = this.items.slice(this.head);
    this.items = [];
    this.head = 0;
    return rest;
  }
}

interface Entry<T> {
  readonly seq: number;
  readonly value: T;
}

/**
 * A bounded queue that, when full, sheds the oldest item of the lowest severity present
 * (or refuses the newcomer if it is less severe than everything queued). Why: during a
 * notification storm with a dead mail server, the SEVERE ones are the ones an operator must
 * still get. Order of delivery stays first-in first-out across severities. All operations
 * are O(1), so a storm over a full queue never stalls the event loop.
 */
export class SeverityQueue<T extends { readonly severity: Severity }> {
  private readonly lanes: Record<Severity, Fifo<Entry<T>>> = {
    INFO: new Fifo(),
    WARNING: new Fifo(),
    SEVERE: new Fifo(),
  };
  private nextSeq = 0;
  private size = 0;

  constructor(readonly capacity: number) {}

  get length(): number {
    return this.size;
  }

  /** Adds `value`; returns the item shed to make room (maybe `value` itself), or undefined. */
  push(value: T): T | undefined {
    let shed: T | undefined;
    if (this.size >= this.capacity) {
      const lowest = severities.find((s) => this.lanes[s].length > 0);
      if (lowest === undefined || severities.indexOf(value.severity) < severities.indexOf(lowest)) {
        return value;
      }
      shed = this.lanes[lowest].shift()?.value;
      this.size -= 1;
    }
    this.lanes[value.severity].push({ seq: this.nextSeq++, value });
    this.size += 1;
    return shed;
  }

  /** Removes and returns the oldest item, whatever its severity. */
  shift(): T | undefined {
    let best: Fifo<Entry<T>> | undefined;
    let bestSeq = Number.POSITIVE_INFINITY;
    for (const s of severities) {
      const head = this.lanes[s].peek();
      if (head !== undefined && head.seq < bestSeq) {
        bestSeq = head.seq;
        best = this.lanes[s];
      }
    }
    const entry = best?.shift();
    if (entry !== undefined) this.size -= 1;
    return entry?.value;
  }

  /** Empties the queue, returning what was in it (oldest first). */
  drain(): T[] {
    const all = severities.flatMap((s) => this.lanes[s].clear());
    this.size = 0;
    return all.sort((a, b) => a.seq - b.seq).map((e) => e.value);
  }
}
