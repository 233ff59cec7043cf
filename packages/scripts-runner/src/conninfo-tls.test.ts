import { describe, expect, it } from "vitest";
import {
  conninfoTlsFor,
  conninfoValue,
  parseConninfo,
  setConninfoHost,
  setConninfoTls,
  setConninfoValue,
} from "./conninfo.ts";
import { isScriptsRunnerError } from "./errors.ts";

describe("setConninfoValue", () => {
  it("appends a missing keyword and leaves the rest byte for byte", () => {
    const text = "host=10.0.0.1  port=5432 application_name='b 1'";
    expect(setConninfoValue(text, "sslmode", "require")).toBe(`${text} sslmode=require`);
    expect(setConninfoValue("", "sslmode", "require")).toBe("sslmode=require");
  });

  it("replaces every occurrence (libpq uses the last; none may contradict it)", () => {
    const out = setConninfoValue("sslmode=disable host=a sslmode = 'prefer'", "sslmode", "verify-full");
    expect(out).toBe("sslmode='verify-full' host=a sslmode = 'verify-full'");
    expect(conninfoValue(out, "sslmode")).toBe("verify-full");
  });

  it("quotes values that need it", () => {
    const out = setConninfoValue("host=a", "sslrootcert", "/etc/efm/my ca's.crt");
    expect(conninfoValue(out, "sslrootcert")).toBe("/etc/efm/my ca's.crt");
  });
});

describe("setConninfoTls (a standby replicates under the agents' TLS rules)", () => {
  it("writes sslmode and sslrootcert, keeping user, passfile and the rest", () => {
    const text =
      "host=127.0.16.11 port=15416 user=replicator passfile=/var/lib/efm.pgpass application_name=c";
    const out = setConninfoTls(setConninfoHost(text, "127.0.16.12"), {
      sslmode: "verify-full",
      sslrootcert: "/etc/efm/ca.crt",
    });
    expect(parseConninfo(out).map((e) => [e.keyword, e.value])).toEqual([
      ["host", "127.0.16.12"],
      ["port", "15416"],
      ["user", "replicator"],
      ["passfile", "/var/lib/efm.pgpass"],
      ["application_name", "c"],
      ["sslmode", "verify-full"],
      ["sslrootcert", "/etc/efm/ca.crt"],
    ]);
  });

  it("without a root certificate only sslmode changes; an old sslrootcert stays", () => {
    expect(setConninfoTls("host=a sslmode=prefer sslrootcert=/x.crt", { sslmode: "require" })).toBe(
      "host=a sslmode=require sslrootcert=/x.crt",
    );
  });

  it("refuses what libpq would not take", () => {
    for (const bad of [
      () => setConninfoTls("host=a", { sslmode: "verify_full" }),
      () => setConninfoTls("host=a", { sslmode: "require", sslrootcert: "ca.crt" }),
      () => setConninfoValue("host=a", "ssl mode", "x"),
    ]) {
      try {
        bad();
        expect.unreachable();
      } catch (err) {
        expect(isScriptsRunnerError(err) && err.code).toBe("CONNINFO_INVALID");
      }
    }
  });
});

describe("conninfoTlsFor (the agents' settings -> primary_conninfo keywords)", () => {
  it("carries the mode and a named root certificate", () => {
    expect(conninfoTlsFor({ mode: "verify-full", rootCert: "/etc/efm/ca.crt", cert: null })).toEqual({
      sslmode: "verify-full",
      sslrootcert: "/etc/efm/ca.crt",
    });
    expect(conninfoTlsFor({ mode: "require", rootCert: null })).toEqual({ sslmode: "require" });
  });

  it("leaves primary_conninfo alone with TLS off, jdbc.ssl's system CAs, or older forms", () => {
    expect(conninfoTlsFor({ mode: "disable" })).toBeNull();
    expect(conninfoTlsFor({ mode: "verify-full", rootCert: null, systemCa: true })).toBeNull();
    expect(conninfoTlsFor(true)).toBeNull();
    expect(conninfoTlsFor({ ca: "pem" })).toBeNull();
    expect(conninfoTlsFor(undefined)).toBeNull();
  });
});
