import type { ConnectionOptions as TlsOptions } from "node:tls";
import pg from "pg";
import { DbProbeError } from "./errors.ts";
import {
  type Attempt,
  attempts,
  type DbTls,
  explainTlsFailure,
  mayFallBack,
  SSL_MODES,
  tlsFailureKind,
} from "./tls.ts";

/** How to reach one database, as the agent's properties describe it. */
export interface DbConnectionOptions {
  /** Address of the database host (an agent's node address). */
  host: string;
  /** db.port */
  port: number;
  /** db.user */
  user: string;
  /** The decrypted db.password.encrypted. */
  password: string;
  /** db.database */
  database: string;
  /**
   * TLS. A `DbTls` (jdbc.sslmode and its files, see tls.ts) follows libpq's sslmode rules,
   * including `allow`/`prefer` trying the other way when the first fails. `true` = TLS
   * verifying the certificate and host against the system CAs (NODE_EXTRA_CA_CERTS adds more);
   * node TLS options are used as given. false/absent = plain TCP.
   */
  ssl?: boolean | TlsOptions | DbTls;
  /** Shown in pg_stat_activity; default "efm". */
  applicationName?: string;
}

function isDbTls(ssl: DbConnectionOptions["ssl"]): ssl is DbTls {
  return typeof ssl === "object" && ssl !== null && "mode" in ssl;
}

/** The connection attempts these options make, in order (one, except for allow/prefer). */
export function connectionAttempts(options: DbConnectionOptions): Attempt[] {
  const ssl = options.ssl;
  if (isDbTls(ssl)) return attempts(ssl, options.host);
  return [ssl === true ? {} : ssl === false || ssl === undefined ? false : ssl];
}

/**
 * node-postgres client settings for these options (no timeouts: callers enforce deadlines);
 * `attempt` picks one of `connectionAttempts`, default the first.
 */
export function clientConfig(options: DbConnectionOptions, attempt?: Attempt): pg.ClientConfig {
  const ssl = attempt ?? connectionAttempts(options)[0] ?? false;
  return {
    host: options.host,
    port: options.port,
    user: options.user,
    password: options.password,
    database: options.database,
    ssl,
    application_name: options.applicationName ?? "efm",
    keepAlive: true,
  };
}

/** Validate connection options; throws INVALID_OPTIONS naming the bad field. */
export function checkConnectionOptions(options: DbConnectionOptions): void {
  const o = options as unknown as Record<string, unknown>;
  for (const k of ["host", "user", "database"] as const) {
    if (typeof o[k] !== "string" || o[k] === "") {
      throw new DbProbeError("INVALID_OPTIONS", `database connection: ${k} must be a non-empty string`);
    }
  }
  if (typeof o.password !== "string") {
    throw new DbProbeError("INVALID_OPTIONS", "database connection: password must be a string");
  }
  if (!Number.isInteger(o.port) || (o.port as number) < 1 || (o.port as number) > 65535) {
    throw new DbProbeError("INVALID_OPTIONS", `database connection: port ${String(o.port)} is not 1..65535`);
  }
  const ssl = options.ssl;
  if (isDbTls(ssl) && !(SSL_MODES as readonly string[]).includes(ssl.mode)) {
    throw new DbProbeError(
      "INVALID_OPTIONS",
      `database connection: sslmode ${JSON.stringify(ssl.mode)} is not one of ${SSL_MODES.join(", ")}`,
    );
  }
}

/** Tear a client down at once (a hung server never answers a polite goodbye). */
export function destroyClient(client: pg.Client): void {
  try {
    client.connection.stream.destroy();
  } catch {
    // never connected
  }
  client.end().catch(() => {});
}

/**
 * Settle with p, or reject with TIMEOUT after ms (calling onTimeout first so the caller can
 * destroy the socket; the abandoned promise's late rejection is swallowed).
 */
export function withDeadline<T>(
  p: Promise<T>,
  ms: number,
  address: string,
  onTimeout: () => void,
): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(
      () => {
        p.catch(() => {});
        onTimeout();
        reject(new DbProbeError("TIMEOUT", `database at ${address}: no answer within ${ms} ms`, { address }));
      },
      Math.max(0, ms),
    );
    p.then(
      (v) => {
        clearTimeout(timer);
        resolve(v);
      },
      (e: unknown) => {
        clearTimeout(timer);
        reject(e);
      },
    );
  });
}

/**
 * Open a connection within timeoutMs (all attempts together); on failure nothing is left open.
 * TLS failures under a DbTls come back as SSL_FAILED errors saying which check failed; other
 * errors are raw (classify them).
 */
export async function openClient(options: DbConnectionOptions, timeoutMs: number): Promise<pg.Client> {
  const deadline = performance.now() + timeoutMs;
  const tries = connectionAttempts(options);
  const errors: unknown[] = [];
  for (const [i, attempt] of tries.entries()) {
    const client = new pg.Client(clientConfig(options, attempt));
    // An idle connection that dies later emits 'error'; the next use reports it instead of crashing us.
    client.on("error", () => {});
    try {
      await withDeadline(client.connect(), deadline - performance.now(), options.host, () =>
        destroyClient(client),
      );
      return client;
    } catch (err) {
      destroyClient(client);
      errors.push(err);
      if (i < tries.length - 1 && mayFallBack(err) && performance.now() < deadline) continue;
      break;
    }
  }
  // Of a TLS and a plain failure, the TLS one says what to fix.
  const err = errors.find((e) => tlsFailureKind(e) !== null) ?? errors.at(-1);
  const ssl = options.ssl;
  const explained = isDbTls(ssl) ? explainTlsFailure(err, ssl, options.host) : null;
  throw explained ?? err;
}

/** A query bounded by what is left of its session's deadline (a late answer destroys the socket). */
export type SessionQuery = <T extends pg.QueryResultRow>(
  text: string,
  values?: unknown[],
) => Promise<pg.QueryResult<T>>;

/**
 * One short session: open within timeoutMs, run `work` with queries bounded by what is left of
 * that same deadline, and always close (waiting at most 1 s more). Errors are raw, as openClient's:
 * classify them.
 */
export async function withSession<R>(
  options: DbConnectionOptions,
  timeoutMs: number,
  work: (q: SessionQuery) => Promise<R>,
): Promise<R> {
  const deadline = performance.now() + timeoutMs;
  const client = await openClient(options, timeoutMs);
  try {
    return await work((text, values) =>
      withDeadline(client.query(text, values), deadline - performance.now(), options.host, () =>
        destroyClient(client),
      ),
    );
  } finally {
    await withDeadline(client.end(), 1_000, options.host, () => destroyClient(client)).catch(() => {});
  }
}
