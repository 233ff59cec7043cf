import { execFileSync } from "node:child_process";
import { appendFileSync, existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { type Cluster, createCluster, downCluster } from "@efm/lab";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { conninfoValue } from "./conninfo.ts";
import { isScriptsRunnerError } from "./errors.ts";
import { configValue } from "./pg-config-file.ts";
import { fence, type HelperOptions, promote, reconfigure, restart } from "./privileged.ts";

// Reserved for this file: 127.0.3.x, port 15403, run folder /tmp/efm-lab-it-scripts.
const runDir = "/tmp/efm-lab-it-scripts";
const port = 15403;
const bin = "/usr/lib/postgresql/15/bin";
const pkg = fileURLToPath(new URL("..", import.meta.url));

let lab: Cluster;
const opts = (host: string): HelperOptions => ({ owner: "postgres", bin, logFile: lab.host(host).logFile });
const dataDir = (host: string) => lab.host(host).dataDir!;
const autoConf = (host: string) => readFileSync(join(dataDir(host), "postgresql.auto.conf"), "utf8");

beforeAll(async () => {
  // The helper is a separate program (what sudo runs); test the compiled one.
  execFileSync("npx", ["tsc", "-p", `${pkg}/tsconfig.build.json`], { stdio: "inherit" });
  lab = await createCluster({
    name: "it-scripts",
    runDir,
    port,
    addressBase: "127.0.3",
    hosts: [
      { name: "a", role: "master" },
      { name: "b", role: "standby" },
      { name: "c", role: "standby" },
    ],
  });
}, 180_000);

afterAll(async () => {
  await downCluster(runDir);
});

describe("privileged helper on a real PostgreSQL 15 cluster", () => {
  it("refuses to touch a data directory as the wrong user", async () => {
    await expect(fence(dataDir("a"), "127.0.3.12", { ...opts("a"), elevation: "direct" })).rejects.toSatisfy(
      (e) => isScriptsRunnerError(e, "WRONG_USER") && /run it as db.service.owner/.test((e as Error).message),
    );
    await expect(promote("/nonexistent", opts("a"))).rejects.toSatisfy((e) =>
      isScriptsRunnerError(e, "DATADIR_INVALID"),
    );
  });

  it("promotes B, points C at B, fences A, and A restarts as a standby", async () => {
    const b = lab.host("b").address;
    // The master fails first, as in guide 8.1.
    await lab.stopDb("a");

    const promoted = await promote(dataDir("b"), { ...opts("b"), timeoutSeconds: 60 });
    expect(promoted).toMatchObject({ verb: "promote", version: 15, inRecovery: false });
    expect(promoted.alreadyMaster).toBeUndefined();
    expect(await lab.inRecovery("b")).toBe(false);
    // Promoting a master again is a no-op, not an error.
    expect((await promote(dataDir("b"), opts("b"))).alreadyMaster).toBe(true);

    const before = configValue(autoConf("c"), "auto", "primary_conninfo")!;
    const reconfigured = await reconfigure(dataDir("c"), b, { ...opts("c"), timeoutSeconds: 60 });
    expect(reconfigured.actions).toContain("reloaded the configuration");
    expect(reconfigured.backups).toHaveLength(1);
    expect(readFileSync(reconfigured.backups[0]!, "utf8")).toContain(before);
    const after = configValue(autoConf("c"), "auto", "primary_conninfo")!;
    expect(conninfoValue(after, "host")).toBe(b);
    for (const keyword of ["port", "user", "password", "application_name"]) {
      expect(conninfoValue(after, keyword)).toBe(conninfoValue(before, keyword));
    }
    const receiver = await lab.psql("c", "SELECT status, sender_host FROM pg_stat_wal_receiver");
    expect(receiver).toEqual([{ status: "streaming", sender_host: b }]);
    const lsn = await lab.write("b", 7);
    await lab.waitReplayed("c", lsn);
    expect(await lab.count("c")).toBe(await lab.count("b"));

    const fenced = await fence(dataDir("a"), b, { ...opts("a"), port, replicationUser: "replicator" });
    expect(existsSync(join(dataDir("a"), "standby.signal"))).toBe(true);
    expect(fenced.primaryConninfo).toBe(`host=${b} port=${port} user=replicator`);
    expect(configValue(autoConf("a"), "auto", "primary_conninfo")).toBe(fenced.primaryConninfo);
    expect(
      readdirSync(dataDir("a")).filter((f) => f.startsWith("postgresql.auto.conf.efm-backup-")),
    ).toHaveLength(1);

    const restarted = await restart(dataDir("a"), 60, opts("a"));
    expect(restarted.inRecovery).toBe(true);
    expect(await lab.inRecovery("a")).toBe(true);
  });

  it("refuses to reconfigure a master and leaves its files alone", async () => {
    // B is a master now, though its postgresql.auto.conf still holds its old primary_conninfo.
    const text = autoConf("b");
    await expect(
      reconfigure(dataDir("b"), "127.0.3.13", { ...opts("b"), timeoutSeconds: 5 }),
    ).rejects.toSatisfy((e) => isScriptsRunnerError(e, "NOT_STANDBY"));
    expect(autoConf("b")).toBe(text);
  });

  it("finds primary_conninfo set in postgresql.conf (via postgres -C) and overrides it in postgresql.auto.conf", async () => {
    const b = lab.host("b").address;
    // Move C's setting out of postgresql.auto.conf into an included file, as hand-built standbys have it.
    const autoPath = join(dataDir("c"), "postgresql.auto.conf");
    const conninfo = configValue(autoConf("c"), "auto", "primary_conninfo")!;
    writeFileSync(autoPath, autoConf("c").replace(/^primary_conninfo.*\n/m, ""));
    appendFileSync(
      join(dataDir("c"), "lab-host.conf"),
      `primary_conninfo = '${conninfo.replaceAll("'", "''")}'\n`,
    );
    expect(configValue(autoConf("c"), "auto", "primary_conninfo")).toBeUndefined();
    const report = await reconfigure(dataDir("c"), b, { ...opts("c"), timeoutSeconds: 60 });
    // The report masks the password the lab's conninfo carries; the file keeps it as it was.
    expect(report.primaryConninfo).toBe(conninfo.replace("password=lab-replication", "password=********"));
    expect(configValue(autoConf("c"), "auto", "primary_conninfo")).toBe(conninfo);
    expect(await lab.psql("c", "SELECT status, sender_host FROM pg_stat_wal_receiver")).toEqual([
      { status: "streaming", sender_host: b },
    ]);
  });
});
