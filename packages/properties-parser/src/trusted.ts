// Reading a cluster's properties file as a privileged helper must: only when nobody but root
// (or the user the helper already is) could have written it. Both root helpers, efm-helper
// (@efm/scripts-runner) and efm-address (@efm/vip), take their facts from this file, so the
// check lives here, next to the parser both already use, instead of in one helper's package.
import {
  closeSync,
  constants,
  fstatSync,
  openSync,
  readFileSync,
  realpathSync,
  type Stats,
  statSync,
} from "node:fs";
import { join } from "node:path";

/** Where the cluster properties live when a privileged helper is started through sudo. */
export const DEFAULT_CONFIG_DIR = "/etc/efm";

/** A cluster name as the helpers accept it on their command lines (and the sudoers rules allow). */
export const CLUSTER_NAME = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$/;

/**
 * The directory of the properties file for a privileged helper. Through sudo it is always
 * {@link DEFAULT_CONFIG_DIR}: sudo sets SUDO_UID itself, so a caller cannot hide that it came
 * through sudo, and an EFM_CONFIG_DIR it managed to pass is ignored. Started by root directly,
 * or as the user it runs as (the caller already has that user's rights), EFM_CONFIG_DIR is
 * honoured: tests and the demo keep their files in a folder.
 */
export function trustedConfigDir(env: NodeJS.ProcessEnv): string {
  if (env.SUDO_UID !== undefined) return DEFAULT_CONFIG_DIR;
  const dir = env.EFM_CONFIG_DIR;
  return dir?.startsWith("/") ? dir : DEFAULT_CONFIG_DIR;
}

/**
 * Why a refusal happened: `usage` (a bad cluster name), `unsafe` (someone other than root
 * could have written the file or its directory, or it is a symbolic link), `unreadable`.
 * Each helper turns it into its own error class and code.
 */
export type UntrustedKind = "usage" | "unsafe" | "unreadable";

/** A refusal of {@link readTrustedProperties}, with a message naming the path at fault. */
export interface Untrusted {
  readonly kind: UntrustedKind;
  readonly message: string;
}

/**
 * Why `path` (stat `st`) cannot be trusted, or undefined when it can: owned by someone other
 * than root or `trustedUid` (the user the helper already is), or writable by group or others.
 */
export function untrustedReason(
  path: string,
  what: string,
  st: Stats,
  trustedUid: number,
): string | undefined {
  if (st.uid !== 0 && st.uid !== trustedUid) {
    const who = trustedUid === 0 ? "root" : `root or uid ${trustedUid}`;
    return `${what} ${path} is owned by uid ${st.uid}, not ${who}: refusing to take facts from it`;
  }
  if ((st.mode & 0o022) !== 0) {
    const mode = (st.mode & 0o7777).toString(8).padStart(4, "0");
    return `${what} ${path} is writable by ${(st.mode & 0o002) !== 0 ? "others" : "its group"} (mode ${mode}): refusing to take facts from it`;
  }
  return undefined;
}

/**
 * Reads `<configDir>/<cluster>.properties` after proving nobody but root (or `trustedUid`)
 * could have written it: the file (opened without following a symlink, checked on the open
 * descriptor, so it cannot be swapped between check and read) and its directory.
 */
export function readTrustedProperties(
  configDir: string,
  cluster: string,
  trustedUid: number,
): { ok: true; path: string; text: string } | ({ ok: false } & Untrusted) {
  const no = (kind: UntrustedKind, message: string) => ({ ok: false as const, kind, message });
  if (!CLUSTER_NAME.test(cluster)) {
    return no(
      "usage",
      `cluster name ${JSON.stringify(cluster.slice(0, 80))}: use 1 to 64 letters, digits, _ . - (not starting with . or -)`,
    );
  }
  let dir: string;
  let dirStat: Stats;
  try {
    dir = realpathSync(configDir);
    dirStat = statSync(dir);
  } catch (e) {
    return no("unreadable", `cannot read ${configDir}: ${(e as Error).message}`);
  }
  if (!dirStat.isDirectory()) return no("unsafe", `${dir} is not a directory`);
  const dirProblem = untrustedReason(dir, "the directory", dirStat, trustedUid);
  if (dirProblem !== undefined) return no("unsafe", dirProblem);
  const path = join(dir, `${cluster}.properties`);
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ELOOP")
      return no("unsafe", `the properties file ${path} is a symbolic link: refusing to follow it`);
    return no("unreadable", `cannot read ${path}: ${(e as Error).message}`);
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) return no("unsafe", `the properties file ${path} is not a regular file`);
    const problem = untrustedReason(path, "the properties file", st, trustedUid);
    if (problem !== undefined) return no("unsafe", problem);
    return { ok: true, path, text: readFileSync(fd, "utf8") };
  } finally {
    closeSync(fd);
  }
}
