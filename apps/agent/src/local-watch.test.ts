import type { CheckResult, WatchConnector, WatchLink } from "@efm/db-probe";
import pino from "pino";
import { afterEach, describe, expect, it } from "vitest";
import { LocalDbWatch } from "./local-watch.ts";

const flush = () => new Promise<void>((r) => setImmediate(r));
const refused = Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:5432"), { code: "ECONNREFUSED" });

/** A local database the test kills and revives; each connect() answers as it is at that moment. */
class Db implements WatchConnector {
  readonly address = "127.0.0.1";
  up = true;
  ends: ((why: unknown) => void)[] = [];
  connect(): Promise<WatchLink> {
    if (!this.up) return Promise.reject(refused);
    let end: (why: unknown) => void = () => {};
    const closed = new Promise<unknown>((r) => {
      end = r;
    });
    this.ends.push(end);
    return Promise.resolve({ closed, close: () => end(null) });
  }
  kill(): void {
    this.up = false;
    for (const e of this.ends.splice(0)) e(null);
  }
}

const ok: CheckResult = { ok: true, latencyMs: 1, inRecovery: false, backendPid: 1 };
let watch: LocalDbWatch | undefined;
afterEach(() => watch?.stop());

function setup() {
  const db = new Db();
  let losses = 0;
  watch = new LocalDbWatch({
    conn: { host: "127.0.0.1", port: 5432, user: "efm", password: "", database: "efm" },
    finalTimeoutMs: 1_000,
    periodMs: 3_600_000,
    log: pino({ level: "silent" }),
    onLoss: () => losses++,
    connector: db,
  });
  let realChecks = 0;
  const real = async () => {
    realChecks++;
    return ok;
  };
  return { db, w: watch, real, losses: () => losses, realChecks: () => realChecks };
}

describe("LocalDbWatch", () => {
  it("asks the agent to check now when the database is lost, and fails that one regular check at once", async () => {
    const { db, w, real, losses, realChecks } = setup();
    w.start();
    await flush();
    expect(await w.check(real, false)).toEqual(ok);
    expect(realChecks()).toBe(1);
    db.kill();
    await flush();
    expect(losses()).toBe(1);
    const first = await w.check(real, false);
    expect(first).toMatchObject({ ok: false, failure: { code: "REFUSED" } });
    expect(realChecks()).toBe(1);
    // The loss is taken once: the next regular check asks the database again.
    await w.check(real, false);
    expect(realChecks()).toBe(2);
  });

  it("ends a regular check still waiting for the database when the loss is reported; a final one keeps waiting", async () => {
    const { db, w } = setup();
    w.start();
    await flush();
    const hanging = () => new Promise<CheckResult>(() => {});
    let finalAnswered = false;
    const regular = w.check(hanging, false);
    const final = w.check(hanging, true).then(() => {
      finalAnswered = true;
    });
    db.kill();
    expect(await regular).toMatchObject({ ok: false, failure: { code: "REFUSED" } });
    await flush();
    expect(finalAnswered).toBe(false);
    void final;
  });

  it("never answers the final check with a loss: the database itself decides", async () => {
    const { db, w, real, realChecks } = setup();
    w.start();
    await flush();
    db.kill();
    await flush();
    expect(await w.check(real, true)).toEqual(ok);
    expect(realChecks()).toBe(1);
  });

  it("forgets a loss that a check started after it has already looked at", async () => {
    const { db, w, losses, realChecks } = setup();
    w.start();
    await flush();
    let release: () => void = () => {};
    const slow = () =>
      new Promise<CheckResult>((r) => {
        release = () => r(ok);
      });
    db.kill();
    await flush();
    expect(losses()).toBe(1);
    // A final check in flight when the loss was recorded, answered afterwards: newer news.
    const p = w.check(slow, true);
    release();
    expect(await p).toEqual(ok);
    let called = 0;
    expect(
      await w.check(async () => {
        called++;
        return ok;
      }, false),
    ).toEqual(ok);
    expect(called).toBe(1);
    expect(realChecks()).toBe(0);
  });
});
