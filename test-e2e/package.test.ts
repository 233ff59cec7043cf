/**
 * The .deb that `pnpm package` builds (dpkg-deb), installed by dpkg into a fresh, empty root
 * (`dpkg --root` with chrootless maintainer scripts, so nothing lands on this machine) and run
 * from there: `efm --version`, `efm-agent --version` and `efm prop-check` on a real cluster file.
 * Needs `pnpm build` first; the npm registry supplies the third-party modules, as for a user.
 */
import { execFileSync, spawnSync } from "node:child_process";
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const repo = new URL("..", import.meta.url).pathname;
const version = (JSON.parse(readFileSync(join(repo, "apps/efm/package.json"), "utf8")) as { version: string })
  .version;
const root = mkdtempSync(join(tmpdir(), "efm-deb-root-"));
let deb = "";

const run = (cmd: string, args: string[], env: NodeJS.ProcessEnv = process.env) => {
  const r = spawnSync(cmd, args, { encoding: "utf8", env, timeout: 300_000 });
  return { code: r.status ?? -1, out: `${r.stdout ?? ""}${r.stderr ?? ""}` };
};
const dpkg = (...args: string[]) =>
  run("dpkg", [`--root=${root}`, "--force-script-chrootless", "--force-depends", ...args]);

beforeAll(() => {
  const built = run("bash", [join(repo, "tooling/scripts/package-deb.sh")]);
  expect(built.code, built.out).toBe(0);
  deb = join(repo, built.out.trim().split("\n").at(-1)!);
  // An empty system: a dpkg database and the two accounts every Debian root has.
  mkdirSync(join(root, "var/lib/dpkg/info"), { recursive: true });
  mkdirSync(join(root, "var/lib/dpkg/updates"), { recursive: true });
  mkdirSync(join(root, "etc"));
  writeFileSync(join(root, "var/lib/dpkg/status"), "");
  writeFileSync(join(root, "etc/passwd"), "root:x:0:0:root:/root:/bin/bash\n");
  writeFileSync(join(root, "etc/group"), "root:x:0:\n");
  writeFileSync(join(root, "etc/shadow"), "root:*:19000:0:99999:7:::\n");
  writeFileSync(join(root, "etc/gshadow"), "root:*::\n");
}, 600_000);

afterAll(() => {
  rmSync(root, { recursive: true, force: true });
});

describe("the .deb package", () => {
  it("is named for the CLI's version and declares what it needs", () => {
    expect(deb.endsWith(`dist/efm_${version}_all.deb`)).toBe(true);
    const info = execFileSync("dpkg-deb", ["--info", deb], { encoding: "utf8" });
    expect(info).toContain("Package: efm");
    expect(info).toContain(`Version: ${version}`);
    expect(info).toMatch(/Depends: nodejs \(>= 20\)/);
    // Everything under /etc is a conffile: an upgrade never overwrites an operator's edit.
    const conffiles = execFileSync(
      "sh",
      ["-c", 'dpkg-deb --ctrl-tarfile "$1" | tar -xO ./conffiles', "sh", deb],
      {
        encoding: "utf8",
      },
    );
    expect(conffiles.split("\n").filter(Boolean).sort()).toEqual([
      "/etc/efm/efm.nodes.in",
      "/etc/efm/efm.properties.in",
      "/etc/logrotate.d/efm",
      "/etc/sudoers.d/efm",
    ]);
  });

  it("installs with dpkg: files, the efm user and group, conffiles", () => {
    const r = dpkg("-i", deb);
    expect(r.code, r.out).toBe(0);
    expect(readFileSync(join(root, "etc/passwd"), "utf8")).toMatch(
      /^efm:x:\d+:\d+:[^:]*:\/var\/lib\/efm:\/usr\/sbin\/nologin$/m,
    );
    expect(readFileSync(join(root, "etc/group"), "utf8")).toMatch(/^efm:x:\d+:$/m);
    for (const f of [
      "usr/lib/efm/node_modules/@efm/cli/dist/bin/efm.js",
      // The exact paths the sudoers drop-in allows.
      "usr/lib/efm/node_modules/@efm/scripts-runner/dist/helper.js",
      "usr/lib/efm/node_modules/@efm/vip/dist/address-cli.js",
      "lib/systemd/system/efm@.service",
      "etc/logrotate.d/efm",
      "etc/efm/efm.properties.in",
      "etc/efm/efm.nodes.in",
      "usr/share/man/man1/efm.1.gz",
      "usr/share/man/man8/efm-agent.8.gz",
      "usr/share/bash-completion/completions/efm",
      "usr/share/doc/efm/copyright",
    ]) {
      expect(existsSync(join(root, f)), f).toBe(true);
    }
    expect(statSync(join(root, "etc/sudoers.d/efm")).mode & 0o777).toBe(0o440);
    expect(readFileSync(join(root, "lib/systemd/system/efm@.service"), "utf8")).toContain(
      "ExecStart=/usr/bin/efm-agent start %i --config-dir /etc/efm",
    );
    const sudoers = readFileSync(join(root, "etc/sudoers.d/efm"), "utf8");
    // Each helper's whole argument list is one anchored expression naming the cluster only.
    expect(sudoers).toContain(
      "/usr/bin/node ^/usr/lib/efm/node_modules/@efm/scripts-runner/dist/helper\\.js [A-Za-z0-9_][A-Za-z0-9_.-]*$",
    );
    expect(sudoers).toContain(
      "/usr/bin/node ^/usr/lib/efm/node_modules/@efm/vip/dist/address-cli\\.js [A-Za-z0-9_][A-Za-z0-9_.-]* (assign|release)$",
    );
    const visudo = run("visudo", ["-c", "-f", join(root, "etc/sudoers.d/efm")]);
    expect(visudo.code, visudo.out).toBe(0);
    const status = readFileSync(join(root, "var/lib/dpkg/status"), "utf8");
    expect(status).toMatch(/Package: efm\nStatus: install ok installed/);
    expect(status).toContain("/etc/efm/efm.properties.in");
  });

  it("runs from where it was installed: --version and prop-check", () => {
    const efm = join(root, "usr/bin/efm");
    expect(execFileSync(efm, ["--version"], { encoding: "utf8" })).toBe(`efm ${version}\n`);
    expect(execFileSync(join(root, "usr/bin/efm-agent"), ["--version"], { encoding: "utf8" })).toBe(
      `efm-agent ${version}\n`,
    );
    const conf = mkdtempSync(join(tmpdir(), "efm-deb-conf-"));
    try {
      copyFileSync(join(repo, "examples/acctg.properties"), join(conf, "acctg.properties"));
      copyFileSync(join(repo, "examples/acctg.nodes"), join(conf, "acctg.nodes"));
      const r = run(efm, ["--config-dir", conf, "prop-check", "acctg"]);
      expect(r.code, r.out).toBe(0);
      expect(r.out).toContain("Cluster name: acctg");
      // The template as shipped is incomplete on purpose: prop-check names what is missing.
      copyFileSync(join(root, "etc/efm/efm.properties.in"), join(conf, "new.properties"));
      writeFileSync(join(conf, "new.nodes"), "");
      const t = run(efm, ["--config-dir", conf, "prop-check", "new"]);
      expect(t.code).toBe(1);
      expect(t.out).toContain("db.user");
    } finally {
      rmSync(conf, { recursive: true, force: true });
    }
    const man = run("man", ["-l", join(root, "usr/share/man/man1/efm.1.gz")], {
      ...process.env,
      MANPAGER: "cat",
    });
    expect(man.out).toContain("cluster-status-json");
  });

  it("purges cleanly", () => {
    const r = dpkg("--purge", "efm");
    expect(r.code, r.out).toBe(0);
    expect(existsSync(join(root, "usr/lib/efm"))).toBe(false);
    expect(existsSync(join(root, "usr/bin/efm"))).toBe(false);
    expect(existsSync(join(root, "etc/efm/efm.properties.in"))).toBe(false);
    expect(existsSync(join(root, "var/lib/efm"))).toBe(false);
  });
});
