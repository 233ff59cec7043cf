import { mkdir, readFile, stat } from "node:fs/promises";
import { userInfo } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { backupFile, replaceFile } from "./atomic.ts";
import { conninfoValue, formatConninfo, setConninfoHost } from "./conninfo.ts";
import { ScriptsRunnerError } from "./errors.ts";
import type { HelperCommand } from "./helper-grammar.ts";
import { configValue, setConfigValue } from "./pg-config-file.ts";
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
  readonly durationMs: number;
}

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function readText(path: string): Promise<string | undefined> {
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

async function query<T>(command: HelperCommand, sql: string): Promise<T[]> {
  const where = await serverAddress(command.dataDir);
  if (where === undefined) {
    throw new ScriptsRunnerError("NOT_RUNNING", `no server is running on ${command.dataDir}`);
  }
  const client = new pg.Client({
    host: where.host,
    port: where.port,
    user: command.dbUser ?? userInfo().username,
    database: command.dbName ?? "postgres",
    connectionTimeoutMillis: 5_000,
    query_timeout: 10_000,
  });
  client.on("error", () => {});
  try {
    await client.connect();
    return (await client.query(sql)).rows as T[];
  } finally {
    await client.end().catch(() => {});
  }
}

async function inRecovery(command: HelperCommand): Promise<boolean> {
  const rows = await query<{ r: boolean }>(command, "SELECT pg_is_in_recovery() AS r");
  return rows[0]?.r === true;
}

/** Retries `check` until it returns a value or `seconds` pass; the last error explains a miss. */
async function waitUntil<T>(seconds: number, what: string, check: () => Promise<T | undefined>): Promise<T> {
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

async function pgCtl(command: HelperCommand, args: string[], timeoutSeconds: number): Promise<void> {
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

async function serverLog(command: HelperCommand): Promise<string> {
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

async function fence(
  command: Extract<HelperCommand, { verb: "fence" }>,
  report: Mutable<HelperReport>,
): Promise<void> {
  const fresh = (): string =>
    formatConninfo([
      ["host", command.newMaster],
      ...(command.port === undefined ? [] : [["port", String(command.port)] as const]),
      ...(command.replicationUser === undefined ? [] : [["user", command.replicationUser] as const]),
    ]);
  if (report.version >= 12) {
    const autoPath = join(command.dataDir, "postgresql.auto.conf");
    const autoText = (await readText(autoPath)) ?? "";
    const current = await currentConninfo(command, autoText, autoPath);
    const next = current === undefined ? fresh() : setConninfoHost(current, command.newMaster);
    const backup = await backupFile(autoPath);
    if (backup !== null) report.backups.push(backup);
    replaceFile(autoPath, setConfigValue(autoText, autoPath, "primary_conninfo", next));
    report.primaryConninfo = next;
    report.actions.push(`primary_conninfo in ${autoPath} points at ${command.newMaster}`);
    const signalPath = join(command.dataDir, "standby.signal");
    if ((await readText(signalPath)) === undefined) {
      replaceFile(signalPath, "");
      report.actions.push(`wrote ${signalPath}`);
    }
    return;
  }
  const rcPath = join(command.dataDir, "recovery.conf");
  let text = (await readText(rcPath)) ?? "";
  const current = configValue(text, rcPath, "primary_conninfo") || undefined;
  const next = current === undefined ? fresh() : setConninfoHost(current, command.newMaster);
  const backup = await backupFile(rcPath);
  if (backup !== null) report.backups.push(backup);
  text = setConfigValue(text, rcPath, "standby_mode", "on");
  text = setConfigValue(text, rcPath, "primary_conninfo", next);
  text = setConfigValue(text, rcPath, "recovery_target_timeline", "latest");
  replaceFile(rcPath, text);
  report.primaryConninfo = next;
  report.actions.push(`wrote ${rcPath} following ${command.newMaster}`);
}

async function reconfigure(
  command: Extract<HelperCommand, { verb: "reconfigure" }>,
  report: Mutable<HelperReport>,
): Promise<void> {
  // Rewriting a master's primary_conninfo would do nothing now and surprise at its next restart.
  if ((await serverAddress(command.dataDir)) !== undefined && !(await inRecovery(command))) {
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
  if (current === undefined) {
    throw new ScriptsRunnerError(
      "NO_PRIMARY_CONNINFO",
      `no primary_conninfo is configured for ${command.dataDir}`,
    );
  }
  const next = setConninfoHost(current, command.newMaster);
  report.primaryConninfo = next;
  if (next !== current || configValue(text ?? "", file, "primary_conninfo") === undefined) {
    const backup = await backupFile(file);
    if (backup !== null) report.backups.push(backup);
    replaceFile(file, setConfigValue(text ?? "", file, "primary_conninfo", next));
    report.actions.push(`primary_conninfo in ${file} points at ${command.newMaster}`);
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
  await waitUntil(command.timeoutSeconds, `streaming from ${command.newMaster}`, async () => {
    const rows = await query<{ status: string; sender: string | null }>(
      command,
      `SELECT status, ${column} AS sender FROM pg_stat_wal_receiver`,
    );
    const row = rows[0];
    if (row === undefined || row.status !== "streaming" || row.sender === null) return undefined;
    const host = report.version >= 11 ? row.sender : conninfoValue(row.sender, "host");
    return host === command.newMaster ? true : undefined;
  });
  report.actions.push(`streaming from ${command.newMaster}`);
}

async function promote(
  command: Extract<HelperCommand, { verb: "promote" }>,
  report: Mutable<HelperReport>,
): Promise<void> {
  if (!(await inRecovery(command))) {
    report.alreadyMaster = true;
    report.inRecovery = false;
    report.actions.push("already out of recovery; nothing to do");
    return;
  }
  await pgCtl(command, ["promote", "-w", "-t", String(command.timeoutSeconds)], command.timeoutSeconds);
  report.actions.push("pg_ctl promote");
  await waitUntil(command.timeoutSeconds, "end of recovery", async () =>
    (await inRecovery(command)) ? undefined : true,
  );
  report.inRecovery = false;
  report.actions.push("pg_is_in_recovery() is false");
}

async function restart(
  command: Extract<HelperCommand, { verb: "restart" }>,
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
    inRecovery(command),
  );
}

/** Carries out one validated helper command as the current user. */
export async function executeHelperCommand(command: HelperCommand): Promise<HelperReport> {
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
      await promote(command, report);
      break;
    case "fence":
      await fence(command, report);
      break;
    case "reconfigure":
      await reconfigure(command, report);
      break;
    case "restart":
      await restart(command, report);
      break;
  }
  report.durationMs = performance.now() - started;
  return report;
}
