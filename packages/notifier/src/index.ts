export type {
  Notification,
  NotificationId,
  NotificationParams,
  ParamName,
  ParamTypes,
  Placeholders,
  Severity,
} from "./catalogue.ts";
export {
  catalogue,
  EXTENSION_IDS,
  fillTemplate,
  notificationIds,
  renderDescription,
  renderSubject,
  severities,
  severityOf,
} from "./catalogue.ts";
export type { NotifierErrorCode } from "./errors.ts";
export { NotifierError, notifierErrorCodes } from "./errors.ts";
export type { MessageContext, RenderedNotification, SnapshotNode } from "./message.ts";
export { renderNotification, renderSnapshot } from "./message.ts";
export type { FlushResult, Logger, Notifier, NotifierOptions, NotifierStats, SinkStats } from "./notifier.ts";
export { createNotifier, silentLogger } from "./notifier.ts";
export type {
  ClusterLogSinkOptions,
  EmailSinkOptions,
  RetryPolicy,
  RunScript,
  ScriptResult,
  ScriptSinkOptions,
  Sink,
} from "./sinks.ts";
export {
  clusterLogSink,
  emailSink,
  formatClusterLogLine,
  parseClusterLogLine,
  scriptSink,
  spawnScript,
} from "./sinks.ts";
