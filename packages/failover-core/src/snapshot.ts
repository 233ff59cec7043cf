import type { AgentRole, DbStatus, FailoverState, Phase } from "./types.ts";

/** One row of the "Cluster Status" section as this agent knows it. */
export interface MemberSnapshot {
  readonly address: string;
  /** Role last announced by that agent; null when it has not announced one yet. */
  readonly role: AgentRole | null;
  readonly agent: "UP" | "DOWN";
  readonly db: DbStatus;
  /**
   * The agent has not finished its start-up checks (guide 4.1.1): its role is tentative and it
   * would not take part in a failover yet.
   */
  readonly starting: boolean;
}

/** What `efm cluster-status` needs from the engine; the agent adds the direct database queries. */
export interface ClusterSnapshot {
  readonly clusterName: string;
  readonly self: string;
  readonly phase: Phase;
  readonly role: AgentRole | null;
  readonly epoch: number | null;
  readonly coordinator: string | null;
  readonly quorate: boolean;
  /** Members of the current view, then voters that are not in it (agent DOWN). */
  readonly members: readonly MemberSnapshot[];
  readonly allowed: readonly string[];
  readonly priority: readonly string[];
  /** The standby being promoted, if this agent coordinates a promotion. */
  readonly promoting: string | null;
  readonly failoverDisabled: boolean;
  /** What an operator must do now (no master and none could be promoted); null when nothing. */
  readonly attention: string | null;
  /** This node's rejoin: the master it is rejoining now, or why it could not (issue 16). */
  readonly rejoin: { readonly master: string } | null;
  readonly rejoinProblem: string | null;
  /**
   * synchronous.mode on or strict: the newest published synchronous standby set this agent
   * knows (empty: commits wait for no standby; absent with the mode off or before any was known).
   */
  readonly syncStandbys?: readonly string[];
  readonly lastReason: string;
}

/** A read-only summary of the state for status reports (cluster-status, cluster-status-json). */
export function snapshot(state: FailoverState): ClusterSnapshot {
  const view = state.view;
  const members: MemberSnapshot[] = [];
  const inView = new Set<string>();
  for (const m of view?.members ?? [{ address: state.config.self }]) {
    inView.add(m.address);
    if (m.address === state.config.self) {
      members.push({
        address: m.address,
        role: state.role,
        agent: "UP",
        db: state.config.isWitness ? "UNKNOWN" : state.db,
        starting: state.phase !== "running",
      });
    } else {
      const p = state.peers[m.address];
      members.push({
        address: m.address,
        role: p?.role ?? null,
        agent: "UP",
        db: p?.db ?? "UNKNOWN",
        // No status heard yet counts as starting too: nothing says its checks ended.
        starting: p === undefined || p.starting === true || p.role === null,
      });
    }
  }
  for (const v of view?.voters ?? []) {
    if (!inView.has(v))
      members.push({ address: v, role: null, agent: "DOWN", db: "UNKNOWN", starting: false });
  }
  return {
    clusterName: state.config.clusterName,
    self: state.config.self,
    phase: state.phase,
    role: state.role,
    epoch: view?.epoch ?? null,
    coordinator: view?.coordinator ?? null,
    quorate: view?.quorate ?? false,
    members,
    allowed: state.allowed,
    priority: state.priority,
    promoting: state.promotion?.candidate ?? (state.candidacy ? state.config.self : null),
    failoverDisabled: state.failoverDisabled,
    attention: state.attention,
    rejoin: state.rejoin === null ? null : { master: state.rejoin.master },
    rejoinProblem: state.rejoinProblem,
    ...((state.config.synchronousMode ?? "off") !== "off" && state.sync.published !== null
      ? { syncStandbys: state.sync.published.standbys }
      : {}),
    lastReason: state.lastReason,
  };
}
