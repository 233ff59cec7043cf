/**
 * Shared harness of the end-to-end suites: real lab clusters (PostgreSQL 15 on loopback
 * addresses), real `bin/efm-agent` daemons as child processes, the real `bin/efm` CLI, and an
 * in-process SMTP server that collects what the agents send.
 */
import { type ChildProcess, execFile, spawn } from "node:child_process";
import {
  appendFileSync,
  cpSync,
  existsSync,
  mkdirSync,
  openSync,
  readFileSync,
  writeFileSync,
} from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { type Cluster, createCluster, type EfmHostFiles, type HostSpec } from "@efm/lab";
import { encrypt } from "@efm/password-crypto";
import { SMTPServer } from "smtp-server";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");
export const EFM_BIN = join(ROOT, "bin", "efm");
export const AGENT_BIN = join(ROOT, "bin", "efm-agent");

/** Settings that make detection take seconds instead of minutes. */
export const FAST: Record<string, string> = {
  "local.period": "1",
  "local.timeout": "5",
  "local.timeout.final": "2",
  "remote.timeout": "3",
  "jgroups.timeout": "500",
  "jgroups.max.tries": "4",
  pingServerIp: "127.0.0.1",
  "user.email": "dba@example.com",
  "from.email": "efm@example.com",
};

/** What `efm cluster-status-json` prints (guide 5.3). */
export interface StatusJson {
  nodes: Record<
    string,
    { type: string; agent: string; db: string; info: string; xlog: string; xloginfo: string }
  >;
  allowednodes: string[];
  failoverpriority: string[];
  messages: string[];
}

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Run a command and collect its output; never throws on a non-zero exit. */
export function run(
  argv: string[],
  env: NodeJS.ProcessEnv = process.env,
  timeoutMs = 120_000,
  input?: string,
): Promise<RunResult> {
  return new Promise((resolve) => {
    const child = execFile(
      argv[0] as string,
      argv.slice(1),
      { env, timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024 },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === "number" ? err.code : 128) : 0;
        resolve({ code, stdout: String(stdout), stderr: String(stderr) });
      },
    );
    if (input !== undefined) child.stdin?.end(input);
    else child.stdin?.end();
  });
}

/** One e-mail as the SMTP sink received it. */
export interface Mail {
  subject: string;
  to: string[];
  from: string;
  raw: string;
}

/** Decode RFC 2047 encoded words (nodemailer uses them for long or non-ASCII subjects). */
function decodeWords(s: string): string {
  return s
    .replace(/\?=\s+=\?/g, "?==?")
    .replace(/=\?([^?]+)\?([BbQq])\?([^?]*)\?=/g, (_m, _charset: string, enc: string, text: string) =>
      enc.toUpperCase() === "B"
        ? Buffer.from(text, "base64").toString("utf8")
        : Buffer.from(
            text
              .replace(/_/g, " ")
              .replace(/=([0-9A-Fa-f]{2})/g, (_x, h: string) => String.fromCharCode(Number.parseInt(h, 16))),
            "latin1",
          ).toString("utf8"),
    );
}

function headerOf(raw: string, name: string): string {
  const head = raw.split(/\r?\n\r?\n/)[0] ?? "";
  const unfolded = head.replace(/\r?\n[ \t]+/g, " ");
  const line = unfolded.split(/\r?\n/).find((l) => l.toLowerCase().startsWith(`${name.toLowerCase()}:`));
  return line ? decodeWords(line.slice(name.length + 1).trim()) : "";
}

/** An SMTP server on 127.0.0.1 (ephemeral port) that keeps every message it is given. */
export class SmtpSink {
  readonly mails: Mail[] = [];
  port = 0;
  private readonly server: SMTPServer;

  constructor() {
    this.server = new SMTPServer({
      authOptional: true,
      disabledCommands: ["STARTTLS", "AUTH"],
      logger: false,
      onData: (stream, session, callback) => {
        const chunks: Buffer[] = [];
        stream.on("data", (c: Buffer) => chunks.push(c));
        stream.on("end", () => {
          const raw = Buffer.concat(chunks).toString("utf8");
          this.mails.push({
            subject: headerOf(raw, "Subject"),
            to: session.envelope.rcptTo.map((r) => r.address),
            from: session.envelope.mailFrom ? session.envelope.mailFrom.address : "",
            raw,
          });
          callback();
        });
      },
    });
  }

  async start(): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      this.server.once("error", reject);
      this.server.listen(0, "127.0.0.1", () => resolve());
    });
    const addr = this.server.server.address();
    if (addr && typeof addr === "object") this.port = addr.port;
  }

  subjects(): string[] {
    return this.mails.map((m) => m.subject);
  }

  /** How many messages have arrived so far: pass it to `waitFor` to ignore older ones. */
  mark(): number {
    return this.mails.length;
  }

  /** Messages since a mark whose subject contains `text`. */
  since(mark: number, text: string): Mail[] {
    return this.mails.slice(mark).filter((m) => m.subject.includes(text));
  }

  /** Wait until a message whose subject matches arrives (after `since`); returns it. */
  async waitFor(match: RegExp | string, timeoutMs = 60_000, since = 0): Promise<Mail> {
    const test = (m: Mail) => (typeof match === "string" ? m.subject.includes(match) : match.test(m.subject));
    const found = await waitUntil(() => this.mails.slice(since).find(test), timeoutMs, 200);
    if (!found) {
      throw new Error(
        `no e-mail with subject ${String(match)} within ${timeoutMs} ms; received:\n${this.subjects().join("\n")}`,
      );
    }
    return found;
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

/** Poll `probe` until it returns something truthy; undefined on timeout. */
export async function waitUntil<T>(
  probe: () => T | undefined | null | false | Promise<T | undefined | null | false>,
  timeoutMs: number,
  everyMs = 500,
): Promise<T | undefined> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v) return v;
    if (Date.now() > end) return undefined;
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Agent processes still alive when the test process exits are killed, whatever happened. */
const live = new Set<ChildProcess>();
process.once("exit", () => {
  for (const c of live) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
});

/** A running (or finished) `bin/efm-agent` child process. */
export class AgentProcess {
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  constructor(
    readonly host: string,
    readonly child: ChildProcess,
    readonly outFile: string,
  ) {
    live.add(child);
    this.exited = new Promise((resolve) => {
      child.once("exit", (code, signal) => {
        live.delete(child);
        resolve({ code, signal });
      });
    });
  }
  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }
  get pid(): number {
    return this.child.pid ?? -1;
  }
}

/** Options for one EFM cluster on a lab cluster's hosts. */
export interface EfmClusterOptions {
  /** Agent (membership) port, the same on every host. */
  agentPort: number;
  /** admin.port of the first host; host i gets adminPort + i. */
  adminPort: number;
  smtp: SmtpSink;
  properties?: Record<string, string>;
  /**
   * Folder holding one agent folder per host (`<agentRoot>/<host>`); several clusters given the
   * same root share their hosts' lock/log/run/state folders, as on a real host. Default: inside
   * each lab host's folder.
   */
  agentRoot?: string;
}

/** One EFM cluster (properties, agents, CLI) over the hosts of a lab cluster. */
export class EfmCluster {
  readonly agents = new Map<string, AgentProcess>();
  readonly files: Record<string, EfmHostFiles>;
  readonly smtp: SmtpSink;
  private readonly agentRoot: string | undefined;

  constructor(
    readonly lab: Cluster,
    readonly name: string,
    opts: EfmClusterOptions,
  ) {
    this.smtp = opts.smtp;
    this.agentRoot = opts.agentRoot;
    this.files = lab.writeEfmFiles(name, {
      passwordEncrypted: encrypt(lab.efmPassword, name),
      agentPort: opts.agentPort,
      adminPort: opts.adminPort,
      nodes: "all",
      properties: {
        ...FAST,
        "notification.smtp.host": "127.0.0.1",
        "notification.smtp.port": String(opts.smtp.port),
        ...opts.properties,
      },
    });
  }

  /** The folder standing for /var/lock/efm, /var/log/efm, /run/efm and /var/lib/efm on a host. */
  agentDir(host: string): string {
    return this.agentRoot ? join(this.agentRoot, host) : join(this.lab.host(host).dir, "agent");
  }

  /** The environment of an agent or CLI on `host` (its EFM_*_DIR folders). */
  env(host: string, extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
    const d = this.agentDir(host);
    return {
      ...process.env,
      EFM_LOCK_DIR: d,
      EFM_LOG_DIR: d,
      EFM_RUN_DIR: d,
      EFM_STATE_DIR: d,
      EFM_LOG_STDOUT: "1",
      ...extra,
    };
  }

  address(host: string): string {
    return this.lab.host(host).address;
  }

  /** The lab host name of an address. */
  hostOf(address: string): string {
    const h = this.lab.hosts.find((x) => x.address === address);
    if (!h) throw new Error(`no lab host has address ${address}`);
    return h.name;
  }

  /** Spawn `bin/efm-agent start <cluster>` for a host; output goes to `<agentDir>/<cluster>.out`. */
  spawnAgent(host: string, env: NodeJS.ProcessEnv = this.env(host)): AgentProcess {
    const dir = this.agentDir(host);
    mkdirSync(dir, { recursive: true });
    const outFile = join(dir, `${this.name}.out`);
    appendFileSync(outFile, `---- spawn ${new Date().toISOString()}\n`);
    const fd = openSync(outFile, "a");
    const child = spawn(
      process.execPath,
      [AGENT_BIN, "start", this.name, "--config-dir", this.files[host]?.dir ?? ""],
      { env, stdio: ["ignore", fd, fd] },
    );
    const agent = new AgentProcess(host, child, outFile);
    recordPid(this.lab.runDir, child.pid);
    return agent;
  }

  /** Start the agent of a host and remember it. */
  start(host: string): AgentProcess {
    const a = this.spawnAgent(host);
    this.agents.set(host, a);
    return a;
  }

  /**
   * Start the agents of `hosts` and wait until each has finished its start-up checks (its
   * "… agent running on <address> for cluster <name>" notification) and the cluster shows them.
   */
  async startAll(hosts: string[], want: Record<string, string>, timeoutMs = 60_000): Promise<StatusJson> {
    const mark = this.smtp.mark();
    for (const h of hosts) this.start(h);
    for (const h of hosts) {
      const running = new RegExp(
        `agent running on ${this.address(h).replace(/\./g, "\\.")}\\b.* for cluster ${this.name}$`,
      );
      const started = () => this.smtp.mails.slice(mark).some((m) => running.test(m.subject));
      await waitUntil(() => started() || !this.agents.get(h)?.running, timeoutMs, 200);
      if (!started()) {
        const why = this.agents.get(h)?.running ? "timed out" : "it exited";
        const mails = this.smtp.subjects().slice(mark).join(" | ");
        throw new Error(
          `agent ${h} of ${this.name} did not finish starting (${why}); mails: ${mails}\n${this.logTails()}`,
        );
      }
    }
    return this.waitTypes(hosts[0] as string, want, timeoutMs);
  }

  /** Signal a host's agent and wait for it to exit. */
  async kill(host: string, signal: NodeJS.Signals = "SIGKILL"): Promise<void> {
    const a = this.agents.get(host);
    if (!a?.running) return;
    a.child.kill(signal);
    await a.exited;
  }

  /** Run `bin/efm <args...>` on a host (its config dir and run dir). */
  efm(host: string, args: string[], extraEnv: NodeJS.ProcessEnv = {}, input?: string): Promise<RunResult> {
    const dir = this.files[host]?.dir ?? "";
    return run(
      [process.execPath, EFM_BIN, "--config-dir", dir, ...args],
      this.env(host, { EFM_LOG_STDOUT: undefined, ...extraEnv }),
      120_000,
      input,
    );
  }

  /** `efm cluster-status-json` on a host, parsed; null when the output is not JSON. */
  async status(host: string): Promise<{ code: number; json: StatusJson | null; out: string }> {
    const r = await this.efm(host, ["cluster-status-json", this.name]);
    try {
      return { code: r.code, json: JSON.parse(r.stdout) as StatusJson, out: r.stdout };
    } catch {
      return { code: r.code, json: null, out: r.stdout + r.stderr };
    }
  }

  /** The node types by lab host name, as a host's agent sees them. */
  async types(host: string): Promise<Record<string, string> | null> {
    const s = await this.status(host);
    if (!s.json) return null;
    const out: Record<string, string> = {};
    for (const [addr, n] of Object.entries(s.json.nodes)) out[this.hostOf(addr)] = n.type;
    return out;
  }

  /**
   * Poll `cluster-status-json` on `host` until `check` accepts it; on timeout fail with the last
   * status and the tail of every agent's log, which is what one needs to see why.
   */
  async waitStatus(
    host: string,
    what: string,
    check: (s: StatusJson, code: number) => boolean,
    timeoutMs = 60_000,
  ): Promise<StatusJson> {
    let last = "";
    const ok = await waitUntil(
      async () => {
        const s = await this.status(host);
        last = s.out;
        return s.json && check(s.json, s.code) ? s.json : undefined;
      },
      timeoutMs,
      700,
    );
    if (!ok)
      throw new Error(
        `timed out waiting for ${what} (seen from ${host}); last status:\n${last}\n${this.logTails()}`,
      );
    return ok;
  }

  /** Wait until every listed host shows the given type and an UP agent, as seen from `from`. */
  waitTypes(from: string, want: Record<string, string>, timeoutMs = 60_000): Promise<StatusJson> {
    return this.waitStatus(
      from,
      `types ${JSON.stringify(want)}`,
      (s) =>
        Object.entries(want).every(([h, t]) => {
          const n = s.nodes[this.address(h)];
          return n !== undefined && n.type === t && n.agent === "UP";
        }),
      timeoutMs,
    );
  }

  /** The last lines of every agent's output, for failure messages. */
  logTails(lines = 25): string {
    return this.lab.hosts
      .map((h) => {
        const f = join(this.agentDir(h.name), `${this.name}.out`);
        if (!existsSync(f)) return `== ${h.name}: no agent output`;
        const all = readFileSync(f, "utf8").trimEnd().split("\n");
        return `== ${h.name} (${this.name}):\n${all.slice(-lines).join("\n")}`;
      })
      .join("\n");
  }

  /** Copy every host's agent folder (logs, state) next to the run folder, which `down` removes. */
  keepLogs(): void {
    for (const h of this.lab.hosts) {
      const from = this.agentDir(h.name);
      if (existsSync(from))
        cpSync(from, join(`${this.lab.runDir}-logs`, h.name), { recursive: true, force: true });
    }
  }

  /** SIGKILL every agent of this cluster that still runs. */
  async killAll(): Promise<void> {
    await Promise.all([...this.agents.keys()].map((h) => this.kill(h, "SIGKILL")));
  }
}

/** Standard 3-host lab: a master and two standbys. */
export function threeHosts(): HostSpec[] {
  return [
    { name: "a", role: "master" },
    { name: "b", role: "standby" },
    { name: "c", role: "standby" },
  ];
}

/** Agents left by an earlier run that was itself killed are recorded here, keyed by run folder. */
/**
 * A listening port inside Linux's ephemeral range (32768-60999 by default) can already be held
 * by some outgoing connection's source port when the agent or server binds it: a failure no
 * assertion can make deterministic. Suites keep their ports below it.
 */
function belowEphemeral(what: string, port: number | undefined): void {
  if (port !== undefined && port >= 32768)
    throw new Error(`${what} ${port} is in the ephemeral port range (32768-60999): pick one below 32768`);
}

function pidFile(runDir: string): string {
  return `${runDir}.agent-pids`;
}

function recordPid(runDir: string, pid: number | undefined): void {
  if (pid) appendFileSync(pidFile(runDir), `${pid}\n`);
}

/** Kill agents recorded by an earlier, interrupted run of the same suite (checked by command line). */
export function killLeftoverAgents(runDir: string): void {
  const f = pidFile(runDir);
  if (!existsSync(f)) return;
  for (const line of readFileSync(f, "utf8").split("\n")) {
    const pid = Number(line);
    if (!Number.isInteger(pid) || pid <= 0) continue;
    try {
      const cmd = readFileSync(`/proc/${pid}/cmdline`, "utf8");
      if (cmd.includes("efm-agent")) process.kill(pid, "SIGKILL");
    } catch {
      // Gone already.
    }
  }
  writeFileSync(f, "");
}

/** Everything one suite builds, torn down by `cleanup` whatever state the tests left. */
export class Suite {
  readonly smtp = new SmtpSink();
  readonly labs: Cluster[] = [];
  readonly clusters: EfmCluster[] = [];

  async init(): Promise<void> {
    await this.smtp.start();
  }

  /** Build a lab cluster (removing agents and servers a killed earlier run left in its folder). */
  async lab(options: Parameters<typeof createCluster>[0] & { runDir: string }): Promise<Cluster> {
    belowEphemeral("the database port", options.port);
    killLeftoverAgents(options.runDir);
    const lab = await createCluster(options);
    this.labs.push(lab);
    return lab;
  }

  efmCluster(lab: Cluster, name: string, opts: Omit<EfmClusterOptions, "smtp">): EfmCluster {
    belowEphemeral("the agent port", opts.agentPort);
    belowEphemeral("the admin ports", opts.adminPort + lab.hosts.length);
    const c = new EfmCluster(lab, name, { ...opts, smtp: this.smtp });
    this.clusters.push(c);
    return c;
  }

  async cleanup(): Promise<void> {
    for (const c of this.clusters) await c.killAll().catch(() => {});
    for (const c of this.clusters) c.keepLogs();
    for (const lab of this.labs) {
      killLeftoverAgents(lab.runDir);
      await lab.down().catch(() => {});
    }
    await this.smtp.close().catch(() => {});
  }
}
