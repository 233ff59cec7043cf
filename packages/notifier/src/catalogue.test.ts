import { describe, expect, it } from "vitest";
import {
  catalogue,
  EXTENSION_IDS,
  fillTemplate,
  type NotificationId,
  type NotificationParams,
  notificationIds,
  renderDescription,
  renderSubject,
  type Severity,
} from "./catalogue.ts";

// The subjects of the guide's section 7 tables, typed in by hand from EFM 2.0.3 guide (with
// the guide's placeholder names), in table order. Licence rows are omitted on purpose: this
// software has no licence key. Whitespace from the PDF's line wrapping is collapsed to one space.
const guideSubjects: ReadonlyArray<readonly [Severity, string]> = [
  ["INFO", "Executing fencing script"],
  ["INFO", "Executed post-promotion script"],
  ["INFO", "Executed post-database failure script"],
  ["INFO", "Executed master isolation script"],
  ["INFO", "Witness agent running on node_address for cluster cluster_name"],
  ["INFO", "Master agent running on node_address for cluster cluster_name"],
  ["INFO", "Standby agent running on node_address for cluster cluster_name"],
  ["INFO", "Assigning VIP to node node_address"],
  ["INFO", "Releasing VIP from node node_address"],
  ["INFO", "Witness agent exited on node_address for cluster cluster_name"],
  ["INFO", "Master agent exited on node_address for cluster cluster_name"],
  ["INFO", "Cluster cluster_name notified that master node has left"],
  ["INFO", "Standby agent exited on node_address for cluster cluster_name"],
  ["INFO", "Agent exited during promotion on node_address for cluster cluster_name"],
  ["INFO", "Agent exited on node_address for cluster cluster_name"],
  ["INFO", "Agent exited for cluster cluster_name"],
  ["WARNING", "Virtual IP address assigned to non-master node"],
  ["WARNING", "No standby agent in cluster for cluster cluster_name"],
  ["WARNING", "Standby agent failed for cluster cluster_name"],
  ["WARNING", "Standby database failed for cluster cluster_name"],
  ["WARNING", "Standby agent cannot reach database for cluster cluster_name"],
  ["WARNING", "Cluster cluster_name has dropped below three nodes"],
  ["WARNING", "Subset of cluster cluster_name disconnected from master"],
  ["WARNING", "Promotion has started on cluster cluster_name."],
  ["WARNING", "Witness failure for cluster cluster_name"],
  ["WARNING", "Idle agent failure for cluster cluster_name."],
  ["WARNING", "One or more nodes isolated from network for cluster cluster_name"],
  ["WARNING", "Node no longer isolated from network for cluster cluster_name."],
  ["WARNING", "Standby agent tried to promote, but master DB is still running"],
  ["WARNING", "Standby agent tried to promote, but could not verify master DB"],
  ["WARNING", "Standby agent tried to promote, but VIP appears to still be assigned"],
  ["WARNING", "Standby agent tried to promote, but appears to be orphaned"],
  ["WARNING", "Failover has not occurred"],
  ["WARNING", "Potential manual failover required on cluster cluster_name."],
  ["WARNING", "Failover has completed on cluster cluster_name"],
  ["WARNING", "Lock file for cluster cluster_name has been removed"],
  ["WARNING", "recovery.conf file for cluster cluster_name has been found"],
  ["WARNING", "Promotion has not occurred for cluster cluster_name"],
  ["WARNING", "EFM Standby not reconfigured after failover in cluster cluster_name"],
  ["WARNING", "Could not resume replay for cluster cluster_name"],
  ["SEVERE", "Unable to connect to DB on node_address"],
  ["SEVERE", "Unable to connect to DB on node_address"],
  ["SEVERE", "Unable to connect to DB on node_address"],
  ["SEVERE", "Master cannot ping local database for cluster cluster_name"],
  ["SEVERE", "Communication error for cluster cluster_name"],
  ["SEVERE", "Fencing script error"],
  ["SEVERE", "Post-promotion script failed"],
  ["SEVERE", "Post-database failure script error"],
  ["SEVERE", "Master isolation script failed"],
  ["SEVERE", "Could not promote standby"],
  ["SEVERE", "Error creating recovery.conf file on node_address for cluster cluster_name"],
  ["SEVERE", "An unexpected error has occurred for cluster cluster_name"],
  ["SEVERE", "Master database being fenced off for cluster cluster_name"],
  ["SEVERE", "Could not assign VIP to node node_address"],
  ["SEVERE", "master_or_standby database failure for cluster cluster_name"],
  ["SEVERE", "Agent is timing out for cluster cluster_name"],
  ["SEVERE", "Resume timed out for cluster cluster_name"],
];

// Our parameter name -> the guide's placeholder spelling (including its "error_decription").
const guideName: Record<string, string> = {
  nodeAddress: "node_address",
  clusterName: "cluster_name",
  scriptName: "script_name",
  scriptResults: "script_results",
  vipAddress: "VIP_address",
  serverAddress: "server_address",
  nodeName: "node_name",
  pathName: "path_name",
  ipAddress: "ip_address",
  exitCode: "exit_code",
  fileName: "file_name",
  messageDetails: "message_details",
  errorDetails: "error_details",
  errorDescription: "error_decription",
  userName: "user_name",
  masterOrStandby: "master_or_standby",
};

function asInGuide(template: string): string {
  return template.replace(/\{([A-Za-z]+)\}/g, (_, name: string) => {
    const spelled = guideName[name];
    if (spelled === undefined) throw new Error(`placeholder {${name}} has no guide spelling`);
    return spelled;
  });
}

const catalogueRows = notificationIds
  .filter((id) => !(EXTENSION_IDS as readonly string[]).includes(id))
  .map((id) => `${catalogue[id].severity}|${asInGuide(catalogue[id].subject)}`);
const guideRows = guideSubjects.map(([severity, subject]) => `${severity}|${subject}`);

describe("catalogue against the guide's section 7 tables", () => {
  it.each(guideRows)("has the guide's row %s with the same severity and wording", (row) => {
    expect(catalogueRows).toContain(row);
  });

  it("has exactly the guide's rows, no more and no fewer (multiset)", () => {
    expect([...catalogueRows].sort()).toEqual([...guideRows].sort());
  });

  it("keeps the tables' order: INFO rows, then WARNING, then SEVERE", () => {
    expect(catalogueRows).toEqual(guideRows);
  });

  it("leaves out the licence rows", () => {
    for (const id of notificationIds) {
      expect(catalogue[id].subject.toLowerCase()).not.toContain("license");
      expect(catalogue[id].description.toLowerCase()).not.toContain("license");
    }
  });

  it("uses only placeholders with a known guide spelling, and no stray braces", () => {
    for (const id of notificationIds) {
      const { subject, description } = catalogue[id];
      expect(() => asInGuide(subject)).not.toThrow();
      expect(() => asInGuide(description)).not.toThrow();
      expect(asInGuide(subject + description)).not.toMatch(/[{}]/);
    }
  });

  it("gives every id a distinct (subject, description) pair", () => {
    const pairs = new Set(
      notificationIds.map((id) => `${catalogue[id].subject}\n${catalogue[id].description}`),
    );
    expect(pairs.size).toBe(notificationIds.length);
  });

  it("names every notification beyond the guide, each a real catalogue entry", () => {
    expect(EXTENSION_IDS.every((id) => notificationIds.includes(id))).toBe(true);
    // Every other id is one of the guide's rows (checked above by multiset).
    expect(notificationIds.length).toBe(guideRows.length + EXTENSION_IDS.length);
  });

  it("uses camelCase ids", () => {
    for (const id of notificationIds) expect(id).toMatch(/^[a-z][A-Za-z]+$/);
  });
});

describe("rendering", () => {
  it("fills every placeholder of subject and description", () => {
    expect(renderSubject("masterAgentRunning", { nodeAddress: "10.0.1.11", clusterName: "acctg" })).toBe(
      "Master agent running on 10.0.1.11 for cluster acctg",
    );
    expect(
      renderDescription("fencingScriptError", {
        scriptName: "/usr/local/bin/fence.sh",
        exitCode: 3,
        scriptResults: "no route",
      }),
    ).toBe(
      "Fencing script /usr/local/bin/fence.sh failed to execute successfully.\nExit Value: 3\nResults: no route\nFailover has NOT occurred.",
    );
    expect(renderSubject("databaseFailure", { masterOrStandby: "Standby", clusterName: "c1" })).toBe(
      "Standby database failure for cluster c1",
    );
  });

  it("does not re-expand braces found inside parameter values", () => {
    expect(renderSubject("failoverCompleted", { clusterName: "{clusterName}x" })).toBe(
      "Failover has completed on cluster {clusterName}x",
    );
  });

  it("leaves a missing placeholder visible instead of throwing", () => {
    expect(fillTemplate("a {missing} b", {})).toBe("a {missing} b");
  });
});

describe("parameter types", () => {
  it("are derived from the templates (compile-time checks)", () => {
    const ok: NotificationParams<"assigningVip"> = { nodeAddress: "n", vipAddress: "v", scriptResults: "r" };
    // @ts-expect-error a missing parameter is a compile error
    const missing: NotificationParams<"assigningVip"> = { nodeAddress: "n", vipAddress: "v" };
    const wrongType: NotificationParams<"postPromotionScriptFailed"> = {
      scriptName: "s",
      // @ts-expect-error exitCode is a number
      exitCode: "1",
      scriptResults: "",
    };
    // @ts-expect-error masterOrStandby is "Master" or "Standby"
    const wrongRole: NotificationParams<"databaseFailure"> = { masterOrStandby: "Witness", clusterName: "c" };
    const noParams: NotificationParams<"vipAssignedToNonMaster"> = {};
    const id: NotificationId = "potentialManualFailover";
    expect([ok, missing, wrongType, wrongRole, noParams, id]).toHaveLength(6);
  });
});
