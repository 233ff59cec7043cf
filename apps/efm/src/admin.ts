import { lookup } from "node:dns/promises";
import { accessSync, constants } from "node:fs";
import { isIP } from "node:net";
import {
  adminRequest,
  AgentError,
  agentFiles,
  type ClusterStatus,
  compareLsn,
  readToken,
  renderClusterStatus,
  renderClusterStatusJson,
  resolveDirs,
} from "@efm/agent/client";
import {
  type EfmConfig,
  formatProblem,
  PropertiesError,
  parseHostPort,
  readConfig,
} from "@efm/properties-parser";
import type { Io, Outcome } from "./encrypt.ts";
import { clusterFiles } from "./paths.ts";

/** Read the cluster's properties for a command that talks to the agent; null after printing why not. */
function loadProperties(dir: string, cluster: string, io: Io): EfmConfig | null {
  try {
    // Anyone who can read the properties may ask for the status: the TLS files are the agent
    // user's business (prop-check and the agent check them); a query they break says so itself.
    const r = readConfig(clusterFiles(dir, cluster).properties, { checkFiles: false });
    for (const p of r.errors) io.output.write(`ERROR: ${formatProblem(p)}\n`);
    return r.config;
  } catch (err) {
    if (err instanceof PropertiesError) {
      io.output.write(`${err.message}\n`);
      return null;
    }
    throw err;
  }
}

function fail(io: Io, err: unknown): Outcome {
  if (err instanceof AgentError) {
    io.output.write(`${err.message}\n`);
    return 1;
  }
  throw err;
}

/**
 * The agent's view and its query of every database (guide 4.2.1 "Promote Status"); a string
 * says why not. The agent runs the queries with the password it holds, so the CLI never
 * decrypts db.password.encrypted.
 */
async function fetchStatus(
  c: EfmConfig,
): Promise<{ status: ClusterStatus; queries: NonNullable<ClusterStatus["databases"]> } | string> {
  // The agent queries every database within remote.timeout; leave it that and a margin.
  const status = (await adminRequest(
    c.adminPort,
    { command: "cluster-status" },
    Math.max(30, c.remoteTimeout + 10) * 1000,
  )) as ClusterStatus;
  if (status.databases === undefined) {
    return `the agent on admin port ${c.adminPort} did not report its databases: it runs an older version; restart it`;
  }
  return { status, queries: status.databases };
}

/** `efm cluster-status` and `efm cluster-status-json`. */
export async function runClusterStatus(
  dir: string,
  cluster: string,
  json: boolean,
  io: Io,
): Promise<Outcome> {
  const c = loadProperties(dir, cluster, io);
  if (!c) return 1;
  let got: Awaited<ReturnType<typeof fetchStatus>>;
  try {
    got = await fetchStatus(c);
  } catch (err) {
    return fail(io, err);
  }
  if (typeof got === "string") {
    io.output.write(`${got}\n`);
    return 1;
  }
  const { status, queries } = got;
  const out = json ? renderClusterStatusJson(status, queries) : renderClusterStatus(status, queries);
  io.output.write(out.text);
  // After the guide's layout, so scripts parsing it see it unchanged (the JSON stays EFM's).
  if (!json) for (const w of status.warnings ?? []) io.output.write(`\nWARNING: ${w}\n`);
  return out.exitCode;
}

/** `efm node-status-json`: the local node only; exit 0 when healthy. */
export async function runNodeStatus(dir: string, cluster: string, io: Io): Promise<Outcome> {
  const c = loadProperties(dir, cluster, io);
  if (!c) return 1;
  try {
    const r = (await adminRequest(c.adminPort, { command: "node-status" })) as { healthy: boolean };
    io.output.write(`${JSON.stringify(r, null, 4)}\n`);
    return r.healthy ? 0 : 1;
  } catch (err) {
    return fail(io, err);
  }
}

type Privileged =
  | { command: "add-node"; address: string; priority?: number }
  | { command: "remove-node"; address: string }
  | { command: "set-priority"; address: string; priority: number }
  | { command: "resume" }
  | { command: "stop-cluster" }
  | { command: "promote"; force: boolean; switchover?: boolean; to?: string };

/** Send a command that needs root, efm or the efm group (guide 4.1); print the agent's answer. */
export async function runPrivileged(dir: string, cluster: string, req: Privileged, io: Io): Promise<Outcome> {
  const c = loadProperties(dir, cluster, io);
  if (!c) return 1;
  if ("address" in req) {
    const address = await resolveNodeAddress(req.address);
    if (!address.ok) {
      io.output.write(`${address.error}\n`);
      return 1;
    }
    return sendPrivileged(c, cluster, { ...req, address: address.value }, io);
  }
  return sendPrivileged(c, cluster, req, io);
}

/**
 * The node a command names, as an address: an IPv4 or IPv6 address (optionally `ip:port`), or a
 * host name resolved once, here, so the lists only ever hold addresses. Anything else is refused
 * with the reason before the agent is asked.
 */
export async function resolveNodeAddress(
  given: string,
): Promise<{ ok: true; value: string } | { ok: false; error: string }> {
  const hp = parseHostPort(given);
  if (isIP(hp ? hp.host : given) !== 0) return { ok: true, value: given };
  if (/^[\d.]+(:\d+)?$/.test(given) || hp) {
    return { ok: false, error: `"${given}" is not a valid IPv4 or IPv6 address` };
  }
  if (!/^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$/.test(given)) {
    return { ok: false, error: `"${given}" is neither an IP address nor a host name` };
  }
  try {
    const { address } = await lookup(given);
    return { ok: true, value: address };
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
    return {
      ok: false,
      error: `cannot resolve the host name "${given}" (${code}): give the node's IP address`,
    };
  }
}

async function sendPrivileged(c: EfmConfig, cluster: string, req: Privileged, io: Io): Promise<Outcome> {
  const tokenPath = agentFiles(resolveDirs(c, io.env), cluster).token;
  const token = readToken(tokenPath);
  if (token === undefined) {
    io.output.write(`${tokenProblem(tokenPath)}\n`);
    return 1;
  }
  let progress: NodeJS.Timeout | undefined;
  if (req.command === "promote") {
    io.output.write(
      req.switchover === true
        ? "Switchover command accepted by local agent. Proceeding with switchover and waiting for it to complete"
        : "Promote command accepted by local agent. Proceeding with promotion and waiting for it to complete",
    );
    progress = setInterval(() => io.output.write("."), 2000);
  }
  try {
    const message = await adminRequest(
      c.adminPort,
      { ...req, token },
      req.command === "promote" ? 11 * 60_000 : 70_000,
    );
    if (progress) io.output.write("\n");
    io.output.write(`${String(message)}\n`);
    return 0;
  } catch (err) {
    if (progress) io.output.write("\n");
    return fail(io, err);
  } finally {
    if (progress) clearInterval(progress);
  }
}

/**
 * Why the admin token cannot be read. A missing file is not a permission problem: the agent is
 * not running, or it runs with another run directory than the one this command looked in.
 */
function tokenProblem(path: string): string {
  try {
    accessSync(path, constants.F_OK);
  } catch {
    return `There is no admin token at ${path}: is the agent running? The agent writes it in its run directory (run.dir in the properties, or EFM_RUN_DIR in the agent's environment); run efm with the same EFM_RUN_DIR.`;
  }
  return `This command must be run by root, efm or a member of the efm group (cannot read the admin token ${path}).`;
}

/** `efm promote`: check that a standby is up to date first; ask on a terminal, refuse otherwise unless --force. */
export async function runPromote(dir: string, cluster: string, force: boolean, io: Io): Promise<Outcome> {
  const c = loadProperties(dir, cluster, io);
  if (!c) return 1;
  if (!force) {
    let got: Awaited<ReturnType<typeof fetchStatus>>;
    try {
      got = await fetchStatus(c);
    } catch (err) {
      return fail(io, err);
    }
    const master = typeof got === "string" ? undefined : got.queries.find((q) => q.ok && !q.inRecovery);
    const upToDate =
      typeof got !== "string" &&
      master?.ok === true &&
      got.queries.some(
        (q) =>
          q.ok &&
          q.inRecovery &&
          got.status.nodes.some((n) => n.address === q.address && n.type === "Standby") &&
          // The master was read first: a standby holding at least that position has every write
          // acknowledged before the check (later ones keep arriving while the master writes).
          compareLsn(q.lsn, master.lsn) >= 0,
      );
    if (!upToDate) {
      io.output.write("There is no standby that is up to date with the master; a promotion may lose data.\n");
      if (!io.input.isTTY) {
        io.output.write("Not promoting. Run 'efm promote' on a terminal to confirm, or use --force.\n");
        return 1;
      }
      io.output.write("Continue with the promotion anyway? (y/n) ");
      const answer = await readAnswer(io.input);
      if (!/^y(es)?$/i.test(answer.trim())) {
        io.output.write("Promotion cancelled.\n");
        return 1;
      }
    }
  }
  return sendPrivileged(c, cluster, { command: "promote", force: true }, io);
}

/**
 * `efm promote -switchover [-sourcenode <address>]`: the agents check every precondition before
 * anything changes (they print the reason when one fails); no question asked, nothing forced.
 */
export async function runSwitchover(
  dir: string,
  cluster: string,
  to: string | undefined,
  io: Io,
): Promise<Outcome> {
  const c = loadProperties(dir, cluster, io);
  if (!c) return 1;
  let target: string | undefined;
  if (to !== undefined) {
    const address = await resolveNodeAddress(to);
    if (!address.ok) {
      io.output.write(`${address.error}\n`);
      return 1;
    }
    target = address.value;
  }
  return sendPrivileged(
    c,
    cluster,
    { command: "promote", force: false, switchover: true, ...(target !== undefined ? { to: target } : {}) },
    io,
  );
}

function readAnswer(input: NodeJS.ReadableStream): Promise<string> {
  return new Promise((resolve) => {
    let buf = "";
    const onData = (c: Buffer | string) => {
      buf += c.toString();
      if (buf.includes("\n")) {
        input.off("data", onData);
        (input as NodeJS.ReadStream).pause?.();
        resolve(buf.split("\n")[0] ?? "");
      }
    };
    input.on("data", onData);
    input.resume();
  });
}
