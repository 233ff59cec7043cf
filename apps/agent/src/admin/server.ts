import { randomBytes, timingSafeEqual } from "node:crypto";
import { chmodSync, chownSync, mkdirSync, readFileSync, rmSync } from "node:fs";
import { createServer, type Server, type Socket } from "node:net";
import { dirname } from "node:path";
import { writeFileAtomic } from "@efm/properties-parser";
import type { Logger } from "pino";
import { AgentError } from "../errors.ts";
import { type AdminRequest, type AdminResponse, MAX_REQUEST_BYTES, OPEN, requestSchema } from "./protocol.ts";

/** Gid of the `efm` group when it exists, so its members can use privileged commands. */
function efmGroupId(): number | undefined {
  try {
    const line = readFileSync("/etc/group", "utf8")
      .split("\n")
      .find((l) => l.startsWith("efm:"));
    const gid = line?.split(":")[2];
    return gid === undefined ? undefined : Number(gid);
  } catch {
    return undefined;
  }
}

/** A fresh admin token (the agent writes it only once its admin port is its own). */
export function newToken(): string {
  return randomBytes(32).toString("hex");
}

/**
 * Create the admin token file, readable only by its owner (root) and the `efm` group: mode 0640
 * on every start, whatever mode an earlier file had (the atomic writer would keep it).
 */
export function writeTokenFile(path: string, token: string = newToken()): string {
  mkdirSync(dirname(path), { recursive: true });
  rmSync(path, { force: true });
  writeFileAtomic(path, `${token}\n`, 0o640);
  chmodSync(path, 0o640);
  const gid = efmGroupId();
  if (gid !== undefined && process.getuid?.() === 0) {
    try {
      chownSync(path, 0, gid);
    } catch {
      // Keep root-only access if the group cannot be set.
    }
  }
  return token;
}

function tokenMatches(expected: string, given: string | undefined): boolean {
  if (given === undefined) return false;
  const a = Buffer.from(expected);
  const b = Buffer.from(given);
  return a.length === b.length && timingSafeEqual(a, b);
}

/** Handles one validated request. */
export type AdminHandler = (req: AdminRequest) => Promise<unknown>;

/**
 * Listen on 127.0.0.1:port for one JSON line per connection. Malformed, oversized or
 * unauthenticated requests get an error reply; nothing a client sends can crash the agent.
 */
export async function startAdminServer(opts: {
  host?: string;
  port: number;
  token: string;
  handle: AdminHandler;
  logger: Logger;
  /** Cap on open admin connections (default 32); more are closed at once. */
  maxConnections?: number;
  /** Time from accept by which the whole request line must have arrived (ms, default 10 s). */
  requestDeadlineMs?: number;
}): Promise<Server> {
  const refusals = { at: Number.NEGATIVE_INFINITY, suppressed: 0 };
  const server = createServer((socket) => serve(socket, { ...opts, refusals }));
  // Each connection holds a little memory and a timer: a local user looping on connect()
  // must not make that unbounded.
  server.maxConnections = opts.maxConnections ?? 32;
  await new Promise<void>((resolve, reject) => {
    server.once("error", (err: NodeJS.ErrnoException) =>
      reject(
        // Usually a second agent for the same cluster (a different lock.dir) or another program.
        new AgentError(
          err.code === "EADDRINUSE" ? "IN_USE" : "IO",
          err.code === "EADDRINUSE"
            ? `admin.port ${opts.port} is already in use on ${opts.host ?? "127.0.0.1"}: another agent for this cluster (with a different lock.dir) or another program listens there`
            : `cannot listen on admin.port ${opts.port}: ${err.message}`,
          { cause: err },
        ),
      ),
    );
    server.listen(opts.port, opts.host ?? "127.0.0.1", () => {
      server.removeAllListeners("error");
      server.on("error", (err) => opts.logger.error({ err }, "admin server error"));
      resolve();
    });
  });
  return server;
}

/** Wrong-token log lines: at most one per 10 s, with how many were left out. */
interface Refusals {
  at: number;
  suppressed: number;
}

function serve(
  socket: Socket,
  opts: {
    token: string;
    handle: AdminHandler;
    logger: Logger;
    requestDeadlineMs?: number;
    refusals: Refusals;
  },
): void {
  let buf = "";
  let done = false;
  // An absolute deadline for the request itself: an idle timeout alone let a client hold the
  // connection forever by sending one byte just before each timeout.
  const deadline = setTimeout(() => socket.destroy(), opts.requestDeadlineMs ?? 10_000);
  deadline.unref();
  socket.once("close", () => clearTimeout(deadline));
  socket.on("error", () => socket.destroy());
  const reply = (r: AdminResponse) => {
    if (done) return;
    done = true;
    socket.end(`${JSON.stringify(r)}\n`);
  };
  const fail = (code: string, message: string) => reply({ ok: false, error: { code, message } });
  socket.on("data", (chunk) => {
    if (done) return;
    buf += chunk.toString("utf8");
    if (buf.length > MAX_REQUEST_BYTES) {
      fail("BAD_REQUEST", `request larger than ${MAX_REQUEST_BYTES} bytes`);
      return;
    }
    const nl = buf.indexOf("\n");
    if (nl < 0) return;
    const line = buf.slice(0, nl);
    clearTimeout(deadline); // the request is in; the command's own time limit applies now
    let json: unknown;
    try {
      json = JSON.parse(line);
    } catch {
      fail("BAD_REQUEST", "request is not valid JSON");
      return;
    }
    const parsed = requestSchema.safeParse(json);
    if (!parsed.success) {
      const known = typeof json === "object" && json !== null && "command" in json;
      fail(
        known ? "BAD_REQUEST" : "UNKNOWN_COMMAND",
        `invalid request: ${parsed.error.issues.map((i) => `${i.path.join(".") || "request"}: ${i.message}`).join("; ")}`,
      );
      return;
    }
    const req = parsed.data;
    if (!(OPEN as readonly string[]).includes(req.command) && !tokenMatches(opts.token, req.token)) {
      const now = Date.now();
      if (now - opts.refusals.at >= 10_000) {
        opts.logger.warn(
          { command: req.command, suppressed: opts.refusals.suppressed },
          "admin request refused: missing or wrong token",
        );
        opts.refusals.at = now;
        opts.refusals.suppressed = 0;
      } else opts.refusals.suppressed++;
      fail("UNAUTHORIZED", "this command must be run by root, efm or a member of the efm group");
      return;
    }
    opts
      .handle(req)
      .then((result) => reply({ ok: true, result }))
      .catch((err: unknown) => {
        const code = err instanceof AgentError ? err.code : "REFUSED";
        if (!(err instanceof AgentError))
          opts.logger.error({ err, command: req.command }, "admin command failed");
        fail(code, (err as Error).message);
      });
  });
}
