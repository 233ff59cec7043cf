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
  fillTemplate,
  notificationIds,
  renderDescription,
  renderSubject,
  severities,
  severityOf,
} from "./catalogue.ts";
