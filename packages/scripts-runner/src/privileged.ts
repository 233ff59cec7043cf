import { existsSync } from "node:fs";
import { userInfo } from "node:os";
import { fileURLToPath } from "node:url";
import { ScriptsRunnerError, type ScriptsRunnerErrorCode, SCRIPTS_RUNNER_ERROR_CODES } from "./errors.ts";
import { formatHelperArgs, type HelperCommand, parseHelperArgs } from "./helper-grammar.ts";
import type { HelperConnection, HelperReport } from "./helper-ops.ts";
import { runProcess } from "./run.ts";

/** How the agent reaches the privileged helper. */
export interface HelperOptions {
  /** db.service.owner: the OS user that owns the data directory. */
  readonly owner: string;
  /** db.bin: directory of pg_ctl and postgres. */
  readonly bin: string;
  /**
   * The helper program as argv; default `[process.execPath, <this package>/dist/helper.js]`.
   * Under sudo this must match the sudoers entry exactly.
   */
  readonly helperCommand?: readonly string[];
  /** Role and database for the helper's confirming SQL over the local socket (no `connection`). */
  readonly dbUser?: string;
  readonly dbName?: string;
  /**
   * The agent's own connection to its database (address, db.port, db.user, decrypted password,
   * db.database, jdbc.ssl): handed to the helper on stdin, and used for every SQL it runs.
   */
  readonly connection?: HelperConnection;
  /** Password file a fenced/reconfigured server's primary_conninfo names (needs `connection`). */
  readonly passfile?: string;
  /** Server log for `pg_ctl -l` on restarts; default `<datadir>/log/efm-pg_ctl.log`. */
  readonly logFile?: string;
  /** How the helper is started; default "auto" (see {@link privilegedArgv}). */
  readonly elevation?: "auto" | "direct" | "sudo" | "runuser";
}

/** The default helper program: the compiled helper next to this module. */
export function defaultHelperCommand(): string[] {
  const here = fileURLToPath(import.meta.url);
  // From src/ (tests, typecheck) use the build output, which must exist.
  const helper = here.endsWith(".ts")
    ? fileURLToPath(new URL("../dist/helper.js", import.meta.url))
    : fileURLToPath(new URL("./helper.js", import.meta.url));
  return [process.execPath, helper];
}

/**
 * The argv that runs `argv` as `owner`: directly when we already are that user, `runuser -u`
 * when root (no sudoers needed), else `sudo -n -u <owner> --` (never prompts; fails if
 * sudoers does not allow exactly this program).
 */
export function privilegedArgv(
  owner: string,
  argv: readonly string[],
  elevation: HelperOptions["elevation"] = "auto",
): string[] {
  if (!/^[A-Za-z_][A-Za-z0-9_.-]{0,31}\$?$/.test(owner)) {
    throw new ScriptsRunnerError("HELPER_USAGE", `db.service.owner: "${owner}" is not a user name`);
  }
  let mode = elevation;
  if (mode === "auto") {
    const me = userInfo();
    mode = me.username === owner ? "direct" : me.uid === 0 ? "runuser" : "sudo";
  }
  if (mode === "direct") return [...argv];
  if (mode === "runuser") return ["runuser", "-u", owner, "--", ...argv];
  return ["sudo", "-n", "-u", owner, "--", ...argv];
}

function common(options: HelperOptions) {
  return {
    bin: options.bin,
    ...(options.dbUser === undefined ? {} : { dbUser: options.dbUser }),
    ...(options.dbName === undefined ? {} : { dbName: options.dbName }),
    ...(options.logFile === undefined ? {} : { logFile: options.logFile }),
    ...(options.connection === undefined ? {} : { connection: "stdin" as const }),
    ...(options.passfile === undefined ? {} : { passfile: options.passfile }),
  };
}

/**
 * Runs one helper command as the owner and returns its report. The command line is built
 * from typed values and re-validated with the helper's own grammar before anything runs.
 * Failures reject with the helper's own error code (e.g. PG_CTL_FAILED, CONFIRM_FAILED).
 */
export async function runHelper(
  command: HelperCommand,
  options: HelperOptions,
  timeoutMs: number,
): Promise<HelperReport> {
  const args = formatHelperArgs(command);
  parseHelperArgs(args);
  const helper = options.helperCommand ?? defaultHelperCommand();
  if (options.helperCommand === undefined && !existsSync(helper[1]!)) {
    throw new ScriptsRunnerError("SPAWN_FAILED", `helper ${helper[1]} is missing; build @efm/scripts-runner`);
  }
  const argv = privilegedArgv(options.owner, [...helper, ...args], options.elevation);
  const result = await runProcess(argv, {
    timeoutMs,
    maxOutputBytes: 256 * 1024,
    // The helper needs nothing from the agent's environment; a fixed one keeps it predictable.
    env: { PATH: "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", LANG: "C.UTF-8" },
    // The password travels on the pipe, never in argv (visible in ps) or the environment.
    ...(options.connection === undefined ? {} : { input: JSON.stringify(options.connection) }),
  });
  const line = result.stdout.trim().split("\n").at(-1) ?? "";
  let parsed: { ok?: boolean; code?: string; message?: string } & Partial<HelperReport>;
  try {
    parsed = JSON.parse(line);
  } catch {
    const why = result.timedOut
      ? `timed out after ${timeoutMs} ms`
      : `exited with ${result.exitCode ?? result.signal}`;
    throw new ScriptsRunnerError(
      "HELPER_FAILED",
      `${argv.join(" ")} ${why}: ${(result.stderr || result.stdout).trim().slice(0, 2000)}`,
    );
  }
  if (parsed.ok !== true) {
    const code = (SCRIPTS_RUNNER_ERROR_CODES as readonly string[]).includes(parsed.code ?? "")
      ? (parsed.code as ScriptsRunnerErrorCode)
      : "HELPER_FAILED";
    throw new ScriptsRunnerError(code, `${command.verb} ${command.dataDir}: ${parsed.message ?? "failed"}`);
  }
  const { ok: _ok, code: _code, message: _message, ...report } = parsed;
  return report as HelperReport;
}

/** Promotes the standby in `dataDir` (`pg_ctl promote -w`) and confirms it left recovery. */
export function promote(
  dataDir: string,
  options: HelperOptions & { timeoutSeconds?: number },
): Promise<HelperReport> {
  const timeoutSeconds = options.timeoutSeconds ?? 60;
  return runHelper(
    { verb: "promote", dataDir, timeoutSeconds, ...common(options) },
    options,
    (timeoutSeconds + 30) * 1000,
  );
}

/**
 * Fences an old master: the recovery settings first (standby.signal and primary_conninfo on
 * PostgreSQL >= 12, recovery.conf before), then the server is stopped and confirmed down
 * (`pg_ctl stop`, SIGKILL of every server process of the data directory still alive after a
 * short grace, no such process left and a TCP connect to its address:port refused); only then
 * does the promise resolve. A fence that cannot be confirmed within its bound rejects with
 * CONFIRM_FAILED and the reason. `stop: "fast"` (switchover) tries a fast stop first, within
 * `timeoutSeconds`; `after: "standby"` starts a server that was running again in recovery,
 * following `newMaster`.
 *
 * With `connection` and `passfile`, primary_conninfo is host=newMaster, port, user
 * (`replicationUser`, else the connection's user) and passfile=, which the helper writes 0600;
 * other keywords of an existing one are kept, a password in it is dropped. Without them, `port`
 * and `replicationUser` are used only when no primary_conninfo exists to copy from. `newMaster`
 * null: no master is known yet, primary_conninfo is emptied (recovery without streaming) until
 * `reconfigure` names one.
 */
export function fence(
  dataDir: string,
  newMaster: string | null,
  options: HelperOptions & {
    port?: number;
    replicationUser?: string;
    /** Bound of each wait for the server to go (and to start again); default 10. */
    timeoutSeconds?: number;
    stop?: "fast" | "immediate";
    after?: "down" | "standby";
  },
): Promise<HelperReport> {
  const seconds = options.timeoutSeconds ?? 10;
  return runHelper(
    {
      verb: "fence",
      dataDir,
      newMaster,
      ...(options.port === undefined ? {} : { port: options.port }),
      ...(options.replicationUser === undefined ? {} : { replicationUser: options.replicationUser }),
      ...(options.timeoutSeconds === undefined ? {} : { timeoutSeconds: options.timeoutSeconds }),
      ...(options.stop === undefined ? {} : { stop: options.stop }),
      ...(options.after === undefined ? {} : { after: options.after }),
      ...common(options),
    },
    options,
    // Fast stop, kill, port check and a start each have `seconds`; the rest is file writing.
    (4 * seconds + 60) * 1000,
  );
}

/**
 * Points the standby in `dataDir` at `newMaster` (host= of primary_conninfo only), applies it
 * (reload on >= 13, else `pg_ctl restart -m fast -w -t <timeoutSeconds>`, local.timeout) and
 * waits until it streams from the new master.
 */
export function reconfigure(
  dataDir: string,
  newMaster: string,
  options: HelperOptions & { timeoutSeconds: number },
): Promise<HelperReport> {
  return runHelper(
    { verb: "reconfigure", dataDir, newMaster, timeoutSeconds: options.timeoutSeconds, ...common(options) },
    options,
    (2 * options.timeoutSeconds + 30) * 1000,
  );
}

/**
 * Checks, changing nothing, what promote and fence rely on: the data directory belongs to the
 * owner, pg_ctl is executable, the passfile's directory is writable and, if the server runs,
 * the helper connects with `connection`. `role: "standby"` also needs a running standby.
 */
export function check(
  dataDir: string,
  options: HelperOptions & { role?: "any" | "standby" },
): Promise<HelperReport> {
  return runHelper(
    { verb: "check", dataDir, role: options.role ?? "any", ...common(options) },
    options,
    60_000,
  );
}

/** `pg_ctl restart -m fast -w -t <timeoutSeconds>`; the report says whether it is in recovery. */
export function restart(
  dataDir: string,
  timeoutSeconds: number,
  options: HelperOptions & { mode?: "fast" | "immediate" },
): Promise<HelperReport> {
  return runHelper(
    {
      verb: "restart",
      dataDir,
      timeoutSeconds,
      ...(options.mode ? { mode: options.mode } : {}),
      ...common(options),
    },
    options,
    (2 * timeoutSeconds + 30) * 1000,
  );
}

/**
 * Rejoins the fenced old master in `dataDir` as a standby of `newMaster`: stopped and confirmed
 * down, `pg_rewind` against the new master as `sourceUser` (db.rewind.source.user; db.user by
 * default, with the password file), or, only when `basebackup` is true and a rewind is impossible
 * or fails, `pg_basebackup` into a fresh directory with the old one moved aside; this host's
 * *.conf files put back, standby.signal and primary_conninfo (replication user, password file)
 * written, started, and confirmed in recovery and streaming from the new master. Rejects with
 * REJOIN_REFUSED (changing nothing when pg_control rules a rewind out) or REJOIN_FAILED and why.
 * Needs `connection` and `passfile`.
 */
export function rejoin(
  dataDir: string,
  newMaster: string,
  options: HelperOptions & {
    port?: number;
    replicationUser?: string;
    sourceUser?: string;
    basebackup: boolean;
    /** Bound of the rewind or base backup, and of the start and streaming waits. */
    timeoutSeconds: number;
  },
): Promise<HelperReport> {
  return runHelper(
    {
      verb: "rejoin",
      dataDir,
      newMaster,
      ...(options.port === undefined ? {} : { port: options.port }),
      ...(options.replicationUser === undefined ? {} : { replicationUser: options.replicationUser }),
      ...(options.sourceUser === undefined ? {} : { sourceUser: options.sourceUser }),
      basebackup: options.basebackup,
      timeoutSeconds: options.timeoutSeconds,
      ...common(options),
    },
    options,
    // Stop, rewind or base backup, start and streaming each have the bound; the rest is files.
    (4 * options.timeoutSeconds + 120) * 1000,
  );
}
