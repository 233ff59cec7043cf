import { createPrivateKey, X509Certificate } from "node:crypto";
import { accessSync, constants, readFileSync, statSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import type { Problem } from "./errors.ts";
import type { EfmConfig, SslMode } from "./schema.ts";

/**
 * How the agent's database connections use TLS, after libpq's defaults are applied. The
 * structure is what @efm/db-probe takes as its `ssl` option.
 */
export interface TlsSettings {
  mode: SslMode;
  /** Certificate(s) to trust; null = none found. */
  rootCert: string | null;
  /** Client certificate and key offered to the server; null = none. */
  cert: string | null;
  key: string | null;
  /**
   * `jdbc.ssl=true` without `jdbc.sslmode`: verify-full, and with no root certificate file the
   * system's CAs are trusted, which is what `jdbc.ssl=true` always meant here.
   */
  systemCa: boolean;
}

/** libpq's default file names in `~/.postgresql/` of the user the connection is made as. */
export function defaultTlsPaths(home: string = homedir()): { rootCert: string; cert: string; key: string } {
  const dir = join(home, ".postgresql");
  return {
    rootCert: join(dir, "root.crt"),
    cert: join(dir, "postgresql.crt"),
    key: join(dir, "postgresql.key"),
  };
}

function exists(path: string): boolean {
  try {
    statSync(path);
    return true;
  } catch {
    return false;
  }
}

/** The effective sslmode: jdbc.sslmode when set, else verify-full for jdbc.ssl=true, else disable. */
export function effectiveSslMode(c: Pick<EfmConfig, "jdbcSsl" | "jdbcSslmode">): SslMode {
  return c.jdbcSslmode ?? (c.jdbcSsl ? "verify-full" : "disable");
}

/**
 * Resolve the TLS settings of a config as libpq would: a property that names a file wins; an
 * unset one falls back to the default file in `<home>/.postgresql/` when that file exists.
 */
export function tlsSettings(c: EfmConfig, home: string = homedir()): TlsSettings {
  const mode = effectiveSslMode(c);
  const d = defaultTlsPaths(home);
  const pick = (given: string | undefined, fallback: string): string | null =>
    given ?? (exists(fallback) ? fallback : null);
  if (mode === "disable") return { mode, rootCert: null, cert: null, key: null, systemCa: false };
  const cert = pick(c.jdbcSslcert, d.cert);
  return {
    mode,
    rootCert: pick(c.jdbcSslrootcert, d.rootCert),
    cert,
    // libpq looks for the key only when it has a certificate to go with it.
    key: cert === null ? null : (c.jdbcSslkey ?? d.key),
    systemCa: c.jdbcSslmode === undefined && c.jdbcSsl,
  };
}

/** Rules on the TLS properties that need no files: run with the other cross-field checks. */
export function checkTlsProperties(
  c: EfmConfig,
  file: string,
  lineOf: (key: string) => number | undefined,
  errors: Problem[],
  warnings: Problem[],
): void {
  const at = (key: string) => {
    const line = lineOf(key);
    return line === undefined ? {} : { line };
  };
  if (c.jdbcSsl && c.jdbcSslmode !== undefined && ["disable", "allow", "prefer"].includes(c.jdbcSslmode)) {
    errors.push({
      code: "INCONSISTENT_PROPERTIES",
      file,
      ...at("jdbc.sslmode"),
      property: "jdbc.sslmode",
      value: c.jdbcSslmode,
      message:
        "jdbc.ssl=true requires TLS on every connection, but this mode allows plain connections; set jdbc.ssl=false or choose require, verify-ca or verify-full",
    });
  }
  if (effectiveSslMode(c) === "disable") {
    for (const key of ["jdbc.sslrootcert", "jdbc.sslcert", "jdbc.sslkey"] as const) {
      const value = {
        "jdbc.sslrootcert": c.jdbcSslrootcert,
        "jdbc.sslcert": c.jdbcSslcert,
        "jdbc.sslkey": c.jdbcSslkey,
      }[key];
      if (value === undefined) continue;
      warnings.push({
        code: "INCONSISTENT_PROPERTIES",
        file,
        ...at(key),
        property: key,
        value,
        message: "ignored: TLS is off (set jdbc.sslmode to use it)",
      });
    }
  }
}

/**
 * Check the files the TLS settings name, as the agent's user will open them: each exists, is a
 * readable regular file holding what it should, and a private key is not open to group or
 * others (libpq refuses such a key too). Shared by `efm prop-check` and the agent's start.
 */
export function checkTlsFiles(
  c: EfmConfig,
  file: string,
  lineOf: (key: string) => number | undefined,
  home: string = homedir(),
): Problem[] {
  const problems: Problem[] = [];
  const t = tlsSettings(c, home);
  if (t.mode === "disable") return problems;
  const d = defaultTlsPaths(home);
  const report = (key: string, value: string, message: string) => {
    const line = lineOf(key);
    problems.push({
      code: "INVALID_VALUE",
      file,
      ...(line === undefined ? {} : { line }),
      property: key,
      value,
      message,
    });
  };
  const given = { rootCert: c.jdbcSslrootcert, cert: c.jdbcSslcert, key: c.jdbcSslkey };
  const readable = (key: string, path: string, explicit: boolean): Buffer | null => {
    const origin = explicit ? "" : ` (libpq's default for ${key} when it is not set)`;
    let st: ReturnType<typeof statSync>;
    try {
      st = statSync(path);
    } catch {
      report(key, path, `${path}${origin} does not exist`);
      return null;
    }
    if (!st.isFile()) {
      report(key, path, `${path}${origin} is not a regular file`);
      return null;
    }
    try {
      accessSync(path, constants.R_OK);
      return readFileSync(path);
    } catch {
      report(key, path, `${path}${origin} is not readable by the user the agent runs as`);
      return null;
    }
  };

  if (t.rootCert !== null) {
    const buf = readable("jdbc.sslrootcert", t.rootCert, given.rootCert !== undefined);
    if (buf !== null && !isCertificate(buf)) {
      report("jdbc.sslrootcert", t.rootCert, `${t.rootCert} holds no PEM certificate`);
    }
  } else if ((t.mode === "verify-ca" || t.mode === "verify-full") && !t.systemCa) {
    const line = lineOf("jdbc.sslmode");
    problems.push({
      code: "MISSING_PROPERTY",
      file,
      ...(line === undefined ? {} : { line }),
      property: "jdbc.sslrootcert",
      message: `jdbc.sslmode=${t.mode} checks the server's certificate against a root certificate, but jdbc.sslrootcert is not set and ${d.rootCert} does not exist; set jdbc.sslrootcert to the CA certificate file, or jdbc.sslmode=require to encrypt without checking`,
    });
  }
  if (t.cert !== null) {
    const buf = readable("jdbc.sslcert", t.cert, given.cert !== undefined);
    if (buf !== null && !isCertificate(buf)) {
      report("jdbc.sslcert", t.cert, `${t.cert} holds no PEM certificate`);
    }
  }
  if (t.key !== null) {
    const buf = readable("jdbc.sslkey", t.key, given.key !== undefined);
    if (buf !== null) {
      const st = statSync(t.key);
      // libpq: u=rw at most, or u=rw,g=r when root owns the file (a key shared through a group).
      const open = st.uid === 0 ? st.mode & 0o037 : st.mode & 0o077;
      if (open !== 0) {
        report(
          "jdbc.sslkey",
          t.key,
          `${t.key} has mode ${(st.mode & 0o777).toString(8).padStart(4, "0")}; a private key must not be accessible by group or others (chmod 0600 ${t.key})`,
        );
      } else {
        try {
          createPrivateKey(buf);
        } catch (err) {
          report(
            "jdbc.sslkey",
            t.key,
            `${t.key} is not an unencrypted PEM private key (${(err as Error).message})`,
          );
        }
      }
    }
  }
  return problems;
}

function isCertificate(buf: Buffer): boolean {
  try {
    new X509Certificate(buf);
    return true;
  } catch {
    return false;
  }
}
