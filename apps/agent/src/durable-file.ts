import { writeFileAtomicAsync } from "@efm/properties-parser";

/**
 * One state file the agent rewrites as its state changes, written atomically and fsync'd off the
 * event loop. The membership lease is renewed by heartbeats on that loop; two synchronous fsyncs
 * on a loaded disk held it for up to 140 ms, enough to let a 500 ms lease lapse during a
 * promotion. Writes are applied in order and coalesced: while one is on its way only the newest
 * content waits, so the file always ends up holding the last state handed in.
 */
export class DurableFile {
  #pending: string | null = null;
  #writing: Promise<void> | null = null;
  #error: Error | null = null;

  constructor(
    readonly path: string,
    private readonly mode: number,
    /** Told about every failed write (the next write is still tried). */
    private readonly onError: (err: Error) => void,
  ) {}

  /** Queue `content`; resolves once it (or newer content) is on disk, or the write failed. */
  write(content: string): Promise<void> {
    this.#pending = content;
    this.#writing ??= this.#drain();
    return this.#writing;
  }

  /**
   * Wait for every queued write; the error of the last one that failed since the previous call,
   * or null when everything written since then is on disk.
   */
  async settled(): Promise<Error | null> {
    await this.#writing;
    const err = this.#error;
    this.#error = null;
    return err;
  }

  async #drain(): Promise<void> {
    try {
      for (let c = this.#pending; c !== null; c = this.#pending) {
        this.#pending = null;
        try {
          await writeFileAtomicAsync(this.path, c, this.mode);
          this.#error = null;
        } catch (err) {
          this.#error = err as Error;
          this.onError(err as Error);
        }
      }
    } finally {
      this.#writing = null;
    }
  }
}
