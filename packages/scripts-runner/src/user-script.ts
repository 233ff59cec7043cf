import { constants } from "node:fs";
import { access, stat } from "node:fs/promises";
import { isAbsolute } from "node:path";
import { ScriptsRunnerError } from "./errors.ts";
import { type RunResult, runProcess } from "./run.ts";

/** The user scripts of the cluster properties file, by the event that runs them. */
export const SCRIPT_EVENTS = {
  fence: "script.fence",
  "post.promotion": "script.post.promotion",
  "db.failure": "script.db.failure",
  "master.isolated": "script.master.isolated",
  notification: "script.notification",
} as const;

/** Which user script runs: the property name without its `script.` prefix. */
export type ScriptEvent = keyof typeof SCRIPT_EVENTS;

/**
 * What the agent knows about the event. Each field becomes an environment variable of the
 * script (see {@link scriptEnvironment}); fields left out are not set at all, so a script can
 * test `[ -n "$EFM_NEW_MASTER" ]`.
 */
export interface ScriptContext {
  /** Cluster name (the properties file name): EFM_CLUSTER. */
  readonly cluster: string;
  /** Address of the agent running the script (bind.address host): EFM_NODE. */
  readonly node?: string;
  /** Address of the master that failed or is being replaced: EFM_FAILED_MASTER. */
  readonly failedMaster?: string;
  /** Address of the standby being promoted or just promoted: EFM_NEW_MASTER. */
  readonly newMaster?: string;
  /** The virtual IP, when one is configured: EFM_VIP. */
  readonly vip?: string;
  /** Notification subject (script.notification): EFM_SUBJECT. */
  readonly subject?: string;
  /** Notification severity, INFO / WARNING / SEVERE (script.notification): EFM_SEVERITY. */
  readonly severity?: string;
  /** Notification body (script.notification): EFM_MESSAGE. */
  readonly message?: string;
}

/** Options for {@link runUserScript}. */
export interface UserScriptOptions {
  /** Kill the script's process group after this long; default 60 s. */
  readonly timeoutMs?: number;
  /** Most bytes of stdout and of stderr kept; default 64 KiB each. */
  readonly maxOutputBytes?: number;
  /** Base environment; EFM_* variables in it are replaced. Default: the agent's environment. */
  readonly baseEnv?: NodeJS.ProcessEnv;
}

/** Outcome of a user script. `ok` is true only for exit code 0 within the timeout. */
export interface ScriptResult extends RunResult {
  readonly event: ScriptEvent;
  readonly script: string;
  readonly ok: boolean;
}

const ENV_NAMES = {
  cluster: "EFM_CLUSTER",
  node: "EFM_NODE",
  failedMaster: "EFM_FAILED_MASTER",
  newMaster: "EFM_NEW_MASTER",
  vip: "EFM_VIP",
  subject: "EFM_SUBJECT",
  severity: "EFM_SEVERITY",
  message: "EFM_MESSAGE",
} as const satisfies Record<keyof ScriptContext, string>;

/**
 * The environment a user script sees: `base` without any inherited EFM_* variable, plus
 * EFM_EVENT (e.g. `fence`), EFM_SCRIPT_PROPERTY (e.g. `script.fence`) and one variable per
 * known field of `context`.
 */
export function scriptEnvironment(
  event: ScriptEvent,
  context: ScriptContext,
  base: NodeJS.ProcessEnv = process.env,
): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(base)) {
    // A stale EFM_NEW_MASTER inherited from the agent's own environment would lie to the script.
    if (!key.startsWith("EFM_") && value !== undefined) env[key] = value;
  }
  env.EFM_EVENT = event;
  env.EFM_SCRIPT_PROPERTY = SCRIPT_EVENTS[event];
  for (const [field, name] of Object.entries(ENV_NAMES)) {
    const value = context[field as keyof ScriptContext];
    if (value !== undefined && value !== "") env[name] = value;
  }
  return env;
}

/**
 * Checks that `script` is an absolute path to an executable regular file. Throws
 * SCRIPT_PATH_INVALID, SCRIPT_NOT_FOUND or SCRIPT_NOT_EXECUTABLE naming the property.
 */
export async function checkScript(event: ScriptEvent, script: string): Promise<void> {
  const property = SCRIPT_EVENTS[event];
  if (script === "" || !isAbsolute(script)) {
    throw new ScriptsRunnerError("SCRIPT_PATH_INVALID", `${property}: "${script}" is not an absolute path`);
  }
  let info: Awaited<ReturnType<typeof stat>>;
  try {
    info = await stat(script);
  } catch (cause) {
    throw new ScriptsRunnerError("SCRIPT_NOT_FOUND", `${property}: ${script} does not exist`, { cause });
  }
  if (!info.isFile()) {
    throw new ScriptsRunnerError("SCRIPT_NOT_EXECUTABLE", `${property}: ${script} is not a regular file`);
  }
  try {
    await access(script, constants.X_OK);
    // access(X_OK) succeeds for root on any file with at least one x bit; with none, exec fails.
    if ((info.mode & 0o111) === 0) throw new Error("no execute bit");
  } catch (cause) {
    throw new ScriptsRunnerError("SCRIPT_NOT_EXECUTABLE", `${property}: ${script} is not executable`, {
      cause,
    });
  }
}

/**
 * Runs the user script configured for `event` (the property value is the program path, run
 * without a shell and without arguments, as EFM 2.0.3 does). Rejects with a typed error when
 * the script is missing or not executable; a non-zero exit or a timeout is a result with
 * `ok: false`, carrying the script's output.
 */
export async function runUserScript(
  event: ScriptEvent,
  script: string,
  context: ScriptContext,
  options: UserScriptOptions = {},
): Promise<ScriptResult> {
  await checkScript(event, script);
  const result = await runProcess([script], {
    timeoutMs: options.timeoutMs ?? 60_000,
    maxOutputBytes: options.maxOutputBytes ?? 64 * 1024,
    env: scriptEnvironment(event, context, options.baseEnv),
  });
  return { ...result, event, script, ok: result.exitCode === 0 && !result.timedOut };
}
