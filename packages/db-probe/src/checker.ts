import type pg from "pg";
import { classify, type Failure } from "./classify.ts";
import {
  checkConnectionOptions,
  type DbConnectionOptions,
  destroyClient,
  openClient,
  withDeadline,
} from "./connection.ts";
import { DbProbeError } from "./errors.ts";

/** Outcome of one health check. */
export type CheckResult =
  | { ok: true; latencyMs: number; inRecovery: boolean; backendPid: number }
  | { ok: false; latencyMs: number; failure: Failure };

/** Something that can check a database within a deadline; the monitor's only view of the database. */
export interface Checker {
  /** The database's address, for failures the monitor reports on the checker's behalf. */
  readonly address?: string;
  /** Resolve (never reject) within about timeoutMs. */
  check(timeoutMs: number): Promise<CheckResult>;
  /** Release any held connection. */
  close(): Promise<void>;
}

/** Options of PgChecker. */
export interface PgCheckerOptions {
  /**
   * db.reuse.connection.count: 0 = a fresh connection for every check; N = a connection is
   * reused N times (serves N + 1 checks) before a new one is opened.
   */
  reuseCount?: number;
}

// The backend pid costs nothing and lets tests and logs see whether a connection was reused.
const CHECK_SQL = "SELECT pg_is_in_recovery() AS r, pg_backend_pid() AS pid";

/** Health checks against one database over real connections, honouring db.reuse.connection.count. */
export class PgChecker implements Checker {
  readonly #conn: DbConnectionOptions;
  readonly #reuse: number;
  #client: pg.Client | null = null;
  #uses = 0;
  #closed = false;

  constructor(conn: DbConnectionOptions, options: PgCheckerOptions = {}) {
    checkConnectionOptions(conn);
    const reuse = options.reuseCount ?? 0;
    if (!Number.isInteger(reuse) || reuse < 0) {
      throw new DbProbeError(
        "INVALID_OPTIONS",
        `db.reuse.connection.count=${reuse}: expected a whole number >= 0`,
      );
    }
    this.#conn = conn;
    this.#reuse = reuse;
  }

  get address(): string {
    return this.#conn.host;
  }

  async check(timeoutMs: number): Promise<CheckResult> {
    const started = performance.now();
    const deadline = started + timeoutMs;
    let mayRetry = true;
    for (;;) {
      const reused = this.#client !== null;
      try {
        if (this.#closed) throw new DbProbeError("INVALID_OPTIONS", "checker is closed");
        if (this.#client === null) {
          this.#client = await openClient(this.#conn, deadline - performance.now());
          this.#uses = 0;
        }
        const client = this.#client;
        const res = await withDeadline(
          client.query(CHECK_SQL),
          deadline - performance.now(),
          this.#conn.host,
          () => destroyClient(client),
        );
        const latencyMs = performance.now() - started;
        this.#uses++;
        if (this.#uses > this.#reuse) await this.#release();
        return {
          ok: true,
          latencyMs,
          inRecovery: res.rows[0]?.r === true,
          backendPid: Number(res.rows[0]?.pid),
        };
      } catch (err) {
        this.#drop();
        // A kept connection may have died since its last use (server restart, kill -9): that says
        // nothing about the server now, so ask once more on a fresh connection.
        if (reused && mayRetry && performance.now() < deadline) {
          mayRetry = false;
          continue;
        }
        return { ok: false, latencyMs: performance.now() - started, failure: classify(err, this.#conn.host) };
      }
    }
  }

  async #release(): Promise<void> {
    const c = this.#client;
    this.#client = null;
    if (c === null) return;
    // Terminate politely so the backend exits now, but never wait long for it.
    await withDeadline(c.end(), 1_000, this.#conn.host, () => destroyClient(c)).catch(() => {});
  }

  #drop(): void {
    const c = this.#client;
    this.#client = null;
    if (c !== null) destroyClient(c);
  }

  async close(): Promise<void> {
    this.#closed = true;
    await this.#release();
  }
}

/**
 * "Can I reach database X?" (the guide's remote check, bounded by remote.timeout): a fresh
 * connection and one query, closed afterwards. Never rejects.
 */
export async function remoteCheck(conn: DbConnectionOptions, timeoutMs: number): Promise<CheckResult> {
  const checker = new PgChecker(conn, { reuseCount: 0 });
  try {
    return await checker.check(timeoutMs);
  } finally {
    await checker.close();
  }
}
