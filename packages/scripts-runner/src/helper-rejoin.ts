import {
  lstatSync,
  chmodSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { clientConfig, connectionAttempts } from "@efm/db-probe";
import pg from "pg";
import { backupStamp } from "./atomic.ts";
import { conninfoValue, formatConninfo } from "./conninfo.ts";
import { ScriptsRunnerError } from "./errors.ts";
import type { HelperCommand } from "./helper-grammar.ts";
import {
  type HelperConnection,
  type HelperReport,
  inRecovery,
  type Mutable,
  pgCtl,
  query,
  serverLog,
  stopConfirmed,
  waitUntil,
  withTls,
  writeFenceSettings,
  writePassfile,
} from "./helper-ops.ts";
import { runProcess } from "./run.ts";

type RejoinCommand = Extract<HelperCommand, { verb: "rejoin" }>;
type FenceCommand = Extract<HelperCommand, { verb: "fence" }>;

// The helper runs with a fixed environment; the PostgreSQL programs must print in English for
// their output to be parsed (pg_controldata) and quoted (pg_rewind) the same everywhere.
const C_LOCALE = { ...process.env, LANG: "C", LC_ALL: "C" };

/**
 * What pg_control says about pg_rewind's precondition: wal_log_hints=on or data checksums.
 * undefined when pg_controldata cannot tell (missing program, unreadable control file): the
 * caller then lets pg_rewind itself decide, and says why.
 */
export async function rewindable(
  command: HelperCommand,
): Promise<{ walLogHints: boolean; dataChecksums: boolean } | undefined> {
  let out: string;
  try {
    const r = await runProcess([join(command.bin, "pg_controldata"), "-D", command.dataDir], {
      timeoutMs: 30_000,
      env: C_LOCALE,
    });
    if (r.exitCode !== 0) return undefined;
    out = r.stdout;
  } catch {
    return undefined;
  }
  const checksums = /^Data page checksum version:\s*(\d+)/m.exec(out);
  const hints = /^wal_log_hints setting:\s*(\w+)/m.exec(out);
  if (checksums === null || hints === null) return undefined;
  return { walLogHints: hints[1] === "on", dataChecksums: Number(checksums[1]) !== 0 };
}

/** The last lines of a program's output, for an error message that says what it said. */
function tail(text: string, lines = 12): string {
  return text.trim().split("\n").slice(-lines).join("\n");
}

/**
 * Top-level configuration files of the data directory (postgresql.conf, pg_hba.conf,
 * postgresql.auto.conf, included *.conf files): pg_rewind and pg_basebackup replace them with
 * the new master's, but they describe this host (its addresses, its ALTER SYSTEM settings).
 */
function saveConfigFiles(dataDir: string): { name: string; content: Buffer; mode: number }[] {
  return readdirSync(dataDir, { withFileTypes: true })
    .filter((d) => d.isFile() && d.name.endsWith(".conf"))
    .map((d) => {
      const path = join(dataDir, d.name);
      return { name: d.name, content: readFileSync(path), mode: lstatSync(path).mode & 0o777 };
    });
}

function restoreConfigFiles(
  dataDir: string,
  files: readonly { name: string; content: Buffer; mode: number }[],
  report: Mutable<HelperReport>,
): void {
  for (const f of files) {
    const path = join(dataDir, f.name);
    writeFileSync(path, f.content, { mode: f.mode });
    chmodSync(path, f.mode);
  }
  if (files.length > 0) {
    report.actions.push(`put back this host's configuration files: ${files.map((f) => f.name).join(" ")}`);
  }
}

/**
 * Runs `work` on a connection to the new master `host` as `user`, trying each address and TLS
 * mode the agent's own connection would. Another role than db.user authenticates its own way
 * (~/.pgpass of db.service.owner, certificates, trust): db.user's password is never sent for it.
 * Throws the first connection failure, or what `work` threw.
 */
async function onSource<T>(
  conn: HelperConnection,
  host: string,
  user: string,
  work: (client: pg.Client) => Promise<T>,
): Promise<T> {
  const target = { ...conn, host, user };
  let failure: unknown;
  for (const attempt of connectionAttempts(target)) {
    const config = clientConfig(target, attempt);
    if (user !== conn.user) config.password = undefined;
    const client = new pg.Client({
      ...config,
      application_name: "efm-helper",
      connectionTimeoutMillis: 10_000,
      query_timeout: 120_000,
    });
    client.on("error", () => {});
    try {
      await client.connect();
    } catch (e) {
      failure ??= e;
      await client.end().catch(() => {});
      continue;
    }
    try {
      return await work(client);
    } finally {
      await client.end().catch(() => {});
    }
  }
  throw failure ?? new Error("no connection attempt");
}

/**
 * The functions pg_rewind calls on its source server (PostgreSQL's pg_rewind documentation):
 * a role that is not a superuser needs EXECUTE on each of them.
 */
export const REWIND_FUNCTIONS = [
  "pg_catalog.pg_ls_dir(text, boolean, boolean)",
  "pg_catalog.pg_stat_file(text, boolean)",
  "pg_catalog.pg_read_binary_file(text)",
  "pg_catalog.pg_read_binary_file(text, bigint, bigint, boolean)",
] as const;

/** What the source role holds on the new master, as {@link missingRewindPrivileges} reads it. */
export interface SourcePrivileges {
  readonly superuser: boolean;
  /** server_version_num of the new master. */
  readonly version: number;
  /** CHECKPOINT allowed: superuser, or (PostgreSQL 15 and later) the privileges of pg_checkpoint. */
  readonly checkpoint: boolean;
  /** EXECUTE on each of {@link REWIND_FUNCTIONS}, in that order. */
  readonly execute: readonly boolean[];
}

/**
 * What the source role lacks for a rejoin by pg_rewind, each said as the grant that gives it;
 * empty when nothing is missing. A superuser lacks nothing.
 */
export function missingRewindPrivileges(p: SourcePrivileges): string[] {
  if (p.superuser) return [];
  const missing: string[] = [];
  if (!p.checkpoint) {
    missing.push(
      p.version >= 150_000
        ? "CHECKPOINT (GRANT pg_checkpoint TO the role)"
        : `CHECKPOINT (superuser only before PostgreSQL 15; the new master runs ${Math.floor(p.version / 10_000)})`,
    );
  }
  REWIND_FUNCTIONS.forEach((fn, i) => {
    if (p.execute[i] !== true) missing.push(`EXECUTE on ${fn}`);
  });
  return missing;
}

/**
 * Reads, on the new master as the source role, whether it holds what pg_rewind needs, before
 * anything of this database is touched: a rewind that fails for a missing grant would otherwise
 * leave the old master stopped for nothing. Refuses (REJOIN_REFUSED, nothing changed) naming
 * each missing privilege, or the connection failure when the role cannot even connect.
 */
async function checkSourcePrivileges(
  command: RejoinCommand,
  conn: HelperConnection,
  user: string,
  report: Mutable<HelperReport>,
): Promise<void> {
  // Nothing of this host has been touched yet: a running database keeps running.
  const left = "nothing was changed (the database was not stopped)";
  let p: SourcePrivileges;
  try {
    p = await onSource(conn, command.newMaster, user, async (client) => {
      const v = await client.query<{ version: number; superuser: boolean }>(
        "SELECT current_setting('server_version_num')::int AS version, rolsuper AS superuser FROM pg_catalog.pg_roles WHERE rolname = current_user",
      );
      const version = v.rows[0]?.version ?? 0;
      // pg_checkpoint exists from PostgreSQL 15; before, only a superuser may CHECKPOINT.
      const checkpoint =
        version >= 150_000
          ? (
              await client.query<{ ok: boolean }>(
                "SELECT pg_catalog.pg_has_role('pg_checkpoint', 'USAGE') AS ok",
              )
            ).rows[0]?.ok === true
          : v.rows[0]?.superuser === true;
      const execute: boolean[] = [];
      for (const fn of REWIND_FUNCTIONS) {
        const r = await client.query<{ ok: boolean }>(
          "SELECT pg_catalog.has_function_privilege($1, 'EXECUTE') AS ok",
          [fn],
        );
        execute.push(r.rows[0]?.ok === true);
      }
      return { superuser: v.rows[0]?.superuser === true, version, checkpoint, execute };
    });
  } catch (e) {
    throw new ScriptsRunnerError(
      "REJOIN_REFUSED",
      `cannot rejoin ${command.dataDir} to ${command.newMaster}: pg_rewind's source role ${user} (db.rewind.source.user) cannot connect to the new master to check its privileges: ${(e as Error).message}; ${left}`,
    );
  }
  const missing = missingRewindPrivileges(p);
  if (missing.length > 0) {
    throw new ScriptsRunnerError(
      "REJOIN_REFUSED",
      `cannot rejoin ${command.dataDir} to ${command.newMaster}: pg_rewind's source role ${user} (db.rewind.source.user) lacks on the new master: ${missing.join("; ")}. Grant it (docs/operations.md, "Database credentials") or name a superuser; ${left}`,
    );
  }
  report.actions.push(
    `${user} on the new master ${command.newMaster} holds what pg_rewind needs (${p.superuser ? "superuser" : "CHECKPOINT and EXECUTE on its functions"})`,
  );
}

/**
 * CHECKPOINT on the new master. A promoted server writes its new timeline to pg_control only at
 * its first checkpoint; before that pg_rewind sees one timeline and answers "no rewind
 * required" for a database that has in fact forked.
 */
async function checkpointSource(
  conn: HelperConnection,
  host: string,
  user: string,
  report: Mutable<HelperReport>,
): Promise<void> {
  try {
    await onSource(conn, host, user, (client) => client.query("CHECKPOINT"));
  } catch (e) {
    throw new ScriptsRunnerError(
      "REJOIN_FAILED",
      `CHECKPOINT on the new master ${host} as ${user} failed (pg_rewind needs it to see the new timeline; grant pg_checkpoint on PostgreSQL 15 and later): ${(e as Error).message}`,
    );
  }
  report.actions.push(`CHECKPOINT on the new master ${host} as ${user}`);
}

/** The libpq connection string the rewind or the base backup reads the new master with. */
function sourceConninfo(
  command: RejoinCommand,
  conn: HelperConnection,
  user: string,
  replicationUser: string,
): string {
  const port = command.port ?? conn.port;
  return withTls(
    formatConninfo([
      ["host", command.newMaster],
      ["port", String(port)],
      ["user", user],
      ["dbname", conn.database],
      // The password file holds db.user's password for the replication user: only that role
      // may read it; another source role authenticates its own way.
      ...(user === replicationUser ? [["passfile", command.passfile!] as [string, string]] : []),
      ["connect_timeout", "10"],
      ["application_name", "efm-rejoin"],
    ]),
    conn,
  );
}

async function runPgRewind(
  command: RejoinCommand,
  source: string,
  report: Mutable<HelperReport>,
): Promise<{ ok: true } | { ok: false; why: string }> {
  // pg_rewind runs crash recovery first (single-user mode) on a database that crashed, and
  // that refuses to run with standby.signal present; the signal is written again right after.
  // (An empty marker file: nothing of the database is lost with it.)
  for (const signal of ["standby.signal", "recovery.signal"])
    rmSync(join(command.dataDir, signal), { force: true });
  // The connection string names the password file, never a password: argv is visible in ps.
  const argv = [
    join(command.bin, "pg_rewind"),
    "--target-pgdata",
    command.dataDir,
    "--source-server",
    source,
  ];
  const r = await runProcess(argv, {
    timeoutMs: command.timeoutSeconds * 1000,
    maxOutputBytes: 64 * 1024,
    env: C_LOCALE,
  });
  const output = `${r.stdout}${r.stderr}`;
  if (r.exitCode === 0 && !r.timedOut) {
    report.actions.push(`pg_rewind from ${command.newMaster}: ${tail(output, 2).replace(/\n/g, "; ")}`);
    return { ok: true };
  }
  const why = r.timedOut
    ? `pg_rewind did not finish within ${command.timeoutSeconds} s`
    : `pg_rewind exited with ${r.exitCode ?? r.signal}: ${tail(output)}`;
  report.actions.push(why);
  return { ok: false, why };
}

/**
 * pg_basebackup into a fresh directory at the data directory's path; the old directory is
 * renamed aside first (never deleted: it may hold the only copy of writes the new master lacks).
 */
async function baseBackup(
  command: RejoinCommand,
  source: string,
  report: Mutable<HelperReport>,
): Promise<void> {
  const aside = `${command.dataDir}.efm-rejoin-${backupStamp(new Date())}`;
  try {
    renameSync(command.dataDir, aside);
  } catch (e) {
    throw new ScriptsRunnerError(
      "REJOIN_FAILED",
      `cannot move ${command.dataDir} aside to ${aside} for a base backup (a mount point cannot be renamed): ${(e as Error).message}`,
      { cause: e },
    );
  }
  report.movedAside = aside;
  report.actions.push(`moved the old data directory aside to ${aside}`);
  mkdirSync(command.dataDir, { mode: 0o700 });
  chmodSync(command.dataDir, 0o700);
  const argv = [
    join(command.bin, "pg_basebackup"),
    "--pgdata",
    command.dataDir,
    "--dbname",
    source,
    "--wal-method=stream",
    "--checkpoint=fast",
    "--no-password",
  ];
  const r = await runProcess(argv, {
    timeoutMs: command.timeoutSeconds * 1000,
    maxOutputBytes: 64 * 1024,
    env: C_LOCALE,
  });
  if (r.exitCode === 0 && !r.timedOut) {
    report.actions.push(`pg_basebackup from ${command.newMaster} into ${command.dataDir}`);
    return;
  }
  const why = r.timedOut
    ? `pg_basebackup did not finish within ${command.timeoutSeconds} s`
    : `pg_basebackup exited with ${r.exitCode ?? r.signal}: ${tail(`${r.stdout}${r.stderr}`)}`;
  // Put the old directory back where the agent and any supervisor look for it; the partial copy
  // is kept aside too, for the operator to read.
  const failed = `${command.dataDir}.efm-rejoin-failed-${backupStamp(new Date())}`;
  try {
    renameSync(command.dataDir, failed);
    renameSync(aside, command.dataDir);
    report.actions.push(`put the old data directory back; the partial copy is in ${failed}`);
  } catch (e) {
    throw new ScriptsRunnerError(
      "REJOIN_FAILED",
      `${why}; and the old data directory could not be put back from ${aside}: ${(e as Error).message}`,
    );
  }
  throw new ScriptsRunnerError("REJOIN_FAILED", why);
}

/** The last lines of the server log, to say why a started standby does not stream. */
function serverLogTail(path: string): string {
  try {
    return tail(readFileSync(path, "utf8"), 6);
  } catch {
    return "";
  }
}

/**
 * Rejoins a fenced old master as a standby of `newMaster`: nothing is changed when the rewind is
 * impossible and no base backup is allowed (REJOIN_REFUSED says why); otherwise the server is
 * stopped and confirmed down, rewound (or re-cloned), this host's configuration files put back,
 * standby.signal and primary_conninfo (the replication user with the 0600 password file) written,
 * and the server started and confirmed in recovery and streaming from the new master.
 */
export async function rejoin(
  command: RejoinCommand,
  conn: HelperConnection,
  report: Mutable<HelperReport>,
): Promise<void> {
  const replicationUser = command.replicationUser ?? conn.user;
  const sourceUser = command.sourceUser ?? conn.user;
  const facts = await rewindable(command);
  if (facts !== undefined) report.rewindable = facts;
  const canRewind = facts === undefined || facts.walLogHints || facts.dataChecksums;
  if (facts === undefined) {
    report.actions.push("pg_controldata could not tell whether pg_rewind can work: trying it");
  }
  if (!canRewind && !command.basebackup) {
    throw new ScriptsRunnerError(
      "REJOIN_REFUSED",
      `cannot rejoin ${command.dataDir} to ${command.newMaster}: pg_rewind needs wal_log_hints=on or data checksums and pg_control shows neither, and db.rejoin.basebackup=false allows no base backup; nothing was changed. Rebuild this node by hand (docs/operations.md, "Rejoining the old master"), or set db.rejoin.basebackup=true`,
    );
  }
  const fenceLike: FenceCommand = {
    ...command,
    verb: "fence",
    newMaster: command.newMaster,
    port: command.port ?? conn.port,
    replicationUser,
    timeoutSeconds: Math.min(command.timeoutSeconds, 60),
    stop: "fast",
    after: "down",
  };
  // Checked while the database still runs: a refusal here changes nothing.
  if (canRewind) await checkSourcePrivileges(command, conn, sourceUser, report);
  writePassfile(command.passfile!, replicationUser, conn, report);
  // A clean (fast) stop spares pg_rewind the crash recovery; confirmed down before anything else.
  report.wasRunning = await stopConfirmed(fenceLike, conn, report);
  const saved = saveConfigFiles(command.dataDir);
  const source = sourceConninfo(command, conn, sourceUser, replicationUser);
  let rewound = false;
  let rewindFailure = "pg_rewind needs wal_log_hints=on or data checksums and pg_control shows neither";
  if (canRewind) {
    await checkpointSource(conn, command.newMaster, sourceUser, report);
    const r = await runPgRewind(command, source, report);
    rewound = r.ok;
    if (!r.ok) rewindFailure = r.why;
  }
  if (rewound) {
    report.method = "rewind";
  } else if (!command.basebackup) {
    // standby.signal back first: whatever starts this server next starts it in recovery.
    await writeFenceSettings(fenceLike, conn, report);
    throw new ScriptsRunnerError(
      "REJOIN_REFUSED",
      `cannot rejoin ${command.dataDir} to ${command.newMaster}: ${rewindFailure}; and db.rejoin.basebackup=false allows no base backup. The database is left stopped, in recovery settings following ${command.newMaster}`,
    );
  } else {
    // The base backup connects as the replication user (it needs the REPLICATION attribute).
    await baseBackup(command, sourceConninfo(command, conn, replicationUser, replicationUser), report);
    report.method = "basebackup";
  }
  restoreConfigFiles(command.dataDir, saved, report);
  await writeFenceSettings(fenceLike, conn, report);
  const seconds = command.timeoutSeconds;
  const log = await serverLog(command);
  await pgCtl(command, ["start", "-w", "-t", String(seconds), "-l", log], seconds);
  report.actions.push("started the server");
  const recovering = await waitUntil(seconds, "server accepting connections", () =>
    inRecovery(command, conn),
  );
  report.inRecovery = recovering;
  if (!recovering) {
    // standby.signal was written before the start: out of recovery means someone removed it.
    await stopConfirmed(fenceLike, conn, report);
    throw new ScriptsRunnerError(
      "CONFIRM_FAILED",
      `${command.dataDir} started out of recovery; stopped it again`,
    );
  }
  const column = report.version >= 11 ? "sender_host" : "conninfo";
  try {
    await waitUntil(seconds, `streaming from ${command.newMaster}`, async () => {
      const rows = await query<{ status: string; sender: string | null }>(
        command,
        conn,
        `SELECT status, ${column} AS sender FROM pg_stat_wal_receiver`,
      );
      const row = rows[0];
      if (row === undefined || row.status !== "streaming" || row.sender === null) return undefined;
      const host = report.version >= 11 ? row.sender : conninfoValue(row.sender, "host");
      return host === command.newMaster ? true : undefined;
    });
  } catch (e) {
    const said = serverLogTail(log);
    throw new ScriptsRunnerError(
      "CONFIRM_FAILED",
      `${(e as Error).message}${said === "" ? "" : `; the server log ends with: ${said}`}`,
    );
  }
  report.actions.push(`in recovery and streaming from ${command.newMaster} (${report.method})`);
}
