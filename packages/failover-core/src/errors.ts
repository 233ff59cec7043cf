/** Stable codes of every failure this package reports. */
export const failoverCoreErrorCodes = ["invalid-config", "invalid-lsn", "invalid-event"] as const;

/** A failover-core error code. */
export type FailoverCoreErrorCode = (typeof failoverCoreErrorCodes)[number];

/** The one error class of @efm/failover-core: bad input, never a crash. */
export class FailoverCoreError extends Error {
  readonly code: FailoverCoreErrorCode;
  constructor(code: FailoverCoreErrorCode, message: string) {
    super(message);
    this.name = "FailoverCoreError";
    this.code = code;
  }
}
