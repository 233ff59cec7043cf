import { execFileSync, spawnSync } from "node:child_process";
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeEach, describe, expect, test } from "vitest";

// The real bin/efm-agent (run `pnpm build` first), refusing to start over bad state, modes or
// secrets before it contacts anything. Reserved: 127.0.17.30:17804, admin port 17823, db 15417
// (no database listens there: a start that gets past these checks stops at the database).
const ROOT = join(import.meta.dirname, "..", "..", "..");
const AGENT = join(ROOT, "bin", "efm-agent");
const CLUSTER = "ee17start";
const base = mkdtempSync(join(tmpdir(), "ee17-start-"));
afterAll(() => rmSync(base, { recursive: true, force: true }));

let conf = "";
let run = "";
beforeEach((ctx) => {
  const d = join(base, ctx.task.id);
  conf = join(d, "etc");
  run = join(d, "run");
  mkdirSync(conf, { recursive: true });
  mkdirSync(join(d, "data"), { recursive: true });
  const enc = execFileSync(process.execPath, [join(ROOT, "bin", "efm"), "encrypt", CLUSTER, "--from-env"], {
    env: { ...process.env, EFMPASS: "pw" },
  })
    .toString()
    .trim();
  const props = readFileSync(join(ROOT, "examples", "acctg.properties"), "utf8")
    .replace(/^bind\.address=.*$/m, "bind.address=127.0.17.30:17804")
    .replace(/^admin\.port=.*$/m, "admin.port=17823")
    .replace(/^db\.port=.*$/m, "db.port=15417")
    .replace(/^db\.password\.encrypted=.*$/m, `db.password.encrypted=${enc}`)
    .replace(/^db\.recovery\.conf\.dir=.*$/m, `db.recovery.conf.dir=${join(d, "data")}`);
  writeFileSync(join(conf, `${CLUSTER}.properties`), props, { mode: 0o640 });
  writeFileSync(join(conf, `${CLUSTER}.nodes`), "");
});

/** Start the agent; it must exit by itself (every case here fails its start). */
function start(env: NodeJS.ProcessEnv = {}): { status: number | null; out: string; startupLog: string } {
  const r = spawnSync(process.execPath, [AGENT, "start", CLUSTER, "--config-dir", conf], {
    env: {
      ...process.env,
      EFM_LOCK_DIR: join(run, "lock"),
      EFM_LOG_DIR: run,
      EFM_RUN_DIR: run,
      EFM_STATE_DIR: run,
      ...env,
    },
    timeout: 60_000,
  });
  let startupLog = "";
  try {
    startupLog = readFileSync(join(run, `startup-${CLUSTER}.log`), "utf8");
  } catch {
    // None written.
  }
  return { status: r.status, out: `${r.stdout}${r.stderr}`, startupLog };
}

describe("the agent refuses to start", () => {
  test("over a corrupt membership state file, naming it", () => {
    mkdirSync(run, { recursive: true });
    const f = join(run, `${CLUSTER}.membership.json`);
    writeFileSync(f, '{"config":{"vers');
    const r = start();
    expect(r.status).not.toBe(0);
    expect(r.out).toContain(`the membership state file ${f} is corrupt`);
    expect(r.startupLog).toContain(`the membership state file ${f} is corrupt`);
  });

  test("over an unreadable state file, naming it", () => {
    const f = join(run, `${CLUSTER}.state.json`);
    mkdirSync(f, { recursive: true }); // a directory where the file should be
    const r = start();
    expect(r.status).not.toBe(0);
    expect(r.out).toContain(`cannot read the state file ${f}`);
  });

  test("with a properties file others may write", () => {
    chmodSync(join(conf, `${CLUSTER}.properties`), 0o646);
    const r = start();
    expect(r.status).not.toBe(0);
    expect(r.out).toContain("has mode 0646: it must not be writable by group or others");
  });

  test("with a cluster secret open to group or others", () => {
    const secret = join(conf, `${CLUSTER}.secret`);
    execFileSync(process.execPath, [join(ROOT, "bin", "efm"), "--config-dir", conf, "init-secret", CLUSTER]);
    chmodSync(secret, 0o644);
    const r = start();
    expect(r.status).not.toBe(0);
    expect(r.out).toContain(`the cluster secret ${secret} has mode 0644`);
  });
});

describe("a start that gets past the files (then stops at the missing database)", () => {
  test("creates the lock directory and warns that there is no cluster secret", () => {
    const r = start();
    expect(r.status).not.toBe(0);
    expect(statSync(join(run, "lock")).mode & 0o777).toBe(0o755);
    expect(r.startupLog).toContain(`no cluster secret at ${join(conf, `${CLUSTER}.secret`)}`);
    expect(r.startupLog).not.toMatch(/lock directory|lock file/);
  });
});
