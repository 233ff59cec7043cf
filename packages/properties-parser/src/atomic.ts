import { closeSync, fsyncSync, openSync, renameSync, statSync, unlinkSync, writeSync } from "node:fs";
import { open, rename, stat, unlink } from "node:fs/promises";
import { basename, dirname, join } from "node:path";

let tmpCount = 0;
/** A temporary name next to `path`, unique within this process even for writes in the same ms. */
const tmpFor = (path: string): string =>
  join(
    dirname(path),
    `.${basename(path)}.${process.pid}.${Date.now().toString(36)}.${(tmpCount++).toString(36)}.tmp`,
  );

/**
 * Write a file so that readers see either the old or the new contents, even after a crash:
 * temp file in the same directory, fsync, rename over the target, fsync of the directory.
 * The target's permission bits are kept when it exists; `mode` applies to new files.
 */
export function writeFileAtomic(path: string, data: string | Uint8Array, mode = 0o644): void {
  const dir = dirname(path);
  const tmp = tmpFor(path);
  let keepMode = mode;
  try {
    keepMode = statSync(path).mode & 0o7777;
  } catch {
    // New file: use the requested mode.
  }
  const fd = openSync(tmp, "wx", keepMode);
  try {
    const buf = typeof data === "string" ? Buffer.from(data, "utf8") : data;
    let off = 0;
    while (off < buf.length) off += writeSync(fd, buf, off, buf.length - off);
    fsyncSync(fd);
  } catch (err) {
    closeSync(fd);
    unlinkSync(tmp);
    throw err;
  }
  closeSync(fd);
  try {
    renameSync(tmp, path);
  } catch (err) {
    unlinkSync(tmp);
    throw err;
  }
  const dfd = openSync(dir, "r");
  try {
    fsyncSync(dfd);
  } finally {
    closeSync(dfd);
  }
}

/**
 * writeFileAtomic's steps on the thread pool: the same guarantees, without holding the caller's
 * event loop for two fsyncs (a loaded disk makes each take a tenth of a second and more, which
 * delays every timer and heartbeat of the process).
 */
export async function writeFileAtomicAsync(
  path: string,
  data: string | Uint8Array,
  mode = 0o644,
): Promise<void> {
  const dir = dirname(path);
  const tmp = tmpFor(path);
  const keepMode = await stat(path).then(
    (st) => st.mode & 0o7777,
    () => mode,
  );
  const file = await open(tmp, "wx", keepMode);
  try {
    await file.writeFile(data);
    await file.sync();
  } catch (err) {
    await file.close();
    await unlink(tmp);
    throw err;
  }
  await file.close();
  try {
    await rename(tmp, path);
  } catch (err) {
    await unlink(tmp);
    throw err;
  }
  const d = await open(dir, "r");
  try {
    await d.sync();
  } finally {
    await d.close();
  }
}
