import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import pg from "pg";
import { LabError } from "./errors.ts";
import {
  alive,
  childrenOf,
  type ExecOptions,
  type ExecResult,
  run,
  runningAsRoot,
  signal,
  sleep,
} from "./exec.ts";
import type { HostState, LabState } from "./state.ts";

/** Wrap argv so it runs in the host's namespace and, when asked, as the database owner. */
export function hostArgv(
  state: LabState,
  host: HostState,
  argv: readonly string[],
  asOwner: boolean,
): string[] {
  let a = [...argv];
  if (asOwner && runningAsRoot()) a = ["runuser", "-u", state.dbOwner, "--", ...a];
  if (host.namespace !== null) a = ["ip", "netns", "exec", host.namespace, ...a];
  return a;
}

/** Run a PostgreSQL tool (from pgBin) as the owner, inside the host. */
export function pgTool(
  state: LabState,
  host: HostState,
  tool: string,
  args: readonly string[],
  options?: ExecOptions,
): Promise<ExecResult> {
  return run(hostArgv(state, host, [path.join(state.pgBin, tool), ...args], true), options);
}

/** Give a path to the database owner (no-op unless root). */
export function chownToOwner(state: LabState, p: string): void {
  if (!runningAsRoot()) return;
  const { uid, gid } = ownerIds(state.dbOwner);
  fs.chownSync(p, uid, gid);
}

let cachedOwner: { name: string; uid: number; gid: number } | null = null;
function ownerIds(name: string): { uid: number; gid: number } {
  if (cachedOwner?.name === name) return cachedOwner;
  const line = fs
    .readFileSync("/etc/passwd", "utf8")
    .split("\n")
    .find((l) => l.startsWith(`${name}:`));
  const f = line?.split(":");
  if (f === undefined || f[2] === undefined || f[3] === undefined) {
    throw new LabError(
      "INVALID_OPTIONS",
      `OS user ${name} does not exist (needed to run PostgreSQL as root)`,
    );
  }
  cachedOwner = { name, uid: Number(f[2]), gid: Number(f[3]) };
  return cachedOwner;
}

export function requireData(host: HostState): string {
  if (host.dataDir === null) {
    throw new LabError("NO_DATABASE", `host ${host.name} is a witness and has no database`);
  }
  return host.dataDir;
}

/** The postmaster pid from postmaster.pid, if that process is alive. */
export function postmasterPid(host: HostState): number | null {
  if (host.dataDir === null) return null;
  let text: string;
  try {
    text = fs.readFileSync(path.join(host.dataDir, "postmaster.pid"), "utf8");
  } catch {
    return null;
  }
  const pid = Number(text.split("\n")[0]);
  if (!Number.isInteger(pid) || pid <= 0 || !alive(pid)) return null;
  // A recycled pid must not be mistaken for our postmaster: check it serves this data dir.
  try {
    const cmdline = fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0");
    if (!cmdline.includes(host.dataDir)) return null;
  } catch {
    return null;
  }
  return pid;
}

/** Superuser connection over the host's Unix socket: works whatever the network does. */
export function socketConfig(state: LabState, host: HostState, database?: string): pg.ClientConfig {
  return {
    host: host.socketDir,
    port: state.port,
    user: state.superuser,
    database: database ?? state.database,
    connectionTimeoutMillis: 10_000,
    statement_timeout: 30_000,
    query_timeout: 35_000,
  };
}

/** Run SQL over the socket as superuser and return the rows. */
export async function sql(
  state: LabState,
  host: HostState,
  text: string,
  params: unknown[] = [],
  database?: string,
): Promise<Record<string, unknown>[]> {
  requireData(host);
  const client = new pg.Client(socketConfig(state, host, database));
  client.on("error", () => {});
  try {
    await client.connect();
    const res = await client.query(text, params);
    return res.rows as Record<string, unknown>[];
  } catch (err) {
    throw new LabError("SQL_FAILED", `host ${host.name}: ${(err as Error).message} (sql: ${text})`, {
      cause: err,
    });
  } finally {
    await client.end().catch(() => {});
  }
}

/** Wait until predicate() is true, polling; throws TIMEOUT naming what was awaited. */
export async function waitFor(
  what: string,
  predicate: () => Promise<boolean> | boolean,
  timeoutMs: number,
  intervalMs = 100,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let lastErr: unknown;
  for (;;) {
    try {
      if (await predicate()) return;
    } catch (err) {
      // A COMMAND_FAILED from the predicate means "this will never happen": stop waiting.
      if (err instanceof LabError && err.code === "COMMAND_FAILED") throw err;
      lastErr = err;
    }
    if (Date.now() > deadline) {
      const why = lastErr instanceof Error ? ` (last error: ${lastErr.message})` : "";
      throw new LabError("TIMEOUT", `timed out after ${timeoutMs} ms waiting for ${what}${why}`);
    }
    await sleep(intervalMs);
  }
}

/**
 * After a crash, postmaster.pid and the server's small SysV segment stay behind. PostgreSQL
 * would clean them up itself, but it treats a not-yet-reaped zombie postmaster as alive and
 * refuses to start, and a server never restarted leaks the segment. So, once the postmaster is
 * dead: remove the segment it created (matched by id, key and creator pid, with nobody attached)
 * and the lock file.
 */
export function clearStale(host: HostState): void {
  if (host.dataDir === null || postmasterPid(host) !== null) return;
  const pidFile = path.join(host.dataDir, "postmaster.pid");
  let lines: string[];
  try {
    lines = fs.readFileSync(pidFile, "utf8").split("\n");
  } catch {
    return;
  }
  const oldPid = Number(lines[0]);
  const [key, id] = (lines[6] ?? "").trim().split(/\s+/).map(Number);
  if (key !== undefined && id !== undefined && Number.isInteger(id)) {
    try {
      for (const row of fs.readFileSync("/proc/sysvipc/shm", "utf8").split("\n").slice(1)) {
        const f = row.trim().split(/\s+/).map(Number);
        // columns: key shmid perms size cpid lpid nattch ...
        if (f[0] === key && f[1] === id && f[4] === oldPid && f[6] === 0) {
          spawnSync("ipcrm", ["-m", String(id)]);
        }
      }
    } catch {
      // no SysV IPC info: nothing to clean
    }
  }
  // The socket lock file names the same dead pid (same zombie problem); drop it with its socket.
  for (const f of fs.readdirSync(host.socketDir)) {
    if (!f.endsWith(".lock")) continue;
    const lock = path.join(host.socketDir, f);
    try {
      if (Number(fs.readFileSync(lock, "utf8").split("\n")[0]) !== oldPid) continue;
    } catch {
      continue;
    }
    fs.rmSync(lock.slice(0, -".lock".length), { force: true });
    fs.rmSync(lock, { force: true });
  }
  fs.rmSync(pidFile, { force: true });
}

/** pg_ctl start, waiting until connections are accepted. */
export async function startDb(state: LabState, host: HostState): Promise<void> {
  const data = requireData(host);
  if (postmasterPid(host) !== null) return;
  clearStale(host);
  try {
    await pgTool(state, host, "pg_ctl", ["-D", data, "-l", host.logFile, "-w", "-t", "60", "start"], {
      timeoutMs: 90_000,
    });
  } catch (err) {
    throw new LabError(
      "COMMAND_FAILED",
      `host ${host.name}: database did not start; log tail:\n${logTail(host, 6)}`,
      {
        cause: err,
      },
    );
  }
}

/** Last lines of the host's server log, for error messages. */
export function logTail(host: HostState, n: number): string {
  try {
    return fs.readFileSync(host.logFile, "utf8").trimEnd().split("\n").slice(-n).join("\n");
  } catch {
    return "(no log)";
  }
}

/** pg_ctl stop with the given shutdown mode; a hung server is resumed first so it can obey. */
export async function stopDb(
  state: LabState,
  host: HostState,
  mode: "smart" | "fast" | "immediate",
): Promise<void> {
  const data = requireData(host);
  const pid = postmasterPid(host);
  if (pid === null) return;
  resumeTree(pid);
  await pgTool(state, host, "pg_ctl", ["-D", data, "-m", mode, "-w", "-t", "60", "stop"], {
    timeoutMs: 90_000,
    allowFailure: true,
  });
  if (postmasterPid(host) !== null) await killDb(host);
}

/**
 * SIGKILL the postmaster, like a crash. Its children notice the postmaster's death and exit on
 * their own; stragglers (e.g. stopped by hangDb) are killed so the data dir can start again.
 */
export async function killDb(host: HostState): Promise<void> {
  const pid = postmasterPid(host);
  if (pid === null) return;
  const children = childrenOf(pid);
  signal(pid, "SIGKILL");
  const deadline = Date.now() + 3_000;
  while (Date.now() < deadline && (alive(pid) || children.some(alive))) await sleep(50);
  for (const c of children) if (alive(c)) signal(c, "SIGKILL");
  while (children.some(alive)) await sleep(20);
  clearStale(host);
}

/** SIGSTOP the postmaster then every child, so existing connections hang too. */
export function hangDb(host: HostState): void {
  const pid = postmasterPid(host);
  if (pid === null) throw new LabError("COMMAND_FAILED", `host ${host.name}: database is not running`);
  signal(pid, "SIGSTOP"); // first, so it cannot fork a child we would miss
  for (const c of childrenOf(pid)) signal(c, "SIGSTOP");
}

/** SIGCONT a postmaster and its children. */
export function resumeTree(pid: number): void {
  for (const c of childrenOf(pid)) signal(c, "SIGCONT");
  signal(pid, "SIGCONT");
}

/** Whether the server answers pg_is_in_recovery() (true = standby). */
export async function inRecovery(state: LabState, host: HostState): Promise<boolean> {
  const rows = await sql(state, host, "SELECT pg_is_in_recovery() AS r");
  return rows[0]?.r === true;
}

/** The host's WAL position: replay position on a standby, current insert position on a master. */
export async function lsn(state: LabState, host: HostState): Promise<string> {
  const rows = await sql(
    state,
    host,
    `SELECT CASE WHEN pg_is_in_recovery()
       THEN coalesce(pg_last_wal_replay_lsn(), pg_last_wal_receive_lsn())::text
       ELSE pg_current_wal_lsn()::text END AS lsn`,
  );
  const v = rows[0]?.lsn;
  if (typeof v !== "string") throw new LabError("SQL_FAILED", `host ${host.name}: no WAL position`);
  return v;
}

/** A `primary_conninfo` value for a standby of `master`, named after the standby. */
export function primaryConninfo(state: LabState, master: HostState, standby: HostState): string {
  return [
    `host=${master.address}`,
    `port=${state.port}`,
    `user=${state.replicationUser}`,
    `password=${state.replicationPassword}`,
    `application_name=${standby.name}`,
  ].join(" ");
}

/** Make the data dir a standby of master on next start: standby.signal + primary_conninfo. */
export function writeStandbyConfig(state: LabState, host: HostState, master: HostState): void {
  const data = requireData(host);
  const auto = path.join(data, "postgresql.auto.conf");
  let lines: string[] = [];
  try {
    lines = fs.readFileSync(auto, "utf8").split("\n");
  } catch {
    // absent is fine
  }
  lines = lines.filter((l) => !/^\s*primary_conninfo\s*=/.test(l) && l.trim() !== "");
  lines.push(`primary_conninfo = '${primaryConninfo(state, master, host).replaceAll("'", "''")}'`);
  fs.writeFileSync(auto, `${lines.join("\n")}\n`, { mode: 0o600 });
  chownToOwner(state, auto);
  const signalFile = path.join(data, "standby.signal");
  fs.writeFileSync(signalFile, "", { mode: 0o600 });
  chownToOwner(state, signalFile);
}

/** Per-host settings, included last from postgresql.conf so a base backup never carries them over. */
export function writeHostConf(
  state: LabState,
  host: HostState,
  extra: Record<string, string | number>,
): void {
  const data = requireData(host);
  const settings: Record<string, string | number> = {
    listen_addresses: host.address,
    port: state.port,
    unix_socket_directories: host.socketDir,
    cluster_name: host.name,
    // Per host, like the address: each server presents a certificate naming its own address.
    ...(state.tls
      ? {
          ssl: "on",
          ssl_cert_file: path.join(state.tls.dir, `${host.name}.crt`),
          ssl_key_file: path.join(state.tls.dir, `${host.name}.key`),
        }
      : {}),
    ...extra,
  };
  const text = Object.entries(settings)
    .map(([k, v]) => `${k} = ${typeof v === "number" ? v : `'${String(v).replaceAll("'", "''")}'`}`)
    .join("\n");
  const file = path.join(data, "lab-host.conf");
  fs.writeFileSync(file, `# written by @efm/lab for host ${host.name}\n${text}\n`, { mode: 0o600 });
  chownToOwner(state, file);
}

/** Names of standbys streaming from master according to pg_stat_replication. */
export async function streamingStandbys(state: LabState, master: HostState): Promise<string[]> {
  const rows = await sql(
    state,
    master,
    "SELECT application_name FROM pg_stat_replication WHERE state = 'streaming'",
  );
  return rows.map((r) => String(r.application_name));
}
