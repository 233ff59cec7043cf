import { createServer, type Server } from "node:net";
import { type FailoverConfig, initialState } from "@efm/failover-core";
import pino from "pino";
import { afterAll, describe, expect, test } from "vitest";
import { AgentError } from "../errors.ts";
import type { HttpDeps } from "./app.ts";
import { createObservation, type HttpServer, startHttpServer } from "./server.ts";

const config: FailoverConfig = {
  self: "127.0.0.1:7800",
  clusterName: "acctg",
  isWitness: false,
  autoFailover: true,
  autoReconfigure: true,
  virtualIp: null,
  pingServer: "127.0.0.1",
  scripts: { fence: null, postPromotion: null, dbFailure: null, masterIsolated: null },
  localPeriodMs: 1000,
  localTimeoutMs: 5000,
  localTimeoutFinalMs: 2000,
  remoteTimeoutMs: 3000,
  leaseMs: 2000,
  takeoverMarginMs: 500,
  messageSlackMs: 2000,
  promotionTimeoutMs: 60_000,
  allowed: ["127.0.0.1:7800"],
  priority: [],
};

/**
 * An agent state that claims Master with a lease, over a database that is not there (port 1
 * on loopback refuses at once): the endpoints must trust the database, not the role.
 */
function deps(): HttpDeps {
  const { registry, observer } = createObservation();
  return {
    cluster: "acctg",
    self: "127.0.0.1:7800",
    version: "9.9.9",
    state: () => ({ ...initialState(config), phase: "running", role: "Master" }),
    leaseUntil: () => 10_000,
    now: () => 1_000,
    lists: () => ({ allowed: ["127.0.0.1"], voters: ["127.0.0.1:7800"] }),
    db: (host) => ({ host, port: 1, user: "efm", password: "x", database: "postgres" }),
    timeoutMs: 2000,
    notifierStats: () => ({
      accepted: 1,
      refused: 0,
      sinks: { email: { delivered: 1, failedAttempts: 2, dropped: 0, shed: 0, pending: 3 } },
    }),
    observer,
    registry,
  };
}

const silent = pino({ level: "silent" });
const servers: HttpServer[] = [];
const blockers: Server[] = [];
afterAll(async () => {
  for (const s of servers) await s.close();
  for (const b of blockers) b.close();
});

describe("the agent's HTTP server", () => {
  test("a taken port is an AgentError naming http.bind.address", async () => {
    const blocker = createServer();
    blockers.push(blocker);
    await new Promise<void>((r) => blocker.listen(0, "127.0.0.1", r));
    const port = (blocker.address() as { port: number }).port;
    const err = await startHttpServer({ host: "127.0.0.1", port }, deps(), silent).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AgentError);
    expect((err as AgentError).code).toBe("IO");
    expect((err as AgentError).message).toBe(
      `http.bind.address 127.0.0.1:${port}: cannot listen (EADDRINUSE)`,
    );
  });

  test("a Master whose database does not answer is neither primary nor healthy; metrics still answer", async () => {
    const server = await startHttpServer({ host: "127.0.0.1", port: 0 }, deps(), silent);
    servers.push(server);
    const get = async (path: string) => {
      const r = await fetch(`http://${server.address}${path}`);
      return { status: r.status, type: r.headers.get("content-type") ?? "", text: await r.text() };
    };
    const primary = await get("/primary");
    expect(primary.status).toBe(503);
    expect(JSON.parse(primary.text)).toEqual({
      cluster: "acctg",
      node: "127.0.0.1",
      role: "Master",
      ok: false,
      reason: "the local database does not answer",
    });
    expect((await get("/health")).status).toBe(503);
    expect((await get("/replica?lag=x")).status).toBe(400);
    const metrics = await get("/metrics");
    expect(metrics.status).toBe(200);
    expect(metrics.type).toContain("text/plain");
    expect(metrics.text).toContain('efm_agent_info{cluster="acctg",node="127.0.0.1",version="9.9.9"} 1');
    expect(metrics.text).toContain('efm_role{role="Master"} 1');
    expect(metrics.text).toContain("efm_database_up 0");
    expect(metrics.text).toContain("efm_lease_remaining_seconds 9");
    expect(metrics.text).toContain('efm_notifications_pending{sink="email"} 3');
    expect(metrics.text).toContain('efm_notification_failures_total{sink="email"} 2');
    const missing = await get("/nope");
    expect(missing.status).toBe(404);
    expect(missing.text).toContain("no such endpoint: /nope");
    const page = await get("/");
    expect(page.status).toBe(200);
    expect(page.type).toContain("text/html");
    expect(page.text).toContain("<h1>Cluster acctg</h1>");
  });

  test("writing methods are not served", async () => {
    const server = await startHttpServer({ host: "127.0.0.1", port: 0 }, deps(), silent);
    servers.push(server);
    for (const method of ["POST", "PUT", "DELETE"]) {
      const r = await fetch(`http://${server.address}/primary`, { method });
      expect(r.status, method).toBe(404);
    }
  });
});
