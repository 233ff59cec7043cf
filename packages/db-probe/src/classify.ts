import { DbProbeError, FAILURE_CODES, type FailureCode } from "./errors.ts";

/** A classified failure: what went wrong, against which database, in words an operator can act on. */
export interface Failure {
  code: FailureCode;
  /** Database host (address) the attempt was made against. */
  address: string;
  message: string;
  /** SQLSTATE or errno code behind the classification, if any. */
  detail: string | null;
}

const FAILURE_CODE_SET: ReadonlySet<string> = new Set(FAILURE_CODES);

const SQLSTATE: Record<string, FailureCode> = {
  "53300": "MAX_CONNECTIONS",
  "28P01": "INVALID_PASSWORD",
  "28000": "INVALID_AUTHORIZATION",
  "57P03": "NOT_ACCEPTING",
  "57P01": "NOT_ACCEPTING",
  "57P02": "NOT_ACCEPTING",
  "3D000": "DATABASE_MISSING",
};

const ERRNO: Record<string, FailureCode> = {
  ECONNREFUSED: "REFUSED",
  ETIMEDOUT: "TIMEOUT",
  EHOSTUNREACH: "UNREACHABLE",
  ENETUNREACH: "UNREACHABLE",
  EHOSTDOWN: "UNREACHABLE",
  ENETDOWN: "UNREACHABLE",
  ENOTFOUND: "UNREACHABLE",
  EAI_AGAIN: "UNREACHABLE",
  EADDRNOTAVAIL: "UNREACHABLE",
  ECONNRESET: "CONNECTION_LOST",
  EPIPE: "CONNECTION_LOST",
};

/**
 * Failures that say "the database is not there" at once, so the monitor need not wait out
 * local.timeout: nothing listening, or the server says it is starting or stopping.
 */
export const DEFINITE_FAILURES: ReadonlySet<FailureCode> = new Set<FailureCode>(["REFUSED", "NOT_ACCEPTING"]);

/** Whether a failure is definite (see DEFINITE_FAILURES). */
export function isDefinite(code: FailureCode): boolean {
  return DEFINITE_FAILURES.has(code);
}

/** The guide's wording for the SEVERE "Unable to connect to DB" notifications and status Info text. */
export function describeFailure(code: FailureCode, user: string): string {
  switch (code) {
    case "MAX_CONNECTIONS":
      return "The maximum connections limit has been reached.";
    case "INVALID_PASSWORD":
      return `Invalid password for db.user=${user}.`;
    case "INVALID_AUTHORIZATION":
      return "Invalid authorization specification.";
    case "REFUSED":
      return "Connection refused. Check that the hostname and port are correct and that the postmaster is accepting TCP/IP connections.";
    case "TIMEOUT":
      return "The database did not answer in time.";
    case "NOT_ACCEPTING":
      return "The database is not accepting connections (starting up or shutting down).";
    case "UNREACHABLE":
      return "The database host cannot be reached.";
    case "CONNECTION_LOST":
      return "The connection to the database was lost.";
    case "SSL_FAILED":
      return "An SSL connection could not be established.";
    case "DATABASE_MISSING":
      return "The database named by db.database does not exist.";
    case "QUERY_FAILED":
      return "The check query failed.";
    case "UNKNOWN":
      return "The database could not be reached.";
  }
}

/** Map whatever pg, net or tls threw to a Failure. Never throws. */
export function classify(err: unknown, address: string): Failure {
  if (err instanceof DbProbeError) {
    const code = FAILURE_CODE_SET.has(err.code) ? (err.code as FailureCode) : "UNKNOWN";
    return { code, address, message: err.message, detail: err.detail };
  }
  const e = (err ?? {}) as { code?: unknown; message?: unknown; severity?: unknown };
  const message = typeof e.message === "string" ? e.message : String(err);
  const code = typeof e.code === "string" ? e.code : null;
  const fromServer = typeof e.severity === "string";
  if (code !== null && fromServer) {
    return { code: SQLSTATE[code] ?? "QUERY_FAILED", address, message, detail: code };
  }
  if (code !== null && ERRNO[code] !== undefined)
    return { code: ERRNO[code], address, message, detail: code };
  if (code !== null && (/CERT|SSL|TLS/.test(code) || code === "ERR_TLS_CERT_ALTNAME_INVALID")) {
    return { code: "SSL_FAILED", address, message, detail: code };
  }
  if (/does not support SSL|SSL/i.test(message))
    return { code: "SSL_FAILED", address, message, detail: code };
  if (/timeout|timed out/i.test(message)) return { code: "TIMEOUT", address, message, detail: code };
  if (/Connection terminated|connection.*(closed|ended)/i.test(message)) {
    return { code: "CONNECTION_LOST", address, message, detail: code };
  }
  return { code: "UNKNOWN", address, message, detail: code };
}

/**
 * A DbProbeError for whatever a database operation on `address` threw: DbProbeErrors as they
 * are, anything else classified, its message prefixed with the address and `what` was done.
 */
export function classifiedError(err: unknown, address: string, what = ""): DbProbeError {
  if (err instanceof DbProbeError) return err;
  const f = classify(err, address);
  return new DbProbeError(f.code, `database at ${address}: ${what}${f.message}`, {
    address,
    detail: f.detail,
    cause: err,
  });
}
