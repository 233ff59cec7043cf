import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { classify } from "./classify.ts";
import { connectionAttempts } from "./connection.ts";
import { DbProbeError } from "./errors.ts";
import { attempts, type DbTls, explainTlsFailure, mayFallBack, tlsFailureKind, tlsOptions } from "./tls.ts";

let dir: string;
let ca: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "efm-dbprobe-tls-"));
  ca = join(dir, "ca.crt");
  writeFileSync(ca, "-----BEGIN CERTIFICATE-----\nstand-in\n-----END CERTIFICATE-----\n");
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const H = "10.0.0.5";

describe("sslmode -> node-postgres ssl options", () => {
  it("disable is plain TCP; allow tries plain then TLS; prefer TLS then plain", () => {
    expect(attempts({ mode: "disable" }, H)).toEqual([false]);
    expect(attempts({ mode: "allow" }, H)).toEqual([false, { rejectUnauthorized: false }]);
    expect(attempts({ mode: "prefer" }, H)).toEqual([{ rejectUnauthorized: false }, false]);
    expect(attempts({ mode: "require" }, H)).toEqual([{ rejectUnauthorized: false }]);
  });

  it("verify-ca checks the chain against jdbc.sslrootcert but not the host name", () => {
    const o = tlsOptions({ mode: "verify-ca", rootCert: ca }, H);
    expect(o.rejectUnauthorized).toBe(true);
    expect(String(o.ca)).toContain("stand-in");
    expect(o.checkServerIdentity?.(H, {} as never)).toBeUndefined();
  });

  it("verify-full checks chain and host name (node's own check, IP SANs included)", () => {
    const o = tlsOptions({ mode: "verify-full", rootCert: ca }, H);
    expect(o.rejectUnauthorized).toBe(true);
    expect(String(o.ca)).toContain("stand-in");
    expect(o.checkServerIdentity).toBeUndefined();
  });

  it("a root certificate makes require check the chain too, as libpq does", () => {
    const o = tlsOptions({ mode: "require", rootCert: ca }, H);
    expect(o.rejectUnauthorized).toBe(true);
    expect(o.checkServerIdentity?.(H, {} as never)).toBeUndefined();
  });

  it("jdbc.ssl=true alone: verify-full against the system CAs", () => {
    const o = tlsOptions({ mode: "verify-full", rootCert: null, systemCa: true }, H);
    expect(o).toEqual({ rejectUnauthorized: true });
  });

  it("verify-ca/verify-full with no root certificate say which property to set", () => {
    for (const mode of ["verify-ca", "verify-full"] as const) {
      expect(() => tlsOptions({ mode, rootCert: null }, H)).toThrow(
        new RegExp(`jdbc.sslmode=${mode} .* set jdbc.sslrootcert to the CA certificate file`),
      );
    }
    const missing = join(dir, "nope.crt");
    try {
      tlsOptions({ mode: "verify-ca", rootCert: missing }, H);
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(DbProbeError);
      expect((err as DbProbeError).code).toBe("SSL_FAILED");
      expect((err as Error).message).toContain(`cannot read jdbc.sslrootcert ${missing}`);
    }
  });

  it("a client certificate and key are offered when set", () => {
    const o = tlsOptions({ mode: "require", cert: ca, key: ca }, H);
    expect(String(o.cert)).toContain("stand-in");
    expect(String(o.key)).toContain("stand-in");
  });

  it("connection options keep the older forms: true and raw node options", () => {
    const base = { host: H, port: 5432, user: "u", password: "p", database: "d" };
    expect(connectionAttempts({ ...base, ssl: true })).toEqual([{}]);
    expect(connectionAttempts({ ...base, ssl: { ca: "x" } })).toEqual([{ ca: "x" }]);
    expect(connectionAttempts({ ...base })).toEqual([false]);
    expect(connectionAttempts({ ...base, ssl: { mode: "allow" } })).toHaveLength(2);
  });
});

describe("fall back (allow/prefer) and failure messages", () => {
  const tlsErr = (code: string, message = code) => Object.assign(new Error(message), { code });
  const serverErr = (code: string) =>
    Object.assign(new Error("no pg_hba.conf entry"), { code, severity: "FATAL" });

  it("falls back on a login the server refuses or a failed TLS set-up, never on a dead server", () => {
    expect(mayFallBack(serverErr("28000"))).toBe(true);
    expect(mayFallBack(serverErr("28P01"))).toBe(false);
    expect(mayFallBack(new Error("The server does not support SSL connections"))).toBe(true);
    expect(mayFallBack(tlsErr("DEPTH_ZERO_SELF_SIGNED_CERT"))).toBe(true);
    expect(mayFallBack(tlsErr("ECONNREFUSED"))).toBe(false);
  });

  it("names the failed check and the property to change", () => {
    const tls: DbTls = { mode: "verify-full", rootCert: "/etc/efm/ca.crt" };
    const say = (err: unknown, t: DbTls = tls) => explainTlsFailure(err, t, H)?.message ?? "";
    expect(say(tlsErr("DEPTH_ZERO_SELF_SIGNED_CERT"))).toBe(
      `TLS to ${H} failed: the server's certificate is self-signed and not in jdbc.sslrootcert (/etc/efm/ca.crt): set jdbc.sslrootcert to that certificate (or to the CA that should sign it), or set jdbc.sslmode=require to encrypt without checking the certificate`,
    );
    expect(say(tlsErr("UNABLE_TO_VERIFY_LEAF_SIGNATURE"))).toContain(
      "signed by an unknown CA, one not in jdbc.sslrootcert (/etc/efm/ca.crt): set jdbc.sslrootcert",
    );
    expect(say(tlsErr("SELF_SIGNED_CERT_IN_CHAIN"))).toContain("unknown CA");
    expect(
      say(tlsErr("ERR_TLS_CERT_ALTNAME_INVALID", "IP: 10.0.0.5 is not in the cert's list: 10.0.0.9")),
    ).toContain(
      "host name mismatch: the server's certificate does not name 10.0.0.5 (IP: 10.0.0.5 is not in the cert's list: 10.0.0.9): reissue it with 10.0.0.5 in its subject alternative names, or set jdbc.sslmode=verify-ca",
    );
    expect(say(new Error("The server does not support SSL connections"))).toContain(
      "the server does not support SSL (ssl = off in its postgresql.conf): turn ssl on there, or set jdbc.sslmode to a mode that allows plain connections",
    );
    expect(
      say(new Error("The server does not support SSL connections"), { mode: "verify-full", systemCa: true }),
    ).toContain("or set jdbc.ssl (or jdbc.sslmode) to a mode");
    expect(say(tlsErr("DEPTH_ZERO_SELF_SIGNED_CERT"), { mode: "verify-full", systemCa: true })).toContain(
      "not in the system's trusted CAs",
    );
    expect(explainTlsFailure(serverErr("28000"), tls, H)).toBeNull();
    expect(tlsFailureKind(tlsErr("ECONNRESET"))).toBeNull();
  });

  it("classify keeps the explanation and the code", () => {
    const e = explainTlsFailure(
      tlsErr("DEPTH_ZERO_SELF_SIGNED_CERT"),
      { mode: "verify-ca", rootCert: "/x" },
      H,
    );
    const f = classify(e, H);
    expect(f).toMatchObject({ code: "SSL_FAILED", detail: "DEPTH_ZERO_SELF_SIGNED_CERT" });
    expect(f.message).toContain("self-signed");
  });
});
