export { type CheckResult, type Checker, PgChecker, type PgCheckerOptions, remoteCheck } from "./checker.ts";
export { classify, DEFINITE_FAILURES, describeFailure, type Failure, isDefinite } from "./classify.ts";
export { clientConfig, connectionAttempts, type DbConnectionOptions } from "./connection.ts";
export {
  DB_PROBE_ERROR_CODES,
  DbProbeError,
  type DbProbeErrorCode,
  FAILURE_CODES,
  type FailureCode,
} from "./errors.ts";
export { type DbFacts, type ReplicationPeer, readFacts, type WalReceiverInfo } from "./facts.ts";
export { Lsn } from "./lsn.ts";
export {
  type Clock,
  HealthMonitor,
  type MonitorEvent,
  type MonitorOptions,
  type MonitorState,
  type MonitorTiming,
  systemClock,
  timingFromSeconds,
} from "./monitor.ts";
export {
  type Attempt,
  type DbTls,
  explainTlsFailure,
  SSL_MODES,
  type SslMode,
  type TlsFailureKind,
  tlsFailureKind,
  tlsOptions,
} from "./tls.ts";
export {
  type ProcessIdentity,
  type ProcessProbe,
  type ProcStat,
  parseProcStat,
  postmasterOf,
  processAlive,
  readProcStat,
} from "./postmaster.ts";
export {
  ConnectionWatch,
  lossCause,
  pgWatchConnector,
  type WatchConnector,
  type WatchEvent,
  type WatchLink,
  type WatchOptions,
  type WatchState,
} from "./watch.ts";
export { promoteBySql, type SqlPromotability, type SqlPromoteResult, sqlPromotability } from "./promote.ts";
export { DbSession, type DbTarget, isConnectionLoss } from "./session.ts";
export {
  conninfoKeyword,
  setSynchronousStandbyNames,
  synchronousStandbyNames,
  walReceiverName,
} from "./sync-standbys.ts";
