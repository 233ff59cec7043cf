import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { networkInterfaces, tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough, Writable } from "node:stream";
import { decrypt } from "@efm/password-crypto";
import { afterAll, describe, expect, test } from "vitest";
import type { Io } from "./encrypt.ts";
import { buildProgram, ignoreClosedPipe, normalizeArgs } from "./main.ts";
import { expandIpv6, interfaceIndex, networkAdapterLines } from "./prop-check.ts";

const dir = mkdtempSync(join(tmpdir(), "efm-cli-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function efm(args: string[], opts: { stdin?: string; env?: NodeJS.ProcessEnv } = {}) {
  const input = new PassThrough();
  const output = new PassThrough();
  let text = "";
  output.on("data", (c) => {
    text += c.toString();
  });
  const io: Io = { input, output, env: opts.env ?? {} };
  let status = -1;
  const program = buildProgram(io, (s) => {
    status = s;
  });
  program.exitOverride();
  if (opts.stdin !== undefined) input.end(opts.stdin);
  await program.parseAsync(["node", "efm", ...normalizeArgs(args)]);
  return { status, text };
}

const example = readFileSync(new URL("../../../examples/acctg.properties", import.meta.url), "utf8");

describe("efm encrypt", () => {
  test("--from-env prints a token bound to the cluster", async () => {
    const r = await efm(["encrypt", "acctg", "--from-env"], { env: { EFMPASS: "secret" } });
    expect(r.status).toBe(0);
    const token = r.text.trim();
    expect(decrypt(token, "acctg")).toBe("secret");
    expect(() => decrypt(token, "sales")).toThrow(/sales/);
  });

  test("--from-env without EFMPASS fails", async () => {
    const r = await efm(["encrypt", "acctg", "--from-env"]);
    expect(r.status).toBe(1);
    expect(r.text).toContain("EFMPASS");
  });

  test("the dialogue from a pipe: two equal lines give the paste line", async () => {
    const r = await efm(["encrypt", "acctg"], { stdin: "pa ss\npa ss\n" });
    expect(r.status).toBe(0);
    expect(r.text).toContain("Please enter the password and hit enter:");
    expect(r.text).toContain("Please enter the password again to confirm:");
    const token = /The encrypted password is: ([0-9a-f]+)\n/.exec(r.text)?.[1] ?? "";
    expect(decrypt(token, "acctg")).toBe("pa ss");
    // The layout of guide 3.2.1.2's example, blank lines included.
    expect(r.text).toBe(
      [
        "This utility will generate an encrypted password for you to place",
        " in your EFM cluster property file.",
        "",
        "Please enter the password and hit enter: ",
        "Please enter the password again to confirm: ",
        "",
        `The encrypted password is: ${token}`,
        "",
        "Please paste this into your cluster properties file.",
        `    db.password.encrypted=${token}`,
        "",
      ].join("\n"),
    );
  });

  test("a mismatch exits 1 without a token", async () => {
    const r = await efm(["encrypt", "acctg"], { stdin: "one\ntwo\n" });
    expect(r.status).toBe(1);
    expect(r.text).toContain("do not match");
    expect(r.text).not.toContain("The encrypted password is");
  });
});

describe("efm prop-check", () => {
  test("the example prints the report of guide 5.3", async () => {
    writeFileSync(join(dir, "acctg.properties"), example);
    writeFileSync(join(dir, "acctg.nodes"), "127.0.0.12:7800\n127.0.0.11:7800\n");
    const r = await efm(["--config-dir", dir, "prop-check", "acctg"]);
    expect(r.status).toBe(0);
    const lines = r.text.split("\n");
    expect(lines.slice(0, 8)).toEqual([
      "Agents: 127.0.0.11:7800 127.0.0.12:7800",
      "Binding address: 127.0.0.11",
      "I am witness node: false",
      "Cluster name: acctg",
      "User email: dba@example.com",
      "VIP: ",
      "Automatic failover set to: true",
      expect.stringMatching(/^Network adapters: lo$/),
    ]);
    expect(lines).toContain("127.0.0.1");
  });

  test("EFM_CONFIG_DIR is used when --config-dir is absent", async () => {
    const r = await efm(["prop-check", "acctg"], { env: { EFM_CONFIG_DIR: dir } });
    expect(r.status).toBe(0);
  });

  test("quoted value, bad port and missing db.user: every error with its line, non-zero exit", async () => {
    const bad = example
      .replace(/^db\.user=.*$/m, "")
      .replace("db.port=5444", "db.port=99999")
      .replace("db.database=postgres", 'db.database="postgres"');
    writeFileSync(join(dir, "bad.properties"), bad);
    const r = await efm(["--config-dir", dir, "prop-check", "bad"]);
    expect(r.status).toBe(1);
    const file = join(dir, "bad.properties");
    expect(r.text).toContain(`ERROR: ${file}: db.user: a value is required`);
    expect(r.text).toContain(`ERROR: ${file}:4: db.port=99999: expected a port number from 1 to 65535`);
    expect(r.text).toMatch(
      new RegExp(`ERROR: ${file}:5: db.database="postgres": quoted strings are not allowed`),
    );
    expect(r.text).toContain("3 error(s)");
  });

  test("a missing properties file is an error, not a crash", async () => {
    const r = await efm(["--config-dir", dir, "prop-check", "nosuch"]);
    expect(r.status).toBe(1);
    expect(r.text).toContain("cannot read the properties file");
  });

  test("a malformed members entry is reported with its line", async () => {
    writeFileSync(join(dir, "acctg.nodes"), "127.0.0.12:7800\n127.0.0.13\n");
    const r = await efm(["--config-dir", dir, "prop-check", "acctg"]);
    expect(r.status).toBe(1);
    expect(r.text).toContain(`${join(dir, "acctg.nodes")}:2:`);
  });
});

describe("efm help", () => {
  test("--help lists every command of guide 5.3", async () => {
    let text = "";
    const program = buildProgram({ input: new PassThrough(), output: new PassThrough(), env: {} }, () => {});
    text = program.helpInformation();
    for (const c of [
      "add-node <cluster> <address> [priority]",
      "cluster-status <cluster>",
      "cluster-status-json <cluster>",
      "encrypt",
      "prop-check <cluster>",
      "promote",
      "remove-node <cluster> <address>",
      "resume <cluster>",
      "stop-cluster <cluster>",
    ]) {
      expect(text).toContain(c);
    }
  });
});

test("IPv6 addresses print unabbreviated like Java", () => {
  expect(expandIpv6("fe80::10a8:bff:fe7c:70cf")).toBe("fe80:0:0:0:10a8:bff:fe7c:70cf");
  expect(expandIpv6("::1")).toBe("0:0:0:0:0:0:0:1");
  expect(expandIpv6("fd00::")).toBe("fd00:0:0:0:0:0:0:0");
});

test("IPv6 addresses are scoped with their adapter's index, as Java prints them (::1 on lo is %1)", () => {
  // Only lo: other test suites add and remove interfaces in this namespace while this runs.
  const lo = networkInterfaces().lo ?? [];
  const lines = networkAdapterLines({ lo });
  expect(lines[0]).toBe("lo");
  expect(interfaceIndex("lo")).toBe(1);
  if (lo.some((a) => a.address === "::1")) expect(lines).toContain("0:0:0:0:0:0:0:1%1");
  expect(lines).toContain("127.0.0.1");
  expect(interfaceIndex("no-such-adapter")).toBeNull();
});

describe("efm prop-check: TLS files (issue 19)", () => {
  test("a missing root certificate and a key open to others are reported with their lines", async () => {
    const key = join(dir, "client.key");
    writeFileSync(key, "not a key\n", { mode: 0o644 });
    const missing = join(dir, "missing-ca.crt");
    writeFileSync(
      join(dir, "tls.properties"),
      `${example}jdbc.sslmode=verify-full\njdbc.sslrootcert=${missing}\njdbc.sslcert=${join(dir, "missing.crt")}\njdbc.sslkey=${key}\n`,
    );
    writeFileSync(join(dir, "tls.nodes"), "127.0.0.12:7800\n");
    const r = await efm(["--config-dir", dir, "prop-check", "tls"]);
    expect(r.status).toBe(1);
    const file = join(dir, "tls.properties");
    const lines = example.split("\n").length;
    expect(r.text).toContain(
      `ERROR: ${file}:${lines + 1}: jdbc.sslrootcert=${missing}: ${missing} does not exist`,
    );
    expect(r.text).toContain(
      `jdbc.sslcert=${join(dir, "missing.crt")}: ${join(dir, "missing.crt")} does not exist`,
    );
    expect(r.text).toContain(
      `jdbc.sslkey=${key}: ${key} has mode 0644; a private key must not be accessible by group or others (chmod 0600 ${key})`,
    );
    expect(r.text).toContain("3 error(s)");
  });

  test("jdbc.ssl=true with a mode that allows plain TCP is refused", async () => {
    writeFileSync(
      join(dir, "tls.properties"),
      `${example.replace("jdbc.ssl=false", "")}jdbc.ssl=true\njdbc.sslmode=allow\n`,
    );
    const r = await efm(["--config-dir", dir, "prop-check", "tls"]);
    expect(r.status).toBe(1);
    expect(r.text).toContain("jdbc.sslmode=allow: jdbc.ssl=true requires TLS on every connection");
  });
});

describe("efm prop-check: what only the node can prove (issue 14)", () => {
  const write = (name: string, text: string) => {
    writeFileSync(join(dir, `${name}.properties`), text);
    writeFileSync(join(dir, `${name}.nodes`), "");
    return join(dir, `${name}.properties`);
  };

  test("a password encrypted for another cluster and jgroups.max.tries=1 are errors (exit 1)", async () => {
    // The example's password was encrypted for acctg: for sales it must not decrypt.
    const file = write("sales", example);
    const r = await efm(["--config-dir", dir, "prop-check", "sales"]);
    expect(r.status).toBe(1);
    expect(r.text).toContain(
      `ERROR: ${file}:${example.split("\n").findIndex((l) => l.startsWith("db.password.encrypted=")) + 1}: db.password.encrypted: cannot be decrypted for cluster sales: the encrypted password was not made for cluster 'sales'`,
    );
    const tries = write("acctg", `${example}jgroups.max.tries=1\n`);
    const t = await efm(["--config-dir", dir, "prop-check", "acctg"]);
    expect(t.status).toBe(1);
    expect(t.text).toContain(`ERROR: ${tries}:`);
    expect(t.text).toContain("jgroups.max.tries=1: expected a whole number from 2 to 1000");
  });

  test("db.bin without pg_ctl and a foreign bind.address are warnings: the report still prints", async () => {
    const file = write(
      "acctg",
      example
        .replace("db.bin=/usr/lib/postgresql/15/bin", "db.bin=/usr")
        .replace("bind.address=127.0.0.11:7800", "bind.address=192.0.2.7:7800"),
    );
    const r = await efm(["--config-dir", dir, "prop-check", "acctg"]);
    expect(r.status).toBe(0);
    expect(r.text).toMatch(
      /WARNING: .*db\.bin=\/usr: \/usr\/pg_ctl does not exist; db.bin must name the directory of pg_ctl/,
    );
    expect(r.text).toContain(`WARNING: ${file}:`);
    expect(r.text).toContain("bind.address=192.0.2.7:7800: 192.0.2.7 is not an address of this host");
    expect(r.text).toContain("Binding address: 192.0.2.7");
    writeFileSync(join(dir, "acctg.properties"), example);
  });
});

test("a missing admin token names the path looked at and EFM_RUN_DIR, not a permission problem", async () => {
  writeFileSync(join(dir, "acctg.properties"), example);
  const runDir = mkdtempSync(join(tmpdir(), "efm-run-"));
  const r = await efm(["--config-dir", dir, "add-node", "acctg", "127.0.20.12", "1"], {
    env: { EFM_RUN_DIR: runDir },
  });
  expect(r.status).toBe(1);
  expect(r.text).toBe(
    `There is no admin token at ${runDir}/acctg.token: is the agent running? The agent writes it in its run directory (run.dir in the properties, or EFM_RUN_DIR in the agent's environment); run efm with the same EFM_RUN_DIR.\n`,
  );
  rmSync(runDir, { recursive: true, force: true });
});

describe("node addresses (issue 14)", () => {
  test("an invalid address is refused before the agent is asked, with the reason", async () => {
    writeFileSync(join(dir, "acctg.properties"), example);
    for (const [args, message] of [
      [["add-node", "acctg", "127.0.4.300"], '"127.0.4.300" is not a valid IPv4 or IPv6 address\n'],
      [["set-priority", "acctg", "127.0.4.300", "1"], '"127.0.4.300" is not a valid IPv4 or IPv6 address\n'],
      [["remove-node", "acctg", "foo bar"], '"foo bar" is neither an IP address nor a host name\n'],
      [["allow-node", "acctg", "127.0.4.300"], '"127.0.4.300" is not a valid IPv4 or IPv6 address\n'],
      [["disallow-node", "acctg", "foo bar"], '"foo bar" is neither an IP address nor a host name\n'],
      [
        ["promote", "acctg", "-switchover", "-sourcenode", "127.0.4.300"],
        '"127.0.4.300" is not a valid IPv4 or IPv6 address\n',
      ],
    ] as const) {
      const r = await efm(["--config-dir", dir, ...args]);
      expect(r.status).toBe(1);
      expect(r.text).toBe(message);
    }
  });

  test("a host name is resolved once to an address, or refused with the resolver's reason", async () => {
    const { resolveNodeAddress } = await import("./admin.ts");
    expect(await resolveNodeAddress("127.0.20.12")).toEqual({ ok: true, value: "127.0.20.12" });
    expect(await resolveNodeAddress("127.0.20.12:17730")).toEqual({ ok: true, value: "127.0.20.12:17730" });
    expect(await resolveNodeAddress("fd00::12")).toEqual({ ok: true, value: "fd00::12" });
    const local = await resolveNodeAddress("localhost");
    expect(local.ok && ["127.0.0.1", "::1"].includes(local.value)).toBe(true);
    const bad = await resolveNodeAddress("no-such-host.invalid");
    expect(bad.ok).toBe(false);
    expect(!bad.ok && bad.error).toMatch(
      /^cannot resolve the host name "no-such-host\.invalid" \((ENOTFOUND|EAI_AGAIN)\): give the node's IP address$/,
    );
  });
});

describe("efm promote -switchover (issue 16)", () => {
  test("the EFM 3.x+ one-dash words become the two-dash options; nothing else changes", () => {
    expect(normalizeArgs(["promote", "acctg", "-switchover", "-sourcenode", "10.0.0.2"])).toEqual([
      "promote",
      "acctg",
      "--switchover",
      "--to",
      "10.0.0.2",
    ]);
    expect(normalizeArgs(["promote", "acctg", "--sourcenode", "10.0.0.2", "--force"])).toEqual([
      "promote",
      "acctg",
      "--to",
      "10.0.0.2",
      "--force",
    ]);
  });

  test("a target without --switchover, or --force with it, is refused before the agent is asked", async () => {
    writeFileSync(join(dir, "acctg.properties"), example);
    const noSwitch = await efm(["--config-dir", dir, "promote", "acctg", "--to", "127.0.20.12"]);
    expect(noSwitch).toEqual({
      status: 1,
      text: "--to (-sourcenode) names the target of a switchover: add --switchover\n",
    });
    const forced = await efm(["--config-dir", dir, "promote", "acctg", "-switchover", "--force"]);
    expect(forced).toEqual({
      status: 1,
      text: "--force does not apply to --switchover: a switchover never loses a write\n",
    });
  });

  test("prop-check refuses a switchover.max.lag.bytes that is not a byte count, naming it", async () => {
    writeFileSync(join(dir, "lag.properties"), `${example}\nswitchover.max.lag.bytes=16MB\n`);
    writeFileSync(join(dir, "lag.nodes"), "127.0.0.12:7800\n");
    const r = await efm(["--config-dir", dir, "prop-check", "lag"]);
    expect(r.status).toBe(1);
    expect(r.text).toContain("switchover.max.lag.bytes=16MB");
    expect(r.text).toContain("a whole number from 0 to 1099511627776");
  });

  test("allow-node and disallow-node are listed with add-node and remove-node", () => {
    const program = buildProgram({ input: new PassThrough(), output: new PassThrough(), env: {} }, () => {});
    const text = program.helpInformation();
    expect(text).toContain("allow-node <cluster> <address>");
    expect(text).toContain("disallow-node <cluster> <address>");
  });
});

describe("operator slips", () => {
  test.each([
    ["cluster-status", "../acctg"],
    ["cluster-status-json", "a/b"],
    ["prop-check", ".hidden"],
    ["encrypt", "bad name"],
    ["stop-cluster", "-"],
  ])("%s %j is refused as a cluster name before any file is read", async (command, cluster) => {
    // A properties file one directory up: without the check, "../acctg" would read it.
    const conf = join(dir, "conf");
    mkdirSync(conf, { recursive: true });
    writeFileSync(join(dir, "acctg.properties"), example);
    const r = efm(["--config-dir", conf, command, "--", cluster]);
    await expect(r).rejects.toMatchObject({ exitCode: 1, code: "efm.invalidClusterName" });
  });

  test("the refusal names the cluster and says what a name may hold", async () => {
    const output = new PassThrough();
    let text = "";
    output.on("data", (c) => {
      text += c.toString();
    });
    const program = buildProgram({ input: new PassThrough(), output, env: {} }, () => {});
    program.exitOverride();
    await expect(program.parseAsync(["node", "efm", "cluster-status", "../acctg"])).rejects.toThrow();
    expect(text).toBe(
      '"../acctg" is not a valid cluster name: use up to 64 letters, digits, _ . - (starting with a letter, digit or _)\n',
    );
  });

  test("a reader that closes the pipe early (efm ... | head) ends in no error; other write errors still do", async () => {
    // What stdout does when the reader of its pipe has gone: the write fails with EPIPE.
    const failing = (code: string) =>
      new Writable({
        write(_chunk, _enc, cb) {
          cb(Object.assign(new Error(`write ${code}`), { code }));
        },
      });
    const closed = failing("EPIPE");
    ignoreClosedPipe(closed);
    closed.write("Cluster Status: acctg\n");
    await new Promise((r) => closed.once("close", r));
    expect(closed.destroyed).toBe(true);

    const full = failing("ENOSPC");
    ignoreClosedPipe(full);
    const thrown = new Promise((resolve) => {
      const listeners = process.listeners("uncaughtException");
      process.removeAllListeners("uncaughtException");
      process.once("uncaughtException", (err) => {
        for (const l of listeners) process.on("uncaughtException", l);
        resolve(err);
      });
    });
    full.write("x");
    expect(await thrown).toMatchObject({ code: "ENOSPC" });
  });
});
