import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { type Cluster, createCluster, downCluster, type EfmHostFiles } from "@efm/lab";
import { encrypt } from "@efm/password-crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { conninfoValue } from "./conninfo.ts";
import { isScriptsRunnerError } from "./errors.ts";
import { configValue } from "./pg-config-file.ts";
import { check, fence, type HelperOptions, promote, reconfigure } from "./privileged.ts";

// Reserved for issue 11's database work: 127.0.15.x, port 15415, run folder /tmp/efm-lab-it-creds.
// (test-e2e/rejoin.test.ts uses the same range; heavy suites never run at the same time.)
const runDir = "/tmp/efm-lab-it-creds";
const port = 15415;
const CLUSTER = "creds";
const pkg = fileURLToPath(new URL("..", import.meta.url));

let lab: Cluster;
let files: Record<string, EfmHostFiles>;
const dataDir = (host: string) => lab.host(host).dataDir!;
const passfile = (host: string) => join(dirname(dataDir(host)), "efm-creds.pgpass");
const autoConf = (host: string) => readFileSync(join(dataDir(host), "postgresql.auto.conf"), "utf8");
/**
 * What the agent hands the helper: the cluster name and the folder of its properties. The helper
 * reads the connection (bind.address, db.port, db.user, the decrypted password, db.database)
 * and the password file's place from them.
 */
const agentOpts = (host: string): HelperOptions => ({ cluster: CLUSTER, configDir: files[host]!.dir });
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

beforeAll(async () => {
  execFileSync("npx", ["tsc", "-p", `${pkg}/tsconfig.build.json`], { stdio: "inherit" });
  lab = await createCluster({
    name: "it-creds",
    runDir,
    port,
    addressBase: "127.0.15",
    hosts: [
      { name: "a", role: "master" },
      { name: "b", role: "standby" },
      { name: "c", role: "standby" },
    ],
    // Issue 11's cluster: db.user must give its password on the local socket too, and it is
    // the replication user a fenced master follows with.
    hbaLines: ["local all efm scram-sha-256", "host replication efm 0.0.0.0/0 scram-sha-256"],
  });
  await lab.psql("a", "ALTER ROLE efm REPLICATION");
  files = lab.writeEfmFiles(CLUSTER, {
    passwordEncrypted: encrypt(lab.efmPassword, CLUSTER),
    properties: { "user.email": "dba@example.com" },
  });
  await lab.waitReplayed("b", await lab.lsn("a"));
  await lab.waitReplayed("c", await lab.lsn("a"));
}, 180_000);

afterAll(async () => {
  await downCluster(runDir);
});

describe("the helper uses the agent's credentials (issue 11)", () => {
  it("checks over the promotion's path: TCP, db.user, the password from the properties", async () => {
    const ok = await check(agentOpts("b"), { role: "standby" });
    expect(ok).toMatchObject({ verb: "check", running: true, inRecovery: true });
    expect(ok.actions.join("\n")).toContain(`connected to 127.0.15.12:${port} as efm: in recovery`);
    // The master is no promotion candidate; any role is fine at agent start-up.
    await expect(check(agentOpts("a"), { role: "standby" })).rejects.toSatisfy((e) =>
      isScriptsRunnerError(e, "NOT_STANDBY"),
    );
    expect(await check(agentOpts("a"))).toMatchObject({ running: true, inRecovery: false });
    // A wrong password fails the check, names the address, and never shows the password.
    const wrong = check(variant("b", { "db.password.encrypted": encrypt("s3cret-wrong", CLUSTER) }));
    await expect(wrong).rejects.toSatisfy(
      (e) =>
        isScriptsRunnerError(e, "CONNECT_FAILED") &&
        (e as Error).message.includes(`127.0.15.12:${port} as efm`) &&
        !(e as Error).message.includes("s3cret-wrong"),
    );
    // A db.bin that is not there: the helper refuses to start, naming it.
    await expect(check(variant("b", { "db.bin": "/nonexistent/bin" }))).rejects.toSatisfy(
      (e) =>
        isScriptsRunnerError(e, "PROPERTIES_INVALID") &&
        (e as Error).message.includes("db.bin /nonexistent/bin"),
    );
  });

  it("promotes B over TCP with the password, then fences A to follow B with a password file", async () => {
    await lab.stopDb("a", "fast");
    const promoted = await promote(agentOpts("b"), { timeoutSeconds: 60 });
    expect(promoted).toMatchObject({ verb: "promote", inRecovery: false });
    expect(await lab.inRecovery("b")).toBe(false);

    const b = lab.host("b").address;
    const fenced = await fence(agentOpts("a"), b);
    expect(existsSync(join(dataDir("a"), "standby.signal"))).toBe(true);
    const written = configValue(autoConf("a"), "auto", "primary_conninfo")!;
    expect(conninfoValue(written, "host")).toBe(b);
    expect(conninfoValue(written, "port")).toBe(String(port));
    expect(conninfoValue(written, "user")).toBe("efm");
    expect(conninfoValue(written, "passfile")).toBe(passfile("a"));
    expect(conninfoValue(written, "password")).toBeUndefined();
    expect(fenced.primaryConninfo).toBe(written);
    const st = statSync(passfile("a"));
    expect(st.mode & 0o777).toBe(0o600);
    expect(st.uid).toBe(Number(execFileSync("id", ["-u", "postgres"], { encoding: "utf8" }).trim()));
    expect(readFileSync(passfile("a"), "utf8")).toBe(`*:${port}:*:efm:${lab.efmPassword}\n`);
    // The helper's own output never carries the password.
    expect(JSON.stringify(fenced)).not.toContain(lab.efmPassword);

    // A shut down cleanly before B's promotion: it follows B with nothing but that file.
    await lab.startDb("a");
    expect(await lab.inRecovery("a")).toBe(true);
    const lsn = await lab.write("b", 3);
    await lab.waitReplayed("a", lsn);
    const senders = await lab.psql("b", "SELECT usename, state FROM pg_stat_replication");
    expect(senders).toContainEqual({ usename: "efm", state: "streaming" });
  });

  it("fences without a known master to recovery with no streaming, then names the master once known", async () => {
    const b = lab.host("b").address;
    await lab.stopDb("c", "fast");
    const fenced = await fence(agentOpts("c"), null);
    expect(fenced.primaryConninfo).toBe("");
    expect(configValue(autoConf("c"), "auto", "primary_conninfo")).toBe("");
    expect(existsSync(join(dataDir("c"), "standby.signal"))).toBe(true);
    // The password file is there for whoever names the master later.
    expect(readFileSync(passfile("c"), "utf8")).toBe(`*:${port}:*:efm:${lab.efmPassword}\n`);

    // The database is down: the file is rewritten, nothing is applied yet.
    const named = await reconfigure(agentOpts("c"), b, { timeoutSeconds: 30 });
    expect(named.actions).toContain("server not running: the new primary_conninfo applies when it starts");
    const written = configValue(autoConf("c"), "auto", "primary_conninfo")!;
    expect(conninfoValue(written, "host")).toBe(b);
    expect(conninfoValue(written, "user")).toBe("efm");
    expect(conninfoValue(written, "passfile")).toBe(passfile("c"));
    expect(statSync(passfile("c")).mode & 0o777).toBe(0o600);
    await lab.startDb("c");
    const lsn = await lab.write("b", 2);
    await lab.waitReplayed("c", lsn);
    expect(await lab.psql("c", "SELECT status, sender_host FROM pg_stat_wal_receiver")).toEqual([
      { status: "streaming", sender_host: b },
    ]);
  });
});
