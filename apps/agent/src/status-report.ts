import {
  DbProbeError,
  type DbConnectionOptions,
  describeFailure,
  FAILURE_CODES,
  type FailureCode,
  readFacts,
} from "@efm/db-probe";
import type { ClusterStatus, NodeStatus } from "./admin/protocol.ts";

// The cluster-status reports, shared by `efm cluster-status[-json]` and the agent's HTTP /status,
// so both print the same thing from the same direct database queries.

/** A direct query from this host to one database (guide 4.2.1 "Promote Status"). */
export type DbQuery =
  | { address: string; ok: true; inRecovery: boolean; lsn: string }
  | { address: string; ok: false; error: string };

const RULE = ` ${"-".repeat(55)}`;

function row(cols: [string, number][], last: string): string {
  return ` ${cols.map(([text, width]) => text.padEnd(width)).join("")}${last}`.trimEnd();
}

/** Compare two `X/Y` WAL positions numerically; an unknown position ("UNKNOWN") is behind any known one. */
export function compareLsn(a: string, b: string): number {
  const n = (s: string) => {
    const m = /^([0-9A-Fa-f]{1,8})\/([0-9A-Fa-f]{1,8})$/.exec(s);
    return m ? BigInt(`0x${m[1]}`) * 2n ** 32n + BigInt(`0x${m[2]}`) : -1n;
  };
  const d = n(a) - n(b);
  return d === 0n ? 0 : d < 0n ? -1 : 1;
}

/** The report's verdict and the exit code of guide 4.2.1 (0 only when all is well). */
export function assess(
  status: ClusterStatus,
  queries: DbQuery[],
): { problems: string[]; syncMessage: string } {
  const problems: string[] = [];
  const byAddress = new Map(queries.map((q) => [q.address, q]));
  const masters = status.nodes.filter((n) => n.type === "Master");
  const standbys = status.nodes.filter((n) => n.type === "Standby");
  for (const n of status.nodes) {
    if (n.agent !== "UP") problems.push(`agent on ${n.address} is ${n.agent}`);
    if (n.starting) problems.push(`agent on ${n.address} is still starting`);
    if (n.type !== "Witness" && n.db !== "UP") problems.push(`database on ${n.address} is ${n.db}`);
    if (n.type === "Idle") problems.push(`agent on ${n.address} is idle`);
  }
  // Guide 4.2.1: 0 only when all agents are running. A node allowed to join whose agent is not in
  // the cluster (stopped, or never started) is an agent that is not running.
  for (const a of status.allowedNodes) {
    if (!status.nodes.some((n) => n.address === a)) problems.push(`no agent is running on ${a}`);
  }
  if (masters.length === 0) problems.push("there is no master agent");
  if (standbys.length === 0) problems.push("there are no standby agents");
  let syncMessage: string;
  const master = masters[0] ? byAddress.get(masters[0].address) : undefined;
  const standbyQueries = standbys.map((s) => byAddress.get(s.address));
  if (!master?.ok || standbyQueries.some((q) => !q?.ok)) {
    problems.push("cannot get the xlog location of every database");
    // Name the databases: the operator's next step is on those hosts.
    const failed = [masters[0], ...standbys]
      .filter((n): n is NodeStatus => n !== undefined && byAddress.get(n.address)?.ok !== true)
      .map((n) => `${n.address} (${n.type})`);
    syncMessage =
      failed.length > 0
        ? `Unable to compare the xlog locations: a database could not be queried: ${failed.join(", ")}.`
        : "Unable to compare the xlog locations: there is no master database to compare with.";
  } else if (standbys.length === 0) {
    syncMessage = "No standby databases were found.";
  } else {
    const behind = standbyQueries.filter((q) => q?.ok && compareLsn(q.lsn, master.lsn) < 0);
    if (behind.length > 0) {
      problems.push("one or more standby databases are not in sync with the master");
      syncMessage = `One or more standby databases are not in sync with the master database: ${behind.map((q) => q!.address).join(" ")}`;
    } else {
      syncMessage = "Standby database(s) in sync with master. It is safe to promote.";
    }
  }
  return { problems, syncMessage };
}

function wrapList(items: string[]): string {
  return items.length === 0 ? " " : ` ${items.join(" ")}`;
}

/** Render `efm cluster-status` exactly in the layout of guide 4.2.1. */
export function renderClusterStatus(
  status: ClusterStatus,
  queries: DbQuery[],
): { text: string; exitCode: number } {
  const { problems, syncMessage } = assess(status, queries);
  const byAddress = new Map(queries.map((q) => [q.address, q]));
  const lines: string[] = [];
  lines.push(`Cluster Status: ${status.cluster}`);
  // Guide 4.2.1 (and our notifications' table) leave a blank line under the title.
  lines.push("");
  lines.push(
    row(
      [
        ["Agent Type", 12],
        ["Address", 21],
        ["Agent", 7],
        ["DB", 9],
      ],
      "Info",
    ),
  );
  lines.push(RULE);
  for (const n of status.nodes) {
    lines.push(
      row(
        [
          [n.type, 12],
          [n.address, 21],
          [n.agent, 7],
          [n.type === "Witness" ? "N/A" : n.db, 9],
        ],
        n.info,
      ),
    );
  }
  lines.push("");
  lines.push("Allowed node host list:");
  lines.push(wrapList(status.allowedNodes));
  lines.push("");
  lines.push("Standby priority host list:");
  lines.push(wrapList(status.failoverPriority));
  lines.push("");
  lines.push("Promote Status:");
  lines.push("");
  lines.push(
    row(
      [
        ["DB Type", 12],
        ["Address", 21],
        ["XLog Loc", 17],
      ],
      "Info",
    ),
  );
  lines.push(RULE);
  // The master, then the standbys in promotion order (the priority list first, as in guide
  // 4.2.1's sample), then any other standby in the report's order.
  const rank = (n: NodeStatus) => {
    if (n.type === "Master") return -1;
    const p = status.failoverPriority.indexOf(n.address);
    return p === -1 ? status.failoverPriority.length : p;
  };
  for (const n of status.nodes
    .filter((x) => x.type === "Master" || x.type === "Standby")
    .sort((a, b) => rank(a) - rank(b))) {
    const q = byAddress.get(n.address);
    lines.push(
      row(
        [
          [n.type, 12],
          [n.address, 21],
          [q?.ok ? q.lsn : "UNKNOWN", 17],
        ],
        q && !q.ok ? q.error : "",
      ),
    );
  }
  lines.push("");
  lines.push(` ${syncMessage}`);
  const idle = status.nodes.filter((n) => n.type === "Idle");
  if (idle.length > 0) {
    lines.push("");
    lines.push("Idle Node Status (idle nodes ignored in XLog location comparisons):");
    lines.push("");
    lines.push(
      row(
        [
          ["Address", 21],
          ["XLog Loc", 17],
        ],
        "Info",
      ),
    );
    lines.push(RULE);
    for (const n of idle) {
      const q = byAddress.get(n.address);
      const info = !q
        ? "UNKNOWN"
        : q.ok
          ? q.inRecovery
            ? "DB is in recovery."
            : "DB is not in recovery."
          : q.error;
      lines.push(
        row(
          [
            [n.address, 21],
            [q?.ok ? q.lsn : "UNKNOWN", 17],
          ],
          info,
        ),
      );
    }
  }
  // The guide's sample shows a cluster with nothing to say; when the agents do have something
  // (failover disabled, a promotion that needs the operator, no quorum), the text report must
  // say it too, not only cluster-status-json's "messages".
  if (status.messages.length > 0) {
    lines.push("");
    lines.push("Messages:");
    for (const m of status.messages) lines.push(` ${m}`);
  }
  return { text: `${lines.join("\n")}\n`, exitCode: problems.length === 0 ? 0 : 1 };
}

/** Render `efm cluster-status-json` with the keys of guide 5.3. */
export function renderClusterStatusJson(
  status: ClusterStatus,
  queries: DbQuery[],
): { text: string; exitCode: number } {
  const byAddress = new Map(queries.map((q) => [q.address, q]));
  const nodes: Record<
    string,
    {
      type: string;
      agent: string;
      db: string;
      info: string;
      xlog: string;
      xloginfo: string;
      starting?: true;
    }
  > = {};
  for (const n of status.nodes) {
    const q = byAddress.get(n.address);
    nodes[n.address] = {
      type: n.type,
      agent: n.agent,
      db: n.type === "Witness" ? "N/A" : n.db,
      info: n.info === "" ? " " : n.info,
      xlog: q?.ok ? q.lsn : n.type === "Witness" ? "" : "UNKNOWN",
      xloginfo: q && !q.ok ? q.error : "",
      // Only while its start-up checks run, so a settled cluster prints guide 5.3's keys exactly.
      ...(n.starting ? { starting: true as const } : {}),
    };
  }
  const { problems } = assess(status, queries);
  const json = {
    nodes,
    allowednodes: status.allowedNodes,
    failoverpriority: status.failoverPriority,
    messages: status.messages,
  };
  return { text: `${JSON.stringify(json, null, 4)}\n`, exitCode: problems.length === 0 ? 0 : 1 };
}

/**
 * Query every database of the report directly from this host (guide 4.2.1 "Promote Status").
 * `db` gives the connection settings for a host; `user` names the user in failure messages.
 *
 * The master is read first and each standby after it, so "in sync" compares a standby with a
 * position the master had already reached. A standby still short of it is read again for up to
 * `catchUpMs`: WAL in flight (a background record the master wrote a moment ago) is not lag,
 * while a standby that does not receive it within that bound really is behind.
 */
export async function queryDatabases(
  status: ClusterStatus,
  db: (host: string) => DbConnectionOptions,
  timeoutMs: number,
  catchUpMs = 1000,
): Promise<DbQuery[]> {
  const query = async (n: NodeStatus): Promise<DbQuery> => {
    const options = db(n.address);
    try {
      const f = await readFacts(options, timeoutMs);
      return {
        address: n.address,
        ok: true,
        inRecovery: f.inRecovery,
        lsn: f.position?.toString() ?? "UNKNOWN",
      };
    } catch (err) {
      const code = err instanceof DbProbeError ? err.code : undefined;
      const known = code !== undefined && (FAILURE_CODES as readonly string[]).includes(code);
      return {
        address: n.address,
        ok: false,
        // A TLS failure's own message says which certificate check failed and what to change.
        error:
          known && code !== "SSL_FAILED"
            ? describeFailure(code as FailureCode, options.user)
            : (err as Error).message,
      };
    }
  };
  const targets = status.nodes.filter((n) => n.type !== "Witness");
  const masters = targets.filter((n) => n.type === "Master");
  const first = await Promise.all(masters.map(query));
  const master = first.find((q) => q.ok && !q.inRecovery);
  const masterLsn = master?.ok && master.lsn !== "UNKNOWN" ? master.lsn : null;
  const behind = (q: DbQuery) =>
    masterLsn !== null && q.ok && q.inRecovery && q.lsn !== "UNKNOWN" && compareLsn(q.lsn, masterLsn) < 0;
  const rest = await Promise.all(
    targets
      .filter((n) => n.type !== "Master")
      .map(async (n) => {
        const deadline = Date.now() + catchUpMs;
        let q = await query(n);
        while (behind(q) && Date.now() < deadline) {
          await new Promise((r) => setTimeout(r, 50));
          q = await query(n);
        }
        return q;
      }),
  );
  const byAddress = new Map([...first, ...rest].map((q) => [q.address, q]));
  return targets.map((n) => byAddress.get(n.address) as DbQuery);
}
