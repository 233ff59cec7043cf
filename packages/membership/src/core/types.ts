/** A member: its `ip:port` address plus a random incarnation chosen at each start. */
export interface NodeId {
  readonly addr: string;
  readonly inc: string;
}

/** View identifier; ordered by epoch, then by creator address. */
export interface ViewId {
  readonly epoch: number;
  readonly creator: string;
}

/** A view as the protocol carries it: members in join order, members[0] is the coordinator. */
export interface View {
  readonly id: ViewId;
  readonly members: readonly NodeId[];
  /** For a merge view: the member addresses of each merged subgroup, in merge order. */
  readonly subgroups: readonly (readonly string[])[];
}

/** The replicated configuration: voter set R and the allowed host list, versioned. */
export interface ClusterConfig {
  readonly version: number;
  /** R: addresses (`ip:port`) of the admitted members, witnesses included. */
  readonly voters: readonly string[];
  /** Allowed node host list: hosts (the part of an address before the port). */
  readonly allowed: readonly string[];
}

/** What a member keeps on disk between starts. */
export interface PersistedState {
  readonly config: ClusterConfig;
  /** Highest view epoch this address ever installed, so epochs keep growing across restarts. */
  readonly lastEpoch: number;
  /**
   * The id the cluster got when it was founded, carried in every frame: members of another
   * cluster (another id) can neither join nor merge. Absent in states written before ids.
   */
  readonly clusterId?: string | null;
}

/** The public view of a view, in events. */
export interface ViewInfo {
  readonly epoch: number;
  readonly creator: string;
  readonly members: readonly string[];
  readonly coordinator: string;
  readonly quorate: boolean;
  readonly subgroups: readonly (readonly string[])[];
  /** The voter set R the quorum is counted against, as this member holds it. */
  readonly voters: readonly string[];
}

/** Typed events the core emits for the failover layer and the agent. */
export type MembershipEvent =
  | {
      readonly type: "viewInstalled";
      readonly view: ViewInfo;
      readonly joined: readonly string[];
      readonly left: readonly string[];
      readonly removed: readonly string[];
    }
  | {
      readonly type: "viewCommitted";
      readonly epoch: number;
      readonly creator: string;
      readonly committedAt: number;
      /** Members this view removed, with the time from which their role may be taken over. */
      readonly removed: readonly {
        readonly member: string;
        readonly incarnation: string;
        readonly takeoverAllowedAt: number;
      }[];
    }
  | { readonly type: "memberJoined"; readonly member: string }
  | { readonly type: "memberLeft"; readonly member: string }
  /**
   * The member has been silent for the configured `quietAfter` (before suspicion): once per
   * silence, nothing is decided; the failover layer starts slow checks early.
   */
  | { readonly type: "memberQuiet"; readonly member: string }
  | { readonly type: "memberSuspected"; readonly member: string }
  | { readonly type: "memberRemoved"; readonly member: string; readonly lastHeard: number | null }
  | { readonly type: "quorumGained"; readonly epoch: number }
  | { readonly type: "quorumLost"; readonly epoch: number }
  /**
   * Our lease runs until `until` (finite, on the clock `handle` is given): emitted when the lease
   * is established and again each time acknowledgements push it further.
   */
  | { readonly type: "leaseValid"; readonly until: number }
  /** `until` passed without a renewal: a majority of R no longer acknowledges us. */
  | { readonly type: "leaseLost" }
  | {
      readonly type: "admissionRefused";
      readonly address: string;
      readonly by: string;
      readonly reason: string;
    }
  | { readonly type: "configCommitted"; readonly config: ClusterConfig }
  | {
      readonly type: "adminResult";
      readonly requestId: string;
      readonly ok: boolean;
      readonly error?: string;
    }
  | { readonly type: "message"; readonly from: string; readonly payload: unknown }
  | { readonly type: "request"; readonly from: string; readonly id: string; readonly payload: unknown }
  | { readonly type: "response"; readonly from: string; readonly id: string; readonly payload: unknown }
  | { readonly type: "requestTimeout"; readonly to: string; readonly id: string }
  | { readonly type: "clusterStopping"; readonly by: string }
  | { readonly type: "left" };

/** Inputs to the pure core. */
export type CoreInput =
  | {
      readonly type: "start";
      /**
       * This node may found a new cluster on its own when it has no saved voter set and no
       * cluster answers within the join window: its database is the primary, or the operator
       * asked for a bootstrap. Nodes with a saved voter set ignore it (they need a majority of it).
       */
      readonly mayFoundAlone?: boolean;
    }
  | { readonly type: "frame"; readonly from: NodeId; readonly msg: unknown }
  | { readonly type: "connectionUp"; readonly peer: string }
  | { readonly type: "connectionDown"; readonly peer: string }
  | { readonly type: "timer"; readonly id: string }
  | { readonly type: "allow"; readonly host: string; readonly requestId: string }
  | { readonly type: "disallow"; readonly host: string; readonly requestId: string }
  | { readonly type: "leave" }
  | { readonly type: "stopCluster" }
  | { readonly type: "send"; readonly to: string; readonly payload: unknown }
  | {
      readonly type: "request";
      readonly to: string;
      readonly id: string;
      readonly payload: unknown;
      readonly timeoutMs: number;
    }
  | { readonly type: "respond"; readonly to: string; readonly id: string; readonly payload: unknown };

/** A message as it goes on the wire: with the sender's cluster id (null before it has one). */
export type Frame = Msg & { readonly cid: string | null };

/** Effects the runtime (or the simulator) carries out. */
export type Effect =
  | { readonly type: "send"; readonly to: string; readonly msg: Frame }
  | { readonly type: "setTimer"; readonly id: string; readonly at: number }
  | { readonly type: "cancelTimer"; readonly id: string }
  | { readonly type: "emit"; readonly event: MembershipEvent }
  | { readonly type: "persist"; readonly state: PersistedState }
  /** Rewrite the members (.nodes) file with these addresses (3.2.2); the agent writes it atomically. */
  | { readonly type: "rewriteMembersFile"; readonly addresses: readonly string[] }
  | { readonly type: "drop"; readonly from: string; readonly reason: string }
  /** Close every connection and stop: after a graceful leave or stop-cluster. */
  | { readonly type: "halt"; readonly reason: "left" | "stopCluster" };

/** Protocol messages (the body of a frame). */
export type Msg =
  | { readonly t: "discover" }
  | {
      readonly t: "info";
      readonly viewId: ViewId | null;
      readonly coord: string | null;
      readonly members: readonly string[];
      readonly quorate: boolean;
      readonly cfgVersion: number;
      readonly voterShare: number;
      /** The sender's host is in its own allowed list (may found a cluster). */
      readonly canFound: boolean;
    }
  | { readonly t: "join" }
  | { readonly t: "joinRefused"; readonly reason: string }
  | { readonly t: "joinRedirect"; readonly coord: string }
  | {
      readonly t: "view";
      readonly view: View;
      readonly config: ClusterConfig;
      readonly left: readonly string[];
      readonly removed: readonly string[];
      /** The creator's clock when it sent the view (echoed in the acknowledgement). */
      readonly sentAt: number;
    }
  | {
      readonly t: "viewAck";
      readonly viewId: ViewId;
      /** The view's `sentAt`: installing the view acknowledges its creator like a heartbeat. */
      readonly sentAt: number;
      /**
       * For each member the view removed: ms between when the acknowledging member last heard
       * it and when it installed the view (its last acknowledgement of that member's heartbeats
       * was no later). Durations, not times: members' clocks have unrelated origins.
       */
      readonly silent: readonly { readonly member: string; readonly ms: number }[];
    }
  | { readonly t: "cfgPropose"; readonly config: ClusterConfig }
  | { readonly t: "cfgAck"; readonly version: number; readonly config: ClusterConfig }
  | { readonly t: "cfgCommit"; readonly config: ClusterConfig }
  | {
      readonly t: "hb";
      readonly viewId: ViewId;
      readonly sentAt: number;
      readonly cfg: ClusterConfig | null;
      /** The members the sender suspects and failed to verify (repeated on every heartbeat). */
      readonly sus: readonly string[];
    }
  /** Sent at once when the sender's set of verified suspects changes (the heartbeat repeats it). */
  | { readonly t: "suspects"; readonly sus: readonly string[] }
  | { readonly t: "hbAck"; readonly sentAt: number }
  | { readonly t: "aya"; readonly nonce: number }
  | { readonly t: "iaa"; readonly nonce: number; readonly member: boolean }
  | { readonly t: "leave" }
  | { readonly t: "stopCluster" }
  | { readonly t: "mergeReq"; readonly mergeId: string }
  | {
      readonly t: "mergeRsp";
      readonly mergeId: string;
      readonly ok: boolean;
      readonly view: View | null;
      readonly config: ClusterConfig | null;
      readonly quorate: boolean;
    }
  | {
      readonly t: "admin";
      readonly requestId: string;
      readonly op: "allow" | "disallow";
      readonly host: string;
    }
  | {
      readonly t: "adminRsp";
      readonly requestId: string;
      readonly ok: boolean;
      readonly error: string | null;
    }
  | { readonly t: "app"; readonly payload: unknown }
  | { readonly t: "req"; readonly id: string; readonly payload: unknown }
  | { readonly t: "rsp"; readonly id: string; readonly payload: unknown };
