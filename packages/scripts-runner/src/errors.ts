/**
 * Stable error codes of @efm/scripts-runner. Callers switch on `code`, never on the message.
 */
export const SCRIPTS_RUNNER_ERROR_CODES = [
  /** The script path is empty or not absolute. */
  "SCRIPT_PATH_INVALID",
  /** The script does not exist. */
  "SCRIPT_NOT_FOUND",
  /** The script exists but is not a regular file we may execute. */
  "SCRIPT_NOT_EXECUTABLE",
  /** The operating system refused to start the process. */
  "SPAWN_FAILED",
  /** A helper argument does not fit the fixed grammar. */
  "HELPER_USAGE",
  /** A libpq connection string could not be parsed or changed. */
  "CONNINFO_INVALID",
  /** A PostgreSQL configuration file could not be parsed. */
  "CONFIG_FILE_INVALID",
  /** The data directory is missing, unreadable or not a PostgreSQL data directory. */
  "DATADIR_INVALID",
  /** The helper runs as a user other than the data directory's owner. */
  "WRONG_USER",
  /** The server is running but not in recovery, so it cannot follow another master. */
  "NOT_STANDBY",
  /** No primary_conninfo is configured where one is required. */
  "NO_PRIMARY_CONNINFO",
  /** The operation needs a running server and none is running on the data directory. */
  "NOT_RUNNING",
  /** pg_ctl (or another PostgreSQL program) failed. */
  "PG_CTL_FAILED",
  /** Reading or writing a file in the data directory failed. */
  "IO_FAILED",
  /** The server did not reach the expected state (writable, streaming...) in time. */
  "CONFIRM_FAILED",
  /** The privileged helper exited with an error. */
  "HELPER_FAILED",
  /** The helper could not connect to or query its running database with the agent's credentials. */
  "CONNECT_FAILED",
  /**
   * The privileged helper refuses the cluster's properties file, its directory or db.bin: owned
   * by someone other than root (or the helper's own user) or writable by group or others.
   */
  "PROPERTIES_UNSAFE",
  /** The cluster's properties file is missing, unreadable or lacks what the helper needs. */
  "PROPERTIES_INVALID",
  /**
   * A rejoin cannot resynchronise the old master: pg_rewind is impossible (no wal_log_hints, no
   * data checksums) or failed, and no base backup is allowed (db.rejoin.basebackup=false).
   */
  "REJOIN_REFUSED",
  /** pg_rewind or pg_basebackup ran and failed (base backup allowed, and it failed too). */
  "REJOIN_FAILED",
] as const;

/** One of {@link SCRIPTS_RUNNER_ERROR_CODES}. */
export type ScriptsRunnerErrorCode = (typeof SCRIPTS_RUNNER_ERROR_CODES)[number];

/** The one error class of this package; `code` is stable, the message names the file or argument. */
export class ScriptsRunnerError extends Error {
  override readonly name = "ScriptsRunnerError";
  readonly code: ScriptsRunnerErrorCode;

  constructor(code: ScriptsRunnerErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }
}

/** True when `value` is a {@link ScriptsRunnerError}, optionally with the given code. */
export function isScriptsRunnerError(
  value: unknown,
  code?: ScriptsRunnerErrorCode,
): value is ScriptsRunnerError {
  return value instanceof ScriptsRunnerError && (code === undefined || value.code === code);
}
