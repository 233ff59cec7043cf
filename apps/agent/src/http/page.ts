import { Lsn } from "@efm/db-probe";
import { snapshot } from "@efm/failover-core";
import { hostOf } from "@efm/membership";
import { statusFromSnapshot } from "../state.ts";
import { queryDatabases } from "../status-report.ts";
import type { HttpDeps } from "./app.ts";
import type { Decision } from "./observe.ts";

/** One host as the status page shows it. */
export interface PageHost {
  address: string;
  role: string;
  agent: string;
  db: string;
  /** WAL position read just now from that database; null when it did not answer. */
  xlog: string | null;
  /** Bytes behind the master's position (standbys); null when unknown. */
  lagBytes: number | null;
  error: string | null;
}

/** Everything the status page shows, as the event stream sends it. */
export interface LiveStatus {
  cluster: string;
  /** The node serving the page. */
  node: string;
  version: string;
  at: string;
  epoch: number | null;
  quorate: boolean;
  coordinator: string | null;
  hosts: PageHost[];
  priority: string[];
  allowed: string[];
  messages: string[];
  decisions: Decision[];
}

/** Read the engine's view and every database once, and put them together for the page. */
export async function liveStatus(deps: HttpDeps): Promise<LiveStatus> {
  const state = deps.state();
  const snap = snapshot(state);
  const lists = deps.lists();
  const status = statusFromSnapshot(snap, lists.allowed, lists.voters);
  const queries = new Map(
    (await queryDatabases(status, (h) => deps.db(h), deps.timeoutMs)).map((q) => [q.address, q]),
  );
  const masterNode = status.nodes.find((n) => n.type === "Master");
  const masterQuery = masterNode ? queries.get(masterNode.address) : undefined;
  const masterLsn = masterQuery?.ok ? Lsn.tryParse(masterQuery.lsn) : null;
  const hosts = status.nodes.map((n): PageHost => {
    const q = queries.get(n.address);
    const lsn = q?.ok ? Lsn.tryParse(q.lsn) : null;
    const lag = n.type === "Standby" && lsn && masterLsn ? masterLsn.diff(lsn) : null;
    return {
      address: n.address,
      role: n.type,
      agent: n.agent,
      db: n.type === "Witness" ? "N/A" : n.db,
      xlog: q?.ok ? q.lsn : null,
      lagBytes: lag === null ? null : Number(lag < 0n ? 0n : lag),
      error: q && !q.ok ? q.error : null,
    };
  });
  return {
    cluster: deps.cluster,
    node: hostOf(deps.self),
    version: deps.version,
    at: new Date().toISOString(),
    epoch: snap.epoch,
    quorate: snap.quorate,
    coordinator: snap.coordinator ? hostOf(snap.coordinator) : null,
    hosts,
    priority: status.failoverPriority,
    allowed: status.allowedNodes,
    messages: status.messages,
    decisions: deps.observer.decisions.slice(0, 20),
  };
}

const html = (s: string) =>
  s.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]!);

/** The page's main part; the same HTML is sent first with the page and then on every update. */
export function renderMain(s: LiveStatus): string {
  const rows = s.hosts
    .map(
      (h) =>
        `<tr class="role-${html(h.role.toLowerCase())}" data-address="${html(h.address)}"><td>${html(h.address)}${h.address === s.node ? " (this node)" : ""}</td><td class="role">${html(h.role)}</td><td>${html(h.agent)}</td><td>${html(h.db)}</td><td>${html(h.xlog ?? h.error ?? "UNKNOWN")}</td><td>${h.lagBytes === null ? "" : `${h.lagBytes} bytes`}</td></tr>`,
    )
    .join("");
  const decisions = s.decisions
    .map(
      (d) =>
        `<tr><td>${html(new Date(d.at).toISOString().slice(11, 19))}</td><td><code>${html(d.rule)}</code></td><td>${html(`${d.from ?? "-"} → ${d.to ?? "-"}`)}</td><td>${html(d.reason)}</td></tr>`,
    )
    .join("");
  const master = s.hosts.find((h) => h.role === "Master");
  return `<p class="summary">Master: <strong id="master">${html(master?.address ?? "none")}</strong> · view epoch ${s.epoch ?? "-"}${s.quorate ? "" : " (no majority)"} · coordinator ${html(s.coordinator ?? "-")} · updated <time>${html(s.at)}</time></p>
${s.messages.map((m) => `<p class="message">${html(m)}</p>`).join("")}
<table id="hosts"><thead><tr><th>Address</th><th>Role</th><th>Agent</th><th>DB</th><th>WAL position</th><th>Replay lag</th></tr></thead><tbody>${rows}</tbody></table>
<h2>Failover priority</h2><ol id="priority">${s.priority.map((p) => `<li>${html(p)}</li>`).join("")}</ol>
<p>Allowed hosts: ${s.allowed.map(html).join(", ") || "none"}</p>
<h2>Last decisions of this agent</h2>
<table id="decisions"><thead><tr><th>Time (UTC)</th><th>Rule</th><th>Role</th><th>Reason</th></tr></thead><tbody>${decisions}</tbody></table>`;
}

/** The whole page: readable as sent (no script needed), then kept current by /events. */
export function renderPage(s: LiveStatus): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${html(s.cluster)} · efm</title>
<noscript><meta http-equiv="refresh" content="5"></noscript>
<style>
body{font:15px/1.4 system-ui,sans-serif;margin:1.5rem;color:#222}
table{border-collapse:collapse;margin:.5rem 0}td,th{border:1px solid #ccc;padding:.25rem .6rem;text-align:left}
th{background:#f3f3f3}.role-master .role{color:#fff;background:#1a7f37;font-weight:bold}
.role-idle .role{background:#fbe3b0}.message{color:#9a6700}.stale{opacity:.5}
</style></head>
<body><h1>Cluster ${html(s.cluster)}</h1>
<main id="main">${renderMain(s)}</main>
<p><small>efm ${html(s.version)} on ${html(s.node)} · <a href="/status">/status</a> · <a href="/metrics">/metrics</a> · <span id="live">live updates off</span></small></p>
<script>
// Server-sent events: each message carries the new main part, rendered by the agent.
const live = document.getElementById("live");
const events = new EventSource("/events");
events.addEventListener("status", (e) => {
  document.getElementById("main").innerHTML = JSON.parse(e.data).html;
  document.getElementById("main").classList.remove("stale");
  live.textContent = "live";
});
events.onerror = () => {
  document.getElementById("main").classList.add("stale");
  live.textContent = "reconnecting";
};
</script></body></html>
`;
}
