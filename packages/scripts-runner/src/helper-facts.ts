import { execFileSync } from "node:child_process";
import { type Stats, statSync } from "node:fs";
import { userInfo } from "node:os";
import { dirname, join } from "node:path";
import { decrypt } from "@efm/password-crypto";
import {
  type EfmConfig,
  formatProblem,
  parseConfig,
  readNodes,
  readTrustedProperties as readShared,
  CLUSTER_NAME as SHARED_CLUSTER_NAME,
  DEFAULT_CONFIG_DIR as SHARED_CONFIG_DIR,
  tlsSettings,
  trustedConfigDir,
  untrustedReason,
} from "@efm/properties-parser";
import { ScriptsRunnerError } from "./errors.ts";
import { type HelperFactArgs, REJOIN_MIN_SECONDS } from "./helper-grammar.ts";
import type { HelperConnection } from "./helper-ops.ts";

/** Where the cluster properties live when the helper is started through sudo. */
export const DEFAULT_CONFIG_DIR = SHARED_CONFIG_DIR;

/** A cluster name as the helper accepts it on its command line (and the sudoers rule allows). */
export const CLUSTER_NAME = SHARED_CLUSTER_NAME;

/** Everything the privileged helper knows, all of it read from the cluster's properties file. */
export interface HelperFacts extends HelperFactArgs {
  readonly cluster: string;
  readonly propertiesFile: string;
  /** db.service.owner: the user the helper runs its work as. */
  readonly owner: string;
  /** The connection every SQL of the helper uses: bind.address, db.port, db.user, db.database. */
  readonly connection: HelperConnection;
  /**
   * The virtual IP of the same file (what efm-address, reading it the same way, assigns); the
   * helper never acts on it, only reports it for the agent's start-up comparison.
   */
  readonly vip: { readonly address: string; readonly interface: string; readonly prefix: number } | null;
  /** Hosts of the members file when the helper started, read before privileges were dropped. */
  readonly members: readonly string[];
}

/**
 * The directory of the properties file: always /etc/efm through sudo, EFM_CONFIG_DIR otherwise
 * (see trustedConfigDir in @efm/properties-parser, which efm-address shares).
 */
export function helperConfigDir(env: NodeJS.ProcessEnv): string {
  return trustedConfigDir(env);
}

function unsafe(message: string): ScriptsRunnerError {
  return new ScriptsRunnerError("PROPERTIES_UNSAFE", message);
}

/**
 * Refuses a file or directory that someone other than root (or `trustedUid`, the user the
 * helper already is) could change: owned by another user, or writable by group or others.
 */
export function checkTrusted(path: string, what: string, st: Stats, trustedUid: number): void {
  const problem = untrustedReason(path, what, st, trustedUid);
  if (problem !== undefined) throw unsafe(problem);
}

/**
 * Reads `<configDir>/<cluster>.properties` after proving nobody but root (or `trustedUid`)
 * could have written it: the file (opened without following a symlink, checked on the open
 * descriptor) and its directory. Returns the text and the path.
 */
export function readTrustedProperties(
  configDir: string,
  cluster: string,
  trustedUid: number,
): { path: string; text: string } {
  const r = readShared(configDir, cluster, trustedUid);
  if (r.ok) return { path: r.path, text: r.text };
  const code =
    r.kind === "usage" ? "HELPER_USAGE" : r.kind === "unsafe" ? "PROPERTIES_UNSAFE" : "PROPERTIES_INVALID";
  throw new ScriptsRunnerError(code, r.message);
}

/** The members file next to the properties file: `<dir>/<cluster>.nodes`. */
export function membersFileOf(facts: Pick<HelperFacts, "propertiesFile" | "cluster">): string {
  return join(dirname(facts.propertiesFile), `${facts.cluster}.nodes`);
}

/** The hosts of a members file, lower-cased; a missing file lists none. Throws when unreadable. */
export function memberHosts(membersFile: string): string[] {
  return readNodes(membersFile).nodes.map((n) => n.host.toLowerCase());
}

/**
 * Refuses a rejoin source that is not a member listed in the cluster's members file.
 * pg_rewind from a host outside the cluster would overwrite this database with whatever that
 * host serves; the agent names the master it sees, and this holds it to the addresses the
 * cluster was configured with or has admitted. The file is read again at each request (members
 * join while the helper runs); `known` are the hosts read at start-up, as root, for when
 * db.service.owner may not read the file (then a member admitted since needs an agent restart).
 */
export function checkKnownMember(host: string, membersFile: string, known: readonly string[] = []): void {
  let now: string[] = [];
  let unreadable = "";
  try {
    now = memberHosts(membersFile);
  } catch (e) {
    unreadable = ` (and it cannot be read again now: ${(e as Error).message})`;
  }
  const hosts = [...new Set([...known, ...now])];
  if (!hosts.includes(host.toLowerCase())) {
    throw new ScriptsRunnerError(
      "REJOIN_REFUSED",
      `cannot rejoin to ${host}: it is not a member listed in ${membersFile} (${hosts.length > 0 ? hosts.join(", ") : "no members"})${unreadable}; a rejoin rewinds only from a cluster member. Nothing was changed`,
    );
  }
}

/** Uid and primary gid of `user` (through NSS, as the system resolves it). */
function lookupUser(user: string): { uid: number; gid: number } {
  const id = (flag: string) => {
    try {
      return Number(
        execFileSync("id", [flag, user], {
          encoding: "utf8",
          env: { PATH: "/usr/bin:/bin" },
          stdio: ["ignore", "pipe", "pipe"],
        }).trim(),
      );
    } catch {
      throw new ScriptsRunnerError(
        "PROPERTIES_INVALID",
        `db.service.owner=${user}: no such user on this host`,
      );
    }
  };
  return { uid: id("-u"), gid: id("-g") };
}

/**
 * The helper's facts from the parsed properties: what it runs, where and as whom. db.bin, its
 * pg_ctl and postgres must be as trusted as the file itself: the helper runs them as the
 * database owner.
 */
export function factsFromConfig(
  cluster: string,
  propertiesFile: string,
  text: string,
  trustedUid: number,
): Omit<HelperFacts, "members"> {
  const r = parseConfig(text, propertiesFile, { checkFiles: false });
  if (!r.config || r.errors.length > 0) {
    throw new ScriptsRunnerError("PROPERTIES_INVALID", r.errors.map(formatProblem).join("\n"));
  }
  const c: EfmConfig = r.config;
  if (c.isWitness) {
    throw new ScriptsRunnerError(
      "PROPERTIES_INVALID",
      `${propertiesFile}: is.witness=true: a witness has no database to act on`,
    );
  }
  const dataDir = c.dbDataDir ?? c.dbRecoveryConfDir;
  const missing = [
    ["db.service.owner", c.dbServiceOwner],
    ["db.bin", c.dbBin],
    ["db.recovery.conf.dir", dataDir],
  ].filter(([, v]) => v === undefined || v === "");
  if (missing.length > 0) {
    throw new ScriptsRunnerError(
      "PROPERTIES_INVALID",
      `${propertiesFile}: ${missing.map(([k]) => k).join(", ")} must be set for the privileged helper`,
    );
  }
  const bin = c.dbBin!;
  for (const [path, what] of [
    [bin, "db.bin"],
    [join(bin, "pg_ctl"), "db.bin's pg_ctl"],
    [join(bin, "postgres"), "db.bin's postgres"],
  ] as const) {
    let st: Stats;
    try {
      st = statSync(path);
    } catch (e) {
      throw new ScriptsRunnerError("PROPERTIES_INVALID", `${what} ${path}: ${(e as Error).message}`);
    }
    checkTrusted(path, what, st, trustedUid);
  }
  let password: string;
  try {
    password = decrypt(c.dbPasswordEncrypted, cluster);
  } catch (e) {
    throw new ScriptsRunnerError(
      "PROPERTIES_INVALID",
      `${propertiesFile}: db.password.encrypted: ${(e as Error).message}`,
    );
  }
  return {
    cluster,
    propertiesFile,
    owner: c.dbServiceOwner!,
    dataDir: dataDir!,
    bin,
    // Next to the data directory: pg_rewind and pg_basebackup replace what is inside it.
    passfile: join(dirname(dataDir!), `efm-${cluster}.pgpass`),
    port: c.dbPort,
    replicationUser: c.dbUser,
    rejoin: {
      basebackup: c.dbRejoinBasebackup,
      ...(c.dbRewindSourceUser ? { sourceUser: c.dbRewindSourceUser } : {}),
      // A rewind or a base backup takes longer than a restart.
      timeoutSeconds: Math.max(c.localTimeout, REJOIN_MIN_SECONDS),
    },
    vip: c.virtualIp
      ? { address: c.virtualIp.address, interface: c.virtualIp.interface, prefix: c.virtualIp.prefix }
      : null,
    connection: {
      host: c.bindAddress.host,
      port: c.dbPort,
      user: c.dbUser,
      password,
      database: c.dbDatabase,
      // Resolved against the owner's home once privileges are dropped (see loadHelperFacts).
      ssl: tlsSettings(c),
    },
  };
}

/**
 * db.service.owner must own the data directory: files written as anyone else would stop the
 * server from starting. A directory not there yet is left to each request to report.
 */
function ownsDataDir(facts: HelperFacts, uid: number): void {
  let st: Stats;
  try {
    st = statSync(facts.dataDir);
  } catch {
    return;
  }
  if (st.uid !== uid) {
    throw new ScriptsRunnerError(
      "WRONG_USER",
      `${facts.dataDir} belongs to uid ${st.uid}, not to db.service.owner=${facts.owner} (uid ${uid}) of ${facts.propertiesFile}; run it as db.service.owner`,
    );
  }
}

/**
 * What the helper does before anything else: reads the facts of `cluster` from its trusted
 * properties file, then, when started as root, becomes db.service.owner for good (supplementary
 * groups, gid, uid; never root: files root writes in a data directory stop the server from
 * starting). Started as any other user, it must already be db.service.owner.
 */
export function loadHelperFacts(cluster: string, env: NodeJS.ProcessEnv): HelperFacts {
  const euid = process.geteuid?.() ?? 0;
  const { path, text } = readTrustedProperties(helperConfigDir(env), cluster, euid);
  const read = factsFromConfig(cluster, path, text, euid);
  let members: string[] = [];
  try {
    members = memberHosts(membersFileOf(read));
  } catch {
    // Said by checkKnownMember when a rejoin needs it; every other verb works without it.
  }
  const facts = { ...read, members };
  const me = userInfo().username;
  if (euid !== 0) {
    if (me !== facts.owner) {
      throw new ScriptsRunnerError(
        "WRONG_USER",
        `${path}: db.service.owner=${facts.owner} but the helper runs as ${me} and cannot become it; start it as root (sudo) or as ${facts.owner}`,
      );
    }
    ownsDataDir(facts, euid);
    return facts;
  }
  const { uid, gid } = lookupUser(facts.owner);
  if (uid === 0) {
    throw new ScriptsRunnerError(
      "PROPERTIES_INVALID",
      `${path}: db.service.owner=${facts.owner} is root; PostgreSQL refuses to run as root`,
    );
  }
  try {
    (process as unknown as { initgroups?: (user: string, gid: number) => void }).initgroups?.(
      facts.owner,
      gid,
    );
    process.setgid?.(gid);
    process.setuid?.(uid);
  } catch (e) {
    throw new ScriptsRunnerError("WRONG_USER", `cannot become ${facts.owner}: ${(e as Error).message}`);
  }
  if (process.geteuid?.() !== uid || process.getuid?.() !== uid) {
    throw new ScriptsRunnerError(
      "WRONG_USER",
      `still uid ${process.geteuid?.()} after becoming ${facts.owner}`,
    );
  }
  ownsDataDir(facts, uid);
  // libpq-style lookups (~/.postgresql, ~/.pgpass) are the owner's from now on.
  const home = userInfo().homedir;
  process.env.HOME = home;
  const c = parseConfig(text, path, { checkFiles: false }).config!;
  return { ...facts, connection: { ...facts.connection, ssl: tlsSettings(c, home) } };
}
