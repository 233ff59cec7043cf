/** Stable error codes of @efm/vip. */
export const VIP_ERROR_CODES = [
  /** Not an IPv4 or IPv6 address. */
  "INVALID_ADDRESS",
  /** A netmask that is not contiguous, or a prefix length out of range. */
  "INVALID_NETMASK",
  /** virtualIp.interface is not a valid device or device:alias name. */
  "INVALID_INTERFACE",
  /** A required program (ip, arping, ping) is not installed or not executable. */
  "COMMAND_NOT_FOUND",
  /** A program ran too long and was killed. */
  "COMMAND_TIMEOUT",
  /** A program exited non-zero (its stderr is in the message). */
  "COMMAND_FAILED",
  /** The command line of efm-address does not fit its grammar. */
  "USAGE",
  /** The properties file or its directory could be written by someone other than root. */
  "PROPERTIES_UNSAFE",
  /** The properties file cannot be read, does not parse, or configures no virtual IP. */
  "PROPERTIES_INVALID",
] as const;

/** One of {@link VIP_ERROR_CODES}. */
export type VipErrorCode = (typeof VIP_ERROR_CODES)[number];

/** The one error class of @efm/vip; `code` is stable, the message names the value at fault. */
export class VipError extends Error {
  override readonly name = "VipError";
  readonly code: VipErrorCode;

  constructor(code: VipErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }
}

/** True when `value` is a {@link VipError}, optionally with the given code. */
export function isVipError(value: unknown, code?: VipErrorCode): value is VipError {
  return value instanceof VipError && (code === undefined || value.code === code);
}
