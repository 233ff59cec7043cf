import { describe, expect, it } from "vitest";
import { Ctx } from "./context.ts";
import { Harness, harnessConfig } from "./harness.ts";
import { parsePeerMessage } from "./peer-message.ts";
import { initialState, step } from "./step.ts";
import { outsideSyncSet } from "./sync.ts";
import type {
  FailoverAction,
  FailoverConfig,
  FailoverState,
  PeerInfo,
  SynchronousMode,
  SyncSet,
  ViewInfo,
} from "./types.ts";

/** A running master `a` (lease valid until 100 000) with the given view, peers and sync state. */
function master(
  mode: SynchronousMode,
  members: string[],
  peers: Record<string, PeerInfo>,
  sync: Partial<FailoverState["sync"]>,
  voters = ["a", "b", "c"],
): FailoverState {
  const s = initialState(harnessConfig("a", { synchronousMode: mode }));
  const view: ViewInfo = {
    epoch: 2,
    members: members.map((address) => ({ address })),
    coordinator: members[0]!,
    quorate: members.length > voters.length / 2,
    voters,
  };
  return {
    ...s,
    phase: "running",
    role: "Master",
    db: "UP",
    view,
    peers,
    leaseUntil: 100_000,
    sync: { ...s.sync, ...sync },
  };
}

/** A published set of the initial master's term (epoch 0). */
const set = (...standbys: string[]): SyncSet => ({ standbys, epoch: 0, seq: 1 });

const standby: PeerInfo = { role: "Standby", db: "UP" };
const witness: PeerInfo = { role: "Witness", db: "UNKNOWN" };

/** Lets the post-step hooks run on an event no row handles. */
const nudge = (s: FailoverState, now = 1000) => step(s, { type: "timer", now, name: "nothing" });

/** What the master did about the synchronous set, in order: published sets and settings. */
function syncActs(actions: readonly FailoverAction[]): string[] {
  return actions.flatMap((a) => {
    if (a.type === "setSyncStandbys") return [`set [${a.standbys.join(" ")}]`];
    if (a.type === "broadcast" && a.message.type === "status" && a.message.sync !== undefined)
      return [`publish [${a.message.sync.join(" ")}]`];
    return [];
  });
}

function tokenOf(actions: readonly FailoverAction[]): string {
  const a = actions.find((x) => x.type === "setSyncStandbys");
  if (a?.type !== "setSyncStandbys") throw new Error("no setSyncStandbys action");
  return a.token;
}

describe("the master's synchronous setting and the published set", () => {
  it("a standby is published before the setting counts it, and unpublished only after", () => {
    // Adding c: the published set grows first, then the setting.
    const adding = nudge(
      master("on", ["a", "b", "c"], { b: standby, c: standby }, { published: set("b"), applied: ["b"] }),
    );
    expect(syncActs(adding.actions)).toEqual(["publish [b c]", "set [b c]"]);
    const added = step(adding.state, {
      type: "syncStandbysSet",
      now: 1001,
      token: tokenOf(adding.actions),
      ok: true,
    });
    expect(syncActs(added.actions)).toEqual([]);
    expect(added.state.sync).toMatchObject({
      published: { standbys: ["b", "c"], epoch: 0, seq: 2 },
      applied: ["b", "c"],
      pending: null,
    });

    // Removing c: the setting first; the published set shrinks only once the setting took effect.
    const removing = nudge(
      master(
        "on",
        ["a", "b", "c"],
        { b: standby, c: { role: "Idle", db: "UP" } },
        {
          published: set("b", "c"),
          applied: ["b", "c"],
        },
      ),
    );
    expect(syncActs(removing.actions)).toEqual(["set [b]"]);
    expect(removing.state.sync.published?.standbys).toEqual(["b", "c"]);
    const removed = step(removing.state, {
      type: "syncStandbysSet",
      now: 1001,
      token: tokenOf(removing.actions),
      ok: true,
    });
    expect(syncActs(removed.actions)).toEqual(["publish [b]"]);
    expect(removed.state.sync.published).toEqual({ standbys: ["b"], epoch: 0, seq: 2 });
  });

  it("a failed setting keeps the published set and is tried again after a local period", () => {
    const s = nudge(
      master("on", ["a", "b", "c"], { b: standby, c: standby }, { published: set("b"), applied: ["b"] }),
    );
    const failed = step(s.state, {
      type: "syncStandbysSet",
      now: 1001,
      token: tokenOf(s.actions),
      ok: false,
      error: "permission denied",
    });
    expect(failed.state.sync).toMatchObject({
      published: { standbys: ["b", "c"] },
      applied: ["b"],
      pending: null,
    });
    expect(syncActs(nudge(failed.state, 1500).actions)).toEqual([]);
    expect(syncActs(nudge(failed.state, 2001).actions)).toEqual(["set [b c]"]);
  });

  it("mode on relaxes the setting to none only in a majority view that a majority still hears", () => {
    const quorate = nudge(
      master("on", ["a", "w"], { w: witness }, { published: set("b"), applied: ["b"] }),
      1000,
    );
    expect(syncActs(quorate.actions)).toEqual(["set []"]);
    // Alone (a minority, as an isolated master is): the setting stays, so it cannot commit alone.
    const alone = nudge(master("on", ["a"], {}, { published: set("b"), applied: ["b"] }), 1000);
    expect(syncActs(alone.actions)).toEqual([]);
    // A majority view whose lease ran out is no better.
    const stale = nudge(
      master("on", ["a", "w"], { w: witness }, { published: set("b"), applied: ["b"] }),
      200_000,
    );
    expect(syncActs(stale.actions)).toEqual([]);
  });

  it("strict never relaxes: with no standby left the last setting stays; a new master waits for any standby", () => {
    const kept = nudge(master("strict", ["a", "w"], { w: witness }, { published: set("b"), applied: ["b"] }));
    expect(syncActs(kept.actions)).toEqual([]);
    // Just promoted (nothing set in this term), no standby running: any standby, published as no restriction first.
    const fresh = nudge(
      master("strict", ["a", "w"], { w: witness }, { published: set("a", "b"), applied: null }),
    );
    expect(syncActs(fresh.actions)).toEqual(["publish []", "set [*]"]);
  });

  it("a new master sets its database at once, whatever its database carried from another term", () => {
    const s = nudge(
      master("on", ["a", "b", "c"], { b: standby, c: standby }, { published: set("a", "b", "c") }),
    );
    expect(syncActs(s.actions)).toEqual(["set [b c]"]);
    const done = step(s.state, { type: "syncStandbysSet", now: 1001, token: tokenOf(s.actions), ok: true });
    expect(syncActs(done.actions)).toEqual(["publish [b c]"]);
  });

  it("synchronous.mode off never touches the setting; an agent that stops being master forgets what it set", () => {
    expect(syncActs(nudge(master("off", ["a", "b"], { b: standby }, {})).actions)).toEqual([]);
    const s = master("on", ["a", "b"], { b: standby }, { published: set("b"), applied: ["b"] });
    const idle = nudge({ ...s, role: "Idle" });
    expect(idle.state.sync).toEqual({ published: set("b"), applied: null, pending: null, retryAt: null });
  });
});

describe("who may be promoted", () => {
  const coordinator = (mode: SynchronousMode, published: string[] | null) =>
    new Ctx(
      {
        ...initialState(harnessConfig("w", { synchronousMode: mode })),
        sync: {
          published: published === null ? null : set(...published),
          applied: null,
          pending: null,
          retryAt: null,
        },
      },
      0,
    );

  it("under synchronous.mode only a standby of the last published set, and any when the set is empty or unknown", () => {
    expect(outsideSyncSet(coordinator("on", ["b"]), ["c", "b"])).toEqual({
      c: "not in the last synchronous standby set (b): it may lack commits acknowledged to clients",
    });
    expect(outsideSyncSet(coordinator("strict", ["b", "c"]), ["c", "b"])).toEqual({});
    expect(outsideSyncSet(coordinator("on", []), ["c"])).toEqual({});
    expect(outsideSyncSet(coordinator("on", null), ["c"])).toEqual({});
    expect(outsideSyncSet(coordinator("off", ["b"]), ["c"])).toEqual({});
  });

  it("strict: with the only synchronous standby lost, a failover promotes nobody and says why", () => {
    const h = new Harness();
    for (const line of [
      "config synchronous.mode=strict",
      "node a master 0/3000",
      "node b standby 0/3000",
      "node c standby 0/3000",
      "node w witness",
      "node x witness",
      "start",
      // c is cut off: the master counts b alone; then b's host dies. strict keeps b in the setting
      // (commits wait), so c never holds what the master acknowledged since the cut.
      "partition a b w x | c",
      "crash b",
    ])
      h.run(line);
    expect(h.nodes.get("a")!.state.role).toBe("Master");
    expect(h.nodes.get("w")!.state.sync.published?.standbys).toEqual(["b"]);
    h.run("crash a");
    const out = [...h.run("partition heal"), ...h.run("tick 20000")].join("\n");
    expect(out).not.toContain("PROMOTE database");
    // The operator is told why (cluster-status shows the coordinator's notice on every agent).
    expect(h.nodes.get("w")!.state.attention).toContain(
      "c: not in the last synchronous standby set (b): it may lack commits acknowledged to clients",
    );
  });

  it("mode on: the same loss relaxes the setting in the majority, so c may be promoted", () => {
    const h = new Harness();
    for (const line of [
      "config synchronous.mode=on",
      "node a master 0/3000",
      "node b standby 0/3000",
      "node c standby 0/3000",
      "node w witness",
      "node x witness",
      "start",
      "partition a b w x | c",
      "crash b",
    ])
      h.run(line);
    expect(h.nodes.get("w")!.state.sync.published?.standbys).toEqual([]);
    h.run("crash a");
    const out = [...h.run("partition heal"), ...h.run("tick 20000")].join("\n");
    expect(out).toContain("c: PROMOTE database");
  });
});

describe("the published set travels and survives restarts", () => {
  it("every status carries the newest set its sender knows; the newest version wins wherever two meet", () => {
    const msg = {
      type: "status",
      role: "Standby",
      db: "UP",
      sync: ["b", "c"],
      syncEpoch: 2,
      syncSeq: 3,
    } as const;
    expect(parsePeerMessage(msg)).toEqual(msg);
    const s = {
      ...initialState(harnessConfig("w", { synchronousMode: "on" })),
      phase: "running" as const,
      role: "Witness" as const,
      sync: { published: { standbys: ["b"], epoch: 2, seq: 1 }, applied: null, pending: null, retryAt: null },
    };
    // A standby passes on what the master published while we were cut off: newer, kept and persisted.
    const newer = step(s, { type: "messageReceived", now: 1, from: "c", message: msg });
    expect(newer.state.sync.published).toEqual({ standbys: ["b", "c"], epoch: 2, seq: 3 });
    expect(newer.actions).toContainEqual({
      type: "persist",
      state: {
        lastMaster: null,
        epoch: 0,
        rebuildNeeded: false,
        syncStandbys: { standbys: ["b", "c"], epoch: 2, seq: 3 },
      },
    });
    // An older master's set (an earlier epoch, however many changes it made) is not.
    const older = step(s, {
      type: "messageReceived",
      now: 1,
      from: "c",
      message: { ...msg, syncEpoch: 1, syncSeq: 40 },
    });
    expect(older.state.sync.published).toEqual({ standbys: ["b"], epoch: 2, seq: 1 });
    // Our own status carries it with synchronous.mode on, never with it off.
    const status = (st: FailoverState) =>
      step(st, {
        type: "messageReceived",
        now: 1,
        from: "c",
        message: { type: "status", role: "Standby", db: "UP", ask: true },
      }).actions.find((x) => x.type === "send");
    expect(status(s)).toMatchObject({ message: { sync: ["b"], syncEpoch: 2, syncSeq: 1 } });
    const off = { ...s, config: { ...s.config, synchronousMode: "off" as const } };
    expect(status(off)).not.toMatchObject({ message: { sync: ["b"] } });
  });

  it("a restarted agent starts from the set it persisted", () => {
    const config: FailoverConfig = harnessConfig("w", {
      synchronousMode: "on",
      persisted: {
        lastMaster: "a",
        epoch: 1,
        rebuildNeeded: false,
        syncStandbys: { standbys: ["b"], epoch: 1, seq: 4 },
      },
    });
    expect(initialState(config).sync.published).toEqual({ standbys: ["b"], epoch: 1, seq: 4 });
  });
});
