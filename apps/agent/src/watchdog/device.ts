import { closeSync, constants, openSync, readFileSync, realpathSync, statSync, writeSync } from "node:fs";
import { basename, join } from "node:path";

/**
 * The Linux watchdog device at the edge: open, keepalive, magic close. Node has no ioctl, so the
 * device is driven through write(2) only, which the kernel's watchdog core accepts for both:
 * any write is a keepalive (WDIOC_KEEPALIVE's effect), and a 'V' among the bytes written before
 * close(2) is the "magic close" that stops the timer (unless the driver was built or loaded
 * with nowayout). The timeout cannot be set without ioctl; it is configured on the driver (for
 * softdog the module parameter soft_margin, for most hardware drivers a `timeout`/`heartbeat`
 * parameter) and read back from sysfs.
 */

/** What a keepalive writes: anything but 'V', which would arm the magic close. */
const KEEPALIVE = Buffer.from("1");
const MAGIC_CLOSE = Buffer.from("V");

/** An open watchdog device. */
export interface WatchdogDevice {
  readonly path: string;
  /** Restart the device's countdown. Throws when the write fails. */
  keepalive(): void;
  /** Stop the countdown (magic close) and close the device. */
  disarm(): void;
  /** Close without the magic character: the countdown goes on and the host is reset. */
  abandon(): void;
}

/**
 * Open the device for writing. Opening a real watchdog starts its countdown. O_NONBLOCK: a
 * FIFO with no reader fails at once (ENXIO) instead of blocking the agent's event loop.
 */
export function openWatchdog(path: string): WatchdogDevice {
  const fd = openSync(path, constants.O_WRONLY | constants.O_APPEND | constants.O_NONBLOCK);
  let open = true;
  const close = () => {
    if (!open) return;
    open = false;
    closeSync(fd);
  };
  return {
    path,
    keepalive: () => {
      if (!open) throw new Error(`${path} is closed`);
      writeSync(fd, KEEPALIVE);
    },
    disarm: () => {
      if (!open) return;
      try {
        writeSync(fd, MAGIC_CLOSE);
      } finally {
        close();
      }
    },
    abandon: close,
  };
}

/**
 * Where the device's timeout (in whole seconds) can be read, or null. A kernel watchdog
 * (`/dev/watchdog` is the legacy name of `watchdog0`; symbolic links are followed) publishes it
 * in `<sysfs>/<name>/timeout`. A FIFO or a regular file stands in for a device in tests and
 * demonstrations: its timeout is read from `<device>.timeout`.
 */
export function timeoutFileFor(device: string, sysfs = "/sys/class/watchdog"): string | null {
  let real: string;
  let isChar: boolean;
  try {
    real = realpathSync(device);
    const st = statSync(real);
    isChar = st.isCharacterDevice();
    if (!isChar && (st.isFIFO() || st.isFile())) return `${device}.timeout`;
  } catch {
    return null;
  }
  const m = /^watchdog(\d*)$/.exec(basename(real));
  if (!isChar || !m) return null;
  return join(sysfs, `watchdog${m[1] === "" ? "0" : m[1]}`, "timeout");
}

/** The device's timeout in milliseconds, or why it cannot be told. */
export function readDeviceTimeout(
  device: string,
  sysfs = "/sys/class/watchdog",
): { ms: number } | { ms: null; why: string } {
  const file = timeoutFileFor(device, sysfs);
  if (!file) return { ms: null, why: `${device} is not a Linux watchdog device (or does not exist)` };
  let text: string;
  try {
    text = readFileSync(file, "utf8").trim();
  } catch (err) {
    return { ms: null, why: `cannot read ${file}: ${(err as Error).message}` };
  }
  if (!/^\d+$/.test(text))
    return { ms: null, why: `${file} does not hold a whole number of seconds: "${text.slice(0, 40)}"` };
  return { ms: Number(text) * 1000 };
}
