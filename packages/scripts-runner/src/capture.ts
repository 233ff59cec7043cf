/**
 * Keeps the first and last bytes of a stream within a fixed budget. The head shows how a
 * script started, the tail usually holds the error that ended it; the middle of a 100 MB
 * log is what we can afford to lose.
 */
export class BoundedCapture {
  readonly #headLimit: number;
  readonly #tailLimit: number;
  readonly #head: Buffer[] = [];
  #headBytes = 0;
  #tail: Buffer = Buffer.alloc(0);
  #total = 0;

  /** `limit` is the most bytes kept in memory (head + tail). */
  constructor(limit: number) {
    const bounded = Math.max(0, Math.floor(limit));
    this.#headLimit = Math.ceil(bounded / 2);
    this.#tailLimit = bounded - this.#headLimit;
  }

  /** Feeds one chunk. */
  push(chunk: Buffer): void {
    this.#total += chunk.length;
    let rest = chunk;
    if (this.#headBytes < this.#headLimit) {
      const take = Math.min(this.#headLimit - this.#headBytes, rest.length);
      this.#head.push(Buffer.from(rest.subarray(0, take)));
      this.#headBytes += take;
      rest = rest.subarray(take);
    }
    if (rest.length === 0 || this.#tailLimit === 0) return;
    if (rest.length >= this.#tailLimit) {
      this.#tail = Buffer.from(rest.subarray(rest.length - this.#tailLimit));
    } else {
      const joined = Buffer.concat([this.#tail, rest]);
      this.#tail = Buffer.from(joined.subarray(Math.max(0, joined.length - this.#tailLimit)));
    }
  }

  /** Bytes the stream produced in total. */
  get totalBytes(): number {
    return this.#total;
  }

  /** True when bytes were dropped. */
  get truncated(): boolean {
    return this.#total > this.#headBytes + this.#tail.length;
  }

  /** The kept text, with a marker where bytes were dropped. */
  text(): string {
    const head = Buffer.concat(this.#head).toString("utf8");
    if (!this.truncated) return head + this.#tail.toString("utf8");
    const omitted = this.#total - this.#headBytes - this.#tail.length;
    return `${head}\n[... ${omitted} bytes omitted ...]\n${this.#tail.toString("utf8")}`;
  }
}
