import { type ServerType, serve } from "@hono/node-server";
import { formatHostPort, type HostPort } from "@efm/properties-parser";
import type { Logger } from "pino";
import { collectDefaultMetrics, Registry } from "prom-client";
import { AgentError } from "../errors.ts";
import { createHttpApp, type HttpDeps } from "./app.ts";
import { AgentObserver } from "./observe.ts";

/** A running HTTP server; `close` stops it and ends open streams. */
export interface HttpServer {
  /** `host:port` it listens on. */
  readonly address: string;
  close(): Promise<void>;
}

/** The registry and observer an agent creates before its event loop, so both see every step. */
export function createObservation(): { registry: Registry; observer: AgentObserver } {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: "efm_" });
  return { registry, observer: new AgentObserver(registry) };
}

/** Listen on `http.bind.address`; a port in use is an AgentError naming the property. */
export function startHttpServer(bind: HostPort, deps: HttpDeps, logger: Logger): Promise<HttpServer> {
  const app = createHttpApp(deps);
  const address = formatHostPort(bind);
  return new Promise((resolve, reject) => {
    let server: ServerType;
    const onError = (err: NodeJS.ErrnoException) =>
      reject(
        new AgentError("IO", `http.bind.address ${address}: cannot listen (${err.code ?? err.message})`),
      );
    server = serve({ fetch: app.fetch, hostname: bind.host, port: bind.port }, () => {
      server.off("error", onError);
      server.on("error", (err) => logger.error({ err }, "HTTP server error"));
      // The port actually bound (differs from the property only when it asks for port 0).
      const bound = server.address();
      const actual =
        bound && typeof bound === "object" ? formatHostPort({ host: bind.host, port: bound.port }) : address;
      logger.info(
        `HTTP endpoints on http://${actual}/ (status page, health, primary, replica, status, metrics)`,
      );
      resolve({
        address: actual,
        close: () =>
          new Promise((done) => {
            server.close(() => done());
            // Event streams of the status page never end by themselves.
            if ("closeAllConnections" in server) server.closeAllConnections();
          }),
      });
    });
    server.once("error", onError);
  });
}
