import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { type Cluster, createCluster, downCluster } from "@efm/lab";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ScriptsRunnerError, type ScriptsRunnerErrorCode } from "./errors.ts";
import type { HelperConnection, HelperReport } from "./helper-ops.ts";

// Reserved for S5's boundary work: 127.0.35.x, ports 30000-30999 (below the ephemeral range), /tmp/efm-s5-*.
const bin = "/usr/lib/postgresql/15/bin";
const pkg = fileURLToPath(new URL("..", import.meta.url));
const runDir = "/tmp/efm-s5-rewind-privileges";

/**
 * db.user (efm) streams; pg_rewind reads the new master as `rewinder`, a role that is not a
 * superuser and that authenticates without db.user's password (trust for it alone, as a
 * certificate or ~/.pgpass would). It starts with none of the grants pg_rewind needs.
 */
const ROLES = `ALTER ROLE efm REPLICATION;
  CREATE ROLE rewinder LOGIN;`;

let lab: Cluster;

function rejoin(host: string, newMaster: string, sourceUser: string): HelperReport {
  const conn: HelperConnection = { ...lab.efmConnection(host), password: lab.efmPassword, ssl: false };
  const command = {
    verb: "rejoin",
    dataDir: lab.host(host).dataDir!,
    newMaster: lab.host(newMaster).address,
    bin,
    logFile: lab.host(host).logFile,
    connection: "stdin",
    passfile: join(dirname(lab.host(host).dataDir!), "efm-s5.pgpass"),
    sourceUser,
    basebackup: false,
    timeoutSeconds: 60,
  };
  // The compiled helper operation, as db.service.owner, with the agent's connection on stdin.
  const script = `
    const { executeHelperCommand } = await import(${JSON.stringify(join(pkg, "dist", "helper-ops.js"))});
    const input = JSON.parse(require("node:fs").readFileSync(0, "utf8"));
    try {
      console.log(JSON.stringify({ ok: true, ...(await executeHelperCommand(input.command, input.conn)) }));
    } catch (e) {
      console.log(JSON.stringify({ ok: false, code: e.code, message: e.message }));
    }`;
  const r = spawnSync(
    "runuser",
    ["-u", "postgres", "--", process.execPath, "--input-type=commonjs", "-e", `(async () => {${script}})()`],
    { input: JSON.stringify({ command, conn }), encoding: "utf8", cwd: "/", timeout: 300_000 },
  );
  const line = r.stdout.trim().split("\n").at(-1) ?? "";
  let out: { ok: boolean; code?: string; message?: string } & HelperReport;
  try {
    out = JSON.parse(line);
  } catch {
    throw new Error(`helper run failed: ${r.stdout}${r.stderr}`);
  }
  if (!out.ok) throw new ScriptsRunnerError(out.code as ScriptsRunnerErrorCode, out.message ?? "");
  return out;
}

function refusal(host: string, newMaster: string, sourceUser: string): ScriptsRunnerError {
  try {
    rejoin(host, newMaster, sourceUser);
  } catch (e) {
    return e as ScriptsRunnerError;
  }
  throw new Error("the rejoin was not refused");
}

/** What shows that the old master was left alone: still running, still a primary, same rows and settings. */
async function untouched(host: string, rows: number, autoConf: string): Promise<void> {
  expect(lab.isRunning(host)).toBe(true);
  expect(await lab.inRecovery(host)).toBe(false);
  expect(await lab.count(host)).toBe(rows);
  const data = lab.host(host).dataDir!;
  expect(readFileSync(join(data, "postgresql.auto.conf"), "utf8")).toBe(autoConf);
  expect(existsSync(join(data, "standby.signal"))).toBe(false);
}

beforeAll(async () => {
  execFileSync("npx", ["tsc", "-p", `${pkg}/tsconfig.build.json`], { stdio: "inherit" });
  lab = await createCluster({
    name: "s5-rewind-privileges",
    runDir,
    port: 30011,
    addressBase: "127.0.35",
    firstOctet: 11,
    hosts: [
      { name: "a", role: "master" },
      { name: "b", role: "standby" },
    ],
    hbaLines: ["host all rewinder 0.0.0.0/0 trust", "host replication efm 0.0.0.0/0 scram-sha-256"],
    postgresConf: { wal_log_hints: "on" },
  });
  await lab.psql("a", ROLES);
  await lab.waitReplayed("b", await lab.lsn("a"));
  // The fork a rejoin repairs: b is promoted while a still runs and takes writes b never gets.
  await lab.promoteDb("b");
  await lab.write("a", 7);
  await lab.write("b", 3);
}, 240_000);

afterAll(async () => {
  await downCluster(runDir);
});

describe("rejoin checks pg_rewind's source role on the new master before it stops anything", () => {
  it("refuses a role the new master does not know, naming it, and leaves the old master running", async () => {
    const rows = await lab.count("a");
    const auto = readFileSync(join(lab.host("a").dataDir!, "postgresql.auto.conf"), "utf8");
    const e = refusal("a", "b", "norole");
    expect(e.code, e.message).toBe("REJOIN_REFUSED");
    expect(e.message).toContain(
      "source role norole (db.rewind.source.user) cannot connect to the new master",
    );
    expect(e.message).toContain("nothing was changed (the database was not stopped)");
    await untouched("a", rows, auto);
  });

  it("refuses a role without the grants, naming each one it lacks, and leaves the old master running", async () => {
    const rows = await lab.count("a");
    const auto = readFileSync(join(lab.host("a").dataDir!, "postgresql.auto.conf"), "utf8");
    // Every grant pg_rewind's documentation lists but one function and CHECKPOINT.
    await lab.psql(
      "b",
      `GRANT EXECUTE ON FUNCTION pg_catalog.pg_ls_dir(text, boolean, boolean) TO rewinder;
       GRANT EXECUTE ON FUNCTION pg_catalog.pg_stat_file(text, boolean) TO rewinder;
       GRANT EXECUTE ON FUNCTION pg_catalog.pg_read_binary_file(text) TO rewinder;`,
    );
    const e = refusal("a", "b", "rewinder");
    expect(e.code, e.message).toBe("REJOIN_REFUSED");
    expect(e.message).toContain(`to ${lab.host("b").address}: pg_rewind's source role rewinder`);
    expect(e.message).toContain("CHECKPOINT (GRANT pg_checkpoint TO the role)");
    expect(e.message).toContain("EXECUTE on pg_catalog.pg_read_binary_file(text, bigint, bigint, boolean)");
    // Only what is missing is named.
    expect(e.message).not.toContain("pg_stat_file");
    expect(e.message).not.toContain("pg_ls_dir");
    await untouched("a", rows, auto);
  });

  it("with the grants in place the same role rewinds the old master, which then streams from the new one", async () => {
    await lab.psql(
      "b",
      `GRANT EXECUTE ON FUNCTION pg_catalog.pg_read_binary_file(text, bigint, bigint, boolean) TO rewinder;
       GRANT pg_checkpoint TO rewinder;`,
    );
    const r = rejoin("a", "b", "rewinder");
    expect(r.method).toBe("rewind");
    expect(r.actions).toContain(
      `rewinder on the new master ${lab.host("b").address} holds what pg_rewind needs (CHECKPOINT and EXECUTE on its functions)`,
    );
    expect(await lab.inRecovery("a")).toBe(true);
    const after = await lab.write("b", 2);
    await lab.waitReplayed("a", after);
    // The seven rows a took past the fork are gone: a has exactly b's history.
    expect(await lab.count("a")).toBe(await lab.count("b"));
  });
});
