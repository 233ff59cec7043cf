import { constants } from "node:fs";
import { copyFile, open, stat } from "node:fs/promises";
import { dirname } from "node:path";
import { writeFileAtomic } from "@efm/properties-parser";
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
 * Replaces `path` with `content` through `@efm/properties-parser`'s `writeFileAtomic` (temp
 * file, fsync, rename, fsync of the directory; an existing file keeps its mode). A new file gets
 * 0600, what PostgreSQL expects in a data directory; a failure is a typed `IO_FAILED`.
 */
export function replaceFile(path: string, content: string): void {
  try {
    writeFileAtomic(path, content, 0o600);
  } catch (cause) {
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
