import { closeSync, openSync, readFileSync, statSync, unlinkSync, writeSync } from "node:fs";
import { AgentError } from "./errors.ts";

/** A held lock file; `stillHeld()` tells whether someone removed it behind our back. */
export interface LockHandle {
  path: string;
  stillHeld(): boolean;
  release(): void;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

/**
 * Take `<lock.dir>/<cluster>.lock` so only one agent per cluster runs on a host. A lock left
 * by a dead process (its pid no longer exists) is taken over; a live one is refused.
 */
export function acquireLock(path: string): LockHandle {
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(path, "wx", 0o644);
      writeSync(fd, `${process.pid}\n`);
      closeSync(fd);
      const ino = statSync(path).ino;
      return {
        path,
        stillHeld: () => {
          try {
            return statSync(path).ino === ino;
          } catch {
            return false;
          }
        },
        release: () => {
          try {
            if (statSync(path).ino === ino) unlinkSync(path);
          } catch {
            // Already gone: nothing to release.
          }
        },
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") {
        throw new AgentError("IO", `cannot create the lock file ${path}: ${(err as Error).message}`, {
          cause: err,
        });
      }
      const pid = Number.parseInt(readFileSync(path, "utf8").trim(), 10);
      if (Number.isInteger(pid) && pid > 0 && alive(pid)) {
        throw new AgentError(
          "LOCKED",
          `another agent (pid ${pid}) already runs this cluster on this host: lock file ${path}`,
        );
      }
      unlinkSync(path); // stale: its process is gone
    }
  }
  throw new AgentError("LOCKED", `cannot take the lock file ${path}`);
}
