import type { EfmConfig } from "@efm/properties-parser";

/** The four places an agent writes to, per cluster. */
export interface AgentDirs {
  lockDir: string;
  logDir: string;
  runDir: string;
  stateDir: string;
}

const DEFAULTS: AgentDirs = {
  lockDir: "/var/lock/efm",
  logDir: "/var/log/efm",
  runDir: "/run/efm",
  stateDir: "/var/lib/efm",
};

/**
 * Where the agent keeps its lock, logs, admin token and state: the EFM_*_DIR environment
 * variables win (tests and the demo run unprivileged in a folder), then the properties
 * (`lock.dir`, `log.dir`, `run.dir`, `state.dir`), then the FHS defaults.
 */
export function resolveDirs(
  config: Partial<Pick<EfmConfig, "lockDir" | "logDir" | "runDir" | "stateDir">>,
  env: NodeJS.ProcessEnv,
): AgentDirs {
  return {
    lockDir: env.EFM_LOCK_DIR || config.lockDir || DEFAULTS.lockDir,
    logDir: env.EFM_LOG_DIR || config.logDir || DEFAULTS.logDir,
    runDir: env.EFM_RUN_DIR || config.runDir || DEFAULTS.runDir,
    stateDir: env.EFM_STATE_DIR || config.stateDir || DEFAULTS.stateDir,
  };
}

/** File names inside those directories. */
export function agentFiles(dirs: AgentDirs, cluster: string) {
  return {
    lock: `${dirs.lockDir}/${cluster}.lock`,
    log: `${dirs.logDir}/${cluster}.log`,
    startupLog: `${dirs.logDir}/startup-${cluster}.log`,
    clusterLog: `${dirs.logDir}/${cluster}.notifications.log`,
    token: `${dirs.runDir}/${cluster}.token`,
    state: `${dirs.stateDir}/${cluster}.state.json`,
    membership: `${dirs.stateDir}/${cluster}.membership.json`,
    /** The failover engine's record: last master, promotion epoch, rebuild flag. */
    failover: `${dirs.stateDir}/${cluster}.failover.json`,
  };
}
