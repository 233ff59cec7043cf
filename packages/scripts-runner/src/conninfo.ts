import { isIP } from "node:net";
import { ScriptsRunnerError } from "./errors.ts";

/** One `keyword=value` pair of a libpq connection string, with where its value text sits. */
export interface ConninfoEntry {
  readonly keyword: string;
  /** The value after quote and backslash processing, as libpq sees it. */
  readonly value: string;
  /** Offset of the first character of the value's source text (the quote, if quoted). */
  readonly valueStart: number;
  /** Offset just past the value's source text. */
  readonly valueEnd: number;
}

// libpq uses C isspace(): space, \t, \n, \v, \f, \r.
const isSpace = (c: string | undefined): boolean =>
  c === " " || c === "\t" || c === "\n" || c === "\v" || c === "\f" || c === "\r";

/** True when `text` is a URI connection string (postgresql:// or postgres://). */
export function isConninfoUri(text: string): boolean {
  return /^postgres(ql)?:\/\//.test(text);
}

/**
 * Parses a `keyword=value ...` connection string exactly as libpq's conninfo_parse does:
 * blanks around `=`, values in single quotes with backslash escapes, unquoted values ending
 * at a blank with backslash escaping the next character. Throws CONNINFO_INVALID naming the
 * offending keyword. URIs are refused: the guide's primary_conninfo is keyword=value.
 */
export function parseConninfo(text: string): ConninfoEntry[] {
  if (isConninfoUri(text)) {
    throw new ScriptsRunnerError(
      "CONNINFO_INVALID",
      "URI connection strings are not supported in primary_conninfo; use keyword=value pairs",
    );
  }
  const entries: ConninfoEntry[] = [];
  let i = 0;
  const n = text.length;
  while (i < n) {
    if (isSpace(text[i])) {
      i++;
      continue;
    }
    const nameStart = i;
    let nameEnd = i;
    while (i < n && text[i] !== "=") {
      if (isSpace(text[i])) {
        nameEnd = i;
        while (i < n && isSpace(text[i])) i++;
        break;
      }
      i++;
      nameEnd = i;
    }
    const keyword = text.slice(nameStart, nameEnd);
    if (text[i] !== "=") {
      throw new ScriptsRunnerError("CONNINFO_INVALID", `missing "=" after "${keyword}" in connection string`);
    }
    if (keyword === "") {
      throw new ScriptsRunnerError("CONNINFO_INVALID", `empty keyword before "=" at offset ${i}`);
    }
    i++;
    while (i < n && isSpace(text[i])) i++;
    const valueStart = i;
    let value = "";
    if (text[i] !== "'") {
      while (i < n) {
        const c = text[i]!;
        if (isSpace(c)) break;
        if (c === "\\") {
          i++;
          if (i < n) value += text[i++];
        } else {
          value += c;
          i++;
        }
      }
      entries.push({ keyword, value, valueStart, valueEnd: i });
      // The blank that ended the value is consumed by the loop head.
    } else {
      i++;
      for (;;) {
        if (i >= n) {
          throw new ScriptsRunnerError(
            "CONNINFO_INVALID",
            `unterminated quoted string for "${keyword}" in connection string`,
          );
        }
        const c = text[i]!;
        if (c === "\\") {
          i++;
          if (i < n) value += text[i++];
          continue;
        }
        if (c === "'") {
          i++;
          break;
        }
        value += c;
        i++;
      }
      entries.push({ keyword, value, valueStart, valueEnd: i });
    }
  }
  return entries;
}

/** Quotes a value for a connection string the way libpq's appendConnStrVal does. */
export function quoteConninfoValue(value: string): string {
  if (value !== "" && /^[A-Za-z0-9_.]+$/.test(value)) return value;
  return `'${value.replace(/[\\']/g, (c) => `\\${c}`)}'`;
}

/** Builds a connection string from pairs, quoting values as needed. */
export function formatConninfo(pairs: Iterable<readonly [string, string]>): string {
  const parts: string[] = [];
  for (const [keyword, value] of pairs) {
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(keyword)) {
      throw new ScriptsRunnerError("CONNINFO_INVALID", `"${keyword}" is not a connection keyword`);
    }
    parts.push(`${keyword}=${quoteConninfoValue(value)}`);
  }
  return parts.join(" ");
}

/** The effective value of `keyword` (libpq: the last occurrence wins), or undefined. */
export function conninfoValue(text: string, keyword: string): string | undefined {
  let found: string | undefined;
  for (const entry of parseConninfo(text)) if (entry.keyword === keyword) found = entry.value;
  return found;
}

/**
 * Points a connection string at `host`, changing nothing else byte for byte: every `host`
 * value is replaced (libpq uses the last, we leave no stale one behind); with no `host`
 * keyword, ` host=...` is appended. A `hostaddr` would still send libpq to the old master, so
 * it is replaced too when `host` is an IP literal and refused otherwise.
 */
export function setConninfoHost(text: string, host: string): string {
  if (host === "" || /[\s,]/.test(host)) {
    throw new ScriptsRunnerError("CONNINFO_INVALID", `"${host}" is not a single host name or address`);
  }
  const entries = parseConninfo(text);
  const replace = entries.filter((e) => e.keyword === "host" || e.keyword === "hostaddr");
  if (replace.some((e) => e.keyword === "hostaddr") && isIP(host) === 0) {
    throw new ScriptsRunnerError(
      "CONNINFO_INVALID",
      `connection string has hostaddr, which needs an IP address, but the new master is "${host}"`,
    );
  }
  const port = conninfoValue(text, "port");
  if (port?.includes(",")) {
    throw new ScriptsRunnerError(
      "CONNINFO_INVALID",
      `connection string lists several ports ("${port}"); cannot point it at one host`,
    );
  }
  let out = text;
  // Right to left so earlier offsets stay valid.
  for (const entry of [...replace].sort((a, b) => b.valueStart - a.valueStart)) {
    out = out.slice(0, entry.valueStart) + quoteConninfoValue(host) + out.slice(entry.valueEnd);
  }
  if (!replace.some((e) => e.keyword === "host")) {
    const sep = out === "" || isSpace(out[out.length - 1]) ? "" : " ";
    out = `${out}${sep}host=${quoteConninfoValue(host)}`;
  }
  return out;
}

/**
 * Sets `keyword` to `value`, changing nothing else byte for byte: every occurrence is replaced
 * (libpq uses the last; none is left to contradict it), or ` keyword=value` is appended.
 */
export function setConninfoValue(text: string, keyword: string, value: string): string {
  if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(keyword)) {
    throw new ScriptsRunnerError("CONNINFO_INVALID", `"${keyword}" is not a connection keyword`);
  }
  const entries = parseConninfo(text).filter((e) => e.keyword === keyword);
  let out = text;
  for (const entry of [...entries].sort((a, b) => b.valueStart - a.valueStart)) {
    out = out.slice(0, entry.valueStart) + quoteConninfoValue(value) + out.slice(entry.valueEnd);
  }
  if (entries.length === 0) {
    const sep = out === "" || isSpace(out[out.length - 1]) ? "" : " ";
    out = `${out}${sep}${keyword}=${quoteConninfoValue(value)}`;
  }
  return out;
}

/** The TLS part of a standby's primary_conninfo, from jdbc.sslmode and jdbc.sslrootcert. */
export interface ConninfoTls {
  readonly sslmode: string;
  /** Omitted: the server's OS user's ~/.postgresql/root.crt, as libpq defaults. */
  readonly sslrootcert?: string;
}

const CONNINFO_SSLMODES = ["disable", "allow", "prefer", "require", "verify-ca", "verify-full"];

/**
 * Carries the agents' TLS settings into a standby's primary_conninfo, so a standby pointed at
 * a new master replicates under the same rules the agents connect with: `sslmode` always,
 * `sslrootcert` when one is named. Other keywords (user, passfile, sslcert...) are kept.
 */
export function setConninfoTls(text: string, tls: ConninfoTls): string {
  if (!CONNINFO_SSLMODES.includes(tls.sslmode)) {
    throw new ScriptsRunnerError(
      "CONNINFO_INVALID",
      `sslmode "${tls.sslmode}" is not one of ${CONNINFO_SSLMODES.join(", ")}`,
    );
  }
  let out = setConninfoValue(text, "sslmode", tls.sslmode);
  if (tls.sslrootcert !== undefined) {
    if (!tls.sslrootcert.startsWith("/")) {
      throw new ScriptsRunnerError(
        "CONNINFO_INVALID",
        `sslrootcert "${tls.sslrootcert}" is not an absolute path`,
      );
    }
    out = setConninfoValue(out, "sslrootcert", tls.sslrootcert);
  }
  return out;
}

/**
 * What a standby's primary_conninfo should carry for the agents' TLS settings (db-probe's
 * DbTls, as the helper receives them), or null to leave it as it is: TLS off (`disable`), or
 * `jdbc.ssl=true` trusting the system's CAs, which libpq 15 cannot name in a connection string.
 */
export function conninfoTlsFor(ssl: unknown): ConninfoTls | null {
  if (typeof ssl !== "object" || ssl === null || !("mode" in ssl)) return null;
  const t = ssl as { mode: unknown; rootCert?: unknown; systemCa?: unknown };
  if (typeof t.mode !== "string" || t.mode === "disable") return null;
  const rootCert = typeof t.rootCert === "string" && t.rootCert !== "" ? t.rootCert : undefined;
  if (t.systemCa === true && rootCert === undefined) return null;
  return rootCert === undefined ? { sslmode: t.mode } : { sslmode: t.mode, sslrootcert: rootCert };
}
