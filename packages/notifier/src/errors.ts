/**
 * Stable error codes of the notifier. Only `INVALID_OPTION` is ever thrown (by the factories,
 * at start-up); the others describe delivery failures, which are logged and counted but never
 * thrown into the caller of `notify()`.
 */
export const notifierErrorCodes = [
  "INVALID_OPTION",
  "SMTP_DELIVERY_FAILED",
  "SEND_TIMEOUT",
  "SCRIPT_FAILED",
  "LOG_WRITE_FAILED",
  "QUEUE_FULL",
  "CLOSED",
] as const;

/** One of {@link notifierErrorCodes}. */
export type NotifierErrorCode = (typeof notifierErrorCodes)[number];

/** The notifier's one error class; `code` is stable, the message names the option or sink involved. */
export class NotifierError extends Error {
  override readonly name = "NotifierError";
  readonly code: NotifierErrorCode;

  constructor(code: NotifierErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }
}
