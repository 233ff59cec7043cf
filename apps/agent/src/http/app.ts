import { type DbConnectionOptions, type DbFacts, readFacts } from "@efm/db-probe";
import { type FailoverState, snapshot } from "@efm/failover-core";
import { hostOf } from "@efm/membership";
import type { NotifierStats } from "@efm/notifier";
import { Hono } from "hono";
import { streamSSE } from "hono/streaming";
import { Counter, Gauge, type Registry } from "prom-client";
import { statusFromSnapshot } from "../state.ts";
import { queryDatabases, renderClusterStatusJson } from "../status-report.ts";
import type { AgentObserver } from "./observe.ts";
import { type LiveStatus, liveStatus, renderMain, renderPage } from "./page.ts";
import {
  judgeHealth,
  judgePrimary,
  judgeReplica,
  type LocalDbAnswer,
  parseMaxLag,
  type Verdict,
} from "./verdict.ts";

/** What the HTTP endpoints read from the running agent; nothing here can change it. */
export interface HttpDeps {
  cluster: string;
  /** Our `ip:port` in the cluster. */
  self: string;
  version: string;
  /** The engine's current state (the event loop's). */
  state(): FailoverState;
  /** membership's lease end and clock, on the same monotonic clock. */
  leaseUntil(): number;
  now(): number;
  /** The allowed hosts and the voters, as cluster-status shows them. */
  lists(): { allowed: readonly string[]; voters: readonly string[] };
  /** Connection settings for a database host (the agent's own, password included). */
  db(host: string): DbConnectionOptions;
  /** Bound for each database query an endpoint makes. */
  timeoutMs: number;
  notifierStats(): NotifierStats;
  observer: AgentObserver;
  registry: Registry;
}

/** The local database's answer for one request; null when it did not answer in time. */
async function askLocalDb(deps: HttpDeps): Promise<DbFacts | null> {
  if (deps.state().config.isWitness) return null;
  try {
    return await readFacts(deps.db(hostOf(deps.self)), deps.timeoutMs);
  } catch {
    return null;
  }
}

const answer = (f: DbFacts | null): LocalDbAnswer | null =>
  f ? { inRecovery: f.inRecovery, walReceiverStatus: f.walReceiver?.status ?? null } : null;

/** Bytes the local standby has still to replay to reach the master's current position. */
async function replayLag(deps: HttpDeps, local: DbFacts | null): Promise<bigint | null> {
  if (!local?.inRecovery || !local.replayLsn) return null;
  const master = snapshot(deps.state()).members.find((m) => m.role === "Master" && m.address !== deps.self);
  if (!master) return null;
  try {
    const m = await readFacts(deps.db(hostOf(master.address)), deps.timeoutMs);
    if (m.inRecovery || !m.currentLsn) return null;
    const lag = m.currentLsn.diff(local.replayLsn);
    return lag < 0n ? 0n : lag;
  } catch {
    return null;
  }
}

/** The body every health endpoint answers with, so a person reading it sees why. */
function verdictBody(deps: HttpDeps, v: Verdict) {
  const s = deps.state();
  return {
    cluster: deps.cluster,
    node: hostOf(deps.self),
    role: s.role ?? "none",
    ok: v.ok,
    reason: v.reason,
  };
}

/** Register the gauges read at scrape time (role, database, WAL, lease, view, notifications). */
function registerGauges(deps: HttpDeps): void {
  const registers = [deps.registry];
  const roles = ["Master", "Standby", "Witness", "Idle", "Promoting"] as const;
  new Gauge({
    name: "efm_agent_info",
    help: "Always 1; the labels name the cluster, this node and the version",
    labelNames: ["cluster", "node", "version"],
    registers,
    collect() {
      this.reset();
      this.set({ cluster: deps.cluster, node: hostOf(deps.self), version: deps.version }, 1);
    },
  });
  new Gauge({
    name: "efm_role",
    help: "1 for this agent's current role (Master, Standby, Witness, Idle, Promoting), 0 for the others",
    labelNames: ["role"],
    registers,
    collect() {
      const role = deps.state().role;
      for (const r of roles) this.set({ role: r }, role === r ? 1 : 0);
    },
  });
  new Gauge({
    name: "efm_lease_remaining_seconds",
    help: "How long the majority's lease still covers this agent (0 when it holds none)",
    registers,
    collect() {
      this.set(Math.max(0, deps.leaseUntil() - deps.now()) / 1000 || 0);
    },
  });
  new Gauge({
    name: "efm_view_members",
    help: "Members in the current cluster view",
    registers,
    collect() {
      this.set(deps.state().view?.members.length ?? 0);
    },
  });
  new Gauge({
    name: "efm_view_epoch",
    help: "Epoch of the current cluster view",
    registers,
    collect() {
      this.set(deps.state().view?.epoch ?? 0);
    },
  });
  new Gauge({
    name: "efm_view_quorate",
    help: "1 when the current view holds a majority of the cluster",
    registers,
    collect() {
      this.set(deps.state().view?.quorate ? 1 : 0);
    },
  });
  // One database query per scrape feeds all four database gauges.
  let facts: Promise<{ local: DbFacts | null; lag: bigint | null }> | null = null;
  const scrape = () => {
    facts ??= (async () => {
      const local = await askLocalDb(deps);
      return { local, lag: await replayLag(deps, local) };
    })().finally(() => {
      facts = null;
    });
    return facts;
  };
  new Gauge({
    name: "efm_database_up",
    help: "1 when this node's database answered the scrape's query (absent on a witness)",
    registers,
    async collect() {
      this.reset();
      if (!deps.state().config.isWitness) this.set((await scrape()).local ? 1 : 0);
    },
  });
  new Gauge({
    name: "efm_database_in_recovery",
    help: "1 when this node's database is in recovery (a standby)",
    registers,
    async collect() {
      this.reset();
      const f = (await scrape()).local;
      if (f) this.set(f.inRecovery ? 1 : 0);
    },
  });
  new Gauge({
    name: "efm_wal_position_bytes",
    help: "WAL position of this node's database: current on a master, the furthest received or replayed on a standby",
    registers,
    async collect() {
      this.reset();
      const p = (await scrape()).local?.position;
      if (p) this.set(Number(p.value));
    },
  });
  new Gauge({
    name: "efm_replay_lag_bytes",
    help: "On a standby: bytes between the master's current WAL position and what this database replayed",
    registers,
    async collect() {
      this.reset();
      const lag = (await scrape()).lag;
      if (lag !== null) this.set(Number(lag));
    },
  });
  const perSink = (
    name: string,
    help: string,
    pick: (s: NotifierStats["sinks"][string]) => number,
    kind: "gauge" | "counter",
  ) => {
    // The notifier keeps the counts; each scrape copies them (a counter is reset, then set by inc).
    const collect = function (this: Gauge<"sink"> | Counter<"sink">) {
      this.reset();
      for (const [sink, s] of Object.entries(deps.notifierStats().sinks)) {
        if (this instanceof Gauge) this.set({ sink }, pick(s));
        else this.inc({ sink }, pick(s));
      }
    };
    if (kind === "gauge") new Gauge({ name, help, labelNames: ["sink"], registers, collect });
    else new Counter({ name, help, labelNames: ["sink"], registers, collect });
  };
  perSink(
    "efm_notifications_pending",
    "Notifications waiting to be delivered, per sink",
    (s) => s.pending,
    "gauge",
  );
  perSink(
    "efm_notifications_delivered_total",
    "Notifications delivered, per sink",
    (s) => s.delivered,
    "counter",
  );
  perSink(
    "efm_notification_failures_total",
    "Failed delivery attempts (each retry counts), per sink",
    (s) => s.failedAttempts,
    "counter",
  );
  perSink(
    "efm_notifications_dropped_total",
    "Notifications given up after the last retry or shed from a full queue, per sink",
    (s) => s.dropped + s.shed,
    "counter",
  );
}

/**
 * Feeds the status pages: while at least one page listens, reads the cluster once a second and
 * at once after each engine step that changed something, and hands every listener the result.
 * One reading serves all open pages, so ten browsers cost what one does.
 */
class LiveFeed {
  private readonly listeners = new Set<(s: LiveStatus) => void>();
  private running = false;
  private kick: (() => void) | null = null;
  private last: LiveStatus | null = null;

  constructor(private readonly deps: HttpDeps) {
    deps.observer.onChange(() => this.kick?.());
  }

  subscribe(f: (s: LiveStatus) => void): () => void {
    this.listeners.add(f);
    if (!this.running) void this.run();
    else if (this.last) f(this.last);
    return () => this.listeners.delete(f);
  }

  private async run(): Promise<void> {
    this.running = true;
    while (this.listeners.size > 0) {
      try {
        this.last = await liveStatus(this.deps);
        for (const f of this.listeners) f(this.last);
      } catch {
        // The next round tries again; the page marks itself stale meanwhile only if the stream ends.
      }
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, 1000);
        t.unref();
        this.kick = () => {
          clearTimeout(t);
          resolve();
        };
      });
      this.kick = null;
    }
    this.running = false;
  }
}

/**
 * The agent's read-only HTTP endpoints. Every handler only reads: the engine's state, the lease
 * and fresh database queries; none sends a command or touches a file.
 */
export function createHttpApp(deps: HttpDeps): Hono {
  registerGauges(deps);
  const app = new Hono();

  const feed = new LiveFeed(deps);
  app.get("/", async (c) => c.html(renderPage(await liveStatus(deps))));
  app.get("/events", (c) =>
    streamSSE(c, async (stream) => {
      let latest: LiveStatus | null = null;
      let wake: (() => void) | null = null;
      let closed = false;
      const off = feed.subscribe((s) => {
        latest = s;
        wake?.();
      });
      stream.onAbort(() => {
        closed = true;
        wake?.();
      });
      while (!closed) {
        const s: LiveStatus | null = latest;
        if (s) {
          latest = null;
          await stream.writeSSE({
            event: "status",
            data: JSON.stringify({ html: renderMain(s), status: s }),
          });
        } else {
          await new Promise<void>((resolve) => {
            wake = resolve;
          });
          wake = null;
        }
      }
      off();
    }),
  );

  app.get("/health", async (c) => {
    const v = judgeHealth(deps.state(), (await askLocalDb(deps)) !== null);
    return c.json(verdictBody(deps, v), v.ok ? 200 : 503);
  });

  app.get("/primary", async (c) => {
    const db = answer(await askLocalDb(deps));
    // Judged after the database answered, against the state and lease of this very moment: a
    // step-down or a lost lease while the query ran turns the answer into 503.
    const v = judgePrimary(deps.state(), { leaseUntil: deps.leaseUntil(), now: deps.now() }, db);
    return c.json(verdictBody(deps, v), v.ok ? 200 : 503);
  });

  app.get("/replica", async (c) => {
    const maxLag = parseMaxLag(c.req.query("lag"));
    if (typeof maxLag === "string") return c.json({ error: maxLag }, 400);
    const local = await askLocalDb(deps);
    const lag = maxLag === null ? null : await replayLag(deps, local);
    const v = judgeReplica(deps.state(), answer(local), maxLag, lag);
    return c.json(
      { ...verdictBody(deps, v), ...(lag === null ? {} : { lagBytes: Number(lag) }) },
      v.ok ? 200 : 503,
    );
  });

  app.get("/status", async (c) => {
    const lists = deps.lists();
    const status = statusFromSnapshot(snapshot(deps.state()), lists.allowed, lists.voters);
    const queries = await queryDatabases(status, (host) => deps.db(host), deps.timeoutMs);
    const { text } = renderClusterStatusJson(status, queries);
    return c.body(text, 200, { "content-type": "application/json; charset=utf-8" });
  });

  app.get("/metrics", async (c) => {
    const text = await deps.registry.metrics();
    return c.body(text, 200, { "content-type": deps.registry.contentType });
  });

  app.notFound((c) =>
    c.json(
      { error: `no such endpoint: ${c.req.path} (try /, /health, /primary, /replica, /status, /metrics)` },
      404,
    ),
  );
  app.onError((err, c) => c.json({ error: err.message }, 500));
  return app;
}
