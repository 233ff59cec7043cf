import type pg from "pg";
import { classify, type Failure } from "./classify.ts";
import { checkConnectionOptions, type DbConnectionOptions, destroyClient, openClient } from "./connection.ts";
import { DbProbeError } from "./errors.ts";
import { type Clock, systemClock } from "./monitor.ts";
import { type ProcessIdentity, type ProcessProbe, postmasterOf, processAlive } from "./postmaster.ts";

/**
 * One open monitoring connection. `closed` settles (never rejects) when the connection ends,
 * with what ended it: the server's error (57P01 on a shutdown or a dead postmaster, 57P02 after
 * another backend crashed), the socket's, or null for a plain end of stream.
 */
export interface WatchLink {
  readonly closed: Promise<unknown>;
  /** Drop the connection (no goodbye awaited); `closed` settles afterwards. */
  close(): void;
  /**
   * The server's postmaster, when it runs on this host and is visible here (null when not, or
   * when it could not be learned); settles soon after the connection opened, never rejects.
   */
  readonly postmaster?: Promise<ProcessIdentity | null>;
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
  | { type: "restored"; at: number }
  /** The open connection's postmaster (`pid`) is watched too: its exit counts as a drop. */
  | { type: "postmaster"; at: number; pid: number };

/** Options of ConnectionWatch. */
export interface WatchOptions {
  connector: WatchConnector;
  /** Bound of each connection attempt: local.timeout.final, the guide's "one more try". */
  connectTimeoutMs: number;
  /** Pause between attempts while no connection can be opened: local.period. */
  retryMs: number;
  clock?: Clock;
  /** Is the postmaster still running? Default: one read of /proc/<pid>/stat ({@link processAlive}). */
  processProbe?: ProcessProbe;
  /** How often the postmaster is looked at while connected; default 100 ms. */
  processPollMs?: number;
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
 *
 * A backend notices its postmaster's death only at its next wait, which on a loaded host comes
 * hundreds of milliseconds after a kill -9 (and never while the backend is stopped), although a
 * new connection is refused at once: the listen socket died with the postmaster. So when the
 * link names its postmaster, the watch also looks at that process every `processPollMs` while
 * connected, and its exit is handled exactly like the connection ending: the immediate
 * reconnect decides. A probe that cannot tell stops this looking; the connection still reports.
 */
export class ConnectionWatch {
  readonly #connector: WatchConnector;
  readonly #clock: Clock;
  readonly #connectMs: number;
  readonly #retryMs: number;
  readonly #probe: ProcessProbe;
  readonly #pollMs: number;
  readonly #listeners = new Set<(e: WatchEvent) => void>();
  #state: WatchState = "idle";
  #link: WatchLink | null = null;
  #timer: unknown = null;
  /** The next look at the postmaster of the open link. */
  #pollTimer: unknown = null;
  /** Bumped on start/stop: callbacks of an older run do nothing. */
  #generation = 0;
  #everConnected = false;

  constructor(options: WatchOptions) {
    for (const [k, v] of [
      ["connectTimeoutMs", options.connectTimeoutMs],
      ["retryMs", options.retryMs],
      ["processPollMs", options.processPollMs ?? 100],
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
    this.#probe = options.processProbe ?? processAlive;
    this.#pollMs = options.processPollMs ?? 100;
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
    this.#stopPolling();
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
    void link.closed.then((why) => this.#dropped(gen, link, lossCause(why, this.#connector.address)));
    link.postmaster?.then(
      (pm) => {
        if (pm === null || gen !== this.#generation || this.#link !== link) return;
        this.#emit({ type: "postmaster", at: this.#clock.now(), pid: pm.pid });
        this.#poll(gen, link, pm);
      },
      () => {}, // not learned: the connection alone reports
    );
  }

  /** The open link ended (or its postmaster did): report it and reconnect at once. */
  #dropped(gen: number, link: WatchLink, cause: Failure): void {
    if (gen !== this.#generation || this.#link !== link) return;
    this.#link = null;
    this.#stopPolling();
    this.#emit({ type: "dropped", at: this.#clock.now(), cause });
    void this.#attempt("reconnecting", cause);
  }

  /** Look at the link's postmaster in `processPollMs`, and again after that while it runs. */
  #poll(gen: number, link: WatchLink, pm: ProcessIdentity): void {
    this.#pollTimer = this.#clock.setTimeout(async () => {
      this.#pollTimer = null;
      if (gen !== this.#generation || this.#link !== link) return;
      let alive: boolean;
      try {
        alive = await this.#probe(pm);
      } catch {
        return; // cannot tell (e.g. /proc became unreadable): leave it to the connection
      }
      if (gen !== this.#generation || this.#link !== link) return;
      if (alive) {
        this.#poll(gen, link, pm);
        return;
      }
      // The backend may not have noticed yet: drop the connection ourselves.
      link.close();
      this.#dropped(gen, link, {
        code: "CONNECTION_LOST",
        address: this.#connector.address,
        message: `the postmaster (pid ${pm.pid}) exited`,
        detail: "postmaster-exit",
      });
    }, this.#pollMs);
  }

  #stopPolling(): void {
    if (this.#pollTimer !== null) this.#clock.clearTimeout(this.#pollTimer);
    this.#pollTimer = null;
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

/**
 * Monitoring connections over node-postgres, with the agent's connection settings. Each link
 * learns its postmaster: the backend's `pg_backend_pid()`, then that process's parent, when the
 * backend is visible here as the PostgreSQL process serving this very connection (its title
 * names our port) ({@link postmasterOf}).
 */
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
        postmaster: learnPostmaster(client),
      };
    },
  };
}

/** The postmaster behind `client`'s backend, or null; never rejects. */
async function learnPostmaster(client: pg.Client): Promise<ProcessIdentity | null> {
  try {
    const r = await client.query<{ pid: number }>("SELECT pg_backend_pid() AS pid");
    const pid = r.rows[0]?.pid;
    if (typeof pid !== "number") return null;
    // Over TCP the backend's title names our port; over a Unix socket it says [local].
    const stream = (client as unknown as { connection?: { stream?: { localPort?: unknown } } }).connection
      ?.stream;
    const port = typeof stream?.localPort === "number" ? stream.localPort : undefined;
    return await postmasterOf(pid, port);
  } catch {
    return null; // the connection ended meanwhile, or /proc cannot be read: nothing to watch
  }
}
