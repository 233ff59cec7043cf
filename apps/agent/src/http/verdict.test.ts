import { type FailoverConfig, type FailoverState, initialState } from "@efm/failover-core";
import { describe, expect, test } from "vitest";
import { judgeHealth, judgePrimary, judgeReplica, type LocalDbAnswer, parseMaxLag } from "./verdict.ts";

const config = (isWitness: boolean): FailoverConfig => ({
  self: "10.0.0.1:7800",
  clusterName: "acctg",
  isWitness,
  autoFailover: true,
  autoReconfigure: true,
  virtualIp: null,
  pingServer: "10.0.0.254",
  scripts: { fence: null, postPromotion: null, dbFailure: null, masterIsolated: null },
  localPeriodMs: 1000,
  localTimeoutMs: 5000,
  localTimeoutFinalMs: 2000,
  remoteTimeoutMs: 3000,
  leaseMs: 2000,
  takeoverMarginMs: 500,
  messageSlackMs: 2000,
  promotionTimeoutMs: 60_000,
  allowed: ["10.0.0.1:7800"],
  priority: [],
});
const state = (patch: Partial<FailoverState>, witness = false): FailoverState => ({
  ...initialState(config(witness)),
  phase: "running",
  ...patch,
});
const leased = { leaseUntil: 2000, now: 1000 };
const primaryDb: LocalDbAnswer = { inRecovery: false, walReceiverStatus: null };
const streaming: LocalDbAnswer = { inRecovery: true, walReceiverStatus: "streaming" };

describe("/primary", () => {
  test("200 only for a running Master with a lease whose database is out of recovery", () => {
    expect(judgePrimary(state({ role: "Master" }), leased, primaryDb).ok).toBe(true);
  });

  test("each missing condition turns it into 503 with its own reason", () => {
    const cases: [FailoverState, typeof leased, LocalDbAnswer | null, string][] = [
      [state({ role: "Master", phase: "checking" }), leased, primaryDb, "the agent is checking"],
      [state({ role: "Standby" }), leased, primaryDb, "this node is Standby"],
      [state({ role: "Promoting" }), leased, primaryDb, "this node is Promoting"],
      [state({ role: null }), leased, primaryDb, "this node is not assigned a role"],
      [state({ role: "Master", isolated: true }), leased, primaryDb, "isolated"],
      [
        state({
          role: "Master",
          selfFence: { token: "t", purpose: "switchover", stage: "fenceDb", replyTo: null },
        }),
        leased,
        primaryDb,
        "fencing",
      ],
      // The lease ends exactly now: no longer covered.
      [state({ role: "Master" }), { leaseUntil: 1000, now: 1000 }, primaryDb, "no lease"],
      [state({ role: "Master" }), leased, null, "does not answer"],
      // The role says Master but the database says recovery: the database wins.
      [state({ role: "Master" }), leased, streaming, "in recovery"],
    ];
    for (const [s, lease, db, reason] of cases) {
      const v = judgePrimary(s, lease, db);
      expect(v.ok).toBe(false);
      expect(v.reason).toContain(reason);
    }
  });
});

describe("/replica", () => {
  test("200 on a running Standby whose database streams, within the lag asked for", () => {
    expect(judgeReplica(state({ role: "Standby" }), streaming, null, null)).toEqual({
      ok: true,
      reason: "streaming standby",
    });
    expect(judgeReplica(state({ role: "Standby" }), streaming, 100n, 100n).ok).toBe(true);
  });

  test("503 when not a standby, not streaming, too far behind, or the lag is unknown", () => {
    const s = state({ role: "Standby" });
    expect(judgeReplica(state({ role: "Master" }), streaming, null, null).reason).toBe("this node is Master");
    expect(judgeReplica(s, null, null, null).reason).toContain("does not answer");
    expect(judgeReplica(s, primaryDb, null, null).reason).toContain("not in recovery");
    expect(judgeReplica(s, { inRecovery: true, walReceiverStatus: null }, null, null).reason).toContain(
      "not streaming (no WAL receiver)",
    );
    expect(judgeReplica(s, streaming, 100n, 101n).reason).toBe("replay lag 101 bytes is over 100");
    expect(judgeReplica(s, streaming, 100n, null).reason).toContain("cannot be measured");
  });

  test("?lag= takes whole bytes only", () => {
    expect(parseMaxLag(undefined)).toBeNull();
    expect(parseMaxLag("0")).toBe(0n);
    expect(parseMaxLag("16777216")).toBe(16777216n);
    for (const bad of ["", "-1", "1.5", "16MB", "1e6"])
      expect(parseMaxLag(bad)).toMatch(/whole number of bytes/);
  });
});

describe("/health", () => {
  test("the agent runs and its database answers; a witness needs no database", () => {
    expect(judgeHealth(state({ role: "Standby" }), true).ok).toBe(true);
    expect(judgeHealth(state({ role: "Standby" }), false).ok).toBe(false);
    expect(judgeHealth(state({ role: "Standby", phase: "starting" }), true).ok).toBe(false);
    expect(judgeHealth(state({ role: "Witness" }, true), false).ok).toBe(true);
  });
});
