import { classifiedError, classify } from "./classify.ts";
import { checkConnectionOptions, type DbConnectionOptions, withSession } from "./connection.ts";
import { DbProbeError } from "./errors.ts";

/**
 * The value of `synchronous_standby_names` that counts one of `names` as the synchronous copy:
 * `ANY 1 ("b", "c")` (names quoted as identifiers, so any application name is taken literally),
 * `ANY 1 (*)` for ["*"] (any standby), '' for none (commits wait for no standby).
 */
export function synchronousStandbyNames(names: readonly string[]): string {
  const unique = [...new Set(names)];
  if (unique.length === 0) return "";
  if (unique.includes("*")) return "ANY 1 (*)";
  return `ANY 1 (${unique.map((n) => `"${n.replaceAll('"', '""')}"`).join(", ")})`;
}

/**
 * One keyword's value from a libpq connection string (keyword=value pairs, values optionally
 * single-quoted with backslash escapes, or a postgres:// URI's query parameters); undefined when
 * the keyword is absent or the string cannot be read.
 */
export function conninfoKeyword(conninfo: string, keyword: string): string | undefined {
  if (/^postgres(ql)?:\/\//.test(conninfo)) {
    try {
      return new URL(conninfo).searchParams.get(keyword) ?? undefined;
    } catch {
      return undefined;
    }
  }
  let found: string | undefined;
  let i = 0;
  const n = conninfo.length;
  const space = (ch: string | undefined) => ch !== undefined && /\s/.test(ch);
  while (i < n) {
    while (space(conninfo[i])) i++;
    if (i >= n) break;
    const k = /^[A-Za-z_]+/.exec(conninfo.slice(i));
    if (!k) return undefined;
    i += k[0].length;
    while (space(conninfo[i])) i++;
    if (conninfo[i] !== "=") return undefined;
    i++;
    while (space(conninfo[i])) i++;
    let value = "";
    if (conninfo[i] === "'") {
      i++;
      for (;;) {
        if (i >= n) return undefined; // unterminated quote
        const ch = conninfo[i]!;
        if (ch === "\\" && i + 1 < n) {
          value += conninfo[i + 1];
          i += 2;
        } else if (ch === "'") {
          i++;
          break;
        } else {
          value += ch;
          i++;
        }
      }
    } else {
      while (i < n && !space(conninfo[i])) {
        if (conninfo[i] === "\\" && i + 1 < n) i++;
        value += conninfo[i];
        i++;
      }
    }
    if (k[0] === keyword) found = value;
  }
  return found;
}

/**
 * The application name the WAL receiver of the standby at `conn` presents to its upstream, which
 * is the name `synchronous_standby_names` must use for it. As PostgreSQL chooses it: the
 * `application_name` of its connection string, else `cluster_name`, else "walreceiver". Read
 * from the running WAL receiver when the role may see it (pg_stat_wal_receiver), else from the
 * settings (primary_conninfo needs a superuser or pg_read_all_settings). Rejects with a
 * DbProbeError when the database cannot be reached or is not a standby.
 */
export async function walReceiverName(conn: DbConnectionOptions, timeoutMs: number): Promise<string> {
  checkConnectionOptions(conn);
  try {
    return await withSession(conn, timeoutMs, async (q) => {
      const r = await q<{ rec: boolean; receiver: string | null; cluster: string }>(
        `SELECT pg_is_in_recovery() AS rec, (SELECT conninfo FROM pg_stat_wal_receiver) AS receiver,
                current_setting('cluster_name') AS cluster`,
      );
      const row = r.rows[0];
      if (row === undefined || row.rec !== true) {
        throw new DbProbeError("QUERY_FAILED", `database at ${conn.host} is not a standby (not in recovery)`);
      }
      const fromReceiver = row.receiver
        ? (conninfoKeyword(row.receiver, "application_name") ??
          conninfoKeyword(row.receiver, "fallback_application_name"))
        : undefined;
      if (fromReceiver) return fromReceiver;
      let primary: string | undefined;
      try {
        primary = (await q<{ v: string }>("SELECT current_setting('primary_conninfo') AS v")).rows[0]?.v;
      } catch (err) {
        // Not allowed to read it: the receiver's name is then unknown, say so rather than guess.
        throw new DbProbeError(
          "QUERY_FAILED",
          `database at ${conn.host}: cannot tell its WAL receiver's application name (no WAL receiver visible, and primary_conninfo not readable: ${(err as Error).message}); grant db.user pg_monitor, or pg_read_all_settings`,
          { cause: err },
        );
      }
      const fromSettings = primary ? conninfoKeyword(primary, "application_name") : undefined;
      return fromSettings || row.cluster || "walreceiver";
    });
  } catch (err) {
    throw classifiedError(err, conn.host);
  }
}

/**
 * Set `synchronous_standby_names` on the (master) database at `conn` with ALTER SYSTEM and
 * reload the configuration: a superuser, or on PostgreSQL 15 and later a role granted
 * `ALTER SYSTEM ON PARAMETER synchronous_standby_names`. Rejects with a DbProbeError saying why
 * (unreachable, not permitted, the server refused the value).
 */
export async function setSynchronousStandbyNames(
  conn: DbConnectionOptions,
  value: string,
  timeoutMs: number,
): Promise<void> {
  checkConnectionOptions(conn);
  try {
    await withSession(conn, timeoutMs, async (q) => {
      // ALTER SYSTEM takes no parameters: the value is a quoted literal.
      await q(`ALTER SYSTEM SET synchronous_standby_names = '${value.replaceAll("'", "''")}'`);
      await q("SELECT pg_reload_conf()");
    });
  } catch (err) {
    if (err instanceof DbProbeError) throw err;
    const f = classify(err, conn.host);
    throw new DbProbeError(
      f.code,
      `database at ${conn.host}: cannot set synchronous_standby_names to '${value}': ${(err as Error).message}`,
      { address: conn.host, detail: f.detail, cause: err },
    );
  }
}
