import { chmodSync, chownSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { encrypt } from "@efm/password-crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { isScriptsRunnerError } from "./errors.ts";
import {
  checkKnownMember,
  DEFAULT_CONFIG_DIR,
  factsFromConfig,
  helperConfigDir,
  membersFileOf,
  readTrustedProperties,
} from "./helper-facts.ts";

const me = process.geteuid?.() ?? 0;
const isRoot = me === 0;
let root: string;

const properties = (cluster: string, extra: Record<string, string> = {}) =>
  `${Object.entries({
    "db.user": "efm",
    "db.password.encrypted": encrypt("s3cret", cluster),
    "db.port": "5444",
    "db.database": "acctg",
    "bind.address": "10.0.1.11:7800",
    "admin.port": "7809",
    "is.witness": "false",
    "db.service.owner": "postgres",
    "db.recovery.conf.dir": "/var/lib/postgresql/15/main",
    "db.bin": "/usr/lib/postgresql/15/bin",
    "user.email": "dba@example.com",
    ...extra,
  })
    .map(([k, v]) => `${k}=${v}`)
    .join("\n")}\n`;

/** A fresh folder holding `acctg.properties`, with the given modes. */
function folder(name: string, dirMode = 0o755, fileMode = 0o640): string {
  const dir = join(root, name);
  mkdirSync(dir);
  chmodSync(dir, dirMode);
  writeFileSync(join(dir, "acctg.properties"), properties("acctg"));
  chmodSync(join(dir, "acctg.properties"), fileMode);
  return dir;
}

const code = (f: () => unknown): string => {
  try {
    f();
  } catch (e) {
    return isScriptsRunnerError(e) ? `${e.code}: ${e.message}` : `untyped: ${e}`;
  }
  return "accepted";
};

beforeAll(() => {
  root = mkdtempSync(join(tmpdir(), "efm-h2-facts-"));
  chmodSync(root, 0o755);
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

describe("the properties file the helper trusts", () => {
  it("reads a file only root (or the helper's own user) can change", () => {
    const dir = folder("ok");
    const r = readTrustedProperties(dir, "acctg", me);
    expect(r.path).toBe(join(dir, "acctg.properties"));
    expect(r.text).toContain("db.service.owner=postgres");
  });

  it.each([
    ["a file writable by others", 0o755, 0o646, "the properties file", "is writable by others (mode 0646)"],
    [
      "a file writable by its group",
      0o755,
      0o660,
      "the properties file",
      "is writable by its group (mode 0660)",
    ],
    ["a directory writable by others", 0o777, 0o640, "the directory", "is writable by others (mode 0777)"],
    [
      "a directory writable by its group",
      0o775,
      0o640,
      "the directory",
      "is writable by its group (mode 0775)",
    ],
  ])("refuses %s, naming the path", (name, dirMode, fileMode, what, words) => {
    const dir = folder(name.replaceAll(" ", "-"), dirMode, fileMode);
    const path = what === "the directory" ? dir : join(dir, "acctg.properties");
    expect(code(() => readTrustedProperties(dir, "acctg", me))).toBe(
      `PROPERTIES_UNSAFE: ${what} ${path} ${words}: refusing to take facts from it`,
    );
  });

  it.skipIf(!isRoot)("refuses a file or a directory owned by another user than root", () => {
    const file = folder("file-owned-by-nobody");
    chownSync(join(file, "acctg.properties"), 65534, 65534);
    expect(code(() => readTrustedProperties(file, "acctg", 0))).toBe(
      `PROPERTIES_UNSAFE: the properties file ${join(file, "acctg.properties")} is owned by uid 65534, not root: refusing to take facts from it`,
    );
    const dir = folder("dir-owned-by-nobody");
    chownSync(dir, 65534, 65534);
    expect(code(() => readTrustedProperties(dir, "acctg", 0))).toBe(
      `PROPERTIES_UNSAFE: the directory ${dir} is owned by uid 65534, not root: refusing to take facts from it`,
    );
    // The same files are the helper's own when it runs as that user: no privilege to gain.
    expect(readTrustedProperties(dir, "acctg", 65534).path).toBe(join(dir, "acctg.properties"));
  });

  it("refuses a symbolic link, a missing file and a bad cluster name", () => {
    const dir = folder("link");
    const target = join(root, "elsewhere.properties");
    writeFileSync(target, properties("other"));
    symlinkSync(target, join(dir, "other.properties"));
    expect(code(() => readTrustedProperties(dir, "other", me))).toBe(
      `PROPERTIES_UNSAFE: the properties file ${join(dir, "other.properties")} is a symbolic link: refusing to follow it`,
    );
    expect(code(() => readTrustedProperties(dir, "missing", me))).toContain(
      `PROPERTIES_INVALID: cannot read ${join(dir, "missing.properties")}`,
    );
    for (const bad of ["../etc/x", "-u", "", ".hidden", "a b", "x".repeat(65)]) {
      expect(code(() => readTrustedProperties(dir, bad, me))).toContain("HELPER_USAGE: cluster name");
    }
  });
});

describe("facts from the properties", () => {
  const pg = "/usr/lib/postgresql/15/bin";

  it("takes the data directory, db.bin, the owner and the connection from the file", () => {
    const f = factsFromConfig(
      "acctg",
      "/etc/efm/acctg.properties",
      properties("acctg", { "db.bin": pg }),
      me,
    );
    expect(f).toMatchObject({
      cluster: "acctg",
      owner: "postgres",
      dataDir: "/var/lib/postgresql/15/main",
      bin: pg,
      passfile: "/var/lib/postgresql/15/efm-acctg.pgpass",
      port: 5444,
      replicationUser: "efm",
      connection: { host: "10.0.1.11", port: 5444, user: "efm", password: "s3cret", database: "acctg" },
    });
    // db.data.dir wins over db.recovery.conf.dir, as for the agent.
    expect(
      factsFromConfig("acctg", "/p", properties("acctg", { "db.bin": pg, "db.data.dir": "/data/15" }), me)
        .dataDir,
    ).toBe("/data/15");
  });

  it("reports the virtual IP of the same file (what efm-address assigns), or null without one", () => {
    const vip = {
      virtualIp: "10.0.1.50",
      "virtualIp.interface": "eth0",
      "virtualIp.netmask": "255.255.255.0",
    };
    expect(factsFromConfig("acctg", "/p", properties("acctg", { "db.bin": pg, ...vip }), me).vip).toEqual({
      address: "10.0.1.50",
      interface: "eth0",
      prefix: 24,
    });
    expect(factsFromConfig("acctg", "/p", properties("acctg", { "db.bin": pg }), me).vip).toBeNull();
  });

  it("takes a rejoin's base-backup permission, source role and bound (local.timeout, at least 120 s) from the file", () => {
    expect(factsFromConfig("acctg", "/p", properties("acctg", { "db.bin": pg }), me).rejoin).toEqual({
      basebackup: false,
      timeoutSeconds: 120,
    });
    const extra = {
      "db.bin": pg,
      "db.rejoin.basebackup": "true",
      "db.rewind.source.user": "rewinder",
      "local.timeout": "300",
    };
    expect(factsFromConfig("acctg", "/p", properties("acctg", extra), me).rejoin).toEqual({
      basebackup: true,
      sourceUser: "rewinder",
      timeoutSeconds: 300,
    });
  });

  it("a rejoin source must be listed in the members file, compared without case", () => {
    const nodes = join(root, "members.nodes");
    writeFileSync(nodes, "# members\n10.0.1.11:7800 10.0.1.12:7800\nDB3.example.com:7800\n");
    expect(code(() => checkKnownMember("10.0.1.12", nodes))).toBe("accepted");
    expect(code(() => checkKnownMember("db3.EXAMPLE.com", nodes))).toBe("accepted");
    expect(code(() => checkKnownMember("10.0.1.99", nodes))).toBe(
      `REJOIN_REFUSED: cannot rejoin to 10.0.1.99: it is not a member listed in ${nodes} (10.0.1.11, 10.0.1.12, db3.example.com); a rejoin rewinds only from a cluster member. Nothing was changed`,
    );
    const missing = join(root, "none.nodes");
    expect(code(() => checkKnownMember("10.0.1.12", missing))).toBe(
      `REJOIN_REFUSED: cannot rejoin to 10.0.1.12: it is not a member listed in ${missing} (no members); a rejoin rewinds only from a cluster member. Nothing was changed`,
    );
    // Unreadable now (a directory here; a file db.service.owner may not read in production):
    // the hosts read at start-up still count, and the refusal says why the file did not.
    expect(code(() => checkKnownMember("10.0.1.12", root, ["10.0.1.12"]))).toBe("accepted");
    expect(code(() => checkKnownMember("10.0.1.13", root, ["10.0.1.12"]))).toContain(
      "(10.0.1.12) (and it cannot be read again now: ",
    );
    expect(membersFileOf({ propertiesFile: "/etc/efm/acctg.properties", cluster: "acctg" })).toBe(
      "/etc/efm/acctg.nodes",
    );
  });

  it("refuses a db.bin others could change, or one that is missing", () => {
    const bin = join(root, "bin");
    mkdirSync(bin);
    chmodSync(bin, 0o777);
    expect(code(() => factsFromConfig("acctg", "/p", properties("acctg", { "db.bin": bin }), me))).toBe(
      `PROPERTIES_UNSAFE: db.bin ${bin} is writable by others (mode 0777): refusing to take facts from it`,
    );
    chmodSync(bin, 0o755);
    writeFileSync(join(bin, "pg_ctl"), "#!/bin/sh\n", { mode: 0o757 });
    chmodSync(join(bin, "pg_ctl"), 0o757);
    expect(code(() => factsFromConfig("acctg", "/p", properties("acctg", { "db.bin": bin }), me))).toBe(
      `PROPERTIES_UNSAFE: db.bin's pg_ctl ${join(bin, "pg_ctl")} is writable by others (mode 0757): refusing to take facts from it`,
    );
    expect(
      code(() => factsFromConfig("acctg", "/p", properties("acctg", { "db.bin": "/nonexistent/bin" }), me)),
    ).toContain("PROPERTIES_INVALID: db.bin /nonexistent/bin: ENOENT");
  });

  it("refuses a witness, a password for another cluster, and invalid properties, naming the file", () => {
    expect(
      code(() =>
        factsFromConfig("acctg", "/p", properties("acctg", { "db.bin": pg, "is.witness": "true" }), me),
      ),
    ).toContain("PROPERTIES_INVALID: /p: is.witness=true");
    expect(
      code(() =>
        factsFromConfig(
          "acctg",
          "/p",
          properties("acctg", { "db.bin": pg, "db.password.encrypted": encrypt("x", "sales") }),
          me,
        ),
      ),
    ).toContain("PROPERTIES_INVALID: /p: db.password.encrypted:");
    expect(code(() => factsFromConfig("acctg", "/p", "db.port=x\n", me))).toMatch(
      /^PROPERTIES_INVALID: \/p:/,
    );
  });
});

describe("where the helper looks", () => {
  it("uses /etc/efm under sudo whatever EFM_CONFIG_DIR says; the folder given otherwise", () => {
    expect(helperConfigDir({ SUDO_UID: "998", EFM_CONFIG_DIR: "/tmp/evil" })).toBe(DEFAULT_CONFIG_DIR);
    expect(helperConfigDir({ EFM_CONFIG_DIR: "/srv/efm" })).toBe("/srv/efm");
    expect(helperConfigDir({ EFM_CONFIG_DIR: "relative" })).toBe(DEFAULT_CONFIG_DIR);
    expect(helperConfigDir({})).toBe("/etc/efm");
  });
});
