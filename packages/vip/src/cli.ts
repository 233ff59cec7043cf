// efm-address: the root-only VIP helper, argument-compatible with EFM 2.0.3's efm_address
// (guide 3.3). sudoers allows the efm user to run exactly this program as root.
import { isVipError } from "./errors.ts";
import { assign, release } from "./vip.ts";

const USAGE =
  "usage: efm-address assign <interface> <ip_address> <netmask>\n       efm-address release <interface> <ip_address>\n";

/** Runs the command line `argv` (without node and script); returns the exit code. */
export async function main(argv: readonly string[], err: (text: string) => void): Promise<number> {
  const [verb, ...rest] = argv;
  try {
    if (verb === "assign" && rest.length === 3) {
      const [iface, ip, netmask] = rest as [string, string, string];
      const result = await assign(iface, ip, netmask);
      if (typeof result.gratuitousArp === "object") {
        err(
          `efm-address: warning: ${ip} assigned, but gratuitous ARP failed: ${result.gratuitousArp.failed}\n`,
        );
      }
      return 0;
    }
    if (verb === "release" && rest.length === 2) {
      const [iface, ip] = rest as [string, string];
      await release(iface, ip);
      return 0;
    }
    err(USAGE);
    return 2;
  } catch (e) {
    err(`efm-address: ${isVipError(e) ? `${e.code}: ` : ""}${e instanceof Error ? e.message : String(e)}\n`);
    return isVipError(e) && e.code !== "COMMAND_FAILED" && e.code !== "COMMAND_TIMEOUT" ? 2 : 1;
  }
}
