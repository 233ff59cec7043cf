import { execFile } from "node:child_process";
import { VipError } from "./errors.ts";

/** Outcome of one program run. */
export interface ExecResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/**
 * Runs `argv` without a shell. Resolves with any exit code; rejects with COMMAND_NOT_FOUND
 * when the program cannot be started and COMMAND_TIMEOUT when it outlives `timeoutMs`. `env`
 * replaces the environment when given.
 */
export function exec(
  argv: readonly string[],
  timeoutMs: number,
  env?: NodeJS.ProcessEnv,
): Promise<ExecResult> {
  const [file, ...args] = argv;
  if (file === undefined || file === "") {
    return Promise.reject(new VipError("COMMAND_NOT_FOUND", "empty command"));
  }
  return new Promise((resolve, reject) => {
    execFile(
      file,
      args,
      {
        timeout: timeoutMs,
        killSignal: "SIGKILL",
        maxBuffer: 4 * 1024 * 1024,
        encoding: "utf8",
        ...(env === undefined ? {} : { env }),
      },
      (error, stdout, stderr) => {
        if (error === null) return resolve({ code: 0, stdout, stderr });
        const e = error as NodeJS.ErrnoException & { killed?: boolean; code?: string | number };
        if (e.code === "ENOENT" || e.code === "EACCES") {
          return reject(new VipError("COMMAND_NOT_FOUND", `cannot run ${file}: ${e.code}`, { cause: error }));
        }
        if (e.killed === true) {
          return reject(
            new VipError("COMMAND_TIMEOUT", `${argv.join(" ")} did not finish within ${timeoutMs} ms`, {
              cause: error,
            }),
          );
        }
        if (typeof e.code === "number") return resolve({ code: e.code, stdout, stderr });
        reject(new VipError("COMMAND_FAILED", `${argv.join(" ")}: ${e.message}`, { cause: error }));
      },
    );
  });
}
