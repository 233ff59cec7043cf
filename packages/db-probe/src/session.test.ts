import pg from "pg";
import { describe, expect, it } from "vitest";
import { DbProbeError } from "./errors.ts";
import { DbSession, isConnectionLoss } from "./session.ts";

/** An error as node-postgres builds it from a server ErrorResponse. */
function serverError(code: string, message: string, severity = "ERROR"): pg.DatabaseError {
  const e = new pg.DatabaseError(message, message.length, "error");
  e.code = code;
  e.severity = severity;
  return e;
}

const errno = (code: string) => Object.assign(new Error(`read ${code}`), { code, errno: -104 });

describe("isConnectionLoss (what a session retries once on a fresh connection)", () => {
  it("is true when the connection broke under the statement", () => {
    expect(isConnectionLoss(new Error("Connection terminated unexpectedly"))).toBe(true);
    expect(isConnectionLoss(errno("ECONNRESET"))).toBe(true);
    expect(isConnectionLoss(errno("EPIPE"))).toBe(true);
    expect(
      isConnectionLoss(serverError("57P01", "terminating connection due to administrator command", "FATAL")),
    ).toBe(true);
    expect(isConnectionLoss(serverError("57P02", "terminating connection because of crash", "FATAL"))).toBe(
      true,
    );
    expect(isConnectionLoss(serverError("57P03", "the database system is shutting down", "FATAL"))).toBe(
      true,
    );
    expect(
      isConnectionLoss(new Error("Client has encountered a connection error and is not queryable")),
    ).toBe(true);
    expect(isConnectionLoss(new Error("Client was closed and is not queryable"))).toBe(true);
    expect(isConnectionLoss(new DbProbeError("CONNECTION_LOST", "lost"))).toBe(true);
  });

  it("is false for a statement the server refused, which would fail the same way again", () => {
    expect(isConnectionLoss(serverError("25006", "cannot execute INSERT in a read-only transaction"))).toBe(
      false,
    );
    expect(isConnectionLoss(serverError("42501", "permission denied for function pg_promote"))).toBe(false);
    expect(isConnectionLoss(serverError("42601", 'syntax error at or near "SELEC"'))).toBe(false);
    expect(isConnectionLoss(serverError("55000", "recovery is not in progress"))).toBe(false);
  });

  it("is false for a timeout (the time is used up) and for failures to connect", () => {
    expect(isConnectionLoss(new DbProbeError("TIMEOUT", "no answer within 100 ms"))).toBe(false);
    expect(isConnectionLoss(errno("ECONNREFUSED"))).toBe(false);
    expect(isConnectionLoss(serverError("28P01", "password authentication failed", "FATAL"))).toBe(false);
    expect(isConnectionLoss(new DbProbeError("QUERY_FAILED", "no answer to the role query"))).toBe(false);
    expect(isConnectionLoss(null)).toBe(false);
    expect(isConnectionLoss("text")).toBe(false);
  });
});

describe("DbSession", () => {
  const conn = { host: "127.0.37.1", port: 28199, user: "efm", password: "x", database: "efm" };

  it("refuses bad connection options when made", () => {
    expect(() => new DbSession({ ...conn, port: 0 })).toThrow(/port 0 is not 1..65535/);
  });

  it("rejects uses after close without opening anything", async () => {
    const s = new DbSession(conn);
    await s.close();
    await expect(s.run(1_000, async () => 1)).rejects.toMatchObject({
      code: "INVALID_OPTIONS",
      message: "database session to 127.0.37.1 is closed",
    });
  });
});
