import { chmodSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { encrypt } from "@efm/password-crypto";
import { describe, expect, test } from "vitest";
import { formatProblem } from "./errors.ts";
import { isLocalAddress } from "./host-check.ts";
import { parseConfig, readConfig } from "./parse.ts";

/** A node's folder with a real recovery directory and a db.bin holding an executable pg_ctl. */
function node(overrides: Record<string, string> = {}) {
  const dir = mkdtempSync(join(tmpdir(), "efm-host-check-"));
  const data = join(dir, "data");
  const bin = join(dir, "bin");
  mkdirSync(data);
  mkdirSync(bin);
  writeFileSync(join(bin, "pg_ctl"), "#!/bin/sh\n");
  chmodSync(join(bin, "pg_ctl"), 0o755);
  const props: Record<string, string> = {
    "db.user": "efm",
    "db.password.encrypted": encrypt("secret", "acctg"),
    "db.port": "15420",
    "db.database": "postgres",
    "db.service.owner": "postgres",
    "db.recovery.conf.dir": data,
    "db.bin": bin,
    "admin.port": "17740",
    "bind.address": "127.0.20.11:17730",
    "is.witness": "false",
    "user.email": "dba@example.com",
    ...overrides,
  };
  const file = join(dir, "acctg.properties");
  writeFileSync(
    file,
    `${Object.entries(props)
      .map(([k, v]) => `${k}=${v}`)
      .join("\n")}\n`,
  );
  return { file, dir, bin };
}

const shown = (r: { errors: unknown[]; warnings: unknown[] }) => ({
  errors: (r.errors as Parameters<typeof formatProblem>[0][]).map(formatProblem),
  warnings: (r.warnings as Parameters<typeof formatProblem>[0][]).map(formatProblem),
});

describe("checkHost through readConfig", () => {
  test("a good node has neither errors nor warnings, in both modes", () => {
    const { file } = node();
    for (const hostFacts of ["errors", "warnings"] as const) {
      expect(shown(readConfig(file, { hostFacts }))).toEqual({ errors: [], warnings: [] });
    }
  });

  test("watchdog.mode=required with a missing device is a host fact; automatic and witnesses are not checked", () => {
    // A path that cannot exist: no test ever opens a real watchdog device (it would reset the host).
    const { file } = node({ "watchdog.mode": "required", "watchdog.device": "/nonexistent/efm/watchdog" });
    const line = `${file}:13: watchdog.device=/nonexistent/efm/watchdog: does not exist, and watchdog.mode=required lets no master run without it`;
    expect(shown(readConfig(file, { hostFacts: "warnings" }))).toEqual({ errors: [], warnings: [line] });
    expect(shown(readConfig(file, { hostFacts: "errors" }))).toEqual({ errors: [line], warnings: [] });
    const automatic = node({ "watchdog.mode": "automatic", "watchdog.device": "/nonexistent/efm/watchdog" });
    expect(shown(readConfig(automatic.file, { hostFacts: "errors" }))).toEqual({ errors: [], warnings: [] });
    const witness = node({
      "is.witness": "true",
      "watchdog.mode": "required",
      "watchdog.device": "/nonexistent/efm/watchdog",
    });
    expect(shown(readConfig(witness.file, { hostFacts: "errors" }))).toEqual({ errors: [], warnings: [] });
  });

  test("a bad watchdog.mode or watchdog.safety.margin is an error naming what is expected", () => {
    const { file } = node({ "watchdog.mode": "always", "watchdog.safety.margin": "-5" });
    const errors = shown(readConfig(file, { hostFacts: "warnings" })).errors.join("\n");
    expect(errors).toContain("watchdog.mode=always");
    expect(errors).toContain("off, automatic, required");
    expect(errors).toContain("watchdog.safety.margin=-5");
  });

  test("a password encrypted for another cluster is an error naming the cluster to encrypt for", () => {
    const { file } = node({ "db.password.encrypted": encrypt("secret", "sales") });
    const r = shown(readConfig(file, { hostFacts: "warnings" }));
    expect(r.errors).toEqual([
      `${file}:2: db.password.encrypted: cannot be decrypted for cluster acctg: the encrypted password was not made for cluster 'acctg' (or was altered); run 'efm encrypt acctg'`,
    ]);
  });

  test("a plain-text password is an error that does not print the password", () => {
    const { file } = node({ "db.password.encrypted": "hunter2" });
    const r = shown(readConfig(file, { hostFacts: "warnings" }));
    expect(r.errors).toHaveLength(1);
    expect(r.errors[0]).toContain("db.password.encrypted: cannot be decrypted for cluster acctg");
    expect(r.errors[0]).toContain("not a hexadecimal string from 'efm encrypt'");
    expect(r.errors[0]).not.toContain("hunter2");
  });

  test("a db.recovery.conf.dir that does not exist is an error on a database node, not on a witness", () => {
    const { file, dir } = node({ "db.recovery.conf.dir": "/nonexistent/efm/data" });
    expect(shown(readConfig(file, { hostFacts: "warnings" })).errors).toEqual([
      `${file}:6: db.recovery.conf.dir=/nonexistent/efm/data: does not exist on this host`,
    ]);
    const witness = node({ "db.recovery.conf.dir": "/nonexistent/efm/data", "is.witness": "true" });
    expect(shown(readConfig(witness.file, { hostFacts: "errors" })).errors).toEqual([]);
    void dir;
  });

  test("db.bin without pg_ctl: a warning for prop-check, an error for the agent", () => {
    const { file, dir } = node({ "db.bin": "/usr" });
    const expected = `${file}:7: db.bin=/usr: /usr/pg_ctl does not exist; db.bin must name the directory of pg_ctl`;
    expect(shown(readConfig(file, { hostFacts: "warnings" }))).toEqual({ errors: [], warnings: [expected] });
    expect(shown(readConfig(file, { hostFacts: "errors" }))).toEqual({ errors: [expected], warnings: [] });
    void dir;
  });

  test("a pg_ctl that is not executable is named as such", () => {
    const { file, bin } = node();
    chmodSync(join(bin, "pg_ctl"), 0o644);
    const r = shown(readConfig(file, { hostFacts: "warnings" }));
    // root may execute nothing without an x bit either; access(X_OK) says so for root too.
    expect(r.warnings).toEqual([
      `${file}:7: db.bin=${bin}: ${bin}/pg_ctl is not executable; db.bin must name the directory of pg_ctl`,
    ]);
  });

  test("a bind.address that is not this host's: a warning for prop-check, an error for the agent", () => {
    const { file } = node({ "bind.address": "192.0.2.7:17730" });
    const expected = `${file}:9: bind.address=192.0.2.7:17730: 192.0.2.7 is not an address of this host (see "Network adapters" in efm prop-check)`;
    expect(shown(readConfig(file, { hostFacts: "warnings" }))).toEqual({ errors: [], warnings: [expected] });
    expect(shown(readConfig(file, { hostFacts: "errors" }))).toEqual({ errors: [expected], warnings: [] });
  });

  test("without hostFacts (status commands) none of this runs", () => {
    const { file } = node({ "db.password.encrypted": "hunter2", "bind.address": "192.0.2.7:17730" });
    expect(shown(readConfig(file, { checkFiles: false }))).toEqual({ errors: [], warnings: [] });
  });
});

describe("isLocalAddress", () => {
  const lo = { address: "127.0.0.1", netmask: "255.0.0.0", family: "IPv4", internal: true };
  const eth = { address: "10.0.1.8", netmask: "255.255.255.0", family: "IPv4", internal: false };
  const v6 = { address: "fe80::1%2", netmask: "ffff:ffff:ffff:ffff::", family: "IPv6", internal: false };
  test("loopback answers for its whole subnet; other interfaces only for their own address", () => {
    expect(isLocalAddress("127.0.20.11", [lo, eth])).toBe(true);
    expect(isLocalAddress("10.0.1.8", [lo, eth])).toBe(true);
    expect(isLocalAddress("10.0.1.9", [lo, eth])).toBe(false);
    expect(isLocalAddress("fe80::1", [lo, v6])).toBe(true);
    expect(isLocalAddress("fe80::2", [lo, v6])).toBe(false);
    expect(isLocalAddress("not-an-ip", [lo])).toBe(false);
  });
});

test("jgroups.max.tries=1 is refused: membership needs at least two tries", () => {
  const { file } = node();
  const r = parseConfig(`${readFileSync(file, "utf8")}jgroups.max.tries=1\n`, file);
  expect(r.errors.map(formatProblem)).toEqual([
    `${file}:12: jgroups.max.tries=1: expected a whole number from 2 to 1000`,
  ]);
});
