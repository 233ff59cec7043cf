import { describe, expect, it } from "vitest";
import { harnessTimings } from "./harness.ts";
import {
  autoRejoinDue,
  NO_REWIND_NO_BASEBACKUP,
  rejoinDecision,
  rejoinTarget,
  stalePrimaryAtStart,
  supersededMaster,
} from "./rejoin.ts";
import { initialState } from "./step.ts";
import type { FailoverConfig, FailoverState, RejoinConfig } from "./types.ts";

const REJOIN: RejoinConfig = { auto: true, rewindStandbys: false, basebackup: false, rewindable: true };

function config(patch: Partial<FailoverConfig> = {}): FailoverConfig {
  return {
    self: "a",
    clusterName: "acctg",
    isWitness: false,
    autoFailover: true,
    autoReconfigure: true,
    virtualIp: null,
    pingServer: null,
    scripts: { fence: null, postPromotion: null, dbFailure: null, masterIsolated: null },
    ...harnessTimings,
    allowed: [],
    priority: [],
    persisted: { lastMaster: "a", epoch: 1, rebuildNeeded: true },
    rejoin: REJOIN,
    ...patch,
  };
}

/** A running, Idle, fenced old master a in a majority view where b runs as master. */
function fenced(patch: Partial<FailoverState> = {}, cfg: Partial<FailoverConfig> = {}): FailoverState {
  const s = initialState(config(cfg));
  return {
    ...s,
    phase: "running",
    role: "Idle",
    db: "DOWN",
    view: {
      epoch: 3,
      members: [{ address: "b" }, { address: "a" }, { address: "w" }],
      coordinator: "b",
      quorate: true,
      voters: ["a", "b", "w"],
    },
    peers: { b: { role: "Master", db: "UP", starting: false }, w: { role: "Witness", db: "UNKNOWN" } },
    knownMaster: { address: "b", lastHeardAt: 10 },
    ...patch,
  };
}

describe("rejoin decision rules", () => {
  it("rejoins only a running master of our majority view", () => {
    expect(rejoinTarget(fenced())).toBe("b");
    expect(rejoinTarget(fenced({ knownMaster: null }))).toBeNull();
    expect(rejoinTarget(fenced({ knownMaster: { address: "a", lastHeardAt: 1 } }))).toBeNull();
    expect(rejoinTarget(fenced({ view: { ...fenced().view!, quorate: false } }))).toBeNull();
    expect(rejoinTarget(fenced({ peers: { b: { role: "Master", db: "UP", starting: true } } }))).toBeNull();
    expect(rejoinTarget(fenced({ peers: { b: { role: "Promoting", db: "UP" } } }))).toBeNull();
  });

  it("refuses before touching anything when no rewind can work and no base backup may replace it", () => {
    expect(rejoinDecision(fenced())).toEqual({ kind: "rejoin", master: "b" });
    const off = { rejoin: { ...REJOIN, rewindable: false } };
    expect(rejoinDecision(fenced({}, off))).toEqual({
      kind: "refuse",
      master: "b",
      reason: NO_REWIND_NO_BASEBACKUP,
    });
    expect(
      rejoinDecision(fenced({}, { rejoin: { ...REJOIN, rewindable: false, basebackup: true } })),
    ).toEqual({
      kind: "rejoin",
      master: "b",
    });
    // pg_control unreadable at start-up: pg_rewind itself decides
    expect(rejoinDecision(fenced({}, { rejoin: { ...REJOIN, rewindable: null } }))).toEqual({
      kind: "rejoin",
      master: "b",
    });
    expect(rejoinDecision(fenced({ knownMaster: null })).kind).toBe("wait");
    expect(rejoinDecision(fenced({}, { rejoin: undefined })).kind).toBe("wait");
  });

  it("an old master is one that fenced itself, or was the master on record with its database down now", () => {
    expect(supersededMaster(fenced())).toBe(true);
    const crashed = { persisted: { lastMaster: "a", epoch: 1, rebuildNeeded: false } };
    expect(supersededMaster(fenced({ rebuildNeeded: false }, crashed))).toBe(true);
    expect(supersededMaster(fenced({ rebuildNeeded: false, db: "UP" }, crashed))).toBe(false);
    const standby = { persisted: { lastMaster: "b", epoch: 1, rebuildNeeded: false } };
    expect(supersededMaster(fenced({ rebuildNeeded: false }, standby))).toBe(false);
  });

  it("a starting primary is a stale old master's only if it was the master on record and another agent runs as master", () => {
    const starting = {
      phase: "checking" as const,
      role: "Master" as const,
      rebuildNeeded: false,
      db: "UP" as const,
    };
    expect(stalePrimaryAtStart(fenced(starting))).toBe("b");
    expect(stalePrimaryAtStart(fenced({ ...starting, peers: { b: { role: "Promoting", db: "UP" } } }))).toBe(
      "b",
    );
    // b is itself still starting: the start-up conflict rows decide, not this one
    expect(
      stalePrimaryAtStart(
        fenced({ ...starting, peers: { b: { role: "Master", db: "UP", starting: true } } }),
      ),
    ).toBeNull();
    const neverMaster = { persisted: { lastMaster: "b", epoch: 1, rebuildNeeded: false } };
    expect(stalePrimaryAtStart(fenced(starting, neverMaster))).toBeNull();
    expect(stalePrimaryAtStart(fenced({ ...starting, rebuildNeeded: true }, neverMaster))).toBe("b");
    expect(stalePrimaryAtStart(fenced(starting, { rejoin: undefined }))).toBeNull();
    expect(stalePrimaryAtStart(fenced({ ...starting, phase: "running" }))).toBeNull();
  });

  it("starts by itself only with auto.rejoin, Idle, nothing in flight, and not against a master it gave up on", () => {
    expect(autoRejoinDue(fenced())).toBe("b");
    expect(autoRejoinDue(fenced({}, { rejoin: { ...REJOIN, auto: false } }))).toBeNull();
    expect(autoRejoinDue(fenced({}, { isWitness: true }))).toBeNull();
    expect(autoRejoinDue(fenced({ role: "Standby" }))).toBeNull();
    expect(autoRejoinDue(fenced({ phase: "checking" }))).toBeNull();
    // a fence that could not be confirmed is retried first: the database may still be writable
    expect(autoRejoinDue(fenced({ fenceUnconfirmed: true }))).toBeNull();
    expect(autoRejoinDue(fenced({ rejoinGaveUp: "b" }))).toBeNull();
    expect(autoRejoinDue(fenced({ rejoinGaveUp: "c" }))).toBe("b");
    expect(
      autoRejoinDue(fenced({ rejoin: { token: "t", master: "b", requestId: null, purpose: "oldMaster" } })),
    ).toBeNull();
    expect(autoRejoinDue(fenced({ pendingResume: { requestId: "r", stage: "db", token: "t" } }))).toBeNull();
  });
});
