import { describe, expect, it } from "vitest";
import { PgChecker } from "./checker.ts";
import { classify, describeFailure, isDefinite } from "./classify.ts";
import { DbProbeError, FAILURE_CODES } from "./errors.ts";

// Shapes as node-postgres and node:net produce them; the integration test proves them on a real server.
const serverError = (code: string, message: string) =>
  Object.assign(new Error(message), { code, severity: "FATAL" });
const socketError = (code: string) => Object.assign(new Error(`connect ${code} 10.0.0.1:5444`), { code });

describe("classify", () => {
  it("maps server SQLSTATEs to the guide's failure kinds", () => {
    expect(classify(serverError("53300", "sorry, too many clients already"), "h").code).toBe(
      "MAX_CONNECTIONS",
    );
    expect(classify(serverError("28P01", 'password authentication failed for user "efm"'), "h").code).toBe(
      "INVALID_PASSWORD",
    );
    expect(classify(serverError("28000", "no pg_hba.conf entry"), "h").code).toBe("INVALID_AUTHORIZATION");
    expect(classify(serverError("57P03", "the database system is starting up"), "h").code).toBe(
      "NOT_ACCEPTING",
    );
    expect(
      classify(serverError("57P01", "terminating connection due to administrator command"), "h").code,
    ).toBe("NOT_ACCEPTING");
    expect(classify(serverError("3D000", 'database "x" does not exist'), "h").code).toBe("DATABASE_MISSING");
    expect(classify(serverError("42601", "syntax error"), "h")).toMatchObject({
      code: "QUERY_FAILED",
      detail: "42601",
    });
  });

  it("maps socket and TLS errors", () => {
    expect(classify(socketError("ECONNREFUSED"), "10.0.0.1")).toMatchObject({
      code: "REFUSED",
      address: "10.0.0.1",
      detail: "ECONNREFUSED",
    });
    expect(classify(socketError("EHOSTUNREACH"), "h").code).toBe("UNREACHABLE");
    expect(classify(socketError("ENOTFOUND"), "h").code).toBe("UNREACHABLE");
    expect(classify(socketError("ECONNRESET"), "h").code).toBe("CONNECTION_LOST");
    expect(classify(socketError("DEPTH_ZERO_SELF_SIGNED_CERT"), "h").code).toBe("SSL_FAILED");
    expect(classify(new Error("The server does not support SSL connections"), "h").code).toBe("SSL_FAILED");
    expect(classify(new Error("Connection terminated unexpectedly"), "h").code).toBe("CONNECTION_LOST");
    expect(classify(new DbProbeError("TIMEOUT", "no answer"), "h").code).toBe("TIMEOUT");
  });

  it("never throws, whatever it is given", () => {
    for (const weird of [undefined, null, 42, "text", {}, { code: 7 }, new Error()]) {
      expect(classify(weird, "h").code).toBe("UNKNOWN");
    }
  });

  it("treats only refused and not-accepting as definite", () => {
    expect(FAILURE_CODES.filter(isDefinite)).toEqual(["REFUSED", "NOT_ACCEPTING"]);
  });

  it("words the SEVERE notifications as the guide does", () => {
    expect(describeFailure("MAX_CONNECTIONS", "efm")).toBe("The maximum connections limit has been reached.");
    expect(describeFailure("INVALID_PASSWORD", "efm")).toBe("Invalid password for db.user=efm.");
    expect(describeFailure("INVALID_AUTHORIZATION", "efm")).toBe("Invalid authorization specification.");
    for (const c of FAILURE_CODES) expect(describeFailure(c, "u").length).toBeGreaterThan(0);
  });
});

describe("PgChecker options", () => {
  const ok = { host: "127.0.0.1", port: 5444, user: "efm", password: "p", database: "efm" };
  it("rejects bad connection settings and reuse counts with INVALID_OPTIONS", () => {
    expect(() => new PgChecker({ ...ok, port: 70000 })).toThrow(
      expect.objectContaining({ code: "INVALID_OPTIONS" }),
    );
    expect(() => new PgChecker({ ...ok, host: "" })).toThrow(/host/);
    expect(() => new PgChecker(ok, { reuseCount: -1 })).toThrow(/db.reuse.connection.count/);
    expect(() => new PgChecker(ok, { reuseCount: 1.5 })).toThrow(DbProbeError);
  });
});
