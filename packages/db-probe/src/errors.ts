/**
 * Why a connection or query failed, as stable codes. The first three map to the guide's SEVERE
 * "Unable to connect to DB on <address>" notifications.
 */
export const FAILURE_CODES = [
  /** SQLSTATE 53300: max_connections (or the reserved superuser slots) reached. */
  "MAX_CONNECTIONS",
  /** SQLSTATE 28P01: wrong password (PostgreSQL also answers this for an unknown role). */
  "INVALID_PASSWORD",
  /** SQLSTATE 28000: no pg_hba.conf entry, or the role may not log in. */
  "INVALID_AUTHORIZATION",
  /** TCP connection refused: nothing listens on the address and port. */
  "REFUSED",
  /** No answer within the allowed time (hung server, dropped packets). */
  "TIMEOUT",
  /** SQLSTATE 57P03 / 57P01 / 57P02: starting up, shutting down, or terminated by the server. */
  "NOT_ACCEPTING",
  /** No route to the host, network down, name does not resolve. */
  "UNREACHABLE",
  /** An established connection broke (reset, closed by the peer). */
  "CONNECTION_LOST",
  /** TLS was required but could not be set up (server has no SSL, certificate rejected). */
  "SSL_FAILED",
  /** SQLSTATE 3D000: db.database does not exist. */
  "DATABASE_MISSING",
  /** Connected, but the statement itself failed. */
  "QUERY_FAILED",
  "UNKNOWN",
] as const;

export type FailureCode = (typeof FAILURE_CODES)[number];

/** Every code a DbProbeError can carry: a connection failure, or bad input to this package. */
export const DB_PROBE_ERROR_CODES = [...FAILURE_CODES, "INVALID_LSN", "INVALID_OPTIONS"] as const;

export type DbProbeErrorCode = (typeof DB_PROBE_ERROR_CODES)[number];

/** The one error class of @efm/db-probe. `address` names the database host involved, if any. */
export class DbProbeError extends Error {
  override readonly name = "DbProbeError";
  readonly code: DbProbeErrorCode;
  readonly address: string | null;
  /** The server's SQLSTATE or the socket's errno code, when there was one. */
  readonly detail: string | null;
  constructor(
    code: DbProbeErrorCode,
    message: string,
    options: { address?: string | null; detail?: string | null; cause?: unknown } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.address = options.address ?? null;
    this.detail = options.detail ?? null;
  }
}
