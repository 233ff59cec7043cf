import { VipError } from "./errors.ts";
import { startChild } from "./spawner.ts";

/** Outcome of one program run. */
export interface ExecResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
  /** The thread that forked the program: the worker's (spawner.ts), or this one's on fallback. */
  readonly threadId: number | undefined;
}

/** Output beyond this is not an answer of `ip`, `arping` or efm-address: the program is stopped. */
const MAX_OUTPUT = 4 * 1024 * 1024;

/**
 * Runs `argv` without a shell, started from the worker thread of spawner.ts: `ip addr` and
 * efm-address run when a VIP is assigned or released on the failover path, and a fork from
 * this thread would stall it. Resolves with any exit code; rejects with COMMAND_NOT_FOUND
 * when the program cannot be started, COMMAND_TIMEOUT when it outlives `timeoutMs` (it is
 * then killed), COMMAND_FAILED when a signal ended it or it printed more than 4 MiB. `env`
 * replaces the environment when given.
 */
export function exec(
  argv: readonly string[],
  timeoutMs: number,
  env?: NodeJS.ProcessEnv,
): Promise<ExecResult> {
  const [file] = argv;
  if (file === undefined || file === "") {
    return Promise.reject(new VipError("COMMAND_NOT_FOUND", "empty command"));
  }
  return new Promise((resolve, reject) => {
    let stdout = "";
    let stderr = "";
    let settled = false;
    const fail = (error: VipError) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      reject(error);
    };
    /** Stops a program whose answer is no longer wanted, and fails the call. */
    const stop = (error: VipError) => {
      child.closeStdio();
      child.kill("SIGKILL");
      fail(error);
    };
    const output = (add: () => void) => {
      if (settled) return;
      add();
      if (stdout.length + stderr.length > MAX_OUTPUT) {
        stop(new VipError("COMMAND_FAILED", `${argv.join(" ")} printed more than ${MAX_OUTPUT} characters`));
      }
    };
    const child = startChild(argv, env ?? { ...process.env }, {
      stdout: (d) =>
        output(() => {
          stdout += d;
        }),
      stderr: (d) =>
        output(() => {
          stderr += d;
        }),
      error(e) {
        const missing = e.code === "ENOENT" || e.code === "EACCES";
        fail(
          new VipError(
            missing ? "COMMAND_NOT_FOUND" : "COMMAND_FAILED",
            missing ? `cannot run ${file}: ${e.code}` : `${argv.join(" ")}: ${e.message}`,
          ),
        );
      },
      exit() {},
      close(code, signal) {
        if (settled) return;
        if (code === null) {
          return fail(
            new VipError("COMMAND_FAILED", `${argv.join(" ")} was ended by ${signal ?? "a signal"}`),
          );
        }
        settled = true;
        clearTimeout(timer);
        resolve({ code, stdout, stderr, threadId: child.threadId });
      },
      lost: fail,
    });
    // 0 means no limit, as for execFile.
    const timer =
      timeoutMs > 0
        ? setTimeout(
            () =>
              stop(
                new VipError("COMMAND_TIMEOUT", `${argv.join(" ")} did not finish within ${timeoutMs} ms`),
              ),
            timeoutMs,
          )
        : undefined;
  });
}
