import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { chmodSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { type Cluster, createCluster, downCluster, type EfmHostFiles } from "@efm/lab";
import { encrypt } from "@efm/password-crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { conninfoValue } from "./conninfo.ts";
import { isScriptsRunnerError } from "./errors.ts";
import { configValue } from "./pg-config-file.ts";
import {
  check,
  defaultHelperCommand,
  fence,
  HelperClient,
  type HelperOptions,
  promote,
  reconfigure,
} from "./privileged.ts";

// Reserved for H2's helper work: 127.0.28.x, ports 28000-28999, run folders /tmp/efm-h2-*.
const runDir = "/tmp/efm-h2-helper";
const port = 28401;
const CLUSTER = "h2long";
const pkg = fileURLToPath(new URL("..", import.meta.url));
const helperJs = join(pkg, "dist", "helper.js");

let lab: Cluster;
let files: Record<string, EfmHostFiles>;
const clients: HelperClient[] = [];
const logs: string[] = [];
const dataDir = (host: string) => lab.host(host).dataDir!;
const address = (host: string) => lab.host(host).address;
const autoConf = (host: string) => readFileSync(join(dataDir(host), "postgresql.auto.conf"), "utf8");
/** What the agent passes: the cluster name and where its properties are; nothing else. */
const target = (host: string): HelperOptions => ({ cluster: CLUSTER, configDir: files[host]!.dir });
const client = (host: string, options: Partial<HelperOptions> = {}) => {
  const c = new HelperClient({ ...target(host), ...options }, (level, message) =>
    logs.push(`${level}: ${message}`),
  );
  clients.push(c);
  return c;
};

beforeAll(async () => {
  execFileSync("npx", ["tsc", "-p", `${pkg}/tsconfig.build.json`], { stdio: "inherit" });
  lab = await createCluster({
    name: "h2-helper",
    runDir,
    port,
    addressBase: "127.0.28",
    hosts: [
      { name: "a", role: "master" },
      { name: "b", role: "standby" },
      { name: "c", role: "standby" },
    ],
    hbaLines: ["host replication efm 0.0.0.0/0 scram-sha-256"],
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
  for (const c of clients) await c.close();
  await downCluster(runDir);
});

/** Runs the real helper by hand, for what the client never sends. */
function rawHelper(host: string): { child: ChildProcess; lines: () => Promise<string[]> } {
  const child = spawn(process.execPath, [helperJs, CLUSTER], {
    env: { PATH: process.env.PATH, EFM_CONFIG_DIR: files[host]!.dir },
    stdio: ["pipe", "pipe", "pipe"],
  });
  let out = "";
  child.stdout!.on("data", (d: Buffer) => {
    out += d.toString("utf8");
  });
  const closed = new Promise<void>((r) => child.on("close", () => r()));
  const lines = async () => {
    await closed;
    return out.split("\n").filter((l) => l !== "");
  };
  return { child, lines };
}

describe("the privileged helper reads its facts itself and runs long-lived", () => {
  it("answers malformed, oversized and unknown requests with errors naming what and where, and keeps serving", async () => {
    const { child, lines } = rawHelper("b");
    child.stdin!.write("1 check --role standby\n");
    child.stdin!.write("2 frobnicate\n");
    child.stdin!.write("3  check\n");
    child.stdin!.write(`4 check ${"x".repeat(10_000)}\n`);
    child.stdin!.write("five check\n");
    child.stdin!.write("6 fence - --bin /tmp/evil\n");
    child.stdin!.write("7 promote --log-file /etc/passwd\n");
    child.stdin!.write("8 check\u0007\n");
    child.stdin!.end("9 check --role any\n");
    const [ready, ...answers] = (await lines()).map((l) => JSON.parse(l));
    expect(ready).toMatchObject({ ready: true, cluster: CLUSTER, owner: "postgres", dataDir: dataDir("b") });
    expect(answers.map((a) => [a.id, a.ok, a.code])).toEqual([
      ["1", true, undefined],
      ["2", false, "HELPER_USAGE"],
      ["3", false, "HELPER_USAGE"],
      ["4", false, "HELPER_USAGE"],
      [null, false, "HELPER_USAGE"],
      ["6", false, "HELPER_USAGE"],
      ["7", false, "HELPER_USAGE"],
      ["8", false, "HELPER_USAGE"],
      ["9", true, undefined],
    ]);
    expect(answers[1].message).toContain('unknown verb "frobnicate"');
    expect(answers[2].message).toContain("unexpected blank at column 3");
    expect(answers[3].message).toContain("more than 4096 bytes");
    expect(answers[4].message).toContain('request id "five"');
    expect(answers[5].message).toContain("--bin is taken from the cluster's properties file");
    expect(answers[6].message).toContain("--log-file is taken from the cluster's properties file");
    expect(answers[7].message).toContain("byte 8");
    expect(answers[0]).toMatchObject({ verb: "check", running: true, inRecovery: true });
  });

  it("refuses to start on a properties file others can write, naming the file", async () => {
    const file = files.c!.propertiesFile;
    chmodSync(file, 0o666);
    try {
      const c = client("c");
      const started = await c.start();
      expect(started).toMatchObject({ persistent: false });
      expect((started as { why: string }).why).toContain(
        `the properties file ${file} is writable by others (mode 0666)`,
      );
      expect(
        logs.some((l) => l.startsWith("warn: long-lived privileged helper not started") && l.includes(file)),
      ).toBe(true);
      // The one-process-per-request fallback meets the same refusal, with its code.
      const err = await check(c).catch((e: unknown) => e);
      expect(isScriptsRunnerError(err, "PROPERTIES_UNSAFE"), String(err)).toBe(true);
      await c.close();
    } finally {
      chmodSync(file, 0o640);
    }
  });

  it("fences the master and promotes a standby through long-lived helpers, starting no process per request", async () => {
    const ca = client("a");
    const cb = client("b");
    const cc = client("c");
    for (const c of [ca, cb, cc]) expect(await c.start()).toMatchObject({ persistent: true });
    const pids = [ca, cb, cc].map((c) => c.current!.pid);
    expect(await check(cb, { role: "standby" })).toMatchObject({ running: true, inRecovery: true });

    const fenced = await fence(ca, address("b"), { timeoutSeconds: 10 });
    expect(fenced).toMatchObject({ verb: "fence", wasRunning: true });
    expect(lab.isRunning("a")).toBe(false);
    expect(existsSync(join(dataDir("a"), "standby.signal"))).toBe(true);
    const follow = configValue(autoConf("a"), "auto", "primary_conninfo")!;
    expect(conninfoValue(follow, "host")).toBe(address("b"));
    // From the properties file: db.port, db.user, and the password file next to the data dir.
    expect(conninfoValue(follow, "port")).toBe(String(port));
    expect(conninfoValue(follow, "user")).toBe("efm");
    expect(conninfoValue(follow, "passfile")).toBe(join(dirname(dataDir("a")), `efm-${CLUSTER}.pgpass`));

    const promoted = await promote(cb, { timeoutSeconds: 60 });
    expect(promoted).toMatchObject({ verb: "promote", inRecovery: false });
    expect(await lab.inRecovery("b")).toBe(false);
    await lab.write("b", 3);

    const moved = await reconfigure(cc, address("b"), { timeoutSeconds: 60 });
    expect(moved.actions).toContain(`streaming from ${address("b")} on timeline 2 or later`);
    // Every request went to the helper each agent started once.
    expect([ca, cb, cc].map((c) => c.current?.pid)).toEqual(pids);
    expect([ca, cb, cc].map((c) => c.fallbackReason)).toEqual([null, null, null]);
  });

  it("a helper killed in the middle of a request: that request fails, never succeeds, and a new helper serves the next", async () => {
    const cc = client("c");
    await cc.start();
    const first = cc.current!.pid;
    // Nothing streams from .99: the helper writes primary_conninfo, then waits up to 60 s.
    const nowhere = "127.0.28.99";
    const inFlight = reconfigure(cc, nowhere, { timeoutSeconds: 60 }).then(
      () => "succeeded",
      (e: unknown) => e,
    );
    // The helper is inside the request once the new primary_conninfo is on disk.
    while (conninfoValue(configValue(autoConf("c"), "auto", "primary_conninfo") ?? "", "host") !== nowhere) {
      await new Promise((r) => setTimeout(r, 20));
    }
    process.kill(first, "SIGKILL");
    const outcome = await inFlight;
    expect(isScriptsRunnerError(outcome, "HELPER_FAILED"), String(outcome)).toBe(true);
    expect((outcome as Error).message).toContain(
      `the privileged helper (pid ${first}) ended (signal SIGKILL)`,
    );
    expect(
      logs.some((l) =>
        l.includes(`privileged helper (pid ${first}) ended (signal SIGKILL); starting a new one`),
      ),
    ).toBe(true);
    // The next request is served by a new long-lived helper, not by a process of its own.
    const back = await reconfigure(cc, address("b"), { timeoutSeconds: 60 });
    expect(back.actions).toContain(`streaming from ${address("b")} on timeline 2 or later`);
    expect(cc.current!.pid).not.toBe(first);
    expect(cc.fallbackReason).toBeNull();
  });

  it("a request without an answer in time is failed and its helper stopped", async () => {
    const cc = client("c");
    await cc.start();
    const first = cc.current!.pid;
    const outcome = await cc.request(["reconfigure", "127.0.28.98", "--timeout", "60"], 1_000).then(
      () => "succeeded",
      (e: unknown) => e,
    );
    expect(isScriptsRunnerError(outcome, "HELPER_FAILED"), String(outcome)).toBe(true);
    expect((outcome as Error).message).toContain(
      `no answer from the privileged helper (pid ${first}) within 1000 ms`,
    );
    const back = await reconfigure(cc, address("b"), { timeoutSeconds: 60 });
    expect(back.actions).toContain(`streaming from ${address("b")} on timeline 2 or later`);
    expect(cc.current!.pid).not.toBe(first);
  });
});

// Real sudo, as the packaged agent runs it: an unprivileged user allowed exactly the helper
// with one cluster-name argument (the sudoers template's pattern), the facts in /etc/efm.
const sudoReady =
  process.getuid?.() === 0 &&
  existsSync("/usr/bin/sudo") &&
  existsSync("/usr/sbin/visudo") &&
  existsSync("/usr/sbin/runuser");
describe.skipIf(!sudoReady)("through sudo with the template's argument pattern", () => {
  const rule = "/etc/sudoers.d/efm-h2-test";
  const cluster = "efm-h2-sudo";
  const etc = "/etc/efm";
  const createdEtc = !existsSync(etc);
  const props = join(etc, `${cluster}.properties`);
  const [node] = defaultHelperCommand();
  const asNobody = ["/usr/sbin/runuser", "-u", "nobody", "--", "/usr/bin/sudo", "-n", "--"];

  beforeAll(() => {
    const template = readFileSync(join(pkg, "sudoers", "efm"), "utf8");
    // The template's rule with this checkout's paths: node, then one regular expression over
    // the arguments (the helper's path, one cluster name).
    const line = /^Cmnd_Alias EFM_HELPER\s*=.*$/m.exec(template)![0];
    const pattern = /\^\S+helper\\\.js (.*)$/.exec(line)![1]!;
    const text = [
      `Cmnd_Alias EFM_H2_TEST = ${node} ^${helperJs.replaceAll(".", "\\.")} ${pattern}`,
      "nobody ALL=(root) NOPASSWD: EFM_H2_TEST",
      "Defaults:nobody !requiretty, !use_pty",
      "",
    ].join("\n");
    writeFileSync(`${rule}.tmp`, text, { mode: 0o440 });
    execFileSync("/usr/sbin/visudo", ["-c", "-f", `${rule}.tmp`]);
    execFileSync("mv", [`${rule}.tmp`, rule]);
    mkdirSync(etc, { recursive: true, mode: 0o755 });
    writeFileSync(
      props,
      readFileSync(files.a!.propertiesFile, "utf8").replace(
        /^db\.password\.encrypted=.*$/m,
        `db.password.encrypted=${encrypt(lab.efmPassword, cluster)}`,
      ),
      { mode: 0o640 },
    );
  });

  afterAll(() => {
    rmSync(rule, { force: true });
    rmSync(props, { force: true });
    if (createdEtc) rmSync(etc, { recursive: true, force: true });
  });

  it("sudo refuses any other arguments; the helper reads /etc/efm, becomes postgres and serves", async () => {
    for (const args of [[], [cluster, "check"], ["promote /tmp/x"], [`${cluster} x`]]) {
      const r = (() => {
        try {
          execFileSync(asNobody[0]!, [...asNobody.slice(1), node!, helperJs, ...args], { stdio: "pipe" });
          return "allowed";
        } catch (e) {
          return String((e as { stderr?: Buffer }).stderr ?? e);
        }
      })();
      expect(r, JSON.stringify(args)).toContain("a password is required");
    }
    const c = new HelperClient(
      // Pointing at another folder changes nothing under sudo: the helper reads /etc/efm.
      {
        cluster,
        configDir: "/nonexistent",
        helperCommand: [...asNobody, node!, helperJs],
        elevation: "direct",
      },
      (level, message) => logs.push(`${level}: ${message}`),
    );
    clients.push(c);
    const started = await c.start();
    expect(started, JSON.stringify(started)).toMatchObject({
      persistent: true,
      ready: { properties: props, owner: "postgres", dataDir: dataDir("a") },
    });
    // a was fenced above: down, in recovery settings; check proves the path without a server.
    expect(await check(c)).toMatchObject({ verb: "check", running: false });
    // The helper is root's process under sudo; the agent's timeout still ends it (sudo relays).
    const outcome = await c.request(["fence", "-", "--timeout", "1"], 60_000);
    expect(outcome).toMatchObject({ verb: "fence", wasRunning: false });
  });
});
