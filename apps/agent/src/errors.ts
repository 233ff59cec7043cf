/** Stable codes for every way the agent refuses to start or a request fails. */
export const AGENT_ERROR_CODES = [
  "CONFIG_INVALID",
  "PASSWORD",
  "LOCKED",
  "IO",
  "BAD_REQUEST",
  "UNAUTHORIZED",
  "UNKNOWN_COMMAND",
  "REFUSED",
  "NO_AGENT",
  "TIMEOUT",
  /** The privileged helper failed its start-up check: this node could not promote or fence. */
  "HELPER_CHECK",
] as const;
export type AgentErrorCode = (typeof AGENT_ERROR_CODES)[number];

/** The agent's one error class. */
export class AgentError extends Error {
  readonly code: AgentErrorCode;
  constructor(code: AgentErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "AgentError";
    this.code = code;
  }
}
