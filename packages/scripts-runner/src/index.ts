export { backupFile } from "./atomic.ts";
export { BoundedCapture } from "./capture.ts";
export {
  type ConninfoEntry,
  conninfoTlsFor,
  conninfoValue,
  formatConninfo,
  isConninfoUri,
  parseConninfo,
  quoteConninfoValue,
  setConninfoHost,
  setConninfoTls,
  setConninfoValue,
  type ConninfoTls,
} from "./conninfo.ts";
export {
  isScriptsRunnerError,
  SCRIPTS_RUNNER_ERROR_CODES,
  ScriptsRunnerError,
  type ScriptsRunnerErrorCode,
} from "./errors.ts";
export {
  checkTrusted,
  CLUSTER_NAME,
  DEFAULT_CONFIG_DIR,
  factsFromConfig,
  type HelperFacts,
  helperConfigDir,
  loadHelperFacts,
  readTrustedProperties,
} from "./helper-facts.ts";
export {
  FACT_OPTIONS,
  formatHelperArgs,
  HELPER_REQUEST_USAGE,
  HELPER_USAGE,
  type HelperCommand,
  type HelperCommon,
  type HelperFactArgs,
  type HelperVerb,
  parseHelperArgs,
  parseHelperRequest,
  REJOIN_FACT_OPTIONS,
  REJOIN_MIN_SECONDS,
} from "./helper-grammar.ts";
export {
  formatRequestLine,
  LineSplitter,
  MAX_REQUEST_BYTES,
  MAX_RESPONSE_BYTES,
  parseRequestLine,
  type RequestLine,
  requestIdOf,
  type TooLong,
} from "./helper-protocol.ts";
export {
  type HelperConnection,
  type HelperReport,
  parseHelperConnection,
  redactConninfo,
} from "./helper-ops.ts";
export { factMismatches, type PropertiesFacts, type VipFact, vipUnknown } from "./fact-check.ts";
export {
  type ConfigSetting,
  configValue,
  parseConfigFile,
  quoteConfigValue,
  setConfigValue,
} from "./pg-config-file.ts";
export {
  check,
  defaultHelperCommand,
  fence,
  HelperClient,
  type HelperLog,
  type HelperOptions,
  type HelperReady,
  type HelperTarget,
  privilegedArgv,
  promote,
  reconfigure,
  rejoin,
  restart,
  runHelper,
  runHelperOnce,
} from "./privileged.ts";
export { describeRun, type RunOptions, type RunResult, runProcess } from "./run.ts";
export {
  checkScript,
  runUserScript,
  SCRIPT_EVENTS,
  type ScriptContext,
  type ScriptEvent,
  type ScriptResult,
  scriptEnvironment,
  type UserScriptOptions,
} from "./user-script.ts";
