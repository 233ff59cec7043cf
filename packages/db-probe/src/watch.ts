import type pg from "pg";
import { classify, type Failure } from "./classify.ts";
import { checkConnectionOptions, type DbConnectionOptions, destroyClient, openClient } from "./connection.ts";
import { DbProbeError } from "./errors.ts";
import { type Clock, systemClock } from "./monitor.ts";

/**
 * One open monitoring connection. `closed` settles (never rejects) when the connection ends,
 * with what ended it: the server's error (57P01 on a shutdown or a dead postmaster, 57P02 after
 * another backend crashed), the socket's, or null for a plain end of stream.
 */
export interface WatchLink {
  readonly closed: Promise<unknown>;
  /** Drop the connection (no goodbye awaited); `closed` settles afterwards. */
  close(): void;
}

/** Opens monitoring connections to one database; the watch's only view of it. */
export interface WatchConnector {
  /** The database's address, named in failures. */
  readonly address: string;
  /** Open a connection within timeoutMs, or reject with what failed (classify() reads it). */
  connect(timeoutMs: number): Promise<WatchLink>;
}

/** What the watch reports. `at` is clock time in ms. */
export type WatchEvent =
  /** A monitoring connection is open (`again`: after a drop or a loss). */
  | { type: "connected"; at: number; again: boolean }
  /** The connection ended; a reconnect is being tried now. `cause` says how it ended. */
  | { type: "dropped"; at: number; cause: Failure }
  /**
   * The database is gone: the connection ended and the immediate reconnect failed too
   * (`failure`, e.g. REFUSED after a kill -9, NOT_ACCEPTING while it shuts down or recovers).
   * For the agent this is a failed local check, now rather than at the next local.period.
   */
  | { type: "lost"; at: number; cause: Failure; failure: Failure }
  /** A connection opened again after "lost". */
  | { type: "restored"; at: number };

/** Options of ConnectionWatch. */
export interface WatchOptions {
  connector: WatchConnector;
  /** Bound of each connection attempt: local.timeout.final, the guide's "one more try". */
  connectTimeoutMs: number;
  /** Pause between attempts while no connection can be opened: local.period. */
  retryMs: number;
  clock?: Clock;
}

/** Where the watch is. */
export type WatchState = "idle" | "connecting" | "watching" | "reconnecting" | "lost" | "stopped";

/**
 * A connection held open to the local database so that its loss is seen when it happens, not
 * at the next periodic check. The loss alone proves nothing (our backend may have been
 * terminated by an operator, or by idle_session_timeout), so the watch reconnects at once:
 * only when that fails too does it report "lost". Hangs are not its business: a server that
 * stops answering keeps the connection open, and the periodic check (HealthMonitor, or the
 * agent's engine) catches it.
 */
export class ConnectionWatch {
  readonly #connector: WatchConnector;
  readonly #clock: Clock;
  readonly #connectMs: number;
  readonly #retryMs: number;
  readonly #listeners = new Set<(e: WatchEvent) => void>();
  #state: WatchState = "idle";
  #link: WatchLink | null = null;
  #timer: unknown = null;
  /** Bumped on start/stop: callbacks of an older run do nothing. */
  #generation = 0;
  #everConnected = false;

  constructor(options: WatchOptions) {
    for (const [k, v] of [
      ["connectTimeoutMs", options.connectTimeoutMs],
      ["retryMs", options.retryMs],
    ] as const) {
      if (typeof v !== "number" || !Number.isFinite(v) || v <= 0) {
        throw new DbProbeError(
          "INVALID_OPTIONS",
          `connection watch: ${k} ${String(v)} must be a positive number`,
        );
      }
    }
    this.#connector = options.connector;
    this.#clock = options.clock ?? systemClock;
    this.#connectMs = options.connectTimeoutMs;
    this.#retryMs = options.retryMs;
  }

  get state(): WatchState {
    return this.#state;
  }

  /** Subscribe; returns the unsubscribe function. A throwing listener never breaks the watch. */
  on(listener: (e: WatchEvent) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Open the first connection (a failure here is retried quietly: nothing was lost yet). */
  start(): void {
    if (this.#state !== "idle" && this.#state !== "stopped") return;
    this.#generation++;
    this.#everConnected = false;
    void this.#attempt("connecting");
  }

  /** Close the connection and stop; nothing is reported afterwards. */
  stop(): void {
    this.#generation++;
    this.#state = "stopped";
    if (this.#timer !== null) this.#clock.clearTimeout(this.#timer);
    this.#timer = null;
    this.#link?.close();
    this.#link = null;
  }

  #emit(e: WatchEvent): void {
    for (const l of this.#listeners) {
      try {
        l(e);
      } catch {
        // a listener's bug must not stop the watch
      }
    }
  }

  /** One connection attempt bounded by connectTimeoutMs on the watch's clock. */
  #open(): Promise<WatchLink> {
    return new Promise<WatchLink>((resolve, reject) => {
      let settled = false;
      const timer = this.#clock.setTimeout(() => {
        if (settled) return;
        settled = true;
        reject(
          new DbProbeError(
            "TIMEOUT",
            `database at ${this.#connector.address}: no connection within ${this.#connectMs} ms`,
            { address: this.#connector.address },
          ),
        );
      }, this.#connectMs);
      let p: Promise<WatchLink>;
      try {
        p = this.#connector.connect(this.#connectMs);
      } catch (err) {
        p = Promise.reject(err);
      }
      p.then(
        (link) => {
          if (settled) {
            link.close(); // too late: the attempt already counted as failed
            return;
          }
          settled = true;
          this.#clock.clearTimeout(timer);
          resolve(link);
        },
        (err: unknown) => {
          if (settled) return;
          settled = true;
          this.#clock.clearTimeout(timer);
          reject(err);
        },
      );
    });
  }

  /**
   * Try to connect. `connecting`: first connection or retry after a failed one (quiet);
   * `reconnecting`: right after a drop (a failure is the loss); `lost`: retry after a loss.
   */
  async #attempt(mode: "connecting" | "reconnecting" | "lost", cause?: Failure): Promise<void> {
    const gen = this.#generation;
    this.#state = mode;
    let link: WatchLink;
    try {
      link = await this.#open();
    } catch (err) {
      if (gen !== this.#generation) return;
      const failure = classify(err, this.#connector.address);
      if (mode === "reconnecting") {
        this.#state = "lost";
        this.#emit({ type: "lost", at: this.#clock.now(), cause: cause ?? failure, failure });
        mode = "lost";
      }
      this.#timer = this.#clock.setTimeout(() => {
        this.#timer = null;
        if (gen === this.#generation) void this.#attempt(mode === "lost" ? "lost" : "connecting");
      }, this.#retryMs);
      return;
    }
    if (gen !== this.#generation) {
      link.close();
      return;
    }
    this.#link = link;
    this.#state = "watching";
    const now = this.#clock.now();
    if (mode === "lost") this.#emit({ type: "restored", at: now });
    this.#emit({ type: "connected", at: now, again: this.#everConnected });
    this.#everConnected = true;
    void link.closed.then((why) => {
      if (gen !== this.#generation || this.#link !== link) return;
      this.#link = null;
      const dropCause = lossCause(why, this.#connector.address);
      this.#emit({ type: "dropped", at: this.#clock.now(), cause: dropCause });
      void this.#attempt("reconnecting", dropCause);
    });
  }
}

/** How a monitoring connection ended, as a Failure (a plain end of stream is CONNECTION_LOST). */
export function lossCause(why: unknown, address: string): Failure {
  if (why === null || why === undefined) {
    return {
      code: "CONNECTION_LOST",
      address,
      message: "the server closed the monitoring connection",
      detail: null,
    };
  }
  const f = classify(why, address);
  return f.code === "UNKNOWN" ? { ...f, code: "CONNECTION_LOST" } : f;
}

/** Monitoring connections over node-postgres, with the agent's connection settings. */
export function pgWatchConnector(conn: DbConnectionOptions): WatchConnector {
  checkConnectionOptions(conn);
  return {
    address: conn.host,
    async connect(timeoutMs: number): Promise<WatchLink> {
      const client: pg.Client = await openClient(conn, timeoutMs);
      let first: unknown = null;
      const closed = new Promise<unknown>((resolve) => {
        // The server's FATAL (57P01...) arrives as 'error' before the stream's end; keep the
        // first, it says why.
        client.on("error", (err) => {
          first ??= err;
        });
        client.on("end", () => resolve(first));
      });
      return {
        closed,
        close: () => destroyClient(client),
      };
    },
  };
}
