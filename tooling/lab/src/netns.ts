import { LabError } from "./errors.ts";
import { type ExecResult, run } from "./exec.ts";
import type { HostState, LabState } from "./state.ts";

/** Interface name of every host inside its own namespace. */
export const HOST_IF = "eth0";

/** Create bridge, namespaces and veth pairs recorded in state (netns mode). */
export async function createNetwork(state: LabState): Promise<void> {
  if (state.bridge === null || state.bridgeAddress === null || state.prefixLength === null) {
    throw new LabError("NOT_NETNS", `lab ${state.name} is not in netns mode`);
  }
  // Names come from the caller's reserved prefix: leftovers of a run whose state file was lost
  // (e.g. /tmp wiped) are ours, and would otherwise make every later run fail with "exists".
  await destroyNetwork(state);
  await run(["ip", "link", "add", state.bridge, "type", "bridge"]);
  await run(["ip", "addr", "add", `${state.bridgeAddress}/${state.prefixLength}`, "dev", state.bridge]);
  await run(["ip", "link", "set", state.bridge, "up"]);
  for (const h of state.hosts) {
    if (h.namespace === null || h.vethHost === null) continue;
    await run(["ip", "netns", "add", h.namespace]);
    await run([
      "ip",
      "link",
      "add",
      h.vethHost,
      "type",
      "veth",
      "peer",
      "name",
      HOST_IF,
      "netns",
      h.namespace,
    ]);
    await run(["ip", "link", "set", h.vethHost, "master", state.bridge, "up"]);
    await run(["ip", "-n", h.namespace, "addr", "add", `${h.address}/${state.prefixLength}`, "dev", HOST_IF]);
    await run(["ip", "-n", h.namespace, "link", "set", "lo", "up"]);
    await run(["ip", "-n", h.namespace, "link", "set", HOST_IF, "up"]);
  }
}

/** Remove namespaces and bridge; missing pieces are fine (down runs twice, or after a crash). */
export async function destroyNetwork(state: LabState): Promise<void> {
  for (const h of state.hosts) {
    if (h.namespace !== null) await run(["ip", "netns", "del", h.namespace], { allowFailure: true });
    // Deleting the namespace deletes the veth pair; this catches a pair whose namespace never existed.
    if (h.vethHost !== null) await run(["ip", "link", "del", h.vethHost], { allowFailure: true });
  }
  if (state.bridge !== null) await run(["ip", "link", "del", state.bridge], { allowFailure: true });
}

function ns(host: HostState): string {
  if (host.namespace === null) throw new LabError("NOT_NETNS", `host ${host.name} has no network namespace`);
  return host.namespace;
}

/** Run iptables inside the host's namespace (rules live and die with the namespace). */
export function iptables(host: HostState, args: readonly string[]): Promise<ExecResult> {
  return run(["ip", "netns", "exec", ns(host), "iptables", "-w", ...args]);
}

/** Drop everything from host to ip (outgoing) in host's namespace. */
export async function dropTo(host: HostState, ip: string): Promise<void> {
  await iptables(host, ["-A", "OUTPUT", "-d", ip, "-j", "DROP"]);
}

/** Drop everything arriving at host from ip. */
export async function dropFrom(host: HostState, ip: string): Promise<void> {
  await iptables(host, ["-A", "INPUT", "-s", ip, "-j", "DROP"]);
}

/**
 * Cut host off from every network peer but keep its loopback. Both directions go in as one
 * iptables-restore transaction: there is no moment when the host can send but not receive, and
 * the cut happens at one instant a benchmark can time (one process start, not four).
 */
export async function isolate(host: HostState): Promise<void> {
  await run(["ip", "netns", "exec", ns(host), "iptables-restore", "-w", "--noflush"], {
    input: "*filter\n-A INPUT ! -i lo -j DROP\n-A OUTPUT ! -o lo -j DROP\nCOMMIT\n",
  });
}

/** Flush the lab's filter rules in the host's namespace. */
export async function heal(host: HostState): Promise<void> {
  await iptables(host, ["-F", "INPUT"]);
  await iptables(host, ["-F", "OUTPUT"]);
}

/** Link of the host down/up: the host and everything on it vanish from the bridge. */
export async function setLink(host: HostState, up: boolean): Promise<void> {
  await run(["ip", "-n", ns(host), "link", "set", HOST_IF, up ? "up" : "down"]);
}
