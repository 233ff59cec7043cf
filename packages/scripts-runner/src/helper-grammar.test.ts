import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { backupFile, backupStamp, replaceFile } from "./atomic.ts";
import { isScriptsRunnerError } from "./errors.ts";
import { formatHelperArgs, type HelperCommand, parseHelperArgs } from "./helper-grammar.ts";
import { parseHelperConnection, redactConninfo } from "./helper-ops.ts";
import { privilegedArgv } from "./privileged.ts";

const usage = (argv: string[]) => {
  try {
    parseHelperArgs(argv);
  } catch (e) {
    return isScriptsRunnerError(e, "HELPER_USAGE") ? (e as Error).message.split("\n")[0] : "untyped";
  }
  return "ok";
};

const BIN = ["--bin", "/usr/lib/postgresql/15/bin"];

describe("helper grammar", () => {
  it("parses every verb", () => {
    expect(parseHelperArgs(["promote", "/var/lib/pg/data", ...BIN])).toEqual({
      verb: "promote",
      dataDir: "/var/lib/pg/data",
      timeoutSeconds: 60,
      bin: "/usr/lib/postgresql/15/bin",
    });
    expect(
      parseHelperArgs(["fence", "/d/", "10.0.0.2", ...BIN, "--port", "5444", "--replication-user", "repl"]),
    ).toEqual({
      verb: "fence",
      dataDir: "/d",
      newMaster: "10.0.0.2",
      port: 5444,
      replicationUser: "repl",
      bin: "/usr/lib/postgresql/15/bin",
    });
    expect(
      parseHelperArgs(["reconfigure", "/d", "db2.example.com", ...BIN, "--timeout", "10"]),
    ).toMatchObject({
      verb: "reconfigure",
      newMaster: "db2.example.com",
      timeoutSeconds: 10,
    });
    expect(parseHelperArgs(["restart", "/d", "30", ...BIN, "--log-file", "/var/log/pg.log"])).toMatchObject({
      verb: "restart",
      timeoutSeconds: 30,
      logFile: "/var/log/pg.log",
    });
    expect(parseHelperArgs(["restart", "/d", "30", ...BIN, "--mode", "immediate"])).toMatchObject({
      verb: "restart",
      mode: "immediate",
    });
    const REJOIN = ["--connection", "stdin", "--passfile", "/var/lib/pg/efm-a.pgpass"];
    expect(
      parseHelperArgs(["rejoin", "/d", "10.0.0.2", ...BIN, ...REJOIN, "--source-user", "rewinder"]),
    ).toEqual({
      verb: "rejoin",
      dataDir: "/d",
      newMaster: "10.0.0.2",
      sourceUser: "rewinder",
      basebackup: false,
      timeoutSeconds: 60,
      bin: "/usr/lib/postgresql/15/bin",
      connection: "stdin",
      passfile: "/var/lib/pg/efm-a.pgpass",
    });
    expect(parseHelperArgs(["rejoin", "/d", "h", ...BIN, ...REJOIN, "--basebackup", "allow"])).toMatchObject({
      basebackup: true,
    });
  });

  it.each([
    [[], "unknown verb"],
    [["rm", "/d"], "unknown verb"],
    [["promote"], "needs <datadir>"],
    [["promote", "/d"], "needs --bin"],
    [["promote", "relative/d", ...BIN], "absolute"],
    [["promote", "/d/../etc", ...BIN], "absolute, normalized"],
    [["promote", "/d\n", ...BIN], "absolute"],
    [["fence", "/d", ...BIN], "needs <datadir> <new-master-host>"],
    [["fence", "/d", "host;reboot", ...BIN], "not a host name"],
    [["fence", "/d", "-oProxyCommand=x", ...BIN], "not a host name"],
    [["fence", "/d", "h", ...BIN, "--timeout", "0"], "from 1 to"],
    [["fence", "/d", "h", ...BIN, "--stop", "smart"], "is not immediate or fast"],
    [["fence", "/d", "h", ...BIN, "--after", "master"], "is not down or standby"],
    [["fence", "/d", "-", ...BIN, "--after", "standby"], "--after standby needs a new master"],
    [["restart", "/d", "0", ...BIN], "from 1 to"],
    [["restart", "/d", "1e3", ...BIN], "whole number"],
    [["restart", "/d", "5", ...BIN, "--mode", "smart"], "not fast or immediate"],
    [["promote", "/d", ...BIN, "--mode", "fast"], 'does not take "--mode"'],
    [["promote", "/d", ...BIN, ...BIN], "given twice"],
    [["promote", "/d", ...BIN, "--timeout"], "needs a value"],
    [["promote", "/d", ...BIN, "--db-user", "x y"], "not a role name"],
    [["fence", "/d", "h", ...BIN, "--port", "70000"], "from 1 to"],
    [["promote", "/d", ...BIN, "--connection", "/tmp/pw"], "is not stdin"],
    [["fence", "/d", "h", ...BIN, "--passfile", "pgpass"], "absolute"],
    [["check", "/d", ...BIN, "--role", "master"], "not any or standby"],
    [["check", "/d", ...BIN, "--timeout", "5"], 'does not take "--timeout"'],
    [["rejoin", "/d", ...BIN], "needs <datadir> <new-master-host>"],
    [["rejoin", "/d", "h", ...BIN], "rejoin needs --connection stdin and --passfile"],
    [
      ["rejoin", "/d", "h", ...BIN, "--connection", "stdin"],
      "rejoin needs --connection stdin and --passfile",
    ],
    [["rejoin", "/d", "h", ...BIN, "--passfile", "/p"], "rejoin needs --connection stdin and --passfile"],
    [["rejoin", "/d", "h;x", ...BIN, "--connection", "stdin", "--passfile", "/p"], "not a host name"],
    [
      ["rejoin", "/d", "h", ...BIN, "--connection", "stdin", "--passfile", "/p", "--basebackup", "yes"],
      "not allow or deny",
    ],
    [
      ["rejoin", "/d", "h", ...BIN, "--connection", "stdin", "--passfile", "/p", "--source-user", "a b"],
      "not a role name",
    ],
    [
      ["rejoin", "/d", "h", ...BIN, "--connection", "stdin", "--passfile", "/p", "--password", "x"],
      'does not take "--password"',
    ],
  ])("refuses %j", (argv, words) => {
    expect(usage(argv)).toContain(words);
  });

  it("formatHelperArgs and parseHelperArgs are inverse", () => {
    const path = fc.stringMatching(/^(\/[a-z0-9_.-]{1,8}){1,4}$/).filter((p) => !/\/\.{1,2}(\/|$)/.test(p));
    const host = fc.oneof(fc.ipV4(), fc.ipV6(), fc.domain());
    const extra = fc.record(
      {
        dbUser: fc.constantFrom("postgres", "efm"),
        dbName: fc.constantFrom("postgres", "db1"),
        logFile: path,
        connection: fc.constant("stdin" as const),
        passfile: path,
      },
      { requiredKeys: [] },
    );
    const command: fc.Arbitrary<HelperCommand> = fc.oneof(
      fc.record({
        verb: fc.constant("promote" as const),
        dataDir: path,
        timeoutSeconds: fc.integer({ min: 1, max: 999 }),
        bin: path,
      }),
      fc.record(
        {
          verb: fc.constant("fence" as const),
          dataDir: path,
          newMaster: fc.option(host, { nil: null }),
          bin: path,
          port: fc.integer({ min: 1, max: 65535 }),
          replicationUser: fc.constant("repl"),
          timeoutSeconds: fc.integer({ min: 1, max: 999 }),
          stop: fc.constantFrom("fast" as const, "immediate" as const),
          after: fc.constant("down" as const),
        },
        { requiredKeys: ["verb", "dataDir", "newMaster", "bin"] },
      ),
      fc.record(
        {
          verb: fc.constant("fence" as const),
          dataDir: path,
          newMaster: host,
          bin: path,
          stop: fc.constantFrom("fast" as const, "immediate" as const),
          after: fc.constant("standby" as const),
        },
        { requiredKeys: ["verb", "dataDir", "newMaster", "bin", "after"] },
      ),
      fc.record({
        verb: fc.constant("reconfigure" as const),
        dataDir: path,
        newMaster: host,
        timeoutSeconds: fc.integer({ min: 1, max: 999 }),
        bin: path,
      }),
      fc.record({
        verb: fc.constant("restart" as const),
        dataDir: path,
        timeoutSeconds: fc.integer({ min: 1, max: 999 }),
        bin: path,
        mode: fc.constantFrom("fast" as const, "immediate" as const),
      }),
      fc.record(
        {
          verb: fc.constant("rejoin" as const),
          dataDir: path,
          newMaster: host,
          bin: path,
          port: fc.integer({ min: 1, max: 65535 }),
          replicationUser: fc.constant("repl"),
          sourceUser: fc.constantFrom("efm", "rewinder"),
          basebackup: fc.boolean(),
          timeoutSeconds: fc.integer({ min: 1, max: 999 }),
          connection: fc.constant("stdin" as const),
          passfile: path,
        },
        {
          requiredKeys: [
            "verb",
            "dataDir",
            "newMaster",
            "bin",
            "basebackup",
            "timeoutSeconds",
            "connection",
            "passfile",
          ],
        },
      ),
      fc.record({
        verb: fc.constant("check" as const),
        dataDir: path,
        role: fc.constantFrom("any" as const, "standby" as const),
        bin: path,
      }),
    );
    fc.assert(
      fc.property(command, extra, (c, e) => {
        const full = { ...c, ...e } as HelperCommand;
        expect(parseHelperArgs(formatHelperArgs(full))).toEqual(full);
      }),
    );
  });
});

describe("the connection on stdin", () => {
  const good = { host: "10.0.0.2", port: 5444, user: "efm", password: "s3cr3t:pa\\ss", database: "efm" };
  it("accepts the agent's connection and refuses anything else without quoting the password", () => {
    expect(parseHelperConnection(JSON.stringify(good))).toEqual(good);
    expect(parseHelperConnection(JSON.stringify({ ...good, ssl: true }))).toEqual({ ...good, ssl: true });
    for (const [bad, words] of [
      ["not json", "not a JSON object"],
      ["[1]", "not a JSON object"],
      [JSON.stringify({ ...good, host: "" }), "host must be"],
      [JSON.stringify({ ...good, port: 0 }), "port 0 is not"],
      [JSON.stringify({ ...good, password: 7 }), "password must be a string"],
      [JSON.stringify({ ...good, ssl: "yes" }), "ssl must be"],
    ] as const) {
      let error: unknown;
      try {
        parseHelperConnection(bad);
      } catch (e) {
        error = e;
      }
      expect(isScriptsRunnerError(error, "HELPER_USAGE")).toBe(true);
      expect((error as Error).message).toContain(words);
      expect((error as Error).message).not.toContain("s3cr3t");
    }
  });
  it("masks every password of a connection string in reports", () => {
    expect(redactConninfo("host=a password=secret user=r password='x y'")).toBe(
      "host=a password=******** user=r password=********",
    );
    expect(redactConninfo("host=a passfile=/p")).toBe("host=a passfile=/p");
    expect(redactConninfo("password='unterminated")).not.toContain("unterminated");
  });
});

describe("privilegedArgv", () => {
  const helperCommand = ["/h"];
  it("starts efm-helper <cluster> through sudo -n as root, directly when root or the owner", () => {
    expect(privilegedArgv({ cluster: "acctg", helperCommand, elevation: "sudo" })).toEqual([
      "sudo",
      "-n",
      "--",
      "/h",
      "acctg",
    ]);
    expect(privilegedArgv({ cluster: "acctg", helperCommand, elevation: "direct" })).toEqual(["/h", "acctg"]);
  });
  it("refuses a cluster name that is not one", () => {
    expect(() => privilegedArgv({ cluster: "-u root", helperCommand })).toThrow(/cluster name/);
    expect(() => privilegedArgv({ cluster: "a b", helperCommand })).toThrow(/cluster name/);
  });
});

describe("atomic files", () => {
  it("replaces a file keeping its mode, and backs up the old one", async () => {
    const dir = await mkdtemp(join(tmpdir(), "efm-atomic-"));
    try {
      const file = join(dir, "postgresql.auto.conf");
      await writeFile(file, "old\n", { mode: 0o640 });
      const backup = await backupFile(file, new Date("2026-11-26T20:45:12.345Z"));
      expect(backup).toBe(`${file}.efm-backup-20261126T204512345Z`);
      replaceFile(file, "new\n");
      expect(await readFile(file, "utf8")).toBe("new\n");
      expect(await readFile(backup!, "utf8")).toBe("old\n");
      expect((await stat(file)).mode & 0o777).toBe(0o640);
      expect((await readdir(dir)).sort()).toEqual([
        "postgresql.auto.conf",
        "postgresql.auto.conf.efm-backup-20261126T204512345Z",
      ]);
      expect(await backupFile(join(dir, "absent"))).toBeNull();
      replaceFile(join(dir, "standby.signal"), "");
      expect((await stat(join(dir, "standby.signal"))).mode & 0o777).toBe(0o600);
      let error: unknown;
      try {
        replaceFile(join(dir, "no", "such"), "x");
      } catch (e) {
        error = e;
      }
      expect(isScriptsRunnerError(error, "IO_FAILED")).toBe(true);
      expect(backupStamp(new Date(0))).toBe("19700101T000000000Z");
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe("sudoers template", () => {
  const template = fileURLToPath(new URL("../sudoers/efm", import.meta.url));
  it("allows exactly efm-helper <cluster> and efm-address, as root", async () => {
    const rules = (await readFile(template, "utf8"))
      .split("\n")
      .filter((l) => l.trim() !== "" && !l.startsWith("#"));
    expect(rules.filter((l) => /NOPASSWD/.test(l)).map((l) => l.replace(/\s+/g, " "))).toEqual([
      "efm ALL=(root) NOPASSWD: EFM_HELPER, EFM_ADDRESS",
    ]);
    // The helper rule is the argv the TS API runs: node, the compiled helper, one cluster name
    // (a regular expression over all the arguments, so nothing else can follow).
    expect(rules.find((l) => l.startsWith("Cmnd_Alias EFM_HELPER"))).toMatch(
      /= \/usr\/bin\/node \^\S+\/dist\/helper\\\.js \[A-Za-z0-9_\]\[A-Za-z0-9_.-\]\*\$$/,
    );
  });
  it.skipIf(!existsSync("/usr/sbin/visudo"))("is valid sudoers syntax", () => {
    expect(execFileSync("/usr/sbin/visudo", ["-c", "-f", template], { encoding: "utf8" })).toContain(
      "parsed OK",
    );
  });
});
