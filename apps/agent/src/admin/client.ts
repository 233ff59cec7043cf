import { readFileSync } from "node:fs";
import { connect } from "node:net";
import { AgentError } from "../errors.ts";
import type { AdminRequest, AdminResponse } from "./protocol.ts";

/** Read the admin token; undefined when this user may not (not root, efm or the efm group). */
export function readToken(path: string): string | undefined {
  try {
    return readFileSync(path, "utf8").trim();
  } catch {
    return undefined;
  }
}

/** Send one request to the local agent and wait for its reply. */
export function adminRequest(port: number, req: AdminRequest, timeoutMs = 30_000): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: "127.0.0.1", port });
    let buf = "";
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new AgentError("TIMEOUT", `the local agent did not answer within ${timeoutMs / 1000} s`));
    }, timeoutMs);
    socket.on("connect", () => socket.write(`${JSON.stringify(req)}\n`));
    socket.on("data", (c) => {
      buf += c.toString("utf8");
    });
    socket.on("error", (err) => {
      clearTimeout(timer);
      const code = (err as NodeJS.ErrnoException).code;
      reject(
        code === "ECONNREFUSED"
          ? new AgentError(
              "NO_AGENT",
              `cannot reach the agent on 127.0.0.1:${port}: is the local agent running?`,
            )
          : new AgentError("IO", `admin connection failed: ${err.message}`),
      );
    });
    socket.on("end", () => {
      clearTimeout(timer);
      let r: AdminResponse;
      try {
        r = JSON.parse(buf) as AdminResponse;
      } catch {
        reject(new AgentError("BAD_REQUEST", "the agent sent an unreadable reply"));
        return;
      }
      if (r.ok) resolve(r.result);
      else reject(new AgentError((r.error.code as AgentError["code"]) ?? "REFUSED", r.error.message));
    });
  });
}
