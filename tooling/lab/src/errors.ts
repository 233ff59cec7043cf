/** Stable codes for every way the lab can fail; callers switch on `code`, never on messages. */
export const LAB_ERROR_CODES = [
  "INVALID_OPTIONS",
  "COMMAND_FAILED",
  "COMMAND_TIMEOUT",
  "UNKNOWN_HOST",
  "NO_DATABASE",
  "NOT_NETNS",
  "NOT_ROOT",
  "STATE_FILE",
  "TIMEOUT",
  "SQL_FAILED",
] as const;

export type LabErrorCode = (typeof LAB_ERROR_CODES)[number];

/** The one error class of @efm/lab. */
export class LabError extends Error {
  override readonly name = "LabError";
  readonly code: LabErrorCode;
  constructor(code: LabErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }
}
