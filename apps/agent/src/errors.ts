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
  /** A port the agent needs (admin.port, bind.address, http.bind.address) is taken. */
  "IN_USE",
  /** The local database refused or could not be reached at start (guide 4.1.1). */
  "DATABASE",
  /** An admin command arrived before the start-up checks ended. */
  "STARTING",
  /** watchdog.mode=required and the watchdog device cannot guard this node as master. */
  "WATCHDOG",
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
