import { readFileSync } from "node:fs";
import { basename } from "node:path";
import { type Problem, PropertiesError } from "./errors.ts";
import { escapeProperty, type PropertyEntry, parseJavaProperties } from "./java-properties.ts";
import {
  type EfmConfig,
  formatHostPort,
  IGNORED_KEYS,
  netmaskToPrefix,
  PROPERTIES,
  prefixToNetmask,
  REPLACED_KEYS,
  VIP_KEYS,
  type VirtualIp,
} from "./schema.ts";
import { isIP } from "node:net";
import { checkHost, type HostFacts } from "./host-check.ts";
import { checkTlsFiles, checkTlsProperties } from "./tls.ts";

/** The outcome of reading a properties file: a config only when there are no errors. */
export interface ConfigResult {
  config: EfmConfig | null;
  warnings: Problem[];
  errors: Problem[];
}

const KNOWN_KEYS: string[] = [
  ...PROPERTIES.flatMap((p) => [p.key, ...(p.aliases ?? [])]),
  ...Object.values(VIP_KEYS).flat(),
  ...IGNORED_KEYS,
];

/** The cluster name is the base name of the properties file: `acctg.properties` -> `acctg`. */
export function clusterNameFromPath(path: string): string {
  return basename(path).replace(/\.properties$/, "");
}

/**
 * Read and validate a properties file, reporting every problem at once. Unlike `parseConfig`
 * this also checks the files the properties name (TLS certificates and keys) as the calling
 * user, whose home directory holds libpq's default certificate files; `checkFiles: false`
 * skips that for a caller that is not the agent's user (a status command run by anyone).
 * `hostFacts` also runs `checkHost` (the password decrypts for the cluster the file is named
 * after, the recovery directory, pg_ctl, bind.address): "errors" for the agent's start,
 * "warnings" for `efm prop-check`, which may run on another machine.
 */
export function readConfig(
  path: string,
  options: { home?: string; checkFiles?: boolean; hostFacts?: HostFacts } = {},
): ConfigResult {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    throw new PropertiesError(
      "UNREADABLE_FILE",
      path,
      `cannot read the properties file: ${(err as Error).message}`,
      {
        cause: err,
      },
    );
  }
  return parseConfig(text, path, { ...options, checkFiles: options.checkFiles ?? true });
}

/**
 * Validate properties text; `file` is used in messages only. With `checkFiles` the files the
 * properties name are checked too (see `checkTlsFiles`), `home` standing for `~`.
 */
export function parseConfig(
  text: string,
  file: string,
  options: { checkFiles?: boolean; home?: string; hostFacts?: HostFacts } = {},
): ConfigResult {
  const { entries, problems } = parseJavaProperties(text, file);
  const errors: Problem[] = [...problems];
  const warnings: Problem[] = [];

  // Last definition wins (as in Java), but a repeated key is worth a warning.
  const byKey = new Map<string, PropertyEntry>();
  for (const e of entries) {
    const earlier = byKey.get(e.key);
    if (earlier) {
      warnings.push({
        code: "DUPLICATE_PROPERTY",
        file,
        line: e.line,
        property: e.key,
        message: `defined again; this value replaces the one on line ${earlier.line}`,
      });
    }
    byKey.set(e.key, e);
  }

  for (const e of byKey.values()) {
    if (/^(["']).*\1$/s.test(e.value) || /^["']/.test(e.value)) {
      errors.push({
        code: "QUOTED_VALUE",
        file,
        line: e.line,
        property: e.key,
        value: e.value,
        message: "quoted strings are not allowed in property values; write the value without quotes",
      });
    }
    if (e.key in REPLACED_KEYS) {
      errors.push({
        code: "REPLACED_PROPERTY",
        file,
        line: e.line,
        property: e.key,
        message: `this property was replaced in EFM 2.0; use ${REPLACED_KEYS[e.key]}`,
      });
    } else if ((IGNORED_KEYS as readonly string[]).includes(e.key)) {
      if (e.value !== "") {
        warnings.push({
          code: "IGNORED_PROPERTY",
          file,
          line: e.line,
          property: e.key,
          message: "accepted and ignored: this failover manager needs no licence",
        });
      }
    } else if (!KNOWN_KEYS.includes(e.key)) {
      const guess = nearest(e.key, KNOWN_KEYS);
      warnings.push({
        code: "UNKNOWN_PROPERTY",
        file,
        line: e.line,
        property: e.key,
        message: `unknown property${guess ? `; did you mean ${guess}?` : ""}`,
      });
    }
  }

  const lookup = (keys: readonly string[]): PropertyEntry | undefined => {
    const found = keys.map((k) => byKey.get(k)).filter((e): e is PropertyEntry => e !== undefined);
    if (found.length > 1) {
      warnings.push({
        code: "DUPLICATE_PROPERTY",
        file,
        line: found[1]!.line,
        property: found[1]!.key,
        message: `same setting as ${found[0]!.key} on line ${found[0]!.line}; ${found[0]!.key} is used`,
      });
    }
    return found[0];
  };

  const isWitnessEntry = byKey.get("is.witness");
  const isWitness = isWitnessEntry?.value === "true";
  const out: Record<string, unknown> = {};
  for (const spec of PROPERTIES) {
    const entry = lookup([spec.key, ...(spec.aliases ?? [])]);
    const value = entry?.value ?? "";
    if (value === "") {
      const required = spec.need === "always" || (spec.need === "unless-witness" && !isWitness);
      if (required) {
        errors.push({
          code: "MISSING_PROPERTY",
          file,
          ...(entry ? { line: entry.line } : {}),
          property: spec.key,
          message: `a value is required${spec.need === "unless-witness" ? " on a node that is not a witness" : ""} (expected ${spec.type.expected})`,
        });
      } else if (spec.default !== undefined) {
        out[spec.field] = spec.default;
      }
      continue;
    }
    const parsed = spec.type.parse.safeParse(value);
    if (!parsed.success) {
      errors.push({
        code: "INVALID_VALUE",
        file,
        line: entry!.line,
        property: entry!.key,
        value,
        message: `expected ${spec.type.expected}`,
      });
      continue;
    }
    out[spec.field] = parsed.data;
  }

  const vip = readVirtualIp(lookup, file, errors);
  if (vip) out.virtualIp = vip;

  const config = out as unknown as EfmConfig;
  if (errors.length === 0) {
    crossCheck(config, byKey, file, errors, warnings);
  }
  if (errors.length === 0 && options.checkFiles === true) {
    errors.push(...checkTlsFiles(config, file, (k) => byKey.get(k)?.line, options.home));
  }
  if (errors.length === 0 && options.hostFacts !== undefined) {
    const host = checkHost(config, file, {
      cluster: clusterNameFromPath(file),
      hostFacts: options.hostFacts,
      lineOf: (k) => byKey.get(k)?.line,
    });
    errors.push(...host.errors);
    warnings.push(...host.warnings);
  }
  errors.sort(byLine);
  warnings.sort(byLine);
  return { config: errors.length === 0 ? config : null, warnings, errors };
}

function readVirtualIp(
  lookup: (keys: readonly string[]) => PropertyEntry | undefined,
  file: string,
  errors: Problem[],
): VirtualIp | undefined {
  const address = lookup(VIP_KEYS.address);
  const iface = lookup(VIP_KEYS.interface);
  const netmask = lookup(VIP_KEYS.netmask);
  const prefixEntry = lookup(VIP_KEYS.prefix);
  const mask = netmask?.value ? netmask : prefixEntry;
  const given = [address, iface, mask].filter((e) => e !== undefined && e.value !== "");
  if (given.length === 0) return undefined;
  if (given.length < 3) {
    errors.push({
      code: "INCONSISTENT_PROPERTIES",
      file,
      line: given[0]!.line,
      property: "virtualIp",
      message: "virtualIp, virtualIp.interface and virtualIp.netmask must be set together or all left blank",
    });
    return undefined;
  }
  let ok = true;
  const family = isIP(address!.value);
  if (family === 0) {
    errors.push(invalid(file, address!, "an IPv4 or IPv6 address"));
    ok = false;
  }
  if (!/^[A-Za-z0-9_.@-]+(:[A-Za-z0-9_-]+)?$/.test(iface!.value) || iface!.value.length > 15) {
    errors.push(invalid(file, iface!, "a network interface name, optionally with an alias such as eth0:1"));
    ok = false;
  }
  let prefix: number | null = null;
  if (mask === prefixEntry) {
    prefix = /^\d{1,3}$/.test(mask!.value) ? Number(mask!.value) : null;
    if (prefix === null || prefix > (family === 6 ? 128 : 32)) {
      errors.push(invalid(file, mask!, `a prefix length from 0 to ${family === 6 ? 128 : 32}`));
      ok = false;
    }
  } else if (family === 6 && /^\d{1,3}$/.test(mask!.value) && Number(mask!.value) <= 128) {
    prefix = Number(mask!.value);
  } else {
    prefix = netmaskToPrefix(mask!.value);
    if (prefix === null) {
      errors.push(invalid(file, mask!, "a netmask with contiguous one bits, for example 255.255.255.0"));
      ok = false;
    }
  }
  return ok ? { address: address!.value, interface: iface!.value, prefix: prefix! } : undefined;
}

function invalid(file: string, e: PropertyEntry, expected: string): Problem {
  return {
    code: "INVALID_VALUE",
    file,
    line: e.line,
    property: e.key,
    value: e.value,
    message: `expected ${expected}`,
  };
}

function crossCheck(
  c: EfmConfig,
  byKey: Map<string, PropertyEntry>,
  file: string,
  errors: Problem[],
  warnings: Problem[],
): void {
  const lineOf = (k: string) => byKey.get(k)?.line;
  if (c.adminPort === c.bindAddress.port) {
    errors.push({
      code: "INCONSISTENT_PROPERTIES",
      file,
      ...optLine(lineOf("admin.port")),
      property: "admin.port",
      value: String(c.adminPort),
      message: "admin.port must differ from the port of bind.address",
    });
  }
  const http = c.httpBindAddress;
  if (http && (http.port === c.adminPort || http.port === c.bindAddress.port)) {
    errors.push({
      code: "INCONSISTENT_PROPERTIES",
      file,
      ...optLine(lineOf("http.bind.address")),
      property: "http.bind.address",
      value: formatHostPort(http),
      message: `its port ${http.port} is already taken by ${http.port === c.adminPort ? "admin.port" : "bind.address"}`,
    });
  }
  if (!c.isWitness && c.localTimeoutFinal > c.localTimeout) {
    warnings.push({
      code: "INCONSISTENT_PROPERTIES",
      file,
      ...optLine(lineOf("local.timeout.final")),
      property: "local.timeout.final",
      value: String(c.localTimeoutFinal),
      message: "is longer than local.timeout; the final check usually takes less time than local.timeout",
    });
  }
  checkTlsProperties(c, file, lineOf, errors, warnings);
}

function optLine(line: number | undefined): { line?: number } {
  return line === undefined ? {} : { line };
}

function byLine(a: Problem, b: Problem): number {
  return (a.line ?? Number.MAX_SAFE_INTEGER) - (b.line ?? Number.MAX_SAFE_INTEGER);
}

function nearest(key: string, candidates: string[]): string | undefined {
  let best: string | undefined;
  let bestD = Math.max(3, Math.floor(key.length / 4)) + 1;
  for (const c of candidates) {
    const d = levenshtein(key.toLowerCase(), c.toLowerCase());
    if (d < bestD) {
      bestD = d;
      best = c;
    }
  }
  return best;
}

function levenshtein(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      cur[j] = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = cur;
  }
  return prev[b.length]!;
}

/** Print a config as a properties file that `parseConfig` reads back to an equal config. */
export function printConfig(c: EfmConfig): string {
  const lines: string[] = [];
  for (const spec of PROPERTIES) {
    const v = c[spec.field];
    lines.push(
      `${escapeProperty(spec.key, true)}=${v === undefined ? "" : escapeProperty(spec.type.print(v), false)}`,
    );
  }
  const vip = c.virtualIp;
  lines.push(`virtualIp=${vip?.address ?? ""}`);
  lines.push(`virtualIp.interface=${vip?.interface ?? ""}`);
  const mask =
    vip === undefined ? "" : isIP(vip.address) === 6 ? String(vip.prefix) : prefixToNetmask(vip.prefix);
  lines.push(`virtualIp.netmask=${mask}`);
  return `${lines.join("\n")}\n`;
}
