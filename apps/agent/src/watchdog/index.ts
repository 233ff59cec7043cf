export { HardwareWatchdog, type WatchdogLog, type WatchdogOptions } from "./controller.ts";
export { openWatchdog, readDeviceTimeout, timeoutFileFor, type WatchdogDevice } from "./device.ts";
export {
  mayFeed,
  planWatchdog,
  WATCHDOG_MODES,
  type WatchdogMode,
  type WatchdogPlan,
  type WatchdogTimingInput,
} from "./timing.ts";
