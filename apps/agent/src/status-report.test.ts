import type { ClusterStatus } from "./admin/protocol.ts";
import { describe, expect, test } from "vitest";
import { compareLsn, type DbQuery, renderClusterStatus, renderClusterStatusJson } from "./status-report.ts";

const status: ClusterStatus = {
  cluster: "acctg",
  self: "172.24.38.163",
  nodes: [
    { address: "172.24.38.106", type: "Idle", agent: "UP", db: "UNKNOWN", info: "" },
    { address: "172.24.38.123", type: "Standby", agent: "UP", db: "UP", info: "" },
    { address: "172.24.38.103", type: "Standby", agent: "UP", db: "UP", info: "" },
    { address: "172.24.38.163", type: "Master", agent: "UP", db: "UP", info: "" },
  ],
  allowedNodes: ["172.24.38.106", "172.24.38.163", "172.24.38.103", "172.24.38.123"],
  failoverPriority: ["172.24.38.103", "172.24.38.123"],
  messages: [],
};

const refused =
  "Connection refused. Check that the hostname and port are correct and that the postmaster is accepting TCP/IP connections.";
const queries: DbQuery[] = [
  { address: "172.24.38.163", ok: true, inRecovery: false, lsn: "2/35000230" },
  { address: "172.24.38.103", ok: true, inRecovery: true, lsn: "2/35000230" },
  { address: "172.24.38.123", ok: true, inRecovery: true, lsn: "2/35000230" },
  { address: "172.24.38.106", ok: false, error: refused },
];

describe("cluster-status", () => {
  test("the layout of guide 4.2.1", () => {
    const { text, exitCode } = renderClusterStatus(status, queries);
    expect(text).toBe(
      [
        "Cluster Status: acctg",
        "",
        " Agent Type  Address              Agent  DB       Info",
        " -------------------------------------------------------",
        " Idle        172.24.38.106        UP     UNKNOWN",
        " Standby     172.24.38.123        UP     UP",
        " Standby     172.24.38.103        UP     UP",
        " Master      172.24.38.163        UP     UP",
        "",
        "Allowed node host list:",
        " 172.24.38.106 172.24.38.163 172.24.38.103 172.24.38.123",
        "",
        "Standby priority host list:",
        " 172.24.38.103 172.24.38.123",
        "",
        "Promote Status:",
        "",
        " DB Type     Address              XLog Loc         Info",
        " -------------------------------------------------------",
        " Master      172.24.38.163        2/35000230",
        // Promotion order (the priority list), as in the guide's sample, not the table's order.
        " Standby     172.24.38.103        2/35000230",
        " Standby     172.24.38.123        2/35000230",
        "",
        " Standby database(s) in sync with master. It is safe to promote.",
        "",
        "Idle Node Status (idle nodes ignored in XLog location comparisons):",
        "",
        " Address              XLog Loc         Info",
        " -------------------------------------------------------",
        ` 172.24.38.106        UNKNOWN          ${refused}`,
        "",
      ].join("\n"),
    );
    // An idle agent is a problem (guide 4.2.1 exit codes).
    expect(exitCode).toBe(1);
  });

  test("the agents' messages end the text report, as they do the JSON one", () => {
    const message = "Failover is disabled until the master agent is restarted.";
    const { text } = renderClusterStatus({ ...status, messages: [message] }, queries);
    expect(text.endsWith(`\nMessages:\n ${message}\n`)).toBe(true);
    expect(renderClusterStatus(status, queries).text).not.toContain("Messages:");
  });

  test("exit 0 only when every agent runs and the standbys are in sync", () => {
    const healthy = {
      ...status,
      nodes: status.nodes.filter((n) => n.type !== "Idle"),
      allowedNodes: status.allowedNodes.filter((a) => a !== "172.24.38.106"),
    };
    expect(renderClusterStatus(healthy, queries).exitCode).toBe(0);
    const behind = queries.map((q) => (q.address === "172.24.38.123" ? { ...q, lsn: "2/35000200" } : q));
    const r = renderClusterStatus(healthy, behind);
    expect(r.exitCode).toBe(1);
    expect(r.text).toContain("not in sync");
    const noStandby = { ...healthy, nodes: healthy.nodes.filter((n) => n.type === "Master") };
    expect(renderClusterStatus(noStandby, queries).exitCode).toBe(1);
    const agentDown = {
      ...healthy,
      nodes: healthy.nodes.map((n) => (n.type === "Master" ? { ...n, agent: "DOWN" as const } : n)),
    };
    expect(renderClusterStatus(agentDown, queries).exitCode).toBe(1);
    const unqueried = queries.filter((q) => q.address !== "172.24.38.103");
    expect(renderClusterStatus(healthy, unqueried).exitCode).toBe(1);
  });

  test("a stopped agent (allowed, not in the cluster) makes the exit code non-zero (4.2.1)", () => {
    const healthy = {
      ...status,
      nodes: status.nodes.filter((n) => n.type !== "Idle"),
      allowedNodes: status.allowedNodes.filter((a) => a !== "172.24.38.106"),
    };
    const stopped = { ...healthy, nodes: healthy.nodes.filter((n) => n.address !== "172.24.38.123") };
    expect(renderClusterStatus(stopped, queries).exitCode).toBe(1);
    expect(renderClusterStatusJson(stopped, queries).exitCode).toBe(1);
  });

  test("a database that could not be queried is named in the sync message", () => {
    const healthy = {
      ...status,
      nodes: status.nodes.filter((n) => n.type !== "Idle"),
      allowedNodes: status.allowedNodes.filter((a) => a !== "172.24.38.106"),
    };
    const failed = queries.map((q) =>
      q.address === "172.24.38.103" ? { address: q.address, ok: false as const, error: refused } : q,
    );
    const r = renderClusterStatus(healthy, failed);
    expect(r.exitCode).toBe(1);
    expect(r.text).toContain(
      " Unable to compare the xlog locations: a database could not be queried: 172.24.38.103 (Standby).\n",
    );
  });

  test("an agent whose start-up checks run shows Info starting and makes the exit code non-zero", () => {
    const healthy = {
      ...status,
      nodes: status.nodes
        .filter((n) => n.type !== "Idle")
        .map((n) => (n.address === "172.24.38.123" ? { ...n, info: "starting", starting: true } : n)),
      allowedNodes: status.allowedNodes.filter((a) => a !== "172.24.38.106"),
    };
    const r = renderClusterStatus(healthy, queries);
    expect(r.text).toContain(" Standby     172.24.38.123        UP     UP       starting\n");
    expect(r.exitCode).toBe(1);
    const json = JSON.parse(renderClusterStatusJson(healthy, queries).text);
    expect(json.nodes["172.24.38.123"].starting).toBe(true);
    expect(json.nodes["172.24.38.123"].info).toBe("starting");
    expect(json.nodes["172.24.38.103"]).not.toHaveProperty("starting");
  });

  test("a dead witness stays a Witness with its agent DOWN", () => {
    const withWitness = {
      ...status,
      nodes: [
        ...status.nodes.filter((n) => n.type !== "Idle"),
        {
          address: "172.24.38.110",
          type: "Witness" as const,
          agent: "DOWN" as const,
          db: "UNKNOWN" as const,
          info: "",
        },
      ],
      allowedNodes: ["172.24.38.163", "172.24.38.103", "172.24.38.123", "172.24.38.110"],
    };
    const r = renderClusterStatus(withWitness, queries);
    expect(r.text).toContain(" Witness     172.24.38.110        DOWN   N/A\n");
    expect(r.exitCode).toBe(1);
  });

  test("LSNs compare as numbers, not strings", () => {
    expect(compareLsn("2/35000230", "10/0")).toBe(-1);
    expect(compareLsn("0/E000090", "0/E000090")).toBe(0);
    expect(compareLsn("0/10000000", "0/E000090")).toBe(1);
    // an unknown position is behind every known one and never throws
    expect(compareLsn("UNKNOWN", "0/0")).toBe(-1);
    expect(compareLsn("0/1", "UNKNOWN")).toBe(1);
  });
});

describe("cluster-status-json", () => {
  test("the keys of guide 5.3", () => {
    const { text } = renderClusterStatusJson(status, queries);
    const json = JSON.parse(text);
    expect(Object.keys(json)).toEqual(["nodes", "allowednodes", "failoverpriority", "messages"]);
    expect(json.nodes["172.24.38.163"]).toEqual({
      type: "Master",
      agent: "UP",
      db: "UP",
      info: " ",
      xlog: "2/35000230",
      xloginfo: "",
    });
    expect(json.nodes["172.24.38.106"].xloginfo).toBe(refused);
    expect(json.failoverpriority).toEqual(["172.24.38.103", "172.24.38.123"]);
  });
});
