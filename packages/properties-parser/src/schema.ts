import { isIP } from "node:net";
import { z } from "zod";

/** Log levels of guide section 6, most output first. */
export const LOG_LEVELS = ["FINEST", "FINER", "FINE", "CONFIG", "INFO", "WARNING", "SEVERE"] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** Notification severities (guide section 7), least urgent first. */
export const NOTIFICATION_LEVELS = ["INFO", "WARNING", "SEVERE"] as const;
export type NotificationLevel = (typeof NOTIFICATION_LEVELS)[number];

/** libpq's sslmode values, weakest first (jdbc.sslmode). */
export const SSL_MODES = ["disable", "allow", "prefer", "require", "verify-ca", "verify-full"] as const;
export type SslMode = (typeof SSL_MODES)[number];

/** watchdog.mode: no watchdog, one when the device can be used, or no master role without one. */
export const WATCHDOG_MODES = ["off", "automatic", "required"] as const;
export type WatchdogMode = (typeof WATCHDOG_MODES)[number];

/**
 * synchronous.mode: off, on (the master keeps `synchronous_standby_names = 'ANY 1 (...)'` over
 * its running standbys, relaxed to '' only in a majority view without standbys) or strict
 * (never relaxed: commits wait while no standby runs).
 */
export const SYNCHRONOUS_MODES = ["off", "on", "strict"] as const;
export type SynchronousMode = (typeof SYNCHRONOUS_MODES)[number];

/** db.rewind: whether a standby that cannot follow a new timeline is rewound. */
export const REWIND_MODES = ["off", "on"] as const;
export type RewindMode = (typeof REWIND_MODES)[number];

/** A `host:port` pair as written in `bind.address` and the members file. */
export interface HostPort {
  host: string;
  port: number;
}

/** The virtual IP settings: all three properties or none (guide 3.2.1). */
export interface VirtualIp {
  address: string;
  interface: string;
  prefix: number;
}

/** The validated contents of `<cluster>.properties`. */
export interface EfmConfig {
  autoFailover: boolean;
  autoReconfigure: boolean;
  /**
   * auto.rejoin: a fenced old master rejoins as a standby of the new master by itself (pg_rewind,
   * see docs/operations.md "Rejoining the old master"); false (default) waits for `efm resume`.
   */
  autoRejoin: boolean;
  /** db.rewind: a standby that cannot follow the new master's timeline is rewound (pg_rewind). */
  dbRewind: RewindMode;
  /** db.rewind.source.user: the role pg_rewind reads the new master as; absent = db.user. */
  dbRewindSourceUser?: string;
  /** db.rejoin.basebackup: when no rewind is possible, re-clone (old data directory moved aside). */
  dbRejoinBasebackup: boolean;
  dbUser: string;
  dbPasswordEncrypted: string;
  dbPort: number;
  dbDatabase: string;
  dbReuseConnectionCount: number;
  jdbcSsl: boolean;
  /** jdbc.sslmode; absent = decided by jdbc.ssl (see `tlsSettings`). */
  jdbcSslmode?: SslMode;
  jdbcSslrootcert?: string;
  jdbcSslcert?: string;
  jdbcSslkey?: string;
  adminPort: number;
  /**
   * http.bind.address: where the agent serves /health, /primary, /replica, /status and
   * /metrics. Absent (the default) = no HTTP server, as in 2.0.3.
   */
  httpBindAddress?: HostPort;
  localPeriod: number;
  localTimeout: number;
  localTimeoutFinal: number;
  remoteTimeout: number;
  jgroupsMaxTries: number;
  jgroupsTimeout: number;
  userEmail: string[];
  bindAddress: HostPort;
  isWitness: boolean;
  dbServiceOwner?: string;
  dbRecoveryConfDir?: string;
  dbDataDir?: string;
  dbBin?: string;
  virtualIp?: VirtualIp;
  pingServerIp: string;
  pingServerCommand: string[];
  scriptFence?: string;
  scriptPostPromotion?: string;
  scriptDbFailure?: string;
  scriptMasterIsolated?: string;
  scriptNotification?: string;
  scriptTimeout: number;
  jgroupsLoglevel: LogLevel;
  efmLoglevel: LogLevel;
  notificationSmtpHost: string;
  notificationSmtpPort: number;
  fromEmail?: string;
  notificationLevel: NotificationLevel;
  notificationTextPrefix?: string;
  lockDir?: string;
  logDir?: string;
  runDir?: string;
  stateDir?: string;
  /** watchdog.mode: reset a frozen master's host (see docs/operations.md, "Watchdog"). */
  watchdogMode: WatchdogMode;
  /** watchdog.device: the Linux watchdog device the master keeps alive. */
  watchdogDevice: string;
  /** watchdog.safety.margin (ms): how long before another node may promote the device fires. */
  watchdogSafetyMargin: number;
  /**
   * synchronous.mode: the zero-loss guard (see docs/operations.md, "Synchronous replication
   * guard"): only a standby of the last published synchronous set is promoted automatically.
   */
  synchronousMode: SynchronousMode;
  /**
   * switchover.max.lag.bytes: `efm promote -switchover` is refused unless its target is at most
   * this many bytes of WAL behind the master (the writes pause while it replays the rest).
   */
  switchoverMaxLagBytes: number;
}

/** How a property's text value becomes a typed value; `print` is its inverse. */
interface ValueType<T> {
  expected: string;
  parse: z.ZodType<T, string>;
  print: (v: T) => string;
}

const bool: ValueType<boolean> = {
  expected: "true or false",
  parse: z.enum(["true", "false"]).transform((v) => v === "true"),
  print: String,
};

function int(min: number, max: number): ValueType<number> {
  return {
    expected: `a whole number from ${min} to ${max}`,
    parse: z
      .string()
      .regex(/^\d+$/)
      .transform(Number)
      .refine((n) => n >= min && n <= max),
    print: String,
  };
}

const port = { ...int(1, 65535), expected: "a port number from 1 to 65535" };

const text: ValueType<string> = { expected: "a value", parse: z.string().min(1), print: (v) => v };

const absolutePath: ValueType<string> = {
  expected: "an absolute path",
  parse: z.string().startsWith("/"),
  print: (v) => v,
};

const sslMode: ValueType<SslMode> = {
  expected: SSL_MODES.join(", "),
  parse: z.enum(SSL_MODES),
  print: (v) => v,
};

const watchdogMode: ValueType<WatchdogMode> = {
  expected: WATCHDOG_MODES.join(", "),
  parse: z.enum(WATCHDOG_MODES),
  print: (v) => v,
};

const synchronousMode: ValueType<SynchronousMode> = {
  expected: SYNCHRONOUS_MODES.join(", "),
  parse: z.enum(SYNCHRONOUS_MODES),
  print: (v) => v,
};

const rewindMode: ValueType<RewindMode> = {
  expected: REWIND_MODES.join(" or "),
  parse: z.enum(REWIND_MODES),
  print: (v) => v,
};

// What PostgreSQL accepts as an unquoted role name (the helper passes it to libpq as is).
const role: ValueType<string> = {
  expected: "a role name (letters, digits, _ $ . -, starting with a letter or _)",
  parse: z.string().regex(/^[A-Za-z_][A-Za-z0-9_$.-]{0,62}$/),
  print: (v) => v,
};

const logLevel: ValueType<LogLevel> = {
  expected: LOG_LEVELS.join(", "),
  parse: z.enum(LOG_LEVELS),
  print: (v) => v,
};

const notificationLevel: ValueType<NotificationLevel> = {
  expected: NOTIFICATION_LEVELS.join(", "),
  parse: z.enum(NOTIFICATION_LEVELS),
  print: (v) => v,
};

const hostname =
  /^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;

/**
 * True for an IPv4/IPv6 literal or a syntactically valid host name. A name whose last label is
 * all digits is never a host name (RFC 1123 2.1), so `300.1.1.1` or `10.0.1` is a mistyped
 * address, refused here rather than looked up in DNS.
 */
export function isHost(s: string): boolean {
  return isIP(s) !== 0 || (hostname.test(s) && !/(?:^|\.)\d+$/.test(s));
}

/** Parse `host:port`, `[v6]:port`; null when malformed. */
export function parseHostPort(s: string): HostPort | null {
  const m = /^\[([^\]]+)\]:(\d{1,5})$/.exec(s) ?? /^([^:\s]+):(\d{1,5})$/.exec(s);
  if (!m) return null;
  const host = m[1]!;
  const p = Number(m[2]);
  if (p < 1 || p > 65535 || !isHost(host)) return null;
  return { host, port: p };
}

/** Print a HostPort back, bracketing IPv6 literals. */
export function formatHostPort(hp: HostPort): string {
  return isIP(hp.host) === 6 ? `[${hp.host}]:${hp.port}` : `${hp.host}:${hp.port}`;
}

const hostPort: ValueType<HostPort> = {
  expected: "<ip-or-host>:<port>, for example 10.0.1.8:7800",
  parse: z.string().transform((s, ctx) => {
    const hp = parseHostPort(s);
    if (!hp) {
      ctx.addIssue({ code: "custom", message: "bad" });
      return z.NEVER;
    }
    return hp;
  }),
  print: formatHostPort,
};

const host: ValueType<string> = {
  expected: "an IP address or host name",
  parse: z.string().refine(isHost),
  print: (v) => v,
};

const emailList: ValueType<string[]> = {
  expected: "one or more e-mail addresses separated by commas",
  parse: z
    .string()
    .transform((s) => s.split(/[\s,;]+/).filter((x) => x !== ""))
    .refine((list) => list.length > 0 && list.every((a) => /^[^\s@]+@[^\s@]+$/.test(a))),
  print: (v) => v.join(","),
};

const email: ValueType<string> = {
  expected: "an e-mail address",
  parse: z.string().regex(/^[^\s@]+@[^\s@]+$/),
  print: (v) => v,
};

const command: ValueType<string[]> = {
  expected: "a command starting with an absolute path, for example /bin/ping -q -c3 -w5",
  parse: z
    .string()
    .transform((s) => s.split(/\s+/).filter((x) => x !== ""))
    .refine((argv) => argv.length > 0 && argv[0]!.startsWith("/")),
  print: (v) => v.join(" "),
};

/** Where a property is needed. */
type Need = "always" | "unless-witness" | "optional";

interface PropertySpec<T> {
  key: string;
  field: keyof EfmConfig;
  type: ValueType<T>;
  need: Need;
  default?: NoInfer<T>;
  /** Later EFM spellings that mean the same thing. */
  aliases?: string[];
}

// biome-ignore lint/suspicious/noExplicitAny: a heterogeneous table; each row is checked by `spec` below.
type AnySpec = PropertySpec<any>;
function spec<T>(s: PropertySpec<T>): AnySpec {
  return s;
}

/**
 * Every property of guide 3.2.1 plus the ones this implementation adds, in the order the
 * example file lists them. `virtualIp*` are handled together in `validate` (all or none).
 */
export const PROPERTIES: readonly AnySpec[] = [
  spec({ key: "auto.failover", field: "autoFailover", type: bool, need: "optional", default: true }),
  spec({ key: "auto.reconfigure", field: "autoReconfigure", type: bool, need: "optional", default: true }),
  spec({ key: "auto.rejoin", field: "autoRejoin", type: bool, need: "optional", default: false }),
  spec({ key: "db.rewind", field: "dbRewind", type: rewindMode, need: "optional", default: "off" }),
  spec({ key: "db.rewind.source.user", field: "dbRewindSourceUser", type: role, need: "optional" }),
  spec({
    key: "db.rejoin.basebackup",
    field: "dbRejoinBasebackup",
    type: bool,
    need: "optional",
    default: false,
  }),
  spec({ key: "db.user", field: "dbUser", type: text, need: "always" }),
  spec({ key: "db.password.encrypted", field: "dbPasswordEncrypted", type: text, need: "always" }),
  spec({ key: "db.port", field: "dbPort", type: port, need: "always" }),
  spec({ key: "db.database", field: "dbDatabase", type: text, need: "always" }),
  spec({
    key: "db.reuse.connection.count",
    field: "dbReuseConnectionCount",
    type: int(0, 1_000_000),
    need: "optional",
    default: 0,
  }),
  spec({ key: "jdbc.ssl", field: "jdbcSsl", type: bool, need: "optional", default: false }),
  spec({ key: "jdbc.sslmode", field: "jdbcSslmode", type: sslMode, need: "optional" }),
  spec({ key: "jdbc.sslrootcert", field: "jdbcSslrootcert", type: absolutePath, need: "optional" }),
  spec({ key: "jdbc.sslcert", field: "jdbcSslcert", type: absolutePath, need: "optional" }),
  spec({ key: "jdbc.sslkey", field: "jdbcSslkey", type: absolutePath, need: "optional" }),
  spec({ key: "admin.port", field: "adminPort", type: port, need: "always" }),
  spec({ key: "http.bind.address", field: "httpBindAddress", type: hostPort, need: "optional" }),
  spec({ key: "local.period", field: "localPeriod", type: int(1, 86_400), need: "optional", default: 10 }),
  spec({ key: "local.timeout", field: "localTimeout", type: int(1, 86_400), need: "optional", default: 60 }),
  spec({
    key: "local.timeout.final",
    field: "localTimeoutFinal",
    type: int(1, 86_400),
    need: "optional",
    default: 10,
  }),
  spec({
    key: "remote.timeout",
    field: "remoteTimeout",
    type: int(1, 86_400),
    need: "optional",
    default: 10,
  }),
  spec({
    key: "jgroups.max.tries",
    field: "jgroupsMaxTries",
    // One try would suspect a member after a single lost heartbeat: membership needs two.
    type: int(2, 1000),
    need: "optional",
    default: 8,
  }),
  spec({
    key: "jgroups.timeout",
    field: "jgroupsTimeout",
    type: int(50, 3_600_000),
    need: "optional",
    default: 5000,
  }),
  spec({ key: "user.email", field: "userEmail", type: emailList, need: "always" }),
  spec({ key: "bind.address", field: "bindAddress", type: hostPort, need: "always" }),
  spec({ key: "is.witness", field: "isWitness", type: bool, need: "always" }),
  spec({ key: "db.service.owner", field: "dbServiceOwner", type: text, need: "unless-witness" }),
  spec({
    key: "db.recovery.conf.dir",
    field: "dbRecoveryConfDir",
    type: absolutePath,
    need: "unless-witness",
  }),
  spec({ key: "db.data.dir", field: "dbDataDir", type: absolutePath, need: "optional" }),
  spec({ key: "db.bin", field: "dbBin", type: absolutePath, need: "unless-witness" }),
  spec({
    key: "pingServerIp",
    field: "pingServerIp",
    type: host,
    need: "optional",
    default: "8.8.8.8",
    aliases: ["ping.server.ip"],
  }),
  spec({
    key: "pingServerCommand",
    field: "pingServerCommand",
    type: command,
    need: "optional",
    default: ["/bin/ping", "-q", "-c3", "-w5"],
    aliases: ["ping.server.command"],
  }),
  spec({ key: "script.fence", field: "scriptFence", type: absolutePath, need: "optional" }),
  spec({ key: "script.post.promotion", field: "scriptPostPromotion", type: absolutePath, need: "optional" }),
  spec({ key: "script.db.failure", field: "scriptDbFailure", type: absolutePath, need: "optional" }),
  spec({
    key: "script.master.isolated",
    field: "scriptMasterIsolated",
    type: absolutePath,
    need: "optional",
    aliases: ["script.primary.isolated"],
  }),
  spec({ key: "script.notification", field: "scriptNotification", type: absolutePath, need: "optional" }),
  spec({
    key: "script.timeout",
    field: "scriptTimeout",
    type: int(1, 86_400),
    need: "optional",
    default: 60,
  }),
  spec({
    key: "jgroups.loglevel",
    field: "jgroupsLoglevel",
    type: logLevel,
    need: "optional",
    default: "INFO",
  }),
  spec({ key: "efm.loglevel", field: "efmLoglevel", type: logLevel, need: "optional", default: "INFO" }),
  spec({
    key: "notification.smtp.host",
    field: "notificationSmtpHost",
    type: host,
    need: "optional",
    default: "localhost",
  }),
  spec({
    key: "notification.smtp.port",
    field: "notificationSmtpPort",
    type: port,
    need: "optional",
    default: 25,
  }),
  spec({ key: "from.email", field: "fromEmail", type: email, need: "optional" }),
  spec({
    key: "notification.level",
    field: "notificationLevel",
    type: notificationLevel,
    need: "optional",
    default: "INFO",
  }),
  spec({ key: "notification.text.prefix", field: "notificationTextPrefix", type: text, need: "optional" }),
  spec({ key: "lock.dir", field: "lockDir", type: absolutePath, need: "optional" }),
  spec({ key: "log.dir", field: "logDir", type: absolutePath, need: "optional" }),
  spec({ key: "run.dir", field: "runDir", type: absolutePath, need: "optional" }),
  spec({ key: "state.dir", field: "stateDir", type: absolutePath, need: "optional" }),
  spec({
    key: "watchdog.mode",
    field: "watchdogMode",
    type: watchdogMode,
    need: "optional",
    default: "automatic",
  }),
  spec({
    key: "watchdog.device",
    field: "watchdogDevice",
    type: absolutePath,
    need: "optional",
    default: "/dev/watchdog",
  }),
  spec({
    key: "watchdog.safety.margin",
    field: "watchdogSafetyMargin",
    type: int(0, 3_600_000),
    need: "optional",
    default: 2000,
  }),
  spec({
    key: "synchronous.mode",
    field: "synchronousMode",
    type: synchronousMode,
    need: "optional",
    default: "off",
  }),
  spec({
    key: "switchover.max.lag.bytes",
    field: "switchoverMaxLagBytes",
    // Up to 1 TiB: past that a switchover is a long outage, not a pause.
    type: int(0, 1024 ** 4),
    need: "optional",
    default: 16 * 1024 * 1024,
  }),
];

/** The virtual IP keys (with later EFM spellings); validated together. */
export const VIP_KEYS = {
  address: ["virtualIp", "virtual.ip"],
  interface: ["virtualIp.interface", "virtual.ip.interface"],
  netmask: ["virtualIp.netmask"],
  prefix: ["virtual.ip.prefix"],
} as const;

/** Accepted for compatibility and ignored: this software needs no licence. */
export const IGNORED_KEYS = ["efm.license"] as const;

/** Properties replaced in EFM 2.0 (guide section 9), with what replaced them. */
export const REPLACED_KEYS: Readonly<Record<string, string>> = {
  "cluster.name": "the cluster name is now the base name of the properties file (<cluster>.properties)",
  "db.reuse.connection": "db.reuse.connection.count (0 means a new connection for every check)",
  agents: "bind.address and the cluster members file <cluster>.nodes",
  witness: "is.witness",
};

/** Convert a dotted netmask to a prefix length; null unless the ones are contiguous. */
export function netmaskToPrefix(mask: string): number | null {
  if (isIP(mask) !== 4) return null;
  const n = mask.split(".").reduce((acc, o) => acc * 256 + Number(o), 0);
  let prefix = 0;
  while (prefix < 32 && n & (2 ** (31 - prefix))) prefix++;
  const expected = prefix === 0 ? 0 : (2 ** 32 - 2 ** (32 - prefix)) >>> 0;
  return n >>> 0 === expected ? prefix : null;
}

/** Convert a prefix length to a dotted IPv4 netmask. */
export function prefixToNetmask(prefix: number): string {
  const n = prefix === 0 ? 0 : (2 ** 32 - 2 ** (32 - prefix)) >>> 0;
  return [24, 16, 8, 0].map((s) => (n >>> s) & 255).join(".");
}
