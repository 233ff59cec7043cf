import { type DbConnectionOptions, DbSession } from "@efm/db-probe";
import { type Cluster, createCluster, downCluster } from "@efm/lab";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { localPromotable, promoteLocalDb } from "./local-session.ts";

// Reserved for this file: 127.0.37.x (hosts .21-.23), port 28101, run folder /tmp/efm-h1-agent-session.
const runDir = "/tmp/efm-h1-agent-session";
const port = 28101;
let lab: Cluster;
const sessions: DbSession[] = [];
const log = pino({ level: "silent" });

beforeAll(async () => {
  lab = await createCluster({
    name: "h1-agent-session",
    runDir,
    port,
    addressBase: "127.0.37",
    firstOctet: 21,
    hosts: [
      { name: "a", role: "master" },
      { name: "b", role: "standby" },
    ],
  });
  // `plain` may connect and was granted nothing else (pg_promote is superuser-only by default);
  // the lab grants db.user EXECUTE on pg_promote.
  await lab.psql(
    "a",
    "CREATE ROLE plain LOGIN PASSWORD 'plain-secret'; GRANT CONNECT ON DATABASE efm TO plain",
  );
  await lab.waitReplayed("b", await lab.write("a", 1));
});

afterAll(async () => {
  for (const s of sessions) await s.close();
  await downCluster(runDir);
});

function session(host: string, extra: Partial<DbConnectionOptions> = {}): DbSession {
  const s = new DbSession({ ...lab.efmConnection(host), applicationName: "efm session", ...extra });
  sessions.push(s);
  return s;
}

/** A stand-in for the privileged helper's request that records whether it was asked. */
function helperRequest(answer: "ok" | Error) {
  const calls: string[] = [];
  return {
    calls,
    run: async () => {
      calls.push("helper");
      if (answer instanceof Error) throw answer;
    },
  };
}

describe("the candidate's promotability check", () => {
  it("is one answer over the session where pg_promote would promote: the helper is not asked", async () => {
    const helper = helperRequest(new Error("must not be asked"));
    expect(await localPromotable(session("b"), 5_000, "b:28101", helper.run)).toEqual({ ok: true });
    expect(helper.calls).toEqual([]);
  });

  it("fails for a database out of recovery, saying where", async () => {
    const helper = helperRequest("ok");
    const r = await localPromotable(session("a"), 5_000, "a:28101", helper.run);
    expect(r).toEqual({
      ok: false,
      error: "the local database at a:28101 is not in recovery: nothing to promote",
    });
    expect(helper.calls).toEqual([]);
  });

  it("asks the helper where pg_ctl would promote (db.user may not run pg_promote)", async () => {
    const plain = { user: "plain", password: "plain-secret" };
    const yes = helperRequest("ok");
    expect(await localPromotable(session("b", plain), 5_000, "b:28101", yes.run)).toEqual({ ok: true });
    expect(yes.calls).toEqual(["helper"]);
    const no = helperRequest(new Error("privileged helper: no server is running on /data"));
    expect(await localPromotable(session("b", plain), 5_000, "b:28101", no.run)).toEqual({
      ok: false,
      error: "privileged helper: no server is running on /data",
    });
  });

  it("fails when the database does not answer, with the database's failure", async () => {
    const helper = helperRequest("ok");
    const r = await localPromotable(session("b", { port: 28199 }), 5_000, "b:28199", helper.run);
    expect(r.ok).toBe(false);
    expect(!r.ok && r.error).toMatch(/^the local database at b:28199 cannot be checked: .*ECONNREFUSED/);
    expect(helper.calls).toEqual([]);
  });
});

describe("promotion of the local database", () => {
  it("takes the helper's path, changing nothing over SQL, where db.user may not run pg_promote", async () => {
    const helper = helperRequest("ok");
    await promoteLocalDb(session("b", { user: "plain", password: "plain-secret" }), 10, helper.run, log);
    expect(helper.calls).toEqual(["helper"]);
    expect(await lab.inRecovery("b")).toBe(true);
  });

  it("promotes over the session with pg_promote, without the helper", async () => {
    const helper = helperRequest(new Error("must not be asked"));
    await promoteLocalDb(session("b"), 30, helper.run, log);
    expect(helper.calls).toEqual([]);
    expect(await lab.inRecovery("b")).toBe(false);
  });
});
