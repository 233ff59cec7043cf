import { type Notification, type Severity, severities } from "./catalogue.ts";
import { NotifierError } from "./errors.ts";
import {
  type MessageContext,
  type RenderedNotification,
  renderNotification,
  type SnapshotNode,
} from "./message.ts";
import { SeverityQueue } from "./queue.ts";
import type { RetryPolicy, Sink } from "./sinks.ts";

/** The part of a pino logger the notifier uses; a pino `Logger` fits as is. */
export interface Logger {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

const noop = () => {};
/** A logger that drops everything: the default, so a library never writes to stdout uninvited. */
export const silentLogger: Logger = { debug: noop, info: noop, warn: noop, error: noop };

/** Options of {@link createNotifier}. */
export interface NotifierOptions {
  /** What the body header says about this node. */
  readonly context: MessageContext;
  /** Where notifications go; each sink gets its own queue, so a dead mail server never delays the log. */
  readonly sinks: readonly Sink[];
  /** Pending notifications per sink before the least severe oldest ones are shed; default 1000. */
  readonly queueCapacity?: number;
  /** Receives delivery errors and drops; default silent. */
  readonly logger?: Logger;
  /** Clock for the notification time; default `new Date()`. */
  readonly now?: () => Date;
}

/** Counters of one sink. */
export interface SinkStats {
  /** Notifications delivered. */
  readonly delivered: number;
  /** Failed tries (each retry counts). */
  readonly failedAttempts: number;
  /** Notifications given up after the last retry failed. */
  readonly dropped: number;
  /** Notifications shed because the queue was full, or left over at close. */
  readonly shed: number;
  /** Waiting, including the batch being delivered. */
  readonly pending: number;
}

/** Counters of a notifier. */
export interface NotifierStats {
  /** `notify()` calls accepted. */
  readonly accepted: number;
  /** `notify()` calls refused (after close, or a notification that could not be rendered). */
  readonly refused: number;
  readonly sinks: Readonly<Record<string, SinkStats>>;
}

/** Outcome of {@link Notifier.flush} and {@link Notifier.close}. */
export interface FlushResult {
  /** True when every queue emptied before the deadline. */
  readonly drained: boolean;
  /** Notifications still waiting (flush) or abandoned (close) at the deadline. */
  readonly pending: number;
}

/** A running notifier. No method ever throws or rejects. */
export interface Notifier {
  /** Queues a notification for every sink whose level admits it and returns at once. */
  notify(notification: Notification, snapshot?: readonly SnapshotNode[]): void;
  /** Waits until every queue is empty, or `deadlineMs` has passed. */
  flush(deadlineMs: number): Promise<FlushResult>;
  /** Flushes within `deadlineMs`, then drops what is left (logged, counted) and closes the sinks. */
  close(deadlineMs: number): Promise<FlushResult>;
  stats(): NotifierStats;
}

function rank(s: Severity): number {
  return severities.indexOf(s);
}

function errorInfo(err: unknown): { code?: string; message: string } {
  if (err instanceof NotifierError) return { code: err.code, message: err.message };
  if (err instanceof Error) return { message: err.message };
  return { message: String(err) };
}

function checkRetry(sink: Sink): void {
  const r: RetryPolicy = sink.retry;
  const bad =
    !Number.isInteger(r.attempts) ||
    r.attempts < 1 ||
    !(r.initialDelayMs >= 0) ||
    !(r.maxDelayMs >= 0) ||
    !Number.isInteger(sink.batchSize) ||
    sink.batchSize < 1 ||
    !(sink.timeoutMs > 0) ||
    (sink.queueCapacity !== undefined && !(Number.isInteger(sink.queueCapacity) && sink.queueCapacity >= 1));
  if (bad) {
    throw new NotifierError(
      "INVALID_OPTION",
      `sink ${sink.name}: retry.attempts, batchSize and queueCapacity must be integers >= 1, delays >= 0, timeoutMs > 0`,
    );
  }
}

// One queue and one delivery loop per sink.
class SinkWorker {
  readonly queue: SeverityQueue<RenderedNotification>;
  delivered = 0;
  failedAttempts = 0;
  dropped = 0;
  shed = 0;
  inFlight = 0;
  /** The batch being delivered (retries included), so close() can say what it abandoned. */
  private inFlightBatch: RenderedNotification[] = [];
  private running = false;
  private scheduled = false;
  private closed = false;
  private readonly closing = new AbortController();
  private idleWaiters: Array<() => void> = [];

  constructor(
    readonly sink: Sink,
    capacity: number,
    private readonly log: Logger,
  ) {
    this.queue = new SeverityQueue(capacity);
  }

  get pending(): number {
    return this.queue.length + this.inFlight;
  }

  offer(n: RenderedNotification): void {
    if (this.closed || rank(n.severity) < rank(this.sink.minSeverity)) return;
    const shed = this.queue.push(n);
    if (shed !== undefined) {
      this.shed += 1;
      this.log.error(
        {
          sink: this.sink.name,
          id: shed.id,
          severity: shed.severity,
          subject: shed.subject,
          code: "QUEUE_FULL",
        },
        "notification queue full: notification shed",
      );
    }
    this.schedule();
  }

  // Delivery starts on a later turn of the event loop, so notify() does no I/O and a burst of
  // calls becomes one batch for sinks that take batches.
  private schedule(): void {
    if (this.running || this.scheduled || this.closed) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      void this.run();
    });
  }

  private async run(): Promise<void> {
    this.running = true;
    try {
      while (this.queue.length > 0 && !this.closed) {
        const batch: RenderedNotification[] = [];
        while (batch.length < this.sink.batchSize) {
          const n = this.queue.shift();
          if (n === undefined) break;
          batch.push(n);
        }
        this.inFlight = batch.length;
        this.inFlightBatch = batch;
        await this.deliverWithRetry(batch);
        this.inFlight = 0;
        this.inFlightBatch = [];
      }
    } finally {
      this.inFlight = 0;
      this.inFlightBatch = [];
      this.running = false;
      if (this.queue.length === 0 || this.closed) {
        const waiters = this.idleWaiters;
        this.idleWaiters = [];
        for (const w of waiters) w();
      } else {
        this.schedule();
      }
    }
  }

  private async deliverWithRetry(batch: readonly RenderedNotification[]): Promise<void> {
    const { attempts, initialDelayMs, maxDelayMs } = this.sink.retry;
    for (let attempt = 1; ; attempt++) {
      try {
        await this.attempt(batch);
        this.delivered += batch.length;
        return;
      } catch (err) {
        this.failedAttempts += 1;
        const last = attempt >= attempts || this.closed;
        if (!last) {
          const delayMs = Math.min(maxDelayMs, initialDelayMs * 2 ** (attempt - 1));
          this.log.warn(
            {
              sink: this.sink.name,
              attempt,
              of: attempts,
              retryInMs: delayMs,
              subjects: subjects(batch),
              err: errorInfo(err),
            },
            "notification delivery failed; will retry",
          );
          await this.sleep(delayMs);
          if (!this.closed) continue;
        }
        this.dropped += batch.length;
        for (const n of batch) {
          this.log.error(
            {
              sink: this.sink.name,
              attempts: attempt,
              id: n.id,
              severity: n.severity,
              subject: n.subject,
              err: errorInfo(err),
            },
            "notification not delivered; dropped after retries",
          );
        }
        return;
      }
    }
  }

  // One try bounded by the sink's timeout; a sink that throws synchronously counts as a failure too.
  private async attempt(batch: readonly RenderedNotification[]): Promise<void> {
    const timeout = new AbortController();
    const signal = AbortSignal.any([timeout.signal, this.closing.signal]);
    let timer: NodeJS.Timeout | undefined;
    let onClose = () => {};
    // Settles at the timeout, or at close() so shutdown never waits on a hung send.
    const expired = new Promise<never>((_, reject) => {
      onClose = () =>
        reject(new NotifierError("CLOSED", `sink ${this.sink.name}: notifier closed during delivery`));
      if (this.closing.signal.aborted) return onClose();
      this.closing.signal.addEventListener("abort", onClose, { once: true });
      timer = setTimeout(() => {
        timeout.abort();
        reject(
          new NotifierError(
            "SEND_TIMEOUT",
            `sink ${this.sink.name}: no answer within ${this.sink.timeoutMs} ms`,
          ),
        );
      }, this.sink.timeoutMs);
    });
    expired.catch(() => {});
    const delivery = Promise.resolve().then(() => this.sink.deliver(batch, signal));
    // A delivery that settles after its timeout must not become an unhandled rejection.
    delivery.catch(() => {});
    try {
      await Promise.race([delivery, expired]);
    } finally {
      clearTimeout(timer);
      this.closing.signal.removeEventListener("abort", onClose);
    }
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      if (this.closing.signal.aborted) return resolve();
      const done = () => {
        clearTimeout(timer);
        this.closing.signal.removeEventListener("abort", done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.closing.signal.addEventListener("abort", done, { once: true });
    });
  }

  /** Resolves when the queue is empty and nothing is in flight. */
  idle(): Promise<void> {
    if (!this.running && !this.scheduled && this.queue.length === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** Stops delivering: abandons the queue and aborts the send in flight; returns what was abandoned. */
  stop(): RenderedNotification[] {
    this.closed = true;
    const queued = this.queue.drain();
    const left = [...this.inFlightBatch, ...queued];
    const abandoned = left.length;
    this.shed += queued.length;
    if (abandoned > 0) {
      this.log.error(
        { sink: this.sink.name, abandoned, subjects: subjects(left), code: "CLOSED" },
        "notifier closed with notifications still pending",
      );
    }
    this.closing.abort();
    if (!this.running) {
      const waiters = this.idleWaiters;
      this.idleWaiters = [];
      for (const w of waiters) w();
    }
    return left;
  }

  stats(): SinkStats {
    return {
      delivered: this.delivered,
      failedAttempts: this.failedAttempts,
      dropped: this.dropped,
      shed: this.shed,
      pending: this.pending,
    };
  }
}

function subjects(batch: readonly RenderedNotification[]): string[] {
  const first = batch.slice(0, 5).map((n) => n.subject);
  return batch.length > 5 ? [...first, `... and ${batch.length - 5} more`] : first;
}

function waitFor(ms: number): { promise: Promise<"timeout">; cancel: () => void } {
  let timer: NodeJS.Timeout | undefined;
  const promise = new Promise<"timeout">((resolve) => {
    timer = setTimeout(() => resolve("timeout"), Math.max(0, ms));
  });
  return { promise, cancel: () => clearTimeout(timer) };
}

/** Creates a notifier over the given sinks. Throws `NotifierError` (`INVALID_OPTION`) on bad options only. */
export function createNotifier(options: NotifierOptions): Notifier {
  const log = options.logger ?? silentLogger;
  const now = options.now ?? (() => new Date());
  const capacity = options.queueCapacity ?? 1000;
  if (!Number.isInteger(capacity) || capacity < 1) {
    throw new NotifierError(
      "INVALID_OPTION",
      `queueCapacity must be an integer >= 1, got ${String(capacity)}`,
    );
  }
  const names = new Set<string>();
  for (const sink of options.sinks) {
    checkRetry(sink);
    if (names.has(sink.name)) throw new NotifierError("INVALID_OPTION", `two sinks are named ${sink.name}`);
    names.add(sink.name);
  }
  const workers = options.sinks.map((sink) => new SinkWorker(sink, sink.queueCapacity ?? capacity, log));
  let accepted = 0;
  let refused = 0;
  let closed = false;

  async function flush(deadlineMs: number): Promise<FlushResult> {
    const timer = waitFor(deadlineMs);
    const result = await Promise.race([
      Promise.all(workers.map((w) => w.idle())).then(() => "idle" as const),
      timer.promise,
    ]);
    timer.cancel();
    const pending = workers.reduce((sum, w) => sum + w.pending, 0);
    return { drained: result === "idle" && pending === 0, pending };
  }

  return {
    notify(notification, snapshot) {
      try {
        if (closed) {
          refused += 1;
          log.warn({ id: notification?.id, code: "CLOSED" }, "notify() after close: notification ignored");
          return;
        }
        const rendered = renderNotification(notification, options.context, now(), snapshot);
        accepted += 1;
        log.debug(
          { id: rendered.id, severity: rendered.severity, subject: rendered.subject },
          "notification queued",
        );
        for (const w of workers) w.offer(rendered);
      } catch (err) {
        // Only reachable through untyped input; the caller is in the middle of a failover.
        refused += 1;
        log.error({ err: errorInfo(err) }, "notification could not be rendered: ignored");
      }
    },
    flush,
    async close(deadlineMs) {
      if (closed) return { drained: true, pending: 0 };
      const flushed = await flush(deadlineMs);
      closed = true;
      const left = workers.map((w) => ({ w, items: w.stop() }));
      const abandoned = left.reduce((sum, l) => sum + l.items.length, 0);
      // What a sink never delivered (a mail still retrying at shutdown) is handed to the sinks
      // that keep a record (the cluster log), so stopping within the deadline loses no trace.
      for (const { w, items } of left) {
        if (items.length === 0) continue;
        for (const other of workers) {
          if (other === w || !other.sink.recordUndelivered) continue;
          try {
            other.sink.recordUndelivered(w.sink.name, items);
          } catch (err) {
            log.warn(
              { sink: other.sink.name, err: errorInfo(err) },
              "could not record undelivered notifications",
            );
          }
        }
      }
      await Promise.all(
        workers.map(async (w) => {
          try {
            await w.sink.close?.();
          } catch (err) {
            log.warn({ sink: w.sink.name, err: errorInfo(err) }, "sink did not close cleanly");
          }
        }),
      );
      return { drained: flushed.drained && abandoned === 0, pending: abandoned };
    },
    stats() {
      const sinks: Record<string, SinkStats> = {};
      for (const w of workers) sinks[w.sink.name] = w.stats();
      return { accepted, refused, sinks };
    },
  };
}
