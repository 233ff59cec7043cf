export { BoundedCapture } from "./capture.ts";
export {
  isScriptsRunnerError,
  SCRIPTS_RUNNER_ERROR_CODES,
  ScriptsRunnerError,
  type ScriptsRunnerErrorCode,
} from "./errors.ts";
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
