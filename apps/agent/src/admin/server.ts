import { randomBytes, timingSafeEqual } from "node:crypto";
import { chownSync, mkdirSync, readFileSync } from "node:fs";
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

/** Create the admin token file, readable only by its owner (root) and the `efm` group. */
export function writeTokenFile(path: string, token: string = newToken()): string {
  mkdirSync(dirname(path), { recursive: true });
  writeFileAtomic(path, `${token}\n`, 0o640);
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
}): Promise<Server> {
  const server = createServer((socket) => serve(socket, opts));
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

function serve(socket: Socket, opts: { token: string; handle: AdminHandler; logger: Logger }): void {
  let buf = "";
  let done = false;
  socket.setTimeout(30_000, () => socket.destroy());
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
      opts.logger.warn({ command: req.command }, "admin request refused: missing or wrong token");
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
