import { readFileSync } from "node:fs";
import { readFile } from "node:fs/promises";

/**
 * One process, told apart from a later process given the same pid by its start time (field 22
 * of /proc/<pid>/stat, clock ticks since boot): a pid can be reused once its process is gone.
 */
export interface ProcessIdentity {
  readonly pid: number;
  readonly startTime: string;
}

/** Is that very process still running? Rejects when it cannot tell (then nobody should guess). */
export type ProcessProbe = (process: ProcessIdentity) => Promise<boolean>;

/** The fields of /proc/<pid>/stat the watch needs. */
export interface ProcStat {
  readonly pid: number;
  /** The executable's name (at most 15 characters), not the title a backend shows. */
  readonly comm: string;
  /** R, S, D, T, Z (zombie), X (dead), ... */
  readonly state: string;
  readonly ppid: number;
  readonly startTime: string;
}

/** Executable names of a PostgreSQL server process (postmaster or backend). */
const SERVER_NAMES: ReadonlySet<string> = new Set(["postgres", "postmaster", "edb-postgres"]);

/**
 * Parses /proc/<pid>/stat. The name is in parentheses and may itself hold blanks and
 * parentheses, so the fields are counted from the last `)`. Null when the text is not one.
 */
export function parseProcStat(text: string): ProcStat | null {
  const open = text.indexOf("(");
  const close = text.lastIndexOf(")");
  if (open < 1 || close < open) return null;
  const pid = Number(text.slice(0, open).trim());
  // After the name: state (field 3), ppid (4), ..., starttime (22).
  const rest = text
    .slice(close + 1)
    .trim()
    .split(/\s+/);
  const state = rest[0];
  const ppid = Number(rest[1]);
  const startTime = rest[19];
  if (!Number.isSafeInteger(pid) || pid <= 0 || state === undefined || !Number.isSafeInteger(ppid))
    return null;
  if (startTime === undefined || !/^\d+$/.test(startTime)) return null;
  return { pid, comm: text.slice(open + 1, close), state, ppid, startTime };
}

/**
 * /proc/<pid>/stat of a process visible here, or null when there is none (it never existed in
 * this pid namespace, or it is gone). Other errors (EACCES) reject: "cannot tell" is not "gone".
 */
export async function readProcStat(pid: number): Promise<ProcStat | null> {
  return readProcStatNow(pid);
}

/**
 * The default {@link ProcessProbe}: the process is there, not a zombie, and started when the
 * one we learned did (a pid reused by another process is not it). One read of /proc/<pid>/stat,
 * which any user may make: no signal is sent, so a process of another user (the postgres
 * user's postmaster, while the agent runs as efm) is seen as well as our own.
 */
export async function processAlive(process: ProcessIdentity): Promise<boolean> {
  const stat = readProcStatNow(process.pid);
  return stat !== null && stat.state !== "Z" && stat.state !== "X" && stat.startTime === process.startTime;
}

/**
 * {@link readProcStat} in one synchronous read. /proc/<pid>/stat is generated in memory by the
 * kernel (it never waits for a disk), so reading it in place costs a few microseconds, where the
 * promise API's open, stat, read and close each take a trip through libuv's thread pool: cheap
 * enough to look at the postmaster every few tens of milliseconds.
 */
export function readProcStatNow(pid: number): ProcStat | null {
  if (!Number.isSafeInteger(pid) || pid <= 0) return null;
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, "utf8");
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "ENOENT" || code === "ESRCH") return null;
    throw err;
  }
  const stat = parseProcStat(text);
  return stat !== null && stat.pid === pid ? stat : null;
}

/**
 * The postmaster of the backend whose pid (`pg_backend_pid()`) is `backendPid`, when that
 * backend is visible here as a PostgreSQL process whose command line (the title a backend
 * shows: `postgres: user db 127.0.0.1(54321) idle`) names `clientPort` when given, and whose
 * parent is a running PostgreSQL process too. Null otherwise: a database in another pid
 * namespace (a container) or on another host, where the same number names another process or
 * none, is simply not watched this way.
 */
export async function postmasterOf(backendPid: number, clientPort?: number): Promise<ProcessIdentity | null> {
  const backend = await readProcStat(backendPid);
  if (backend === null || !SERVER_NAMES.has(backend.comm)) return null;
  if (clientPort !== undefined) {
    let title: string;
    try {
      title = (await readFile(`/proc/${backendPid}/cmdline`, "utf8")).replaceAll("\0", " ");
    } catch {
      return null;
    }
    if (!title.includes(`(${clientPort})`)) return null;
  }
  const parent = await readProcStat(backend.ppid);
  if (parent === null || !SERVER_NAMES.has(parent.comm) || parent.state === "Z" || parent.state === "X") {
    return null;
  }
  return { pid: parent.pid, startTime: parent.startTime };
}
