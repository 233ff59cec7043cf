import type { ChildProcess, SpawnOptions } from "node:child_process";
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import type pg from "pg";
import { type EfmFilesOptions, type EfmHostFiles, writeEfmFiles } from "./efm-files.ts";
import { LabError } from "./errors.ts";
import { alive, type ExecResult, run, runningAsRoot, start } from "./exec.ts";
import { loopbackAddress, parseSubnet, subnetAddress } from "./net.ts";
import * as netns from "./netns.ts";
import * as ops from "./pg.ts";
import { type CertFiles, makeCa, makeServerCert } from "./tls.ts";
import {
  type HostRole,
  type HostState,
  type LabMode,
  type LabState,
  readState,
  writeState,
} from "./state.ts";

/** One host wanted in the cluster. */
export interface HostSpec {
  name: string;
  role: HostRole;
  /** Explicit address; default derived from addressBase (loopback) or subnet (netns). */
  address?: string;
}

/** Options of createCluster. */
export interface ClusterOptions {
  /** Cluster name: names the run folder and (hashed) the namespace prefix. */
  name: string;
  mode?: LabMode;
  /** One master, any standbys, optional witnesses (no database). */
  hosts: HostSpec[];
  /** db.port shared by all hosts (the guide requires it equal everywhere). Default 5444. */
  port?: number;
  /** Loopback mode: host i gets `<addressBase>.<firstOctet + i>`. Default "127.0.0". */
  addressBase?: string;
  /** Last octet (loopback) or offset in subnet (netns) of the first host. Default 11. */
  firstOctet?: number;
  /** Netns mode subnet; the bridge takes the first address. Default 10.201.0.0/24. */
  subnet?: string;
  /** Netns mode: prefix of namespace, bridge and veth names (<= 9 chars, [a-z0-9]). */
  prefix?: string;
  /** Run folder (data, sockets, logs, state file). Default /tmp/efm-lab-<name>. Replaced if present. */
  runDir?: string;
  /** PostgreSQL binaries. Default /usr/lib/postgresql/15/bin. */
  pgBin?: string;
  /** Monitored database (db.database). Default "efm". */
  database?: string;
  /** Login of the agents (db.user) and its clear-text password. */
  efmUser?: string;
  efmPassword?: string;
  /**
   * Extra postgresql.conf settings for every host (e.g. max_connections, ssl). A
   * `listen_addresses` here replaces each host's own address (netns mode: `"*"` lets a virtual
   * IP added to the host reach its database; in loopback mode the hosts share one stack, so
   * `"*"` would clash on the port).
   */
  postgresConf?: Record<string, string | number>;
  /** Extra pg_hba.conf lines, placed before the lab's own. */
  hbaLines?: string[];
  /**
   * TLS: every server gets `ssl = on` and its own certificate with its address as IP SAN,
   * signed by a lab CA (`ca: true`, see `Cluster.tls`) or self-signed; connections without
   * TLS over TCP (replication included) are rejected in pg_hba.conf. Needs `openssl`.
   */
  tls?: { ca: boolean };
  /** Progress messages; silent by default. */
  log?: (line: string) => void;
}

/** How agents reach a host's database (fits pg.ClientConfig and @efm/db-probe's options). */
export interface EfmConnection {
  host: string;
  port: number;
  user: string;
  password: string;
  database: string;
}

/** A host of a running cluster as callers see it. */
export interface LabHost {
  readonly name: string;
  readonly role: HostRole;
  readonly address: string;
  /** Null on a witness. */
  readonly dataDir: string | null;
  readonly socketDir: string;
  readonly logFile: string;
  readonly pgBin: string;
  readonly dir: string;
  readonly namespace: string | null;
}

const DEFAULT_PG_BIN = "/usr/lib/postgresql/15/bin";
const NAME = /^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$/;

function defaultPrefix(name: string): string {
  return `l${createHash("sha1").update(name).digest("hex").slice(0, 5)}`;
}

function currentUser(): string {
  return os.userInfo().username;
}

/** Validate options and compute the full state record before anything is created. */
export function planCluster(options: ClusterOptions): LabState {
  const mode = options.mode ?? "loopback";
  if (!NAME.test(options.name)) {
    throw new LabError(
      "INVALID_OPTIONS",
      `cluster name ${JSON.stringify(options.name)}: [A-Za-z0-9_-], max 32`,
    );
  }
  if (mode !== "loopback" && mode !== "netns") {
    throw new LabError("INVALID_OPTIONS", `mode ${JSON.stringify(mode)}: expected loopback or netns`);
  }
  if (mode === "netns" && !runningAsRoot()) {
    throw new LabError("NOT_ROOT", "netns mode needs root (ip netns, iptables)");
  }
  const hosts = options.hosts;
  if (!Array.isArray(hosts) || hosts.length === 0) {
    throw new LabError("INVALID_OPTIONS", "hosts: at least one host is required");
  }
  const seen = new Set<string>();
  for (const h of hosts) {
    if (!NAME.test(h.name) || h.name.length > 16) {
      throw new LabError("INVALID_OPTIONS", `host name ${JSON.stringify(h.name)}: [A-Za-z0-9_-], max 16`);
    }
    if (seen.has(h.name)) throw new LabError("INVALID_OPTIONS", `host ${h.name} listed twice`);
    seen.add(h.name);
    if (!["master", "standby", "witness"].includes(h.role)) {
      throw new LabError(
        "INVALID_OPTIONS",
        `host ${h.name}: role ${JSON.stringify(h.role)} is not master|standby|witness`,
      );
    }
  }
  const masters = hosts.filter((h) => h.role === "master");
  if (masters.length !== 1 && hosts.some((h) => h.role !== "witness")) {
    throw new LabError("INVALID_OPTIONS", `exactly one master is required, got ${masters.length}`);
  }
  const port = options.port ?? 5444;
  if (!Number.isInteger(port) || port < 1024 || port > 65535) {
    throw new LabError("INVALID_OPTIONS", `port ${port}: expected 1024..65535`);
  }
  const runDir = path.resolve(options.runDir ?? path.join(os.tmpdir(), `efm-lab-${options.name}`));
  if (runDir === "/" || runDir === os.tmpdir()) {
    throw new LabError("INVALID_OPTIONS", `runDir ${runDir}: refusing a folder the lab would wipe`);
  }
  const first = options.firstOctet ?? 11;
  let prefix: string | null = null;
  let bridge: string | null = null;
  let bridgeAddress: string | null = null;
  let prefixLength: number | null = null;
  let address: (i: number) => string;
  if (mode === "netns") {
    prefix = options.prefix ?? defaultPrefix(options.name);
    if (!/^[a-z][a-z0-9]{0,8}$/.test(prefix)) {
      throw new LabError("INVALID_OPTIONS", `prefix ${JSON.stringify(prefix)}: [a-z][a-z0-9], max 9 chars`);
    }
    const subnet = parseSubnet(options.subnet ?? "10.201.0.0/24");
    bridge = `${prefix}br`;
    bridgeAddress = subnetAddress(subnet, 1);
    prefixLength = subnet.prefixLength;
    address = (i) => subnetAddress(subnet, first + i);
  } else {
    const base = options.addressBase ?? "127.0.0";
    address = (i) => loopbackAddress(base, first + i);
  }
  const hostStates: HostState[] = hosts.map((h, i) => {
    const dir = path.join(runDir, h.name);
    return {
      name: h.name,
      role: h.role,
      address: h.address ?? address(i),
      dir,
      dataDir: h.role === "witness" ? null : path.join(dir, "data"),
      socketDir: path.join(dir, "sock"),
      logFile: path.join(dir, "postgres.log"),
      namespace: prefix === null ? null : `${prefix}-${h.name}`,
      vethHost: prefix === null ? null : `${prefix}h${i}`,
    };
  });
  const addrs = new Set(hostStates.map((h) => h.address));
  if (addrs.size !== hostStates.length) throw new LabError("INVALID_OPTIONS", "two hosts share an address");
  return {
    version: 1,
    name: options.name,
    mode,
    port,
    runDir,
    pgBin: options.pgBin ?? DEFAULT_PG_BIN,
    database: options.database ?? "efm",
    superuser: "postgres",
    efmUser: options.efmUser ?? "efm",
    efmPassword: options.efmPassword ?? "efm-lab-secret",
    replicationUser: "replicator",
    replicationPassword: "lab-replication",
    dbOwner: runningAsRoot() ? "postgres" : currentUser(),
    prefix,
    bridge,
    bridgeAddress,
    prefixLength,
    hosts: hostStates,
    ...(options.tls ? { tls: { dir: path.join(runDir, "tls"), ca: options.tls.ca === true } } : {}),
  };
}

function quoteLiteral(s: string): string {
  return `'${s.replaceAll("'", "''")}'`;
}

function quoteIdent(s: string): string {
  return `"${s.replaceAll('"', '""')}"`;
}

/** Settings every lab server gets: replication-ready, small and fast. */
const BASE_CONF: Record<string, string | number> = {
  wal_level: "replica",
  hot_standby: "on",
  max_wal_senders: 10,
  max_replication_slots: 10,
  wal_keep_size: "64MB",
  wal_log_hints: "on",
  shared_buffers: "16MB",
  max_connections: 40,
  fsync: "off",
  full_page_writes: "on",
  synchronous_commit: "on",
  password_encryption: "scram-sha-256",
  wal_receiver_status_interval: "1s",
  wal_retrieve_retry_interval: "1s",
  log_line_prefix: "%m [%p] %u@%d ",
  dynamic_shared_memory_type: "posix",
};

/** A running lab cluster. Methods take host names. */
export class Cluster {
  readonly state: LabState;
  readonly #conf: Record<string, string | number>;
  readonly #log: (line: string) => void;

  constructor(
    state: LabState,
    conf: Record<string, string | number> = {},
    log: (line: string) => void = () => {},
  ) {
    this.state = state;
    this.#conf = conf;
    this.#log = log;
  }

  /** Per-host settings the caller overrides: only `listen_addresses` (see ClusterOptions). */
  #hostConf(): Record<string, string | number> {
    const listen = this.#conf.listen_addresses;
    return listen === undefined ? {} : { listen_addresses: listen };
  }

  get name(): string {
    return this.state.name;
  }
  get mode(): LabMode {
    return this.state.mode;
  }
  get port(): number {
    return this.state.port;
  }
  get runDir(): string {
    return this.state.runDir;
  }
  get database(): string {
    return this.state.database;
  }
  get efmUser(): string {
    return this.state.efmUser;
  }
  get efmPassword(): string {
    return this.state.efmPassword;
  }
  /** Address of the bridge in the root namespace (netns), usable as a ping server. */
  get bridgeAddress(): string | null {
    return this.state.bridgeAddress;
  }

  /** All hosts in the order given. */
  get hosts(): LabHost[] {
    return this.state.hosts.map((h) => this.#view(h));
  }

  /** One host by name. */
  host(name: string): LabHost {
    return this.#view(this.#h(name));
  }

  #view(h: HostState): LabHost {
    return {
      name: h.name,
      role: h.role,
      address: h.address,
      dataDir: h.dataDir,
      socketDir: h.socketDir,
      logFile: h.logFile,
      pgBin: this.state.pgBin,
      dir: h.dir,
      namespace: h.namespace,
    };
  }

  #h(name: string): HostState {
    const h = this.state.hosts.find((x) => x.name === name);
    if (h === undefined)
      throw new LabError("UNKNOWN_HOST", `cluster ${this.name} has no host ${JSON.stringify(name)}`);
    return h;
  }

  /** Connection settings the agents use: TCP to the host's address as the efm user. */
  efmConnection(name: string): EfmConnection {
    const h = this.#h(name);
    return {
      host: h.address,
      port: this.port,
      user: this.efmUser,
      password: this.efmPassword,
      database: this.database,
    };
  }

  /** TLS files (null when the lab has no TLS): the CA certificate to trust, if any, and the folder. */
  get tls(): { dir: string; caCert: string | null } | null {
    const t = this.state.tls;
    return t ? { dir: t.dir, caCert: t.ca ? path.join(t.dir, "lab-ca.crt") : null } : null;
  }

  /**
   * Give a host's server a new certificate and reload it: for `ips` (default its address),
   * self-signed or signed by the lab CA (default: as the lab was built).
   */
  async reissueCert(name: string, options: { selfSigned?: boolean; ips?: string[] } = {}): Promise<void> {
    const t = this.state.tls;
    if (!t) throw new LabError("INVALID_OPTIONS", `cluster ${this.name} was built without tls`);
    const h = this.#h(name);
    issueHostCert(this.state, h, options.ips ?? [h.address], options.selfSigned ?? !t.ca);
    if (ops.postmasterPid(h) !== null) await ops.sql(this.state, h, "SELECT pg_reload_conf()");
  }

  /** Superuser connection over the host's Unix socket (unaffected by partitions). */
  superuserConnection(name: string): pg.ClientConfig {
    return ops.socketConfig(this.state, this.#h(name));
  }

  /** Run SQL as superuser on a host; returns rows. */
  psql(name: string, text: string, params: unknown[] = []): Promise<Record<string, unknown>[]> {
    return ops.sql(this.state, this.#h(name), text, params);
  }

  /** Current WAL position (master) or replay position (standby), as PostgreSQL prints it. */
  lsn(name: string): Promise<string> {
    return ops.lsn(this.state, this.#h(name));
  }

  /** Whether the host's database is in recovery (a standby). */
  inRecovery(name: string): Promise<boolean> {
    return ops.inRecovery(this.state, this.#h(name));
  }

  /** Insert n rows into lab_rows on the host; returns the WAL position after the commit. */
  async write(name: string, n = 1): Promise<string> {
    if (!Number.isInteger(n) || n < 1) throw new LabError("INVALID_OPTIONS", `write: n=${n} must be >= 1`);
    await this.psql(
      name,
      "INSERT INTO lab_rows(payload) SELECT 'row ' || g FROM generate_series(1, $1::int) g",
      [n],
    );
    // Read the position after the commit: a standby at this LSN has replayed the commit record too.
    return this.lsn(name);
  }

  /** Number of rows in lab_rows on the host. */
  async count(name: string): Promise<number> {
    const rows = await this.psql(name, "SELECT count(*)::int AS c FROM lab_rows");
    return Number(rows[0]?.c);
  }

  /** Wait until the host has replayed at least lsn. */
  async waitReplayed(name: string, lsn: string, timeoutMs = 30_000): Promise<void> {
    const h = this.#h(name);
    await ops.waitFor(
      `${name} to replay ${lsn}`,
      async () => {
        const rows = await ops.sql(
          this.state,
          h,
          "SELECT pg_wal_lsn_diff(coalesce(pg_last_wal_replay_lsn(), '0/0'), $1::pg_lsn) >= 0 AS ok",
          [lsn],
        );
        return rows[0]?.ok === true;
      },
      timeoutMs,
    );
  }

  /** Wait until every named standby streams from master (pg_stat_replication.state = streaming). */
  async waitStreaming(master: string, standbys: string[], timeoutMs = 30_000): Promise<void> {
    const m = this.#h(master);
    await ops.waitFor(
      `${standbys.join(", ")} streaming from ${master}`,
      async () => {
        const names = await ops.streamingStandbys(this.state, m);
        return standbys.every((s) => names.includes(s));
      },
      timeoutMs,
    );
  }

  /** The postmaster pid, or null when the database is not running. */
  postmasterPid(name: string): number | null {
    return ops.postmasterPid(this.#h(name));
  }

  /** Whether the host's postmaster is alive. */
  isRunning(name: string): boolean {
    return this.postmasterPid(name) !== null;
  }

  /** SIGKILL the postmaster (a crash); returns once its processes are gone. */
  killDb(name: string): Promise<void> {
    return ops.killDb(this.#h(name));
  }

  /** pg_ctl stop (default fast). */
  stopDb(name: string, mode: "smart" | "fast" | "immediate" = "fast"): Promise<void> {
    return ops.stopDb(this.state, this.#h(name), mode);
  }

  /** pg_ctl start -w. */
  startDb(name: string): Promise<void> {
    return ops.startDb(this.state, this.#h(name));
  }

  /** SIGSTOP the postmaster and its children: connections hang instead of failing. */
  hangDb(name: string): void {
    ops.hangDb(this.#h(name));
  }

  /** SIGCONT what hangDb stopped. */
  resumeDb(name: string): void {
    const pid = ops.postmasterPid(this.#h(name));
    if (pid !== null) ops.resumeTree(pid);
  }

  /**
   * Test-setup convenience (not the product's promotion path): `pg_ctl promote -w`, then wait
   * until the server leaves recovery.
   */
  async promoteDb(name: string): Promise<void> {
    const h = this.#h(name);
    await ops.pgTool(this.state, h, "pg_ctl", ["-D", ops.requireData(h), "-w", "-t", "60", "promote"]);
    await ops.waitFor(`${name} out of recovery`, async () => !(await ops.inRecovery(this.state, h)), 30_000);
  }

  /**
   * Turn host into a standby streaming from newMaster: clean stop, pg_rewind (a no-op unless the
   * host's timeline diverged, e.g. an old master), standby.signal + primary_conninfo, start, and
   * confirm it streams on the new master's timeline. If any of that fails (a crashed data dir
   * cannot be rewound) the host is rebuilt with pg_basebackup. Returns which way worked.
   */
  async makeStandbyOf(
    name: string,
    newMaster: string,
    options: { rebuild?: boolean; followTimeoutMs?: number } = {},
  ): Promise<"follow" | "rewind" | "rebuild"> {
    const h = this.#h(name);
    const m = this.#h(newMaster);
    ops.requireData(m);
    if (h === m) throw new LabError("INVALID_OPTIONS", `makeStandbyOf: ${name} cannot follow itself`);
    await ops.stopDb(this.state, h, "fast");
    if (options.rebuild !== true) {
      try {
        // A fenced old master carries standby.signal, and pg_rewind's crash recovery of a data
        // directory that was not shut down cleanly runs single-user, which refuses standby mode.
        // The signal is written again below, after the rewind.
        for (const signal of ["standby.signal", "recovery.signal"])
          fs.rmSync(path.join(ops.requireData(h), signal), { force: true });
        const r = await ops.pgTool(this.state, h, "pg_rewind", [
          "--target-pgdata",
          ops.requireData(h),
          "--source-server",
          `host=${m.socketDir} port=${this.port} user=${this.state.superuser} dbname=postgres`,
          "--no-sync",
        ]);
        const how = /no rewind required/.test(r.stdout + r.stderr) ? "follow" : "rewind";
        // pg_rewind copies the source's config files, including its per-host settings.
        ops.writeHostConf(this.state, h, this.#hostConf());
        ops.writeStandbyConfig(this.state, h, m);
        const logStart = fileSize(h.logFile);
        await ops.startDb(this.state, h);
        await this.#waitFollowing(h, m, options.followTimeoutMs ?? 15_000, logStart);
        return how;
      } catch (err) {
        this.#log(`${name}: in-place follow failed, rebuilding (${(err as Error).message})`);
        await ops.stopDb(this.state, h, "immediate");
      }
    }
    await this.#baseBackup(h, m);
    await ops.startDb(this.state, h);
    await this.#waitFollowing(h, m, 30_000);
    return "rebuild";
  }

  /** Streaming on the master's current timeline and caught up with its position at call time. */
  async #waitFollowing(h: HostState, m: HostState, timeoutMs: number, logStart = -1): Promise<void> {
    const rows = await ops.sql(
      this.state,
      m,
      "SELECT pg_current_wal_lsn()::text AS lsn, ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int AS tli",
    );
    const target = rows[0];
    await ops.waitFor(
      `${h.name} streaming from ${m.name}`,
      async () => {
        // pg_rewind can wrongly answer "no rewind required" when the old master's shutdown
        // checkpoint starts exactly at the fork point; the server then says so in its log.
        if (logStart >= 0 && DIVERGED.test(readFrom(h.logFile, logStart))) {
          throw new LabError("COMMAND_FAILED", `${h.name} diverged from ${m.name}'s timeline`);
        }
        const r = await ops.sql(
          this.state,
          h,
          `SELECT status = 'streaming' AND received_tli = $1 AND flushed_lsn >= $2::pg_lsn AS ok
           FROM pg_stat_wal_receiver`,
          [target?.tli, target?.lsn],
        );
        return r[0]?.ok === true;
      },
      timeoutMs,
    );
  }

  /** Write each host's `<cluster>.properties` and `<cluster>.nodes`. */
  writeEfmFiles(clusterName: string, options: EfmFilesOptions): Record<string, EfmHostFiles> {
    return writeEfmFiles(this.state, clusterName, options);
  }

  // ---- network (netns mode) ----

  #requireNetns(): void {
    if (this.mode !== "netns")
      throw new LabError("NOT_NETNS", `cluster ${this.name} is in ${this.mode} mode`);
  }

  /** Block all traffic between a and b, both directions. */
  async partition(a: string, b: string): Promise<void> {
    this.#requireNetns();
    const ha = this.#h(a);
    const hb = this.#h(b);
    await netns.dropTo(ha, hb.address);
    await netns.dropFrom(ha, hb.address);
    await netns.dropTo(hb, ha.address);
    await netns.dropFrom(hb, ha.address);
  }

  /** One-way cut: packets from `from` to `to` are dropped; the reverse direction still flows. */
  async cut(from: string, to: string): Promise<void> {
    this.#requireNetns();
    const hf = this.#h(from);
    const ht = this.#h(to);
    await netns.dropTo(hf, ht.address);
    await netns.dropFrom(ht, hf.address);
  }

  /** Cut the host off from every other host and the bridge. */
  async isolate(name: string): Promise<void> {
    this.#requireNetns();
    await netns.isolate(this.#h(name));
  }

  /** Remove every partition, cut and isolation. */
  async heal(): Promise<void> {
    this.#requireNetns();
    for (const h of this.state.hosts) await netns.heal(h);
  }

  /** Take the host's link down: it and everything on it vanish from the network. */
  async hostDown(name: string): Promise<void> {
    this.#requireNetns();
    await netns.setLink(this.#h(name), false);
  }

  /** Bring the host's link back. */
  async hostUp(name: string): Promise<void> {
    this.#requireNetns();
    await netns.setLink(this.#h(name), true);
  }

  /**
   * Run argv on the host (inside its namespace in netns mode) and wait; never throws on a
   * non-zero exit: inspect `code`.
   */
  exec(
    name: string,
    argv: string[],
    options: { timeoutMs?: number; env?: NodeJS.ProcessEnv } = {},
  ): Promise<ExecResult> {
    return run(ops.hostArgv(this.state, this.#h(name), argv, false), { ...options, allowFailure: true });
  }

  /** Start a long-running process on the host (e.g. an agent); the caller must kill it. */
  spawn(name: string, argv: string[], options: SpawnOptions = {}): ChildProcess {
    return start(ops.hostArgv(this.state, this.#h(name), argv, false), options);
  }

  /** Whether `ip` answers one ping from the host within a second. */
  async reachable(from: string, ip: string): Promise<boolean> {
    const r = await this.exec(from, ["ping", "-n", "-q", "-c", "1", "-W", "1", ip], { timeoutMs: 5_000 });
    return r.code === 0;
  }

  /** Tear down everything this lab created. Safe to call twice. */
  down(): Promise<void> {
    return destroy(this.state);
  }

  // ---- building ----

  /** @internal build the cluster described by state. */
  async build(hbaLines: string[]): Promise<void> {
    const s = this.state;
    const log = this.#log;
    fs.mkdirSync(s.runDir, { recursive: true, mode: 0o755 });
    fs.chmodSync(s.runDir, 0o755);
    writeState(s);
    for (const h of s.hosts) {
      fs.mkdirSync(h.socketDir, { recursive: true, mode: 0o755 });
      fs.mkdirSync(path.join(h.dir, "efm"), { recursive: true, mode: 0o755 });
      ops.chownToOwner(s, h.dir);
      ops.chownToOwner(s, h.socketDir);
    }
    if (s.mode === "netns") {
      log("creating namespaces and bridge");
      await netns.createNetwork(s);
    }
    if (s.tls) {
      log("issuing certificates");
      fs.mkdirSync(s.tls.dir, { recursive: true, mode: 0o755 });
      if (s.tls.ca) makeCa(s.tls.dir, "lab-ca");
      for (const h of s.hosts) if (h.dataDir !== null) issueHostCert(s, h, [h.address], !s.tls.ca);
    }
    const master = s.hosts.find((h) => h.role === "master");
    if (master === undefined) return;
    log(`initdb ${master.name}`);
    await this.#initMaster(master, hbaLines);
    const standbys = s.hosts.filter((h) => h.role === "standby");
    await Promise.all(
      standbys.map(async (h) => {
        log(`base backup ${h.name}`);
        await this.#baseBackup(h, master);
        await ops.startDb(s, h);
      }),
    );
    if (standbys.length > 0) {
      await this.waitStreaming(
        master.name,
        standbys.map((h) => h.name),
      );
    }
    log("cluster ready");
  }

  async #initMaster(m: HostState, hbaLines: string[]): Promise<void> {
    const s = this.state;
    const data = ops.requireData(m);
    await ops.pgTool(s, m, "initdb", [
      "-D",
      data,
      "-U",
      s.superuser,
      "--auth-local=trust",
      "--auth-host=scram-sha-256",
      "--no-sync",
      "--no-instructions",
      "-E",
      "UTF8",
      "--locale=C",
    ]);
    const conf = { ...BASE_CONF, ...this.#conf };
    const confText = Object.entries(conf)
      .map(([k, v]) => `${k} = ${typeof v === "number" ? v : quoteLiteral(String(v))}`)
      .join("\n");
    fs.appendFileSync(
      path.join(data, "postgresql.conf"),
      `\n# --- @efm/lab ---\n${confText}\ninclude_if_exists = 'lab-host.conf'\n`,
    );
    // Local socket: trust (lab controls); TCP: passwords only, as a production cluster would.
    const hba = [
      "# written by @efm/lab",
      ...hbaLines,
      // "all" does not cover replication: both kinds of TCP login must use TLS.
      ...(s.tls ? ["hostnossl all all 0.0.0.0/0 reject", "hostnossl replication all 0.0.0.0/0 reject"] : []),
      "local all all trust",
      `host replication ${s.replicationUser} 0.0.0.0/0 scram-sha-256`,
      // A fenced or switched-over old master follows the new one as db.user (docs/operations.md).
      `host replication ${s.efmUser} 0.0.0.0/0 scram-sha-256`,
      "host all all 0.0.0.0/0 scram-sha-256",
      "host all all ::/0 scram-sha-256",
    ].join("\n");
    fs.writeFileSync(path.join(data, "pg_hba.conf"), `${hba}\n`);
    ops.writeHostConf(s, m, this.#hostConf());
    await ops.startDb(s, m);
    const db = quoteIdent(s.database);
    const efm = quoteIdent(s.efmUser);
    await ops.sql(
      s,
      m,
      `CREATE ROLE ${quoteIdent(s.replicationUser)} WITH REPLICATION LOGIN PASSWORD ${quoteLiteral(s.replicationPassword)};
       CREATE ROLE ${efm} WITH LOGIN REPLICATION PASSWORD ${quoteLiteral(s.efmPassword)};
       GRANT pg_monitor TO ${efm};
       GRANT pg_checkpoint TO ${efm};
       -- synchronous.mode: the master agent sets synchronous_standby_names (a cluster-wide grant).
       GRANT ALTER SYSTEM ON PARAMETER synchronous_standby_names TO ${efm};`,
      [],
      "postgres",
    );
    await ops.sql(s, m, `CREATE DATABASE ${db} OWNER ${efm}`, [], "postgres");
    await ops.sql(
      s,
      m,
      `CREATE TABLE lab_rows (id bigserial PRIMARY KEY, payload text NOT NULL, at timestamptz NOT NULL DEFAULT now());
       GRANT SELECT ON lab_rows TO ${efm};
       -- Function privileges belong to the database db.user connects to: this one. What
       -- docs/operations.md asks of db.user: promote over SQL, reload (synchronous.mode), and
       -- the functions pg_rewind runs on the source of a rejoin.
       GRANT EXECUTE ON FUNCTION pg_promote(boolean, integer) TO ${efm};
       GRANT EXECUTE ON FUNCTION pg_reload_conf() TO ${efm};
       GRANT EXECUTE ON FUNCTION pg_catalog.pg_ls_dir(text, boolean, boolean) TO ${efm};
       GRANT EXECUTE ON FUNCTION pg_catalog.pg_stat_file(text, boolean) TO ${efm};
       GRANT EXECUTE ON FUNCTION pg_catalog.pg_read_binary_file(text) TO ${efm};
       GRANT EXECUTE ON FUNCTION pg_catalog.pg_read_binary_file(text, bigint, bigint, boolean) TO ${efm};`,
    );
  }

  async #baseBackup(h: HostState, master: HostState): Promise<void> {
    const s = this.state;
    const data = ops.requireData(h);
    fs.rmSync(data, { recursive: true, force: true });
    await ops.pgTool(
      s,
      h,
      "pg_basebackup",
      [
        "-D",
        data,
        "-h",
        master.address,
        "-p",
        String(s.port),
        "-U",
        s.replicationUser,
        "-X",
        "stream",
        "-c",
        "fast",
        "--no-sync",
        "-w",
      ],
      { env: { ...process.env, PGPASSWORD: s.replicationPassword }, timeoutMs: 120_000 },
    );
    // The copy carries the master's postmaster.pid-free data dir and its lab-host.conf: replace the latter.
    ops.writeHostConf(s, h, this.#hostConf());
    ops.writeStandbyConfig(s, h, master);
  }
}

/** Write `<tls dir>/<host>.crt` and `.key`, the key owned by the server's OS user as PostgreSQL requires. */
function issueHostCert(s: LabState, h: HostState, ips: string[], selfSigned: boolean): void {
  const t = s.tls;
  if (!t) return;
  const ca: CertFiles | undefined = selfSigned
    ? undefined
    : { cert: path.join(t.dir, "lab-ca.crt"), key: path.join(t.dir, "lab-ca.key") };
  const files = makeServerCert(t.dir, h.name, ips, ca);
  ops.chownToOwner(s, files.key);
  ops.chownToOwner(s, files.cert);
}

const DIVERGED = /forked off current database system timeline|is not a child of this server's history/;

function fileSize(file: string): number {
  try {
    return fs.statSync(file).size;
  } catch {
    return 0;
  }
}

function readFrom(file: string, offset: number): string {
  try {
    return fs.readFileSync(file).subarray(offset).toString("utf8");
  } catch {
    return "";
  }
}

/** Create (after removing any leftover lab in the same run folder) and start a cluster. */
export async function createCluster(options: ClusterOptions): Promise<Cluster> {
  const state = planCluster(options);
  const old = readState(state.runDir);
  if (old !== null) await destroy(old);
  else fs.rmSync(state.runDir, { recursive: true, force: true });
  const cluster = new Cluster(state, options.postgresConf, options.log);
  try {
    await cluster.build(options.hbaLines ?? []);
  } catch (err) {
    await destroy(state).catch(() => {});
    throw err;
  }
  return cluster;
}

/** Re-attach to a cluster another process created (from its state file); null if none. */
export function attachCluster(runDir: string): Cluster | null {
  const state = readState(runDir);
  return state === null ? null : new Cluster(state);
}

/** Tear down the lab recorded in runDir's state file, if any. Safe to run twice or after a crash. */
export async function downCluster(runDir: string): Promise<boolean> {
  const state = readState(runDir);
  if (state === null) return false;
  await destroy(state);
  return true;
}

async function destroy(state: LabState): Promise<void> {
  for (const h of state.hosts) {
    if (h.dataDir === null) continue;
    const pid = ops.postmasterPid(h);
    if (pid === null) {
      ops.clearStale(h);
      continue;
    }
    // Immediate shutdown lets the postmaster release its shared memory, unlike a bare SIGKILL.
    await ops.stopDb(state, h, "immediate").catch(() => {});
    if (alive(pid)) await ops.killDb(h);
    ops.clearStale(h);
  }
  if (state.mode === "netns") await netns.destroyNetwork(state);
  fs.rmSync(state.runDir, { recursive: true, force: true });
}
