import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, readFileSync, statSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { type Cluster, createCluster, downCluster } from "@efm/lab";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ScriptsRunnerError, type ScriptsRunnerErrorCode } from "./errors.ts";
import type { HelperConnection, HelperReport } from "./helper-ops.ts";
import { configValue } from "./pg-config-file.ts";

// Reserved for issue 16's rejoin work (H5): 127.0.24.x, ports 24000-24999, /tmp/efm-h5-*.
const bin = "/usr/lib/postgresql/15/bin";
const pkg = fileURLToPath(new URL("..", import.meta.url));

// What docs/operations.md asks of db.user for a rejoin: replication, and what pg_rewind reads.
const GRANTS = `ALTER ROLE efm REPLICATION;
  GRANT EXECUTE ON FUNCTION pg_catalog.pg_ls_dir(text, boolean, boolean) TO efm;
  GRANT EXECUTE ON FUNCTION pg_catalog.pg_stat_file(text, boolean) TO efm;
  GRANT EXECUTE ON FUNCTION pg_catalog.pg_read_binary_file(text) TO efm;
  GRANT EXECUTE ON FUNCTION pg_catalog.pg_read_binary_file(text, bigint, bigint, boolean) TO efm;
  GRANT pg_checkpoint TO efm;`;

const passfileOf = (lab: Cluster, host: string) =>
  join(dirname(lab.host(host).dataDir!), "efm-rejoin.pgpass");

/**
 * The rejoin operation of the compiled helper, run as db.service.owner (postgres) with the
 * agent's connection on stdin; how the agent reaches the helper (sudo, a long-lived process)
 * is privileged.ts's business and tested there.
 */
function rejoin(
  lab: Cluster,
  host: string,
  newMaster: string,
  options: { basebackup: boolean; timeoutSeconds: number },
): HelperReport {
  const conn: HelperConnection = { ...lab.efmConnection(host), password: lab.efmPassword, ssl: false };
  const command = {
    verb: "rejoin",
    dataDir: lab.host(host).dataDir!,
    newMaster: lab.host(newMaster).address,
    bin,
    logFile: lab.host(host).logFile,
    connection: "stdin",
    passfile: passfileOf(lab, host),
    ...options,
  };
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

/**
 * The failure a rejoin repairs: the standby `to` is promoted while the master `from` still runs
 * and takes writes the new master never receives (its WAL goes past the fork), then `from`
 * crashes (SIGKILL: not shut down cleanly).
 */
async function fork(lab: Cluster, from: string, to: string): Promise<void> {
  await lab.waitReplayed(to, await lab.lsn(from));
  await lab.promoteDb(to);
  await lab.write(from, 7);
  await lab.killDb(from);
  await lab.write(to, 3);
}

async function buildLab(name: string, octet: string, port: number, conf: Record<string, string>) {
  const runDir = `/tmp/efm-h5-${name}`;
  const lab = await createCluster({
    name,
    runDir,
    port,
    addressBase: `127.0.24`,
    firstOctet: Number(octet),
    hosts: [
      { name: "a", role: "master" },
      { name: "b", role: "standby" },
    ],
    hbaLines: ["host replication efm 0.0.0.0/0 scram-sha-256"],
    postgresConf: conf,
  });
  await lab.psql("a", GRANTS);
  await lab.waitReplayed("b", await lab.lsn("a"));
  return lab;
}

let hints: Cluster;
let plain: Cluster;

beforeAll(async () => {
  // The helper is a separate program (what sudo runs); test the compiled one.
  execFileSync("npx", ["tsc", "-p", `${pkg}/tsconfig.build.json`], { stdio: "inherit" });
  hints = await buildLab("it-rejoin-hints", "11", 24011, { wal_log_hints: "on" });
  plain = await buildLab("it-rejoin-plain", "21", 24021, { wal_log_hints: "off" });
}, 240_000);

afterAll(async () => {
  await downCluster("/tmp/efm-h5-it-rejoin-hints");
  await downCluster("/tmp/efm-h5-it-rejoin-plain");
});

describe("rejoin of a crashed old master (issue 16)", () => {
  it("rewinds it with wal_log_hints=on, keeps this host's settings, and it streams from the new master", async () => {
    const lab = hints;
    const hostConf = join(lab.host("a").dataDir!, "lab-host.conf");
    const ownSettings = readFileSync(hostConf, "utf8");
    await fork(lab, "a", "b");
    const r = rejoin(lab, "a", "b", { basebackup: false, timeoutSeconds: 60 });
    expect(r.method).toBe("rewind");
    expect(r.rewindable).toEqual({ walLogHints: true, dataChecksums: false });
    expect(r.inRecovery).toBe(true);
    expect(r.actions).toContain(`in recovery and streaming from ${lab.host("b").address} (rewind)`);
    // Checked without the helper: in recovery, following b, with b's rows and none of the
    // seven rows a wrote past the fork.
    expect(await lab.inRecovery("a")).toBe(true);
    const after = await lab.write("b", 2);
    await lab.waitReplayed("a", after);
    expect(await lab.count("a")).toBe(await lab.count("b"));
    // pg_rewind copied b's configuration files; a's own are back.
    expect(readFileSync(hostConf, "utf8")).toBe(ownSettings);
    const auto = readFileSync(join(lab.host("a").dataDir!, "postgresql.auto.conf"), "utf8");
    const conninfo = configValue(auto, "auto", "primary_conninfo") ?? "";
    expect(conninfo).toContain(`host=${lab.host("b").address}`);
    expect(conninfo).toContain("passfile=");
    expect(conninfo).not.toContain("password");
    const pass = statSync(passfileOf(lab, "a"));
    expect(pass.mode & 0o777).toBe(0o600);
  });

  it("without wal_log_hints or checksums and no base backup allowed: refused, saying why, nothing changed", async () => {
    const lab = plain;
    await fork(lab, "a", "b");
    const data = lab.host("a").dataDir!;
    const before = readFileSync(join(data, "postgresql.auto.conf"), "utf8");
    let err: unknown;
    try {
      rejoin(lab, "a", "b", { basebackup: false, timeoutSeconds: 60 });
    } catch (e) {
      err = e;
    }
    expect((err as ScriptsRunnerError)?.code, String(err)).toBe("REJOIN_REFUSED");
    expect((err as Error).message).toContain("pg_rewind needs wal_log_hints=on or data checksums");
    expect((err as Error).message).toContain("db.rejoin.basebackup=false");
    expect((err as Error).message).toContain("nothing was changed");
    expect(lab.isRunning("a")).toBe(false);
    expect(readFileSync(join(data, "postgresql.auto.conf"), "utf8")).toBe(before);
    expect(existsSync(join(data, "standby.signal"))).toBe(false);
  });

  it("with db.rejoin.basebackup=true: a fresh copy, the old directory moved aside intact", async () => {
    const lab = plain;
    const data = lab.host("a").dataDir!;
    const r = rejoin(lab, "a", "b", { basebackup: true, timeoutSeconds: 60 });
    expect(r.method).toBe("basebackup");
    expect(r.movedAside).toMatch(new RegExp(`^${data}\\.efm-rejoin-\\d{8}T\\d+Z$`));
    // The old directory is kept whole (it may hold the only copy of a's last writes).
    expect(readFileSync(join(r.movedAside!, "PG_VERSION"), "utf8").trim()).toBe("15");
    expect(existsSync(join(r.movedAside!, "global", "pg_control"))).toBe(true);
    expect(await lab.inRecovery("a")).toBe(true);
    const after = await lab.write("b", 2);
    await lab.waitReplayed("a", after);
    expect(await lab.count("a")).toBe(await lab.count("b"));
  });
});
