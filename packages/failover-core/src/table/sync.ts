import { publishSync } from "../sync.ts";
import { type TransitionRow, row } from "./rows.ts";

/** Rows of one concern (the master's synchronous standby setting, synchronous.mode), in the table's match order. */
export const syncRows: readonly TransitionRow[] = [
  row({
    id: "sync.set",
    from: ["Master"],
    on: "syncStandbysSet",
    guard: "the setting in flight took effect",
    to: "unchanged",
    actions: "publish the set when the setting dropped standbys from it",
    reason: "synchronous_standby_names now counts the running standbys",
    // Invariant: a standby leaves the published set only after the setting stopped counting it
    // (sync.ts): until then a commit may have been acknowledged by it alone.
    when: (c, e) => c.s.sync.pending?.token === e.token && e.ok,
    run: (c) => {
      const p = c.s.sync.pending!;
      c.s.sync = { ...c.s.sync, applied: p.standbys, pending: null, retryAt: null };
      if (p.publishAfter !== null) publishSync(c, p.publishAfter);
    },
  }),
  row({
    id: "sync.notSet",
    from: ["*"],
    on: "syncStandbysSet",
    guard: "otherwise (the setting failed, or it is no longer in flight: we stepped down meanwhile)",
    to: "unchanged",
    actions: "a failure is tried again after a local period",
    reason: "synchronous_standby_names not changed: the previous setting stays until a retry sets it",
    // The published set was only widened before the setting: the old setting still counts a
    // subset of it, so the invariant holds while the setting is retried.
    run: (c, e) => {
      if (c.s.sync.pending?.token === e.token)
        c.s.sync = { ...c.s.sync, pending: null, retryAt: c.now + c.s.config.localPeriodMs };
    },
  }),
];
