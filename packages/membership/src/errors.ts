/** Stable error codes of @efm/membership. */
export const MEMBERSHIP_ERROR_CODES = [
  "INVALID_OPTIONS",
  "BIND_FAILED",
  "NOT_RUNNING",
  "REQUEST_TIMEOUT",
  "ADMIN_REFUSED",
] as const;
/** One stable error code. */
export type MembershipErrorCode = (typeof MEMBERSHIP_ERROR_CODES)[number];

/** The one error class of this package; `code` is stable, the message names what and where. */
export class MembershipError extends Error {
  readonly code: MembershipErrorCode;
  constructor(code: MembershipErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "MembershipError";
    this.code = code;
  }
}
