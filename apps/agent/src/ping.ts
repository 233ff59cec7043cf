import { pingWithin as ping } from "@efm/vip";

/**
 * Did `address` answer pingServerCommand within `boundMs` (remote.timeout)? Used for the ping
 * server and the VIP. When the configured program is ping (iputils or busybox, by its
 * basename) the agent runs it without `-q`, every other option as configured, so that the
 * first echo reply answers at once; the ping is then stopped. The guide's default
 * `ping -q -c3 -w5` would print nothing until its summary, two seconds (three replies) later,
 * or until it is interrupted at the bound. Any other program runs exactly as configured and
 * its exit code 0, or the summary it prints when interrupted at the bound, says whether a
 * reply came. No reply by the bound is "not reachable": a silent address still takes the
 * whole bound (or the command's own deadline). A command that cannot run at all rejects (the
 * engine then assumes the VIP may be in use, and the well-known server unreachable).
 * @efm/vip's `pingWithin` does it; this names the agent's use.
 */
export function pingWithin(address: string, pingCommand: string, boundMs: number): Promise<boolean> {
  return ping(address, pingCommand, boundMs);
}
