/**
 * libpq's sslmode rules and the TLS failure messages against a real PostgreSQL 15 with
 * `ssl = on` and every plain TCP login rejected in pg_hba.conf.
 */
import { rmSync } from "node:fs";
import { type Cluster, createCluster, makeCa, makeClientCert } from "@efm/lab";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type DbConnectionOptions, type DbTls, PgChecker, readFacts, remoteCheck } from "./index.ts";

// Reserved for this file: 127.0.16.21, port 15416, /tmp/efm-lab-it-dbprobe-tls, /tmp/efm-it-dbprobe-tls-other.
const runDir = "/tmp/efm-lab-it-dbprobe-tls";
const otherDir = "/tmp/efm-it-dbprobe-tls-other";
const A = "127.0.16.21";
let lab: Cluster;
let labCa: string;
let otherCa: string;
let client: { cert: string; key: string };

beforeAll(async () => {
  lab = await createCluster({
    name: "it-dbprobe-tls",
    runDir,
    port: 15416,
    addressBase: "127.0.16",
    firstOctet: 21,
    hosts: [{ name: "a", role: "master" }],
    tls: { ca: true },
    // Certificate authentication for one role: jdbc.sslcert/jdbc.sslkey must be offered.
    hbaLines: ["hostssl all efmcert 0.0.0.0/0 cert"],
  });
  labCa = lab.tls?.caCert ?? "";
  rmSync(otherDir, { recursive: true, force: true });
  otherCa = makeCa(otherDir, "other-ca").cert;
  client = makeClientCert(otherDir, "efmcert", { cert: labCa, key: labCa.replace(/\.crt$/, ".key") });
  await lab.psql("a", "CREATE ROLE efmcert LOGIN; GRANT pg_monitor TO efmcert");
  await lab.psql("a", `ALTER SYSTEM SET ssl_ca_file = '${labCa}'`);
  await lab.psql("a", "SELECT pg_reload_conf()");
});

afterAll(async () => {
  await lab?.down();
  rmSync(otherDir, { recursive: true, force: true });
});

const conn = (ssl: DbTls): DbConnectionOptions => ({ ...lab.efmConnection("a"), ssl });

/** Check once, keeping the connection, and ask the server whether that backend uses TLS. */
async function overTls(ssl: DbTls): Promise<boolean> {
  const checker = new PgChecker(conn(ssl), { reuseCount: 1 });
  try {
    const r = await checker.check(10_000);
    if (!r.ok) throw new Error(r.failure.message);
    const rows = await lab.psql("a", "SELECT ssl FROM pg_stat_ssl WHERE pid = $1", [r.backendPid]);
    return rows[0]?.ssl === true;
  } finally {
    await checker.close();
  }
}

async function failure(ssl: DbTls): Promise<{ code: string; message: string }> {
  const r = await remoteCheck(conn(ssl), 10_000);
  if (r.ok) throw new Error(`expected ${ssl.mode} to fail`);
  return r.failure;
}

describe("sslmode against a server that rejects plain logins", () => {
  it("verify-full and verify-ca with the private CA connect over TLS", async () => {
    expect(await overTls({ mode: "verify-full", rootCert: labCa })).toBe(true);
    expect(await overTls({ mode: "verify-ca", rootCert: labCa })).toBe(true);
    expect(await overTls({ mode: "require" })).toBe(true);
  });

  it("allow falls back to TLS when the plain login is refused; prefer starts with TLS", async () => {
    expect(await overTls({ mode: "allow" })).toBe(true);
    expect(await overTls({ mode: "prefer" })).toBe(true);
    const plain = await failure({ mode: "disable" });
    expect(plain.code).toBe("INVALID_AUTHORIZATION");
  });

  it("jdbc.sslcert/jdbc.sslkey log in where pg_hba.conf asks for a client certificate", async () => {
    const certUser = (ssl: DbTls): DbConnectionOptions => ({ ...conn(ssl), user: "efmcert", password: "" });
    const r = await remoteCheck(certUser({ mode: "verify-full", rootCert: labCa, ...client }), 10_000);
    expect(r.ok, r.ok ? "" : r.failure.message).toBe(true);
    const without = await remoteCheck(certUser({ mode: "verify-full", rootCert: labCa }), 10_000);
    expect(without).toMatchObject({ ok: false, failure: { code: "INVALID_AUTHORIZATION" } });
  });

  it("readFacts uses the same settings", async () => {
    const f = await readFacts(conn({ mode: "verify-full", rootCert: labCa }), 10_000);
    expect(f.inRecovery).toBe(false);
  });
});

describe("failure messages say which check failed and what to change", () => {
  it("unknown CA", async () => {
    const f = await failure({ mode: "verify-ca", rootCert: otherCa });
    expect(f.code).toBe("SSL_FAILED");
    expect(f.message).toBe(
      `TLS to ${A} failed: the server's certificate was signed by an unknown CA, one not in jdbc.sslrootcert (${otherCa}): set jdbc.sslrootcert to the certificate of the CA that signed it`,
    );
  });

  it("host name mismatch under verify-full; verify-ca does not check the name", async () => {
    await lab.reissueCert("a", { ips: ["127.0.16.99"] });
    try {
      const f = await failure({ mode: "verify-full", rootCert: labCa });
      expect(f.code).toBe("SSL_FAILED");
      expect(f.message).toContain(
        `TLS to ${A} failed: host name mismatch: the server's certificate does not name ${A}`,
      );
      expect(f.message).toContain("127.0.16.99");
      expect(f.message).toContain("or set jdbc.sslmode=verify-ca to check only that a trusted CA signed it");
      expect(await overTls({ mode: "verify-ca", rootCert: labCa })).toBe(true);
    } finally {
      await lab.reissueCert("a");
    }
  });

  it("self-signed certificate; require encrypts without checking it", async () => {
    await lab.reissueCert("a", { selfSigned: true });
    try {
      const f = await failure({ mode: "verify-ca", rootCert: labCa });
      expect(f.code).toBe("SSL_FAILED");
      expect(f.message).toBe(
        `TLS to ${A} failed: the server's certificate is self-signed and not in jdbc.sslrootcert (${labCa}): set jdbc.sslrootcert to that certificate (or to the CA that should sign it), or set jdbc.sslmode=require to encrypt without checking the certificate`,
      );
      expect(await overTls({ mode: "require" })).toBe(true);
      // libpq's rule: with a root certificate, require checks the chain as well.
      expect((await failure({ mode: "require", rootCert: labCa })).message).toContain("self-signed");
    } finally {
      await lab.reissueCert("a");
    }
  });

  it("server does not support SSL", async () => {
    await lab.psql("a", "ALTER SYSTEM SET ssl = off");
    await lab.psql("a", "SELECT pg_reload_conf()");
    try {
      const f = await failure({ mode: "require" });
      expect(f.code).toBe("SSL_FAILED");
      expect(f.message).toBe(
        `TLS to ${A} failed: the server does not support SSL (ssl = off in its postgresql.conf): turn ssl on there, or set jdbc.sslmode to a mode that allows plain connections (prefer or disable)`,
      );
      // prefer falls back to plain, which this server's pg_hba.conf refuses.
      expect((await failure({ mode: "prefer" })).message).toContain(
        "refused the plain connection jdbc.sslmode=prefer falls back to",
      );
    } finally {
      await lab.psql("a", "ALTER SYSTEM RESET ssl");
      await lab.psql("a", "SELECT pg_reload_conf()");
    }
    expect(await overTls({ mode: "require" })).toBe(true);
  });

  it("verify-full without any root certificate names jdbc.sslrootcert", async () => {
    const f = await failure({ mode: "verify-full", rootCert: null });
    expect(f.code).toBe("SSL_FAILED");
    expect(f.message).toContain("set jdbc.sslrootcert to the CA certificate file");
  });
});
