import { execFileSync } from "node:child_process";
import { appendFileSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { type Cluster, createCluster, downCluster, type EfmHostFiles } from "@efm/lab";
import { encrypt } from "@efm/password-crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { conninfoValue } from "./conninfo.ts";
import { isScriptsRunnerError } from "./errors.ts";
import { configValue } from "./pg-config-file.ts";
import { fence, type HelperOptions, promote, reconfigure, restart } from "./privileged.ts";

// Reserved for this file: 127.0.3.x, port 15403, run folder /tmp/efm-lab-it-scripts.
const runDir = "/tmp/efm-lab-it-scripts";
const port = 15403;
const CLUSTER = "itscripts";
const pkg = fileURLToPath(new URL("..", import.meta.url));

let lab: Cluster;
let files: Record<string, EfmHostFiles>;
/** What the agent passes: the cluster and where its properties are; the helper reads the rest. */
const opts = (host: string): HelperOptions => ({ cluster: CLUSTER, configDir: files[host]!.dir });
let variants = 0;
/** `host`'s properties with `changes`, in a folder of their own. */
const variant = (host: string, changes: Record<string, string>): HelperOptions => {
  const dir = join(runDir, `properties-${++variants}`);
  mkdirSync(dir, { mode: 0o755 });
  let text = readFileSync(files[host]!.propertiesFile, "utf8");
  for (const [k, v] of Object.entries(changes)) {
    text = text.replace(new RegExp(`^${k.replaceAll(".", "\\.")}=.*$`, "m"), `${k}=${v}`);
  }
  writeFileSync(join(dir, `${CLUSTER}.properties`), text, { mode: 0o640 });
  return { cluster: CLUSTER, configDir: dir };
};
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
    // A fenced master follows the new one as db.user (efm) with the password file.
    hbaLines: ["host replication efm 0.0.0.0/0 scram-sha-256"],
  });
  await lab.psql("a", "ALTER ROLE efm REPLICATION");
  files = lab.writeEfmFiles(CLUSTER, {
    passwordEncrypted: encrypt(lab.efmPassword, CLUSTER),
    properties: { "user.email": "dba@example.com" },
  });
}, 180_000);

afterAll(async () => {
  await downCluster(runDir);
});

describe("privileged helper on a real PostgreSQL 15 cluster", () => {
  it("refuses to touch a data directory as the wrong user", async () => {
    // db.service.owner names a user who does not own the data directory: the helper becomes
    // that user (never root) and refuses.
    await expect(fence(variant("a", { "db.service.owner": "nobody" }), "127.0.3.12")).rejects.toSatisfy(
      (e) => isScriptsRunnerError(e, "WRONG_USER") && /run it as db.service.owner/.test((e as Error).message),
    );
    await expect(
      promote(variant("a", { "db.recovery.conf.dir": "/nonexistent", "db.data.dir": "/nonexistent" })),
    ).rejects.toSatisfy((e) => isScriptsRunnerError(e, "DATADIR_INVALID"));
  });

  it("promotes B, points C at B, fences A, and A restarts as a standby", async () => {
    const b = lab.host("b").address;
    // The master fails first, as in guide 8.1.
    await lab.stopDb("a");

    const promoted = await promote(opts("b"), { timeoutSeconds: 60 });
    expect(promoted).toMatchObject({ verb: "promote", version: 15, inRecovery: false });
    expect(promoted.alreadyMaster).toBeUndefined();
    expect(await lab.inRecovery("b")).toBe(false);
    // Promoting a master again is a no-op, not an error.
    expect((await promote(opts("b"))).alreadyMaster).toBe(true);

    const before = configValue(autoConf("c"), "auto", "primary_conninfo")!;
    const reconfigured = await reconfigure(opts("c"), b, { timeoutSeconds: 60 });
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

    const fenced = await fence(opts("a"), b);
    expect(existsSync(join(dataDir("a"), "standby.signal"))).toBe(true);
    // db.port, db.user and the password file next to the data directory, from the properties.
    expect(fenced.primaryConninfo).toBe(
      `host=${b} port=${port} user=efm passfile='${join(dirname(dataDir("a")), `efm-${CLUSTER}.pgpass`)}'`,
    );
    expect(configValue(autoConf("a"), "auto", "primary_conninfo")).toBe(fenced.primaryConninfo);
    expect(
      readdirSync(dataDir("a")).filter((f) => f.startsWith("postgresql.auto.conf.efm-backup-")),
    ).toHaveLength(1);

    const restarted = await restart(opts("a"), 60);
    expect(restarted.inRecovery).toBe(true);
    expect(await lab.inRecovery("a")).toBe(true);
  });

  it("refuses to reconfigure a master and leaves its files alone", async () => {
    // B is a master now, though its postgresql.auto.conf still holds its old primary_conninfo.
    const text = autoConf("b");
    await expect(reconfigure(opts("b"), "127.0.3.13", { timeoutSeconds: 5 })).rejects.toSatisfy((e) =>
      isScriptsRunnerError(e, "NOT_STANDBY"),
    );
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
    const report = await reconfigure(opts("c"), b, { timeoutSeconds: 60 });
    // The report masks the password the lab's conninfo carries; the file keeps it as it was.
    expect(report.primaryConninfo).toBe(conninfo.replace("password=lab-replication", "password=********"));
    expect(configValue(autoConf("c"), "auto", "primary_conninfo")).toBe(conninfo);
    expect(await lab.psql("c", "SELECT status, sender_host FROM pg_stat_wal_receiver")).toEqual([
      { status: "streaming", sender_host: b },
    ]);
  });
});
