import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import { CommanderError } from "commander";
import { afterAll, describe, expect, test } from "vitest";
import type { Io } from "./encrypt.ts";
import { buildProgram } from "./main.ts";

const dir = mkdtempSync(join(tmpdir(), "ee17-efm-secret-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function efm(args: string[]) {
  const output = new PassThrough();
  let text = "";
  output.on("data", (c) => {
    text += c.toString();
  });
  const io: Io = { input: new PassThrough(), output, env: {} };
  let status = -1;
  const program = buildProgram(io, (s) => {
    status = s;
  });
  program.exitOverride();
  try {
    await program.parseAsync(["node", "efm", "--config-dir", dir, ...args]);
  } catch (err) {
    // A refusal before any action (an invalid cluster name) ends as commander's exit.
    if (!(err instanceof CommanderError)) throw err;
    status = err.exitCode;
  }
  return { status, text };
}

const example = readFileSync(new URL("../../../examples/acctg.properties", import.meta.url), "utf8");

describe("efm init-secret and what prop-check says about it", () => {
  test("without a secret, prop-check passes and warns after the summary", async () => {
    writeFileSync(join(dir, "acctg.properties"), example, { mode: 0o640 });
    chmodSync(join(dir, "acctg.properties"), 0o640);
    writeFileSync(join(dir, "acctg.nodes"), "127.0.0.12:7800\n");
    const r = await efm(["prop-check", "acctg"]);
    expect(r.status).toBe(0);
    expect(r.text.split("\n")[0]).toMatch(/^Agents: /);
    expect(r.text).toContain(
      `WARNING: no cluster secret at ${join(dir, "acctg.secret")}: agent traffic is only as strong as the database password; run 'efm init-secret acctg'`,
    );
  });

  test("init-secret writes a 0600 secret once; prop-check then has nothing to say about it", async () => {
    const r = await efm(["init-secret", "acctg"]);
    expect(r.status).toBe(0);
    expect(r.text).toContain(`Wrote a new cluster secret to ${join(dir, "acctg.secret")} (mode 0600`);
    expect(statSync(join(dir, "acctg.secret")).mode & 0o777).toBe(0o600);
    const again = await efm(["init-secret", "acctg"]);
    expect(again.status).toBe(1);
    expect(again.text).toMatch(/already exists/);
    const check = await efm(["prop-check", "acctg"]);
    expect(check.status).toBe(0);
    expect(check.text).not.toContain("WARNING");
  });

  test("a secret readable by the group, or a properties file others may write, fails prop-check", async () => {
    chmodSync(join(dir, "acctg.secret"), 0o640);
    const r = await efm(["prop-check", "acctg"]);
    expect(r.status).toBe(1);
    expect(r.text).toContain(`ERROR: the cluster secret ${join(dir, "acctg.secret")} has mode 0640`);
    chmodSync(join(dir, "acctg.secret"), 0o600);
    chmodSync(join(dir, "acctg.properties"), 0o646);
    const w = await efm(["prop-check", "acctg"]);
    expect(w.status).toBe(1);
    expect(w.text).toMatch(/acctg\.properties has mode 0646: it must not be writable by group or others/);
    chmodSync(join(dir, "acctg.properties"), 0o644);
    const readable = await efm(["prop-check", "acctg"]);
    expect(readable.status).toBe(0);
    expect(readable.text).toMatch(/WARNING: .*acctg\.properties has mode 0644: any local user can read/);
  });

  test("init-secret refuses a cluster name that is not a plain file name", async () => {
    const r = await efm(["init-secret", "../x"]);
    expect(r.status).toBe(1);
    expect(r.text).toMatch(/^"\.\.\/x" is not a valid cluster name/);
  });
});
