export { writeFileAtomic, writeFileAtomicAsync } from "./atomic.ts";
export { formatProblem, PROBLEM_CODES, type Problem, type ProblemCode, PropertiesError } from "./errors.ts";
export {
  checkHost,
  type HostCheckOptions,
  type HostFacts,
  isLocalAddress,
  type LocalAddress,
} from "./host-check.ts";
export { escapeProperty, type PropertyEntry, parseJavaProperties } from "./java-properties.ts";
export { type NodeEntry, parseNodes, printNodes, readNodes, writeNodes } from "./nodes.ts";
export { type ConfigResult, clusterNameFromPath, parseConfig, printConfig, readConfig } from "./parse.ts";
export {
  type EfmConfig,
  formatHostPort,
  type HostPort,
  isHost,
  LOG_LEVELS,
  type LogLevel,
  NOTIFICATION_LEVELS,
  type NotificationLevel,
  SSL_MODES,
  type SslMode,
  netmaskToPrefix,
  PROPERTIES,
  parseHostPort,
  prefixToNetmask,
  type VirtualIp,
  REWIND_MODES,
  type RewindMode,
  SYNCHRONOUS_MODES,
  type SynchronousMode,
  WATCHDOG_MODES,
  type WatchdogMode,
} from "./schema.ts";
export {
  checkTlsFiles,
  defaultTlsPaths,
  effectiveSslMode,
  type TlsSettings,
  tlsSettings,
} from "./tls.ts";
export {
  CLUSTER_NAME,
  DEFAULT_CONFIG_DIR,
  readTrustedProperties,
  trustedConfigDir,
  type Untrusted,
  type UntrustedKind,
  untrustedReason,
} from "./trusted.ts";
