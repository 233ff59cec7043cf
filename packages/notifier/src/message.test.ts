import { describe, expect, it } from "vitest";
import { renderNotification, renderSnapshot } from "./message.ts";

const context = {
  nodeAddress: "10.0.1.11",
  clusterName: "acctg",
  databaseName: "postgres",
  vipEnabled: false,
};
const time = new Date("2026-11-26T20:00:00Z");

describe("renderNotification", () => {
  it("lays out the body header exactly like the guide's example", () => {
    const n = renderNotification(
      { id: "masterAgentExited", params: { nodeAddress: "10.0.1.11", clusterName: "acctg" } },
      context,
      time,
    );
    expect(n.body).toBe(
      [
        "EFM node:      10.0.1.11",
        "Cluster name:  acctg",
        "Database name: postgres",
        "VIP support:   DISABLED",
        "",
        "Database health is not being monitored.",
        "",
      ].join("\n"),
    );
    expect(n.subject).toBe("Master agent exited on 10.0.1.11 for cluster acctg");
    expect(n.severity).toBe("INFO");
    expect(n.id).toBe("masterAgentExited");
    expect(n.time).toBe(time);
  });

  it("says ENABLED when a VIP is configured, and puts notification.text.prefix before the subject", () => {
    const n = renderNotification(
      { id: "failoverCompleted", params: { clusterName: "acctg" } },
      { ...context, vipEnabled: true, textPrefix: "[PROD]" },
      time,
    );
    expect(n.body).toContain("VIP support:   ENABLED\n");
    expect(n.subject).toBe("[PROD] Failover has completed on cluster acctg");
    expect(n.severity).toBe("WARNING");
  });

  it("ignores a blank prefix", () => {
    const n = renderNotification(
      { id: "failoverCompleted", params: { clusterName: "c" } },
      { ...context, textPrefix: "  " },
      time,
    );
    expect(n.subject).toBe("Failover has completed on cluster c");
  });

  it("keeps the subject on one line even when a parameter has newlines", () => {
    const n = renderNotification(
      {
        id: "recoveryConfCreateError",
        params: { nodeAddress: "a\r\nb", clusterName: "c", messageDetails: "x\ny" },
      },
      context,
      time,
    );
    expect(n.subject).toBe("Error creating recovery.conf file on a b for cluster c");
    expect(n.body).toContain("Error details: x\ny");
  });

  it("appends the cluster snapshot in the cluster-status layout", () => {
    const n = renderNotification(
      { id: "promotionStarted", params: { clusterName: "acctg" } },
      context,
      time,
      [
        { role: "Master", address: "172.24.38.163", agent: "UP", db: "UP" },
        { role: "Standby", address: "172.24.38.103", agent: "UP", db: "UP", info: "promoting" },
      ],
    );
    expect(
      n.body.endsWith(
        [
          "The promotion of a standby has started on cluster acctg.",
          "",
          "Cluster Status:",
          "",
          " Agent Type  Address              Agent  DB       Info",
          " -------------------------------------------------------",
          " Master      172.24.38.163        UP     UP",
          " Standby     172.24.38.103        UP     UP       promoting",
          "",
        ].join("\n"),
      ),
    ).toBe(true);
  });

  it("shows a witness's database as N/A, as efm cluster-status does", () => {
    const table = renderSnapshot([
      { role: "Master", address: "172.24.38.163", agent: "UP", db: "UP" },
      { role: "Witness", address: "172.24.38.107", agent: "UP", db: "UNKNOWN" },
      { role: "Unknown", address: "172.24.38.103", agent: "DOWN", db: "UNKNOWN" },
    ]);
    expect(table.split("\n").slice(-3)).toEqual([
      " Master      172.24.38.163        UP     UP",
      " Witness     172.24.38.107        UP     N/A",
      " Unknown     172.24.38.103        DOWN   UNKNOWN",
    ]);
  });

  it("omits an empty snapshot", () => {
    expect(renderSnapshot([])).toContain("Agent Type");
    const n = renderNotification(
      { id: "failoverCompleted", params: { clusterName: "c" } },
      context,
      time,
      [],
    );
    expect(n.body).not.toContain("Cluster Status");
  });
});
