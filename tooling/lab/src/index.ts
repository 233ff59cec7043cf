export {
  attachCluster,
  Cluster,
  type ClusterOptions,
  createCluster,
  downCluster,
  type EfmConnection,
  type HostSpec,
  type LabHost,
  planCluster,
} from "./cluster.ts";
export { childrenOf } from "./exec.ts";
export { type EfmFilesOptions, type EfmHostFiles, efmProperties } from "./efm-files.ts";
export { LAB_ERROR_CODES, LabError, type LabErrorCode } from "./errors.ts";
export type { ExecResult } from "./exec.ts";
export { parseSubnet } from "./net.ts";
export { type HostRole, type LabMode, type LabState, readState, STATE_FILE } from "./state.ts";
export { type CertFiles, makeCa, makeClientCert, makeServerCert } from "./tls.ts";
