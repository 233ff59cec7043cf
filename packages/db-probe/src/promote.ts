import type pg from "pg";
import { classify } from "./classify.ts";
import {
  checkConnectionOptions,
  type DbConnectionOptions,
  destroyClient,
  openClient,
  withDeadline,
} from "./connection.ts";
import { DbProbeError } from "./errors.ts";

/** What promoteBySql did. */
export type SqlPromoteResult =
  /** pg_promote() returned true and pg_is_in_recovery() is false: the database takes writes. */
  | { outcome: "promoted"; durationMs: number }
  /** The database was not in recovery: nothing to do. */
  | { outcome: "alreadyMaster"; durationMs: number }
  /**
   * SQL cannot promote here (PostgreSQL before 12, or db.user may not execute pg_promote()):
   * nothing was changed; the caller takes the privileged path (pg_ctl promote).
   */
  | { outcome: "notPermitted"; reason: string };

/** The signature pg_promote has had since PostgreSQL 12. */
const PG_PROMOTE = "pg_promote(boolean, integer)";

/**
 * Promote the standby at `conn` over SQL: `SELECT pg_promote(wait => true, wait_seconds => N)`,
 * which returns once the server has left recovery (the server waits, we do not poll), then
 * `pg_is_in_recovery()` on the same connection must say false. Allowed for a superuser and for
 * a role granted EXECUTE on pg_promote (PostgreSQL 12 and later); anywhere else it changes
 * nothing and answers `notPermitted`. Rejects with a DbProbeError when the database cannot be
 * reached, or when it is still in recovery after `waitSeconds` (TIMEOUT; the promotion was
 * requested and may still complete, as with `pg_ctl promote -w -t N`).
 */
export async function promoteBySql(
  conn: DbConnectionOptions,
  waitSeconds: number,
): Promise<SqlPromoteResult> {
  checkConnectionOptions(conn);
  if (!Number.isInteger(waitSeconds) || waitSeconds < 1) {
    throw new DbProbeError(
      "INVALID_OPTIONS",
      `pg_promote wait_seconds ${String(waitSeconds)}: expected a whole number >= 1`,
    );
  }
  const started = performance.now();
  // Connecting and the few catalogue reads get the same bound again as the promotion itself.
  const deadline = started + 2 * waitSeconds * 1000;
  let client: pg.Client | null = null;
  try {
    client = await openClient(conn, deadline - performance.now());
    const c = client;
    const q = <T extends pg.QueryResultRow>(text: string, values?: unknown[]) =>
      withDeadline(c.query<T>(text, values), deadline - performance.now(), conn.host, () => destroyClient(c));
    const v = await q<{ num: string; rec: boolean }>(
      "SELECT current_setting('server_version_num') AS num, pg_is_in_recovery() AS rec",
    );
    const row = v.rows[0];
    if (row === undefined)
      throw new DbProbeError("QUERY_FAILED", `database at ${conn.host}: no answer to the role query`);
    if (row.rec !== true) return { outcome: "alreadyMaster", durationMs: performance.now() - started };
    if (Number(row.num) < 120000) {
      return { outcome: "notPermitted", reason: `PostgreSQL ${row.num} has no pg_promote() (12 and later)` };
    }
    const may = await q<{ may: boolean }>("SELECT has_function_privilege($1, 'EXECUTE') AS may", [
      PG_PROMOTE,
    ]);
    if (may.rows[0]?.may !== true) {
      return {
        outcome: "notPermitted",
        reason: `db.user=${conn.user} may not execute pg_promote() (a superuser, or GRANT EXECUTE ON FUNCTION ${PG_PROMOTE} TO ${conn.user})`,
      };
    }
    const r = await q<{ ok: boolean }>("SELECT pg_promote(wait => true, wait_seconds => $1) AS ok", [
      waitSeconds,
    ]);
    if (r.rows[0]?.ok !== true) {
      throw new DbProbeError(
        "TIMEOUT",
        `database at ${conn.host}: pg_promote() requested the promotion but the server was still in recovery after ${waitSeconds} s`,
        { address: conn.host },
      );
    }
    const after = await q<{ rec: boolean }>("SELECT pg_is_in_recovery() AS rec");
    if (after.rows[0]?.rec !== false) {
      throw new DbProbeError(
        "QUERY_FAILED",
        `database at ${conn.host}: pg_promote() returned true but pg_is_in_recovery() is not false`,
        { address: conn.host },
      );
    }
    return { outcome: "promoted", durationMs: performance.now() - started };
  } catch (err) {
    if (err instanceof DbProbeError) throw err;
    const f = classify(err, conn.host);
    throw new DbProbeError(f.code, `database at ${conn.host}: pg_promote: ${f.message}`, {
      address: conn.host,
      detail: f.detail,
      cause: err,
    });
  } finally {
    if (client !== null) {
      const c = client;
      await withDeadline(c.end(), 1_000, conn.host, () => destroyClient(c)).catch(() => {});
    }
  }
}
