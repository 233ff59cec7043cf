import { spawn } from "node:child_process";
import { threadId as thisThread, Worker } from "node:worker_threads";
import { VipError } from "./errors.ts";

/**
 * Starting a program from Node's main thread blocks that thread until the child has exec'd:
 * the fork copies the page tables of the whole agent (~100 MB), which took 67-330 ms on a
 * loaded host, long enough for a 500 ms membership lease to lapse during a failover. So the
 * programs of the failover path (pingServerCommand, `ip addr`) are started from a worker
 * thread: the fork then stalls only that thread. Everything else (reading the replies,
 * timers, interrupting) stays with the caller; the worker only starts the program, relays its
 * output and events, and delivers signals.
 *
 * The worker's code is the JavaScript module text below, loaded from a `data:` URL and
 * importing only `node:` built-ins: it works the same from src/ under vitest (which runs .ts
 * that a worker thread could not load) and from dist/, needs no file found next to this
 * module, and, being a URL, is always an ES module (`eval: true` text would be CommonJS or
 * ESM depending on flags the worker inherits, such as `--input-type`).
 */
const WORKER_CODE = `import { spawn } from "node:child_process";
import { parentPort, threadId } from "node:worker_threads";
const children = new Map();
const post = (m) => parentPort.postMessage(m);
// A worker that dies (an uncaught exception) must not leave the programs it started running.
process.on("exit", () => {
  for (const child of children.values()) {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
  }
});
parentPort.on("message", (m) => {
  if (m.type === "crash") throw new Error("crash asked for (a test)");
  if (m.type === "spawn") {
    let child;
    try {
      child = spawn(m.argv[0], m.argv.slice(1), { stdio: ["ignore", "pipe", "pipe"], env: m.env });
    } catch (e) {
      post({ type: "spawned", id: m.id, threadId });
      post({ type: "error", id: m.id, code: e.code, message: e.message });
      post({ type: "close", id: m.id, code: null, signal: null });
      return;
    }
    children.set(m.id, child);
    post({ type: "spawned", id: m.id, threadId });
    child.stdout.setEncoding("utf8");
    child.stderr.setEncoding("utf8");
    child.stdout.on("data", (data) => post({ type: "stdout", id: m.id, data }));
    child.stderr.on("data", (data) => post({ type: "stderr", id: m.id, data }));
    child.on("error", (e) => post({ type: "error", id: m.id, code: e.code, message: e.message }));
    child.on("exit", () => post({ type: "exit", id: m.id }));
    child.on("close", (code, signal) => {
      children.delete(m.id);
      post({ type: "close", id: m.id, code, signal });
    });
    return;
  }
  const child = children.get(m.id);
  if (child === undefined) return; // ended meanwhile
  if (m.type === "kill") {
    // Only while Node still holds the process: never a signal to a reused pid.
    if (child.exitCode === null && child.signalCode === null) child.kill(m.signal);
  } else if (m.type === "closeStdio") {
    child.stdout.destroy();
    child.stderr.destroy();
  }
});
// Messages sent before this point wait until the script ends: nothing was started before it.
post({ type: "ready" });
`;

/** What a started program reports, in this order: output and `exit` any time, `close` last. */
export interface ChildListener {
  stdout(data: string): void;
  stderr(data: string): void;
  /** It could not be started (`code` ENOENT, EACCES...), or a signal could not be sent. */
  error(error: { readonly code?: string; readonly message: string }): void;
  /** The process ended; its output may still be arriving. */
  exit(): void;
  /** The process ended and its output is closed (or it never started, after `error`). */
  close(code: number | null, signal: string | null): void;
  /**
   * The worker thread died while the program ran: whether and how it ended is unknown, and
   * nothing more will be reported.
   */
  lost(error: VipError): void;
}

/** A started program. */
export interface Child {
  /** Sends `signal` while the process runs (never to an ended one). */
  kill(signal: NodeJS.Signals): void;
  /** Stops reading its output: a grandchild holding the pipes must not delay `close`. */
  closeStdio(): void;
  /** The thread that forked it (known once started): the worker's, or this one's on fallback. */
  readonly threadId: number | undefined;
}

interface Call {
  readonly argv: readonly string[];
  readonly env: NodeJS.ProcessEnv;
  readonly listener: ChildListener;
  /** Set when the call moves to this thread (the worker died before it could start it). */
  local: Child | undefined;
  threadId: number | undefined;
}

/** One worker thread and the programs it runs. */
class Spawner {
  readonly worker: Worker;
  readonly calls = new Map<number, Call>();
  private nextId = 1;
  /** Once ready, the worker may have started a program: a death then loses the call. */
  private ready = false;
  private reason = "it exited";
  dead = false;

  constructor() {
    this.worker = new Worker(new URL(`data:text/javascript,${encodeURIComponent(workerCode)}`));
    // The worker never keeps the process alive by itself; a running call does (start, end).
    this.worker.unref();
    this.worker.on("message", (m: WorkerMessage) => this.receive(m));
    this.worker.on("error", (e) => {
      this.reason = `it failed: ${e.message}`;
    });
    this.worker.on("exit", (code) => this.died(code));
  }

  start(argv: readonly string[], env: NodeJS.ProcessEnv, listener: ChildListener): Child {
    const id = this.nextId++;
    const call: Call = { argv, env, listener, local: undefined, threadId: undefined };
    this.calls.set(id, call);
    if (this.calls.size === 1) this.worker.ref();
    this.worker.postMessage({ type: "spawn", id, argv, env });
    const post = (m: object) => {
      if (!this.dead && this.calls.has(id)) this.worker.postMessage({ ...m, id });
    };
    return {
      kill: (signal) => (call.local === undefined ? post({ type: "kill", signal }) : call.local.kill(signal)),
      closeStdio: () => (call.local === undefined ? post({ type: "closeStdio" }) : call.local.closeStdio()),
      get threadId() {
        return call.local?.threadId ?? call.threadId;
      },
    };
  }

  /** Asks the worker to throw, as a bug in it would: for tests of what a death does. */
  crash(): void {
    this.worker.postMessage({ type: "crash" });
  }

  private receive(m: WorkerMessage): void {
    if (m.type === "ready") {
      this.ready = true;
      return;
    }
    const call = this.calls.get(m.id);
    if (call === undefined) return;
    const l = call.listener;
    switch (m.type) {
      case "spawned":
        call.threadId = m.threadId;
        break;
      case "stdout":
        l.stdout(m.data);
        break;
      case "stderr":
        l.stderr(m.data);
        break;
      case "error":
        l.error({ ...(m.code === undefined ? {} : { code: m.code }), message: m.message });
        break;
      case "exit":
        l.exit();
        break;
      case "close":
        this.end(m.id);
        l.close(m.code, m.signal);
        break;
    }
  }

  private end(id: number): void {
    this.calls.delete(id);
    if (this.calls.size === 0 && !this.dead) this.worker.unref();
  }

  private died(code: number): void {
    this.dead = true;
    if (current === this) current = undefined;
    const calls = [...this.calls.values()];
    this.calls.clear();
    for (const call of calls) {
      if (!this.ready) {
        // It died before it could read a request: nothing was started, so start it here.
        call.local = spawnHere(call.argv, call.env, call.listener);
      } else {
        call.listener.lost(
          new VipError(
            "COMMAND_FAILED",
            `the worker thread that started ${call.argv[0]} stopped (${this.reason}, exit code ${code}) while it ran: its outcome is unknown`,
          ),
        );
      }
    }
  }
}

type WorkerMessage =
  | { type: "ready" }
  | { type: "spawned"; id: number; threadId: number }
  | { type: "stdout" | "stderr"; id: number; data: string }
  | { type: "error"; id: number; code?: string; message: string }
  | { type: "exit"; id: number }
  | { type: "close"; id: number; code: number | null; signal: string | null };

let current: Spawner | undefined;
let workerCode = WORKER_CODE;

/**
 * For tests: the next workers run `code` instead of the real one (a worker that cannot start
 * shows the fallback); undefined restores the real code.
 */
export function useWorkerCodeForTests(code: string | undefined): void {
  workerCode = code ?? WORKER_CODE;
  current = undefined;
}

/**
 * Starts `argv` (no shell; stdin closed; stdout and stderr read as UTF-8) with exactly the
 * environment `env`, from the worker thread. The worker starts on first use and is replaced
 * after it died. When no worker can be made, the program starts from this thread (blocking it
 * as before, but with the same reports).
 */
export function startChild(argv: readonly string[], env: NodeJS.ProcessEnv, listener: ChildListener): Child {
  if (current === undefined) {
    try {
      current = new Spawner();
    } catch {
      return spawnHere(argv, env, listener);
    }
  }
  return current.start(argv, env, listener);
}

/**
 * Starts the worker thread now, if none runs, so that the first program on the failover path
 * does not wait for a thread to boot. Never throws: without a worker, programs start here.
 */
export function startSpawner(): void {
  if (current !== undefined) return;
  try {
    current = new Spawner();
  } catch {
    // startChild will try again, then fall back.
  }
}

/** For tests: makes the current worker (started if need be) throw, as a bug in it would. */
export function crashSpawnerForTests(): void {
  startSpawner();
  current?.crash();
}

/** The same reports as the worker's, from a program started on this thread. */
export function spawnHere(argv: readonly string[], env: NodeJS.ProcessEnv, listener: ChildListener): Child {
  let child: ReturnType<typeof spawn>;
  try {
    child = spawn(argv[0]!, argv.slice(1), { stdio: ["ignore", "pipe", "pipe"], env });
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    // As from the worker: reported after the caller got its handle, never thrown at it.
    queueMicrotask(() => {
      listener.error({ ...(err.code === undefined ? {} : { code: err.code }), message: err.message });
      listener.close(null, null);
    });
    return { kill() {}, closeStdio() {}, threadId: thisThread };
  }
  const stdout = child.stdout!;
  const stderr = child.stderr!;
  stdout.setEncoding("utf8");
  stderr.setEncoding("utf8");
  stdout.on("data", (d: string) => listener.stdout(d));
  stderr.on("data", (d: string) => listener.stderr(d));
  child.on("error", (e: NodeJS.ErrnoException) =>
    listener.error({ ...(e.code === undefined ? {} : { code: e.code }), message: e.message }),
  );
  child.on("exit", () => listener.exit());
  child.on("close", (code, signal) => listener.close(code, signal));
  return {
    kill(signal) {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
    },
    closeStdio() {
      stdout.destroy();
      stderr.destroy();
    },
    threadId: thisThread,
  };
}
