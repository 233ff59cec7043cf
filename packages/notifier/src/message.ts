import {
  catalogue,
  type Notification,
  type NotificationId,
  renderDescription,
  renderSubject,
  type Severity,
} from "./catalogue.ts";

/** One node in the cluster snapshot appended to every notification body (as in `efm cluster-status`). */
export interface SnapshotNode {
  /** Agent type: `Master`, `Standby`, `Witness`, `Idle`, `Promoting`. */
  readonly role: string;
  readonly address: string;
  /** Agent state, e.g. `UP`. */
  readonly agent: string;
  /** Database state, e.g. `UP`, `UNKNOWN`. */
  readonly db: string;
  readonly info?: string;
}

/** What the body header says about the node sending the notification (guide 7). */
export interface MessageContext {
  /** The `EFM node:` line: this agent's address. */
  readonly nodeAddress: string;
  readonly clusterName: string;
  /** The `Database name:` line (`db.database`). */
  readonly databaseName: string;
  /** `VIP support: ENABLED` when a virtual IP is configured. */
  readonly vipEnabled: boolean;
  /** `notification.text.prefix`: put before every subject when set. */
  readonly textPrefix?: string;
}

/** A notification rendered to text, shared by every sink. */
export interface RenderedNotification {
  readonly id: NotificationId;
  readonly severity: Severity;
  readonly subject: string;
  readonly body: string;
  /** When `notify()` was called. */
  readonly time: Date;
}

// Labels padded to one column, exactly as the guide's sample body ("Database name: " is the widest).
const headerLabels = ["EFM node:", "Cluster name:", "Database name:", "VIP support:"] as const;
const labelWidth = Math.max(...headerLabels.map((l) => l.length)) + 1;

function headerLine(label: (typeof headerLabels)[number], value: string): string {
  return `${label.padEnd(labelWidth)}${value}`;
}

/** Renders the snapshot with the column layout of `efm cluster-status`. */
export function renderSnapshot(nodes: readonly SnapshotNode[]): string {
  // A witness has no database: N/A, as `efm cluster-status` prints it, not UNKNOWN.
  const rows = nodes.map((n) =>
    ` ${n.role.padEnd(11)} ${n.address.padEnd(20)} ${n.agent.padEnd(6)} ${(n.role === "Witness" ? "N/A" : n.db).padEnd(8)} ${n.info ?? ""}`.trimEnd(),
  );
  return [
    "Cluster Status:",
    "",
    " Agent Type  Address              Agent  DB       Info",
    " -------------------------------------------------------",
    ...rows,
  ].join("\n");
}

/** The subject and body of a notification; pure, never throws for well-typed input. */
export function renderNotification(
  notification: Notification,
  context: MessageContext,
  time: Date,
  snapshot?: readonly SnapshotNode[],
): RenderedNotification {
  const { id, params } = notification as { id: NotificationId; params: never };
  const plainSubject = renderSubject(id, params);
  const prefix = context.textPrefix?.trim();
  const subject = prefix ? `${prefix} ${plainSubject}` : plainSubject;
  const parts = [
    [
      headerLine("EFM node:", context.nodeAddress),
      headerLine("Cluster name:", context.clusterName),
      headerLine("Database name:", context.databaseName),
      headerLine("VIP support:", context.vipEnabled ? "ENABLED" : "DISABLED"),
    ].join("\n"),
    renderDescription(id, params),
  ];
  if (snapshot !== undefined && snapshot.length > 0) parts.push(renderSnapshot(snapshot));
  return {
    id,
    severity: catalogue[id].severity,
    subject: oneLine(subject),
    body: `${parts.join("\n\n")}\n`,
    time,
  };
}

// A subject is a mail header: a newline in a parameter (say, script output) must not split it.
function oneLine(text: string): string {
  return text.replace(/\s*[\r\n]+\s*/g, " ");
}
