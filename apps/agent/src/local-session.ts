import { type DbSession, promoteBySql, sqlPromotability } from "@efm/db-probe";
import type { Logger } from "pino";

/*
 * The agent's own questions to its local database on the failover path, over the one kept
 * session (issue 15): a fresh connection costs a fork and an authentication, which on a loaded
 * server took longer than the question. The guide's periodic local check does not use it: that
 * check must open a connection as a client does, because that is what it checks.
 */

/** "Can this standby be promoted?", answered the way promoteLocalDb would then promote it. */
export type Promotable = { ok: true } | { ok: false; error: string };

/**
 * The candidate's half of "can this standby be promoted", before any master is fenced for it.
 * Where SQL would promote it (PostgreSQL 12 or later and db.user may execute pg_promote), what
 * that needs is one answer over the session: the database answers and is in recovery. Otherwise
 * pg_ctl through the privileged helper would promote it, so the helper checks its own path
 * (`check --role standby`: data directory, pg_ctl, a running server in recovery).
 * `where` names the database (address:port) in the failure.
 */
export async function localPromotable(
  session: DbSession,
  timeoutMs: number,
  where: string,
  helperCheck: () => Promise<unknown>,
): Promise<Promotable> {
  try {
    const p = await sqlPromotability(session, timeoutMs);
    if (p.notPermitted === null) {
      return p.inRecovery
        ? { ok: true }
        : { ok: false, error: `the local database at ${where} is not in recovery: nothing to promote` };
    }
  } catch (err) {
    // Unreachable over SQL: neither pg_promote nor the helper (which connects the same way) could
    // confirm the promotion.
    return {
      ok: false,
      error: `the local database at ${where} cannot be checked: ${(err as Error).message}`,
    };
  }
  try {
    await helperCheck();
    return { ok: true };
  } catch (err) {
    return { ok: false, error: (err as Error).message };
  }
}

/**
 * Promote the local database: `pg_promote()` over the session where db.user may run it, pg_ctl
 * through the privileged helper otherwise (`viaHelper`). Rejects with why when neither did.
 */
export async function promoteLocalDb(
  session: DbSession,
  waitSeconds: number,
  viaHelper: () => Promise<unknown>,
  log: Logger,
): Promise<void> {
  const r = await promoteBySql(session, Math.max(1, Math.ceil(waitSeconds)));
  if (r.outcome === "notPermitted") {
    log.info({ promoteBy: "helper" }, `promoting with pg_ctl through the privileged helper: ${r.reason}`);
    await viaHelper();
    return;
  }
  log.info(
    { promoteBy: "sql", durationMs: Math.round(r.durationMs), outcome: r.outcome },
    r.outcome === "promoted"
      ? "database promoted with pg_promote(); pg_is_in_recovery() is false"
      : "database already out of recovery",
  );
}
