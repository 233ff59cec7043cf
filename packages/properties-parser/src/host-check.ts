import { accessSync, constants, statSync } from "node:fs";
import { isIP } from "node:net";
import { networkInterfaces } from "node:os";
import { join } from "node:path";
import { decrypt } from "@efm/password-crypto";
import type { Problem } from "./errors.ts";
import type { EfmConfig } from "./schema.ts";

/**
 * How facts about the machine are reported. `prop-check` is often run on another machine than
 * the node the files are for, so what only the node can prove (pg_ctl in db.bin, bind.address
 * being one of its addresses) is a warning there and an error when the agent itself starts.
 */
export type HostFacts = "errors" | "warnings";

/** One network address of this host (os.networkInterfaces' shape). */
export interface LocalAddress {
  address: string;
  netmask: string;
  family: string;
  internal: boolean;
}

export interface HostCheckOptions {
  cluster: string;
  hostFacts: HostFacts;
  lineOf?: (key: string) => number | undefined;
  /** This host's addresses; os.networkInterfaces() unless given (tests). */
  addresses?: () => LocalAddress[];
}

function localAddresses(): LocalAddress[] {
  return Object.values(networkInterfaces()).flatMap((list) => list ?? []);
}

function ipv4ToNumber(a: string): number {
  return a.split(".").reduce((acc, o) => acc * 256 + Number(o), 0);
}

/**
 * True when `host` is an address of this host. A loopback interface answers for its whole
 * subnet on Linux (127.0.0.1/8 serves 127.0.5.11 too), so there the netmask counts.
 */
export function isLocalAddress(host: string, addresses: readonly LocalAddress[]): boolean {
  const family = isIP(host);
  if (family === 0) return false;
  for (const a of addresses) {
    const aFamily = a.family === "IPv4" || (a.family as unknown) === 4 ? 4 : 6;
    if (aFamily !== family) continue;
    if (family === 6) {
      if (a.address.replace(/%.*$/, "").toLowerCase() === host.toLowerCase()) return true;
      continue;
    }
    if (a.address === host) return true;
    if (a.internal) {
      const mask = ipv4ToNumber(a.netmask);
      // Unsigned comparison of the network parts (bitwise ops are signed 32-bit in JS).
      if ((ipv4ToNumber(a.address) & mask) >>> 0 === (ipv4ToNumber(host) & mask) >>> 0) return true;
    }
  }
  return false;
}

/**
 * The checks that need more than the file's text: the password decrypts for this cluster, the
 * recovery directory exists, db.bin holds pg_ctl and bind.address is ours. `efm prop-check`
 * and the agent's start both run this one function, so they never disagree about a file.
 */
export function checkHost(
  c: EfmConfig,
  file: string,
  options: HostCheckOptions,
): { errors: Problem[]; warnings: Problem[] } {
  const errors: Problem[] = [];
  const warnings: Problem[] = [];
  const hostFact = options.hostFacts === "errors" ? errors : warnings;
  const line = (key: string) => {
    const l = options.lineOf?.(key);
    return l === undefined ? {} : { line: l };
  };

  try {
    decrypt(c.dbPasswordEncrypted, options.cluster);
  } catch (err) {
    // The password itself is never printed: only why it cannot be used.
    errors.push({
      code: "INVALID_VALUE",
      file,
      ...line("db.password.encrypted"),
      property: "db.password.encrypted",
      message: `cannot be decrypted for cluster ${options.cluster}: ${(err as Error).message}`,
    });
  }

  if (!c.isWitness) {
    if (c.dbRecoveryConfDir !== undefined) {
      const why = missingDirectory(c.dbRecoveryConfDir);
      if (why) {
        errors.push({
          code: "INVALID_VALUE",
          file,
          ...line("db.recovery.conf.dir"),
          property: "db.recovery.conf.dir",
          value: c.dbRecoveryConfDir,
          message: why,
        });
      }
    }
    if (c.dbBin !== undefined) {
      const pgCtl = join(c.dbBin, "pg_ctl");
      const why = notExecutable(pgCtl);
      if (why) {
        hostFact.push({
          code: "INVALID_VALUE",
          file,
          ...line("db.bin"),
          property: "db.bin",
          value: c.dbBin,
          message: `${pgCtl} ${why}; db.bin must name the directory of pg_ctl`,
        });
      }
    }
    if (c.watchdogMode === "required") {
      // Only existence and write access: opening a watchdog device starts its countdown.
      const why = notWritable(c.watchdogDevice);
      if (why) {
        hostFact.push({
          code: "INVALID_VALUE",
          file,
          ...line("watchdog.device"),
          property: "watchdog.device",
          value: c.watchdogDevice,
          message: `${why}, and watchdog.mode=required lets no master run without it`,
        });
      }
    }
  }

  const addresses = (options.addresses ?? localAddresses)();
  if (!isLocalAddress(c.bindAddress.host, addresses)) {
    hostFact.push({
      code: "INVALID_VALUE",
      file,
      ...line("bind.address"),
      property: "bind.address",
      value: `${c.bindAddress.host}:${c.bindAddress.port}`,
      message: `${c.bindAddress.host} is not an address of this host (see "Network adapters" in efm prop-check)`,
    });
  }
  return { errors, warnings };
}

/** Why `path` is not an existing directory, or null when it is (or cannot be told). */
function missingDirectory(path: string): string | null {
  try {
    return statSync(path).isDirectory() ? null : "is not a directory";
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    // Permission denied: the directory may well exist; the agent's own checks will tell.
    return code === "ENOENT" || code === "ENOTDIR" ? "does not exist on this host" : null;
  }
}

/** Why `path` is not an executable file, or null when it is (or cannot be told). */
function notExecutable(path: string): string | null {
  try {
    if (!statSync(path).isFile()) return "is not a file";
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return code === "ENOENT" || code === "ENOTDIR" ? "does not exist" : null;
  }
  try {
    accessSync(path, constants.X_OK);
    return null;
  } catch {
    return "is not executable";
  }
}

/** Why `path` cannot be written by this process, or null when it can. */
function notWritable(path: string): string | null {
  try {
    accessSync(path, constants.W_OK);
    return null;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return code === "ENOENT" || code === "ENOTDIR" ? "does not exist" : "is not writable by this user";
  }
}
