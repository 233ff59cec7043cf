import { readFileSync } from "node:fs";
import type { ConnectionOptions as TlsOptions } from "node:tls";
import { DbProbeError } from "./errors.ts";

/** libpq's sslmode values (jdbc.sslmode). */
export const SSL_MODES = ["disable", "allow", "prefer", "require", "verify-ca", "verify-full"] as const;
export type SslMode = (typeof SSL_MODES)[number];

/**
 * TLS as the properties describe it (what @efm/properties-parser's `tlsSettings` returns):
 * libpq's sslmode and the files it uses, already resolved to paths (null = none).
 */
export interface DbTls {
  mode: SslMode;
  /** jdbc.sslrootcert (or ~/.postgresql/root.crt): the certificates to trust. */
  rootCert?: string | null;
  /** jdbc.sslcert / jdbc.sslkey: a client certificate and its key, offered when set. */
  cert?: string | null;
  key?: string | null;
  /**
   * jdbc.ssl=true without jdbc.sslmode: with no root certificate file the system's CAs are
   * trusted instead of failing as libpq's verify-full would.
   */
  systemCa?: boolean;
}

/** One way of opening a connection: plain TCP (false) or TLS with these node options. */
export type Attempt = false | TlsOptions;

/** The property an operator changes to pick another mode. */
function modeProperty(tls: DbTls): string {
  return tls.systemCa ? "jdbc.ssl (or jdbc.sslmode)" : "jdbc.sslmode";
}

function readPem(path: string, property: string, address: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    throw new DbProbeError(
      "SSL_FAILED",
      `TLS to ${address}: cannot read ${property} ${path}: ${(err as Error).message}`,
      { address, detail: (err as NodeJS.ErrnoException).code ?? null, cause: err },
    );
  }
}

/**
 * node TLS options for a TLS attempt under libpq's rules: the chain is checked in verify-ca
 * and verify-full, and (as libpq does) in every other mode too when a root certificate file
 * exists; the host name (or IP address, against the certificate's IP SANs) only in
 * verify-full. Files are read now, so a renewed certificate is used by the next connection.
 */
export function tlsOptions(tls: DbTls, address: string): TlsOptions {
  const verifyChain = tls.mode === "verify-ca" || tls.mode === "verify-full" || Boolean(tls.rootCert);
  const out: TlsOptions = {};
  if (tls.cert) {
    out.cert = readPem(tls.cert, "jdbc.sslcert", address);
    if (tls.key) out.key = readPem(tls.key, "jdbc.sslkey", address);
  }
  if (!verifyChain) {
    out.rejectUnauthorized = false;
    return out;
  }
  out.rejectUnauthorized = true;
  if (tls.rootCert) out.ca = readPem(tls.rootCert, "jdbc.sslrootcert", address);
  else if (!tls.systemCa) {
    throw new DbProbeError(
      "SSL_FAILED",
      `TLS to ${address}: jdbc.sslmode=${tls.mode} checks the server's certificate against a root certificate, but there is none: set jdbc.sslrootcert to the CA certificate file, or jdbc.sslmode=require to encrypt without checking`,
      { address, detail: "NO_ROOT_CERT" },
    );
  }
  // node checks the name unless told otherwise; verify-ca (and the libpq rule above) do not.
  if (tls.mode !== "verify-full") out.checkServerIdentity = () => undefined;
  return out;
}

/**
 * The connection attempts of a mode, in order: `allow` tries plain TCP first and TLS when the
 * server refuses it, `prefer` the other way round, the others one attempt.
 */
export function attempts(tls: DbTls, address: string): Attempt[] {
  switch (tls.mode) {
    case "disable":
      return [false];
    case "allow":
      return [false, tlsOptions(tls, address)];
    case "prefer":
      return [tlsOptions(tls, address), false];
    default:
      return [tlsOptions(tls, address)];
  }
}

/**
 * Whether a failed first attempt lets `allow`/`prefer` try the other way, as libpq does: the
 * server refused the login (pg_hba.conf `hostnossl`/`hostssl` lines), or TLS itself failed.
 * A refused or silent server is not asked twice.
 */
export function mayFallBack(err: unknown): boolean {
  const e = (err ?? {}) as { code?: unknown; severity?: unknown };
  if (typeof e.severity === "string") return e.code === "28000";
  return tlsFailureKind(err) !== null;
}

const UNKNOWN_CA = new Set([
  "SELF_SIGNED_CERT_IN_CHAIN",
  "UNABLE_TO_GET_ISSUER_CERT",
  "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
  "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
  "CERT_SIGNATURE_FAILURE",
]);

/** Which TLS check an error is about, or null when it is not a TLS failure. */
export type TlsFailureKind = "self-signed" | "unknown-ca" | "host-mismatch" | "no-ssl" | "expired" | "other";

export function tlsFailureKind(err: unknown): TlsFailureKind | null {
  const e = (err ?? {}) as { code?: unknown; message?: unknown };
  const code = typeof e.code === "string" ? e.code : "";
  const message = typeof e.message === "string" ? e.message : "";
  if (code === "DEPTH_ZERO_SELF_SIGNED_CERT") return "self-signed";
  if (UNKNOWN_CA.has(code)) return "unknown-ca";
  if (code === "ERR_TLS_CERT_ALTNAME_INVALID") return "host-mismatch";
  if (code === "CERT_HAS_EXPIRED" || code === "CERT_NOT_YET_VALID") return "expired";
  if (/does not support SSL/i.test(message)) return "no-ssl";
  if (/CERT|SSL|TLS/.test(code) || /error establishing an SSL connection/i.test(message)) return "other";
  return null;
}

/**
 * Turn a TLS failure into an error that says which check failed and which property to
 * change; null for anything else (classify handles it).
 */
export function explainTlsFailure(err: unknown, tls: DbTls, address: string): DbProbeError | null {
  const kind = tlsFailureKind(err);
  if (kind === null) return null;
  const raw = (err as { message?: unknown }).message;
  const detail = typeof (err as { code?: unknown }).code === "string" ? (err as { code: string }).code : kind;
  const trusted = tls.rootCert ? `jdbc.sslrootcert (${tls.rootCert})` : "the system's trusted CAs";
  let why: string;
  switch (kind) {
    case "self-signed":
      why = `the server's certificate is self-signed and not in ${trusted}: set jdbc.sslrootcert to that certificate (or to the CA that should sign it), or set jdbc.sslmode=require to encrypt without checking the certificate`;
      break;
    case "unknown-ca":
      why = `the server's certificate was signed by an unknown CA, one not in ${trusted}: set jdbc.sslrootcert to the certificate of the CA that signed it`;
      break;
    case "host-mismatch":
      why = `host name mismatch: the server's certificate does not name ${address} (${String(raw)}): reissue it with ${address} in its subject alternative names, or set jdbc.sslmode=verify-ca to check only that a trusted CA signed it`;
      break;
    case "expired":
      why = `the server's certificate is not valid now (${String(raw)}): renew it on the server`;
      break;
    case "no-ssl":
      why =
        tls.mode === "allow" || tls.mode === "prefer"
          ? `the server does not support SSL (ssl = off in its postgresql.conf) and refused the plain connection jdbc.sslmode=${tls.mode} falls back to: turn ssl on there, or let this host in without TLS in its pg_hba.conf`
          : `the server does not support SSL (ssl = off in its postgresql.conf): turn ssl on there, or set ${modeProperty(tls)} to a mode that allows plain connections (prefer or disable)`;
      break;
    default:
      why = `the TLS handshake failed (${String(raw)}); check jdbc.sslmode, jdbc.sslrootcert, jdbc.sslcert and jdbc.sslkey`;
  }
  return new DbProbeError("SSL_FAILED", `TLS to ${address} failed: ${why}`, { address, detail, cause: err });
}
