import { classifiedError } from "./classify.ts";
import type { SessionQuery } from "./connection.ts";
import { DbProbeError } from "./errors.ts";
import { Lsn } from "./lsn.ts";
import { type DbTarget, runOn, targetOf } from "./session.ts";

/** One row of pg_stat_replication, as seen on a master. */
export interface ReplicationPeer {
  applicationName: string;
  clientAddress: string | null;
  state: string | null;
  sentLsn: Lsn | null;
  writeLsn: Lsn | null;
  flushLsn: Lsn | null;
  replayLsn: Lsn | null;
  syncState: string | null;
}

/** pg_stat_wal_receiver on a standby (null when no WAL receiver runs). */
export interface WalReceiverInfo {
  status: string;
  receivedTimeline: number | null;
  /** Last position received and flushed (`flushed_lsn`, `received_lsn` before PostgreSQL 13). */
  flushedLsn: Lsn | null;
  senderHost: string | null;
  senderPort: number | null;
  /** Connection string with the password masked by the server. */
  conninfo: string | null;
}

/** What an agent needs to know about a database: role, version, WAL positions, replication. */
export interface DbFacts {
  address: string;
  /** pg_is_in_recovery(): true = standby. */
  inRecovery: boolean;
  /** server_version, e.g. "15.18 (Debian 15.18-0+deb12u1)". */
  serverVersion: string;
  /** server_version_num, e.g. 150018. */
  serverVersionNum: number;
  /** pg_current_wal_lsn() on a master; null on a standby. */
  currentLsn: Lsn | null;
  /** pg_last_wal_receive_lsn() (standby; null if it never streamed). */
  receiveLsn: Lsn | null;
  /** pg_last_wal_replay_lsn() (standby). */
  replayLsn: Lsn | null;
  /**
   * The position to compare standbys by when choosing whom to promote: the master's current
   * position, or on a standby the furthest WAL it holds (received or replayed).
   */
  position: Lsn | null;
  /** pg_stat_replication (master; empty on a standby). Full rows need pg_monitor. */
  replication: ReplicationPeer[];
  walReceiver: WalReceiverInfo | null;
}

const str = (v: unknown): string | null =>
  typeof v === "string" ? v : v === null || v === undefined ? null : String(v);
const num = (v: unknown): number | null => (v === null || v === undefined || v === "" ? null : Number(v));

/**
 * Read DbFacts within timeoutMs, over a fresh connection (DbConnectionOptions) or a kept
 * DbSession; throws DbProbeError with a failure code.
 */
export async function readFacts(target: DbTarget, timeoutMs: number): Promise<DbFacts> {
  const { host } = targetOf(target);
  try {
    return await runOn(target, timeoutMs, (q) => factsOver(q, host));
  } catch (err) {
    throw classifiedError(err, host);
  }
}

/** The queries of readFacts, on one connection. */
async function factsOver(q: SessionQuery, host: string): Promise<DbFacts> {
  const v = await q<{ version: string; num: string; rec: boolean }>(
    "SELECT current_setting('server_version') AS version, current_setting('server_version_num') AS num, pg_is_in_recovery() AS rec",
  );
  const row = v.rows[0];
  if (row === undefined)
    throw new DbProbeError("QUERY_FAILED", `database at ${host}: no answer to version query`, {
      address: host,
    });
  const versionNum = Number(row.num);
  // PostgreSQL 10 renamed xlog -> wal and location -> lsn; keep the 9.x path working.
  const wal = versionNum >= 100000;
  const [cur, recv, replay] = wal
    ? ["pg_current_wal_lsn", "pg_last_wal_receive_lsn", "pg_last_wal_replay_lsn"]
    : ["pg_current_xlog_location", "pg_last_xlog_receive_location", "pg_last_xlog_replay_location"];
  // Positions and both replication views in one round trip (the version decided the names).
  const pos = await q<{
    cur: string | null;
    recv: string | null;
    replay: string | null;
    rep: Record<string, unknown>[] | null;
    wr: Record<string, unknown> | null;
  }>(
    `SELECT CASE WHEN pg_is_in_recovery() THEN NULL ELSE ${cur}()::text END AS cur,
            ${recv}()::text AS recv, ${replay}()::text AS replay,
            (SELECT jsonb_agg(to_jsonb(r)) FROM pg_stat_replication r) AS rep,
            ${versionNum >= 90600 ? "(SELECT to_jsonb(w) FROM pg_stat_wal_receiver w)" : "NULL::jsonb"} AS wr`,
  );
  const p = pos.rows[0];
  const currentLsn = Lsn.tryParse(p?.cur);
  const receiveLsn = Lsn.tryParse(p?.recv);
  const replayLsn = Lsn.tryParse(p?.replay);
  const w = p?.wr;
  return {
    address: host,
    inRecovery: row.rec === true,
    serverVersion: row.version,
    serverVersionNum: versionNum,
    currentLsn,
    receiveLsn,
    replayLsn,
    position: row.rec ? Lsn.max(receiveLsn, replayLsn) : currentLsn,
    replication: (p?.rep ?? []).map((j) => ({
      applicationName: str(j.application_name) ?? "",
      clientAddress: str(j.client_addr),
      state: str(j.state),
      sentLsn: Lsn.tryParse(str(j.sent_lsn ?? j.sent_location)),
      writeLsn: Lsn.tryParse(str(j.write_lsn ?? j.write_location)),
      flushLsn: Lsn.tryParse(str(j.flush_lsn ?? j.flush_location)),
      replayLsn: Lsn.tryParse(str(j.replay_lsn ?? j.replay_location)),
      syncState: str(j.sync_state),
    })),
    walReceiver:
      w === undefined || w === null
        ? null
        : {
            status: str(w.status) ?? "",
            receivedTimeline: num(w.received_tli),
            flushedLsn: Lsn.tryParse(str(w.flushed_lsn ?? w.received_lsn)),
            senderHost: str(w.sender_host),
            senderPort: num(w.sender_port),
            conninfo: str(w.conninfo),
          },
  };
}
