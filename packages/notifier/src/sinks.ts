import { spawn } from "node:child_process";
import { appendFileSync, mkdirSync } from "node:fs";
import { appendFile, mkdir } from "node:fs/promises";
import { dirname } from "node:path";
import nodemailer from "nodemailer";
import type { Severity } from "./catalogue.ts";
import { NotifierError } from "./errors.ts";
import type { RenderedNotification } from "./message.ts";

/** How often and how patiently a sink retries a failed delivery. */
export interface RetryPolicy {
  /** Total tries, at least 1 (1 = no retry). */
  readonly attempts: number;
  /** Wait before the second try; doubled for each further try. */
  readonly initialDelayMs: number;
  /** Cap on the wait between tries. */
  readonly maxDelayMs: number;
}

/**
 * Where notifications go. Any object with this shape can be added to a notifier (the
 * nodemailer idea of transports as a plugin contract). `deliver` may reject; the notifier
 * retries, logs and counts, and never lets the rejection reach `notify()`'s caller.
 */
export interface Sink {
  /** Short name used in logs and stats, e.g. `email`. */
  readonly name: string;
  /** Lowest severity this sink receives (`notification.level`). */
  readonly minSeverity: Severity;
  /** How many queued notifications one `deliver` call may take (1 = one at a time). */
  readonly batchSize: number;
  /** Time allowed for one `deliver` call before it counts as failed. */
  readonly timeoutMs: number;
  readonly retry: RetryPolicy;
  /** Pending notifications this sink may hold; default: the notifier's `queueCapacity`. */
  readonly queueCapacity?: number;
  /** Delivers a batch; `signal` aborts when the per-send timeout fires or the notifier closes. */
  deliver(batch: readonly RenderedNotification[], signal: AbortSignal): Promise<void>;
  /** Releases connections; called once by `Notifier.close()`. */
  close?(): Promise<void>;
  /**
   * Keeps a record of what another sink could not deliver before the notifier closed (a mail
   * still retrying at shutdown). Synchronous and quick: it runs inside the close deadline.
   */
  recordUndelivered?(sinkName: string, batch: readonly RenderedNotification[]): void;
}

// ---------------------------------------------------------------- cluster log

// Plain replaceAll chains: several times faster than one regex with a callback, and this runs
// for every notification on the event loop.
function escapeField(text: string): string {
  return text
    .replaceAll("\\", "\\\\")
    .replaceAll("\t", "\\t")
    .replaceAll("\n", "\\n")
    .replaceAll("\r", "\\r");
}

function unescapeField(text: string): string {
  return text.replace(/\\([\\tnr])/g, (_, c: string) =>
    c === "\\" ? "\\" : c === "t" ? "\t" : c === "n" ? "\n" : "\r",
  );
}

/**
 * One cluster-log line: ISO time, severity, subject and body separated by tabs, with `\`,
 * tab, CR and LF escaped so a multi-line body stays on one line (grep- and awk-friendly).
 */
export function formatClusterLogLine(n: RenderedNotification): string {
  return `${n.time.toISOString()}\t${n.severity}\t${escapeField(n.subject)}\t${escapeField(n.body)}\n`;
}

/** The fields of a line written by {@link formatClusterLogLine}, or undefined if it is not one. */
export function parseClusterLogLine(
  line: string,
): { time: string; severity: Severity; subject: string; body: string } | undefined {
  const fields = line.replace(/\n$/, "").split("\t");
  if (fields.length !== 4) return undefined;
  const [time, severity, subject, body] = fields as [string, string, string, string];
  if (severity !== "INFO" && severity !== "WARNING" && severity !== "SEVERE") return undefined;
  return { time, severity, subject: unescapeField(subject), body: unescapeField(body) };
}

/** Options of {@link clusterLogSink}. */
export interface ClusterLogSinkOptions {
  /** The cluster log file, e.g. `/var/log/efm-2.0/acctg.log`; its folder is created if missing. */
  readonly path: string;
  readonly timeoutMs?: number;
  readonly retry?: RetryPolicy;
  /** Default 20,000: the log must keep every notification, and it drains quickly. */
  readonly queueCapacity?: number;
}

/**
 * The cluster log sink (guide 7: every notification is recorded in the cluster log file).
 * It takes every severity and writes whole batches with one append; the file is opened per
 * batch so logrotate may move it at any time.
 */
export function clusterLogSink(options: ClusterLogSinkOptions): Sink {
  let folderReady = false;
  return {
    name: "cluster-log",
    minSeverity: "INFO",
    // 100 lines per append: large enough for a storm, small enough that formatting one batch
    // never holds the event loop for more than about a millisecond.
    batchSize: 100,
    queueCapacity: options.queueCapacity ?? 20_000,
    timeoutMs: options.timeoutMs ?? 5000,
    retry: options.retry ?? { attempts: 5, initialDelayMs: 200, maxDelayMs: 5000 },
    async deliver(batch) {
      try {
        if (!folderReady) {
          await mkdir(dirname(options.path), { recursive: true, mode: 0o750 });
          folderReady = true;
        }
        await appendFile(options.path, batch.map(formatClusterLogLine).join(""), { mode: 0o640 });
      } catch (err) {
        throw new NotifierError(
          "LOG_WRITE_FAILED",
          `cannot append to cluster log ${options.path}: ${(err as Error).message}`,
          { cause: err },
        );
      }
    },
    // The notification itself is in the log already (this sink takes every one); add that the
    // other sink never delivered it, so the operator knows which mails to look up here.
    recordUndelivered(sinkName, batch) {
      const lines = batch.map((n) =>
        formatClusterLogLine({
          ...n,
          time: new Date(),
          severity: "WARNING",
          subject: `Not delivered by ${sinkName} before the agent stopped: ${n.subject}`,
        }),
      );
      try {
        mkdirSync(dirname(options.path), { recursive: true, mode: 0o750 });
        appendFileSync(options.path, lines.join(""), { mode: 0o640 });
      } catch {
        // Nothing left to tell: the notifier's own log names the abandoned notifications.
      }
    },
  };
}

// ---------------------------------------------------------------- e-mail

/** Options of {@link emailSink}. */
export interface EmailSinkOptions {
  /** `user.email`: one or more addresses. */
  readonly recipients: readonly string[];
  /** `from.email`. */
  readonly from: string;
  /** `notification.smtp.host`, default `localhost`. */
  readonly host?: string;
  /** `notification.smtp.port`, default 25. */
  readonly port?: number;
  /** `notification.level`: lowest severity e-mailed, default INFO. */
  readonly minSeverity?: Severity;
  readonly timeoutMs?: number;
  readonly retry?: RetryPolicy;
}

/**
 * E-mail through SMTP with nodemailer, one message per notification to all recipients. A
 * single pooled connection is reused (so a storm does not open hundreds of sockets to the
 * local relay). STARTTLS is used when the relay offers it, without certificate checks: the
 * relay is normally on the same host (guide 7), and a self-signed relay certificate must not
 * silently turn every notification into a failure where plain SMTP would have worked.
 */
export function emailSink(options: EmailSinkOptions): Sink {
  const timeoutMs = options.timeoutMs ?? 15_000;
  const transport = nodemailer.createTransport({
    host: options.host ?? "localhost",
    port: options.port ?? 25,
    secure: (options.port ?? 25) === 465,
    pool: true,
    maxConnections: 1,
    connectionTimeout: timeoutMs,
    greetingTimeout: timeoutMs,
    socketTimeout: timeoutMs,
    tls: { rejectUnauthorized: false },
    logger: false,
  });
  // A pooled transport reports idle-connection errors as events; without a listener they
  // would crash the process. Delivery errors still reach `deliver` through sendMail.
  transport.on("error", () => {});
  const where = `${options.host ?? "localhost"}:${options.port ?? 25}`;
  return {
    name: "email",
    minSeverity: options.minSeverity ?? "INFO",
    batchSize: 1,
    timeoutMs,
    retry: options.retry ?? { attempts: 4, initialDelayMs: 1000, maxDelayMs: 30_000 },
    async deliver(batch) {
      for (const n of batch) {
        try {
          await transport.sendMail({
            from: options.from,
            to: [...options.recipients],
            subject: n.subject,
            text: n.body,
            date: n.time,
            headers: { "X-EFM-Severity": n.severity, "X-EFM-Notification": n.id },
          });
        } catch (err) {
          const code = (err as { code?: unknown }).code;
          throw new NotifierError(
            "SMTP_DELIVERY_FAILED",
            `SMTP ${where} refused or failed "${n.subject}": ${typeof code === "string" ? `${code} ` : ""}${(err as Error).message}`,
            { cause: err },
          );
        }
      }
    },
    async close() {
      transport.close();
    },
  };
}

// ---------------------------------------------------------------- script

/** Outcome of one script run. */
export interface ScriptResult {
  /** Exit code, or null when killed by a signal. */
  readonly exitCode: number | null;
  readonly signal: NodeJS.Signals | null;
  /** stdout and stderr interleaved, truncated to a few KiB. */
  readonly output: string;
  readonly timedOut: boolean;
}

/** Runs `path` with `args` (no shell); resolves with the outcome, rejects only if it cannot start. */
export type RunScript = (
  path: string,
  args: readonly string[],
  options: { readonly timeoutMs: number; readonly signal: AbortSignal },
) => Promise<ScriptResult>;

const maxScriptOutput = 8192;

/** Default {@link RunScript}: `spawn` with argv, SIGKILL at the timeout, output capped. */
export const spawnScript: RunScript = (path, args, { timeoutMs, signal }) =>
  new Promise((resolve, reject) => {
    let output = "";
    let timedOut = false;
    const child = spawn(path, [...args], { stdio: ["ignore", "pipe", "pipe"], shell: false });
    const collect = (chunk: Buffer) => {
      if (output.length < maxScriptOutput)
        output += chunk.toString("utf8").slice(0, maxScriptOutput - output.length);
    };
    child.stdout.on("data", collect);
    child.stderr.on("data", collect);
    const kill = () => {
      timedOut = true;
      child.kill("SIGKILL");
    };
    const timer = setTimeout(kill, timeoutMs);
    signal.addEventListener("abort", kill, { once: true });
    child.on("error", (err) => {
      clearTimeout(timer);
      signal.removeEventListener("abort", kill);
      reject(err);
    });
    child.on("close", (exitCode, sig) => {
      clearTimeout(timer);
      signal.removeEventListener("abort", kill);
      resolve({ exitCode, signal: sig, output, timedOut });
    });
  });

/** Options of {@link scriptSink}. */
export interface ScriptSinkOptions {
  /** `script.notification`: run as `<path> <subject> <body>`. */
  readonly path: string;
  /** `notification.level`: lowest severity passed to the script, default INFO. */
  readonly minSeverity?: Severity;
  readonly runScript?: RunScript;
  readonly timeoutMs?: number;
  /** Default: one try only, because a script that ran and failed may already have had effects. */
  readonly retry?: RetryPolicy;
}

/** The `script.notification` sink: runs the user's script with the subject and body as arguments. */
export function scriptSink(options: ScriptSinkOptions): Sink {
  const run = options.runScript ?? spawnScript;
  const timeoutMs = options.timeoutMs ?? 30_000;
  return {
    name: "script",
    minSeverity: options.minSeverity ?? "INFO",
    batchSize: 1,
    // A little over the script's own timeout, so the kill (and its clearer message) comes first.
    timeoutMs: timeoutMs + 1000,
    retry: options.retry ?? { attempts: 1, initialDelayMs: 1000, maxDelayMs: 1000 },
    async deliver(batch, signal) {
      for (const n of batch) {
        let result: ScriptResult;
        try {
          result = await run(options.path, [n.subject, n.body], { timeoutMs, signal });
        } catch (err) {
          throw new NotifierError(
            "SCRIPT_FAILED",
            `script.notification ${options.path} could not start: ${(err as Error).message}`,
            { cause: err },
          );
        }
        if (result.exitCode !== 0) {
          const how = result.timedOut
            ? `timed out after ${timeoutMs} ms`
            : result.exitCode === null
              ? `was killed by ${result.signal ?? "a signal"}`
              : `exited with ${result.exitCode}`;
          throw new NotifierError(
            "SCRIPT_FAILED",
            `script.notification ${options.path} ${how} for "${n.subject}"${result.output ? `: ${result.output.trim()}` : ""}`,
          );
        }
      }
    },
  };
}
