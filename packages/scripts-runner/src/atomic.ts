import { constants } from "node:fs";
import { copyFile, open, rename, rm, stat } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { ScriptsRunnerError } from "./errors.ts";

async function fsyncPath(path: string, flags: number): Promise<void> {
  const handle = await open(path, flags);
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/**
 * Replaces `path` with `content` so that a crash leaves either the old or the new file,
 * never a torn one: temp file in the same directory, fsync, rename, fsync of the directory.
 * Keeps the old file's mode (default 0600, what PostgreSQL expects in a data directory).
 */
export async function writeFileAtomic(path: string, content: string): Promise<void> {
  const dir = dirname(path);
  const temp = join(dir, `.${basename(path)}.efm-tmp-${process.pid}`);
  let mode = 0o600;
  try {
    mode = (await stat(path)).mode & 0o7777;
  } catch {
    // new file
  }
  try {
    const handle = await open(temp, "w", mode);
    try {
      await handle.writeFile(content, "utf8");
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temp, path);
    await fsyncPath(dir, constants.O_RDONLY | constants.O_DIRECTORY);
  } catch (cause) {
    await rm(temp, { force: true });
    throw new ScriptsRunnerError("IO_FAILED", `cannot write ${path}: ${(cause as Error).message}`, { cause });
  }
}

/** A sortable UTC time stamp for backup names: 20261126T204512345Z. */
export function backupStamp(now: Date): string {
  return now.toISOString().replace(/[-:]/g, "").replace(".", "");
}

/**
 * Copies `path` to `<path>.efm-backup-<stamp>` (fsynced) before it is replaced; returns the
 * backup path, or null when there was nothing to back up.
 */
export async function backupFile(path: string, now: Date = new Date()): Promise<string | null> {
  try {
    await stat(path);
  } catch {
    return null;
  }
  const target = `${path}.efm-backup-${backupStamp(now)}`;
  try {
    await copyFile(path, target, constants.COPYFILE_EXCL);
    await fsyncPath(target, constants.O_RDONLY);
    await fsyncPath(dirname(path), constants.O_RDONLY | constants.O_DIRECTORY);
  } catch (cause) {
    throw new ScriptsRunnerError("IO_FAILED", `cannot back up ${path}: ${(cause as Error).message}`, {
      cause,
    });
  }
  return target;
}
