import { describe, expect, it } from "vitest";
import type { Clock } from "./monitor.ts";
import type { ProcessIdentity } from "./postmaster.ts";
import { ConnectionWatch, lossCause, type WatchConnector, type WatchEvent, type WatchLink } from "./watch.ts";

/** Virtual time: timers fire only when the test advances the clock. */
class ManualClock implements Clock {
  t = 0;
  #seq = 0;
  readonly #timers = new Map<number, { at: number; fn: () => void }>();
  now(): number {
    return this.t;
  }
  setTimeout(fn: () => void, ms: number): unknown {
    const id = ++this.#seq;
    this.#timers.set(id, { at: this.t + ms, fn });
    return id;
  }
  clearTimeout(h: unknown): void {
    this.#timers.delete(h as number);
  }
  get pending(): number {
    return this.#timers.size;
  }
  async advance(ms: number): Promise<void> {
    const target = this.t + ms;
    for (;;) {
      await flush();
      let next: [number, { at: number; fn: () => void }] | undefined;
      for (const e of this.#timers)
        if (e[1].at <= target && (next === undefined || e[1].at < next[1].at)) next = e;
      if (next === undefined) break;
      this.#timers.delete(next[0]);
      this.t = next[1].at;
      next[1].fn();
    }
    this.t = target;
    await flush();
  }
}

const flush = () => new Promise<void>((r) => setImmediate(r));

/** Errors shaped as node-postgres and node:net raise them. */
const serverError = (code: string, message: string) =>
  Object.assign(new Error(message), { code, severity: "FATAL" });
const socketError = (code: string) => Object.assign(new Error(`connect ${code} 127.0.0.1:5432`), { code });

type Answer = { kind: "open" } | { kind: "fail"; err: unknown } | { kind: "hang" };

/** A database the test scripts: each connect() takes the next answer (the last one repeats). */
class ScriptedDb implements WatchConnector {
  readonly address = "127.0.0.1";
  answers: Answer[] = [{ kind: "open" }];
  connects: number[] = [];
  links: { end(why: unknown): void; closedByUs: boolean }[] = [];
  /** What each new link says its postmaster is (undefined: the link does not say). */
  postmaster: ProcessIdentity | null | undefined = undefined;
  constructor(private readonly clock: ManualClock) {}
  connect(_timeoutMs: number): Promise<WatchLink> {
    this.connects.push(this.clock.now());
    const a = (this.answers.length > 1 ? this.answers.shift() : this.answers[0]) ?? { kind: "open" };
    if (a.kind === "fail") return Promise.reject(a.err);
    if (a.kind === "hang") return new Promise(() => {});
    let end: (why: unknown) => void = () => {};
    const closed = new Promise<unknown>((r) => {
      end = r;
    });
    const handle = { end: (why: unknown) => end(why), closedByUs: false };
    this.links.push(handle);
    return Promise.resolve({
      closed,
      close: () => {
        handle.closedByUs = true;
        end(null);
      },
      ...(this.postmaster === undefined ? {} : { postmaster: Promise.resolve(this.postmaster) }),
    });
  }
}

function setup() {
  const clock = new ManualClock();
  const db = new ScriptedDb(clock);
  const watch = new ConnectionWatch({ connector: db, clock, connectTimeoutMs: 1_000, retryMs: 10_000 });
  const events: WatchEvent[] = [];
  watch.on((e) => events.push(e));
  return { clock, db, watch, events, types: () => events.map((e) => e.type) };
}

describe("ConnectionWatch", () => {
  it("reports a loss as soon as the connection ends and the reconnect is refused, without any timer", async () => {
    const { clock, db, watch, events, types } = setup();
    watch.start();
    await flush();
    expect(types()).toEqual(["connected"]);
    db.answers = [{ kind: "fail", err: socketError("ECONNREFUSED") }];
    clock.t = 5_000; // time passes, but no timer of the watch fires: only the connection speaks
    db.links[0]!.end(serverError("57P01", "terminating connection due to unexpected postmaster exit"));
    await flush();
    expect(types()).toEqual(["connected", "dropped", "lost"]);
    const lost = events[2] as Extract<WatchEvent, { type: "lost" }>;
    expect(lost.at).toBe(5_000);
    expect(lost.cause).toMatchObject({ code: "NOT_ACCEPTING", detail: "57P01" });
    expect(lost.failure).toMatchObject({ code: "REFUSED", detail: "ECONNREFUSED" });
    expect(db.connects).toEqual([0, 5_000]);
    expect(watch.state).toBe("lost");
  });

  it("does not report a loss when the reconnect succeeds (our backend was terminated, not the server)", async () => {
    const { db, watch, types } = setup();
    watch.start();
    await flush();
    db.links[0]!.end(serverError("57P01", "terminating connection due to administrator command"));
    await flush();
    expect(types()).toEqual(["connected", "dropped", "connected"]);
    expect(watch.state).toBe("watching");
    expect(db.links).toHaveLength(2);
  });

  it("counts a server that is shutting down or recovering (57P03) on reconnect as lost", async () => {
    const { db, watch, events } = setup();
    watch.start();
    await flush();
    db.answers = [{ kind: "fail", err: serverError("57P03", "the database system is shutting down") }];
    db.links[0]!.end(null); // plain end of stream
    await flush();
    const lost = events.find((e) => e.type === "lost") as Extract<WatchEvent, { type: "lost" }>;
    expect(lost.cause.code).toBe("CONNECTION_LOST");
    expect(lost.failure).toMatchObject({ code: "NOT_ACCEPTING", detail: "57P03" });
  });

  it("bounds the reconnect by connectTimeoutMs: a hanging server is lost once it has passed", async () => {
    const { clock, db, watch, types, events } = setup();
    watch.start();
    await flush();
    db.answers = [{ kind: "hang" }];
    db.links[0]!.end(
      serverError("57P02", "terminating connection because of crash of another server process"),
    );
    await clock.advance(999);
    expect(types()).toEqual(["connected", "dropped"]);
    await clock.advance(1);
    expect(types()).toEqual(["connected", "dropped", "lost"]);
    const lost = events[2] as Extract<WatchEvent, { type: "lost" }>;
    expect(lost.cause).toMatchObject({ code: "NOT_ACCEPTING", detail: "57P02" });
    expect(lost.failure.code).toBe("TIMEOUT");
    expect(lost.at).toBe(1_000);
  });

  it("retries every retryMs after a loss and says when the database is back", async () => {
    const { clock, db, watch, types } = setup();
    watch.start();
    await flush();
    db.answers = [
      { kind: "fail", err: socketError("ECONNREFUSED") },
      { kind: "fail", err: socketError("ECONNREFUSED") },
      { kind: "open" },
    ];
    db.links[0]!.end(null);
    await flush();
    expect(types()).toEqual(["connected", "dropped", "lost"]);
    await clock.advance(10_000); // refused again: still lost, nothing new to say
    expect(types()).toEqual(["connected", "dropped", "lost"]);
    await clock.advance(10_000);
    expect(types()).toEqual(["connected", "dropped", "lost", "restored", "connected"]);
    expect(db.connects).toEqual([0, 0, 10_000, 20_000]);
  });

  it("retries a failed first connection quietly: nothing was lost yet", async () => {
    const { clock, db, watch, types } = setup();
    db.answers = [{ kind: "fail", err: socketError("ECONNREFUSED") }, { kind: "open" }];
    watch.start();
    await flush();
    expect(types()).toEqual([]);
    expect(watch.state).toBe("connecting");
    await clock.advance(10_000);
    expect(types()).toEqual(["connected"]);
  });

  it("closes its connection on stop and reports nothing afterwards", async () => {
    const { clock, db, watch, types } = setup();
    watch.start();
    await flush();
    watch.stop();
    expect(db.links[0]!.closedByUs).toBe(true);
    db.answers = [{ kind: "fail", err: socketError("ECONNREFUSED") }];
    db.links[0]!.end(serverError("57P01", "late"));
    await clock.advance(60_000);
    expect(types()).toEqual(["connected"]);
    expect(clock.pending).toBe(0);
    expect(watch.state).toBe("stopped");
  });

  it("closes a connection that opens after its attempt already timed out", async () => {
    const clock = new ManualClock();
    let open: (l: WatchLink) => void = () => {};
    let closedLate = false;
    const connector: WatchConnector = {
      address: "127.0.0.1",
      connect: () =>
        new Promise<WatchLink>((r) => {
          open = r;
        }),
    };
    const watch = new ConnectionWatch({ connector, clock, connectTimeoutMs: 1_000, retryMs: 10_000 });
    watch.start();
    await clock.advance(1_000);
    open({
      closed: new Promise(() => {}),
      close: () => {
        closedLate = true;
      },
    });
    await flush();
    expect(closedLate).toBe(true);
    watch.stop();
  });

  it("rejects timing that is not a positive number, naming it", () => {
    const connector: WatchConnector = { address: "x", connect: () => Promise.reject(new Error("unused")) };
    expect(() => new ConnectionWatch({ connector, connectTimeoutMs: 0, retryMs: 1 })).toThrow(
      /connectTimeoutMs/,
    );
    expect(() => new ConnectionWatch({ connector, connectTimeoutMs: 1, retryMs: Number.NaN })).toThrow(
      /retryMs/,
    );
  });
});

/** A watch whose postmaster probe the test answers: `alive` lists the running processes. */
function setupWithPostmaster() {
  const clock = new ManualClock();
  const db = new ScriptedDb(clock);
  db.postmaster = { pid: 4242, startTime: "7" };
  const alive = new Set<string>(["4242@7"]);
  const probed: number[] = [];
  let probeFails = false;
  const watch = new ConnectionWatch({
    connector: db,
    clock,
    connectTimeoutMs: 1_000,
    retryMs: 10_000,
    processProbe: async (p) => {
      probed.push(clock.now());
      if (probeFails) throw Object.assign(new Error("EACCES: /proc/4242/stat"), { code: "EACCES" });
      return alive.has(`${p.pid}@${p.startTime}`);
    },
  });
  const events: WatchEvent[] = [];
  watch.on((e) => events.push(e));
  return {
    clock,
    db,
    watch,
    events,
    alive,
    probed,
    failProbe: () => {
      probeFails = true;
    },
    types: () => events.map((e) => e.type),
  };
}

describe("ConnectionWatch and the postmaster", () => {
  it("treats the postmaster's exit like the end of the connection, although the connection is still open", async () => {
    const { clock, db, watch, events, alive, probed, types } = setupWithPostmaster();
    watch.start();
    await flush();
    expect(types()).toEqual(["connected", "postmaster"]);
    expect(events[1]).toMatchObject({ pid: 4242 });
    await clock.advance(200);
    expect(probed).toEqual([100, 200]);
    // kill -9: the backend has not noticed (the link stays open), a new connection is refused.
    alive.clear();
    db.answers = [{ kind: "fail", err: socketError("ECONNREFUSED") }];
    await clock.advance(100);
    expect(types()).toEqual(["connected", "postmaster", "dropped", "lost"]);
    const lost = events[3] as Extract<WatchEvent, { type: "lost" }>;
    expect(lost.at).toBe(300);
    expect(lost.cause).toMatchObject({ code: "CONNECTION_LOST", detail: "postmaster-exit" });
    expect(lost.cause.message).toContain("4242");
    expect(lost.failure).toMatchObject({ code: "REFUSED" });
    expect(db.links[0]!.closedByUs).toBe(true);
    // Nothing more is looked at: only the retry after local.period is pending.
    await clock.advance(1_000);
    expect(probed).toEqual([100, 200, 300]);
    expect(clock.pending).toBe(1);
    watch.stop();
  });

  it("a pid now used by another process (another start time) is not the postmaster", async () => {
    const { clock, db, watch, alive, types } = setupWithPostmaster();
    watch.start();
    await flush();
    alive.clear();
    alive.add("4242@9"); // the same pid, started later: some other process
    db.answers = [{ kind: "fail", err: socketError("ECONNREFUSED") }];
    await clock.advance(100);
    expect(types()).toEqual(["connected", "postmaster", "dropped", "lost"]);
  });

  it("reports no loss when the reconnect succeeds, and watches the new link's postmaster", async () => {
    const { clock, db, watch, events, alive, probed, types } = setupWithPostmaster();
    watch.start();
    await flush();
    alive.clear();
    alive.add("5000@8");
    db.postmaster = { pid: 5000, startTime: "8" };
    await clock.advance(100);
    expect(types()).toEqual(["connected", "postmaster", "dropped", "connected", "postmaster"]);
    expect(events[4]).toMatchObject({ pid: 5000 });
    expect(watch.state).toBe("watching");
    await clock.advance(300);
    expect(probed).toEqual([100, 200, 300, 400]);
    expect(types()).toHaveLength(5);
    watch.stop();
    expect(clock.pending).toBe(0);
  });

  it("stops looking when the probe cannot tell; the connection still reports", async () => {
    const { clock, db, watch, probed, failProbe, types } = setupWithPostmaster();
    watch.start();
    await flush();
    failProbe();
    await clock.advance(1_000);
    expect(probed).toEqual([100]);
    expect(clock.pending).toBe(0);
    expect(types()).toEqual(["connected", "postmaster"]);
    db.answers = [{ kind: "fail", err: socketError("ECONNREFUSED") }];
    db.links[0]!.end(null);
    await flush();
    expect(types()).toEqual(["connected", "postmaster", "dropped", "lost"]);
    watch.stop();
  });

  it("looks at nothing when no postmaster was learned, and stops looking when the connection ends or on stop", async () => {
    const none = setupWithPostmaster();
    none.db.postmaster = null;
    none.watch.start();
    await none.clock.advance(1_000);
    expect(none.probed).toEqual([]);
    expect(none.types()).toEqual(["connected"]);
    none.watch.stop();

    const { clock, db, watch, probed, types } = setupWithPostmaster();
    watch.start();
    await clock.advance(100);
    db.answers = [{ kind: "fail", err: socketError("ECONNREFUSED") }];
    db.links[0]!.end(serverError("57P01", "terminating connection due to unexpected postmaster exit"));
    await clock.advance(1_000);
    expect(types()).toEqual(["connected", "postmaster", "dropped", "lost"]);
    expect(probed).toEqual([100]);
    watch.stop();
    expect(clock.pending).toBe(0);
  });

  it("rejects a processPollMs that is not a positive number", () => {
    const connector: WatchConnector = { address: "x", connect: () => Promise.reject(new Error("unused")) };
    expect(
      () => new ConnectionWatch({ connector, connectTimeoutMs: 1, retryMs: 1, processPollMs: -1 }),
    ).toThrow(/processPollMs/);
  });
});

describe("lossCause", () => {
  it("classifies how a monitoring connection ended", () => {
    expect(lossCause(null, "h").code).toBe("CONNECTION_LOST");
    expect(lossCause(new Error("Connection terminated unexpectedly"), "h").code).toBe("CONNECTION_LOST");
    expect(lossCause(socketError("ECONNRESET"), "h").code).toBe("CONNECTION_LOST");
    expect(lossCause(serverError("57P01", "x"), "h")).toMatchObject({
      code: "NOT_ACCEPTING",
      detail: "57P01",
    });
    expect(lossCause(serverError("57P02", "x"), "h")).toMatchObject({
      code: "NOT_ACCEPTING",
      detail: "57P02",
    });
    expect(lossCause(new Error("something odd"), "h").code).toBe("CONNECTION_LOST");
  });
});
