import { hostname } from "node:os";
import type { Severity } from "./catalogue.ts";
import { NotifierError } from "./errors.ts";
import type { MessageContext } from "./message.ts";
import type { Logger, NotifierOptions } from "./notifier.ts";
import {
  clusterLogSink,
  emailSink,
  type RetryPolicy,
  type RunScript,
  type Sink,
  scriptSink,
} from "./sinks.ts";

/** Where and as whom the agent runs: what the properties file does not say. */
export interface NotifierEnvironment {
  /** Name of the cluster (the properties file's base name). */
  readonly clusterName: string;
  /** This agent's address, shown as `EFM node:`. */
  readonly nodeAddress: string;
  /** The cluster log file, e.g. `/var/log/efm-2.0/<cluster>.log`. */
  readonly clusterLogPath: string;
  readonly logger?: Logger;
  readonly runScript?: RunScript;
  /** Host name for the default sender `efm@<hostname>`; default `os.hostname()`. */
  readonly hostname?: string;
  readonly queueCapacity?: number;
  /** Retries of the e-mail sink; default 4 tries, 1 s doubling to 30 s. */
  readonly emailRetry?: RetryPolicy;
  /** Time allowed for one SMTP delivery; default 15 s. */
  readonly emailTimeoutMs?: number;
}

const addressPattern = /^[^\s@<>(),;:"]+@[^\s@<>(),;:"]+$/;

/** Splits `user.email` into addresses: commas, semicolons or blanks separate them. */
export function parseRecipients(value: string): string[] {
  return value
    .split(/[\s,;]+/)
    .map((a) => a.trim())
    .filter((a) => a.length > 0);
}

/**
 * Builds notifier options from cluster properties (`user.email`, `from.email`,
 * `notification.smtp.host`, `notification.smtp.port`, `notification.level`,
 * `notification.text.prefix`, `script.notification`, `db.database`, `virtualIp`).
 * Reports every bad property at once in one `NotifierError` (`INVALID_OPTION`).
 */
export function notifierOptionsFromProperties(
  properties: Readonly<Record<string, string | undefined>>,
  env: NotifierEnvironment,
): NotifierOptions {
  const problems: string[] = [];
  const get = (key: string): string => (properties[key] ?? "").trim();

  const recipients = parseRecipients(get("user.email"));
  for (const r of recipients) {
    if (!addressPattern.test(r)) problems.push(`user.email: "${r}" is not an e-mail address`);
  }
  const host = env.hostname ?? hostname();
  const from = (get("from.email") || "efm@%h").replaceAll("%h", host);
  if (!addressPattern.test(from)) problems.push(`from.email: "${from}" is not an e-mail address`);

  const smtpHost = get("notification.smtp.host") || "localhost";
  const portText = get("notification.smtp.port") || "25";
  const port = /^\d+$/.test(portText) ? Number(portText) : Number.NaN;
  if (!(port >= 1 && port <= 65535)) {
    problems.push(`notification.smtp.port: "${portText}" is not a port number (1-65535)`);
  }

  const levelText = (get("notification.level") || "INFO").toUpperCase();
  const level = levelText as Severity;
  if (level !== "INFO" && level !== "WARNING" && level !== "SEVERE") {
    problems.push(`notification.level: "${get("notification.level")}" is not one of INFO, WARNING, SEVERE`);
  }

  const scriptPath = get("script.notification");
  if (scriptPath !== "" && !scriptPath.startsWith("/")) {
    problems.push(`script.notification: "${scriptPath}" must be an absolute path`);
  }

  if (problems.length > 0) {
    throw new NotifierError("INVALID_OPTION", `bad notification properties: ${problems.join("; ")}`);
  }

  const context: MessageContext = {
    nodeAddress: env.nodeAddress,
    clusterName: env.clusterName,
    databaseName: get("db.database"),
    vipEnabled: get("virtualIp") !== "",
    textPrefix: get("notification.text.prefix"),
  };
  const sinks: Sink[] = [clusterLogSink({ path: env.clusterLogPath })];
  if (recipients.length > 0) {
    sinks.push(
      emailSink({
        recipients,
        from,
        host: smtpHost,
        port,
        minSeverity: level,
        ...(env.emailRetry === undefined ? {} : { retry: env.emailRetry }),
        ...(env.emailTimeoutMs === undefined ? {} : { timeoutMs: env.emailTimeoutMs }),
      }),
    );
  }
  if (scriptPath !== "") {
    sinks.push(
      scriptSink({
        path: scriptPath,
        minSeverity: level,
        ...(env.runScript === undefined ? {} : { runScript: env.runScript }),
      }),
    );
  }
  return {
    context,
    sinks,
    ...(env.logger === undefined ? {} : { logger: env.logger }),
    ...(env.queueCapacity === undefined ? {} : { queueCapacity: env.queueCapacity }),
  };
}
