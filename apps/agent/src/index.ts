export { adminRequest, readToken } from "./admin/client.ts";
export {
  type AdminRequest,
  type AdminResponse,
  type ClusterStatus,
  type NodeStatus,
  OPEN,
  PRIVILEGED,
} from "./admin/protocol.ts";
export { startAdminServer, writeTokenFile } from "./admin/server.ts";
export {
  checkPropertiesMode,
  initClusterSecret,
  loadClusterKey,
  noSecretWarning,
  readClusterSecret,
  secretPath,
} from "./cluster-key.ts";
export { type AgentDirs, agentFiles, resolveDirs } from "./dirs.ts";
export { AGENT_ERROR_CODES, AgentError, type AgentErrorCode } from "./errors.ts";
export { acquireLock, type LockHandle } from "./lock.ts";
export {
  type AgentLoggers,
  contextLogger,
  createLoggers,
  LEVEL_MAP,
  type LogStateSource,
  ROLE_STARTING,
  stateFields,
} from "./logging.ts";
