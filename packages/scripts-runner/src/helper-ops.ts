import { chmodSync, constants } from "node:fs";
import { access, mkdir, readdir, readFile, readlink, realpath, stat } from "node:fs/promises";
import { createConnection } from "node:net";
import { userInfo } from "node:os";
import { basename, dirname, join } from "node:path";
import { clientConfig, connectionAttempts, type DbConnectionOptions } from "@efm/db-probe";
import pg from "pg";
import { backupFile, replaceFile } from "./atomic.ts";
import {
  conninfoTlsFor,
  conninfoValue,
  formatConninfo,
  parseConninfo,
  setConninfoHost,
  setConninfoTls,
} from "./conninfo.ts";
import { ScriptsRunnerError } from "./errors.ts";
import type { HelperCommand } from "./helper-grammar.ts";
import { configValue, setConfigValue } from "./pg-config-file.ts";
import { rejoin, rewindable } from "./helper-rejoin.ts";
import { runProcess } from "./run.ts";

/** What the helper did, printed as one JSON line and returned by the TypeScript API. */
export interface HelperReport {
  readonly verb: HelperCommand["verb"];
  readonly dataDir: string;
  /** Server major version from PG_VERSION (9.6 stays 9.6). */
  readonly version: number;
  /** Human-readable steps taken, in order. */
  readonly actions: string[];
  /** Backups written before files were replaced. */
  readonly backups: string[];
  /** The primary_conninfo written (fence, reconfigure). */
  readonly primaryConninfo?: string;
  /** Recovery state seen at the end (promote: false; restart after fence: true). */
  readonly inRecovery?: boolean;
  /** promote: the server was already out of recovery, nothing was done. */
  readonly alreadyMaster?: boolean;
  /** check: whether a server was running on the data directory. */
  readonly running?: boolean;
  /** fence: whether a server was running when the fence began (it is down now, or restarted). */
  readonly wasRunning?: boolean;
  /**
   * fence --stop fast: the server shut down cleanly (pg_controldata "shut down"), and this is
   * its shutdown checkpoint's position, the last WAL record the master wrote. A switchover
   * promotes its target only once it replayed past it.
   */
  readonly finalLsn?: string;
  /**
   * check, rejoin: from pg_control, whether pg_rewind can work on this data directory
   * (wal_log_hints=on or data checksums); absent when pg_controldata could not tell.
   */
  readonly rewindable?: { readonly walLogHints: boolean; readonly dataChecksums: boolean };
  /** rejoin: how the data directory was resynchronised with the new master. */
  readonly method?: "rewind" | "basebackup";
  /** rejoin by base backup: where the old data directory was moved (never deleted). */
  readonly movedAside?: string;
  readonly durationMs: number;
}

export type Mutable<T> = { -readonly [K in keyof T]: T[K] };

/**
 * The connection the agent itself uses for its local database (bind address, db.port, db.user,
 * the decrypted password, db.database, jdbc.ssl). The helper gets it as JSON on stdin, so the
 * password never shows on a command line or in an environment, and runs every SQL over it:
 * a standby the agent can monitor is one the helper can promote.
 */
export interface HelperConnection {
  readonly host: string;
  readonly port: number;
  readonly user: string;
  readonly password: string;
  readonly database: string;
  /**
   * TLS exactly as @efm/db-probe takes it (the agent passes the same jdbc.sslmode settings its
   * monitor uses; they are plain data, so they cross the pipe as JSON).
   */
  readonly ssl?: DbConnectionOptions["ssl"];
}

/** Validates the JSON connection the helper reads on stdin; messages never quote the password. */
export function parseHelperConnection(text: string): HelperConnection {
  const bad = (why: string) => new ScriptsRunnerError("HELPER_USAGE", `connection on stdin: ${why}`);
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw bad("not a JSON object");
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) throw bad("not a JSON object");
  const o = value as Record<string, unknown>;
  for (const k of ["host", "user", "database"] as const) {
    if (typeof o[k] !== "string" || o[k] === "") throw bad(`${k} must be a non-empty string`);
  }
  if (typeof o.password !== "string") throw bad("password must be a string");
  if (!Number.isInteger(o.port) || (o.port as number) < 1 || (o.port as number) > 65535) {
    throw bad(`port ${JSON.stringify(o.port)} is not 1..65535`);
  }
  const ssl = o.ssl;
  if (ssl !== undefined && typeof ssl !== "boolean" && (typeof ssl !== "object" || ssl === null)) {
    throw bad("ssl must be true, false or an object of TLS settings");
  }
  return {
    host: o.host as string,
    port: o.port as number,
    user: o.user as string,
    password: o.password as string,
    database: o.database as string,
    ...(ssl === undefined ? {} : { ssl: ssl as HelperConnection["ssl"] }),
  };
}

/** `value` escaped for one field of a libpq password file (backslash and colon). */
function passfileField(value: string): string {
  return value.replace(/[\\:]/g, (c) => `\\${c}`);
}

/**
 * Writes the password file that a fenced or reconfigured server's primary_conninfo names:
 * one line for any host (the master changes at every failover), db.port, any database
 * (walreceiver asks for "replication") and the replication user. Mode 0600 and, since the
 * helper runs as db.service.owner, owned by it: libpq ignores a file others can read.
 */
export function writePassfile(
  path: string,
  user: string,
  conn: HelperConnection,
  report: Mutable<HelperReport>,
): void {
  if (/[\r\n]/.test(conn.password)) {
    throw new ScriptsRunnerError("IO_FAILED", `cannot write ${path}: the password holds a line break`);
  }
  replaceFile(path, `*:${conn.port}:*:${passfileField(user)}:${passfileField(conn.password)}\n`);
  try {
    // An existing file keeps its mode through replaceFile; a password file must be 0600.
    chmodSync(path, 0o600);
  } catch (e) {
    throw new ScriptsRunnerError("IO_FAILED", `cannot chmod 0600 ${path}: ${(e as Error).message}`, {
      cause: e,
    });
  }
  report.actions.push(`wrote the password file ${path} (0600) for ${user}`);
}

/** The connection string with every password value masked, for reports and logs. */
export function redactConninfo(text: string): string {
  let entries: ReturnType<typeof parseConninfo>;
  try {
    entries = parseConninfo(text);
  } catch {
    // Unparseable: say nothing of its contents rather than risk printing a secret.
    return /password/i.test(text) ? "(connection string not shown: it names a password)" : text;
  }
  let out = text;
  for (const e of [...entries].reverse()) {
    if (e.keyword === "password") out = `${out.slice(0, e.valueStart)}********${out.slice(e.valueEnd)}`;
  }
  return out;
}

// Keywords a follow connection string sets itself; every other keyword of an existing one
// (application_name, sslmode, keepalives...) is kept.
const FOLLOW_SETS = new Set(["host", "hostaddr", "port", "user", "password", "passfile"]);

/**
 * The agents' TLS rules (jdbc.sslmode, jdbc.sslrootcert) written into a primary_conninfo, so
 * a standby pointed at a new master replicates the way the agents connect; unchanged when
 * the agents' settings name none (see conninfoTlsFor) or there is no connection string.
 */
export function withTls(conninfo: string, conn: HelperConnection | undefined): string {
  const tls = conn === undefined ? null : conninfoTlsFor(conn.ssl);
  return tls === null || conninfo === "" ? conninfo : setConninfoTls(conninfo, tls);
}

/**
 * primary_conninfo for following `newMaster` as the replication user with a password file:
 * never an inline password, never a host other than the new master.
 */
function followConninfo(
  current: string | undefined,
  newMaster: string,
  port: number,
  user: string,
  passfile: string,
): string {
  let keep: [string, string][] = [];
  if (current !== undefined) {
    try {
      keep = parseConninfo(current)
        .filter((e) => !FOLLOW_SETS.has(e.keyword))
        .map((e) => [e.keyword, e.value]);
    } catch {
      // A connection string we cannot parse is replaced whole: fencing must not fail on it.
    }
  }
  return formatConninfo([
    ["host", newMaster],
    ["port", String(port)],
    ["user", user],
    ["passfile", passfile],
    ...keep,
  ]);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function readText(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, "utf8");
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw new ScriptsRunnerError("IO_FAILED", `cannot read ${path}: ${(e as Error).message}`, { cause: e });
  }
}

/** Major version from PG_VERSION; also proves `dataDir` is a data directory we own. */
export async function checkDataDir(dataDir: string): Promise<number> {
  const text = await readText(join(dataDir, "PG_VERSION")).catch(() => undefined);
  const version = text === undefined ? Number.NaN : Number(text.trim());
  if (!Number.isFinite(version)) {
    throw new ScriptsRunnerError(
      "DATADIR_INVALID",
      `${dataDir} is not a PostgreSQL data directory (no PG_VERSION)`,
    );
  }
  const owner = (await stat(dataDir)).uid;
  const me = process.geteuid?.();
  if (me !== undefined && me !== owner) {
    // Files written as anyone else (root above all) would stop the server from starting.
    throw new ScriptsRunnerError(
      "WRONG_USER",
      `${dataDir} belongs to uid ${owner} but the helper runs as uid ${me}; run it as db.service.owner`,
    );
  }
  return version;
}

/** Where the running server listens, from postmaster.pid; undefined when not running. */
async function serverAddress(dataDir: string): Promise<{ host: string; port: number } | undefined> {
  const text = await readText(join(dataDir, "postmaster.pid"));
  if (text === undefined) return undefined;
  const lines = text.split("\n");
  const pid = Number(lines[0]);
  const port = Number(lines[3]);
  if (!Number.isInteger(pid) || pid <= 0 || !Number.isInteger(port)) return undefined;
  try {
    process.kill(pid, 0);
  } catch {
    return undefined;
  }
  const socketDir = lines[4]?.trim() ?? "";
  const listen = lines[5]?.trim() ?? "";
  if (socketDir !== "") return { host: socketDir, port };
  if (listen === "") return undefined;
  return {
    host: listen === "*" || listen === "0.0.0.0" ? "127.0.0.1" : listen === "::" ? "::1" : listen,
    port,
  };
}

export async function query<T>(
  command: HelperCommand,
  conn: HelperConnection | undefined,
  sql: string,
): Promise<T[]> {
  const where = await serverAddress(command.dataDir);
  if (where === undefined) {
    throw new ScriptsRunnerError("NOT_RUNNING", `no server is running on ${command.dataDir}`);
  }
  // With the agent's connection: db-probe's own client settings, so TLS (jdbc.sslmode, its
  // files, allow/prefer trying the other way) is decided exactly as for the monitor.
  const configs: pg.ClientConfig[] =
    conn === undefined
      ? [
          {
            host: where.host,
            port: where.port,
            user: command.dbUser ?? userInfo().username,
            database: command.dbName ?? "postgres",
          },
        ]
      : connectionAttempts(conn).map((attempt) => clientConfig(conn, attempt));
  const how =
    conn === undefined
      ? `the Unix socket in ${where.host} as ${command.dbUser ?? userInfo().username}`
      : `${conn.host}:${conn.port} as ${conn.user}`;
  let failure: unknown;
  for (const config of configs) {
    const client = new pg.Client({
      ...config,
      application_name: "efm-helper",
      connectionTimeoutMillis: 5_000,
      query_timeout: 10_000,
    });
    client.on("error", () => {});
    try {
      try {
        await client.connect();
      } catch (e) {
        failure ??= e;
        continue;
      }
      return (await client.query(sql)).rows as T[];
    } finally {
      await client.end().catch(() => {});
    }
  }
  throw new ScriptsRunnerError(
    "CONNECT_FAILED",
    `cannot connect to the database over ${how}: ${(failure as Error).message}`,
    { cause: failure },
  );
}

export async function inRecovery(
  command: HelperCommand,
  conn: HelperConnection | undefined,
): Promise<boolean> {
  const rows = await query<{ r: boolean }>(command, conn, "SELECT pg_is_in_recovery() AS r");
  return rows[0]?.r === true;
}

/** Retries `check` until it returns a value or `seconds` pass; the last error explains a miss. */
export async function waitUntil<T>(
  seconds: number,
  what: string,
  check: () => Promise<T | undefined>,
): Promise<T> {
  const deadline = Date.now() + seconds * 1000;
  let last = "";
  for (;;) {
    try {
      const value = await check();
      if (value !== undefined) return value;
    } catch (e) {
      last = `: ${(e as Error).message}`;
    }
    if (Date.now() >= deadline) {
      throw new ScriptsRunnerError("CONFIRM_FAILED", `${what} not confirmed within ${seconds} s${last}`);
    }
    await sleep(200);
  }
}

export async function pgCtl(command: HelperCommand, args: string[], timeoutSeconds: number): Promise<void> {
  const argv = [join(command.bin, "pg_ctl"), ...args, "-D", command.dataDir];
  const result = await runProcess(argv, {
    timeoutMs: (timeoutSeconds + 15) * 1000,
    maxOutputBytes: 16 * 1024,
  });
  if (result.exitCode !== 0 || result.timedOut) {
    const output = `${result.stdout}${result.stderr}`.trim();
    throw new ScriptsRunnerError(
      "PG_CTL_FAILED",
      `${argv.join(" ")} ${result.timedOut ? "timed out" : `exited with ${result.exitCode ?? result.signal}`}: ${output}`,
    );
  }
}

export async function serverLog(command: HelperCommand): Promise<string> {
  if (command.logFile !== undefined) return command.logFile;
  // pg_ctl without -l would hand the server our pipe as stderr; give it a file instead.
  const dir = join(command.dataDir, "log");
  await mkdir(dir, { recursive: true, mode: 0o700 });
  return join(dir, "efm-pg_ctl.log");
}

/** primary_conninfo as the server would read it: postgresql.auto.conf first, then `postgres -C`. */
async function currentConninfo(
  command: HelperCommand,
  autoText: string,
  autoPath: string,
): Promise<string | undefined> {
  const fromAuto = configValue(autoText, autoPath, "primary_conninfo");
  if (fromAuto !== undefined) return fromAuto === "" ? undefined : fromAuto;
  // `postgres -C` resolves postgresql.conf and its includes exactly as the server does.
  const result = await runProcess(
    [join(command.bin, "postgres"), "-D", command.dataDir, "-C", "primary_conninfo"],
    {
      timeoutMs: 30_000,
    },
  );
  const value = result.exitCode === 0 ? result.stdout.replace(/\n$/, "") : "";
  return value === "" ? undefined : value;
}

/** standby.signal (or recovery.conf) and primary_conninfo naming the new master, or empty. */
export async function writeFenceSettings(
  command: Extract<HelperCommand, { verb: "fence" }>,
  conn: HelperConnection | undefined,
  report: Mutable<HelperReport>,
): Promise<void> {
  const newMaster = command.newMaster;
  // With the agent's connection and a passfile: follow the new master as the replication user
  // with the password file. With no new master known, an empty primary_conninfo keeps the
  // server in recovery without streaming from anyone (never from its own address).
  const follow =
    conn !== undefined && command.passfile !== undefined
      ? {
          passfile: command.passfile,
          user: command.replicationUser ?? conn.user,
          port: command.port ?? conn.port,
        }
      : undefined;
  const legacyFresh = (host: string): string =>
    formatConninfo([
      ["host", host],
      ...(command.port === undefined ? [] : [["port", String(command.port)] as const]),
      ...(command.replicationUser === undefined ? [] : [["user", command.replicationUser] as const]),
    ]);
  const nextFor = (current: string | undefined): string => {
    if (newMaster === null) return "";
    if (follow !== undefined)
      return withTls(followConninfo(current, newMaster, follow.port, follow.user, follow.passfile), conn);
    return withTls(
      current === undefined ? legacyFresh(newMaster) : setConninfoHost(current, newMaster),
      conn,
    );
  };
  const where = newMaster === null ? "no master (none known yet)" : newMaster;
  // Written even with no master known yet: it is what the rejoin (reconfigure, or the
  // operator's pg_rewind) authenticates with.
  if (follow !== undefined && conn !== undefined) {
    try {
      writePassfile(follow.passfile, follow.user, conn, report);
    } catch (e) {
      // Fencing is what matters: a missing password file only keeps the server from streaming.
      report.actions.push(`WARNING: ${(e as Error).message}`);
    }
  }
  if (report.version >= 12) {
    // standby.signal first: once it exists the server can only start in recovery.
    const signalPath = join(command.dataDir, "standby.signal");
    if ((await readText(signalPath)) === undefined) {
      replaceFile(signalPath, "");
      report.actions.push(`wrote ${signalPath}`);
    }
    const autoPath = join(command.dataDir, "postgresql.auto.conf");
    const autoText = (await readText(autoPath)) ?? "";
    // With no new master the value is empty whatever it was: no `postgres -C` process (a
    // fence of a failed master is on the failover path).
    const current = newMaster === null ? undefined : await currentConninfo(command, autoText, autoPath);
    const next = nextFor(current);
    const backup = await backupFile(autoPath);
    if (backup !== null) report.backups.push(backup);
    replaceFile(autoPath, setConfigValue(autoText, autoPath, "primary_conninfo", next));
    report.primaryConninfo = redactConninfo(next);
    report.actions.push(`primary_conninfo in ${autoPath} points at ${where}`);
    return;
  }
  const rcPath = join(command.dataDir, "recovery.conf");
  let text = (await readText(rcPath)) ?? "";
  const current = configValue(text, rcPath, "primary_conninfo") || undefined;
  const next = nextFor(current);
  const backup = await backupFile(rcPath);
  if (backup !== null) report.backups.push(backup);
  text = setConfigValue(text, rcPath, "standby_mode", "on");
  text = setConfigValue(text, rcPath, "primary_conninfo", next);
  text = setConfigValue(text, rcPath, "recovery_target_timeline", "latest");
  replaceFile(rcPath, text);
  report.primaryConninfo = redactConninfo(next);
  report.actions.push(`wrote ${rcPath} following ${where}`);
}

// An immediate stop of a server that still runs takes milliseconds (SIGQUIT, no checkpoint);
// one that has not gone after this long is hung, and is killed.
const IMMEDIATE_GRACE_MS = 2_000;
const POLL_MS = 50;

/** The postmaster.pid fields the fence needs; undefined when there is no (readable) file. */
async function readPidFile(
  dataDir: string,
): Promise<{ pid: number; port: number | null; listen: string } | undefined> {
  const text = await readText(join(dataDir, "postmaster.pid"));
  if (text === undefined) return undefined;
  const lines = text.split("\n");
  const pid = Number(lines[0]);
  if (!Number.isInteger(pid) || pid <= 0) return undefined;
  const port = Number(lines[3]);
  return { pid, port: Number.isInteger(port) && port > 0 ? port : null, listen: lines[5]?.trim() ?? "" };
}

/**
 * Whether `pid` is a server process of the data directory whose real path is `realDir`: it runs
 * the postgres program and its working directory is the data directory (the postmaster and
 * every backend chdir there). A pid from a stale postmaster.pid that the system gave to another
 * program fails this, and is never signalled. A zombie has neither link: it is gone (it holds
 * no socket, no shared memory and can write nothing).
 */
async function isServerProcess(pid: number, realDir: string): Promise<boolean> {
  try {
    const [exe, cwd] = await Promise.all([readlink(`/proc/${pid}/exe`), readlink(`/proc/${pid}/cwd`)]);
    return /^postgres( \(deleted\))?$/.test(basename(exe)) && cwd === realDir;
  } catch {
    // Gone, a zombie, or another user's process (whose links we may not read): not ours.
    return false;
  }
}

/** Every live server process of the data directory (postmaster, backends, orphans of a kill). */
async function serverProcesses(realDir: string): Promise<number[]> {
  let names: string[];
  try {
    names = await readdir("/proc");
  } catch (e) {
    throw new ScriptsRunnerError("IO_FAILED", `cannot list /proc: ${(e as Error).message}`, { cause: e });
  }
  const pids = names.filter((n) => /^\d+$/.test(n)).map(Number);
  const ours = await Promise.all(pids.map((pid) => isServerProcess(pid, realDir)));
  return pids.filter((_, i) => ours[i]);
}

/** Polls until no server process of the data directory is left or `ms` pass; returns what is left. */
async function waitGone(realDir: string, ms: number, each?: (pids: number[]) => void): Promise<number[]> {
  const deadline = performance.now() + ms;
  for (;;) {
    const left = await serverProcesses(realDir);
    if (left.length === 0) return left;
    each?.(left);
    if (performance.now() >= deadline) return left;
    await sleep(POLL_MS);
  }
}

/** What a TCP connect to host:port found: "refused" means nothing listens there. */
function tcpProbe(host: string, port: number, timeoutMs: number): Promise<"refused" | "open" | string> {
  return new Promise((resolve) => {
    const socket = createConnection({ host, port });
    const done = (result: string) => {
      socket.destroy();
      resolve(result);
    };
    socket.setTimeout(timeoutMs, () => done(`no answer within ${timeoutMs} ms`));
    socket.once("connect", () => done("open"));
    socket.once("error", (e: NodeJS.ErrnoException) =>
      done(e.code === "ECONNREFUSED" ? "refused" : e.message),
    );
  });
}

/** Where the database takes TCP connections: the agent's own address, else the server's settings. */
async function probeAddress(
  command: HelperCommand,
  conn: HelperConnection | undefined,
  pidFile: Awaited<ReturnType<typeof readPidFile>>,
): Promise<{ host: string; port: number } | null> {
  if (conn !== undefined) return { host: conn.host, port: conn.port };
  const setting = async (name: string): Promise<string> => {
    const r = await runProcess([join(command.bin, "postgres"), "-D", command.dataDir, "-C", name], {
      timeoutMs: 30_000,
    });
    return r.exitCode === 0 ? r.stdout.trim() : "";
  };
  const listen = (pidFile?.listen || (await setting("listen_addresses"))).split(",")[0]!.trim();
  const port = pidFile?.port ?? Number(await setting("port"));
  // Unix sockets only: no TCP port to find closed.
  if (listen === "" || !Number.isInteger(port) || port <= 0) return null;
  return {
    host: listen === "*" || listen === "0.0.0.0" ? "127.0.0.1" : listen === "::" ? "::1" : listen,
    port,
  };
}

/**
 * Stops the server of the data directory and confirms it down, within bounds: `pg_ctl stop`
 * (fast first when asked, then immediate), then SIGKILL of every server process left (the
 * postmaster first, so it forks nothing more; SIGKILL ends a SIGSTOP'd process too), then no
 * server process alive and a TCP connect to the database's address:port refused. Anything less
 * rejects with CONFIRM_FAILED saying what is still there. Returns whether a server was running.
 */
export async function stopConfirmed(
  command: Extract<HelperCommand, { verb: "fence" }>,
  conn: HelperConnection | undefined,
  report: Mutable<HelperReport>,
): Promise<boolean> {
  const boundMs = (command.timeoutSeconds ?? 10) * 1000;
  const realDir = await realpath(command.dataDir);
  const pidFile = await readPidFile(command.dataDir);
  const probe = await probeAddress(command, conn, pidFile);
  const postmaster =
    pidFile !== undefined && (await isServerProcess(pidFile.pid, realDir)) ? pidFile.pid : null;
  if (pidFile !== undefined && postmaster === null) {
    report.actions.push(`postmaster.pid names pid ${pidFile.pid}, which is no running server of ${realDir}`);
  }
  let left = await serverProcesses(realDir);
  const wasRunning = postmaster !== null || left.length > 0;
  if (!wasRunning) report.actions.push(`no server process of ${realDir} is running`);
  const stop = async (mode: "fast" | "immediate", waitMs: number) => {
    // -W: pg_ctl only signals; the waiting is ours, in milliseconds and counting every process.
    const r = await runProcess(
      [join(command.bin, "pg_ctl"), "stop", "-D", command.dataDir, "-m", mode, "-W"],
      {
        timeoutMs: 15_000,
        maxOutputBytes: 16 * 1024,
      },
    );
    report.actions.push(
      r.exitCode === 0
        ? `pg_ctl stop -m ${mode}`
        : `pg_ctl stop -m ${mode} failed (${`${r.stdout}${r.stderr}`.trim() || (r.exitCode ?? r.signal)})`,
    );
    left = await waitGone(realDir, waitMs);
  };
  if (left.length > 0 && postmaster !== null && command.stop === "fast") await stop("fast", boundMs);
  if (left.length > 0 && postmaster !== null && (await isServerProcess(postmaster, realDir))) {
    await stop("immediate", Math.min(IMMEDIATE_GRACE_MS, boundMs));
  }
  if (left.length > 0) {
    const killed = new Set<number>();
    const kill = (pids: number[]) => {
      // The postmaster first: once it is gone nothing forks new backends.
      for (const pid of [...pids].sort((a, b) => (a === postmaster ? -1 : b === postmaster ? 1 : 0))) {
        try {
          process.kill(pid, "SIGKILL");
          killed.add(pid);
        } catch {
          // Already gone between the scan and the signal.
        }
      }
    };
    left = await waitGone(realDir, boundMs, kill);
    report.actions.push(`SIGKILL to ${killed.size} server process(es): ${[...killed].join(" ")}`);
    if (left.length > 0) {
      throw new ScriptsRunnerError(
        "CONFIRM_FAILED",
        `fence not confirmed: server process(es) ${left.join(" ")} of ${realDir} still alive ${boundMs} ms after SIGKILL`,
      );
    }
  }
  if (wasRunning) report.actions.push(`no server process of ${realDir} is left`);
  if (probe === null) {
    report.actions.push("the server listens on no TCP address: no port to find closed");
    return wasRunning;
  }
  const where = formatAddress(probe);
  const deadline = performance.now() + boundMs;
  for (;;) {
    const found = await tcpProbe(probe.host, probe.port, 1_000);
    if (found === "refused") break;
    if (performance.now() >= deadline) {
      throw new ScriptsRunnerError(
        "CONFIRM_FAILED",
        found === "open"
          ? `fence not confirmed: ${where} still accepts connections though no server process of ${realDir} runs`
          : `fence not confirmed: a connection to ${where} was not refused: ${found}`,
      );
    }
    await sleep(POLL_MS);
  }
  report.actions.push(`connection to ${where} refused: the database is down`);
  return wasRunning;
}

export function formatAddress(a: { host: string; port: number }): string {
  return a.host.includes(":") ? `[${a.host}]:${a.port}` : `${a.host}:${a.port}`;
}

/**
 * Fences an old master. The recovery settings come first (so that whatever starts the server
 * next, a supervisor or an operator, starts it in recovery), then the server is stopped and
 * confirmed down (stopConfirmed); only then does the helper report success. With --after standby
 * a server that was running is started again in recovery, following the new master.
 */
async function fence(
  command: Extract<HelperCommand, { verb: "fence" }>,
  conn: HelperConnection | undefined,
  report: Mutable<HelperReport>,
): Promise<void> {
  await writeFenceSettings(command, conn, report);
  if (command.stop === "fast") await checkpointFirst(command, conn, report);
  const wasRunning = await stopConfirmed(command, conn, report);
  report.wasRunning = wasRunning;
  if (command.stop === "fast" && wasRunning) await readFinalPosition(command, report);
  if (command.after !== "standby") return;
  if (!wasRunning) {
    report.actions.push("the server was not running: left down");
    return;
  }
  const seconds = command.timeoutSeconds ?? 10;
  let recovering: boolean;
  try {
    const log = await serverLog(command);
    await pgCtl(command, ["start", "-w", "-t", String(seconds), "-l", log], seconds);
    recovering = await waitUntil(seconds, "server accepting connections", () => inRecovery(command, conn));
  } catch (e) {
    // The fence itself holds (stopped, settings written); a standby that does not come back is
    // the operator's to start, not a reason to call the old master possibly writable.
    report.actions.push(`WARNING: not started again in recovery: ${(e as Error).message}`);
    return;
  }
  report.inRecovery = recovering;
  if (!recovering) {
    // standby.signal was written first; a server out of recovery here means someone removed it.
    throw new ScriptsRunnerError("CONFIRM_FAILED", `${command.dataDir} started out of recovery`);
  }
  report.actions.push(`started again in recovery, following ${command.newMaster}`);
}

/**
 * A switchover's CHECKPOINT before the fast stop: the shutdown checkpoint then has little left to
 * write, so the writes pause for less. Best effort: without the right (superuser or
 * pg_checkpoint) the stop only takes longer.
 */
async function checkpointFirst(
  command: Extract<HelperCommand, { verb: "fence" }>,
  conn: HelperConnection | undefined,
  report: Mutable<HelperReport>,
): Promise<void> {
  if ((await serverAddress(command.dataDir)) === undefined) return;
  try {
    await query(command, conn, "CHECKPOINT");
    report.actions.push("CHECKPOINT");
  } catch (e) {
    report.actions.push(`CHECKPOINT failed (${(e as Error).message}): the shutdown checkpoint writes it all`);
  }
}

/**
 * After a fast stop: the shutdown checkpoint's position, only when pg_controldata says the
 * server shut down cleanly (a fast stop that timed out into an immediate one did not, and its
 * end of WAL is unknown).
 */
async function readFinalPosition(
  command: Extract<HelperCommand, { verb: "fence" }>,
  report: Mutable<HelperReport>,
): Promise<void> {
  const r = await runProcess([join(command.bin, "pg_controldata"), "-D", command.dataDir], {
    timeoutMs: 15_000,
    maxOutputBytes: 64 * 1024,
    env: { ...process.env, LC_ALL: "C" },
  });
  const state = /^Database cluster state:\s*(.+)$/m.exec(r.stdout)?.[1]?.trim();
  const lsn = /^Latest checkpoint location:\s*([0-9A-Fa-f]+\/[0-9A-Fa-f]+)\s*$/m.exec(r.stdout)?.[1];
  if (r.exitCode !== 0 || state !== "shut down" || lsn === undefined) {
    report.actions.push(
      `no clean shutdown to report (pg_controldata: ${r.exitCode === 0 ? `state ${state ?? "unknown"}` : `${r.stderr}`.trim() || "failed"})`,
    );
    return;
  }
  report.finalLsn = lsn;
  report.actions.push(`shut down cleanly; shutdown checkpoint at ${lsn}`);
}

async function reconfigure(
  command: Extract<HelperCommand, { verb: "reconfigure" }>,
  conn: HelperConnection | undefined,
  report: Mutable<HelperReport>,
): Promise<void> {
  const running = (await serverAddress(command.dataDir)) !== undefined;
  // Rewriting a master's primary_conninfo would do nothing now and surprise at its next restart.
  if (running && !(await inRecovery(command, conn))) {
    throw new ScriptsRunnerError("NOT_STANDBY", `${command.dataDir} is a running master, not a standby`);
  }
  const file = join(command.dataDir, report.version >= 12 ? "postgresql.auto.conf" : "recovery.conf");
  const text = await readText(file);
  if (report.version < 12 && text === undefined) {
    throw new ScriptsRunnerError(
      "NO_PRIMARY_CONNINFO",
      `${file} does not exist: this server is not a standby`,
    );
  }
  const current =
    report.version >= 12
      ? await currentConninfo(command, text ?? "", file)
      : configValue(text ?? "", file, "primary_conninfo") || undefined;
  // A fenced old master waiting for a master to be known has none: it gets the follow
  // connection (replication user, password file) the fence would have written.
  const canFollow = conn !== undefined && command.passfile !== undefined;
  if (current === undefined && !canFollow) {
    throw new ScriptsRunnerError(
      "NO_PRIMARY_CONNINFO",
      `no primary_conninfo is configured for ${command.dataDir}`,
    );
  }
  const next = withTls(
    current === undefined
      ? followConninfo(undefined, command.newMaster, conn!.port, conn!.user, command.passfile!)
      : setConninfoHost(current, command.newMaster),
    conn,
  );
  if (canFollow && conninfoValue(next, "passfile") === command.passfile) {
    writePassfile(command.passfile!, conninfoValue(next, "user") ?? conn!.user, conn!, report);
  }
  report.primaryConninfo = redactConninfo(next);
  if (next !== current || configValue(text ?? "", file, "primary_conninfo") === undefined) {
    const backup = await backupFile(file);
    if (backup !== null) report.backups.push(backup);
    replaceFile(file, setConfigValue(text ?? "", file, "primary_conninfo", next));
    report.actions.push(`primary_conninfo in ${file} points at ${command.newMaster}`);
  }
  if (!running) {
    // Nothing to apply to: the file is what the server reads when it is next started.
    report.actions.push("server not running: the new primary_conninfo applies when it starts");
    return;
  }
  if (report.version >= 13) {
    // Since 13 primary_conninfo is reloadable: the WAL receiver restarts with the new value.
    await pgCtl(command, ["reload", "-s"], 30);
    report.actions.push("reloaded the configuration");
  } else {
    const log = await serverLog(command);
    await pgCtl(
      command,
      ["restart", "-m", "fast", "-w", "-t", String(command.timeoutSeconds), "-l", log],
      command.timeoutSeconds,
    );
    report.actions.push("restarted the server (-m fast)");
  }
  const column = report.version >= 11 ? "sender_host" : "conninfo";
  let timeline = 0;
  await waitUntil(
    command.timeoutSeconds,
    `streaming from ${command.newMaster} on its newest timeline`,
    async () => {
      const rows = await query<{ status: string; sender: string | null; tli: number | null }>(
        command,
        conn,
        `SELECT status, ${column} AS sender, received_tli AS tli FROM pg_stat_wal_receiver`,
      );
      const row = rows[0];
      if (row === undefined || row.status !== "streaming" || row.sender === null) return undefined;
      const host = report.version >= 11 ? row.sender : conninfoValue(row.sender, "host");
      if (host !== command.newMaster) return undefined;
      // Streaming the old timeline up to the new master's fork is not following it yet: a standby
      // that went past that fork streams it, then waits for good. The receiver fetched the new
      // master's timeline histories on connecting; it follows once it streams the newest of them.
      timeline = Math.max(1, await newestHistoryTimeline(command.dataDir, report.version));
      return Number(row.tli) >= timeline ? true : undefined;
    },
  );
  report.actions.push(`streaming from ${command.newMaster} on timeline ${timeline} or later`);
}

/** The newest timeline with a history file in the WAL directory (0: none, e.g. timeline 1). */
async function newestHistoryTimeline(dataDir: string, version: number): Promise<number> {
  const dir = join(dataDir, version >= 10 ? "pg_wal" : "pg_xlog");
  let newest = 0;
  for (const name of await readdir(dir).catch(() => [] as string[])) {
    const m = /^([0-9A-F]{8})\.history$/.exec(name);
    if (m) newest = Math.max(newest, Number.parseInt(m[1]!, 16));
  }
  return newest;
}

async function promote(
  command: Extract<HelperCommand, { verb: "promote" }>,
  conn: HelperConnection | undefined,
  report: Mutable<HelperReport>,
): Promise<void> {
  if (!(await inRecovery(command, conn))) {
    report.alreadyMaster = true;
    report.inRecovery = false;
    report.actions.push("already out of recovery; nothing to do");
    return;
  }
  await pgCtl(command, ["promote", "-w", "-t", String(command.timeoutSeconds)], command.timeoutSeconds);
  report.actions.push("pg_ctl promote");
  await waitUntil(command.timeoutSeconds, "end of recovery", async () =>
    (await inRecovery(command, conn)) ? undefined : true,
  );
  report.inRecovery = false;
  report.actions.push("pg_is_in_recovery() is false");
}

async function restart(
  command: Extract<HelperCommand, { verb: "restart" }>,
  conn: HelperConnection | undefined,
  report: Mutable<HelperReport>,
): Promise<void> {
  const log = await serverLog(command);
  const mode = command.mode ?? "fast";
  await pgCtl(
    command,
    ["restart", "-m", mode, "-w", "-t", String(command.timeoutSeconds), "-l", log],
    command.timeoutSeconds,
  );
  report.actions.push(`restarted the server (-m ${mode})`);
  report.inRecovery = await waitUntil(command.timeoutSeconds, "server accepting connections", () =>
    inRecovery(command, conn),
  );
}

/**
 * Everything promote and fence rely on, without changing anything: run at agent start-up
 * (guide 4.1.1: a cluster that starts can promote) and by a candidate before the master is
 * fenced for it.
 */
async function check(
  command: Extract<HelperCommand, { verb: "check" }>,
  conn: HelperConnection | undefined,
  report: Mutable<HelperReport>,
): Promise<void> {
  report.actions.push(
    `${command.dataDir} is a PostgreSQL ${report.version} data directory owned by this user`,
  );
  const pgCtlPath = join(command.bin, "pg_ctl");
  try {
    await access(pgCtlPath, constants.X_OK);
  } catch {
    throw new ScriptsRunnerError("PG_CTL_FAILED", `${pgCtlPath} is missing or not executable (db.bin)`);
  }
  report.actions.push(`${pgCtlPath} is executable`);
  if (command.passfile !== undefined) {
    const dir = dirname(command.passfile);
    try {
      await access(dir, constants.W_OK | constants.X_OK);
    } catch {
      throw new ScriptsRunnerError(
        "IO_FAILED",
        `cannot write the password file ${command.passfile}: ${dir} is not writable by this user`,
      );
    }
    report.actions.push(`${dir} is writable for the password file`);
  }
  // Whether a rejoin could rewind this database later: the agent says so at start-up.
  const rewind = await rewindable(command);
  if (rewind !== undefined) {
    report.rewindable = rewind;
    report.actions.push(
      `pg_control: wal_log_hints ${rewind.walLogHints ? "on" : "off"}, data checksums ${rewind.dataChecksums ? "on" : "off"}`,
    );
  }
  report.running = (await serverAddress(command.dataDir)) !== undefined;
  if (!report.running) {
    if (command.role === "standby") {
      throw new ScriptsRunnerError("NOT_RUNNING", `no server is running on ${command.dataDir}`);
    }
    report.actions.push("no server running: the database connection was not tried");
    return;
  }
  report.inRecovery = await inRecovery(command, conn);
  const how = conn === undefined ? "over the Unix socket" : `to ${conn.host}:${conn.port} as ${conn.user}`;
  report.actions.push(`connected ${how}: ${report.inRecovery ? "in recovery" : "not in recovery"}`);
  if (command.role === "standby" && !report.inRecovery) {
    throw new ScriptsRunnerError("NOT_STANDBY", `${command.dataDir} is not in recovery: nothing to promote`);
  }
}

/**
 * Carries out one validated helper command as the current user; `conn` (from stdin) is the
 * connection every SQL uses, else the server's Unix socket.
 */
export async function executeHelperCommand(
  command: HelperCommand,
  conn?: HelperConnection,
): Promise<HelperReport> {
  const started = performance.now();
  const version = await checkDataDir(command.dataDir);
  const report: Mutable<HelperReport> = {
    verb: command.verb,
    dataDir: command.dataDir,
    version,
    actions: [],
    backups: [],
    durationMs: 0,
  };
  switch (command.verb) {
    case "promote":
      await promote(command, conn, report);
      break;
    case "fence":
      await fence(command, conn, report);
      break;
    case "reconfigure":
      await reconfigure(command, conn, report);
      break;
    case "restart":
      await restart(command, conn, report);
      break;
    case "check":
      await check(command, conn, report);
      break;
    case "rejoin":
      await rejoin(command, conn!, report);
      break;
  }
  report.durationMs = performance.now() - started;
  return report;
}
