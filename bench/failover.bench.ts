/**
 * Failover time on real hosts (issue 15): three PostgreSQL 15 hosts in network namespaces, no
 * VIP unless asked (EFM_BENCH_VIP), the real `bin/efm-agent` on each, and a client that opens a
 * new connection to every host every 50 ms and writes where it can. Failover time = fault to the
 * first acknowledged write on a new primary (over its own address). Scenarios: the master database killed with SIGKILL, and the master host cut off
 * from everyone (iptables inside its namespace). Settings: fast and the guide's defaults.
 *
 * Printed and written to a JSON file, never asserted: speed is measured here, correctness is
 * the tests' job. What IS printed loudly is a safety violation: the old master acknowledging a
 * write after the new master's first one (two writable masters).
 *
 * Knobs (environment):
 *   EFM_BENCH_FAST_REPS (5), EFM_BENCH_DEFAULT_REPS (5; a host loss at the defaults takes about 1.5 min a run): repetitions per scenario;
 *   EFM_BENCH_SETTINGS ("fast,default"), EFM_BENCH_SCENARIOS ("crash,isolate"): what to run;
 *   EFM_BENCH_OUT (/tmp/efm-bench-failover.json): the result file;
 *   EFM_BENCH_LOGS (/tmp/efm-bench-failover-logs): each run's agent logs are kept here, one
 *   folder per run (<settings>-<scenario>[-vip]-<rep>/<host>/), emptied when the benchmark starts;
 *   EFM_BENCH_VIP (0): 1 gives the cluster a virtual IP (10.201.15.200 on eth0:1, the databases
 *   listen on every address) and the client also writes through it every 50 ms; each run then
 *   reports a second failover time, fault to the first write through the VIP acknowledged by a
 *   new master (the server names itself in the reply). The first figure stays comparable with
 *   runs without a VIP: the difference is what the VIP costs;
 *   EFM_BENCH_PING_COMMAND (the guide's `/bin/ping -q -c3 -w5`): pingServerCommand. A free VIP
 *   answers nothing, so its check lasts the command's own deadline or remote.timeout, whichever
 *   ends first: e.g. `/bin/ping -q -c2 -i0.2 -w0.3` bounds it at 0.3 s.
 * Needs root (namespaces) and `pnpm build` (bin/efm-agent loads apps/agent/dist).
 *
 * Reserved for this bench: namespace prefix ee15, subnet 10.201.15.0/24, db port 15425,
 * VIP 10.201.15.200, agent port 7800 and admin port 7809 inside the namespaces, run folder
 * /tmp/efm-bench-failover.
 */
import type { ChildProcess } from "node:child_process";
import {
  cpSync,
  existsSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { createRequire } from "node:module";
import { cpus, loadavg } from "node:os";
import { join } from "node:path";
import { afterAll, describe, test } from "vitest";
import { type Cluster, createCluster, downCluster } from "../tooling/lab/src/index.ts";
import { encrypt } from "../packages/password-crypto/src/index.ts";
import { AGENT_BIN, EFM_BIN, type StatusJson, sleep, waitUntil } from "../test-e2e/harness.ts";

// `pg` is a dependency of the e2e package, not of the root: load it from there.
const pg = createRequire(new URL("../test-e2e/package.json", import.meta.url))("pg") as typeof import("pg");

const RUN = "/tmp/efm-bench-failover";
const LAB_DIR = join(RUN, "lab");
const NAME = "acctg";
const PORT = 15425;
const HOSTS = ["a", "b", "c"] as const;
const OLD = "a";
const TICK_MS = 50;
const isRoot = process.getuid?.() === 0;

const envInt = (k: string, d: number) => {
  const v = process.env[k];
  const n = v === undefined || v === "" ? d : Number(v);
  if (!Number.isInteger(n) || n < 0)
    throw new Error(`${k}=${JSON.stringify(v)}: expected a whole number >= 0`);
  return n;
};
const envList = (k: string, d: string[], allowed: string[]) => {
  const v = process.env[k];
  const xs = v
    ? v
        .split(",")
        .map((s) => s.trim())
        .filter(Boolean)
    : d;
  for (const x of xs)
    if (!allowed.includes(x))
      throw new Error(`${k}: unknown ${JSON.stringify(x)} (use ${allowed.join(", ")})`);
  return xs;
};

const SETTINGS: Record<string, { props: Record<string, string>; window: string; deadlineMs: number }> = {
  fast: {
    props: {
      "local.period": "1",
      "local.timeout": "2",
      "local.timeout.final": "1",
      "remote.timeout": "1",
      "jgroups.timeout": "500",
      "jgroups.max.tries": "2",
    },
    window: "crash: local.period 1 s + final 1 s = 2 s; host loss: 500 ms x 2 = 1 s",
    deadlineMs: 90_000,
  },
  default: {
    props: {
      "local.period": "10",
      "local.timeout": "60",
      "local.timeout.final": "10",
      "remote.timeout": "10",
      "jgroups.timeout": "5000",
      "jgroups.max.tries": "8",
    },
    window: "crash: local.period 10 s + final 10 s = 20 s; host loss: 5000 ms x 8 = 40 s",
    deadlineMs: 300_000,
  },
};
const TARGETS: Record<string, string> = {
  "fast/crash": "<= 1.0 s",
  "fast/isolate": "<= 2.0 s",
  "default/crash": "<= window + 2 s",
  "default/isolate": "<= window + 2 s",
};

const REPS: Record<string, number> = {
  fast: envInt("EFM_BENCH_FAST_REPS", 5),
  default: envInt("EFM_BENCH_DEFAULT_REPS", 5),
};
const RUN_SETTINGS = envList("EFM_BENCH_SETTINGS", ["fast", "default"], Object.keys(SETTINGS));
const RUN_SCENARIOS = envList("EFM_BENCH_SCENARIOS", ["crash", "isolate"], ["crash", "isolate"]);
const envStr = (k: string, d: string) => process.env[k] || d;
const OUT = envStr("EFM_BENCH_OUT", "/tmp/efm-bench-failover.json");
const LOGS = envStr("EFM_BENCH_LOGS", "/tmp/efm-bench-failover-logs");
const WITH_VIP = envInt("EFM_BENCH_VIP", 0) > 0;
/** pingServerCommand for the VIP and ping-server checks; unset: the guide's `/bin/ping -q -c3 -w5`. */
const PING_COMMAND = envStr("EFM_BENCH_PING_COMMAND", "") || undefined;
const VIP = "10.201.15.200";
const VIP_PROPS = {
  virtualIp: VIP,
  "virtualIp.interface": "eth0:1",
  "virtualIp.netmask": "255.255.255.0",
};

// ---- the client ----

interface Ack {
  host: string; // with via "vip", the host whose server answered (its cluster_name)
  via: "tcp" | "socket" | "vip";
  at: number; // epoch ms, comparable with the agents' pino `time` (one kernel clock for all namespaces)
}

/**
 * Every 50 ms, for every host, a new connection and one INSERT, over TCP from the root
 * namespace (the issue's client) and over the host's Unix socket (a client on the host itself:
 * it still reaches an isolated master, so the old master's last acknowledged write is seen even
 * when the network cannot see it). Attempts overlap; each is bounded to 2 s, at most 10 at once
 * per host and channel (40 through the VIP).
 */
class Writer {
  readonly acks: Ack[] = [];
  /** The last refusal per host and channel, to explain a client that never writes. */
  readonly lastError = new Map<string, string>();
  private timer: NodeJS.Timeout | undefined;
  private readonly inflight = new Map<string, number>();
  private readonly pending = new Set<Promise<void>>();

  constructor(private readonly lab: Cluster) {}

  start(): void {
    this.timer = setInterval(() => {
      for (const h of HOSTS) this.attempt(h, "tcp");
      // The socket channel only matters where the network may be cut: the old master.
      this.attempt(OLD, "socket");
      if (WITH_VIP) this.attempt("vip", "vip");
    }, TICK_MS);
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    await Promise.race([Promise.allSettled([...this.pending]), sleep(5_000)]);
  }

  private attempt(host: string, via: Ack["via"]): void {
    const key = `${host}/${via}`;
    // A silent host: do not pile up sockets. Through the VIP, a new attempt every tick all the
    // same (as many as the 2 s connect bound keeps open): attempts sent to the old holder's MAC
    // hang until that bound, and capped at 10 they would hold back the first one after the VIP
    // moved by up to 1.5 s.
    if ((this.inflight.get(key) ?? 0) >= (via === "vip" ? 40 : 10)) return;
    const limits = { connectionTimeoutMillis: 2000, query_timeout: 2000, statement_timeout: 2000 };
    const cfg =
      via === "socket"
        ? { ...this.lab.superuserConnection(host), ...limits }
        : via === "vip"
          ? { ...this.lab.efmConnection(OLD), host: VIP, ...limits }
          : { ...this.lab.efmConnection(host), ...limits };
    const client = new pg.Client(cfg);
    client.on("error", () => {});
    this.inflight.set(key, (this.inflight.get(key) ?? 0) + 1);
    const p = (async () => {
      try {
        await client.connect();
        // Through the VIP the client does not know which server it reached: the server says.
        const r = await client.query<{ server: string }>(
          "INSERT INTO bench_writes(host, via) VALUES (current_setting('cluster_name'), $1) RETURNING host AS server",
          [via],
        );
        this.acks.push({ host: via === "vip" ? (r.rows[0]?.server ?? "?") : host, via, at: Date.now() });
      } catch (e) {
        // Down, read-only (a standby) or unreachable: exactly what the client is probing.
        this.lastError.set(key, (e as Error).message);
      } finally {
        // end() waits for the server's goodbye, which an isolated host never sends: bound it.
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

// ---- agents' logs → timeline ----

interface LogLine {
  host: string;
  time: number;
  level: number;
  msg: string;
  rule?: string;
  from?: string;
  to?: string;
  event?: string;
  action?: string | ({ type?: string } & Record<string, unknown>); // an object when acting, a type when failed
  err?: unknown;
  watch?: string; // the agent's monitoring connection: connected, dropped, lost, restored
  promoteBy?: string; // "sql" (pg_promote) or "helper" (pg_ctl)
}

function readLogs(agentDir: (h: string) => string): LogLine[] {
  const out: LogLine[] = [];
  for (const h of HOSTS) {
    const dir = agentDir(h);
    if (!existsSync(dir)) continue;
    for (const f of readdirSync(dir)) {
      if (!f.endsWith(".log") || f.startsWith("startup-")) continue;
      for (const line of readFileSync(join(dir, f), "utf8").split("\n")) {
        if (!line.startsWith("{")) continue;
        try {
          const o = JSON.parse(line) as Omit<LogLine, "host">;
          if (typeof o.time === "number") out.push({ ...o, host: h });
        } catch {
          // A torn last line of a killed agent.
        }
      }
    }
  }
  return out.sort((x, y) => x.time - y.time);
}

// Steps of the guide's failure handling, recognised by action type, event type or rule name
// (never by the free-text message), first match wins.
const STEPS: [string, RegExp][] = [
  ["fence", /fenceDb|dbFenced|selfFence|releaseVip|isolation\.|lease\.expired/],
  ["lease wait", /notBefore|leaseLost|lease\.lost/],
  ["LSN collection", /queryLsn|lsnQueried|lsnReply|lsnsCollected|lsn\.|promo\.rank/],
  [
    "candidate checks",
    /checkPromotable|promotableReply|promotableChecked|candidateVerified|pingServer|pingVip|checkLocalRole|precheck/,
  ],
  ["VIP assign", /assignVip/],
  ["promote", /promoteDb|dbPromoted|promotionResult|newMaster|promo\.(?!start|rank|timeout|noCandidate)/],
  ["confirmation", /checkRemoteDb|checkDb\.|cand\.masterDown|dbFailureVerdict|inv\./],
  ["detection", /dbFailed|memberSuspected|memberGone|quorumLost|gone\.|local\.fail|suspect|watch:lost/],
];

const actionType = (l: LogLine) => (typeof l.action === "string" ? l.action : l.action?.type) ?? "";

const ROUTINE_ACTION = /^(setTimer|cancelTimer|checkLocalDb|send|broadcast|persist|writeState|notify)$/;
// Steady-state chatter (lease renewals, healthy periodic checks, mail retries) hides the steps.
const ROUTINE_RULE = /^(lease\.valid|local\.ok|local\.tick|local\.tick\.skip|reconcile\.ok)$/;
const ROUTINE_MSG = /^notification /;

function describeLine(l: LogLine): string {
  const parts = [
    actionType(l) ? `action ${actionType(l)}` : "",
    l.event ? `event ${l.event}` : "",
    l.rule ? `rule ${l.rule}` : "",
    l.from !== undefined && l.from !== l.to ? `${l.from} -> ${l.to}` : "",
  ].filter(Boolean);
  return `${parts.join(", ")}${parts.length ? ": " : ""}${l.msg}`;
}

interface TimelineEntry {
  t: number; // ms after the fault
  host: string;
  step: string;
  what: string;
}

function timeline(
  logs: LogLine[],
  fault: number,
  end: number,
): { entries: TimelineEntry[]; firstOf: Record<string, TimelineEntry> } {
  const entries: TimelineEntry[] = [];
  const firstOf: Record<string, TimelineEntry> = {};
  for (const l of logs) {
    if (l.time < fault - 200 || l.time > end + 500) continue;
    if (ROUTINE_ACTION.test(actionType(l))) continue;
    if (l.event === "timer" && l.from === l.to && !l.rule) continue;
    if ((l.rule && ROUTINE_RULE.test(l.rule)) || ROUTINE_MSG.test(l.msg ?? "")) continue;
    const text = describeLine(l);
    const key = `${actionType(l)} ${l.event ?? ""} ${l.rule ?? ""}${l.watch ? ` watch:${l.watch}` : ""}${l.promoteBy ? " promoteDb" : ""}`;
    let step = STEPS.find(([, re]) => re.test(key))?.[0] ?? "";
    // The old master pinging the well-known server is its isolation check, not a candidate's.
    if (l.host === OLD && /pingServer/.test(key)) step = "isolation check";
    const e = { t: l.time - fault, host: l.host, step, what: text.slice(0, 160) };
    entries.push(e);
    if (step && l.time >= fault && !firstOf[step]) firstOf[step] = e;
  }
  return { entries, firstOf };
}

// ---- one run ----

interface RunResult {
  settings: string;
  scenario: string;
  rep: number;
  faultAt: number;
  faultDoneMs: number | null;
  failoverMs: number | null; // fault → first TCP-acknowledged write on a new primary
  /** EFM_BENCH_VIP: fault → first write through the VIP acknowledged by a new master. */
  vipFailoverMs?: number | null;
  newMaster: string | null;
  newFirstAckMs: number | null; // any channel
  oldLastAckMs: number | null; // old master's last acknowledged write, relative to the fault
  violation: string | null;
  /** Set when more than one host took writes after the fault, in order: "host +first..+last ms". */
  masters?: string[];
  oldAfterwards: string;
  steps: Record<string, number>; // first time each step was seen, ms after the fault
  timeline: TimelineEntry[];
  error?: string;
}

const agents = new Map<string, ChildProcess>();
let lab: Cluster | undefined;

async function stopAgents(): Promise<void> {
  const live = [...agents.values()].filter((a) => a.exitCode === null && a.signalCode === null);
  // Whole process group (spawned detached): the agent and anything it started.
  const signal = (a: ChildProcess, s: NodeJS.Signals) => {
    try {
      if (a.pid) process.kill(-a.pid, s);
    } catch {
      // Already gone.
    }
  };
  for (const a of live) signal(a, "SIGTERM");
  await waitUntil(() => live.every((a) => a.exitCode !== null || a.signalCode !== null), 5_000, 100);
  for (const a of live) signal(a, "SIGKILL");
  agents.clear();
}

async function teardown(): Promise<void> {
  await stopAgents();
  await lab?.down().catch((e: Error) => console.log(`lab down failed: ${e.message}`));
  lab = undefined;
  await downCluster(LAB_DIR).catch(() => {});
}

async function oneRun(settings: string, scenario: string, rep: number): Promise<RunResult> {
  const cfg = SETTINGS[settings];
  if (!cfg) throw new Error(`unknown settings ${settings}`);
  await teardown();
  rmSync(join(RUN, "agents"), { recursive: true, force: true });
  const agentDir = (h: string) => join(RUN, "agents", h);
  const env = (h: string): NodeJS.ProcessEnv => ({
    ...process.env,
    EFM_LOCK_DIR: agentDir(h),
    EFM_LOG_DIR: agentDir(h),
    EFM_RUN_DIR: agentDir(h),
    EFM_STATE_DIR: agentDir(h),
  });
  const result: RunResult = {
    settings,
    scenario,
    rep,
    faultAt: 0,
    faultDoneMs: null,
    failoverMs: null,
    newMaster: null,
    newFirstAckMs: null,
    oldLastAckMs: null,
    violation: null,
    oldAfterwards: "unknown",
    steps: {},
    timeline: [],
  };
  let writer: Writer | undefined;
  try {
    lab = await createCluster({
      name: "benchfo",
      // The VIP reaches a database only if it listens on every address of its host.
      ...(WITH_VIP ? { postgresConf: { listen_addresses: "*" } } : {}),
      mode: "netns",
      subnet: "10.201.15.0/24",
      prefix: "ee15",
      port: PORT,
      runDir: LAB_DIR,
      hosts: [
        { name: "a", role: "master" },
        { name: "b", role: "standby" },
        { name: "c", role: "standby" },
      ],
    });
    const l = lab;
    await l.psql(
      OLD,
      `CREATE TABLE bench_writes (id bigserial PRIMARY KEY, host text, via text, at timestamptz DEFAULT now());
       GRANT INSERT, SELECT ON bench_writes TO ${l.efmUser}; GRANT USAGE ON SEQUENCE bench_writes_id_seq TO ${l.efmUser};
       -- db.user may promote over SQL (pg_promote), as the guide's privileges allow; a grant is
       -- per database, so it is made here, in db.database.
       GRANT EXECUTE ON FUNCTION pg_promote(boolean, integer) TO ${l.efmUser};`,
    );
    await l.waitStreaming(OLD, ["b", "c"]);
    const files = l.writeEfmFiles(NAME, {
      passwordEncrypted: encrypt(l.efmPassword, NAME),
      agentPort: 7800,
      adminPort: 7809,
      nodes: "all",
      properties: {
        ...cfg.props,
        ...(WITH_VIP ? VIP_PROPS : {}),
        ...(PING_COMMAND ? { pingServerCommand: PING_COMMAND } : {}),
        pingServerIp: l.bridgeAddress ?? "",
        "user.email": "dba@example.com",
        "from.email": "efm@example.com",
        // No mail server in the namespaces: notifications still reach the cluster log.
        "notification.smtp.port": "1",
        // FINE: the engine's actions (fence, LSN queries, promote) are logged at debug.
        "efm.loglevel": "FINE",
      },
    });
    const dirs: Record<string, string> = {};
    for (const h of HOSTS) {
      dirs[h] = files[h]?.dir ?? "";
      mkdirSync(agentDir(h), { recursive: true });
      const fd = openSync(join(agentDir(h), "agent.out"), "a");
      agents.set(
        h,
        l.spawn(h, [process.execPath, AGENT_BIN, "start", NAME, "--config-dir", dirs[h] ?? ""], {
          env: env(h),
          stdio: ["ignore", fd, fd],
          detached: true,
        }),
      );
    }
    const status = async (from: string): Promise<StatusJson | null> => {
      const r = await l.exec(
        from,
        [process.execPath, EFM_BIN, "--config-dir", dirs[from] ?? "", "cluster-status-json", NAME],
        { env: env(from), timeoutMs: 30_000 },
      );
      try {
        return JSON.parse(r.stdout) as StatusJson;
      } catch {
        return null;
      }
    };
    const typeOf = (s: StatusJson | null, h: string) => s?.nodes[l.host(h).address]?.type;
    const healthy = await waitUntil(
      async () => {
        const s = await status("b");
        return typeOf(s, "a") === "Master" && typeOf(s, "b") === "Standby" && typeOf(s, "c") === "Standby";
      },
      120_000,
      1000,
    );
    if (!healthy) throw new Error("the cluster did not form (a Master, b and c Standby) within 120 s");
    // The status shows the roles before every agent has finished its start-up checks: a fault
    // then would measure start-up, not failover. Wait for each agent's "ready" line.
    const ready = await waitUntil(
      () =>
        HOSTS.every((h) => readLogs(agentDir).some((x) => x.host === h && /\bis ready\b/.test(x.msg ?? ""))),
      60_000,
      500,
    );
    if (!ready) throw new Error("not every agent logged that it is ready within 60 s");
    if (WITH_VIP) {
      const held = await waitUntil(
        async () => (await l.exec(OLD, ["ip", "-o", "addr", "show"])).stdout.includes(`inet ${VIP}/`),
        30_000,
        500,
      );
      if (!held) throw new Error(`the master did not take the VIP ${VIP} within 30 s`);
    }
    await sleep(1_000);

    writer = new Writer(l);
    writer.start();
    await sleep(2_000); // the client sees the master writable before the fault
    if (!writer.acks.some((a) => a.host === OLD && a.via === "tcp")) {
      throw new Error(
        `the client could not write to the master before the fault: ${[...writer.lastError].map(([k, m]) => `${k}: ${m}`).join("; ")}`,
      );
    }
    if (WITH_VIP && !writer.acks.some((a) => a.host === OLD && a.via === "vip")) {
      throw new Error(
        `the client could not write through the VIP before the fault: ${writer.lastError.get("vip/vip")}`,
      );
    }
    const fault = Date.now();
    result.faultAt = fault;
    if (scenario === "crash") await l.killDb(OLD);
    else await l.isolate(OLD);
    // The clock starts before the fault command; this is when the command returned (kill -9 or
    // iptables are not instant on a loaded machine, so a write may still land in between).
    result.faultDoneMs = Date.now() - fault;

    const w = writer;
    const newFirst = (via?: Ack["via"]) =>
      w.acks.find((a) => a.host !== OLD && a.at >= fault && (via === undefined || a.via === via));
    const got = await waitUntil(() => newFirst("tcp") && (!WITH_VIP || newFirst("vip")), cfg.deadlineMs, 20);
    // Keep writing a little longer: a late write on the old master is the violation to catch.
    await sleep(2_000);
    await writer.stop();
    const end = Date.now();

    const firstTcp = newFirst("tcp");
    const firstAny = newFirst();
    const oldAcks = w.acks.filter((a) => a.host === OLD);
    const oldLast = oldAcks[oldAcks.length - 1];
    result.failoverMs = firstTcp ? firstTcp.at - fault : null;
    if (WITH_VIP) {
      const firstVip = newFirst("vip");
      result.vipFailoverMs = firstVip ? firstVip.at - fault : null;
      if (firstVip) result.steps["first write (VIP)"] = firstVip.at - fault;
    }
    result.newMaster = firstAny?.host ?? null;
    result.newFirstAckMs = firstAny ? firstAny.at - fault : null;
    result.oldLastAckMs = oldLast ? oldLast.at - fault : null;
    // Each new primary's writable span (first to last acknowledged write after the fault). Two
    // spans that overlap are two writable masters; one after the other is a second failover (the
    // first new master fenced itself, e.g. on a lease lost under load): reported, not a violation.
    const spans = new Map<string, { first: number; last: number }>();
    for (const a of w.acks) {
      if (a.at < fault || a.host === OLD) continue;
      const s = spans.get(a.host);
      spans.set(a.host, s ? { first: s.first, last: Math.max(s.last, a.at) } : { first: a.at, last: a.at });
    }
    const order = [...spans].sort((x, y) => x[1].first - y[1].first);
    if (order.length > 1) {
      result.masters = order.map(([h, s]) => `${h} +${s.first - fault}..+${s.last - fault} ms`);
    }
    const problems: string[] = [];
    if (firstAny && oldLast && oldLast.at >= firstAny.at) {
      problems.push(
        `old master ${OLD} acknowledged a write (${oldLast.via}) at +${oldLast.at - fault} ms, after new master ${firstAny.host}'s first at +${firstAny.at - fault} ms`,
      );
    }
    for (let i = 1; i < order.length; i++) {
      const [h, s] = order[i]!;
      const [p, ps] = order[i - 1]!;
      if (s.first <= ps.last) {
        problems.push(
          `new masters ${p} (last write +${ps.last - fault} ms) and ${h} (first write +${s.first - fault} ms) both took writes at once`,
        );
      }
    }
    result.violation = problems.length ? problems.join("; ") : null;

    if (!l.isRunning(OLD)) result.oldAfterwards = "database stopped";
    else {
      result.oldAfterwards = await l
        .inRecovery(OLD)
        .then((r) => (r ? "in recovery" : "WRITABLE"))
        .catch((e: Error) => `not answering (${e.message.slice(0, 60)})`);
    }
    const lastFirst = Math.max(firstAny?.at ?? 0, newFirst("vip")?.at ?? 0);
    const tl = timeline(readLogs(agentDir), fault, lastFirst || end);
    result.timeline = tl.entries;
    for (const [k, e] of Object.entries(tl.firstOf)) result.steps[k] = e.t;
    if (firstAny) result.steps["first write"] = firstAny.at - fault;
    if (!got)
      result.error = `no write acknowledged on a new primary${WITH_VIP ? " (over its address and through the VIP)" : ""} within ${cfg.deadlineMs / 1000} s`;
  } catch (e) {
    result.error = (e as Error).message;
    const tail = HOSTS.map((h) => {
      const f = join(agentDir(h), "agent.out");
      return `== ${h}\n${existsSync(f) ? readFileSync(f, "utf8").split("\n").slice(-15).join("\n") : "(none)"}`;
    }).join("\n");
    console.log(`run ${settings}/${scenario} #${rep} failed: ${result.error}\n${tail}`);
  } finally {
    await writer?.stop();
    await teardown();
    keepLogs(agentDir, `${settings}-${scenario}${WITH_VIP ? "-vip" : ""}-${rep}`);
  }
  return result;
}

/** The agents' logs of one run, for reading a timeline in full (the next run starts afresh). */
function keepLogs(agentDir: (h: string) => string, run: string): void {
  for (const h of HOSTS) {
    const from = agentDir(h);
    if (!existsSync(from)) continue;
    const to = join(LOGS, run, h);
    mkdirSync(to, { recursive: true });
    for (const f of readdirSync(from)) {
      if (f.endsWith(".log") || f === "agent.out") cpSync(join(from, f), join(to, f));
    }
  }
}

// ---- report ----

const sec = (ms: number | null | undefined) =>
  ms === null || ms === undefined ? "-" : `${(ms / 1000).toFixed(2)} s`;
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  if (s.length === 0) return null;
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
};

function printTimeline(r: RunResult): void {
  console.log(
    `\nTIMELINE of ${r.settings}/${r.scenario} #${r.rep} (ms after the fault; agents' JSON logs + client):`,
  );
  const marks = [
    {
      t: 0,
      host: OLD,
      step: "fault",
      what: r.scenario === "crash" ? "postmaster killed (SIGKILL)" : "host isolated (iptables DROP)",
    },
    ...(r.faultDoneMs !== null
      ? [{ t: r.faultDoneMs, host: OLD, step: "fault", what: "fault command returned" }]
      : []),
    ...r.timeline,
    ...(r.oldLastAckMs !== null
      ? [
          {
            t: r.oldLastAckMs,
            host: OLD,
            step: "old last write",
            what: "old master's last acknowledged write",
          },
        ]
      : []),
    ...(r.vipFailoverMs !== null && r.vipFailoverMs !== undefined
      ? [
          {
            t: r.vipFailoverMs,
            host: r.newMaster ?? "?",
            step: "first write (VIP)",
            what: "first write through the VIP acknowledged by the new master",
          },
        ]
      : []),
    ...(r.newFirstAckMs !== null
      ? [
          {
            t: r.newFirstAckMs,
            host: r.newMaster ?? "?",
            step: "first write",
            what: "first acknowledged write on the new primary",
          },
        ]
      : []),
  ].sort((x, y) => x.t - y.t);
  for (const e of marks) {
    console.log(`  ${String(e.t).padStart(7)}  ${e.host}  ${(e.step || "").padEnd(16)} ${e.what}`);
  }
  console.log("  first time each step was seen:");
  for (const k of STEP_ORDER)
    console.log(`    ${k.padEnd(17)} ${r.steps[k] === undefined ? "-" : `+${r.steps[k]} ms`}`);
}

const STEP_ORDER = [
  "detection",
  "confirmation",
  "fence",
  "lease wait",
  "LSN collection",
  "candidate checks",
  "promote",
  "VIP assign",
  "first write",
  "first write (VIP)",
];

/** min / median / max (ms after the fault) of the first time each step was seen, over the runs. */
function stepStats(rs: RunResult[]): Record<string, { n: number; min: number; median: number; max: number }> {
  const out: Record<string, { n: number; min: number; median: number; max: number }> = {};
  for (const k of STEP_ORDER) {
    const xs = rs.map((r) => r.steps[k]).filter((x): x is number => x !== undefined);
    if (xs.length === 0) continue;
    out[k] = { n: xs.length, min: Math.min(...xs), median: median(xs) as number, max: Math.max(...xs) };
  }
  return out;
}

function report(results: RunResult[]): void {
  console.log(
    `\nFailover benchmark (issue 15): repetitions fast=${REPS.fast}, default=${REPS.default} ` +
      "(EFM_BENCH_FAST_REPS / EFM_BENCH_DEFAULT_REPS); failover = fault to the first acknowledged write on a new primary (TCP client)" +
      (WITH_VIP ? `; with a VIP (${VIP}): also through the VIP` : ""),
  );
  for (const settings of RUN_SETTINGS) {
    for (const scenario of RUN_SCENARIOS) {
      const rs = results.filter((r) => r.settings === settings && r.scenario === scenario);
      if (rs.length === 0) continue;
      const t = rs.map((r) => r.failoverMs).filter((x): x is number => x !== null);
      const old = rs.map((r) => r.oldLastAckMs).filter((x): x is number => x !== null);
      console.log(
        `${settings.padEnd(7)} ${scenario.padEnd(7)} n=${rs.length} ok=${t.length}  median ${sec(median(t))}  ` +
          `min ${sec(t.length ? Math.min(...t) : null)}  max ${sec(t.length ? Math.max(...t) : null)}  ` +
          `target ${TARGETS[`${settings}/${scenario}`]} (${SETTINGS[settings]?.window})  ` +
          `old master's last write median ${sec(median(old))}  afterwards: ${[...new Set(rs.map((r) => r.oldAfterwards))].join(" / ")}`,
      );
      if (WITH_VIP) {
        const v = rs.map((r) => r.vipFailoverMs).filter((x): x is number => x !== null && x !== undefined);
        console.log(
          `${"".padEnd(15)} through the VIP: ok=${v.length}  median ${sec(median(v))}  ` +
            `min ${sec(v.length ? Math.min(...v) : null)}  max ${sec(v.length ? Math.max(...v) : null)}`,
        );
      }
      const stats = stepStats(rs.filter((r) => r.failoverMs !== null));
      console.log("  first time each step was seen, ms after the fault (min / median / max over the runs):");
      for (const [k, v] of Object.entries(stats)) {
        console.log(
          `    ${k.padEnd(17)} ${String(v.min).padStart(7)} ${String(v.median).padStart(7)} ${String(v.max).padStart(7)}  (n=${v.n})`,
        );
      }
      for (const r of rs) {
        if (r.error) console.log(`  #${r.rep} ERROR: ${r.error}`);
        if (r.violation) console.log(`  #${r.rep} !!!!!!!! SAFETY VIOLATION: ${r.violation} !!!!!!!!`);
        else if (r.masters)
          console.log(`  #${r.rep} second failover (one after the other): ${r.masters.join(" then ")}`);
      }
    }
  }
  const shown = new Set<string>();
  for (const r of results) {
    const key = `${r.settings}/${r.scenario}`;
    if (shown.has(key) || r.failoverMs === null) continue;
    shown.add(key);
    printTimeline(r);
  }
  writeFileSync(
    OUT,
    `${JSON.stringify(
      {
        when: new Date().toISOString(),
        // The machine is shared: its load says how far to trust the figures.
        loadavg: loadavg(),
        cpus: cpus().length,
        reps: REPS,
        vip: WITH_VIP ? VIP : null,
        pingServerCommand: PING_COMMAND ?? "/bin/ping -q -c3 -w5",
        settings: SETTINGS,
        targets: TARGETS,
        summary: Object.fromEntries(
          RUN_SETTINGS.flatMap((settings) =>
            RUN_SCENARIOS.map((scenario) => {
              const rs = results.filter((r) => r.settings === settings && r.scenario === scenario);
              const t = rs.map((r) => r.failoverMs).filter((x): x is number => x !== null);
              const v = rs
                .map((r) => r.vipFailoverMs)
                .filter((x): x is number => x !== null && x !== undefined);
              return [
                `${settings}/${scenario}`,
                {
                  n: rs.length,
                  ok: t.length,
                  medianMs: median(t),
                  minMs: t.length ? Math.min(...t) : null,
                  maxMs: t.length ? Math.max(...t) : null,
                  steps: stepStats(rs.filter((r) => r.failoverMs !== null)),
                  ...(WITH_VIP
                    ? {
                        vip: {
                          ok: v.length,
                          medianMs: median(v),
                          minMs: v.length ? Math.min(...v) : null,
                          maxMs: v.length ? Math.max(...v) : null,
                        },
                      }
                    : {}),
                },
              ];
            }),
          ),
        ),
        results,
      },
      null,
      2,
    )}\n`,
  );
  console.log(`\nresult written to ${OUT}`);
}

// Interrupted (Ctrl-C, a timeout's SIGTERM): afterAll does not run, so stop the agents' process
// groups and remove the namespaces and servers here.
for (const sig of ["SIGINT", "SIGTERM"] as const) {
  process.once(sig, () => {
    for (const a of agents.values()) {
      try {
        if (a.pid) process.kill(-a.pid, "SIGKILL");
      } catch {
        // Already gone.
      }
    }
    void downCluster(LAB_DIR)
      .catch(() => {})
      .finally(() => process.exit(130));
  });
}

describe.skipIf(!isRoot)("failover time on namespace hosts", () => {
  const results: RunResult[] = [];

  rmSync(LOGS, { recursive: true, force: true });

  afterAll(async () => {
    await teardown();
    rmSync(RUN, { recursive: true, force: true });
  });

  test(
    "crash and host isolation at fast and default settings",
    async () => {
      for (const settings of RUN_SETTINGS) {
        for (const scenario of RUN_SCENARIOS) {
          for (let rep = 1; rep <= (REPS[settings] ?? 0); rep++) {
            const r = await oneRun(settings, scenario, rep);
            console.log(
              `${settings}/${scenario}${WITH_VIP ? "+vip" : ""} #${rep}: failover ${sec(r.failoverMs)}${WITH_VIP ? `, through the VIP ${sec(r.vipFailoverMs)}` : ""} (new master ${r.newMaster ?? "-"}), ` +
                `old master's last write ${sec(r.oldLastAckMs)}${r.masters ? `  SECOND FAILOVER: ${r.masters.join(" then ")}` : ""}${r.violation ? `  !!! VIOLATION: ${r.violation}` : ""}${r.error ? `  ERROR: ${r.error}` : ""}`,
            );
            results.push(r);
          }
        }
      }
      report(results);
    },
    24 * 3600_000,
  );
});
