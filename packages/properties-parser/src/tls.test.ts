import { execFileSync } from "node:child_process";
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { formatProblem } from "./errors.ts";
import { parseConfig, readConfig } from "./parse.ts";
import type { EfmConfig } from "./schema.ts";
import { tlsSettings } from "./tls.ts";

const VALID = `db.user=efm
db.password.encrypted=v1:00ff
db.port=5444
db.database=edb
db.service.owner=postgres
db.recovery.conf.dir=/var/lib/pgsql/data
db.bin=/usr/lib/postgresql/15/bin
admin.port=7809
bind.address=10.0.1.8:7800
is.witness=false
user.email=dba@example.com
`;

let dir: string;
let home: string;
let ca: string;
let cert: string;
let key: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "efm-tls-props-"));
  home = join(dir, "home");
  mkdirSync(home);
  key = join(dir, "client.key");
  cert = join(dir, "client.crt");
  ca = join(dir, "ca.crt");
  // A real key and certificate: the checks parse them.
  execFileSync(
    "openssl",
    [
      "req",
      "-x509",
      "-newkey",
      "rsa:2048",
      "-nodes",
      "-keyout",
      key,
      "-out",
      cert,
      "-days",
      "1",
      "-subj",
      "/CN=efm",
    ],
    { stdio: "ignore" },
  );
  execFileSync("cp", [cert, ca]);
  chmodSync(key, 0o600);
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

function read(extra: string) {
  const file = join(dir, "acctg.properties");
  writeFileSync(file, VALID + extra);
  return readConfig(file, { home });
}

function messages(r: { errors: Parameters<typeof formatProblem>[0][] }): string[] {
  return r.errors.map(formatProblem);
}

describe("jdbc.sslmode and friends", () => {
  test("libpq's six modes parse; anything else names the choices", () => {
    for (const m of ["disable", "allow", "prefer", "require", "verify-ca", "verify-full"]) {
      const r = parseConfig(`${VALID}jdbc.sslmode=${m}\n`, "x.properties");
      expect(r.errors).toEqual([]);
      expect(r.config?.jdbcSslmode).toBe(m);
    }
    const bad = parseConfig(`${VALID}jdbc.sslmode=verify_full\n`, "x.properties");
    expect(messages(bad)).toEqual([
      "x.properties:12: jdbc.sslmode=verify_full: expected disable, allow, prefer, require, verify-ca, verify-full",
    ]);
    const rel = parseConfig(`${VALID}jdbc.sslrootcert=certs/ca.crt\n`, "x.properties");
    expect(rel.errors[0]?.property).toBe("jdbc.sslrootcert");
  });

  test("jdbc.ssl=true alone keeps its strict meaning: verify-full, system CAs when no root.crt", () => {
    const r = parseConfig(`${VALID}jdbc.ssl=true\n`, "x.properties");
    expect(tlsSettings(r.config as EfmConfig, home)).toEqual({
      mode: "verify-full",
      rootCert: null,
      cert: null,
      key: null,
      systemCa: true,
    });
    const off = parseConfig(VALID, "x.properties");
    expect(tlsSettings(off.config as EfmConfig, home).mode).toBe("disable");
  });

  test("jdbc.ssl=true with a mode that allows plain connections is an error", () => {
    const r = parseConfig(`${VALID}jdbc.ssl=true\njdbc.sslmode=prefer\n`, "x.properties");
    expect(messages(r)).toEqual([
      "x.properties:13: jdbc.sslmode=prefer: jdbc.ssl=true requires TLS on every connection, but this mode allows plain connections; set jdbc.ssl=false or choose require, verify-ca or verify-full",
    ]);
  });

  test("certificate files with TLS off are ignored with a warning", () => {
    const r = parseConfig(`${VALID}jdbc.sslrootcert=/etc/efm/ca.crt\n`, "x.properties");
    expect(r.errors).toEqual([]);
    expect(r.warnings.map(formatProblem)).toEqual([
      "x.properties:12: jdbc.sslrootcert=/etc/efm/ca.crt: ignored: TLS is off (set jdbc.sslmode to use it)",
    ]);
  });

  test("files default to ~/.postgresql/ as in libpq, only when they exist", () => {
    const r = parseConfig(`${VALID}jdbc.sslmode=require\n`, "x.properties");
    const c = r.config as EfmConfig;
    expect(tlsSettings(c, home)).toMatchObject({ mode: "require", rootCert: null, cert: null, key: null });
    const pgdir = join(home, ".postgresql");
    mkdirSync(pgdir);
    try {
      execFileSync("cp", [ca, join(pgdir, "root.crt")]);
      execFileSync("cp", [cert, join(pgdir, "postgresql.crt")]);
      expect(tlsSettings(c, home)).toEqual({
        mode: "require",
        rootCert: join(pgdir, "root.crt"),
        cert: join(pgdir, "postgresql.crt"),
        key: join(pgdir, "postgresql.key"),
        systemCa: false,
      });
      // The default key is missing: named with where it was looked for.
      const missing = read("jdbc.sslmode=require\n");
      expect(messages(missing)).toEqual([
        `${join(dir, "acctg.properties")}: jdbc.sslkey=${join(pgdir, "postgresql.key")}: ${join(pgdir, "postgresql.key")} (libpq's default for jdbc.sslkey when it is not set) does not exist`,
      ]);
    } finally {
      rmSync(pgdir, { recursive: true, force: true });
    }
  });
});

describe("file checks (prop-check and the agent's start)", () => {
  test("good files pass", () => {
    const r = read(
      `jdbc.sslmode=verify-full\njdbc.sslrootcert=${ca}\njdbc.sslcert=${cert}\njdbc.sslkey=${key}\n`,
    );
    expect(r.errors).toEqual([]);
    expect(r.config?.jdbcSslrootcert).toBe(ca);
  });

  test("verify-ca without any root certificate says which property to set", () => {
    const r = read("jdbc.sslmode=verify-ca\n");
    expect(r.config).toBeNull();
    expect(r.errors).toHaveLength(1);
    expect(r.errors[0]).toMatchObject({ property: "jdbc.sslrootcert", line: 12 });
    expect(r.errors[0]?.message).toContain("jdbc.sslrootcert is not set and");
    expect(r.errors[0]?.message).toContain(join(home, ".postgresql", "root.crt"));
  });

  test("a missing, a non-certificate and a directory are each named", () => {
    const junk = join(dir, "junk.crt");
    writeFileSync(junk, "not a certificate\n");
    expect(messages(read(`jdbc.sslmode=require\njdbc.sslrootcert=${join(dir, "nope.crt")}\n`))).toEqual([
      `${join(dir, "acctg.properties")}:13: jdbc.sslrootcert=${join(dir, "nope.crt")}: ${join(dir, "nope.crt")} does not exist`,
    ]);
    expect(messages(read(`jdbc.sslmode=require\njdbc.sslrootcert=${junk}\n`))[0]).toContain(
      `${junk} holds no PEM certificate`,
    );
    expect(messages(read(`jdbc.sslmode=require\njdbc.sslcert=${dir}\njdbc.sslkey=${key}\n`))[0]).toContain(
      `${dir} is not a regular file`,
    );
  });

  test("a private key open to group or others is refused with the chmod to run", () => {
    const loose = join(dir, "loose.key");
    execFileSync("cp", [key, loose]);
    chmodSync(loose, 0o644);
    const r = read(`jdbc.sslmode=require\njdbc.sslcert=${cert}\njdbc.sslkey=${loose}\n`);
    // o=r is refused whoever owns the key (libpq allows g=r only for a key root owns).
    const expected = `${loose} has mode 0644; a private key must not be accessible by group or others (chmod 0600 ${loose})`;
    expect(r.errors.map((e) => e.message)).toEqual([expected]);
    expect(r.errors[0]).toMatchObject({ property: "jdbc.sslkey", line: 14 });
  });

  test("checkFiles: false (status commands run by any user) skips the file checks", () => {
    const file = join(dir, "acctg.properties");
    writeFileSync(file, `${VALID}jdbc.sslmode=verify-ca\njdbc.sslrootcert=/nonexistent/ca.crt\n`);
    expect(readConfig(file, { home, checkFiles: false }).errors).toEqual([]);
    expect(readConfig(file, { home }).errors).toHaveLength(1);
  });

  test("parseConfig alone never touches the file system", () => {
    const r = parseConfig(`${VALID}jdbc.sslmode=verify-full\njdbc.sslrootcert=/nonexistent/ca.crt\n`, "x");
    expect(r.errors).toEqual([]);
  });
});
