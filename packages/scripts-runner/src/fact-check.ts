/**
 * The facts the privileged helpers read from root's `<cluster>.properties` (the data directory
 * and db.bin efm-helper acts on, the virtual IP efm-address assigns), compared with the ones the
 * agent read from its own copy. Two files that disagree mean the agent would reason about one
 * database or address while the helpers act on another: its checks would prove nothing.
 */

/** A virtual IP as both sides describe it. */
export interface VipFact {
  readonly address: string;
  readonly interface: string;
  readonly prefix: number;
}

/** What one side read, and from where. */
export interface PropertiesFacts {
  /** The file these facts come from, for the message. */
  readonly propertiesFile: string;
  readonly dataDir: string;
  readonly bin: string;
  /** null: no virtualIp configured. undefined: this side did not say (an older helper). */
  readonly vip?: VipFact | null;
}

function vipText(v: VipFact | null): string {
  return v === null ? "no virtualIp" : `${v.address}/${v.prefix} on ${v.interface}`;
}

/** A path without trailing slashes, so `/data/` and `/data` name the same directory. */
function trimmed(path: string): string {
  return path.length > 1 ? path.replace(/\/+$/, "") : path;
}

/**
 * Every fact on which `root` (what the helpers read) and `agent` (what the agent read)
 * disagree, each as one sentence naming both values and both files; empty when they agree.
 * A VIP the root side did not report is not compared (see {@link vipUnknown}).
 */
export function factMismatches(root: PropertiesFacts, agent: PropertiesFacts): string[] {
  const out: string[] = [];
  const differ = (what: string, mine: string, theirs: string) =>
    out.push(
      `${what} differs: ${mine} in ${agent.propertiesFile} (this agent) but ${theirs} in ${root.propertiesFile} (what the privileged helpers read)`,
    );
  if (trimmed(root.dataDir) !== trimmed(agent.dataDir)) {
    differ("the data directory (db.data.dir / db.recovery.conf.dir)", agent.dataDir, root.dataDir);
  }
  if (trimmed(root.bin) !== trimmed(agent.bin)) differ("db.bin", agent.bin, root.bin);
  if (root.vip !== undefined && agent.vip !== undefined) {
    const a = agent.vip;
    const r = root.vip;
    const same =
      (a === null && r === null) ||
      (a !== null &&
        r !== null &&
        a.address === r.address &&
        a.interface === r.interface &&
        a.prefix === r.prefix);
    if (!same) {
      differ("the virtual IP (virtualIp, virtualIp.interface, virtualIp.netmask)", vipText(a), vipText(r));
    }
  }
  return out;
}

/**
 * The warning for an agent that has a virtual IP but could not learn the one root's file names
 * (the helper could not be queried): efm-address will assign whatever that file says.
 */
export function vipUnknown(agent: PropertiesFacts, why: string): string | null {
  if (agent.vip === null || agent.vip === undefined) return null;
  return `could not compare the virtual IP ${vipText(agent.vip)} of ${agent.propertiesFile} with the one efm-address reads from root's properties file (${why}); efm-address assigns and releases the address named there, so make sure both files name the same virtualIp, virtualIp.interface and virtualIp.netmask`;
}
