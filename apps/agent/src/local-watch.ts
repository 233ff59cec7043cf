import {
  type CheckResult,
  ConnectionWatch,
  type DbConnectionOptions,
  type Failure,
  pgWatchConnector,
  type WatchConnector,
} from "@efm/db-probe";
import type { Logger } from "pino";

/** Options of LocalDbWatch. */
export interface LocalDbWatchOptions {
  /** The local database, as the periodic check reaches it. */
  conn: DbConnectionOptions;
  /** local.timeout.final: bound of the reconnect that tells a loss from a dropped connection. */
  finalTimeoutMs: number;
  /** local.period: pause between reconnects while the database is gone. */
  periodMs: number;
  log: Logger;
  /**
   * Called when the database is lost: the agent brings its periodic check forward (the engine's
   * `localCheck` timer, when no check is in flight) so the guide's confirmation starts now.
   */
  onLoss: () => void;
  /** How to open monitoring connections (default: node-postgres to `conn`); tests script one. */
  connector?: WatchConnector;
}

/**
 * The agent's side of db-probe's monitoring connection (which also watches the database's
 * postmaster when it runs on this host: its death counts as the connection's loss before the
 * backend notices it). Its loss is held until the engine's next regular local check takes it:
 * that check fails at once with the loss's failure, and the engine goes on exactly as after any
 * failed check (the final check bounded by local.timeout.final, then the report to the
 * coordinator). The final check always asks the database itself, so a loss never decides a
 * failure alone.
 */
export class LocalDbWatch {
  readonly #watch: ConnectionWatch;
  readonly #log: Logger;
  #loss: { failure: Failure; at: number } | null = null;
  /** Regular checks in flight, ended by a loss reported while they wait. */
  readonly #waiting = new Set<() => void>();

  constructor(o: LocalDbWatchOptions) {
    this.#log = o.log;
    this.#watch = new ConnectionWatch({
      connector: o.connector ?? pgWatchConnector({ ...o.conn, applicationName: "efm monitor" }),
      connectTimeoutMs: o.finalTimeoutMs,
      retryMs: o.periodMs,
      // A look at the postmaster is one read of /proc/<pid>/stat (microseconds): after a kill -9
      // the loss is seen within this, where the backend itself may notice hundreds of ms later.
      processPollMs: 20,
    });
    this.#watch.on((e) => {
      switch (e.type) {
        case "lost":
          this.#loss = { failure: e.failure, at: Date.now() };
          // `watch` names the event for log readers and the failover benchmark's timeline.
          this.#log.warn(
            { watch: "lost", cause: e.cause.code, causeDetail: e.cause.detail, failure: e.failure.code },
            `monitoring connection to the local database lost (${e.cause.message}) and reconnect failed: ${e.failure.message}`,
          );
          for (const wake of [...this.#waiting]) wake();
          o.onLoss();
          return;
        case "dropped":
          this.#log.info(
            { watch: "dropped", cause: e.cause.code, causeDetail: e.cause.detail },
            `monitoring connection to the local database dropped (${e.cause.message}): reconnecting`,
          );
          return;
        case "restored":
          this.#log.info({ watch: "restored" }, "monitoring connection to the local database open again");
          return;
        case "postmaster":
          this.#log.debug(
            { watch: "postmaster", pid: e.pid },
            `watching the local database's postmaster (pid ${e.pid}): its exit counts as the connection's loss`,
          );
          return;
        case "connected":
          // Whatever was lost is back: a loss no check took must not fail a later one.
          this.#loss = null;
          this.#log.debug(
            { watch: "connected", again: e.again },
            "monitoring connection to the local database open",
          );
          return;
      }
    });
  }

  start(): void {
    this.#watch.start();
  }

  stop(): void {
    this.#watch.stop();
  }

  /**
   * A regular (not final) local check: a loss not yet taken answers it at once, and so does a
   * loss reported while its real check is still waiting (a connection attempt to a dying server
   * can hang until local.timeout; the final check that follows asks the database again anyway).
   * A final check always waits for the database itself. A real check that started after the
   * loss has newer news, so it clears it.
   */
  async check(real: () => Promise<CheckResult>, final: boolean): Promise<CheckResult> {
    const taken = (): CheckResult | null => {
      const loss = this.#loss;
      if (final || loss === null) return null;
      this.#loss = null;
      return { ok: false, latencyMs: 0, failure: loss.failure };
    };
    const early = taken();
    if (early !== null) return early;
    const started = Date.now();
    const pending = real();
    let wake = () => {};
    const lost = new Promise<null>((resolve) => {
      wake = () => resolve(null);
    });
    if (!final) this.#waiting.add(wake);
    try {
      const r = await Promise.race([pending, lost]);
      if (r === null) {
        // The real check goes on, bounded by its own timeout; its answer is no longer needed.
        pending.catch(() => {});
        return taken() ?? (await pending);
      }
      if (this.#loss !== null && this.#loss.at <= started) this.#loss = null;
      return r;
    } finally {
      this.#waiting.delete(wake);
    }
  }
}
