import { spawn } from "node:child_process";
import { BoundedCapture } from "./capture.ts";
import { ScriptsRunnerError } from "./errors.ts";

/** How to run one process. */
export interface RunOptions {
  /** Kill the whole process group after this many milliseconds. */
  readonly timeoutMs: number;
  /** Most bytes of stdout (and, separately, stderr) kept; default 64 KiB. */
  readonly maxOutputBytes?: number;
  /** Environment of the child; default: this process's environment. */
  readonly env?: NodeJS.ProcessEnv;
  /** Working directory; default "/" so a script never depends on where the agent started. */
  readonly cwd?: string;
  /** Grace between SIGTERM and SIGKILL of the group on timeout; default 2000 ms. */
  readonly killGraceMs?: number;
  /** Bytes written to the child's stdin, which is then closed; default: stdin is /dev/null. */
  readonly input?: string;
}

/** What happened to a process. */
export interface RunResult {
  /** The argv that was run. */
  readonly argv: readonly string[];
  /** Exit code, or null when killed by a signal. */
  readonly exitCode: number | null;
  /** Terminating signal, or null on a normal exit. */
  readonly signal: NodeJS.Signals | null;
  /** True when the timeout fired and the group was killed. */
  readonly timedOut: boolean;
  readonly stdout: string;
  readonly stderr: string;
  /** True when stdout or stderr was cut to the bound. */
  readonly outputTruncated: boolean;
  readonly stdoutBytes: number;
  readonly stderrBytes: number;
  readonly durationMs: number;
}

const DEFAULT_MAX_OUTPUT = 64 * 1024;
// After the leader exits, a background child may still hold our pipes open (pg_ctl start
// without -l, a script that forks a daemon). We read what is already there, then stop.
const DRAIN_AFTER_EXIT_MS = 200;

/**
 * Runs `argv` without a shell in its own process group, with a timeout that kills the whole
 * group (children included) and bounded capture of its output. Never rejects for a non-zero
 * exit; rejects with SPAWN_FAILED when the program cannot be started.
 */
export function runProcess(argv: readonly string[], options: RunOptions): Promise<RunResult> {
  const [file, ...args] = argv;
  if (file === undefined || file === "") {
    return Promise.reject(new ScriptsRunnerError("SPAWN_FAILED", "cannot run an empty command"));
  }
  const limit = options.maxOutputBytes ?? DEFAULT_MAX_OUTPUT;
  const grace = options.killGraceMs ?? 2000;
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, {
      cwd: options.cwd ?? "/",
      env: options.env ?? process.env,
      // A new process group: the timeout kills -pgid, reaching every descendant that did not
      // deliberately leave the group.
      detached: true,
      stdio: [options.input === undefined ? "ignore" : "pipe", "pipe", "pipe"],
    });
    const out = new BoundedCapture(limit);
    const err = new BoundedCapture(limit);
    child.stdout?.on("data", (chunk: Buffer) => out.push(chunk));
    child.stderr?.on("data", (chunk: Buffer) => err.push(chunk));
    if (options.input !== undefined) {
      child.stdin?.on("error", () => {});
      child.stdin?.end(options.input);
    }

    let timedOut = false;
    let settled = false;
    let exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
    let killTimer: NodeJS.Timeout | undefined;
    let drainTimer: NodeJS.Timeout | undefined;

    const killGroup = (signal: NodeJS.Signals) => {
      if (child.pid === undefined) return;
      try {
        process.kill(-child.pid, signal);
      } catch {
        // ESRCH: the group is already gone.
      }
    };

    const timer = setTimeout(() => {
      timedOut = true;
      killGroup("SIGTERM");
      killTimer = setTimeout(() => killGroup("SIGKILL"), grace);
    }, options.timeoutMs);

    const finish = () => {
      if (settled || exit === undefined) return;
      settled = true;
      clearTimeout(timer);
      clearTimeout(drainTimer);
      if (timedOut) {
        // The leader is dead; make sure nothing of its group survives the grace period.
        killGroup("SIGKILL");
      }
      clearTimeout(killTimer);
      child.stdout?.destroy();
      child.stderr?.destroy();
      resolve({
        argv: [...argv],
        exitCode: exit.code,
        signal: exit.signal,
        timedOut,
        stdout: out.text(),
        stderr: err.text(),
        outputTruncated: out.truncated || err.truncated,
        stdoutBytes: out.totalBytes,
        stderrBytes: err.totalBytes,
        durationMs: performance.now() - started,
      });
    };

    child.on("error", (cause: NodeJS.ErrnoException) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      clearTimeout(killTimer);
      reject(
        new ScriptsRunnerError("SPAWN_FAILED", `cannot run ${file}: ${cause.code ?? cause.message}`, {
          cause,
        }),
      );
    });
    child.on("exit", (code, signal) => {
      exit = { code, signal };
      drainTimer = setTimeout(finish, DRAIN_AFTER_EXIT_MS);
    });
    child.on("close", () => finish());
  });
}

/** A one-line description of a result, for logs and notifications. */
export function describeRun(result: RunResult): string {
  const name = result.argv[0] ?? "?";
  if (result.timedOut) return `${name} timed out after ${Math.round(result.durationMs)} ms and was killed`;
  if (result.signal !== null) return `${name} was killed by ${result.signal}`;
  return `${name} exited with code ${result.exitCode}`;
}
