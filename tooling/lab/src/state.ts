import * as fs from "node:fs";
import * as path from "node:path";
import { LabError } from "./errors.ts";

/** Where a lab keeps the record of what it created, so `down` works from any process. */
export const STATE_FILE = "lab-state.json";

export type LabMode = "loopback" | "netns";
export type HostRole = "master" | "standby" | "witness";

/** One host as recorded in the state file. */
export interface HostState {
  name: string;
  role: HostRole;
  address: string;
  /** Directory for everything belonging to the host (data, socket, log, efm files). */
  dir: string;
  /** Null for a witness: it has no database. */
  dataDir: string | null;
  socketDir: string;
  logFile: string;
  namespace: string | null;
  /** Root-namespace end of the host's veth pair (netns mode). */
  vethHost: string | null;
}

/** Everything `down` needs, written before any resource is created. */
export interface LabState {
  version: 1;
  name: string;
  mode: LabMode;
  port: number;
  runDir: string;
  pgBin: string;
  database: string;
  superuser: string;
  efmUser: string;
  efmPassword: string;
  replicationUser: string;
  replicationPassword: string;
  dbOwner: string;
  prefix: string | null;
  bridge: string | null;
  bridgeAddress: string | null;
  prefixLength: number | null;
  hosts: HostState[];
  /**
   * TLS on every server (absent = off): certificates in `dir` (`<host>.crt`/`.key`, and
   * `lab-ca.crt` when `ca`, else each host's certificate is self-signed).
   */
  tls?: { dir: string; ca: boolean };
}

/** Write the state file atomically (temp + rename) so a crash never leaves half a record. */
export function writeState(state: LabState): void {
  const file = path.join(state.runDir, STATE_FILE);
  const tmp = `${file}.tmp-${process.pid}`;
  fs.writeFileSync(tmp, `${JSON.stringify(state, null, 2)}\n`, { mode: 0o644 });
  fs.renameSync(tmp, file);
}

/** Read a lab's state file; null when the run folder holds none. */
export function readState(runDir: string): LabState | null {
  const file = path.join(runDir, STATE_FILE);
  let text: string;
  try {
    text = fs.readFileSync(file, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw new LabError("STATE_FILE", `${file}: ${(err as Error).message}`, { cause: err });
  }
  try {
    const parsed = JSON.parse(text) as LabState;
    if (parsed.version !== 1 || !Array.isArray(parsed.hosts)) throw new Error("unknown layout");
    return parsed;
  } catch (err) {
    throw new LabError("STATE_FILE", `${file}: not a lab state file (${(err as Error).message})`, {
      cause: err,
    });
  }
}
