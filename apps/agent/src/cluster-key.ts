import { hkdfSync, randomBytes, scryptSync } from "node:crypto";
import {
  chownSync,
  closeSync,
  fstatSync,
  openSync,
  readFileSync,
  renameSync,
  statSync,
  writeSync,
} from "node:fs";
import { AgentError } from "./errors.ts";

// The cluster key authenticates agent-to-agent traffic. Preferably it comes from a random
// 256-bit cluster secret, `<config dir>/<cluster>.secret`, made once by `efm init-secret` and
// copied to every node. EFM 2.0.3 files have no such file: the key is then stretched with scrypt
// from the database password and the cluster name, which keeps those clusters running unchanged
// but leaves agent traffic only as strong as that password.

/** Path of a cluster's secret file. */
export function secretPath(configDir: string, cluster: string): string {
  return `${configDir}/${cluster}.secret`;
}

/** The warning given (at start, in cluster-status, by prop-check) when there is no secret. */
export function noSecretWarning(path: string, cluster: string): string {
  return `no cluster secret at ${path}: agent traffic is only as strong as the database password; run 'efm init-secret ${cluster}' and copy the file to every node`;
}

// scrypt N=2^15, r=8: about 0.1 s and 32 MiB once per start, so each guess at the password from
// a sniffed frame costs an attacker as much.
const SCRYPT = { N: 1 << 15, r: 8, p: 1, maxmem: 64 * 1024 * 1024 };

/** The key of a cluster without a secret file (2.0.3 files). */
export function passwordClusterKey(cluster: string, dbPassword: string): Buffer {
  return scryptSync(dbPassword, `efm-cluster-key-v2\0${cluster}`, 32, SCRYPT);
}

/** The key derived from a cluster secret (32 random bytes). */
export function secretClusterKey(cluster: string, secret: Buffer): Buffer {
  return Buffer.from(hkdfSync("sha256", secret, "efm-cluster-secret-v1", cluster, 32));
}

/**
 * Read and check the secret file: null when it does not exist; an error naming the file when it
 * is open to group or others (only its owner, the agents' user, may read it) or is not 64 hex
 * digits.
 */
export function readClusterSecret(path: string): Buffer | null {
  let fd: number;
  try {
    fd = openSync(path, "r");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw new AgentError("IO", `cannot read the cluster secret ${path}: ${(err as Error).message}`, {
      cause: err,
    });
  }
  try {
    const st = fstatSync(fd);
    if ((st.mode & 0o077) !== 0)
      throw new AgentError(
        "CONFIG_INVALID",
        `the cluster secret ${path} has mode ${(st.mode & 0o777).toString(8).padStart(4, "0")}: it must be readable by its owner only (chmod 0600 ${path})`,
      );
    const text = readFileSync(fd, "utf8").trim();
    if (!/^[0-9a-f]{64}$/.test(text))
      throw new AgentError(
        "CONFIG_INVALID",
        `the cluster secret ${path} is not 64 hexadecimal digits: make a new one with 'efm init-secret'`,
      );
    return Buffer.from(text, "hex");
  } finally {
    closeSync(fd);
  }
}

/** The cluster key and, when it comes from the password, the warning to give. */
export function loadClusterKey(
  configDir: string,
  cluster: string,
  dbPassword: string,
): { key: Buffer; warning: string | null } {
  const path = secretPath(configDir, cluster);
  const secret = readClusterSecret(path);
  if (secret) return { key: secretClusterKey(cluster, secret), warning: null };
  return { key: passwordClusterKey(cluster, dbPassword), warning: noSecretWarning(path, cluster) };
}

/** Uid and gid of the `efm` user, when it exists. */
function efmUser(): { uid: number; gid: number } | null {
  try {
    const line = readFileSync("/etc/passwd", "utf8")
      .split("\n")
      .find((l) => l.startsWith("efm:"));
    if (!line) return null;
    const [, , uid, gid] = line.split(":");
    return { uid: Number(uid), gid: Number(gid) };
  } catch {
    return null;
  }
}

/**
 * `efm init-secret`: write a new random 256-bit secret, mode 0600, owned by the `efm` user when
 * run as root and that user exists (the agents run as efm). An existing secret is kept unless
 * `replace` is set: replacing it on one node cuts that node off until every node has the new one.
 */
export function initClusterSecret(path: string, replace: boolean): { owner: string } {
  try {
    statSync(path);
    if (!replace)
      throw new AgentError(
        "CONFIG_INVALID",
        `${path} already exists; copy that file to the other nodes, or use --replace to make a new one (then copy it to every node and restart every agent)`,
      );
  } catch (err) {
    if (err instanceof AgentError) throw err;
  }
  const tmp = `${path}.new-${process.pid}`;
  const fd = openSync(tmp, "wx", 0o600);
  try {
    writeSync(fd, `${randomBytes(32).toString("hex")}\n`);
  } finally {
    closeSync(fd);
  }
  let owner = `uid ${process.getuid?.() ?? "?"}`;
  const efm = process.getuid?.() === 0 ? efmUser() : null;
  if (efm) {
    chownSync(tmp, efm.uid, efm.gid);
    owner = "efm";
  }
  // rename replaces atomically; the file never exists with a wider mode.
  renameSync(tmp, path);
  return { owner };
}

/**
 * The properties file holds the encrypted database password and names the programs the helper
 * runs: writable by group or others is an error; readable by others a warning.
 */
export function checkPropertiesMode(path: string): { error: string | null; warning: string | null } {
  let mode: number;
  try {
    mode = statSync(path).mode & 0o777;
  } catch {
    return { error: null, warning: null }; // reading it reports that
  }
  const shown = mode.toString(8).padStart(4, "0");
  if ((mode & 0o022) !== 0)
    return {
      error: `${path} has mode ${shown}: it must not be writable by group or others (chown root:efm, chmod 0640)`,
      warning: null,
    };
  if ((mode & 0o004) !== 0)
    return {
      error: null,
      warning: `${path} has mode ${shown}: any local user can read the encrypted database password (chown root:efm, chmod 0640)`,
    };
  return { error: null, warning: null };
}
