import { execFileSync } from "node:child_process";
import { chmodSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { encrypt } from "@efm/password-crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { factMismatches } from "./fact-check.ts";
import { HelperClient } from "./privileged.ts";

// Reserved for S5's boundary work: /tmp/efm-s5-* (no server: the helper only reads its file).
const pkg = fileURLToPath(new URL("..", import.meta.url));
const dir = "/tmp/efm-s5-ready";
const bin = "/usr/lib/postgresql/15/bin";
const dataDir = join(dir, "data");

/** Root's copy of the cluster's properties, 0640 in a 0755 folder, as the helper demands. */
function writeRootFile(): void {
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { mode: 0o755 });
  chmodSync(dir, 0o755);
  const lines = {
    "db.user": "efm",
    "db.password.encrypted": encrypt("s3cret", "s5ready"),
    "db.port": "35444",
    "db.database": "postgres",
    "bind.address": "127.0.35.41:35800",
    "admin.port": "35809",
    "is.witness": "false",
    "db.service.owner": "postgres",
    "db.recovery.conf.dir": dataDir,
    "db.bin": bin,
    "user.email": "dba@example.com",
    virtualIp: "127.0.35.50",
    "virtualIp.interface": "lo",
    "virtualIp.netmask": "255.255.255.0",
  };
  const file = join(dir, "s5ready.properties");
  writeFileSync(
    file,
    `${Object.entries(lines)
      .map(([k, v]) => `${k}=${v}`)
      .join("\n")}\n`,
  );
  chmodSync(file, 0o640);
}

const clients: HelperClient[] = [];

beforeAll(() => {
  // The helper is a separate program (what sudo runs); test the compiled one.
  execFileSync("npx", ["tsc", "-p", `${pkg}/tsconfig.build.json`], { stdio: "inherit" });
  writeRootFile();
}, 120_000);

afterAll(async () => {
  for (const c of clients) await c.close();
  rmSync(dir, { recursive: true, force: true });
});

describe("the helper's ready line carries the facts the agent compares at start-up (issue 18)", () => {
  it("names db.bin, the data directory and the virtual IP of root's file", async () => {
    const client = new HelperClient({ cluster: "s5ready", configDir: dir }, () => {});
    clients.push(client);
    const started = await client.start();
    if (!started.persistent) throw new Error(`helper not started: ${started.why}`);
    expect(started.ready).toMatchObject({
      cluster: "s5ready",
      properties: join(dir, "s5ready.properties"),
      owner: "postgres",
      dataDir,
      bin,
      vip: { address: "127.0.35.50", interface: "lo", prefix: 24 },
    });
    // What the agent does with it: an agent whose own file names another VIP and data
    // directory is told both values and both files.
    const r = started.ready;
    const differ = factMismatches(
      { propertiesFile: r.properties, dataDir: r.dataDir, bin: r.bin!, vip: r.vip! },
      {
        propertiesFile: "/home/efm/s5ready.properties",
        dataDir: "/srv/other",
        bin,
        vip: { address: "127.0.35.51", interface: "lo", prefix: 24 },
      },
    );
    expect(differ).toEqual([
      `the data directory (db.data.dir / db.recovery.conf.dir) differs: /srv/other in /home/efm/s5ready.properties (this agent) but ${dataDir} in ${join(dir, "s5ready.properties")} (what the privileged helpers read)`,
      `the virtual IP (virtualIp, virtualIp.interface, virtualIp.netmask) differs: 127.0.35.51/24 on lo in /home/efm/s5ready.properties (this agent) but 127.0.35.50/24 on lo in ${join(dir, "s5ready.properties")} (what the privileged helpers read)`,
    ]);
  });
});
