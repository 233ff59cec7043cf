import {
  closeSync,
  lstatSync,
  mkdirSync,
  openSync,
  readFileSync,
  statSync,
  unlinkSync,
  writeSync,
} from "node:fs";
import { basename, dirname } from "node:path";
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
 * Whether process `pid` is a failover manager agent for `cluster`, judged by its command line
 * (`efm-agent start <cluster>`, or the agent's entry script). A lock naming any other process
 * (say PID 1, planted by someone who could write the lock directory, or a recycled pid) is
 * not honoured. Where /proc cannot tell (not Linux), a live pid is taken at its word.
 */
export function isAgentFor(pid: number, cluster: string): boolean {
  if (pid === process.pid) return true; // this process holds it (a second start in-process)
  let args: string[];
  try {
    args = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").filter(Boolean);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    // No /proc at all: fall back to the pid being alive. A vanished process is no agent.
    return code === "ENOENT" ? !statExists("/proc/self") && alive(pid) : alive(pid);
  }
  const isAgent = args.some(
    (a) =>
      basename(a) === "efm-agent" ||
      a.endsWith("/apps/agent/dist/main.js") ||
      a.endsWith("/apps/agent/src/main.ts"),
  );
  return isAgent && args.includes(cluster);
}

function statExists(path: string): boolean {
  try {
    statSync(path);
    return true;
  } catch {
    return false;
  }
}

/**
 * Make sure the lock directory exists and only its owner can change it: the agent creates it
 * (the systemd unit names /run/efm/lock, which nothing else creates), and refuses a directory
 * that someone else owns or that group or others may write (under a world-writable parent
 * such as /run/lock, another user could otherwise pre-create it and plant locks).
 */
export function ensureLockDir(dir: string): void {
  try {
    mkdirSync(dir, { recursive: true, mode: 0o755 });
  } catch (err) {
    throw new AgentError("IO", `cannot create the lock directory ${dir}: ${(err as Error).message}`, {
      cause: err,
    });
  }
  const st = lstatSync(dir);
  const uid = process.getuid?.();
  if (!st.isDirectory())
    throw new AgentError("IO", `the lock directory ${dir} is not a directory (a symbolic link?)`);
  if (uid !== undefined && st.uid !== uid && st.uid !== 0)
    throw new AgentError(
      "IO",
      `the lock directory ${dir} belongs to uid ${st.uid}, not to this agent's user (uid ${uid}) or root: remove it, or set lock.dir to a directory of the efm user`,
    );
  if ((st.mode & 0o022) !== 0)
    throw new AgentError(
      "IO",
      `the lock directory ${dir} is writable by group or others (mode ${(st.mode & 0o777).toString(8)}): chmod 0755 it`,
    );
}

/**
 * Take `<lock.dir>/<cluster>.lock` so only one agent per cluster runs on a host. A lock left
 * by a dead process, or naming a process that is not an agent of this cluster, is taken over;
 * a live agent's is refused.
 */
export function acquireLock(
  path: string,
  cluster: string = basename(path).replace(/\.lock$/, ""),
): LockHandle {
  ensureLockDir(dirname(path));
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
      let text = "";
      try {
        text = readFileSync(path, "utf8");
      } catch {
        // Unreadable (or gone since): treat as stale below.
      }
      const pid = Number.parseInt(text.trim(), 10);
      if (Number.isInteger(pid) && pid > 0 && alive(pid) && isAgentFor(pid, cluster)) {
        throw new AgentError(
          "LOCKED",
          `another agent (pid ${pid}) already runs this cluster on this host: lock file ${path}`,
        );
      }
      try {
        unlinkSync(path); // stale: its process is gone or is not an agent of this cluster
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw e;
      }
    }
  }
  throw new AgentError("LOCKED", `cannot take the lock file ${path}`);
}
