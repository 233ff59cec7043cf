import { type ChildProcess, spawn, type SpawnOptions } from "node:child_process";
import * as fs from "node:fs";
import { LabError } from "./errors.ts";

/** Result of a finished child process. */
export interface ExecResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface ExecOptions {
  /** Kill the process (group) after this many ms; default 60 s. */
  timeoutMs?: number;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Resolve with a non-zero exit instead of throwing. */
  allowFailure?: boolean;
  /** Bytes kept of each stream; the rest is dropped so a chatty tool cannot eat memory. */
  maxOutput?: number;
  /** Written to the process's stdin, which is then closed (default: no stdin). */
  input?: string;
}

const isRoot = (): boolean => typeof process.getuid === "function" && process.getuid() === 0;

/** True when this process runs as root (PostgreSQL must then run as `postgres`). */
export function runningAsRoot(): boolean {
  return isRoot();
}

/**
 * Run argv (never a shell string) and collect its output. Throws LabError COMMAND_FAILED on a
 * non-zero exit unless allowFailure, COMMAND_TIMEOUT when it outlives timeoutMs.
 */
export function run(argv: readonly string[], options: ExecOptions = {}): Promise<ExecResult> {
  const [cmd, ...args] = argv;
  if (cmd === undefined) return Promise.reject(new LabError("INVALID_OPTIONS", "run: empty argv"));
  const timeoutMs = options.timeoutMs ?? 60_000;
  const max = options.maxOutput ?? 1_000_000;
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, {
      env: options.env ?? process.env,
      cwd: options.cwd,
      stdio: [options.input === undefined ? "ignore" : "pipe", "pipe", "pipe"],
      detached: true,
    });
    if (options.input !== undefined) {
      // A tool that exits before reading all of it is reported by its exit code, not by EPIPE.
      child.stdin?.on("error", () => {});
      child.stdin?.end(options.input);
    }
    let stdout = "";
    let stderr = "";
    child.stdout?.on("data", (d: Buffer) => {
      if (stdout.length < max) stdout += d.toString("utf8");
    });
    child.stderr?.on("data", (d: Buffer) => {
      if (stderr.length < max) stderr += d.toString("utf8");
    });
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      killGroup(child, "SIGKILL");
    }, timeoutMs);
    child.on("error", (err) => {
      clearTimeout(timer);
      reject(new LabError("COMMAND_FAILED", `${argv.join(" ")}: ${err.message}`, { cause: err }));
    });
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      const result = { code, signal, stdout, stderr };
      if (timedOut) {
        reject(new LabError("COMMAND_TIMEOUT", `${argv.join(" ")}: no exit after ${timeoutMs} ms`));
      } else if (code !== 0 && !options.allowFailure) {
        const tail = (stderr || stdout).trim().split("\n").slice(-5).join("\n");
        reject(new LabError("COMMAND_FAILED", `${argv.join(" ")} exited ${code ?? signal}: ${tail}`));
      } else {
        resolve(result);
      }
    });
  });
}

/** Start a long-lived process; the caller owns it. */
export function start(argv: readonly string[], options: SpawnOptions = {}): ChildProcess {
  const [cmd, ...args] = argv;
  if (cmd === undefined) throw new LabError("INVALID_OPTIONS", "start: empty argv");
  return spawn(cmd, args, options);
}

function killGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    try {
      child.kill(signal);
    } catch {
      // already gone
    }
  }
}

/** Send a signal to a pid; false if the process no longer exists. */
export function signal(pid: number, sig: NodeJS.Signals | 0): boolean {
  try {
    process.kill(pid, sig);
    return true;
  } catch {
    return false;
  }
}

/** Whether a pid is alive (zombies count as dead). */
export function alive(pid: number): boolean {
  if (!signal(pid, 0)) return false;
  try {
    // A zombie still answers kill(0); its /proc state says Z.
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    const state = stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
    return state !== "Z" && state !== "X";
  } catch {
    return false;
  }
}

/** Direct children of pid, read from /proc (PostgreSQL backends are children of the postmaster). */
export function childrenOf(pid: number): number[] {
  const out: number[] = [];
  let entries: string[];
  try {
    entries = fs.readdirSync("/proc");
  } catch {
    return out;
  }
  for (const e of entries) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${e}/stat`, "utf8");
      const rest = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      if (Number(rest[1]) === pid) out.push(Number(e));
    } catch {
      // raced with exit
    }
  }
  return out;
}

/** Sleep helper. */
export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
