import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { main, parseAddressArgs, readVipFacts } from "./cli.ts";
import { isVipError } from "./errors.ts";

const me = process.geteuid?.() ?? 0;
let root: string;

/** A complete cluster properties file with the given virtual IP keys. */
const clusterProperties = (vip: Record<string, string>) =>
  `${Object.entries({
    "db.user": "efm",
    "db.password.encrypted": "0123456789abcdef",
    "db.port": "5432",
    "db.database": "postgres",
    "bind.address": "10.201.30.1:7800",
    "admin.port": "7809",
    "is.witness": "false",
    "user.email": "dba@example.com",
    "db.service.owner": "postgres",
    "db.recovery.conf.dir": "/var/lib/postgresql/15/main",
    "db.bin": "/usr/lib/postgresql/15/bin",
    ...vip,
  })
    .map(([k, v]) => `${k}=${v}`)
    .join("\n")}\n`;

const VIP = {
  virtualIp: "10.201.30.100",
  "virtualIp.interface": "eth0",
  "virtualIp.netmask": "255.255.255.0",
};

/** A fresh folder holding `acctg.properties`, with the given modes. */
function folder(name: string, dirMode = 0o755, fileMode = 0o640, vip: Record<string, string> = VIP): string {
  const dir = join(root, name);
  mkdirSync(dir);
  chmodSync(dir, dirMode);
  writeFileSync(join(dir, "acctg.properties"), clusterProperties(vip));
  chmodSync(join(dir, "acctg.properties"), fileMode);
  return dir;
}

const refusal = (argv: readonly string[]) => {
  try {
    parseAddressArgs(argv);
  } catch (e) {
    return isVipError(e) ? `${e.code}: ${e.message}` : `untyped: ${e}`;
  }
  return "accepted";
};

/** Runs the program's main with `env`; returns the exit code and what it printed. */
async function run(argv: readonly string[], env: NodeJS.ProcessEnv): Promise<[number, string]> {
  let text = "";
  const code = await main(argv, (t) => (text += t), env);
  return [code, text];
}

beforeAll(() => {
  root = mkdtempSync(join(tmpdir(), "efm-h8-vip-"));
  chmodSync(root, 0o755);
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

describe("efm-address command line", () => {
  it("takes exactly a cluster name and assign or release", () => {
    expect(parseAddressArgs(["acctg", "assign"])).toEqual({ cluster: "acctg", verb: "assign" });
    expect(parseAddressArgs(["acctg", "release"])).toEqual({ cluster: "acctg", verb: "release" });
    expect(refusal([])).toBe("USAGE: expected a cluster name and a verb");
    expect(refusal(["acctg"])).toBe("USAGE: expected a cluster name and a verb");
    expect(refusal(["acctg", "delete"])).toContain('USAGE: unknown verb "delete"');
  });

  it("refuses an interface, address or netmask on the command line", () => {
    for (const extra of [["eth0"], ["eth0:0", "10.0.0.1"], ["eth0", "192.168.1.1", "255.255.255.0"]]) {
      expect(refusal(["acctg", "assign", ...extra])).toContain(
        `USAGE: assign takes no further arguments (got ${extra.length})`,
      );
    }
    expect(refusal(["acctg", "release", "lo", "127.0.0.1"])).toContain(
      "USAGE: release takes no further arguments",
    );
    // 2.0.3's grammar puts the verb first: the verb lands where the cluster name goes.
    expect(refusal(["assign", "eth0:0", "10.0.0.1", "255.255.255.0"])).toContain(
      'USAGE: unknown verb "eth0:0"',
    );
  });

  it("refuses extra arguments and bad cluster names with exit 2 and the usage, running nothing", async () => {
    const dir = folder("usage");
    const [code, text] = await run(["acctg", "assign", "eth0", "10.201.30.9", "24"], { EFM_CONFIG_DIR: dir });
    expect(code).toBe(2);
    expect(text).toContain("efm-address: USAGE: assign takes no further arguments");
    expect(text).toContain("usage: efm-address <cluster> assign|release");
    for (const bad of ["../etc/x", "-u", ".hidden", "a b", "x".repeat(65), "a/b"]) {
      const [c, t] = await run([bad, "assign"], { EFM_CONFIG_DIR: dir });
      expect(c).toBe(2);
      expect(t).toContain("efm-address: USAGE: cluster name");
    }
  });

  it("reads the virtual IP, interface and prefix from the properties file", () => {
    expect(readVipFacts(folder("facts"), "acctg", me)).toEqual({
      address: "10.201.30.100",
      interface: "eth0",
      prefix: 24,
      propertiesFile: join(root, "facts", "acctg.properties"),
    });
    const v6 = folder("facts-v6", 0o755, 0o600, {
      virtualIp: "fd00:201:30::100",
      "virtualIp.interface": "eth0",
      "virtualIp.netmask": "64",
    });
    expect(readVipFacts(v6, "acctg", me)).toMatchObject({ address: "fd00:201:30::100", prefix: 64 });
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
    ["a directory writable by others", 0o757, 0o640, "the directory", "is writable by others (mode 0757)"],
  ])("refuses %s, naming the path, with exit 2", async (name, dirMode, fileMode, what, words) => {
    const dir = folder(name.replaceAll(" ", "-"), dirMode, fileMode);
    const path = what === "the directory" ? dir : join(dir, "acctg.properties");
    const [code, text] = await run(["acctg", "assign"], { EFM_CONFIG_DIR: dir });
    expect(code).toBe(2);
    expect(text).toBe(
      `efm-address: PROPERTIES_UNSAFE: ${what} ${path} ${words}: refusing to take facts from it\n`,
    );
  });

  it("refuses a symbolic link, a file without a virtual IP, and a missing file", async () => {
    const dir = folder("link");
    symlinkSync(join(dir, "acctg.properties"), join(dir, "other.properties"));
    expect(await run(["other", "release"], { EFM_CONFIG_DIR: dir })).toEqual([
      2,
      `efm-address: PROPERTIES_UNSAFE: the properties file ${join(dir, "other.properties")} is a symbolic link: refusing to follow it\n`,
    ]);
    const none = folder("no-vip", 0o755, 0o640, {});
    expect(await run(["acctg", "assign"], { EFM_CONFIG_DIR: none })).toEqual([
      2,
      `efm-address: PROPERTIES_INVALID: ${join(none, "acctg.properties")}: no virtualIp is configured\n`,
    ]);
    const [code, text] = await run(["missing", "assign"], { EFM_CONFIG_DIR: dir });
    expect(code).toBe(2);
    expect(text).toContain(`efm-address: PROPERTIES_INVALID: cannot read ${join(dir, "missing.properties")}`);
  });

  it("reads /etc/efm only when run through sudo, whatever EFM_CONFIG_DIR says", async () => {
    const dir = folder("sudo");
    const [code, text] = await run(["ee30-not-configured", "assign"], {
      SUDO_UID: "998",
      EFM_CONFIG_DIR: dir,
    });
    expect(code).toBe(2);
    expect(text).toMatch(/PROPERTIES_(INVALID|UNSAFE): .*\/etc\/efm/);
    expect(text).not.toContain(dir);
  });
});

describe("sudoers rule for efm-address", () => {
  // The template ships with @efm/scripts-runner, beside the efm-helper rule.
  const template = fileURLToPath(new URL("../../scripts-runner/sudoers/efm", import.meta.url));
  const line = readFileSync(template, "utf8")
    .split("\n")
    .find((l) => l.startsWith("Cmnd_Alias EFM_ADDRESS"));
  // sudo matches a ^...$ argument pattern against all the arguments joined by blanks.
  const args = new RegExp(/= \/usr\/bin\/node (\^.*\$)$/.exec(line ?? "")?.[1] ?? "^$");
  const cli = "/usr/lib/efm/node_modules/@efm/vip/dist/address-cli.js";

  it("allows exactly the installed program with a cluster name and assign or release", () => {
    expect(line).toBeDefined();
    expect(args.test(`${cli} acctg assign`)).toBe(true);
    expect(args.test(`${cli} my_cluster.2 release`)).toBe(true);
    for (const argv of [
      `${cli} acctg assign eth0`,
      `${cli} acctg release eth0 10.0.0.1`,
      `${cli} assign eth0:0 10.0.0.1 255.255.255.0`,
      `${cli} acctg check`,
      `${cli} -u assign`,
      `${cli} ../x assign`,
      `${cli} acctg`,
      `${cli.replace("address-cli.js", "address-cliXjs")} acctg assign`,
      `/tmp/address-cli.js acctg assign`,
    ]) {
      expect(args.test(argv), argv).toBe(false);
    }
  });
});
