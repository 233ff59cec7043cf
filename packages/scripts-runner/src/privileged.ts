import { type ChildProcess, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { userInfo } from "node:os";
import { fileURLToPath } from "node:url";
import { ScriptsRunnerError, type ScriptsRunnerErrorCode, SCRIPTS_RUNNER_ERROR_CODES } from "./errors.ts";
import { CLUSTER_NAME } from "./helper-facts.ts";
import { type HelperFactArgs, parseHelperRequest } from "./helper-grammar.ts";
import type { HelperReport } from "./helper-ops.ts";
import { formatRequestLine, LineSplitter, MAX_RESPONSE_BYTES } from "./helper-protocol.ts";
import { runProcess } from "./run.ts";

/** How the agent reaches the privileged helper of its cluster. */
export interface HelperOptions {
  /** The cluster name: the helper's only argument; it reads `<cluster>.properties` itself. */
  readonly cluster: string;
  /**
   * Directory of `<cluster>.properties` for a helper started directly (the agent is root or
   * db.service.owner); through sudo the helper always reads /etc/efm.
   */
  readonly configDir?: string;
  /**
   * db.service.owner as the agent read it: an agent running as that user starts the helper
   * directly (no sudo), as the demo does.
   */
  readonly owner?: string;
  /**
   * The helper program as argv; default `[process.execPath, <this package>/dist/helper.js]`.
   * Under sudo this must match the sudoers entry exactly.
   */
  readonly helperCommand?: readonly string[];
  /** How the helper is started; default "auto" (see {@link privilegedArgv}). */
  readonly elevation?: "auto" | "direct" | "sudo";
}

/** The default helper program: the compiled helper next to this module. */
export function defaultHelperCommand(): string[] {
  const here = fileURLToPath(import.meta.url);
  // From src/ (tests, typecheck) use the build output, which must exist.
  const helper = here.endsWith(".ts")
    ? fileURLToPath(new URL("../dist/helper.js", import.meta.url))
    : fileURLToPath(new URL("./helper.js", import.meta.url));
  return [process.execPath, helper];
}

/**
 * The argv that starts the helper for `cluster`: directly when we are root (the helper becomes
 * db.service.owner itself) or already db.service.owner, else `sudo -n --` (root; never
 * prompts; fails unless sudoers allows exactly this program with this one argument).
 */
export function privilegedArgv(options: HelperOptions): string[] {
  if (!CLUSTER_NAME.test(options.cluster)) {
    throw new ScriptsRunnerError(
      "HELPER_USAGE",
      `cluster name ${JSON.stringify(options.cluster)} is not valid`,
    );
  }
  const helper = options.helperCommand ?? defaultHelperCommand();
  if (options.helperCommand === undefined && !existsSync(helper[1]!)) {
    throw new ScriptsRunnerError("SPAWN_FAILED", `helper ${helper[1]} is missing; build @efm/scripts-runner`);
  }
  let mode = options.elevation ?? "auto";
  if (mode === "auto") {
    const me = userInfo();
    mode = me.uid === 0 || me.username === options.owner ? "direct" : "sudo";
  }
  const argv = [...helper, options.cluster];
  return mode === "direct" ? argv : ["sudo", "-n", "--", ...argv];
}

function helperEnv(options: HelperOptions): NodeJS.ProcessEnv {
  // The helper needs nothing else from the agent's environment; a fixed one keeps it predictable.
  return {
    PATH: "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    LANG: "C.UTF-8",
    ...(options.configDir === undefined ? {} : { EFM_CONFIG_DIR: options.configDir }),
  };
}

// Stand-ins for the facts, only to run the helper's own grammar on a request before sending it.
const CHECK_FACTS: HelperFactArgs = {
  dataDir: "/",
  bin: "/",
  passfile: "/efm.pgpass",
  port: 1,
  replicationUser: "efm",
  rejoin: { basebackup: false, timeoutSeconds: 120 },
};

/** A request is checked with the helper's own grammar before it leaves the agent. */
function checkRequest(tokens: readonly string[]): void {
  parseHelperRequest(tokens, CHECK_FACTS);
}

type Answer = { ok?: boolean; code?: string; message?: string; id?: string | null } & Partial<HelperReport>;

function fromAnswer(tokens: readonly string[], answer: Answer): HelperReport {
  if (answer.ok !== true) {
    const code = (SCRIPTS_RUNNER_ERROR_CODES as readonly string[]).includes(answer.code ?? "")
      ? (answer.code as ScriptsRunnerErrorCode)
      : "HELPER_FAILED";
    throw new ScriptsRunnerError(code, `${tokens[0]}: ${answer.message ?? "failed"}`);
  }
  const { ok: _ok, code: _code, message: _message, id: _id, ...report } = answer;
  return report as HelperReport;
}

/** What the helper said in its first line. */
export interface HelperReady {
  readonly cluster: string;
  readonly properties: string;
  readonly owner: string;
  readonly dataDir: string;
  /** db.bin, as the helper runs pg_ctl and postgres from it. */
  readonly bin?: string;
  /** The virtual IP root's file names (what efm-address assigns); null: none configured. */
  readonly vip?: { readonly address: string; readonly interface: string; readonly prefix: number } | null;
  readonly pid: number;
}

function readyOrThrow(first: Record<string, unknown>, argv: readonly string[]): HelperReady {
  if (first.ready === true) return first as unknown as HelperReady;
  const code = (SCRIPTS_RUNNER_ERROR_CODES as readonly string[]).includes(String(first.code))
    ? (first.code as ScriptsRunnerErrorCode)
    : "HELPER_FAILED";
  throw new ScriptsRunnerError(code, `${argv.join(" ")} refused to start: ${String(first.message ?? "")}`);
}

/**
 * Runs one request in a helper process started for it alone (the fallback when the long-lived
 * helper cannot be started, and tools): the request line on stdin, stdin closed, the ready
 * line and the answer on stdout.
 */
export async function runHelperOnce(
  tokens: readonly string[],
  options: HelperOptions,
  timeoutMs: number,
): Promise<HelperReport> {
  checkRequest(tokens);
  const argv = privilegedArgv(options);
  const result = await runProcess(argv, {
    timeoutMs,
    maxOutputBytes: 256 * 1024,
    env: helperEnv(options),
    input: `${formatRequestLine("1", tokens)}\n`,
  });
  const lines = result.stdout.split("\n").filter((l) => l !== "");
  let parsed: Record<string, unknown>[];
  try {
    parsed = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
  } catch {
    parsed = [];
  }
  if (parsed.length >= 1) readyOrThrow(parsed[0]!, argv);
  const answer = parsed.find((p) => p.id === "1");
  if (answer === undefined) {
    const why = result.timedOut
      ? `timed out after ${timeoutMs} ms`
      : `exited with ${result.exitCode ?? result.signal}`;
    throw new ScriptsRunnerError(
      "HELPER_FAILED",
      `${argv.join(" ")} ${why} without answering ${tokens[0]}: ${(result.stderr || result.stdout).trim().slice(0, 2000)}`,
    );
  }
  return fromAnswer(tokens, answer as Answer);
}

interface Pending {
  readonly tokens: readonly string[];
  readonly resolve: (r: HelperReport) => void;
  readonly reject: (e: Error) => void;
  readonly timer: NodeJS.Timeout;
}

interface Live {
  readonly child: ChildProcess;
  readonly pending: Map<string, Pending>;
  stderr: string;
  ready: HelperReady | null;
  gone: boolean;
  /** Resolves when the process has exited. */
  readonly exited: Promise<void>;
}

/** Where the client says what it does with the helper (the agent's log). */
export type HelperLog = (level: "info" | "warn", message: string) => void;

/**
 * The agent's end of the long-lived privileged helper: started once (`start`), it answers
 * each request over its stdin/stdout with no process start on the failover path. Requests
 * carry ids, so answers are matched even if they ever came out of order; the helper works on
 * them one at a time. A request without an answer within its timeout, or in flight when the
 * helper dies, is rejected (HELPER_FAILED), never reported done; the helper is stopped (on a
 * timeout) and started again for the next request. Only when a helper cannot be started at
 * all does the client fall back to one process per request, and says why through `log`.
 */
export class HelperClient {
  private live: Live | null = null;
  private starting: Promise<Live> | null = null;
  private nextId = 1;
  private closed = false;
  private perCall: string | null = null;
  /** A helper being stopped: the next one starts only once it is gone (one at a time). */
  private dying: Promise<void> | null = null;

  constructor(
    readonly options: HelperOptions,
    private readonly log: HelperLog = () => {},
    /** How long a helper may take to say it is ready. */
    private readonly startTimeoutMs = 30_000,
  ) {}

  /** Null while requests go to the long-lived helper; else why each gets its own process. */
  get fallbackReason(): string | null {
    return this.perCall;
  }

  /** The pid and facts of the running long-lived helper, if one runs. */
  get current(): HelperReady | null {
    return this.live !== null && !this.live.gone ? this.live.ready : null;
  }

  /**
   * Starts the long-lived helper. When it cannot be started, requests fall back to one
   * process each (the reason is logged and returned); a helper that refused because of its
   * properties file would refuse each request too, and says so there.
   */
  async start(): Promise<{ persistent: true; ready: HelperReady } | { persistent: false; why: string }> {
    try {
      const live = await this.ensure();
      this.perCall = null;
      return { persistent: true, ready: live.ready! };
    } catch (e) {
      const why = (e as Error).message;
      this.perCall = why;
      this.log("warn", `long-lived privileged helper not started, one process per request instead: ${why}`);
      return { persistent: false, why };
    }
  }

  /** Runs one request (verb and arguments, no facts); rejects with the helper's error code. */
  async request(tokens: readonly string[], timeoutMs: number): Promise<HelperReport> {
    checkRequest(tokens);
    if (this.closed) throw new ScriptsRunnerError("HELPER_FAILED", "the privileged helper client is closed");
    if (this.perCall !== null) return runHelperOnce(tokens, this.options, timeoutMs);
    let live: Live;
    try {
      live = await this.ensure();
    } catch (e) {
      this.perCall = (e as Error).message;
      this.log(
        "warn",
        `long-lived privileged helper could not be started again, one process per request instead: ${this.perCall}`,
      );
      return runHelperOnce(tokens, this.options, timeoutMs);
    }
    const id = String(this.nextId++);
    const line = `${formatRequestLine(id, tokens)}\n`;
    return new Promise<HelperReport>((resolve, reject) => {
      const timer = setTimeout(() => {
        // The helper may still be working on it: stop it, so nothing it does later is taken
        // for an answer; the next request gets a new helper.
        live.pending.delete(id);
        reject(
          new ScriptsRunnerError(
            "HELPER_FAILED",
            `${tokens[0]}: no answer from the privileged helper (pid ${live.ready?.pid}) within ${timeoutMs} ms; stopped it`,
          ),
        );
        this.stop(live);
      }, timeoutMs);
      live.pending.set(id, { tokens, resolve, reject, timer });
      live.child.stdin!.write(line);
    });
  }

  /** Stops the helper (closing its stdin ends it once idle; SIGTERM after 2 s). */
  async close(): Promise<void> {
    this.closed = true;
    const live = this.live ?? (this.starting ? await this.starting.catch(() => null) : null);
    if (live === null || live.gone) return;
    const exited = new Promise<void>((r) => live.child.once("exit", () => r()));
    live.child.stdin!.end();
    const term = setTimeout(() => this.stop(live), 2_000);
    await exited;
    clearTimeout(term);
  }

  private ensure(): Promise<Live> {
    if (this.live !== null && !this.live.gone) return Promise.resolve(this.live);
    this.starting ??= this.spawnLive().finally(() => {
      this.starting = null;
    });
    return this.starting;
  }

  private stop(live: Live): void {
    if (live.gone) return;
    // No new request goes to a helper being stopped; its successor waits for its exit, so two
    // helpers never act on the data directory at once.
    if (this.live === live) this.live = null;
    this.dying = live.exited;
    // sudo relays SIGTERM to the helper (the agent may not signal a root process itself).
    live.child.kill("SIGTERM");
    const kill = setTimeout(() => {
      if (!live.gone) live.child.kill("SIGKILL");
    }, 2_000);
    kill.unref();
  }

  private async spawnLive(): Promise<Live> {
    const argv = privilegedArgv(this.options);
    await this.dying;
    this.dying = null;
    return new Promise<Live>((resolve, reject) => {
      let child: ChildProcess;
      try {
        child = spawn(argv[0]!, argv.slice(1), {
          env: helperEnv(this.options),
          stdio: ["pipe", "pipe", "pipe"],
        });
      } catch (e) {
        reject(
          new ScriptsRunnerError("SPAWN_FAILED", `cannot start ${argv.join(" ")}: ${(e as Error).message}`),
        );
        return;
      }
      const exited = new Promise<void>((r) => {
        child.once("exit", () => r());
        // Never started: nothing to wait for.
        child.once("error", () => r());
      });
      const live: Live = { child, pending: new Map(), stderr: "", ready: null, gone: false, exited };
      const splitter = new LineSplitter(MAX_RESPONSE_BYTES);
      let settled = false;
      const startTimer = setTimeout(() => {
        settle(
          new ScriptsRunnerError(
            "HELPER_FAILED",
            `${argv.join(" ")} did not say it was ready within ${this.startTimeoutMs} ms`,
          ),
        );
        this.stop(live);
      }, this.startTimeoutMs);
      const settle = (e: Error | null) => {
        if (settled) return;
        settled = true;
        clearTimeout(startTimer);
        if (e === null) {
          this.live = live;
          resolve(live);
        } else reject(e);
      };
      const protocolError = (why: string) => {
        this.log("warn", `privileged helper (pid ${child.pid}) broke the protocol: ${why}; stopping it`);
        settle(new ScriptsRunnerError("HELPER_FAILED", `${argv.join(" ")}: ${why}`));
        this.stop(live);
      };
      child.on("error", (e) => {
        if (child.pid === undefined) live.gone = true;
        settle(new ScriptsRunnerError("SPAWN_FAILED", `cannot start ${argv.join(" ")}: ${e.message}`));
      });
      child.stdin!.on("error", () => {
        // EPIPE: the helper is gone; its exit rejects what is pending.
      });
      child.stderr!.on("data", (d: Buffer) => {
        live.stderr = (live.stderr + d.toString("utf8")).slice(-4096);
      });
      child.stdout!.on("data", (chunk: Buffer) => {
        for (const item of splitter.push(chunk)) {
          if (typeof item !== "string") {
            protocolError(`an answer of more than ${MAX_RESPONSE_BYTES} bytes`);
            continue;
          }
          let value: Record<string, unknown>;
          try {
            value = JSON.parse(item) as Record<string, unknown>;
          } catch {
            protocolError(`a line that is not JSON: ${JSON.stringify(item.slice(0, 200))}`);
            continue;
          }
          if (live.ready === null) {
            try {
              live.ready = readyOrThrow(value, argv);
              settle(null);
            } catch (e) {
              settle(e as Error);
            }
            continue;
          }
          const id = typeof value.id === "string" ? value.id : null;
          const p = id === null ? undefined : live.pending.get(id);
          if (p === undefined) {
            this.log(
              "warn",
              `privileged helper answered an unknown request ${JSON.stringify(value.id)}: ${String(value.message ?? "")}`,
            );
            continue;
          }
          live.pending.delete(id!);
          clearTimeout(p.timer);
          try {
            p.resolve(fromAnswer(p.tokens, value as Answer));
          } catch (e) {
            p.reject(e as Error);
          }
        }
      });
      child.on("exit", (code, signal) => {
        live.gone = true;
        const how = code !== null ? `exit code ${code}` : `signal ${signal}`;
        const stderr = live.stderr.trim().slice(-1000);
        settle(
          new ScriptsRunnerError(
            "HELPER_FAILED",
            `${argv.join(" ")} ended (${how}) before it was ready${stderr ? `: ${stderr}` : ""}`,
          ),
        );
        // Whatever was in flight is failed, never success: the helper cannot answer any more.
        for (const [id, p] of live.pending) {
          clearTimeout(p.timer);
          p.reject(
            new ScriptsRunnerError(
              "HELPER_FAILED",
              `${p.tokens[0]}: the privileged helper (pid ${child.pid}) ended (${how}) before answering request ${id}`,
            ),
          );
        }
        live.pending.clear();
        if (this.live === live) this.live = null;
        if (live.ready !== null && !this.closed && this.live === null) {
          this.log("warn", `privileged helper (pid ${child.pid}) ended (${how}); starting a new one`);
          // Started again now, so the next request (a failover's fence) pays no start-up.
          void this.ensure().catch((e) => {
            this.log(
              "warn",
              `privileged helper not started again (the next request retries): ${(e as Error).message}`,
            );
          });
        }
      });
    });
  }
}

/** Where a request goes: the long-lived helper, or one process per request with these options. */
export type HelperTarget = HelperClient | HelperOptions;

/** Runs one request through `target`. */
export function runHelper(
  target: HelperTarget,
  tokens: readonly string[],
  timeoutMs: number,
): Promise<HelperReport> {
  return target instanceof HelperClient
    ? target.request(tokens, timeoutMs)
    : runHelperOnce(tokens, target, timeoutMs);
}

/** Promotes the local standby (`pg_ctl promote -w`) and confirms it left recovery. */
export function promote(
  target: HelperTarget,
  options: { timeoutSeconds?: number } = {},
): Promise<HelperReport> {
  const timeoutSeconds = options.timeoutSeconds ?? 60;
  return runHelper(target, ["promote", "--timeout", String(timeoutSeconds)], (timeoutSeconds + 30) * 1000);
}

/**
 * Fences the local old master: the recovery settings first (standby.signal and
 * primary_conninfo on PostgreSQL >= 12, recovery.conf before), then the server is stopped and
 * confirmed down (`pg_ctl stop`, SIGKILL of every server process of the data directory still
 * alive after a short grace, no such process left and a TCP connect to its address:port
 * refused); only then does the promise resolve. A fence that cannot be confirmed within its
 * bound rejects with CONFIRM_FAILED and the reason. `stop: "fast"` (switchover) tries a fast
 * stop first, within `timeoutSeconds`; `after: "standby"` starts a server that was running
 * again in recovery, following `newMaster`.
 *
 * primary_conninfo is host=newMaster, db.port, db.user and passfile= (the password file next
 * to the data directory, which the helper writes 0600); other keywords of an existing one are
 * kept, a password in it is dropped. `newMaster` null: no master is known yet,
 * primary_conninfo is emptied (recovery without streaming) until `reconfigure` names one.
 */
export function fence(
  target: HelperTarget,
  newMaster: string | null,
  options: {
    /** Bound of each wait for the server to go (and to start again); default 10. */
    timeoutSeconds?: number;
    stop?: "fast" | "immediate";
    after?: "down" | "standby";
  } = {},
): Promise<HelperReport> {
  const seconds = options.timeoutSeconds ?? 10;
  return runHelper(
    target,
    [
      "fence",
      newMaster ?? "-",
      ...(options.timeoutSeconds === undefined ? [] : ["--timeout", String(options.timeoutSeconds)]),
      ...(options.stop === undefined ? [] : ["--stop", options.stop]),
      ...(options.after === undefined ? [] : ["--after", options.after]),
    ],
    // Fast stop, kill, port check and a start each have `seconds`; the rest is file writing.
    (4 * seconds + 60) * 1000,
  );
}

/**
 * Points the local standby at `newMaster` (host= of primary_conninfo only), applies it
 * (reload on >= 13, else `pg_ctl restart -m fast -w -t <timeoutSeconds>`, local.timeout) and
 * waits until it streams from the new master.
 */
export function reconfigure(
  target: HelperTarget,
  newMaster: string,
  options: { timeoutSeconds: number },
): Promise<HelperReport> {
  return runHelper(
    target,
    ["reconfigure", newMaster, "--timeout", String(options.timeoutSeconds)],
    (2 * options.timeoutSeconds + 30) * 1000,
  );
}

/**
 * Checks, changing nothing, what promote and fence rely on: the data directory belongs to the
 * owner, pg_ctl is executable, the passfile's directory is writable and, if the server runs,
 * the helper connects. `role: "standby"` also needs a running standby.
 */
export function check(
  target: HelperTarget,
  options: { role?: "any" | "standby" } = {},
): Promise<HelperReport> {
  return runHelper(target, ["check", "--role", options.role ?? "any"], 60_000);
}

/** `pg_ctl restart -m fast -w -t <timeoutSeconds>`; the report says whether it is in recovery. */
export function restart(
  target: HelperTarget,
  timeoutSeconds: number,
  options: { mode?: "fast" | "immediate" } = {},
): Promise<HelperReport> {
  return runHelper(
    target,
    ["restart", String(timeoutSeconds), ...(options.mode ? ["--mode", options.mode] : [])],
    (2 * timeoutSeconds + 30) * 1000,
  );
}

/**
 * Rejoins the local fenced old master as a standby of `newMaster`: stopped and confirmed down,
 * `pg_rewind` against the new master as db.rewind.source.user (db.user by default, with the
 * password file), or, only when db.rejoin.basebackup=true and a rewind is impossible or fails,
 * `pg_basebackup` into a fresh directory with the old one moved aside; this host's *.conf files
 * put back, standby.signal and primary_conninfo (replication user, password file) written,
 * started, and confirmed in recovery and streaming from the new master. Whether a base backup
 * is allowed, the source role and the bound are read by the helper from root's properties file
 * (local.timeout, at least REJOIN_MIN_SECONDS); `timeoutSeconds` here only bounds how long the
 * caller waits, and should be that same value. Rejects with REJOIN_REFUSED (changing nothing
 * when a rewind is ruled out or its source role lacks a privilege) or REJOIN_FAILED and why.
 */
export function rejoin(
  target: HelperTarget,
  newMaster: string,
  options: {
    /** The helper's own bound: max(local.timeout, REJOIN_MIN_SECONDS) of root's properties. */
    timeoutSeconds: number;
  },
): Promise<HelperReport> {
  return runHelper(
    target,
    ["rejoin", newMaster],
    // Stop, rewind or base backup, start and streaming each have the bound; the rest is files.
    (4 * options.timeoutSeconds + 120) * 1000,
  );
}
