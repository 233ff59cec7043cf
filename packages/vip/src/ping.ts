import { basename } from "node:path";
import { addressFamily, normalizeAddress } from "./address.ts";
import { VipError } from "./errors.ts";
import { startChild } from "./spawner.ts";
import { type VipOptions, wrap } from "./vip.ts";

/** The guide's default pingServerCommand. */
export const DEFAULT_PING = "/bin/ping -q -c3 -w5";

/** How long a command interrupted (SIGINT) may take to print its summary and exit before SIGKILL. */
const GRACE_MS = 500;

/** "3 packets transmitted, 1 received" (iputils), "1 packets received" (busybox). */
const RECEIVED = /(\d+)\s+(?:packets\s+)?received/;
/** A ping's summary: without it, no probe went out (a usage error, no route, no socket). */
const TRANSMITTED = /\d+\s+packets\s+transmitted/;

/** Program names (basename) taken for iputils or busybox ping. */
const PING_PROGRAMS = new Set(["ping", "ping4", "ping6"]);

/**
 * Options of iputils and busybox ping that take a value: in a group such as `-qc3` everything
 * after one of these letters is its value, so a `q` there is not the quiet flag.
 */
const VALUE_OPTIONS = new Set([..."ceFiIlmMNpQsStTwW"]);

/**
 * One echo reply as iputils (`64 bytes from 10.0.0.1: icmp_seq=1 ttl=64 time=0.05 ms`, with
 * `-D` a `[timestamp] ` before it, a name with the address in parentheses when it resolves one)
 * or busybox (`64 bytes from 10.0.0.1: seq=0 ttl=64 time=0.08 ms`) prints it. "Destination Host
 * Unreachable" and other errors start with `From`, never with `<n> bytes from`.
 */
const REPLY = /(?:^|\s)\d+ bytes from (.+?): (?:icmp_)?seq=/;

/**
 * Splits `pingServerCommand` into argv on blanks (no shell: the guide's value is a plain
 * command) and appends the address.
 */
export function pingArgv(ip: string, pingCommand: string = DEFAULT_PING): string[] {
  addressFamily(ip, "address");
  const argv = pingCommand.trim().split(/\s+/).filter(Boolean);
  if (argv.length === 0) throw new VipError("USAGE", "pingServerCommand is empty");
  return [...argv, ip];
}

/** True when the program of `argv` is ping (iputils or busybox), judged by its basename. */
export function isPingProgram(program: string): boolean {
  return PING_PROGRAMS.has(basename(program));
}

/**
 * `args` without ping's quiet flag `-q` (alone or in a group such as `-qn`); every other
 * option, and every option's value, as given.
 */
export function withoutQuiet(args: readonly string[]): string[] {
  const out: string[] = [];
  let valueNext = false;
  let operands = false; // after `--` nothing is an option
  for (const a of args) {
    if (a === "--" && !valueNext) operands = true;
    if (valueNext || operands || !/^-[^-]/.test(a)) {
      valueNext = false;
      out.push(a);
      continue;
    }
    let kept = "-";
    for (let i = 1; i < a.length; i++) {
      const ch = a[i]!;
      if (VALUE_OPTIONS.has(ch)) {
        kept += a.slice(i);
        valueNext = i === a.length - 1;
        break;
      }
      if (ch !== "q") kept += ch;
    }
    if (kept !== "-") out.push(kept);
  }
  return out;
}

/** True when `line` is an echo reply from `address` (any spelling of it). */
export function isReplyFrom(line: string, address: string): boolean {
  const m = REPLY.exec(line);
  if (m === null) return false;
  const from = /\(([^()]+)\)$/.exec(m[1]!)?.[1] ?? m[1]!;
  try {
    return normalizeAddress(from) === normalizeAddress(address);
  } catch {
    return false; // not an address: some other line
  }
}

/**
 * Did `ip` answer `pingCommand` (pingServerCommand) within `boundMs`?
 *
 * When the program is ping (iputils or busybox, by its basename), it runs without `-q`, every
 * other option as configured, so each reply is printed when it arrives: the first reply line
 * from `ip` answers true at once, and the ping is then stopped (SIGINT, SIGKILL after a grace).
 * The guide's default `ping -q -c3 -w5` would otherwise print nothing until its summary, after
 * its third reply two seconds later. Any other program runs exactly as configured.
 *
 * Otherwise the command's own end decides: exit code 0, or a summary counting a reply, is
 * true. A command still running at the bound is interrupted (SIGINT) and the summary it prints
 * then decides (SIGKILL after a grace, and false). So no reply means waiting out the bound or
 * the command's own deadline, whichever comes first: a silent address is never called silent
 * earlier. A command that cannot run at all rejects (`COMMAND_NOT_FOUND`), and a ping that ends
 * without its summary (it sent nothing: a rejected option, no route) rejects (`COMMAND_FAILED`):
 * "unknown" is not "unreachable".
 */
export function pingWithin(
  ip: string,
  pingCommand: string,
  boundMs: number,
  options: Pick<VipOptions, "netns" | "ipCommand"> = {},
): Promise<boolean> {
  const configured = pingArgv(ip, pingCommand);
  const ping = isPingProgram(configured[0]!);
  const argv = wrap(ping ? [configured[0]!, ...withoutQuiet(configured.slice(1))] : configured, options);
  return runPing(argv, ping ? ip : null, boundMs).then((o) => o.reachable);
}

/** A ping's verdict and the thread that started the command (see spawner.ts). */
export interface PingOutcome {
  readonly reachable: boolean;
  /** The thread that forked the command: the worker's, or the caller's on fallback. */
  readonly threadId: number | undefined;
}

/**
 * Runs `argv` (from the worker thread of spawner.ts, so the fork never stalls this one); with
 * `replyFrom` (a ping program) in the C locale, since iputils translates its reply lines and
 * summary, and the first reply line from that address answers.
 */
export function runPing(
  argv: readonly string[],
  replyFrom: string | null,
  boundMs: number,
): Promise<PingOutcome> {
  return new Promise<PingOutcome>((resolve, reject) => {
    let summary = "";
    let errors = "";
    let partial = "";
    let settled = false;
    let exited = false;
    let interrupted = false;
    let kill: NodeJS.Timeout | undefined;
    const settle = (v: boolean) => {
      if (settled) return;
      settled = true;
      clearTimeout(bound);
      resolve({ reachable: v, threadId: child.threadId });
    };
    /** SIGINT, then SIGKILL if it is still there after the grace; `then` runs at the SIGKILL. */
    const interrupt = (then?: () => void) => {
      if (exited || interrupted) return;
      interrupted = true;
      child.kill("SIGINT");
      kill = setTimeout(() => {
        if (!exited) child.kill("SIGKILL");
        // A grandchild holding the pipes open must not keep them (and their listeners) alive.
        child.closeStdio();
        then?.();
      }, GRACE_MS);
    };
    const child = startChild(
      argv,
      replyFrom === null ? { ...process.env } : { ...process.env, LC_ALL: "C" },
      {
        stdout(d) {
          summary += d;
          if (summary.length > 64 * 1024) summary = summary.slice(-4 * 1024); // a summary is short
          if (replyFrom === null || settled) return;
          const lines = (partial + d).split("\n");
          partial = lines.pop() ?? "";
          if (lines.some((l) => isReplyFrom(l, replyFrom))) {
            settle(true);
            interrupt();
          }
        },
        stderr(d) {
          if (errors.length < 4096) errors += d;
        },
        error(err) {
          // After the answer only a failed kill can get here; the close still comes.
          if (settled) return;
          exited = true;
          clearTimeout(kill);
          settled = true;
          clearTimeout(bound);
          const missing = err.code === "ENOENT" || err.code === "EACCES";
          reject(
            new VipError(
              missing ? "COMMAND_NOT_FOUND" : "COMMAND_FAILED",
              `cannot run ${argv[0]}: ${err.code ?? err.message}`,
            ),
          );
        },
        exit() {
          exited = true;
        },
        close(code) {
          exited = true;
          clearTimeout(kill);
          // A ping that ended on its own with no summary sent nothing (iputils' invalid argument,
          // "Network is unreachable", no raw socket): that is "could not test", never "nobody
          // answered", or a VIP check would pass without a probe. Interrupted at the bound, the
          // wait itself was the test.
          if (replyFrom !== null && !interrupted && code !== 0 && !TRANSMITTED.test(summary) && !settled) {
            settled = true;
            clearTimeout(bound);
            const why = errors.trim().split("\n")[0] || `exit code ${code}`;
            reject(new VipError("COMMAND_FAILED", `${argv.join(" ")} sent no probe: ${why}`));
            return;
          }
          const m = RECEIVED.exec(summary);
          settle(code === 0 || (m !== null && Number(m[1]) > 0));
        },
        lost(error) {
          clearTimeout(kill);
          if (settled) return; // answered already; the worker's death cannot change that
          settled = true;
          clearTimeout(bound);
          reject(error);
        },
      },
    );
    const bound = setTimeout(() => interrupt(() => settle(false)), Math.max(1, boundMs));
  });
}

/**
 * True when `ip` answers `pingCommand` (pingServerCommand, default `/bin/ping -q -c3 -w5`)
 * within `options.timeoutMs` (default 30 s), as {@link pingWithin} says: the first reply
 * answers at once; an address that does not answer is "not reachable" only once the command
 * ended without a reply or the bound passed. A missing ping program is an error.
 */
export function isReachable(
  ip: string,
  pingCommand: string = DEFAULT_PING,
  options: VipOptions = {},
): Promise<boolean> {
  return pingWithin(ip, pingCommand, options.timeoutMs ?? 30_000, options);
}
