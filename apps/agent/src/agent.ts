import { appendFileSync, mkdirSync, realpathSync } from "node:fs";
import { hostname } from "node:os";
import { resolve as resolvePath } from "node:path";
import {
  type DbConnectionOptions,
  DbSession,
  type FailureCode,
  PgChecker,
  readFacts,
  remoteCheck,
  setSynchronousStandbyNames,
  synchronousStandbyNames,
  walReceiverName,
} from "@efm/db-probe";
import {
  type FailoverConfig,
  holdsMasterDb,
  initialState,
  type LocalFailure,
  pastFork,
  type Reachability,
  type ScriptKind,
  snapshot,
  step,
} from "@efm/failover-core";
import {
  createMember,
  deriveTiming,
  hostOf,
  type Member,
  type MemberEvent,
  type PersistedState,
  quietAfter,
} from "@efm/membership";
import { clusterLogSink, createNotifier, emailSink, type Notifier, scriptSink } from "@efm/notifier";
import { decrypt, PasswordCryptoError } from "@efm/password-crypto";
import {
  type EfmConfig,
  formatHostPort,
  formatProblem,
  PropertiesError,
  readConfig,
  readNodes,
  tlsSettings,
  writeFileAtomic,
} from "@efm/properties-parser";
import {
  check,
  factMismatches,
  fence,
  HelperClient,
  promote,
  reconfigure,
  REJOIN_MIN_SECONDS,
  rejoin,
  runUserScript,
  type ScriptEvent,
  vipUnknown,
} from "@efm/scripts-runner";
import { assign, isHeldLocally, release, startSpawner } from "@efm/vip";
import type { Logger } from "pino";
import { adminHandler } from "./admin/handler.ts";
import { newToken, startAdminServer, writeTokenFile } from "./admin/server.ts";
import { agentFiles, resolveDirs } from "./dirs.ts";
import { AgentError } from "./errors.ts";
import { acquireLock, type LockHandle } from "./lock.ts";
import { localPromotable, promoteLocalDb } from "./local-session.ts";
import { LocalDbWatch } from "./local-watch.ts";
import { pingWithin } from "./ping.ts";
import { type AgentLoggers, createLoggers } from "./logging.ts";
import { createObservation, type HttpServer, startHttpServer } from "./http/server.ts";
import { failoverStateText, readFailoverState } from "./failover-state.ts";
import { DurableFile } from "./durable-file.ts";
import { EventLoop, type Executors } from "./loop.ts";
import { checkPropertiesMode, loadClusterKey } from "./cluster-key.ts";
import { readAgentState, readMembershipState, rewriteMembersFile } from "./state.ts";
import { queryDatabases } from "./status-report.ts";
import { packageVersion } from "./version.ts";
import { HardwareWatchdog } from "./watchdog/index.ts";

/** How to start an agent: the cluster name and where its files are. */
export interface AgentOptions {
  cluster: string;
  configDir: string;
  env: NodeJS.ProcessEnv;
  /** Also print readable log lines here (a terminal). */
  tty?: NodeJS.WritableStream;
  /**
   * `start --bootstrap`: with no saved membership state, found a new cluster when none answers
   * even though the local database is not a primary (a witness or standby started first).
   */
  bootstrap?: boolean;
}

/** A running agent; `done` resolves with the exit code when it has stopped. */
export interface RunningAgent {
  done: Promise<number>;
  /**
   * Resolves once the agent has joined the cluster and its start-up checks (guide 4.1.1) ended:
   * what `systemctl start` and `efm-agent start --wait` wait for. Never resolves when the agent
   * exits during start-up; `done` does then, and `startFailure()` says why.
   */
  ready: Promise<void>;
  /** Why the agent exited before it was ready, or null. */
  startFailure(): string | null;
  /** Leave the cluster cleanly and exit (SIGTERM). */
  shutdown(): void;
}

const SCRIPT_EVENT: Record<ScriptKind, ScriptEvent> = {
  fence: "fence",
  postPromotion: "post.promotion",
  dbFailure: "db.failure",
  masterIsolated: "master.isolated",
};

const LOCAL_FAILURE: Partial<Record<FailureCode, LocalFailure>> = {
  REFUSED: "refused",
  TIMEOUT: "timeout",
  INVALID_PASSWORD: "authentication",
  INVALID_AUTHORIZATION: "authentication",
  MAX_CONNECTIONS: "tooManyConnections",
  NOT_ACCEPTING: "notAccepting",
};

/** Load and check everything a start needs; any problem is one AgentError naming it. */
function loadConfig(opts: AgentOptions): { config: EfmConfig; seeds: string[]; problems: string[] } {
  const propertiesPath = `${opts.configDir}/${opts.cluster}.properties`;
  const nodesPath = `${opts.configDir}/${opts.cluster}.nodes`;
  try {
    // The same checks as efm prop-check, but what only this host can prove is an error here.
    const r = readConfig(propertiesPath, { hostFacts: "errors" });
    const n = readNodes(nodesPath);
    const errors = [...r.errors, ...n.errors];
    if (!r.config || errors.length > 0) {
      throw new AgentError("CONFIG_INVALID", errors.map(formatProblem).join("\n"));
    }
    return {
      config: r.config,
      seeds: n.nodes.map(formatHostPort),
      problems: [...r.warnings, ...n.warnings].map(formatProblem),
    };
  } catch (err) {
    if (err instanceof PropertiesError) throw new AgentError("CONFIG_INVALID", err.message, { cause: err });
    throw err;
  }
}

/** The engine's configuration from the properties and the membership timers. */
function failoverConfig(
  cluster: string,
  self: string,
  c: EfmConfig,
  member: Member,
  lists: { allowed: string[]; priority: string[] },
): FailoverConfig {
  const t = member.timing;
  return {
    self,
    clusterName: cluster,
    isWitness: c.isWitness,
    autoFailover: c.autoFailover,
    autoReconfigure: c.autoReconfigure,
    virtualIp: c.virtualIp?.address ?? null,
    pingServer: c.pingServerIp,
    scripts: {
      fence: c.scriptFence ?? null,
      postPromotion: c.scriptPostPromotion ?? null,
      dbFailure: c.scriptDbFailure ?? null,
      masterIsolated: c.scriptMasterIsolated ?? null,
    },
    localPeriodMs: c.localPeriod * 1000,
    localTimeoutMs: c.localTimeout * 1000,
    localTimeoutFinalMs: c.localTimeoutFinal * 1000,
    remoteTimeoutMs: c.remoteTimeout * 1000,
    leaseMs: t.lease,
    takeoverMarginMs: t.driftMargin,
    messageSlackMs: Math.max(2000, c.jgroupsTimeout),
    // A promotion runs the fence script, pg_ctl promote (bounded by local.timeout), the VIP
    // and the post-promotion script: give the candidate that long before giving up on it.
    promotionTimeoutMs: (2 * c.scriptTimeout + c.localTimeout) * 1000 + 30_000,
    switchoverMaxLagBytes: c.switchoverMaxLagBytes,
    // A witness too: it passes the published synchronous set on and may coordinate a failover.
    synchronousMode: c.synchronousMode,
    allowed: lists.allowed,
    priority: lists.priority,
  };
}

/** Build the notifier's sinks from the properties. */
function buildNotifier(
  cluster: string,
  c: EfmConfig,
  clusterLogPath: string,
  self: string,
  log: Logger,
): Notifier {
  const from = c.fromEmail ?? `efm@${hostname()}`;
  const sinks = [
    clusterLogSink({ path: clusterLogPath }),
    emailSink({
      host: c.notificationSmtpHost,
      port: c.notificationSmtpPort,
      from,
      recipients: c.userEmail,
      minSeverity: c.notificationLevel,
    }),
    ...(c.scriptNotification
      ? [
          scriptSink({
            path: c.scriptNotification,
            minSeverity: c.notificationLevel,
            timeoutMs: c.scriptTimeout * 1000,
          }),
        ]
      : []),
  ];
  return createNotifier({
    context: {
      nodeAddress: self,
      clusterName: cluster,
      databaseName: c.dbDatabase,
      vipEnabled: c.virtualIp !== undefined,
      ...(c.notificationTextPrefix ? { textPrefix: c.notificationTextPrefix } : {}),
    },
    sinks,
    logger: log.child({ component: "notifier" }),
  });
}

/**
 * Start an agent for one cluster: validate the files, decrypt the password, take the lock,
 * join the cluster and run the failover engine until it exits.
 */
export async function startAgent(opts: AgentOptions): Promise<RunningAgent> {
  const { cluster } = opts;
  let loaded: ReturnType<typeof loadConfig>;
  try {
    loaded = loadConfig(opts);
  } catch (err) {
    // No valid log.dir yet: the startup log goes where the environment or the default says,
    // so that `startup-<cluster>.log` explains a failed start as the guide promises.
    const logDir = resolveDirs({}, opts.env).logDir;
    try {
      mkdirSync(logDir, { recursive: true });
      appendFileSync(
        `${logDir}/startup-${cluster}.log`,
        `${new Date().toISOString()} SEVERE cannot start cluster ${cluster}:\n${(err as Error).message}\n`,
      );
    } catch {
      // The message still reaches stderr through the caller.
    }
    throw err;
  }
  const { config: c, seeds, problems } = loaded;
  const dirs = resolveDirs(c, opts.env);
  const files = agentFiles(dirs, cluster);
  const logs: AgentLoggers = createLoggers({
    cluster,
    node: formatHostPort(c.bindAddress),
    logFile: files.log,
    startupFile: files.startupLog,
    efmLevel: c.efmLoglevel,
    jgroupsLevel: c.jgroupsLoglevel,
    ...(opts.tty ? { tty: opts.tty } : {}),
  });
  const log = logs.efm;
  const startup = logs.startup;
  for (const p of problems) startup.warn(p);
  // `cluster` is on every line already (createLoggers).
  startup.info({ configDir: opts.configDir, dirs }, `starting agent for cluster ${cluster}`);

  let password: string;
  try {
    password = decrypt(c.dbPasswordEncrypted, cluster);
  } catch (err) {
    if (err instanceof PasswordCryptoError) {
      startup.error(`db.password.encrypted: ${err.message}`);
      logs.flush();
      throw new AgentError("PASSWORD", `db.password.encrypted: ${err.message}`, { cause: err });
    }
    throw err;
  }

  let lock: LockHandle;
  try {
    lock = acquireLock(files.lock);
  } catch (err) {
    startup.error((err as Error).message);
    logs.flush();
    throw err;
  }
  // The thread that starts pingServerCommand and `ip addr` boots now, not at the first failover.
  startSpawner();

  const self = formatHostPort(c.bindAddress);
  const selfHost = c.bindAddress.host;
  // The failover engine's record (last master, promotion epoch, rebuild flag) survives restarts.
  let record: ReturnType<typeof readFailoverState>;
  try {
    record = readFailoverState(files.failover);
  } catch (err) {
    startup.error((err as Error).message);
    lock.release();
    logs.flush();
    throw err;
  }
  // A missing state file is a first start; an unreadable or corrupt one stops the start.
  let saved: ReturnType<typeof readAgentState>;
  let persisted: PersistedState | null;
  let clusterKey: Buffer;
  /** Repeated by `efm cluster-status`: what weakens this cluster's security. */
  const securityWarnings: string[] = [];
  try {
    saved = readAgentState(files.state);
    persisted = readMembershipState(files.membership);
    const modes = checkPropertiesMode(`${opts.configDir}/${cluster}.properties`);
    if (modes.error) throw new AgentError("CONFIG_INVALID", modes.error);
    if (modes.warning) startup.warn(modes.warning);
    // The cluster secret if there is one; else the password, stretched, with a warning.
    const k = loadClusterKey(opts.configDir, cluster, password);
    clusterKey = k.key;
    if (k.warning) {
      startup.warn(k.warning);
      log.warn(k.warning);
      securityWarnings.push(k.warning);
    }
  } catch (err) {
    startup.error((err as Error).message);
    lock.release();
    logs.flush();
    throw err;
  }
  // With no saved voter set, only the primary's agent (or an operator's bootstrap) founds a new
  // cluster when none answers; any other agent waits to join one (packages/membership README).
  let localPrimary = false;
  const member = createMember({
    mayFoundAlone: () => localPrimary || opts.bootstrap === true,
    bindAddress: self,
    clusterName: cluster,
    dbPassword: password,
    clusterKey,
    timeout: c.jgroupsTimeout,
    maxTries: c.jgroupsMaxTries,
    // memberQuiet at the window less remote.timeout: every agent's direct check of a silent
    // master's database (failover-core quiet.master) has answered when the window ends.
    quietAfter: quietAfter(deriveTiming(c.jgroupsTimeout, c.jgroupsMaxTries), c.remoteTimeout * 1000),
    seeds,
    // A new cluster admits this host and the hosts of the members file; later nodes need
    // `efm add-node` first, as in guide 4.1.2.
    initialAllowed: [...new Set([selfHost, ...seeds.map(hostOf)])],
    persisted,
    logger: logs.jgroups,
    // On disk before any acknowledgement that depends on it goes out; a failed write stops the
    // member instead (persistFailed below).
    persist: (state) => writeFileAtomic(files.membership, `${JSON.stringify(state)}\n`, 0o640),
  });

  const notifier = buildNotifier(cluster, c, files.clusterLog, selfHost, log);
  const db = (host: string): DbConnectionOptions => ({
    host,
    port: c.dbPort,
    user: c.dbUser,
    password,
    database: c.dbDatabase,
    // jdbc.sslmode & co., resolved per connection as libpq does (a root.crt put in ~/.postgresql
    // later is used by the next connection).
    ssl: tlsSettings(c),
  });
  const localChecker = c.isWitness
    ? null
    : new PgChecker(db(selfHost), { reuseCount: c.dbReuseConnectionCount });
  // One kept connection for this agent's own questions to its database on the failover path
  // (role, positions, promotability, pg_promote): a fresh connection costs a fork and an
  // authentication, seconds on a loaded server (issue 15). Opened at first use.
  const localSession = c.isWitness
    ? null
    : new DbSession({ ...db(selfHost), applicationName: "efm session" });
  const closeLocalDb = () => Promise.all([localChecker?.close(), localSession?.close()]);
  // The monitoring connection (issue 15): a lost local database is seen when it happens, and
  // the engine's periodic check is brought forward so the guide's confirmation starts now.
  const localWatch = c.isWitness
    ? null
    : new LocalDbWatch({
        conn: db(selfHost),
        finalTimeoutMs: c.localTimeoutFinal * 1000,
        periodMs: c.localPeriod * 1000,
        log,
        onLoss: () => {
          const s = loop.current;
          // Only while the engine monitors its database and no check runs: a check in flight
          // fails by itself, and a reported failure already waits for its verdict.
          const monitoring = s.phase === "running" && (s.role === "Master" || s.role === "Standby");
          if (monitoring && s.local.token === null && !s.local.reported)
            loop.dispatch({ type: "timer", name: "localCheck", now: member.now() });
        },
      });
  // The privileged helper takes only the cluster name: the data directory, db.bin, the owner
  // and the connection it reads itself from the root-owned properties file (issue 18). It is
  // started once here and answers every request over a pipe, so a failover starts no process
  // (issue 15); it reaches the database exactly as the monitor does (bind.address, db.port,
  // db.user, db.password.encrypted, the jdbc.ssl* settings).
  // Whether pg_rewind could rewind this database (issue 16): from the start-up check below.
  let rewindable: boolean | null = null;
  const helper = new HelperClient(
    {
      cluster,
      configDir: resolvePath(opts.configDir),
      ...(c.dbServiceOwner ? { owner: c.dbServiceOwner } : {}),
    },
    (level, message) => (level === "warn" ? log.warn(message) : log.info(message)),
  );
  if (!c.isWitness) {
    // Guide 4.1.1: the agent connects to its local database first. A server that answers and
    // refuses our credentials (password, pg_hba.conf, db.database) is a configuration error the
    // operator must see now, in the server's own words, with the address:port we tried; a
    // database that is not answering at all is left to the helper check below.
    const own = await remoteCheck(db(selfHost), c.localTimeout * 1000);
    localPrimary = own.ok && !own.inRecovery;
    const ownFailure = own.ok
      ? null
      : `cannot connect to the local database at ${formatHostPort({ host: selfHost, port: c.dbPort })} as db.user=${c.dbUser} (db.database=${c.dbDatabase}): ${own.failure.message}`;
    if (
      !own.ok &&
      ["INVALID_PASSWORD", "INVALID_AUTHORIZATION", "DATABASE_MISSING"].includes(own.failure.code)
    ) {
      startup.error(ownFailure!);
      logs.flush();
      await closeLocalDb().catch(() => {});
      lock.release();
      throw new AgentError("DATABASE", ownFailure!);
    }
    /** What this agent read that the helpers read again from root's file (compared below). */
    const ownFacts = {
      propertiesFile: `${opts.configDir}/${cluster}.properties`,
      dataDir: c.dbDataDir ?? c.dbRecoveryConfDir ?? "",
      bin: c.dbBin ?? "",
      vip: c.virtualIp
        ? { address: c.virtualIp.address, interface: c.virtualIp.interface, prefix: c.virtualIp.prefix }
        : null,
    };
    // Guide 4.1.1: a node whose agent starts must be able to promote and fence. Run the helper
    // over exactly the path a promotion takes (elevation, data directory, pg_ctl, its SQL
    // connection) before joining, and refuse to start when it fails.
    try {
      const started = await helper.start();
      if (started.persistent) {
        startup.info({ helper: started.ready }, "long-lived privileged helper started");
        // Through sudo the helper always reads /etc/efm: an agent started with another
        // --config-dir would have its database run on facts it never read.
        const mine = realpathSync(`${opts.configDir}/${cluster}.properties`);
        // Issue 18: the helpers act on what root's file names (efm-address reads its VIP from
        // the same file the helper reports), never on what we say; two files that disagree
        // would have us watch one database or address while they act on another.
        const differ = factMismatches(
          {
            propertiesFile: started.ready.properties,
            dataDir: started.ready.dataDir,
            bin: started.ready.bin ?? ownFacts.bin,
            ...(started.ready.vip !== undefined ? { vip: started.ready.vip } : {}),
          },
          { ...ownFacts, propertiesFile: mine },
        );
        if (differ.length > 0) {
          throw new AgentError(
            "HELPER_CHECK",
            `root's properties file and this agent's disagree, so the helpers would act on other facts than this agent checks: ${differ.join("; ")}`,
          );
        }
        if (started.ready.properties !== mine) {
          throw new AgentError(
            "HELPER_CHECK",
            `the helper reads ${started.ready.properties}, but this agent reads ${mine}: through sudo the helper reads /etc/efm only; keep the cluster's files there`,
          );
        }
      } else {
        startup.warn(
          `long-lived privileged helper not started, one process per request instead: ${started.why}`,
        );
        const unknown = vipUnknown(ownFacts, started.why);
        if (unknown !== null) startup.warn(unknown);
      }
      const r = await check(helper);
      startup.info({ actions: r.actions }, "privileged helper check passed");
      rewindable = sayRewindable(r.rewindable, c, startup, log);
    } catch (err) {
      const why = `the privileged helper cannot do what a promotion needs: ${(err as Error).message}${ownFailure ? `; ${ownFailure}` : ""}`;
      startup.error(why);
      logs.flush();
      await helper.close();
      await closeLocalDb().catch(() => {});
      lock.release();
      throw new AgentError("HELPER_CHECK", why, { cause: err });
    }
  }
  const vip = c.virtualIp;
  // Not root: the VIP goes through efm-address (sudo), which takes the address, interface and
  // netmask from the root-owned properties file itself, never from us (issue 18). Root may
  // call ip directly.
  const vipOptions = process.geteuid?.() === 0 ? {} : { helper: { cluster } };
  const pingCommand = c.pingServerCommand.join(" ");
  const pendingReplies = new Map<string, (r: { ok: boolean; message: string }) => void>();
  // A failed write is logged loudly: a restart would forget the last master, that this database
  // must be rebuilt, or the allowed and priority lists.
  const failoverFile = new DurableFile(files.failover, 0o640, (err) =>
    log.error({ err }, `cannot write the failover state file ${files.failover}`),
  );
  const stateFile = new DurableFile(files.state, 0o640, (err) =>
    log.error({ err }, `cannot write the state file ${files.state}: ${err.message}`),
  );

  let resolveDone: (code: number) => void = () => {};
  const done = new Promise<number>((r) => {
    resolveDone = r;
  });
  let exiting = false;
  let isReady = false;
  let startFailure: string | null = null;
  let resolveReady: () => void = () => {};
  const ready = new Promise<void>((r) => {
    resolveReady = r;
  });
  // The last failed check of each member's database, to say why a start-up check failed with
  // the database's address:port and its own words (the engine names the member's agent address).
  const dbFailures = new Map<string, string>();
  const lastRoles = new Map<string, string>();
  let loop: EventLoop;
  let http: HttpServer | null = null;

  const exec: Executors = {
    send: (to, message) => member.send(to, message),
    checkLocalRole: async () => {
      if (!localSession) return "unreachable";
      try {
        const r = await localSession.run(c.localTimeout * 1000, (q) =>
          q<{ rec: boolean }>("SELECT pg_is_in_recovery() AS rec"),
        );
        return r.rows[0]?.rec === true ? "recovery" : r.rows[0]?.rec === false ? "primary" : "unreachable";
      } catch {
        return "unreachable";
      }
    },
    checkLocalDb: async (timeoutMs) => {
      if (!localChecker) return { ok: true };
      const checker = localChecker;
      // A loss the monitoring connection saw answers a regular check of a monitored database at
      // once; never the final one, and never an Idle agent's (an `efm resume` check), which must
      // see the database as it is now: the operator may have restarted it since the loss.
      const r =
        localWatch && loop.current.role !== "Idle"
          ? await localWatch.check(() => checker.check(timeoutMs), loop.current.local.final)
          : await checker.check(timeoutMs);
      // The database answers: have the failover path's session open before it is needed (at
      // start, and again after a restart ended it), so no failover waits for a new connection.
      if (r.ok && localSession && !localSession.connected) localSession.connect(timeoutMs).catch(() => {});
      if (r.ok) return { ok: true };
      log.warn(
        { failure: r.failure.code, detail: r.failure.detail },
        `local database check failed: ${r.failure.message}`,
      );
      return { ok: false, failure: LOCAL_FAILURE[r.failure.code] ?? "timeout" };
    },
    checkRemoteDb: async (target, timeoutMs, asMaster): Promise<Reachability> => {
      const r = await remoteCheck(db(hostOf(target)), timeoutMs);
      if (r.ok) return asMaster && r.inRecovery ? "unreachable" : "reachable";
      dbFailures.set(
        target,
        `${formatHostPort({ host: hostOf(target), port: c.dbPort })}: ${r.failure.message}`,
      );
      log.info(
        { target, failure: r.failure.code },
        `database of ${target} not reachable: ${r.failure.message}`,
      );
      // Answered but refused us (password, limits): the server is up, we just cannot use it.
      const answered = ["INVALID_PASSWORD", "INVALID_AUTHORIZATION", "MAX_CONNECTIONS", "DATABASE_MISSING"];
      return answered.includes(r.failure.code) ? "unknown" : "unreachable";
    },
    queryLsn: async () => {
      const f = await readFacts(localSession ?? db(selfHost), c.remoteTimeout * 1000);
      // The timeline is known only while a WAL receiver runs (pg_stat_wal_receiver); streaming
      // means the upstream accepted this database's history (a resumed ex-master proves with it
      // that it was rewound or re-cloned).
      return {
        lsn: f.position?.toString() ?? null,
        timeline: f.walReceiver?.receivedTimeline ?? null,
        streaming: f.walReceiver?.status === "streaming",
        // A switchover promotes its target only once it replayed past the master's last record.
        replayed: f.replayLsn?.toString() ?? null,
        // A failover ranks a standby only once it no longer streams from the stopped old master.
        upstream: f.walReceiver?.senderHost ?? null,
      };
    },
    // pingServerCommand bounded by remote.timeout: a reply within it answers (./ping.ts).
    ping: (address) => pingWithin(address, pingCommand, c.remoteTimeout * 1000),
    runScript: async (kind, path) => {
      const known = snapshot(loop.current);
      const r = await runUserScript(
        SCRIPT_EVENT[kind],
        path,
        {
          cluster,
          node: selfHost,
          ...(known.promoting ? { newMaster: hostOf(known.promoting) } : {}),
          ...(vip ? { vip: vip.address } : {}),
        },
        { timeoutMs: c.scriptTimeout * 1000 },
      );
      const output = `${r.stdout}${r.stderr}`.trim();
      return { exitCode: r.exitCode ?? (r.timedOut ? 124 : 128), output };
    },
    checkPromotable: async () => {
      // The candidate's half of "can this standby be promoted" before any master is fenced for
      // it, over the path the promotion itself takes: SQL over the session where pg_promote
      // would promote, else the helper, as db.service.owner (./local-session.ts).
      if (!localSession) return { ok: false, error: "a witness has no database to promote" };
      return localPromotable(
        localSession,
        c.localTimeout * 1000,
        formatHostPort({ host: selfHost, port: c.dbPort }),
        () => check(helper, { role: "standby" }),
      );
    },
    promoteDb: async (fork) => {
      // pg_promote() over the session where db.user may run it; pg_ctl through the helper otherwise.
      if (!localSession) throw new AgentError("DATABASE", "a witness has no database to promote");
      if (fork) {
        // Invariant 'diverged': WAL received since the coordinator ranked us (from a master the
        // cluster gave up) must not carry us past the newer timeline's fork. The timeline is known
        // only while the WAL receiver runs; what arrives between this read and the promote is not seen.
        const f = await readFacts(localSession, c.localTimeout * 1000);
        const lsn = f.position?.toString() ?? null;
        const timeline = f.walReceiver?.receivedTimeline ?? null;
        if (lsn !== null && pastFork(fork, timeline, lsn))
          throw new AgentError(
            "DATABASE",
            `not promoted: WAL at ${lsn} on timeline ${timeline} is past the fork of a newer timeline off timeline ${fork.parent}${fork.lsn ? ` at ${fork.lsn}` : ""}`,
          );
      }
      await promoteLocalDb(
        localSession,
        c.localTimeout,
        () => promote(helper, { timeoutSeconds: c.localTimeout }),
        log,
      );
    },
    fenceDb: async (newMaster, clean) => {
      // Fenced means stopped and confirmed down (no server process of the data directory, its
      // port refused), with the recovery settings written: the helper does all of it or rejects
      // with why (dbFenced ok:false). A hung server (SIGSTOP'd) is SIGKILLed, so it cannot wake
      // up writable. With no new master known (isolation) primary_conninfo is empty: never our
      // own address. The replication user is db.user (no property names another), its password
      // in the passfile.
      // Only a manual switchover (4.1.4) naming the new master starts the database again, in
      // recovery following it, after a fast stop that hands the standbys every record; an
      // isolated, failed or hung database, or a retried fence, stays down.
      const switchover = loop.current.selfFence?.purpose === "switchover" && newMaster !== null;
      const r = await fence(helper, newMaster ? hostOf(newMaster) : null, {
        timeoutSeconds: c.localTimeout,
        stop: switchover ? "fast" : "immediate",
        after: switchover ? "standby" : "down",
      });
      log.info(
        { actions: r.actions, primaryConninfo: r.primaryConninfo, durationMs: Math.round(r.durationMs) },
        switchover
          ? `database fenced and started again in recovery${r.finalLsn ? ` (shut down cleanly at ${r.finalLsn})` : ""}`
          : "database fenced: stopped and confirmed down",
      );
      // `efm promote -switchover`: the shutdown checkpoint's position, when it shut down cleanly.
      return clean && r.finalLsn !== undefined ? { finalLsn: r.finalLsn } : undefined;
    },
    rejoinDb: async (newMaster) => {
      // A fenced old master (or, with db.rewind=on, a standby past the fork) back as a standby of
      // the running master: the helper stops it, rewinds it (or re-clones it when allowed),
      // writes the standby settings, starts it and confirms it streams; else it rejects saying
      // why, and the engine keeps this node Idle. Whether a base backup is allowed, the
      // rewind's source role and its bound the helper reads from root's properties (issue 18);
      // ours, the same file's values, only bounds how long we wait.
      const r = await rejoin(helper, hostOf(newMaster), {
        timeoutSeconds: Math.max(c.localTimeout, REJOIN_MIN_SECONDS),
      });
      log.info(
        {
          actions: r.actions,
          method: r.method,
          movedAside: r.movedAside,
          durationMs: Math.round(r.durationMs),
        },
        `database rejoined as a standby of ${hostOf(newMaster)} (${r.method})`,
      );
      return r.method === undefined ? undefined : { method: r.method };
    },
    setSyncStandbys: async (standbys) => {
      // synchronous.mode: each standby is named as its WAL receiver names itself to us (its
      // application_name, else its cluster_name, else "walreceiver"), read from its own database.
      // A standby whose name cannot be read now is left out (counting fewer standbys is safe: the
      // published set still holds them all); with none readable the setting fails and is retried.
      let names = ["*"];
      if (!standbys.includes("*")) {
        const read = await Promise.allSettled(
          standbys.map((a) => walReceiverName(db(hostOf(a)), c.remoteTimeout * 1000)),
        );
        names = read.flatMap((r) => (r.status === "fulfilled" ? [r.value] : []));
        read.forEach((r, i) => {
          if (r.status === "rejected")
            log.warn(
              { standby: standbys[i] },
              `synchronous_standby_names leaves out ${standbys[i]}: ${(r.reason as Error).message}`,
            );
        });
        if (standbys.length > 0 && names.length === 0)
          throw new AgentError("DATABASE", "no standby's WAL receiver name could be read");
      }
      const value = synchronousStandbyNames(names);
      await setSynchronousStandbyNames(db(selfHost), value, c.localTimeout * 1000);
      log.info({ standbys, value }, `synchronous_standby_names set to '${value}'`);
    },
    reconfigureDb: async (newMaster) => {
      const r = await reconfigure(helper, hostOf(newMaster), { timeoutSeconds: c.localTimeout });
      log.info({ actions: r.actions, primaryConninfo: r.primaryConninfo }, "database reconfigured");
    },
    assignVip: async (address) => {
      if (!vip) return { ok: false, output: "no virtual IP is configured" };
      // The address answers once assigned: the gratuitous ARP's 2 s run on (@efm/vip onAnnounced).
      const r = await assign(vip.interface, address, String(vip.prefix), {
        ...vipOptions,
        onAnnounced: (o) => {
          if (typeof o === "object")
            log.warn(`${address} assigned, but the gratuitous ARP failed: ${o.failed}`);
        },
      });
      return {
        ok: true,
        output: r.changed ? `assigned ${address}/${r.prefix} to ${r.device}` : "already assigned",
      };
    },
    releaseVip: async (address) => {
      if (!vip) return { ok: true, output: "no virtual IP is configured" };
      const changed = await release(vip.interface, address, vipOptions);
      return { ok: true, output: changed ? `released ${address}` : "was not assigned here" };
    },
    notify: (action) => {
      const snap = snapshot(loop.current);
      // The engine names agents by `ip:port`; notifications name nodes by address, as EFM does.
      const known = new Set([self, ...member.config().voters, ...(member.view()?.members ?? [])]);
      const params = Object.fromEntries(
        Object.entries(action.params).map(([k, v]) => [
          k,
          typeof v === "string" && known.has(v) ? hostOf(v) : v,
        ]),
      );
      notifier.notify(
        { ...action, params } as typeof action,
        snap.members.map((m) => ({
          role: m.role ?? "Unknown",
          address: hostOf(m.address),
          agent: m.agent,
          db: m.db,
        })),
      );
    },
    persist: (state) => {
      // Atomic and fsync'd off the event loop (DurableFile); the engine does not wait for it.
      void failoverFile.write(failoverStateText(state));
    },
    writeState: (allowed, priority) => {
      void stateFile.write(`${JSON.stringify({ allowed, priority }, null, 2)}\n`);
    },
    respond: (requestId, ok, message) => {
      // A change is acknowledged only once it is on disk: after a failed write the answer is a
      // refusal that says so, not a success this node would forget at its next start.
      void stateFile.settled().then((err) => {
        const reply =
          ok && err
            ? {
                ok: false,
                message: `${message}, but cannot write the state file ${files.state}: ${err.message}: this node will not remember the change after a restart`,
              }
            : { ok, message };
        pendingReplies.get(requestId)?.(reply);
        pendingReplies.delete(requestId);
      });
    },
    exit: (code, reason) => {
      void finish(code, reason);
    },
  };

  // watchdog.mode: a master's host is reset if its agent stops feeding the device (frozen,
  // hung, lease lost without stepping down); fenceDb is guarded so the device stays armed until
  // the fence succeeded. See ./watchdog/ and docs/architecture.md.
  const hw = new HardwareWatchdog({
    mode: c.isWitness ? "off" : c.watchdogMode,
    device: c.watchdogDevice,
    timing: {
      leaseMs: member.timing.lease,
      takeoverMarginMs: member.timing.driftMargin,
      heartbeatMs: member.timing.heartbeatInterval,
      safetyMarginMs: c.watchdogSafetyMargin,
    },
    now: () => member.now(),
    leaseUntil: () => member.leaseUntil(),
    // Armed only once the agent runs in the role: during start-up the role is tentative (a
    // primary found at start may yet go Idle), no lease is held, so nothing could feed it.
    // An Idle agent still holding the cluster's master database (it left the role without
    // fencing, guide 8.1) is guarded as a master: frozen there, it would fence nothing.
    role: () =>
      loop.current.phase !== "running" ? null : holdsMasterDb(loop.current) ? "Master" : loop.current.role,
    fencePending: () => loop.current.selfFence !== null || loop.current.fenceUnconfirmed,
    log,
    // As on a lost lease: a master without the required watchdog fences itself and goes Idle.
    onUnavailable: () => loop.membership({ type: "leaseLost" }),
  });
  exec.fenceDb = hw.guardFence(exec.fenceDb);

  // The engine names members `ip:port` (as membership does), in the allowed list too: a list of
  // bare hosts would never match a member, and no standby would enter the priority list.
  const lists = saved ?? { allowed: [...new Set([self, ...seeds])], priority: [] };
  // Metrics and the status page watch the engine's steps and time the executors, changing neither.
  const { registry, observer } = createObservation();
  loop = new EventLoop(
    initialState({
      ...failoverConfig(cluster, self, c, member, lists),
      ...(record ? { persisted: record } : {}),
      // Issue 16: a witness has no database to rejoin.
      ...(c.isWitness
        ? {}
        : {
            rejoin: {
              auto: c.autoRejoin,
              rewindStandbys: c.dbRewind === "on",
              basebackup: c.dbRejoinBasebackup,
              rewindable,
            },
          }),
    }),
    watchReadiness(
      onRoleChange(observer.observeStep(step), () => hw.tick()),
      () => {
        if (isReady) return;
        isReady = true;
        startup.info(`agent for cluster ${cluster} is ready: joined the cluster and checked its databases`);
        logs.flush();
        resolveReady();
      },
    ),
    observer.instrument(exec),
    log,
    () => member.now(),
  );
  logs.follow(() => loop.current);

  /** Stop everything once; the engine's exit action or a signal gets here. */
  async function finish(code: number, reason: string, how: "leave" | "stop" = "leave"): Promise<void> {
    if (exiting) return;
    exiting = true;
    if (!isReady && code !== 0) {
      // Exited during start-up: name the database a failed check could not reach and say it
      // where the operator looks first (startup-<cluster>.log, the terminal via startFailure).
      const detail = [...dbFailures.entries()]
        .filter(([target]) => reason.includes(target))
        .map(([, why]) => why);
      startFailure = detail.length > 0 ? `${reason} (database ${detail.join("; ")})` : reason;
      startup.error(`agent exited during start-up: ${startFailure}`);
      reason = startFailure;
    }
    log.info({ code, reason }, `agent exiting: ${reason}`);
    // An agent stops within about 2 s (init scripts and operators wait on it): every step that
    // waits on something outside is bounded, and mail still retrying is left to the cluster log.
    const stopBy = Date.now() + 1800;
    const within = <T>(p: Promise<T>, ms: number): Promise<T | "late"> => {
      let timer: NodeJS.Timeout | undefined;
      return Promise.race([
        p.finally(() => clearTimeout(timer)),
        new Promise<"late">((r) => {
          timer = setTimeout(() => r("late"), Math.max(50, ms));
        }),
      ]);
    };
    loop.stop();
    clearInterval(watchdog);
    hw.close();
    admin?.close();
    await within(http?.close() ?? Promise.resolve(), 300);
    try {
      const left =
        how === "leave" ? await within(member.leave(), stopBy - 800 - Date.now()) : await member.stop();
      if (left === "late") {
        log.warn("leaving the cluster took too long: stopping without waiting for the others");
        await member.stop();
      }
    } catch (err) {
      log.warn({ err }, "leaving the cluster failed");
    }
    localWatch?.stop();
    await within(closeLocalDb(), 200).catch(() => {});
    await within(helper.close(), 2_500).catch(() => {});
    // The state files before the lock: the next agent reads them.
    const written = await within(Promise.all([failoverFile.settled(), stateFile.settled()]), 1_000);
    if (written === "late") log.warn("writing the state files took more than 1 s: stopping without waiting");
    // Out of the cluster now: let a new agent start while the last notifications drain.
    lock.release();
    await notifier.close(Math.max(100, stopBy - Date.now()));
    logs.flush();
    resolveDone(code);
  }

  const refusedLogged = new Map<string, number>();
  const onMember = (e: MemberEvent) => {
    switch (e.type) {
      // What only the agent does with membership's news: files, and a refused start. The rest
      // (views, removals, quorum, the lease, peer messages, stop-cluster) goes to the failover
      // node, which translates and validates it exactly as in the simulator.
      case "admissionRefused":
        if (e.address === self) {
          // Refused by the coordinator (guide 4.1.7: a removed node may not rejoin). Retrying
          // would only spin; fail the start as the guide's init script does, saying why.
          if (loop.current.phase !== "running") {
            // Another cluster id: this node's saved state belongs to a cluster founded apart.
            const why = e.reason.includes("belongs to another cluster")
              ? `this node cannot join the cluster running at ${e.by}: ${e.reason}. If this node should join it as a new node, stop it and remove ${files.membership}`
              : `this node is not allowed to join cluster ${cluster} (refused by ${e.by}: ${e.reason}); run 'efm add-node ${cluster} ${selfHost}' on a member first`;
            startup.error(why);
            void finish(1, why, "stop");
          }
          return;
        }
        // We refused someone: say so once a minute per host, not on every retry.
        if ((refusedLogged.get(e.address) ?? 0) + 60_000 <= Date.now()) {
          refusedLogged.set(e.address, Date.now());
          log.warn({ address: e.address, reason: e.reason }, `refused ${e.address}: ${e.reason}`);
        }
        return;
      case "persist":
        return; // written by createMember's persist option, before the acknowledgements
      case "persistFailed": {
        const why = `cannot store the membership state in ${files.membership} (${e.error}): this agent left the cluster without acknowledging the change; restart it once that directory is writable`;
        log.error(why);
        startup.error(why);
        logs.flush();
        // As on a lost lease: a master fences itself when the others can go on without it.
        loop.membership({ type: "leaseLost" });
        return;
      }
      case "membersFileRewrite":
        try {
          rewriteMembersFile(
            `${opts.configDir}/${cluster}.nodes`,
            e.addresses.map((a) => ({ host: hostOf(a), port: Number(a.slice(a.lastIndexOf(":") + 1)) })),
          );
        } catch (err) {
          log.error({ err }, `cannot rewrite the members file: ${(err as Error).message}`);
        }
        return;
      default:
        // The engine forgets a lost member's role; remember what each one was just before, so
        // the status keeps showing a dead witness as a Witness.
        for (const m of snapshot(loop.current).members) if (m.role) lastRoles.set(m.address, m.role);
        loop.membership(e);
        return;
    }
  };
  member.on("event", onMember);

  /** A start that fails after the lock was taken: say why, undo what was set up, and throw. */
  const abortStart = async (err: unknown): Promise<never> => {
    startup.error((err as Error).message);
    exiting = true;
    loop.stop();
    clearInterval(watchdog);
    hw.close();
    admin?.close();
    await http?.close();
    await member.stop().catch(() => {});
    await closeLocalDb().catch(() => {});
    await helper.close();
    lock.release();
    await notifier.close(1000);
    logs.flush();
    throw err;
  };
  let watchdog: NodeJS.Timeout | undefined;
  let admin: Awaited<ReturnType<typeof startAdminServer>> | undefined;
  if (!c.isWitness && c.watchdogMode !== "off") {
    // Checked without opening the device (opening a watchdog starts its countdown).
    const wd = hw.check();
    if (!wd.ok && c.watchdogMode === "required") {
      await abortStart(new AgentError("WATCHDOG", `watchdog.mode=required: ${wd.problem}`));
    }
    if (!wd.ok) {
      startup.warn(`watchdog.mode=automatic: ${wd.problem}; this node will run as master without a watchdog`);
    }
  }
  // The token file is written only once the admin port is ours: a second agent for this cluster
  // (another lock.dir) must not replace the token of the one that runs.
  const token = newToken();
  admin = await startAdminServer({
    port: c.adminPort,
    token,
    logger: log,
    handle: adminHandler({
      cluster,
      self,
      member,
      loop,
      pendingReplies,
      stopCluster: async () => {
        await member.stopCluster();
      },
      ready,
      lastRoles,
      // The status queries run here, with the password the agent already holds: the CLI never
      // decrypts it (anyone may ask for the status).
      queryDatabases: (status) => queryDatabases(status, db, c.remoteTimeout * 1000),
      warnings: securityWarnings,
    }),
  }).catch(abortStart);
  writeTokenFile(files.token, token);

  // Read-only HTTP endpoints (http.bind.address; none unless set).
  if (c.httpBindAddress) {
    http = await startHttpServer(
      c.httpBindAddress,
      {
        cluster,
        self,
        version: packageVersion(),
        state: () => loop.current,
        leaseUntil: () => member.leaseUntil(),
        now: () => member.now(),
        lists: () => ({ allowed: member.config().allowed, voters: member.config().voters }),
        db,
        timeoutMs: Math.min(5000, c.remoteTimeout * 1000),
        notifierStats: () => notifier.stats(),
        observer,
        registry,
      },
      log,
    ).catch(abortStart);
  }

  // The lock file is how operators and init scripts see a running agent: warn if it vanishes.
  let lockWarned = false;
  watchdog = setInterval(() => {
    if (!lock.stillHeld() && !lockWarned) {
      lockWarned = true;
      notifier.notify({
        id: "lockFileRemoved",
        params: { clusterName: cluster, pathName: files.lock, nodeAddress: selfHost },
      });
      log.warn(`lock file ${files.lock} was removed`);
    }
    // The VIP watchdog (guide 7, WARNING table): report whether the VIP is held here; the
    // engine's vip.watch rows decide (a non-master releases it and warns) on the role it has when
    // the answer arrives, and the release goes through the releaseVip port like any other.
    if (vip) {
      isHeldLocally(vip.address).then(
        (heldHere) => loop.dispatch({ type: "vipChecked", now: member.now(), heldHere }),
        (err) => log.warn({ err }, "cannot tell whether the VIP is held here"),
      );
    }
  }, 5000);
  watchdog.unref();

  await member.start().catch(abortStart);
  startup.info(`agent for cluster ${cluster} listening on ${self}, admin port ${c.adminPort}`);
  logs.flush();
  loop.dispatch({ type: "started", now: member.now() });
  localWatch?.start();
  hw.start();

  return {
    done,
    ready,
    startFailure: () => startFailure,
    shutdown: () => {
      if (exiting) return;
      loop.dispatch({ type: "shutdown", now: member.now() });
      // The engine answers shutdown with an exit action; make sure we stop even if it did not.
      setTimeout(() => void finish(0, "stopped"), 2000).unref();
    },
  };
}

/**
 * Says at start-up whether pg_rewind could rewind this database (wal_log_hints=on or data
 * checksums, as pg_control shows them), and warns when a rejoin is configured and neither holds.
 * Returns what the engine needs: true, false, or null when pg_control could not be read.
 */
function sayRewindable(
  facts: { walLogHints: boolean; dataChecksums: boolean } | undefined,
  c: EfmConfig,
  startup: Logger,
  log: Logger,
): boolean | null {
  const configured = c.autoRejoin || c.dbRewind === "on";
  if (facts === undefined) {
    const why =
      "pg_control could not be read (pg_controldata in db.bin): whether pg_rewind can rewind this database is unknown";
    if (configured) startup.warn(why);
    else startup.info(why);
    return null;
  }
  const ok = facts.walLogHints || facts.dataChecksums;
  const said = `pg_rewind precondition: wal_log_hints=${facts.walLogHints ? "on" : "off"}, data checksums ${facts.dataChecksums ? "on" : "off"}`;
  if (ok || !configured) {
    startup.info(
      ok ? `${said}: a rejoin can rewind this database` : `${said}: pg_rewind could not rewind it`,
    );
    return ok;
  }
  const warning = `${said}: pg_rewind cannot rewind this database, so ${c.autoRejoin ? "auto.rejoin" : "db.rewind"} ${c.dbRejoinBasebackup ? "falls back to a base backup (db.rejoin.basebackup=true)" : "will be refused (db.rejoin.basebackup=false)"}; set wal_log_hints=on and restart PostgreSQL before a failover`;
  startup.warn(warning);
  log.warn(warning);
  return false;
}

/** The engine's step, calling `onReady` once the first time the agent reaches the running phase. */
/**
 * Look at the watchdog as soon as a step changes the role or phase (once the step is applied),
 * not only on its timer: a master frozen right after taking the role would otherwise run
 * unguarded until the next tick.
 */
function onRoleChange(inner: typeof step, changed: () => void): typeof step {
  return (state, event) => {
    const result = inner(state, event);
    if (result.state.role !== state.role || result.state.phase !== state.phase) queueMicrotask(changed);
    return result;
  };
}

function watchReadiness(inner: typeof step, onReady: () => void): typeof step {
  return (state, event) => {
    const result = inner(state, event);
    if (result.state.phase === "running") onReady();
    return result;
  };
}
