import { isIP } from "node:net";
import { isAbsolute, normalize } from "node:path";
import { ScriptsRunnerError } from "./errors.ts";

/** Options every verb accepts. */
export interface HelperCommon {
  /** Directory holding pg_ctl and postgres (db.bin). */
  readonly bin: string;
  /** Role for the confirming SQL over the local socket; default: the OS user. */
  readonly dbUser?: string;
  /** Database for the confirming SQL; default `postgres`. */
  readonly dbName?: string;
  /** Server log file given to `pg_ctl -l` when the server is (re)started. */
  readonly logFile?: string;
  /**
   * "stdin": the connection the agent uses (address, db.port, db.user, the decrypted password,
   * db.database) comes as one JSON object on stdin, never on the command line, and every SQL
   * the helper runs goes over TCP with it. Absent: the server's Unix socket, as `dbUser`.
   */
  readonly connection?: "stdin";
  /**
   * The password file a fenced or reconfigured server's primary_conninfo names (`passfile=`);
   * written 0600 by the helper (so owned by db.service.owner) from the stdin connection.
   */
  readonly passfile?: string;
}

/** A command of the privileged helper, after validation. */
export type HelperCommand =
  | (HelperCommon & { readonly verb: "promote"; readonly dataDir: string; readonly timeoutSeconds: number })
  | (HelperCommon & {
      readonly verb: "fence";
      readonly dataDir: string;
      /** null ("-" on the command line): no new master is known; recovery without streaming. */
      readonly newMaster: string | null;
      /** Port and role of the new master, used only when no primary_conninfo exists yet. */
      readonly port?: number;
      readonly replicationUser?: string;
      /**
       * Bound, in seconds, of each wait for the server to go away (default 10): a fast stop
       * gets this long, then the immediate stop and the SIGKILL of what is left share it.
       */
      readonly timeoutSeconds?: number;
      /**
       * How the server is stopped first, default "immediate". "fast" is for a switchover: it
       * lets the WAL senders hand the standbys every record before the server goes; an
       * immediate stop follows if it does not finish in time.
       */
      readonly stop?: "fast" | "immediate";
      /**
       * After the fence is confirmed: "down" (default) leaves the server stopped; "standby"
       * starts it again in recovery, following the new master (needs one; only a server that
       * was running is started).
       */
      readonly after?: "down" | "standby";
    })
  | (HelperCommon & {
      readonly verb: "reconfigure";
      readonly dataDir: string;
      readonly newMaster: string;
      readonly timeoutSeconds: number;
    })
  | (HelperCommon & {
      readonly verb: "restart";
      readonly dataDir: string;
      readonly timeoutSeconds: number;
      /**
       * pg_ctl shutdown mode, default "fast". "immediate" is for fencing a master cut off from
       * its standbys: a fast shutdown waits for the WAL senders to deliver, which a dead
       * network never lets finish.
       */
      readonly mode?: "fast" | "immediate";
    })
  | (HelperCommon & {
      /**
       * Brings a fenced old master back as a standby of `newMaster`: stop it (confirmed down),
       * pg_rewind against the new master (or, when `basebackup` is allowed and a rewind is
       * impossible or fails, pg_basebackup into a fresh directory with the old one moved aside),
       * standby.signal and primary_conninfo naming the new master, start, confirm streaming.
       * Needs the stdin connection and the passfile: no password ever goes on a command line.
       */
      readonly verb: "rejoin";
      readonly dataDir: string;
      readonly newMaster: string;
      /** The new master's database port; default the connection's (db.port). */
      readonly port?: number;
      /** Role primary_conninfo streams as; default the connection's user (db.user). */
      readonly replicationUser?: string;
      /** Role pg_rewind connects to the new master as (db.rewind.source.user); default the connection's user. */
      readonly sourceUser?: string;
      /** db.rejoin.basebackup: whether a base backup may replace the data directory. */
      readonly basebackup: boolean;
      /** Bound of the whole rewind or base backup, and of each start and streaming wait (local.timeout). */
      readonly timeoutSeconds: number;
    })
  | (HelperCommon & {
      /**
       * Dry run of the paths promote and fence take: data directory owned by us, pg_ctl
       * runnable, the passfile's directory writable and, with a running server, the SQL
       * connection; `role: "standby"` also requires a running server in recovery.
       */
      readonly verb: "check";
      readonly dataDir: string;
      readonly role: "any" | "standby";
    });

/** The helper's verbs. */
export type HelperVerb = HelperCommand["verb"];

const POSITIONALS: Record<HelperVerb, readonly string[]> = {
  promote: ["datadir"],
  fence: ["datadir", "new-master-host"],
  reconfigure: ["datadir", "new-master-host"],
  restart: ["datadir", "timeout-seconds"],
  check: ["datadir"],
  rejoin: ["datadir", "new-master-host"],
};

const COMMON = ["--db-user", "--db-name", "--log-file", "--connection", "--passfile"];

const OPTIONS: Record<HelperVerb, readonly string[]> = {
  promote: ["--bin", "--timeout", ...COMMON],
  fence: ["--bin", "--port", "--replication-user", "--timeout", "--stop", "--after", ...COMMON],
  reconfigure: ["--bin", "--timeout", ...COMMON],
  restart: ["--bin", "--mode", ...COMMON],
  check: ["--bin", "--role", ...COMMON],
  rejoin: ["--bin", "--port", "--replication-user", "--source-user", "--basebackup", "--timeout", ...COMMON],
};

function usage(message: string): ScriptsRunnerError {
  return new ScriptsRunnerError("HELPER_USAGE", `${message}\n${HELPER_USAGE}`);
}

/** An absolute, normalized path without control characters. */
export function checkPath(what: string, value: string): string {
  const stripped = value.length > 1 ? value.replace(/\/+$/, "") : value;
  if (!isAbsolute(stripped) || /[\x00-\x1f\x7f]/.test(stripped) || normalize(stripped) !== stripped) {
    throw usage(`${what}: ${JSON.stringify(value)} must be an absolute, normalized path`);
  }
  return stripped;
}

/** A host name (RFC 1123 labels) or an IP address. */
export function checkHost(what: string, value: string): string {
  const hostname =
    /^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;
  if (isIP(value) === 0 && !hostname.test(value))
    throw usage(`${what}: ${JSON.stringify(value)} is not a host name or IP address`);
  return value;
}

function checkInt(what: string, value: string, min: number, max: number): number {
  if (!/^\d{1,6}$/.test(value) || Number(value) < min || Number(value) > max) {
    throw usage(`${what}: ${JSON.stringify(value)} is not a whole number from ${min} to ${max}`);
  }
  return Number(value);
}

function checkRole(what: string, value: string): string {
  if (!/^[A-Za-z_][A-Za-z0-9_$.-]{0,62}$/.test(value))
    throw usage(`${what}: ${JSON.stringify(value)} is not a role name`);
  return value;
}

/**
 * Parses the helper's command line against its fixed grammar: a verb, its positionals, then
 * only the options that verb knows, each at most once. Anything else is HELPER_USAGE.
 */
export function parseHelperArgs(argv: readonly string[]): HelperCommand {
  const [verb, ...rest] = argv;
  if (verb === undefined || !Object.hasOwn(POSITIONALS, verb)) {
    throw usage(`unknown verb ${JSON.stringify(verb ?? "")}`);
  }
  const v = verb as HelperVerb;
  const names = POSITIONALS[v];
  const positional = rest.slice(0, names.length);
  if (positional.length < names.length || positional.some((p) => p.startsWith("--"))) {
    throw usage(`${v} needs ${names.map((n) => `<${n}>`).join(" ")}`);
  }
  const options = new Map<string, string>();
  const tail = rest.slice(names.length);
  for (let i = 0; i < tail.length; i += 2) {
    const name = tail[i]!;
    const value = tail[i + 1];
    if (!OPTIONS[v].includes(name)) throw usage(`${v} does not take ${JSON.stringify(name)}`);
    if (options.has(name)) throw usage(`${name} given twice`);
    if (value === undefined) throw usage(`${name} needs a value`);
    options.set(name, value);
  }
  const bin = options.get("--bin");
  if (bin === undefined) throw usage(`${v} needs --bin <dir>`);
  const connection = options.get("--connection");
  if (connection !== undefined && connection !== "stdin") {
    throw usage(`--connection: ${JSON.stringify(connection)} is not stdin`);
  }
  const common: HelperCommon = {
    bin: checkPath("--bin", bin),
    ...(options.has("--db-user") ? { dbUser: checkRole("--db-user", options.get("--db-user")!) } : {}),
    ...(options.has("--db-name") ? { dbName: checkRole("--db-name", options.get("--db-name")!) } : {}),
    ...(options.has("--log-file") ? { logFile: checkPath("--log-file", options.get("--log-file")!) } : {}),
    ...(connection !== undefined ? { connection } : {}),
    ...(options.has("--passfile") ? { passfile: checkPath("--passfile", options.get("--passfile")!) } : {}),
  };
  const dataDir = checkPath("datadir", positional[0]!);
  const timeout = options.has("--timeout") ? checkInt("--timeout", options.get("--timeout")!, 1, 86_400) : 60;
  switch (v) {
    case "promote":
      return { verb: v, dataDir, timeoutSeconds: timeout, ...common };
    case "fence": {
      const stop = options.get("--stop");
      if (stop !== undefined && stop !== "fast" && stop !== "immediate") {
        throw usage(`--stop: ${JSON.stringify(stop)} is not immediate or fast`);
      }
      const after = options.get("--after");
      if (after !== undefined && after !== "down" && after !== "standby") {
        throw usage(`--after: ${JSON.stringify(after)} is not down or standby`);
      }
      const newMaster = positional[1] === "-" ? null : checkHost("new-master-host", positional[1]!);
      // Starting a fenced server that streams from nobody would only hide that it is fenced.
      if (after === "standby" && newMaster === null) throw usage("--after standby needs a new master, not -");
      return {
        verb: v,
        dataDir,
        newMaster,
        ...(options.has("--port") ? { port: checkInt("--port", options.get("--port")!, 1, 65_535) } : {}),
        ...(options.has("--replication-user")
          ? { replicationUser: checkRole("--replication-user", options.get("--replication-user")!) }
          : {}),
        ...(options.has("--timeout") ? { timeoutSeconds: timeout } : {}),
        ...(stop !== undefined ? { stop } : {}),
        ...(after !== undefined ? { after } : {}),
        ...common,
      };
    }
    case "reconfigure":
      return {
        verb: v,
        dataDir,
        newMaster: checkHost("new-master-host", positional[1]!),
        timeoutSeconds: timeout,
        ...common,
      };
    case "restart": {
      const mode = options.get("--mode");
      if (mode !== undefined && mode !== "fast" && mode !== "immediate") {
        throw usage(`--mode: ${JSON.stringify(mode)} is not fast or immediate`);
      }
      return {
        verb: v,
        dataDir,
        timeoutSeconds: checkInt("timeout-seconds", positional[1]!, 1, 86_400),
        ...(mode !== undefined ? { mode } : {}),
        ...common,
      };
    }
    case "check": {
      const role = options.get("--role") ?? "any";
      if (role !== "any" && role !== "standby") {
        throw usage(`--role: ${JSON.stringify(role)} is not any or standby`);
      }
      return { verb: v, dataDir, role, ...common };
    }
    case "rejoin": {
      // The rewind's source and the standby's stream authenticate with the password the agent
      // hands over on stdin, written to the passfile: without both there is no way but argv.
      if (common.connection !== "stdin" || common.passfile === undefined) {
        throw usage("rejoin needs --connection stdin and --passfile <path>");
      }
      const basebackup = options.get("--basebackup") ?? "deny";
      if (basebackup !== "allow" && basebackup !== "deny") {
        throw usage(`--basebackup: ${JSON.stringify(basebackup)} is not allow or deny`);
      }
      return {
        verb: v,
        dataDir,
        newMaster: checkHost("new-master-host", positional[1]!),
        ...(options.has("--port") ? { port: checkInt("--port", options.get("--port")!, 1, 65_535) } : {}),
        ...(options.has("--replication-user")
          ? { replicationUser: checkRole("--replication-user", options.get("--replication-user")!) }
          : {}),
        ...(options.has("--source-user")
          ? { sourceUser: checkRole("--source-user", options.get("--source-user")!) }
          : {}),
        basebackup: basebackup === "allow",
        timeoutSeconds: timeout,
        ...common,
      };
    }
  }
}

/** The argv (after the program) that {@link parseHelperArgs} turns back into `command`. */
export function formatHelperArgs(command: HelperCommand): string[] {
  const argv: string[] = [command.verb, command.dataDir];
  if (command.verb === "fence") argv.push(command.newMaster ?? "-");
  if (command.verb === "reconfigure" || command.verb === "rejoin") argv.push(command.newMaster);
  if (command.verb === "restart") argv.push(String(command.timeoutSeconds));
  argv.push("--bin", command.bin);
  if (command.verb === "promote" || command.verb === "reconfigure" || command.verb === "rejoin") {
    argv.push("--timeout", String(command.timeoutSeconds));
  }
  if (command.verb === "fence") {
    if (command.port !== undefined) argv.push("--port", String(command.port));
    if (command.replicationUser !== undefined) argv.push("--replication-user", command.replicationUser);
    if (command.timeoutSeconds !== undefined) argv.push("--timeout", String(command.timeoutSeconds));
    if (command.stop !== undefined) argv.push("--stop", command.stop);
    if (command.after !== undefined) argv.push("--after", command.after);
  }
  if (command.verb === "restart" && command.mode !== undefined) argv.push("--mode", command.mode);
  if (command.verb === "check") argv.push("--role", command.role);
  if (command.verb === "rejoin") {
    if (command.port !== undefined) argv.push("--port", String(command.port));
    if (command.replicationUser !== undefined) argv.push("--replication-user", command.replicationUser);
    if (command.sourceUser !== undefined) argv.push("--source-user", command.sourceUser);
    argv.push("--basebackup", command.basebackup ? "allow" : "deny");
  }
  if (command.dbUser !== undefined) argv.push("--db-user", command.dbUser);
  if (command.dbName !== undefined) argv.push("--db-name", command.dbName);
  if (command.logFile !== undefined) argv.push("--log-file", command.logFile);
  if (command.connection !== undefined) argv.push("--connection", command.connection);
  if (command.passfile !== undefined) argv.push("--passfile", command.passfile);
  return argv;
}

/**
 * What the helper takes from the root-owned properties file of its cluster (helper-facts.ts),
 * never from its caller: the data directory, db.bin, the password file next to the data
 * directory, db.port and db.user (the replication role).
 */
export interface HelperFactArgs {
  readonly dataDir: string;
  readonly bin: string;
  readonly passfile: string;
  readonly port: number;
  readonly replicationUser: string;
  /**
   * What a rejoin may do, from the same file: db.rejoin.basebackup, db.rewind.source.user and
   * its bound (local.timeout, at least {@link REJOIN_MIN_SECONDS}). Absent: rejoin is refused.
   */
  readonly rejoin?: {
    readonly basebackup: boolean;
    readonly sourceUser?: string;
    readonly timeoutSeconds: number;
  };
}

/** Lower bound of a rejoin's steps (stop, rewind or base backup, start, streaming), in seconds. */
export const REJOIN_MIN_SECONDS = 120;

/**
 * Options of `rejoin` the helper fills in from the properties file: whether the old data
 * directory may be replaced by a base backup, and as whom pg_rewind reads the new master, are
 * root's decisions, never the agent's.
 */
export const REJOIN_FACT_OPTIONS: readonly string[] = ["--basebackup", "--source-user", "--timeout"];

/**
 * Options only the helper fills in, from {@link HelperFactArgs}: a request naming one is
 * refused, so the unprivileged agent cannot choose a program directory, a log file, a password
 * file or a data directory for the database owner.
 */
export const FACT_OPTIONS: readonly string[] = [
  "--bin",
  "--log-file",
  "--connection",
  "--passfile",
  "--db-user",
  "--db-name",
  "--port",
  "--replication-user",
];

/** The request grammar of the running helper, for error messages and the README. */
export const HELPER_REQUEST_USAGE = [
  "requests: promote [--timeout <s>]",
  "          fence <new-master-host>|- [--timeout <s>] [--stop immediate|fast] [--after down|standby]",
  "          reconfigure <new-master-host> [--timeout <s>]",
  "          restart <timeout-seconds> [--mode fast|immediate]",
  "          check [--role any|standby]",
  "          rejoin <new-master-host>",
].join("\n");

/**
 * The usage every grammar error carries: the program takes only the cluster name, then one
 * request per line on stdin; the data directory, db.bin, port, users and connection are filled
 * in from the cluster's properties file, so they are not part of what a caller may write.
 */
export const HELPER_USAGE = [
  "usage: efm-helper <cluster>   (then one request per line on stdin: <id> <request>)",
  HELPER_REQUEST_USAGE,
].join("\n");

/**
 * One request of the agent (a verb, its positionals after the data directory, its options)
 * turned into a validated command: the data directory and every option of
 * {@link FACT_OPTIONS} the verb takes come from `facts`; then the same fixed grammar as the
 * command line ({@link parseHelperArgs}) checks the whole.
 */
export function parseHelperRequest(tokens: readonly string[], facts: HelperFactArgs): HelperCommand {
  const [verb, ...rest] = tokens;
  if (verb === undefined || !Object.hasOwn(POSITIONALS, verb)) {
    throw new ScriptsRunnerError(
      "HELPER_USAGE",
      `unknown verb ${JSON.stringify(verb ?? "")}\n${HELPER_REQUEST_USAGE}`,
    );
  }
  const v = verb as HelperVerb;
  for (const token of rest) {
    if (FACT_OPTIONS.includes(token)) {
      throw new ScriptsRunnerError(
        "HELPER_USAGE",
        `${v}: ${token} is taken from the cluster's properties file, never from the request\n${HELPER_REQUEST_USAGE}`,
      );
    }
  }
  if (v === "rejoin") {
    const named = rest.find((t) => REJOIN_FACT_OPTIONS.includes(t));
    if (named !== undefined) {
      throw new ScriptsRunnerError(
        "HELPER_USAGE",
        `rejoin: ${named} is taken from the cluster's properties file (db.rejoin.basebackup, db.rewind.source.user, local.timeout), never from the request\n${HELPER_REQUEST_USAGE}`,
      );
    }
    if (facts.rejoin === undefined) {
      throw new ScriptsRunnerError("HELPER_USAGE", "rejoin: the helper read no rejoin settings");
    }
  }
  // Missing positionals are named here, as the request spells them: the command-line grammar
  // below would name the data directory, which the caller never writes.
  const wanted = POSITIONALS[v].slice(1);
  const given = rest.slice(0, wanted.length);
  if (given.length < wanted.length || given.some((t) => t.startsWith("--"))) {
    throw new ScriptsRunnerError(
      "HELPER_USAGE",
      `${v} needs ${wanted.map((n) => `<${n}>`).join(" ")}\n${HELPER_USAGE}`,
    );
  }
  const filled: string[] = ["--connection", "stdin", "--bin", facts.bin, "--passfile", facts.passfile];
  if (OPTIONS[v].includes("--port")) filled.push("--port", String(facts.port));
  if (OPTIONS[v].includes("--replication-user")) filled.push("--replication-user", facts.replicationUser);
  if (v === "rejoin" && facts.rejoin !== undefined) {
    filled.push("--basebackup", facts.rejoin.basebackup ? "allow" : "deny");
    filled.push("--timeout", String(facts.rejoin.timeoutSeconds));
    if (facts.rejoin.sourceUser !== undefined) filled.push("--source-user", facts.rejoin.sourceUser);
  }
  // The request's own positionals come right after the verb; the data directory goes first.
  const positionals = POSITIONALS[v].length - 1;
  return parseHelperArgs([
    v,
    facts.dataDir,
    ...rest.slice(0, positionals),
    ...rest.slice(positionals),
    ...filled,
  ]);
}
