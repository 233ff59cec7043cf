import type pg from "pg";
import { classify } from "./classify.ts";
import {
  checkConnectionOptions,
  type DbConnectionOptions,
  destroyClient,
  openClient,
  type SessionQuery,
  withDeadline,
  withSession,
} from "./connection.ts";
import { DbProbeError } from "./errors.ts";

/**
 * Whether `err` says the connection broke rather than the statement failed: the socket closed or
 * was reset, or the server ended the session (57P01 terminated, 57P02 crash of another backend,
 * 57P03 shutting down). Only such a failure is worth one more try on a fresh connection; a SQL
 * error (read-only, permission denied, a syntax error) would fail the same way again, and a
 * TIMEOUT has used up the time the caller gave.
 */
export function isConnectionLoss(err: unknown): boolean {
  if (err instanceof DbProbeError) return err.code === "CONNECTION_LOST" || err.code === "NOT_ACCEPTING";
  const code = classify(err, "").code;
  if (code === "CONNECTION_LOST" || code === "NOT_ACCEPTING") return true;
  // node-postgres refuses a query on a client whose connection already failed or was closed.
  const message = (err as { message?: unknown } | null)?.message;
  return typeof message === "string" && /is not queryable/.test(message);
}

/** One use of a session: its deadline, and the connection it is working on right now. */
interface Use {
  readonly deadline: number;
  expired: boolean;
  client: pg.Client | null;
}

/**
 * A connection to one database kept open between uses, so that the agent's own questions to its
 * local database on the failover path (positions, role, promotability, pg_promote) cost one
 * round trip each instead of a fork and an authentication on a loaded server.
 *
 * - Opened lazily with openClient (same TLS and fallback attempts as every other connection).
 * - Uses run one at a time, in call order, on that one connection.
 * - Each use is bounded by its own timeout, counted from the call (waiting for an earlier use
 *   included); a late answer destroys the socket, and the next use opens a new connection.
 * - A connection that was up and broke during a use (see isConnectionLoss) is dropped and the
 *   use runs once more on a fresh connection within the same deadline: a kept socket may have
 *   died since its last use (a restart), which says nothing about the server now. Failures to
 *   open, SQL errors and timeouts are not retried.
 * - Errors are raw, as withSession's (classify them). Never emits an unhandled 'error'.
 */
export class DbSession {
  readonly #conn: DbConnectionOptions;
  #client: pg.Client | null = null;
  /** Settles when the previous use is over (or has passed its deadline). Never rejects. */
  #tail: Promise<void> = Promise.resolve();
  #closed = false;

  constructor(conn: DbConnectionOptions) {
    checkConnectionOptions(conn);
    this.#conn = conn;
  }

  /** The database's address. */
  get address(): string {
    return this.#conn.host;
  }

  /** db.user, for messages about what it may do. */
  get user(): string {
    return this.#conn.user;
  }

  /** Whether a connection is open now (a use would then need no new one). */
  get connected(): boolean {
    return this.#client !== null;
  }

  /** Open the connection now unless one is open, within timeoutMs; rejects as run does. */
  connect(timeoutMs: number): Promise<void> {
    return this.run(timeoutMs, async () => {});
  }

  /** Run `work` with queries on the kept connection, all within timeoutMs of this call. */
  run<R>(timeoutMs: number, work: (q: SessionQuery) => Promise<R>): Promise<R> {
    const host = this.#conn.host;
    if (this.#closed) {
      return Promise.reject(new DbProbeError("INVALID_OPTIONS", `database session to ${host} is closed`));
    }
    const use: Use = { deadline: performance.now() + timeoutMs, expired: false, client: null };
    let release = () => {};
    const prev = this.#tail;
    this.#tail = new Promise<void>((r) => {
      release = r;
    });
    const turn = prev.then(() => this.#attempt(use, work));
    turn.then(release, release);
    return withDeadline(turn, use.deadline - performance.now(), host, () => {
      // Whatever this use still does goes to a destroyed socket and can touch no later use's
      // connection; the next use need not wait for it.
      use.expired = true;
      if (use.client !== null) this.#drop(use.client);
      release();
    });
  }

  async #attempt<R>(use: Use, work: (q: SessionQuery) => Promise<R>): Promise<R> {
    const host = this.#conn.host;
    let retried = false;
    for (;;) {
      if (use.expired)
        throw new DbProbeError("TIMEOUT", `database at ${host}: no time left`, { address: host });
      if (this.#closed) throw new DbProbeError("INVALID_OPTIONS", `database session to ${host} is closed`);
      let client = this.#client;
      if (client === null) {
        client = await openClient(this.#conn, use.deadline - performance.now());
        if (use.expired || this.#closed) {
          destroyClient(client);
          throw new DbProbeError("TIMEOUT", `database at ${host}: no time left`, { address: host });
        }
        this.#adopt(client);
      }
      const c = client;
      use.client = c;
      try {
        return await work((text, values) =>
          withDeadline(c.query(text, values), use.deadline - performance.now(), host, () => this.#drop(c)),
        );
      } catch (err) {
        // A statement that failed leaves the connection usable; only a broken one is replaced.
        if (!isConnectionLoss(err)) throw err;
        this.#drop(c);
        if (retried || use.expired || this.#closed || performance.now() >= use.deadline) throw err;
        retried = true;
      } finally {
        use.client = null;
      }
    }
  }

  /** Keep `c` as the session's connection until it ends by itself or is dropped. */
  #adopt(c: pg.Client): void {
    this.#client = c;
    // The server or the network ended it between uses: the next use opens a new one at once
    // rather than first failing on the dead socket. (openClient already swallows 'error'.)
    const forget = () => {
      if (this.#client === c) this.#client = null;
    };
    c.once("end", forget);
    c.once("error", forget);
  }

  #drop(c: pg.Client): void {
    if (this.#client === c) this.#client = null;
    destroyClient(c);
  }

  /** Close the connection (waiting at most 1 s for a polite goodbye); later uses reject. */
  async close(): Promise<void> {
    this.#closed = true;
    const c = this.#client;
    this.#client = null;
    if (c === null) return;
    await withDeadline(c.end(), 1_000, this.#conn.host, () => destroyClient(c)).catch(() => {});
  }
}

/** Where a piece of work runs: a fresh connection of its own, or a kept DbSession. */
export type DbTarget = DbConnectionOptions | DbSession;

/** The address and db.user of a target, validating connection options. */
export function targetOf(target: DbTarget): { host: string; user: string } {
  if (target instanceof DbSession) return { host: target.address, user: target.user };
  checkConnectionOptions(target);
  return { host: target.host, user: target.user };
}

/**
 * Run `work` within timeoutMs on `target`: over a kept session, or over a connection opened for
 * it and closed afterwards (withSession). Errors are raw.
 */
export function runOn<R>(
  target: DbTarget,
  timeoutMs: number,
  work: (q: SessionQuery) => Promise<R>,
): Promise<R> {
  return target instanceof DbSession ? target.run(timeoutMs, work) : withSession(target, timeoutMs, work);
}
