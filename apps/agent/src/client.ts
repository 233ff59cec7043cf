// What the efm CLI needs from the agent, without the daemon's modules (pino, the server):
// every CLI start pays for what it imports.
export { adminRequest, readToken } from "./admin/client.ts";
export type { AdminRequest, AdminResponse, ClusterStatus, NodeStatus } from "./admin/protocol.ts";
export { type AgentDirs, agentFiles, resolveDirs } from "./dirs.ts";
export { AGENT_ERROR_CODES, AgentError, type AgentErrorCode } from "./errors.ts";
export {
  assess,
  compareLsn,
  type DbQuery,
  queryDatabases,
  renderClusterStatus,
  renderClusterStatusJson,
} from "./status-report.ts";
