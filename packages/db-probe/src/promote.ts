import { classifiedError } from "./classify.ts";
import type { SessionQuery } from "./connection.ts";
import { DbProbeError } from "./errors.ts";
import { type DbTarget, runOn, targetOf } from "./session.ts";

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

/**
 * Between two looks at pg_is_in_recovery() while a promotion completes: each is one statement on
 * the same backend (well under a millisecond when idle), and a look no more often than this
 * leaves the CPU to the server's startup process, which does the promoting.
 */
const PROMOTE_POLL_MS = 10;

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** The signature pg_promote has had since PostgreSQL 12. */
const PG_PROMOTE = "pg_promote(boolean, integer)";

/** Whether the database may be promoted over SQL, from one round trip. */
export interface SqlPromotability {
  /** pg_is_in_recovery(): only a standby can be promoted. */
  inRecovery: boolean;
  /** server_version_num. */
  serverVersionNum: number;
  /**
   * null when `SELECT pg_promote(...)` would promote it (PostgreSQL 12 or later, and db.user may
   * execute pg_promote); else why not, and the privileged path (pg_ctl promote) is the way.
   */
  notPermitted: string | null;
}

async function promotabilityOver(q: SessionQuery, host: string, user: string): Promise<SqlPromotability> {
  // to_regprocedure is null before PostgreSQL 12 (no pg_promote), so the privilege test cannot
  // fail on a missing function and the whole answer is one statement.
  const r = await q<{ num: number; rec: boolean; may: boolean }>(
    `SELECT current_setting('server_version_num')::int AS num, pg_is_in_recovery() AS rec,
            coalesce(has_function_privilege(to_regprocedure($1)::oid, 'EXECUTE'), false) AS may`,
    [PG_PROMOTE],
  );
  const row = r.rows[0];
  if (row === undefined) {
    throw new DbProbeError("QUERY_FAILED", `database at ${host}: no answer to the role query`, {
      address: host,
    });
  }
  const num = Number(row.num);
  const notPermitted =
    num < 120000
      ? `PostgreSQL ${num} has no pg_promote() (12 and later)`
      : row.may !== true
        ? `db.user=${user} may not execute pg_promote() (a superuser, or GRANT EXECUTE ON FUNCTION ${PG_PROMOTE} TO ${user})`
        : null;
  return { inRecovery: row.rec === true, serverVersionNum: num, notPermitted };
}

/**
 * Whether the database at `target` is a standby that `promoteBySql` would promote, without
 * changing anything: one statement within timeoutMs. Rejects with a DbProbeError when the
 * database cannot be reached.
 */
export async function sqlPromotability(target: DbTarget, timeoutMs: number): Promise<SqlPromotability> {
  const { host, user } = targetOf(target);
  try {
    return await runOn(target, timeoutMs, (q) => promotabilityOver(q, host, user));
  } catch (err) {
    throw classifiedError(err, host);
  }
}

/**
 * Promote the standby at `target` (a fresh connection, or a kept DbSession) over SQL:
 * `SELECT pg_promote(wait => false)` signals the server, then `pg_is_in_recovery()` on the same
 * connection, asked every 10 ms, must turn false within `waitSeconds` (what pg_promote's own wait
 * looks at, every 100 ms). Allowed for a superuser and for a role granted EXECUTE on
 * pg_promote (PostgreSQL 12 and later); anywhere else it changes nothing and answers
 * `notPermitted`. Rejects with a DbProbeError when the database cannot be reached, or when it is
 * still in recovery after `waitSeconds` (TIMEOUT; the promotion was requested and may still
 * complete, as with `pg_ctl promote -w -t N`).
 */
export async function promoteBySql(target: DbTarget, waitSeconds: number): Promise<SqlPromoteResult> {
  const { host, user } = targetOf(target);
  if (!Number.isInteger(waitSeconds) || waitSeconds < 1) {
    throw new DbProbeError(
      "INVALID_OPTIONS",
      `pg_promote wait_seconds ${String(waitSeconds)}: expected a whole number >= 1`,
    );
  }
  const started = performance.now();
  try {
    // Connecting and the catalogue read get the same bound again as the promotion itself.
    return await runOn(target, 2 * waitSeconds * 1000, async (q): Promise<SqlPromoteResult> => {
      const p = await promotabilityOver(q, host, user);
      if (!p.inRecovery) return { outcome: "alreadyMaster", durationMs: performance.now() - started };
      if (p.notPermitted !== null) return { outcome: "notPermitted", reason: p.notPermitted };
      // pg_promote(wait => true) sleeps 100 ms between its looks at the server's state, so it
      // answered up to 100 ms after the server took writes; the server is asked directly instead,
      // the same question (pg_is_in_recovery() reads what pg_promote's own wait reads).
      const r = await q<{ ok: boolean }>("SELECT pg_promote(wait => false) AS ok");
      if (r.rows[0]?.ok !== true) {
        throw new DbProbeError(
          "QUERY_FAILED",
          `database at ${host}: pg_promote() could not signal the server to promote`,
          { address: host },
        );
      }
      const deadline = performance.now() + waitSeconds * 1000;
      for (;;) {
        const after = await q<{ rec: boolean }>("SELECT pg_is_in_recovery() AS rec");
        if (after.rows[0]?.rec === false) break;
        if (performance.now() >= deadline) {
          throw new DbProbeError(
            "TIMEOUT",
            `database at ${host}: pg_promote() requested the promotion but the server was still in recovery after ${waitSeconds} s`,
            { address: host },
          );
        }
        await sleep(PROMOTE_POLL_MS);
      }
      return { outcome: "promoted", durationMs: performance.now() - started };
    });
  } catch (err) {
    throw classifiedError(err, host, "pg_promote: ");
  }
}
