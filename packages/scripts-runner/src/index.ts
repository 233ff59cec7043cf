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
  formatHelperArgs,
  HELPER_USAGE,
  type HelperCommand,
  type HelperCommon,
  type HelperVerb,
  parseHelperArgs,
} from "./helper-grammar.ts";
export {
  type HelperConnection,
  type HelperReport,
  parseHelperConnection,
  redactConninfo,
} from "./helper-ops.ts";
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
  type HelperOptions,
  privilegedArgv,
  promote,
  reconfigure,
  rejoin,
  restart,
  runHelper,
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
