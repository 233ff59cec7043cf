import type { ConnectionOptions as TlsOptions } from "node:tls";
import pg from "pg";
import { DbProbeError } from "./errors.ts";

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
   * jdbc.ssl: true = TLS on every connection, verifying the server certificate against the
   * system CAs (NODE_EXTRA_CA_CERTS adds more); pass node TLS options (e.g. `{ ca }`) to choose
   * what to trust. false/absent = plain TCP.
   */
  ssl?: boolean | TlsOptions;
  /** Shown in pg_stat_activity; default "efm". */
  applicationName?: string;
}

/** node-postgres client settings for these options (no timeouts: callers enforce deadlines). */
export function clientConfig(options: DbConnectionOptions): pg.ClientConfig {
  const ssl =
    options.ssl === true ? {} : options.ssl === false || options.ssl === undefined ? false : options.ssl;
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

/** Open a connection within timeoutMs; on failure nothing is left open. Errors are raw (classify them). */
export async function openClient(options: DbConnectionOptions, timeoutMs: number): Promise<pg.Client> {
  const client = new pg.Client(clientConfig(options));
  // An idle connection that dies later emits 'error'; the next use reports it instead of crashing us.
  client.on("error", () => {});
  try {
    await withDeadline(client.connect(), timeoutMs, options.host, () => destroyClient(client));
    return client;
  } catch (err) {
    destroyClient(client);
    throw err;
  }
}
