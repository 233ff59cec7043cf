/**
 * The chaos suite's world (issue 13): three PostgreSQL 15 hosts and a witness, each in its own
 * network namespace on one bridge, a virtual IP, the real `bin/efm-agent` on every host at fast
 * settings, and clients that write the whole time:
 *   - over TCP from the root namespace to every database host, every 50 ms, each attempt on a
 *     new connection (the issue's client: it sees what the network lets it see);
 *   - over the first master's Unix socket, every 50 ms (a client on that host itself: it still
 *     reaches the master behind any cut, so a write the old master takes while isolated or
 *     frozen is seen too).
 * Every acknowledged write is recorded with its host, a unique token, and the interval in which
 * the server committed it (attempt start .. acknowledgement). That log is the ground truth the
 * checks judge: two hosts writable at once, writes lost, which host was primary.
 *
 * Reserved for this suite: namespaces ee26-*, bridge ee26br, veths ee26h*, 10.201.26.0/24,
 * database port 26432, agent port 26800, admin port 26809 (inside each namespace), run folder
 * /tmp/efm-h7-chaos (each scenario's agent logs are kept in /tmp/efm-h7-chaos-logs/<scenario>). Needs root (`ip netns`, iptables) and `pnpm build` (bin/efm-agent loads
 * apps/agent/dist).
 */
import { type ChildProcess, execFileSync } from "node:child_process";
import { cpSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { type Cluster, createCluster, downCluster } from "@efm/lab";
import { encrypt } from "@efm/password-crypto";
import pg from "pg";
import { AGENT_BIN, EFM_BIN, type StatusJson, sleep, waitUntil } from "./harness.ts";

export const RUN = "/tmp/efm-h7-chaos";
const LAB_DIR = join(RUN, "lab");
export const NAME = "acctg";
export const PORT = 26432;
const AGENT_PORT = 26800;
const ADMIN_PORT = 26809;
export const VIP = "10.201.26.200";
export const DB_HOSTS = ["a", "b", "c"] as const;
export const WITNESS = "w";
export const ALL_HOSTS = [...DB_HOSTS, WITNESS] as const;
export type DbHost = (typeof DB_HOSTS)[number];
const TICK_MS = 50;

/** The issue's settings: local.period 1, local.timeout 2, final 1, remote 1, 1000 ms x 3. */
export const CHAOS_SETTINGS: Record<string, string> = {
  "local.period": "1",
  "local.timeout": "2",
  "local.timeout.final": "1",
  "remote.timeout": "1",
  "jgroups.timeout": "1000",
  "jgroups.max.tries": "3",
};

/** A monotonic clock in ms, shared by every record of one run (one process). */
export const now = (): number => performance.now();

/** One acknowledged write: committed by `host` at some instant in [start, ack]. */
export interface Ack {
  host: DbHost;
  via: "tcp" | "socket";
  token: string;
  start: number;
  ack: number;
}

/** Every process whose command line names our run folder (agents, postgres), leftovers included. */
function ourProcesses(): number[] {
  const out: number[] = [];
  for (const n of readdirSync("/proc")) {
    if (!/^\d+$/.test(n) || Number(n) === process.pid) continue;
    try {
      if (readFileSync(`/proc/${n}/cmdline`, "utf8").includes(RUN)) out.push(Number(n));
    } catch {
      // Gone meanwhile.
    }
  }
  return out;
}

function kill(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // Already gone.
  }
}

/** The children of pid, from /proc (ppid is field 4 of /proc/<pid>/stat). */
export function childrenOf(pid: number): number[] {
  const out: number[] = [];
  for (const n of readdirSync("/proc")) {
    if (!/^\d+$/.test(n)) continue;
    try {
      const stat = readFileSync(`/proc/${n}/stat`, "utf8");
      if (Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]) === pid) out.push(Number(n));
    } catch {
      // Gone meanwhile.
    }
  }
  return out;
}

/**
 * Remove what a crashed or interrupted run left: its processes (matched by our run folder in
 * their command line, so a recycled pid or another suite's process is never hit), then the lab
 * (namespaces, bridge, servers) recorded in the state file. createCluster also deletes our
 * namespace names when the state file itself was lost.
 */
export async function sweepLeftovers(): Promise<void> {
  const slay = (pids: number[]) => {
    for (const pid of pids) {
      kill(pid, "SIGCONT"); // a frozen leftover must be able to die
      kill(pid, "SIGKILL");
    }
  };
  // Agents first, so none restarts a database while the lab stops it.
  const agents = () =>
    ourProcesses().filter((p) => {
      try {
        return /efm-agent|bin\/efm\b/.test(readFileSync(`/proc/${p}/cmdline`, "utf8"));
      } catch {
        return false;
      }
    });
  slay(agents());
  await waitUntil(() => agents().length === 0, 10_000, 100);
  // Then the servers, cleanly (immediate stop frees their shared memory), and the network.
  await downCluster(LAB_DIR).catch(() => {});
  slay(ourProcesses());
  await waitUntil(() => ourProcesses().length === 0, 10_000, 100);
}

/** Writes to every database host every 50 ms over both channels; records what was acknowledged. */
class Writers {
  readonly acks: Ack[] = [];
  readonly lastError = new Map<string, string>();
  /** Attempts made per host/channel, acknowledged or not (so "no write" is not for want of trying). */
  readonly attempts = new Map<string, number>();
  private timer: NodeJS.Timeout | undefined;
  private readonly inflight = new Map<string, number>();
  private readonly pending = new Set<Promise<void>>();
  private seq = 0;

  constructor(private readonly lab: Cluster) {}

  start(): void {
    this.timer = setInterval(() => {
      for (const h of DB_HOSTS) this.attempt(h, "tcp");
      this.attempt("a", "socket");
    }, TICK_MS);
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    await Promise.race([Promise.allSettled([...this.pending]), sleep(8_000)]);
  }

  private attempt(host: DbHost, via: Ack["via"]): void {
    const key = `${host}/${via}`;
    // A silent host (hung, cut off) must not pile up sockets: at most 4 attempts in flight.
    if ((this.inflight.get(key) ?? 0) >= 4) return;
    this.attempts.set(key, (this.attempts.get(key) ?? 0) + 1);
    const limits = { connectionTimeoutMillis: 2000, query_timeout: 2000, statement_timeout: 2000 };
    const cfg =
      via === "tcp"
        ? { ...this.lab.efmConnection(host), ...limits }
        : { ...this.lab.superuserConnection(host), ...limits };
    const token = `${via}-${host}-${++this.seq}`;
    const client = new pg.Client(cfg);
    client.on("error", () => {});
    this.inflight.set(key, (this.inflight.get(key) ?? 0) + 1);
    const p = (async () => {
      const start = now();
      try {
        await client.connect();
        await client.query("INSERT INTO chaos_writes(token, host, via) VALUES ($1, $2, $3)", [
          token,
          host,
          via,
        ]);
        this.acks.push({ host, via, token, start, ack: now() });
      } catch (e) {
        // Down, read-only (a standby), hung or unreachable: exactly what the client probes.
        this.lastError.set(key, (e as Error).message);
      } finally {
        // end() waits for the server's goodbye, which a cut-off host never sends: bound it.
        const ended = client.end().catch(() => {});
        await Promise.race([ended, sleep(500)]);
        (
          client as unknown as { connection?: { stream?: { destroy(): void } } }
        ).connection?.stream?.destroy();
        this.inflight.set(key, (this.inflight.get(key) ?? 1) - 1);
      }
    })();
    this.pending.add(p);
    void p.finally(() => this.pending.delete(p));
  }
}

/**
 * Two hosts writable at once, proven from acknowledged writes alone: host X committed a write
 * strictly after host Y committed one and strictly before Y committed another (each commit lies
 * inside its attempt's [start, ack]). No timing guess is involved: the intervals do not touch.
 */
export interface Overlap {
  host: DbHost;
  other: DbHost;
  /** The other's write that ended before `write` began, and the one that began after it ended. */
  before: Ack;
  write: Ack;
  after: Ack;
}

export function findOverlaps(acks: readonly Ack[]): Overlap[] {
  const out: Overlap[] = [];
  for (const y of DB_HOSTS) {
    const ys = acks.filter((a) => a.host === y);
    if (ys.length === 0) continue;
    // The earliest-ending and latest-starting write of y are the best witnesses of both sides.
    const firstEnd = ys.reduce((m, a) => (a.ack < m.ack ? a : m));
    const lastStart = ys.reduce((m, a) => (a.start > m.start ? a : m));
    for (const x of acks) {
      if (x.host === y) continue;
      if (firstEnd.ack < x.start && x.ack < lastStart.start) {
        out.push({ host: x.host, other: y, before: firstEnd, write: x, after: lastStart });
        break; // one witness per pair of hosts is enough to prove it
      }
    }
  }
  return out;
}

/** The final state of the databases, read over each host's Unix socket. */
export interface DbState {
  host: DbHost;
  running: boolean;
  /** null: running but not answering. */
  inRecovery: boolean | null;
  /** pg_stat_wal_receiver: status and the sender's address, when in recovery. */
  receiver: { status: string; sender: string | null } | null;
  /** pg_stat_replication on a primary: client address → state. */
  replicas: Record<string, string>;
}

export class ChaosWorld {
  lab!: Cluster;
  readonly agents = new Map<string, ChildProcess>();
  readonly dirs: Record<string, string> = {};
  writers!: Writers;
  /** The test's notes for the report. */
  readonly notes: string[] = [];

  agentDir(h: string): string {
    return join(RUN, "agents", h);
  }

  env(h: string): NodeJS.ProcessEnv {
    const d = this.agentDir(h);
    return {
      ...process.env,
      EFM_LOCK_DIR: d,
      EFM_LOG_DIR: d,
      EFM_RUN_DIR: d,
      EFM_STATE_DIR: d,
      EFM_LOG_STDOUT: undefined,
    };
  }

  address(h: string): string {
    return this.lab.host(h).address;
  }

  hostOf(addr: string): string {
    return this.lab.hosts.find((h) => h.address === addr)?.name ?? addr;
  }

  /** A fresh cluster: a master, two standbys, a witness, agents running, writers not yet. */
  async build(
    extraProps: Record<string, string> = {},
    hostProps: Record<string, Record<string, string>> = {},
  ): Promise<void> {
    await sweepLeftovers();
    rmSync(join(RUN, "agents"), { recursive: true, force: true });
    this.lab = await createCluster({
      name: "chaos",
      mode: "netns",
      subnet: "10.201.26.0/24",
      prefix: "ee26",
      port: PORT,
      runDir: LAB_DIR,
      hosts: [
        { name: "a", role: "master" },
        { name: "b", role: "standby" },
        { name: "c", role: "standby" },
        { name: WITNESS, role: "witness" },
      ],
      // Four writers (at most 4 attempts in flight each) plus the agents' sessions: far below.
      postgresConf: { max_connections: 100 },
    });
    const lab = this.lab;
    await lab.psql(
      "a",
      `CREATE TABLE chaos_writes (token text PRIMARY KEY, host text NOT NULL, via text NOT NULL, at timestamptz NOT NULL DEFAULT now());
       GRANT INSERT, SELECT ON chaos_writes TO ${lab.efmUser};`,
    );
    await lab.waitStreaming("a", ["b", "c"]);
    const files = lab.writeEfmFiles(NAME, {
      passwordEncrypted: encrypt(lab.efmPassword, NAME),
      agentPort: AGENT_PORT,
      adminPort: ADMIN_PORT,
      nodes: "all",
      properties: {
        ...CHAOS_SETTINGS,
        pingServerIp: lab.bridgeAddress ?? "",
        virtualIp: VIP,
        "virtualIp.interface": "eth0:1",
        "virtualIp.netmask": "255.255.255.0",
        "user.email": "dba@example.com",
        "from.email": "efm@example.com",
        // No mail server in the namespaces: every notification still reaches the cluster log.
        "notification.smtp.port": "1",
        // FINE: the engine's decisions and actions (fence, LSN queries, prechecks) are logged,
        // which is what a post-mortem of a failed scenario needs.
        "efm.loglevel": "FINE",
        ...extraProps,
      },
      hostProperties: hostProps,
    });
    for (const h of ALL_HOSTS) {
      this.dirs[h] = files[h]?.dir ?? "";
      mkdirSync(this.agentDir(h), { recursive: true });
      this.startAgent(h);
    }
    const healthy = await waitUntil(
      async () => {
        const t = await this.types("b");
        return t?.a === "Master" && t.b === "Standby" && t.c === "Standby" && t.w === "Witness";
      },
      120_000,
      1000,
    );
    if (!healthy) throw new Error(`the cluster did not form within 120 s\n${this.logTails()}`);
    // The roles show before every agent has finished its start-up checks; a fault then would
    // test start-up, not failure handling.
    const ready = await waitUntil(() => ALL_HOSTS.every((h) => this.logHas(h, /\bis ready\b/)), 60_000, 500);
    if (!ready) throw new Error(`not every agent said it is ready within 60 s\n${this.logTails()}`);
    const vip = await waitUntil(() => this.vipHeldBy("a"), 30_000, 500);
    if (!vip) throw new Error(`the master never took the VIP\n${this.logTails()}`);
    this.writers = new Writers(lab);
  }

  startAgent(h: string): void {
    const fd = openSync(join(this.agentDir(h), "agent.out"), "a");
    this.agents.set(
      h,
      this.lab.spawn(h, [process.execPath, AGENT_BIN, "start", NAME, "--config-dir", this.dirs[h] ?? ""], {
        env: this.env(h),
        stdio: ["ignore", fd, fd],
        detached: true,
      }),
    );
  }

  /** The agent's pid (`ip netns exec` execs it, so the spawned pid is the agent's own). */
  agentPid(h: string): number {
    const pid = this.agents.get(h)?.pid;
    if (pid === undefined) throw new Error(`no agent on ${h}`);
    return pid;
  }

  /** Signal the agent and the node processes it started (helpers), never its database. */
  signalAgent(h: string, sig: NodeJS.Signals): void {
    const pid = this.agentPid(h);
    const pm = DB_HOSTS.includes(h as DbHost) ? this.lab.postmasterPid(h) : null;
    for (const c of childrenOf(pid)) if (c !== pm) kill(c, sig);
    kill(pid, sig);
  }

  /** Start the writers and make sure the master takes writes before any fault. */
  async startWriting(): Promise<void> {
    this.writers.start();
    const ok = await waitUntil(
      () =>
        this.writers.acks.some((a) => a.host === "a" && a.via === "tcp") &&
        this.writers.acks.some((a) => a.host === "a" && a.via === "socket"),
      20_000,
      50,
    );
    if (!ok) {
      throw new Error(
        `the writers could not write to the master: ${[...this.writers.lastError].map(([k, m]) => `${k}: ${m}`).join("; ")}`,
      );
    }
    await sleep(1_000);
  }

  async stopWriting(): Promise<void> {
    await this.writers.stop();
  }

  /** `efm cluster-status-json` run on host h (inside its namespace); null if no answer. */
  async status(h: string): Promise<StatusJson | null> {
    const r = await this.lab.exec(
      h,
      [process.execPath, EFM_BIN, "--config-dir", this.dirs[h] ?? "", "cluster-status-json", NAME],
      { env: this.env(h), timeoutMs: 20_000 },
    );
    try {
      return JSON.parse(r.stdout) as StatusJson;
    } catch {
      return null;
    }
  }

  async types(from: string): Promise<Record<string, string> | null> {
    const s = await this.status(from);
    if (!s) return null;
    const out: Record<string, string> = {};
    for (const [addr, n] of Object.entries(s.nodes)) out[this.hostOf(addr)] = n.type;
    return out;
  }

  async vipHeldBy(h: string): Promise<boolean> {
    return (await this.lab.exec(h, ["ip", "-o", "addr", "show"])).stdout.includes(`inet ${VIP}/`);
  }

  logHas(h: string, re: RegExp): boolean {
    const d = this.agentDir(h);
    if (!existsSync(d)) return false;
    return readdirSync(d)
      .filter((f) => f.endsWith(".log") || f.endsWith(".out"))
      .some((f) => re.test(readFileSync(join(d, f), "utf8")));
  }

  logTails(lines = 25): string {
    return ALL_HOSTS.map((h) => {
      const f = join(this.agentDir(h), `${NAME}.log`);
      const text = existsSync(f)
        ? readFileSync(f, "utf8")
        : existsSync(join(this.agentDir(h), "agent.out"))
          ? readFileSync(join(this.agentDir(h), "agent.out"), "utf8")
          : "(none)";
      return `== ${h}\n${text.split("\n").slice(-lines).join("\n")}`;
    }).join("\n");
  }

  /**
   * The agents' decisions merged in time order from their JSON logs: role changes, fences,
   * promotions, failover decisions and views (periodic rows left out), in seconds from `since`
   * (wall clock ms: the fault's start) or else from the first line. What a post-mortem of a
   * scenario reads first; the full logs are kept by teardown.
   */
  decisions(since?: number): string {
    const wanted =
      /^(lease\.(expired|lost\.master|regained)|quorum\.lost\.master|view\.(minority|quorate\.fencedMaster|changed)|selfFence\.(done|failed)|gone\.|inv\.|coord\.|promo\.(start|send|result|timeout|exhausted|noStandby)|cand\.(accept|promoted|promoteFailed|abort)|verdict\.|local\.final\.failed|follow\.reconfigure|reconfigure\.|rejoin|conflict|idle\.primaryBesideMaster|reconcile\.noMaster|fencedRetry\.again)/;
    const rows: { t: number; line: string }[] = [];
    for (const h of ALL_HOSTS) {
      const f = join(this.agentDir(h), `${NAME}.log`);
      if (!existsSync(f)) continue;
      for (const l of readFileSync(f, "utf8").split("\n")) {
        let j: {
          time?: number;
          rule?: string;
          role?: string;
          members?: string[];
          quorate?: boolean;
          msg?: string;
        };
        try {
          j = JSON.parse(l);
        } catch {
          continue;
        }
        if (typeof j.time !== "number") continue;
        if (j.rule && wanted.test(j.rule)) rows.push({ t: j.time, line: `${h} ${j.role} ${j.rule}` });
        else if (j.msg === "membership: view installed" && j.members)
          rows.push({
            t: j.time,
            line: `${h} view [${j.members.map((m) => this.hostOf(m.split(":")[0] ?? m)).join(" ")}]${j.quorate ? "" : " minority"}`,
          });
      }
    }
    rows.sort((x, y) => x.t - y.t);
    const t0 = since ?? rows[0]?.t ?? 0;
    return rows.map((r) => `${((r.t - t0) / 1000).toFixed(2).padStart(7)} ${r.line}`).join("\n");
  }

  /** What each database looks like now (over the Unix socket: no partition hides it). */
  async dbStates(): Promise<DbState[]> {
    const out: DbState[] = [];
    for (const h of DB_HOSTS) {
      const st: DbState = {
        host: h,
        running: this.lab.isRunning(h),
        inRecovery: null,
        receiver: null,
        replicas: {},
      };
      if (st.running) {
        try {
          st.inRecovery = await this.lab.inRecovery(h);
          if (st.inRecovery) {
            const r = await this.lab.psql(h, "SELECT status, sender_host FROM pg_stat_wal_receiver");
            st.receiver = r[0]
              ? {
                  status: String(r[0].status),
                  sender: r[0].sender_host === null ? null : String(r[0].sender_host),
                }
              : null;
          } else {
            const r = await this.lab.psql(
              h,
              "SELECT client_addr::text AS addr, state FROM pg_stat_replication",
            );
            for (const row of r) st.replicas[String(row.addr).replace(/\/32$/, "")] = String(row.state);
          }
        } catch {
          st.inRecovery = null;
        }
      }
      out.push(st);
    }
    return out;
  }

  /**
   * Exactly one running database is a primary, and every host in `followers` is a standby
   * streaming from it, seen from both ends (its WAL receiver names the primary's address, the
   * primary's pg_stat_replication lists it as streaming). Returns a description of what is
   * wrong, or null when healthy.
   */
  async unhealthy(followers: readonly DbHost[]): Promise<string | null> {
    const states = await this.dbStates();
    const primaries = states.filter((s) => s.running && s.inRecovery === false);
    if (primaries.length !== 1) return `${primaries.length} primaries: ${JSON.stringify(states)}`;
    const p = primaries[0] as DbState;
    const pa = this.address(p.host);
    for (const f of followers) {
      const s = states.find((x) => x.host === f) as DbState;
      if (f === p.host) return `${f} should follow, but is the primary`;
      if (!s.running || s.inRecovery !== true) return `${f} is not a running standby: ${JSON.stringify(s)}`;
      if (s.receiver?.status !== "streaming" || s.receiver.sender !== pa)
        return `${f} does not stream from ${p.host}: ${JSON.stringify(s.receiver)}`;
      if (p.replicas[this.address(f)] !== "streaming")
        return `${p.host}'s pg_stat_replication does not show ${f} streaming: ${JSON.stringify(p.replicas)}`;
    }
    // Any other database back in recovery (a fenced old master restarted as a standby) must
    // follow the primary too: a standby stuck on a forked timeline is a broken cluster. One that
    // stays down (fenced, not yet rejoined) is allowed.
    for (const s of states) {
      if (s.host === p.host || followers.includes(s.host) || !s.running) continue;
      if (s.inRecovery !== true)
        return `${s.host} runs but is neither primary nor standby: ${JSON.stringify(s)}`;
      if (s.receiver?.status !== "streaming" || s.receiver.sender !== pa)
        return `${s.host} is back in recovery but does not stream from ${p.host}: ${JSON.stringify(s.receiver)}`;
    }
    return null;
  }

  /** The one primary now, or null. */
  async primary(): Promise<DbHost | null> {
    const p = (await this.dbStates()).filter((s) => s.running && s.inRecovery === false);
    return p.length === 1 ? (p[0] as DbState).host : null;
  }

  /** Acknowledged writes missing from host h's table (the final primary's). */
  async lostWrites(h: DbHost): Promise<Ack[]> {
    const rows = await this.lab.psql(h, "SELECT token FROM chaos_writes");
    const have = new Set(rows.map((r) => String(r.token)));
    return this.writers.acks.filter((a) => !have.has(a.token));
  }

  /**
   * Stop agents and writers, tear the lab down; copies the agents' logs aside for post-mortems
   * (`<run>-logs/<scenario>`, the latest run; a failed run's also to `<scenario>-failed-<time>`, so
   * the next run of the scenario does not replace them, with each server's log). Returns where a
   * failed run's logs went.
   */
  async teardown(scenario: string, failed = false): Promise<string | null> {
    await this.writers?.stop().catch(() => {});
    for (const [h, a] of this.agents) {
      if (a.pid === undefined) continue;
      kill(a.pid, "SIGCONT");
      try {
        this.signalAgent(h, "SIGKILL");
      } catch {
        // Already gone.
      }
    }
    this.agents.clear();
    await sleep(300);
    const keep = join(`${RUN}-logs`, scenario);
    rmSync(keep, { recursive: true, force: true });
    let kept: string | null = null;
    if (existsSync(join(RUN, "agents"))) {
      cpSync(join(RUN, "agents"), keep, { recursive: true });
      if (failed) {
        kept = join(`${RUN}-logs`, `${scenario}-failed-${new Date().toISOString().replace(/[:.]/g, "")}`);
        cpSync(join(RUN, "agents"), kept, { recursive: true });
        // The servers' own account (timeline switches, WAL receiver errors) beside the agents'.
        for (const h of this.lab.hosts)
          if (existsSync(h.logFile)) cpSync(h.logFile, join(kept, h.name, "postgres.log"));
      }
    }
    await sweepLeftovers();
    return kept;
  }

  /** Reset a host as a watchdog would: SIGKILL every process in its namespace, at once. */
  async resetHost(h: string): Promise<number[]> {
    const ns = this.lab.host(h).namespace;
    if (ns === null) throw new Error(`${h} has no namespace`);
    const pids = execFileSync("ip", ["netns", "pids", ns], { encoding: "utf8" })
      .split("\n")
      .filter((x) => /^\d+$/.test(x))
      .map(Number);
    for (const p of pids) kill(p, "SIGKILL");
    // A rebooted host comes back without the addresses its agent had added.
    try {
      execFileSync("ip", ["-n", ns, "addr", "del", `${VIP}/24`, "dev", "eth0"], { stdio: "ignore" });
    } catch {
      // It did not hold the VIP.
    }
    return pids;
  }
}

/**
 * The hardware behind a simulated watchdog device (a regular file the agent writes to, its
 * timeout in `<file>.timeout`; see apps/agent/src/watchdog/device.ts). Armed from the first
 * keepalive after a magic close ('V'); when an armed device is not fed for its timeout it resets
 * the host: every process in the host's namespace is SIGKILLed at once, as a reboot would stop
 * them. It never touches /dev/watchdog.
 */
export class WatchdogEmulator {
  /** When (now()) and how each fired host was reset. */
  readonly fired: { host: string; at: number; pids: number }[] = [];
  private timer: NodeJS.Timeout | undefined;
  private readonly seen = new Map<string, { size: number; at: number; armed: boolean }>();
  private busy = false;

  constructor(
    private readonly world: ChaosWorld,
    private readonly devices: Record<string, string>,
    private readonly timeoutMs: number,
  ) {}

  start(): void {
    this.timer = setInterval(() => void this.tick(), 20);
  }

  stop(): void {
    clearInterval(this.timer);
  }

  private async tick(): Promise<void> {
    if (this.busy) return;
    this.busy = true;
    try {
      const t = now();
      for (const [h, file] of Object.entries(this.devices)) {
        if (this.fired.some((f) => f.host === h)) continue;
        let size = -1;
        let last = "";
        try {
          const buf = readFileSync(file);
          size = buf.length;
          last = size > 0 ? String.fromCharCode(buf[size - 1] as number) : "";
        } catch {
          continue;
        }
        const prev = this.seen.get(h);
        if (prev === undefined || size !== prev.size) {
          this.seen.set(h, { size, at: t, armed: size > 0 && last !== "V" });
          continue;
        }
        if (prev.armed && t - prev.at > this.timeoutMs) {
          const pids = await this.world.resetHost(h);
          this.fired.push({ host: h, at: now(), pids: pids.length });
          this.world.notes.push(`watchdog reset ${h} (${pids.length} processes) at ${Math.round(t)}`);
        }
      }
    } finally {
      this.busy = false;
    }
  }
}
